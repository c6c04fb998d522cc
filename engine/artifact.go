package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/erasure"
	"github.com/vaultaire/vaultaire/placement"
)

// ArtifactInfo describes one version of an Artifact.
type ArtifactInfo struct {
	Tenant, Container, Key string
	Version                driver.Version
	Size                   int64 // bytes
	ETag                   string
	ContentType            string
	Modified               time.Time
	Metadata               map[string]string // user metadata and stored standard headers
}

// PutOptions describes the artifact a Put stores.
type PutOptions struct {
	// Size is the body length in bytes, or -1 if unknown. A body of another
	// length fails with ErrIncompleteBody and stores nothing.
	Size        int64
	ContentType string
	Metadata    map[string]string
	// MD5, if set, is the expected MD5 of the body; a mismatch fails with
	// ErrBadDigest and stores nothing.
	MD5 []byte
	// MaxSize, if positive, is the largest body accepted; a longer one fails
	// with ErrTooLarge and stores nothing.
	MaxSize int64
	// AfterBody, if set, is called once the body has been read in full and
	// before the artifact becomes visible. The entries it returns are added
	// to Metadata (for values only known at the end of the body, such as a
	// trailing checksum); an error fails the Put and stores nothing.
	AfterBody func() (map[string]string, error)
}

func (e *Engine) info(tenant, container, key string, r *record) ArtifactInfo {
	return ArtifactInfo{
		Tenant: tenant, Container: container, Key: key,
		Version:     r.Version,
		Size:        r.Size,
		ETag:        r.ETag,
		ContentType: r.ContentType,
		Modified:    time.Unix(0, r.Modified),
		Metadata:    r.Metadata,
	}
}

// shardName names the shard files of one artifact version's data. Keys
// never reach a file name: only this hash does.
func shardName(tenant, container, key string, dataID [16]byte) string {
	h := sha256.New()
	h.Write([]byte(indexPrefix(tenant, container)))
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(dataID[:])
	return hex.EncodeToString(h.Sum(nil))
}

// shardOf returns the shard file of one part's data.
func shardOf(tenant, container, key string, pg uint32, dataID [16]byte) driver.Shard {
	return driver.Shard{PG: pg, Name: shardName(tenant, container, key, dataID)}
}

func metadataSize(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
}

// checkContainer validates the names and that the container exists.
func (e *Engine) checkContainer(ctx context.Context, tenant, container string) error {
	if err := validTenant(tenant); err != nil {
		return err
	}
	if err := validContainer(container); err != nil {
		return err
	}
	if _, err := e.cfg.Containers.Container(ctx, tenant, container); err != nil {
		return err
	}
	return nil
}

// lane is one drive's shard writer in a put. It creates the shard on
// first use, so a drive that hangs there holds up only its own lane, and
// it serialises the writer's calls, so a lane Encode dropped as stalled is
// aborted only once its last Write returned. Its ctx ends when the lane is
// given up, which interrupts a Write or Commit waiting on the drive.
type lane struct {
	d      driver.Driver // nil: the drive is unavailable, err says why
	shard  driver.Shard
	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex // guards the following fields and serialises the writer's calls
	sw  driver.ShardWriter
	err error // why the shard could not be created
}

func (l *lane) openLocked() error {
	if l.sw == nil && l.err == nil {
		l.sw, l.err = l.d.CreateShard(l.ctx, l.shard)
	}
	return l.err
}

func (l *lane) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.openLocked(); err != nil {
		return 0, err
	}
	return l.sw.Write(p)
}

func (l *lane) commit(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.openLocked(); err != nil {
		return err
	}
	return l.sw.Commit(ctx)
}

// abort gives the lane up: it ends the lane's ctx and aborts the shard
// write (a no-op after a successful commit), at once if no call is in
// flight, else on a background goroutine once that call returned.
func (l *lane) abort(e *Engine) {
	l.cancel()
	if l.mu.TryLock() {
		l.abortLocked()
		return
	}
	e.goBackground(func() {
		l.mu.Lock()
		l.abortLocked()
	})
}

func (l *lane) abortLocked() {
	defer l.mu.Unlock()
	if l.sw != nil {
		l.sw.Abort()
	}
}

// Put stores body as the newest version of key. It streams: memory use is a
// few stripes whatever the size.
func (e *Engine) Put(ctx context.Context, tenant, container, key string, body io.Reader, opts PutOptions) (ArtifactInfo, error) {
	if err := validKey(key); err != nil {
		return ArtifactInfo{}, err
	}
	if metadataSize(opts.Metadata)+len(opts.ContentType) > MaxMetadataSize {
		return ArtifactInfo{}, ErrMetadataTooLarge
	}
	maxSize := int64(MaxArtifactSize)
	if opts.MaxSize > 0 {
		maxSize = min(maxSize, opts.MaxSize)
	}
	if opts.Size > maxSize {
		return ArtifactInfo{}, fmt.Errorf("%w: %d bytes", ErrTooLarge, opts.Size)
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return ArtifactInfo{}, err
	}
	m := e.cfg.Topology.Map()
	pol := m.Policy
	pg := m.PGOf(tenant, container, key)
	drives, derrs := e.pgDrives(m, pg)
	codec, err := e.codec(pol.Data, pol.Parity, e.cfg.StripeSize)
	if err != nil {
		return ArtifactInfo{}, err
	}
	// The version is taken once the body is in (below): of concurrent
	// puts of one key, the one that completes last wins, as in S3.
	rec := record{
		ContentType: opts.ContentType, Metadata: opts.Metadata,
		Data: pol.Data, Parity: pol.Parity, StripeSize: e.cfg.StripeSize, PG: pg,
	}
	var dataID [16]byte
	rand.Read(dataID[:])
	wq := pol.WriteQuorum()
	n := pol.SetSize()

	// Read the head of the body: small artifacts are stored inline.
	var head []byte
	inline := false
	if e.cfg.InlineMax > 0 && opts.Size <= e.cfg.InlineMax {
		n := e.cfg.InlineMax + 1
		if opts.Size >= 0 {
			n = opts.Size + 1
		}
		head = make([]byte, n)
		got, err := erasure.ReadFull(body, head)
		if err != nil {
			return ArtifactInfo{}, fmt.Errorf("engine: put %s: read body: %w", container, err)
		}
		inline = got < len(head)
		head = head[:got]
		if int64(got) > maxSize {
			return ArtifactInfo{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxSize)
		}
	}

	digest, release := newETagHash(!inline)
	defer release()
	var inlineShards [][]byte
	committed := make([]bool, n)
	shard := shardOf(tenant, container, key, pg, dataID)
	if inline {
		bufs := make([]*bytes.Buffer, n)
		ws := make([]io.Writer, n)
		for j := range n {
			bufs[j] = new(bytes.Buffer)
			ws[j] = bufs[j]
		}
		res, err := codec.Encode(ctx, bytes.NewReader(head), ws, erasure.EncodeOptions{Hash: digest})
		if err != nil {
			return ArtifactInfo{}, fmt.Errorf("engine: put inline: %w", err)
		}
		rec.Size = res.Size
		rec.IsInline = true
		for j := range n {
			inlineShards = append(inlineShards, bufs[j].Bytes())
			committed[j] = drives[j] != nil
		}
	} else {
		if len(head) > 0 {
			body = io.MultiReader(bytes.NewReader(head), body)
		}
		limit := maxSize
		if opts.Size >= 0 {
			limit = opts.Size
		}
		size, err := e.putShards(ctx, codec, drives, derrs, shard, io.LimitReader(body, limit+1), wq, digest, committed)
		if err != nil {
			return ArtifactInfo{}, fmt.Errorf("engine: put %s/%s: %w", tenant, container, err)
		}
		rec.Size = size
		if size > limit {
			e.deleteShards(ctx, drives, shard, committed)
			if opts.Size >= 0 {
				return ArtifactInfo{}, ErrIncompleteBody
			}
			return ArtifactInfo{}, ErrTooLarge
		}
	}
	if opts.Size >= 0 && rec.Size != opts.Size {
		e.deleteShards(ctx, drives, shard, committed)
		return ArtifactInfo{}, fmt.Errorf("%w: got %d bytes, want %d", ErrIncompleteBody, rec.Size, opts.Size)
	}
	sum := digest.Sum(nil)
	if opts.MD5 != nil && !bytes.Equal(sum, opts.MD5) {
		e.deleteShards(ctx, drives, shard, committed)
		return ArtifactInfo{}, ErrBadDigest
	}
	if opts.AfterBody != nil {
		extra, err := opts.AfterBody()
		if err == nil && metadataSize(extra)+metadataSize(rec.Metadata) > MaxMetadataSize {
			err = ErrMetadataTooLarge
		}
		if err != nil {
			e.deleteShards(ctx, drives, shard, committed)
			return ArtifactInfo{}, err
		}
		if len(extra) > 0 {
			merged := make(map[string]string, len(rec.Metadata)+len(extra))
			maps.Copy(merged, rec.Metadata)
			maps.Copy(merged, extra)
			rec.Metadata = merged
		}
	}
	rec.ETag = hex.EncodeToString(sum)
	if !rec.IsInline {
		rec.Parts = []part{{DataID: dataID, Size: rec.Size, ETag: rec.ETag}}
	}

	version, now := e.newVersion()
	rec.Version, rec.Modified = version, now.UnixNano()
	replaced, err := e.writeLatest(ctx, tenant, container, key, drives, &rec, inlineShards, committed, wq)
	if err != nil {
		e.deleteShards(ctx, drives, shard, committed)
		return ArtifactInfo{}, err
	}
	rb, ra := liveSize(replaced)
	e.usage(tenant, rec.Size-rb, 1-ra)
	return e.info(tenant, container, key, &rec), nil
}

// putShards encodes body onto new shard files on drives and commits them.
// committed[j] reports which drives hold their shard afterwards. On error
// nothing is left behind.
//
// It waits for a write quorum, not for every drive: a drive that stalls
// mid-stream is dropped once the others are ahead (erasure
// EncodeOptions.Stall), and commits still running a straggler grace after
// a quorum committed are given up (see fanOut); what they leave is
// aborted or deleted in the background. Their shards are missing from the
// artifact, for the healer to restore.
func (e *Engine) putShards(ctx context.Context, codec *erasure.Codec, drives []driver.Driver, derrs []error, shard driver.Shard, body io.Reader, wq int, digest hash.Hash, committed []bool) (int64, error) {
	n := len(drives)
	lanes := make([]*lane, n)
	ws := make([]io.Writer, n)
	for j, d := range drives {
		lctx, cancel := context.WithCancel(ctx)
		lanes[j] = &lane{d: d, shard: shard, ctx: lctx, cancel: cancel, err: derrs[j]}
		if d == nil && lanes[j].err == nil {
			lanes[j].err = driver.ErrOffline
		}
		ws[j] = lanes[j]
	}
	abortAll := func() {
		for _, l := range lanes {
			l.abort(e)
		}
	}
	began := time.Now()
	res, err := codec.Encode(ctx, body, ws, erasure.EncodeOptions{
		Quorum: wq, Hash: digest, Stall: maxStraggle,
		Drop: func(j int) {
			e.log.Warn("shard writer dropped: drive too slow", "pg", shard.PG, "shard", j)
			lanes[j].cancel()
		},
	})
	e.st.encoded(time.Since(began))
	if err != nil {
		abortAll()
		if errors.Is(err, erasure.ErrWriteQuorum) {
			return 0, fmt.Errorf("%w: %w", ErrWriteQuorum, err)
		}
		return 0, err
	}
	// Commit in parallel: each commit is an fsync and a rename.
	// (A lane's own fields belong to its calls, which a dropped lane may
	// still be in: Encode's result says which lanes kept up.)
	run := func(j int) bool { return res.Errs[j] == nil }
	errs, done := fanOut(ctx, e, n, run, wq,
		func(_ context.Context, j int) error { return lanes[j].commit(lanes[j].ctx) },
		func(err error) bool { return err == nil },
		func(j int, err error) {
			// A commit that returned after the put went on: its shard
			// is referenced by no record.
			if err == nil {
				cctx, cancel := cleanupCtx(ctx)
				defer cancel()
				if derr := drives[j].DeleteShard(cctx, shard); derr != nil && !errors.Is(derr, driver.ErrNotFound) {
					e.log.Warn("straggler shard delete failed", "pg", shard.PG, "shard", j, "err", derr)
				}
			}
		})
	ok := 0
	for j := range n {
		switch {
		case !run(j):
		case !done[j]:
			e.log.Warn("shard commit given up: drive too slow", "pg", shard.PG, "shard", j)
		case errs[j] != nil:
			e.log.Warn("shard commit failed", "pg", shard.PG, "shard", j, "err", errs[j])
		default:
			committed[j] = true
			ok++
		}
	}
	abortAll() // no-op for committed writers; interrupts stragglers
	// A failed commit may still have left its file under the name (a
	// directory fsync failing after the rename, a torn write). No record
	// will name it on that drive: delete it, with the others if the put
	// fails.
	torn, anyTorn := make([]bool, n), false
	for j := range n {
		torn[j] = run(j) && done[j] && errs[j] != nil
		anyTorn = anyTorn || torn[j]
	}
	if ok < wq {
		for j := range n {
			committed[j] = committed[j] || torn[j]
		}
		e.deleteShards(ctx, drives, shard, committed)
		return 0, fmt.Errorf("%w: %d of %d shards committed, need %d: %w", ErrWriteQuorum, ok, n, wq, errors.Join(errs...))
	}
	if anyTorn {
		e.deleteShards(ctx, drives, shard, torn)
	}
	return res.Size, nil
}

// deleteShards removes the shard files named shard from the drives where
// committed is set, in parallel, and clears committed. It returns once a
// majority of them answered and the others had the straggler grace
// (fanCleanup); the deletes still running go on in the background.
func (e *Engine) deleteShards(ctx context.Context, drives []driver.Driver, shard driver.Shard, committed []bool) {
	mask := make([]bool, len(committed))
	for j, c := range committed {
		mask[j] = c && drives[j] != nil
		if mask[j] {
			committed[j] = false
		}
	}
	e.fanCleanup(ctx, mask, func(ctx context.Context, j int) error {
		err := drives[j].DeleteShard(ctx, shard)
		if err != nil && !errors.Is(err, driver.ErrNotFound) {
			e.log.Warn("shard delete failed", "pg", shard.PG, "shard", j, "err", err)
		}
		return err
	})
}

// recordWrite is the outcome of one drive's PutRecord.
type recordWrite struct {
	err     error
	prev    *record       // the record replaced, if any
	prevRaw driver.Record // as stored, to roll back to
}

// writeRecords writes rec (shard j's copy to drive j) to the drives where
// ok is set and fails with ErrWriteQuorum unless at least wq drives took it
// or refused it as stale (driver.ErrStale: a newer version is there, so this
// write lost to it under last-writer-wins and the outcome is final).
//
// Only once the write has succeeded are the shard files it made unreachable
// removed: those of the versions it replaced and, where a newer version had
// already landed, its own. A failed write is rolled back and removes
// nothing, so the version it tried to replace stays readable.
func (e *Engine) writeRecords(ctx context.Context, tenant, container, key string, drives []driver.Driver, rec *record, inline [][]byte, ok []bool, wq int) error {
	return e.writeRecordsAt(ctx, indexPrefix(tenant, container)+key, tenant, container, key, drives, rec, inline, ok, wq)
}

// writeRecordsAt is writeRecords for a record stored under index key ikey
// (an artifact's, or a multipart upload's or part's) whose shard files are
// named after key.
func (e *Engine) writeRecordsAt(ctx context.Context, ikey, tenant, container, key string, drives []driver.Driver, rec *record, inline [][]byte, ok []bool, wq int) error {
	t := recordTarget{ikey: ikey, tenant: tenant, container: container, key: key, drives: drives}
	res, settle := e.putRecordsQuorum(ctx, t, rec, inline, ok, wq)
	err := e.writeRecordsRes(ctx, ikey, tenant, container, key, drives, rec, res, wq)
	settle(err == nil)
	return err
}

// maxStaleRetries bounds how often writeLatest re-versions a write that
// met a newer version.
const maxStaleRetries = 3

// writeLatest is writeRecords for a new version of an artifact (a put, a
// delete, a completed multipart upload). Versions are wall-clock time, and
// another node's clock may run ahead of this one's: if a drive already
// holds a newer version of key than rec, the engine's clock is moved past
// it and rec is written again with a newer version, so the write that
// returns last is the one readers see, whatever the clocks say. rec's
// Version and Modified change accordingly. Only a version from the
// future (by this node's clock) causes this. Callers take rec's version
// right before calling, once the body is stored, so of concurrent writes
// the one that completes last wins (as in S3), not the one that started
// last.
func (e *Engine) writeLatest(ctx context.Context, tenant, container, key string, drives []driver.Driver, rec *record, inline [][]byte, ok []bool, wq int) (replaced *record, err error) {
	ikey := indexPrefix(tenant, container) + key
	t := recordTarget{ikey: ikey, tenant: tenant, container: container, key: key, drives: drives}
	res, settle := e.putRecordsQuorum(ctx, t, rec, inline, ok, wq)
	defer func() { settle(err == nil) }()
	for try := 0; try < maxStaleRetries; try++ {
		newest, stale := e.newestAbove(ctx, ikey, drives, res, rec.Version)
		if !stale || int64(binary.BigEndian.Uint64(newest[:8])) <= e.cfg.Now().UnixNano() {
			// Nothing newer, or a version from the past: a concurrent
			// write that completed later, which may win.
			break
		}
		e.observe(newest)
		first := rec.Version
		v, now := e.newVersion()
		rec.Version, rec.Modified = v, now.UnixNano()
		// Records of the first attempt that land late are rolled back.
		settle(false)
		again, settleAgain := e.putRecordsQuorum(ctx, t, rec, inline, ok, wq)
		settle = settleAgain
		for j := range again {
			// A drive that took the first attempt now reports that
			// attempt as replaced: what it really replaced is what the
			// first attempt did (for rollback and garbage collection).
			if again[j].prev != nil && again[j].prev.Version == first {
				again[j].prev, again[j].prevRaw = res[j].prev, res[j].prevRaw
			}
		}
		res = again
	}
	replaced = replacedOf(res)
	err = e.writeRecordsRes(ctx, ikey, tenant, container, key, drives, rec, res, wq)
	return replaced, err
}

// replacedOf returns the newest record a write replaced on any drive, or
// nil: the version the write superseded, as far as the drives know.
func replacedOf(res []recordWrite) *record {
	var newest *record
	for _, r := range res {
		if r.err == nil && r.prev != nil && (newest == nil || r.prev.Version.Compare(newest.Version) > 0) {
			newest = r.prev
		}
	}
	return newest
}

// liveSize returns the bytes and artifact count a replaced record held:
// nothing for none or a deletion.
func liveSize(r *record) (bytes, artifacts int64) {
	if r == nil || r.Deleted {
		return 0, 0
	}
	return r.Size, 1
}

// newestAbove reports whether any drive refused rec as stale and, if so,
// the newest version those drives hold.
func (e *Engine) newestAbove(ctx context.Context, ikey string, drives []driver.Driver, res []recordWrite, v driver.Version) (driver.Version, bool) {
	newest, stale := v, false
	for j, r := range res {
		if !errors.Is(r.err, driver.ErrStale) {
			continue
		}
		got, err := drives[j].GetRecord(ctx, ikey)
		if err == nil && got.Version.Compare(newest) > 0 {
			newest, stale = got.Version, true
		}
	}
	return newest, stale
}

// writeRecordsRes finishes a record write whose results are res: it rolls
// back if fewer than wq drives took it, else collects replaced shards.
func (e *Engine) writeRecordsRes(ctx context.Context, ikey, tenant, container, key string, drives []driver.Driver, rec *record, res []recordWrite, wq int) error {
	done := 0
	for _, r := range res {
		if r.err == nil || errors.Is(r.err, driver.ErrStale) {
			done++
		}
	}
	if done < wq {
		e.rollback(ctx, ikey, drives, rec, res)
		return fmt.Errorf("%w: %d of %d records written, need %d: %w", ErrWriteQuorum, done, len(drives), wq, firstError(res))
	}
	e.collect(ctx, tenant, container, key, drives, rec, res)
	return nil
}

// rollback undoes a record write that did not reach quorum: each drive that
// took rec gets back the record it replaced, so a failed overwrite leaves
// the previous version exactly as readable as before.
func (e *Engine) rollback(ctx context.Context, ikey string, drives []driver.Driver, rec *record, res []recordWrite) {
	ctx = context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for j, r := range res {
		if r.err != nil {
			continue
		}
		wg.Go(func() {
			err := drives[j].DeleteRecord(ctx, ikey, rec.Version)
			if err == nil && r.prev != nil {
				_, _, err = drives[j].PutRecord(ctx, r.prevRaw)
			}
			if err != nil && !errors.Is(err, driver.ErrStale) && !errors.Is(err, driver.ErrNotFound) {
				e.log.Warn("record rollback failed", "shard", j, "err", err)
			}
		})
	}
	wg.Wait()
}

func firstError(res []recordWrite) error {
	for _, r := range res {
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// putRecords writes rec to the drives where ok is set, in parallel, and
// waits for every one of them.
func (e *Engine) putRecords(ctx context.Context, ikey string, drives []driver.Driver, rec *record, inline [][]byte, ok []bool) []recordWrite {
	res := make([]recordWrite, len(drives))
	var wg sync.WaitGroup
	for j, d := range drives {
		if !ok[j] || d == nil {
			res[j].err = ErrWriteQuorum
			continue
		}
		wg.Go(func() { res[j] = e.putRecordOne(ctx, ikey, d, rec, j, inline) })
	}
	wg.Wait()
	return res
}

// recordTarget is where a record write goes: the index key, the
// artifact whose shard files the record names, and the drives.
type recordTarget struct {
	ikey                   string
	tenant, container, key string
	drives                 []driver.Driver
	// keepShards: a straggler landing after a kept write collects no
	// shard files (an upload record or completion marker, whose
	// replaced record may name part data still in use).
	keepShards bool
}

// recordOK reports whether a drive took a record write or refused it as
// stale: either way its outcome is final.
func recordOK(w recordWrite) bool { return w.err == nil || errors.Is(w.err, driver.ErrStale) }

// putRecordsQuorum is putRecords returning once need drives took rec (or
// refused it as stale) and the others had the straggler grace (fanOut);
// those that did not answer by then count as failed (ErrWriteQuorum).
// The caller must call settle exactly once, telling whether the write was
// kept: a straggler that lands afterwards then has the shards it made
// unreachable collected if kept, else it is rolled back.
func (e *Engine) putRecordsQuorum(ctx context.Context, t recordTarget, rec *record, inline [][]byte, ok []bool, need int) (res []recordWrite, settle func(kept bool)) {
	n := len(t.drives)
	attempt := *rec // as written: the caller may re-version rec
	settled := make(chan struct{})
	var kept bool
	var once sync.Once
	settle = func(k bool) { once.Do(func() { kept = k; close(settled) }) }
	late := func(j int, w recordWrite) {
		<-settled
		one := make([]recordWrite, n)
		for i := range one {
			one[i].err = ErrWriteQuorum
		}
		one[j] = w
		cctx, cancel := cleanupCtx(ctx)
		defer cancel()
		if kept {
			if !t.keepShards {
				e.collect(cctx, t.tenant, t.container, t.key, t.drives, &attempt, one)
			}
		} else {
			e.rollback(cctx, t.ikey, t.drives, &attempt, one)
		}
	}
	res, done := fanOut(ctx, e, n, func(j int) bool { return ok[j] && t.drives[j] != nil }, need,
		func(ctx context.Context, j int) recordWrite {
			return e.putRecordOne(ctx, t.ikey, t.drives[j], &attempt, j, inline)
		},
		recordOK, late)
	for j := range res {
		if !done[j] {
			res[j] = recordWrite{err: fmt.Errorf("%w: drive did not answer in time", ErrWriteQuorum)}
		}
	}
	return res, settle
}

// putRecordOne writes shard j's copy of rec to d.
func (e *Engine) putRecordOne(ctx context.Context, ikey string, d driver.Driver, rec *record, j int, inline [][]byte) recordWrite {
	r := *rec
	r.Shard = j
	if inline != nil {
		r.Inline = inline[j]
	}
	prev, replaced, err := d.PutRecord(ctx, driver.Record{Key: ikey, Version: rec.Version, Data: r.marshal()})
	w := recordWrite{err: err}
	if err == nil && replaced {
		if old, derr := unmarshalRecord(prev.Data); derr == nil {
			w.prev, w.prevRaw = old, prev
		}
	}
	return w
}

// collect removes, after a successful record write, the shard files that
// became unreachable on each drive: rec's own where a newer version
// refused it, else those of the record it replaced that rec does not
// share. A replaced record may be of rec's own version: Heal rewriting
// it (the same shard files, kept), or migration replacing an older map's
// placement of the version with the current map's (other shard files,
// removed).
func (e *Engine) collect(ctx context.Context, tenant, container, key string, drives []driver.Driver, rec *record, res []recordWrite) {
	ctx = context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for j, r := range res {
		var gone *record
		switch {
		case errors.Is(r.err, driver.ErrStale) && !rec.Deleted:
			gone = rec
		case r.err == nil && r.prev != nil && !r.prev.Deleted:
			gone = r.prev
		default:
			continue
		}
		for _, p := range gone.Parts {
			if gone != rec && gone.PG == rec.PG && slices.ContainsFunc(rec.Parts, func(q part) bool { return q.DataID == p.DataID }) {
				continue // still rec's data (a rewrite, or a re-versioned write)
			}
			wg.Go(func() {
				err := drives[j].DeleteShard(ctx, shardOf(tenant, container, key, gone.PG, p.DataID))
				if err != nil && !errors.Is(err, driver.ErrNotFound) {
					e.log.Warn("shard delete failed", "pg", gone.PG, "shard", j, "err", err)
				}
			})
		}
	}
	wg.Wait()
}

// observe moves the engine's clock past v, so its next version is newer.
func (e *Engine) observe(v driver.Version) {
	ns := int64(binary.BigEndian.Uint64(v[:8]))
	for {
		last := e.lastVersion.Load()
		if ns <= last || e.lastVersion.CompareAndSwap(last, ns) {
			return
		}
	}
}

// Artifact is an opened artifact version: its metadata, read from a quorum
// of drives, and what is needed to read its bytes.
type Artifact struct {
	Info ArtifactInfo

	e       *Engine
	rec     *record   // the newest record
	holders []*record // per shard: the drive's record if it holds this version
	// stray marks the drives whose record is of this version but placed
	// for another slot or map, or names other data (a migration in
	// progress): their shard file of this name may hold another shard's
	// bytes, whose checksums would pass, so it is never read.
	stray  []bool
	drives []driver.Driver
	codec  *erasure.Codec
	// older reports that the artifact was found in an older map's set
	// (MapHistory), not the current one's.
	older bool
}

// Open reads the newest version of key's metadata from its drives. It fails
// with ErrNoSuchArtifact if the newest version is a deletion or there is
// none, and with ErrReadQuorum if fewer than k drives answered. With a
// MapHistory topology, an artifact the current map's set holds no record
// of is read from the older map whose set holds it (see locate).
func (e *Engine) Open(ctx context.Context, tenant, container, key string) (*Artifact, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return nil, err
	}
	loc, newest, err := e.locate(ctx, tenant, container, key)
	if err != nil {
		return nil, err
	}
	if newest != nil {
		e.observe(newest.Version)
	}
	if newest == nil || newest.Deleted {
		return nil, ErrNoSuchArtifact
	}
	return e.artifactAt(tenant, container, key, loc, newest)
}

// artifactAt returns the artifact of version newest, a live record placed
// in loc (as locate found it).
func (e *Engine) artifactAt(tenant, container, key string, loc location, newest *record) (*Artifact, error) {
	if newest.Data+newest.Parity != len(loc.drives) || newest.PG != loc.pg {
		// locate only serves records placed in the set it read; a record
		// of another placement here would be read from the wrong drives.
		return nil, fmt.Errorf("%w: artifact placed with %d+%d in pg %d, map epoch %d has %d drives in pg %d", ErrReadQuorum, newest.Data, newest.Parity, newest.PG, loc.m.Epoch, len(loc.drives), loc.pg)
	}
	holders := make([]*record, len(loc.drives))
	stray := make([]bool, len(loc.drives))
	for j, r := range loc.recs {
		if r != nil && r.Version == newest.Version && r.Shard == j && sameData(r, newest) {
			holders[j] = r
		}
		raw := loc.raw[j]
		stray[j] = holders[j] == nil && raw != nil && raw.Version == newest.Version
	}
	codec, err := e.codec(newest.Data, newest.Parity, newest.StripeSize)
	if err != nil {
		return nil, err
	}
	return &Artifact{
		Info:    e.info(tenant, container, key, newest),
		e:       e,
		rec:     newest,
		holders: holders,
		stray:   stray,
		drives:  loc.drives,
		codec:   codec,
		older:   loc.m.Epoch < e.cfg.Topology.Map().Epoch,
	}, nil
}

// chooseVersion picks the version a read serves: the newest one, unless
// fewer than k drives hold it while an older version is held by k or more.
// An acknowledged write is on a write quorum, and a write quorum plus the
// drives that answered always leave fewer than k drives for any older
// version, so such a newest version can only be the remains of a failed
// write, which must not hide the version it failed to replace.
func chooseVersion(recs []*record, k int) *record {
	count := map[driver.Version]int{}
	var newest *record
	for _, r := range recs {
		if r == nil {
			continue
		}
		count[r.Version]++
		if newest == nil || r.Version.Compare(newest.Version) > 0 {
			newest = r
		}
	}
	if newest == nil || count[newest.Version] >= k {
		return newest
	}
	var held *record
	for _, r := range recs {
		if r != nil && count[r.Version] >= k && (held == nil || r.Version.Compare(held.Version) > 0) {
			held = r
		}
	}
	if held != nil {
		return held
	}
	return newest
}

// readRecords reads key's record from every drive in parallel. It returns
// the decoded records (nil where missing or unreadable) and how many drives
// answered (with a record or a clean "not found").
func (e *Engine) readRecords(ctx context.Context, drives []driver.Driver, key string) ([]*record, int) {
	recs, answered := e.readRecordsEach(ctx, drives, key)
	n := 0
	for _, a := range answered {
		if a {
			n++
		}
	}
	return recs, n
}

// readRecordsK is readRecords returning once k drives answered and the
// others had the straggler grace (readRecordsQuorum): what a read that
// needs k answers (a read quorum) uses, so a hung drive does not hold it.
func (e *Engine) readRecordsK(ctx context.Context, drives []driver.Driver, key string, k int) ([]*record, int) {
	recs, answered := e.readRecordsQuorum(ctx, drives, key, k)
	n := 0
	for _, a := range answered {
		if a {
			n++
		}
	}
	return recs, n
}

// readRecordsEach is readRecords reporting which drives answered.
func (e *Engine) readRecordsEach(ctx context.Context, drives []driver.Driver, key string) ([]*record, []bool) {
	return e.readRecordsQuorum(ctx, drives, key, len(drives)+1)
}

// recordRead is the outcome of one drive's GetRecord.
type recordRead struct {
	rec      *record
	answered bool
}

// readRecordsQuorum is readRecordsEach returning once need drives answered
// and the others had the straggler grace (fanOut); those that did not
// answer by then count as not answering. A need above len(drives) waits
// for every drive.
func (e *Engine) readRecordsQuorum(ctx context.Context, drives []driver.Driver, key string, need int) ([]*record, []bool) {
	res, _ := fanOut(ctx, e, len(drives), func(j int) bool { return drives[j] != nil }, need,
		func(ctx context.Context, j int) recordRead {
			raw, err := drives[j].GetRecord(ctx, key)
			switch {
			case errors.Is(err, driver.ErrNotFound):
				return recordRead{answered: true}
			case err != nil:
				e.log.Debug("record read failed", "shard", j, "err", err)
				return recordRead{}
			}
			r, err := unmarshalRecord(raw.Data)
			if err != nil {
				e.log.Warn("corrupt record", "shard", j, "err", err)
				return recordRead{}
			}
			return recordRead{rec: r, answered: true}
		},
		func(r recordRead) bool { return r.answered }, nil)
	recs := make([]*record, len(drives))
	answered := make([]bool, len(drives))
	for j, r := range res {
		recs[j], answered[j] = r.rec, r.answered
	}
	return recs, answered
}

// Head returns the newest version's metadata.
func (e *Engine) Head(ctx context.Context, tenant, container, key string) (ArtifactInfo, error) {
	a, err := e.Open(ctx, tenant, container, key)
	if err != nil {
		return ArtifactInfo{}, err
	}
	return a.Info, nil
}

// partOpen returns the erasure.OpenFunc of part p's shards.
func (a *Artifact) partOpen(p int) erasure.OpenFunc {
	return func(ctx context.Context, j int, off, length int64) (io.ReadCloser, error) {
		if a.rec.IsInline {
			h := a.holders[j]
			if h == nil {
				return nil, errArtifactIncomplete
			}
			if off > int64(len(h.Inline)) {
				return nil, io.ErrUnexpectedEOF
			}
			end := min(off+length, int64(len(h.Inline)))
			return io.NopCloser(bytes.NewReader(h.Inline[off:end])), nil
		}
		if a.drives[j] == nil || a.stray[j] {
			return nil, errArtifactIncomplete
		}
		// A drive without the record may still hold the shard: try it.
		return a.drives[j].ReadShard(ctx, a.partShard(p), off, length)
	}
}

func (a *Artifact) partShard(p int) driver.Shard {
	return shardOf(a.Info.Tenant, a.Info.Container, a.Info.Key, a.rec.PG, a.rec.Parts[p].DataID)
}

// PartCount returns how many parts a multipart artifact was assembled
// from, or 0 for an artifact stored by a single Put.
func (a *Artifact) PartCount() int {
	if strings.Contains(a.Info.ETag, "-") {
		return len(a.rec.Parts)
	}
	return 0
}

// PartRange returns the byte range of part n (from 1) of a multipart
// artifact; an artifact stored by a single Put is one part.
func (a *Artifact) PartRange(n int) (off, length int64, ok bool) {
	if a.PartCount() == 0 {
		return 0, a.Info.Size, n == 1
	}
	if n < 1 || n > len(a.rec.Parts) {
		return 0, 0, false
	}
	for _, p := range a.rec.Parts[:n-1] {
		off += p.Size
	}
	return off, a.rec.Parts[n-1].Size, true
}

// segments returns the sizes of the separately encoded pieces: the parts,
// or the one inline piece.
func (a *Artifact) segments() []int64 {
	if a.rec.IsInline {
		return []int64{a.Info.Size}
	}
	sizes := make([]int64, len(a.rec.Parts))
	for i, p := range a.rec.Parts {
		sizes[i] = p.Size
	}
	return sizes
}

// WriteRange writes bytes [off, off+length) of the artifact to w, verifying
// every block. A degraded read succeeds and queues the artifact for healing.
func (a *Artifact) WriteRange(ctx context.Context, w io.Writer, off, length int64) error {
	if off < 0 || length < 0 || off+length > a.Info.Size {
		return fmt.Errorf("%w: %d+%d of %d bytes", ErrInvalidRange, off, length, a.Info.Size)
	}
	degraded := false
	for _, h := range a.holders {
		degraded = degraded || h == nil
	}
	var err error
	var start int64 // offset of the current part in the artifact
	for p, size := range a.segments() {
		lo, hi := max(off, start), min(off+length, start+size)
		if lo < hi {
			var res erasure.DecodeResult
			began := time.Now()
			res, err = a.codec.Decode(ctx, w, size, lo-start, hi-lo, a.partOpen(p))
			a.e.st.decoded(time.Since(began))
			degraded = degraded || len(res.Bad) > 0
			if err != nil {
				break
			}
		}
		start += size
	}
	if degraded && ctx.Err() == nil {
		a.e.queueHeal(HealItem{a.Info.Tenant, a.Info.Container, a.Info.Key})
	}
	if errors.Is(err, erasure.ErrTooFewShards) {
		return fmt.Errorf("%w: %w", ErrReadQuorum, err)
	}
	return err
}

// Reader returns bytes [off, off+length) of the artifact as a stream. The
// caller must Close it; closing early stops the read.
func (a *Artifact) Reader(ctx context.Context, off, length int64) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(a.WriteRange(ctx, pw, off, length))
	}()
	return &pipeReader{PipeReader: pr, cancel: cancel, done: done}
}

type pipeReader struct {
	*io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
}

// Close stops the read, also one waiting on a drive, and waits for its
// goroutine to end.
func (p *pipeReader) Close() error {
	err := p.PipeReader.Close()
	p.cancel()
	<-p.done
	return err
}

// Delete removes key by writing a deletion (a tombstone version) to its
// drives. Deleting a missing key succeeds, as in S3.
func (e *Engine) Delete(ctx context.Context, tenant, container, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return err
	}
	m := e.cfg.Topology.Map()
	pg := m.PGOf(tenant, container, key)
	drives, _ := e.pgDrives(m, pg)
	version, now := e.newVersion()
	rec := record{Version: version, Deleted: true, Modified: now.UnixNano(), Data: m.Policy.Data, Parity: m.Policy.Parity, StripeSize: e.cfg.StripeSize, PG: pg}
	ok := make([]bool, len(drives))
	for j := range ok {
		ok[j] = true
	}
	replaced, err := e.writeLatest(ctx, tenant, container, key, drives, &rec, nil, ok, m.Policy.WriteQuorum())
	if err != nil {
		return fmt.Errorf("engine: delete: %w", err)
	}
	rb, ra := liveSize(replaced)
	e.usage(tenant, -rb, -ra)
	return nil
}

// CopyOptions describes how Copy treats metadata.
type CopyOptions struct {
	// ReplaceMetadata replaces the source's content type and metadata with
	// the fields below; otherwise they are copied.
	ReplaceMetadata bool
	ContentType     string
	Metadata        map[string]string
}

// Copy stores the newest version of srcKey in srcContainer as dstKey in
// dstContainer, both of tenant. Copying onto itself makes a new version.
func (e *Engine) Copy(ctx context.Context, tenant, srcContainer, srcKey, dstContainer, dstKey string, opts CopyOptions) (ArtifactInfo, error) {
	src, err := e.Open(ctx, tenant, srcContainer, srcKey)
	if err != nil {
		return ArtifactInfo{}, err
	}
	put := PutOptions{Size: src.Info.Size, ContentType: src.Info.ContentType, Metadata: src.Info.Metadata}
	if opts.ReplaceMetadata {
		put.ContentType, put.Metadata = opts.ContentType, opts.Metadata
	}
	r := src.Reader(ctx, 0, src.Info.Size)
	defer r.Close()
	return e.Put(ctx, tenant, dstContainer, dstKey, r, put)
}

// mapOf is a test seam: the map the engine is using.
func (e *Engine) mapOf() *placement.Map { return e.cfg.Topology.Map() }
