package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/erasure"
)

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
	// CheckUpload, if set, is called by PutPart with the metadata of the
	// upload the part is for, before any of the body is read; an error
	// fails the part and stores nothing.
	CheckUpload func(metadata map[string]string) error
	// Condition, if set, is checked under the key's lock once the body is
	// stored, and the artifact is written under that lock (keylock.go).
	Condition Condition
	// Versioning is the container's versioning state: with versioning
	// Enabled or Suspended the body becomes a new version, or the null
	// version, of key (version.go).
	Versioning Versioning
	// Retention, if set, is the new version's object lock (lock.go).
	Retention *Retention

	modified int64  // unix nanoseconds kept from a version copied (adopt), else 0
	etag     string // the ETag kept from a version copied, else ""
	marker   bool   // store a delete marker (an empty body)
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
// few stripes whatever the size. A body of at most Config.InlineMax bytes
// is stored inline (putInline), a longer one in shard files (putStreamed);
// whatever stops the put after that removes the shard files it committed.
func (e *Engine) Put(ctx context.Context, tenant, container, key string, body io.Reader, opts PutOptions) (ArtifactInfo, error) {
	if err := validKey(key); err != nil {
		return ArtifactInfo{}, err
	}
	if opts.Versioning != Unversioned {
		return e.putVersioned(ctx, tenant, container, key, body, opts)
	}
	return e.put(ctx, tenant, container, key, "", body, opts)
}

// put is Put of a valid key, stored under key's own index key (vid "")
// or as its version vid (newVersionSlot: a new version id).
func (e *Engine) put(ctx context.Context, tenant, container, key, vid string, body io.Reader, opts PutOptions) (ArtifactInfo, error) {
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
	m := e.mapFor(tenant, container)
	pol := m.Policy
	pg := pgOf(m, tenant, container, key)
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
	wq := pol.WriteQuorum()

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

	var dataID [16]byte
	rand.Read(dataID[:])
	// The shard file of a streamed put (a hash: not made for the others).
	var shard driver.Shard
	committed := make([]bool, pol.SetSize()) // the drives holding the put's shard file
	stored := false
	var dropStriped func()      // remove a striped put's shard files
	var doneStriped func() bool // remove its stripe intent; true if a part missed a drive
	defer func() {
		if !stored {
			e.deleteShards(ctx, drives, shard, committed)
			if dropStriped != nil {
				dropStriped()
			}
		}
	}()
	digest, release := newETagHash(!inline)
	defer release()
	var inlineShards [][]byte
	ok := committed // the drives the record goes to
	if inline {
		inlineShards, rec.Size, err = e.putInline(ctx, codec, len(drives), head, digest)
		rec.IsInline = true
		ok = present(drives)
	} else if width := stripeWidth(m); width > 1 && (opts.Size < 0 || opts.Size > stripeChunkStripes*e.cfg.StripeSize) {
		// Large: striped over width PGs (stripe.go); the key's own
		// PG's drives hold the records.
		e.setStriping(&rec, m, width)
		ok = present(drives) // the records; no shard of the put need be on them
		rec.Parts, dropStriped, doneStriped, err = e.putStriped(ctx, codec, m, &rec, tenant, container, key, io.MultiReader(bytes.NewReader(head), body), opts.Size, maxSize, wq, digest)
		for _, p := range rec.Parts {
			rec.Size += p.Size
		}
	} else {
		shard = shardOf(tenant, container, key, pg, dataID)
		rec.Size, err = e.putStreamed(ctx, codec, drives, derrs, shard, io.MultiReader(bytes.NewReader(head), body), opts.Size, maxSize, wq, digest, committed)
		if err == nil {
			rec.Parts = []part{{DataID: dataID, Size: rec.Size}}
		}
	}
	if err != nil {
		return ArtifactInfo{}, err
	}
	if opts.Size >= 0 && rec.Size != opts.Size {
		return ArtifactInfo{}, fmt.Errorf("%w: got %d bytes, want %d", ErrIncompleteBody, rec.Size, opts.Size)
	}
	sum := digest.Sum(nil)
	if opts.MD5 != nil && !bytes.Equal(sum, opts.MD5) {
		return ArtifactInfo{}, ErrBadDigest
	}
	if opts.AfterBody != nil {
		extra, err := opts.AfterBody()
		if err == nil && metadataSize(extra)+metadataSize(rec.Metadata) > MaxMetadataSize {
			err = ErrMetadataTooLarge
		}
		if err != nil {
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
	if len(rec.Parts) == 1 {
		rec.Parts[0].ETag = rec.ETag
	}
	if opts.etag != "" {
		rec.ETag = opts.etag
	}
	rec.Marker = opts.marker
	if opts.Retention != nil {
		meta := make(map[string]string, len(rec.Metadata)+3)
		maps.Copy(meta, rec.Metadata)
		opts.Retention.setIn(meta)
		rec.Metadata = meta
	}

	if opts.Condition != nil {
		unlock, err := e.checkCondition(ctx, tenant, container, key, opts.Condition)
		if err != nil {
			return ArtifactInfo{}, err
		}
		defer unlock()
	}
	version, now := e.newVersion()
	rec.Version, rec.Modified = version, now.UnixNano()
	if opts.modified != 0 {
		rec.Modified = opts.modified
	}
	ikey := key
	if vid == newVersionSlot {
		vid = versionIDOf(version)
	}
	if vid != "" {
		ikey = versionKey(key, vid)
	}
	w := e.artifactWrite(tenant, container, ikey, drives, wq)
	replaced, err := w.latest(ctx, &rec, inlineShards, ok)
	if err != nil {
		// Records that landed may still be served (rolled forward by a
		// read): keep the shard files they name.
		stored = errors.Is(err, errRecordsLeft)
		return ArtifactInfo{}, err
	}
	stored = true
	if w.short || doneStriped != nil && doneStriped() {
		// Acknowledged on a quorum with a shard or record left behind
		// (a drive offline, failing, or too slow to commit in time):
		// one spare fewer until healed, so the healer is told now,
		// not when a read or the scanner next meets it.
		e.queueHealWritten(HealItem{tenant, container, ikey})
	}
	rb, ra := liveSize(replaced)
	e.usage(tenant, rec.Size-rb, 1-ra)
	info := e.info(tenant, container, key, &rec)
	info.VersionID = vid
	return info, nil
}

// putInline encodes head, a whole small body, into n shards, one per drive
// of the set, kept in memory for the drives' records.
func (e *Engine) putInline(ctx context.Context, codec *erasure.Codec, n int, head []byte, digest hash.Hash) ([][]byte, int64, error) {
	if size := int64(len(head)); size > 0 && size < codec.Layout(size).StripeSize {
		// In memory and synchronous: Encode's goroutines and stripe
		// buffers cost more than the coding (bench/RESULTS.md).
		shards, err := codec.EncodeBytes(head)
		if err != nil {
			return nil, 0, fmt.Errorf("engine: put inline: %w", err)
		}
		if digest != nil { // nil: a read's write-back (read.go) needs no ETag
			digest.Write(head)
		}
		return shards, size, nil
	}
	bufs := make([]bytes.Buffer, n)
	ws := make([]io.Writer, n)
	for j := range ws {
		ws[j] = &bufs[j]
	}
	res, err := codec.Encode(ctx, bytes.NewReader(head), ws, erasure.EncodeOptions{Hash: digest, Size: int64(len(head))})
	if err != nil {
		return nil, 0, fmt.Errorf("engine: put inline: %w", err)
	}
	shards := make([][]byte, n)
	for j := range bufs {
		shards[j] = bufs[j].Bytes()
	}
	return shards, res.Size, nil
}

// putStreamed stores body in shard files (putShards) and returns its size.
// A body longer than size (if known, else than maxSize) fails with
// ErrIncompleteBody (ErrTooLarge); the caller then removes the shard files
// committed reports.
func (e *Engine) putStreamed(ctx context.Context, codec *erasure.Codec, drives []driver.Driver, derrs []error, shard driver.Shard, body io.Reader, size, maxSize int64, wq int, digest hash.Hash, committed []bool) (int64, error) {
	limit := maxSize
	if size >= 0 {
		limit = size
	}
	got, err := e.putShards(ctx, codec, drives, derrs, shard, io.LimitReader(body, limit+1), wq, digest, committed)
	switch {
	case err != nil:
		return 0, fmt.Errorf("engine: put pg %d: %w", shard.PG, err)
	case got > limit && size >= 0:
		return 0, ErrIncompleteBody
	case got > limit:
		return 0, ErrTooLarge
	}
	return got, nil
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

// Delete removes key by writing a deletion (a tombstone version) to its
// drives. Deleting a missing key succeeds, as in S3.
func (e *Engine) Delete(ctx context.Context, tenant, container, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return err
	}
	return e.tombstone(ctx, tenant, container, key)
}

// tombstone writes the deletion of key, whether or not its container
// exists (sweepContainer removes what a deleted container left).
func (e *Engine) tombstone(ctx context.Context, tenant, container, key string) error {
	m := e.mapFor(tenant, container)
	pg := pgOf(m, tenant, container, key)
	drives, _ := e.pgDrives(m, pg)
	version, now := e.newVersion()
	rec := record{Version: version, Deleted: true, Modified: now.UnixNano(), Data: m.Policy.Data, Parity: m.Policy.Parity, StripeSize: e.cfg.StripeSize, PG: pg}
	replaced, err := e.artifactWrite(tenant, container, key, drives, m.Policy.WriteQuorum()).latest(ctx, &rec, nil, present(drives))
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
	// Reserved are the reserved metadata entries the copy gets (none of
	// the source's are copied); Condition is PutOptions.Condition.
	Reserved  map[string]string
	Condition Condition
	// SourceVersionID, if set, copies that version of the source
	// ("null" included) instead of its newest.
	SourceVersionID string
	// Versioning is the destination container's versioning state.
	Versioning Versioning
	// Retention, if set, is the copy's object lock (lock.go).
	Retention *Retention
	// Source, if set, is the version to copy as Open or OpenVersion
	// returned it (the caller checked its conditions on it): Copy reads
	// it rather than opening srcKey again, so the copy is of that very
	// version (SourceVersionID is then unused).
	Source *Artifact
	// Digest, if set, is written every byte copied as it streams (a
	// checksum of the copy; its Write must not fail or retain p).
	// AfterBody is PutOptions.AfterBody: called after the last byte, its
	// entries are added to the copy's metadata.
	Digest    io.Writer
	AfterBody func() (map[string]string, error)
}

// Copy stores the newest version of srcKey in srcContainer as dstKey in
// dstContainer, both of tenant. Copying onto itself makes a new version.
func (e *Engine) Copy(ctx context.Context, tenant, srcContainer, srcKey, dstContainer, dstKey string, opts CopyOptions) (ArtifactInfo, error) {
	src := opts.Source
	if src == nil {
		var err error
		if src, err = e.OpenVersion(ctx, tenant, srcContainer, srcKey, opts.SourceVersionID); err != nil {
			return ArtifactInfo{}, err
		}
	}
	put := PutOptions{Size: src.Info.Size, ContentType: src.Info.ContentType, Metadata: withoutReserved(src.Info.Metadata),
		Condition: opts.Condition, Versioning: opts.Versioning, Retention: opts.Retention, AfterBody: opts.AfterBody}
	if opts.ReplaceMetadata {
		put.ContentType, put.Metadata = opts.ContentType, opts.Metadata
	}
	put.Metadata = withEntries(put.Metadata, opts.Reserved)
	r := src.Reader(ctx, 0, src.Info.Size)
	defer r.Close()
	var body io.Reader = r
	if opts.Digest != nil {
		body = io.TeeReader(r, opts.Digest)
	}
	return e.Put(ctx, tenant, dstContainer, dstKey, body, put)
}
