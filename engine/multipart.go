package engine

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// Multipart uploads.
//
// An upload and each of its parts are records in the index of the drives
// of the final key's placement group, under their own key spaces (which
// sort apart from artifacts, so listings never see them):
//
//	upload: "\x01U\x00" tenant "\x00" container "\x00" key "\x00" uploadID
//	part:   "\x01P\x00" tenant "\x00" container "\x00" uploadID "\x00" %05d
//
// A part is erasure-coded into shard files exactly like an artifact's data,
// named after the final key and a random data id. Completing an upload
// writes the artifact's record listing the parts' data ids: no byte is
// copied. Parts left out of the completed upload, and all parts of an
// aborted one, have their shard files deleted.
//
// # Crashes
//
// Every record write below goes to the k+m drives of the placement group
// and needs the write quorum max(k, m+1); a failed write is rolled back.
// A crash may stop any step after any single drive's write, so each step
// is safe to find half done, and the next one only starts once the one
// before is durable on a write quorum.
//
//   - CreateUpload writes the upload record. A crash leaves at most an
//     upload record nobody knows the id of (a few bytes, never listed as
//     an artifact).
//   - PutPart commits the part's shard files on a write quorum, then
//     writes the part record; replacing part n collects the shards of the
//     part it replaced only once the new record is on a write quorum. A
//     crash before the record leaves unreferenced shard files (garbage,
//     never read); during it, the listing of parts takes the newest record
//     of each part, whose shards are committed. A part whose data an
//     artifact record names (an upload completed by an older engine that
//     crashed before forgetting it) is not replaced: ErrNoSuchUpload.
//   - CompleteUpload first turns the upload record into a completion
//     marker: a newer version of the same record holding the final ETag,
//     size and the chosen parts' data ids (and their numbers). From then
//     on the upload takes no parts, is not listed, and every later
//     operation on it settles the completion before anything else. Then
//     it writes the artifact's record (the completion proper), then
//     deletes each part record and, for parts not in the artifact, their
//     shard files (record first: a crash in between leaks shard files,
//     never leaves a record naming deleted ones). The marker is kept as
//     the completed upload's tombstone, so a retried Complete answers with
//     the same result (see CompletedUploadRetention).
//   - Settling a marker reads the artifact's records as a read does
//     (chooseVersion). If the version served holds the marker's parts, the
//     completion happened ("done"): what clean-up is left is finished, and
//     a retried Complete with the same parts answers the artifact
//     (AbortUpload answers ErrNoSuchUpload and deletes nothing the
//     artifact holds). If a newer version (or a deletion) is served, the
//     completion happened and was overwritten, or lost to a later write
//     ("gone"): its parts are dropped and the marker removed. Else
//     the crash or failure came before the artifact's record reached a
//     read quorum ("pending"): a retried Complete completes again, an
//     Abort removes the stray artifact records of the marker's version
//     and aborts, and SweepUploads turns a marker pending for longer than
//     UploadCompletionGrace back into an ordinary upload.
//   - AbortUpload deletes the part records and their shards, then the
//     upload record, so a retried Abort after a crash finishes the job.
//     Whatever the upload's state, it never deletes a shard file that an
//     artifact record of the key on any drive that answered names: that
//     also covers uploads whose completion crashed under an older version
//     of this code, which wrote no marker.
//
// SweepUploads (run hourly by RunUploadSweeper) settles the markers
// nobody touches again: it finishes crashed clean-ups, removes markers of
// completions overwritten since or older than CompletedUploadRetention
// (24 h), and reverts pending ones after UploadCompletionGrace. Reverting
// needs every drive to answer, so that no drive that was away can hold
// enough of the artifact's record to serve it later.
//
// Usage accounting (Config.OnUsage) is approximate across crashes: the
// clean-up a settle finishes after a crash is not counted again.

// Multipart errors.
var (
	ErrNoSuchUpload     = errors.New("engine: no such upload")
	ErrInvalidPart      = errors.New("engine: invalid part")
	ErrInvalidPartOrder = errors.New("engine: parts not in ascending order")
	ErrEntityTooSmall   = errors.New("engine: part too small")
)

// Multipart limits, as S3.
const (
	MinPartSize = 5 << 20 // bytes, for every part but the last
	MaxPartSize = 5 << 30 // bytes
	MaxPartNum  = maxParts
)

func uploadKey(tenant, container, key, id string) string {
	return "\x01U\x00" + tenant + "\x00" + container + "\x00" + key + "\x00" + id
}

func uploadPrefix(tenant, container string) string {
	return "\x01U\x00" + tenant + "\x00" + container + "\x00"
}

func partPrefix(tenant, container, id string) string {
	return "\x01P\x00" + tenant + "\x00" + container + "\x00" + id + "\x00"
}

func partKey(tenant, container, id string, n int) string {
	return fmt.Sprintf("%s%05d", partPrefix(tenant, container, id), n)
}

// Upload describes a multipart upload in progress.
type Upload struct {
	Key         string
	ID          string
	Initiated   time.Time
	ContentType string
	Metadata    map[string]string
}

// PartInfo describes an uploaded part.
type PartInfo struct {
	Number   int
	Size     int64 // bytes
	ETag     string
	Modified time.Time
	Metadata map[string]string // what the part's PutOptions.AfterBody returned
}

// CompletePart names a part to assemble, with the ETag its upload returned.
type CompletePart struct {
	Number int
	ETag   string
}

// CreateUpload starts a multipart upload of key and returns its id. The
// content type and metadata of opts are those of the finished artifact.
func (e *Engine) CreateUpload(ctx context.Context, tenant, container, key string, opts PutOptions) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	if metadataSize(opts.Metadata)+len(opts.ContentType) > MaxMetadataSize {
		return "", ErrMetadataTooLarge
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return "", err
	}
	m := e.cfg.Topology.Map()
	pg := m.PGOf(tenant, container, key)
	drives, _ := e.pgDrives(m, pg)
	version, now := e.newVersion()
	var id [16]byte
	rand.Read(id[:])
	uploadID := hex.EncodeToString(id[:])
	rec := record{
		Version: version, ContentType: opts.ContentType, Metadata: opts.Metadata, Modified: now.UnixNano(),
		Data: m.Policy.Data, Parity: m.Policy.Parity, StripeSize: e.cfg.StripeSize, PG: pg,
	}
	ok := make([]bool, len(drives))
	for j := range ok {
		ok[j] = true
	}
	if err := e.recordWriteAt(uploadKey(tenant, container, key, uploadID), tenant, container, key, drives, m.Policy.WriteQuorum()).write(ctx, &rec, nil, ok); err != nil {
		return "", fmt.Errorf("engine: create upload: %w", err)
	}
	return uploadID, nil
}

// upload reads an upload's record from its placement group: an upload in
// progress or the marker of a completion (isMarker).
func (e *Engine) upload(ctx context.Context, tenant, container, key, id string) (*record, []driver.Driver, error) {
	if err := validKey(key); err != nil {
		return nil, nil, err
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return nil, nil, err
	}
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, nil, ErrNoSuchUpload
	}
	return e.uploadRecord(ctx, tenant, container, key, id)
}

// uploadRecord is upload without the name and container checks.
func (e *Engine) uploadRecord(ctx context.Context, tenant, container, key, id string) (*record, []driver.Driver, error) {
	m := e.cfg.Topology.Map()
	drives, _ := e.pgDrives(m, m.PGOf(tenant, container, key))
	rec, err := e.readNewest(ctx, drives, uploadKey(tenant, container, key, id), m.Policy.ReadQuorum())
	if errors.Is(err, driver.ErrNotFound) {
		return nil, nil, ErrNoSuchUpload
	}
	if err != nil {
		return nil, nil, err
	}
	if len(drives) != rec.Data+rec.Parity {
		return nil, nil, fmt.Errorf("%w: upload placed with %d+%d, map has %d drives", ErrReadQuorum, rec.Data, rec.Parity, len(drives))
	}
	return rec, drives, nil
}

// activeUpload is upload for operations on an upload in progress: a
// completed one (or one being completed) is ErrNoSuchUpload.
func (e *Engine) activeUpload(ctx context.Context, tenant, container, key, id string) (*record, []driver.Driver, error) {
	up, drives, err := e.upload(ctx, tenant, container, key, id)
	if err == nil && isMarker(up) {
		err = ErrNoSuchUpload
	}
	return up, drives, err
}

// readNewest reads the newest record under ikey from drives, needing k
// answers; driver.ErrNotFound if none holds one. It does not wait for
// drives slower than the straggler grace once k answered (readRecordsK).
func (e *Engine) readNewest(ctx context.Context, drives []driver.Driver, ikey string, k int) (*record, error) {
	recs, answered := e.readRecordsK(ctx, drives, ikey, k)
	if answered < k {
		return nil, fmt.Errorf("%w: %d of %d drives answered, need %d", ErrReadQuorum, answered, len(drives), k)
	}
	r := chooseVersion(recs, k)
	if r == nil || r.Deleted {
		return nil, driver.ErrNotFound
	}
	return r, nil
}

// PutPart stores part number n (1 to 10,000) of an upload. Uploading a
// number again replaces the part.
func (e *Engine) PutPart(ctx context.Context, tenant, container, key, uploadID string, n int, body io.Reader, opts PutOptions) (PartInfo, error) {
	if n < 1 || n > MaxPartNum {
		return PartInfo{}, fmt.Errorf("%w: part number %d", ErrInvalidPart, n)
	}
	if opts.Size > MaxPartSize {
		return PartInfo{}, fmt.Errorf("%w: %d bytes", ErrTooLarge, opts.Size)
	}
	up, drives, err := e.activeUpload(ctx, tenant, container, key, uploadID)
	if err != nil {
		return PartInfo{}, err
	}
	codec, err := e.codec(up.Data, up.Parity, up.StripeSize)
	if err != nil {
		return PartInfo{}, err
	}
	derrs := make([]error, len(drives))
	for j, d := range drives {
		if d == nil {
			derrs[j] = ErrUnknownDrive
		}
	}
	var dataID [16]byte
	rand.Read(dataID[:])
	shard := shardOf(tenant, container, key, up.PG, dataID)
	wq := max(up.Data, up.Parity+1)
	committed := make([]bool, len(drives))
	limit := int64(MaxPartSize)
	if opts.MaxSize > 0 {
		limit = min(limit, opts.MaxSize)
	}
	if opts.Size >= 0 {
		limit = opts.Size
	}
	digest, release := newETagHash(true)
	defer release()
	size, err := e.putShards(ctx, codec, drives, derrs, shard, io.LimitReader(body, limit+1), wq, digest, committed)
	if err != nil {
		return PartInfo{}, fmt.Errorf("engine: put part %d: %w", n, err)
	}
	sum := digest.Sum(nil)
	switch {
	case size > limit && opts.Size < 0:
		err = ErrTooLarge
	case opts.Size >= 0 && size != opts.Size:
		err = fmt.Errorf("%w: got %d bytes, want %d", ErrIncompleteBody, size, opts.Size)
	case opts.MD5 != nil && !bytes.Equal(sum, opts.MD5):
		err = ErrBadDigest
	}
	var meta map[string]string
	if err == nil && opts.AfterBody != nil {
		meta, err = opts.AfterBody()
		if err == nil && metadataSize(meta) > MaxMetadataSize {
			err = ErrMetadataTooLarge
		}
	}
	if err != nil {
		e.deleteShards(ctx, drives, shard, committed)
		return PartInfo{}, err
	}
	// The upload may have completed or been aborted while the data
	// streamed: check again under its lock, and commit the part under it.
	unlock := e.lockUpload(uploadID)
	defer unlock()
	if _, _, err := e.activeUpload(ctx, tenant, container, key, uploadID); err != nil {
		e.deleteShards(ctx, drives, shard, committed)
		return PartInfo{}, err
	}
	pkey := partKey(tenant, container, uploadID, n)
	if err := e.checkReplaceable(ctx, tenant, container, key, pkey, drives, up.Data); err != nil {
		e.deleteShards(ctx, drives, shard, committed)
		return PartInfo{}, err
	}
	version, now := e.newVersion()
	etag := hex.EncodeToString(sum)
	rec := record{
		Version: version, Size: size, ETag: etag, Modified: now.UnixNano(),
		Data: up.Data, Parity: up.Parity, StripeSize: up.StripeSize, PG: up.PG,
		Parts: []part{{DataID: dataID, Size: size, ETag: etag}}, Metadata: meta,
	}
	w := e.recordWriteAt(pkey, tenant, container, key, drives, wq)
	res, settle := w.put(ctx, &rec, nil, committed)
	replaced := replacedOf(res)
	err = w.finish(ctx, &rec, res)
	settle(err == nil)
	if err != nil {
		e.deleteShards(ctx, drives, shard, committed)
		return PartInfo{}, err
	}
	rb, _ := liveSize(replaced)
	e.usage(tenant, size-rb, 0)
	return PartInfo{Number: n, Size: size, ETag: etag, Modified: time.Unix(0, rec.Modified), Metadata: meta}, nil
}

// checkReplaceable fails with ErrNoSuchUpload if part record pkey, which a
// PutPart is about to replace (and whose shard files it then deletes),
// names data that an artifact record of key names: the upload was
// completed by an engine that wrote no completion marker and crashed
// before forgetting the upload.
func (e *Engine) checkReplaceable(ctx context.Context, tenant, container, key, pkey string, drives []driver.Driver, k int) error {
	olds, _ := e.readRecordsK(ctx, drives, pkey, k)
	if !slices.ContainsFunc(olds, func(r *record) bool { return r != nil }) {
		return nil
	}
	arecs, answered := e.readRecordsK(ctx, drives, indexPrefix(tenant, container)+key, k)
	if answered < k {
		return fmt.Errorf("%w: put part: %d of %d drives answered", ErrReadQuorum, answered, len(drives))
	}
	refs := partRefs(arecs)
	for _, r := range olds {
		if r != nil && slices.ContainsFunc(r.Parts, func(p part) bool { return refs[p.DataID] }) {
			return fmt.Errorf("%w: the upload was completed", ErrNoSuchUpload)
		}
	}
	return nil
}

// listNewest returns up to limit records under prefix sorting after after,
// merged across drives (newest version per key), in key order. Each drive
// is asked for limit+1 records, which is enough: a key among the first
// limit of the union is among the first limit of every drive holding it.
// It needs k drives to answer and does not wait for those slower than the
// straggler grace once k did (fanOut); see List for why the merge of any
// read quorum holds every key's newest version.
func (e *Engine) listNewest(ctx context.Context, drives []driver.Driver, prefix, after string, limit int, k int) ([]driver.Record, []*record, bool, error) {
	type listed struct {
		recs []driver.Record
		err  error
	}
	res, done := fanOut(ctx, e, len(drives), func(j int) bool { return drives[j] != nil }, k,
		func(ctx context.Context, j int) listed {
			recs, err := drives[j].ListRecords(ctx, prefix, after, limit+1)
			return listed{recs, err}
		},
		func(l listed) bool { return l.err == nil }, nil)
	type entry struct {
		raw driver.Record
		rec *record
	}
	newest := map[string]entry{}
	answered := 0
	for j, l := range res {
		if !done[j] || l.err != nil {
			continue
		}
		answered++
		for _, raw := range l.recs {
			// Listed data may be cut after the record's head.
			r, err := unmarshalRecord(raw.Data)
			if raw.Truncated {
				r, err = unmarshalHead(raw.Data)
			}
			if err != nil {
				continue
			}
			if cur, ok := newest[raw.Key]; !ok || r.Version.Compare(cur.rec.Version) > 0 {
				newest[raw.Key] = entry{raw, r}
			}
		}
	}
	if answered < k {
		return nil, nil, false, fmt.Errorf("%w: list: %d of %d drives answered", ErrReadQuorum, answered, len(drives))
	}
	keys := slices.Sorted(maps.Keys(newest))
	truncated := len(keys) > limit
	keys = keys[:min(len(keys), limit)]
	raws := make([]driver.Record, len(keys))
	recs := make([]*record, len(keys))
	for i, key := range keys {
		raws[i], recs[i] = newest[key].raw, newest[key].rec
	}
	return raws, recs, truncated, nil
}

// ListParts returns up to limit parts of an upload numbered above after.
func (e *Engine) ListParts(ctx context.Context, tenant, container, key, uploadID string, after, limit int) ([]PartInfo, bool, error) {
	up, drives, err := e.activeUpload(ctx, tenant, container, key, uploadID)
	if err != nil {
		return nil, false, err
	}
	if limit <= 0 || limit > MaxPartNum {
		limit = 1000
	}
	start := ""
	if after > 0 {
		start = partKey(tenant, container, uploadID, after)
	}
	prefix := partPrefix(tenant, container, uploadID)
	raws, recs, truncated, err := e.listNewest(ctx, drives, prefix, start, limit, up.Data)
	if err != nil {
		return nil, false, err
	}
	parts := make([]PartInfo, 0, len(raws))
	for i, raw := range raws {
		var n int
		fmt.Sscanf(raw.Key[len(prefix):], "%d", &n)
		parts = append(parts, PartInfo{Number: n, Size: recs[i].Size, ETag: recs[i].ETag, Modified: time.Unix(0, recs[i].Modified)})
	}
	return parts, truncated, nil
}

// allParts returns every part record of an upload, by part number.
func (e *Engine) allParts(ctx context.Context, tenant, container, uploadID string, drives []driver.Driver, k int) (map[int]driver.Record, map[int]*record, error) {
	raws := map[int]driver.Record{}
	recs := map[int]*record{}
	prefix := partPrefix(tenant, container, uploadID)
	after := ""
	for {
		page, precs, truncated, err := e.listNewest(ctx, drives, prefix, after, 1000, k)
		if err != nil {
			return nil, nil, err
		}
		for i, raw := range page {
			var n int
			fmt.Sscanf(raw.Key[len(prefix):], "%d", &n)
			rec := precs[i]
			if raw.Truncated {
				// Only the head was listed: read the whole record.
				if rec, err = e.readNewest(ctx, drives, raw.Key, k); err != nil {
					return nil, nil, err
				}
			}
			raws[n], recs[n] = raw, rec
			after = raw.Key
		}
		if !truncated {
			return raws, recs, nil
		}
	}
}

// CompletedUploadRetention is how long the marker of a completed upload is
// kept, so that a retried CompleteUpload with the same parts answers with
// the completed artifact, as S3 allows, rather than ErrNoSuchUpload. It
// ends earlier when the artifact is overwritten or deleted: a retry then
// answers ErrNoSuchUpload (the completion is no longer what readers see).
// The marker is one small record per drive; SweepUploads removes expired
// ones.
const CompletedUploadRetention = 24 * time.Hour

// UploadCompletionGrace is how long SweepUploads leaves a completion marker
// whose artifact record never reached a read quorum (CompleteUpload
// crashed, or failed and could not undo its marker) before turning it
// back into an upload in progress. A retried CompleteUpload or an
// AbortUpload settles such a marker at once.
const UploadCompletionGrace = 15 * time.Minute

// partNumbersKey is the metadata entry of a completion marker listing the
// part numbers completed, comma-separated. No header name holds a NUL, so
// it cannot collide with the upload's own metadata.
const partNumbersKey = "\x00parts"

// isMarker reports whether an upload record is a completion marker.
func isMarker(up *record) bool { return up.ETag != "" }

// uploadOf describes an upload record, or a marker as the upload it was.
func uploadOf(key, id string, up *record) Upload {
	meta := up.Metadata
	if _, ok := meta[partNumbersKey]; ok {
		meta = maps.Clone(meta)
		delete(meta, partNumbersKey)
		if len(meta) == 0 {
			meta = nil
		}
	}
	return Upload{Key: key, ID: id, Initiated: time.Unix(0, up.Modified), ContentType: up.ContentType, Metadata: meta}
}

// versionTime returns the time a version was issued at.
func versionTime(v driver.Version) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(v[:8])))
}

// CompleteUpload assembles the listed parts, in ascending part order, into
// key's newest version. Every part but the last must be at least
// MinPartSize bytes. The ETag is S3's: the MD5 of the parts' binary MD5s,
// then "-" and the part count. finish, if set, sees the upload and the parts chosen (with
// the metadata their uploads stored) before the artifact becomes visible;
// the entries it returns are added to the artifact's metadata, and an error
// fails the completion, leaving the upload as it was.
//
// Completing an upload again with the same parts (a client's retry)
// returns the artifact the first completion made, for
// CompletedUploadRetention or until the artifact is overwritten; other
// parts fail with ErrInvalidPart. finish is not called then.
func (e *Engine) CompleteUpload(ctx context.Context, tenant, container, key, uploadID string, parts []CompletePart, finish func(Upload, []PartInfo) (map[string]string, error)) (ArtifactInfo, error) {
	if len(parts) == 0 || len(parts) > MaxPartNum {
		return ArtifactInfo{}, fmt.Errorf("%w: %d parts", ErrInvalidPart, len(parts))
	}
	for i := 1; i < len(parts); i++ {
		if parts[i].Number <= parts[i-1].Number {
			return ArtifactInfo{}, ErrInvalidPartOrder
		}
	}
	unlock := e.lockUpload(uploadID)
	defer unlock()
	up, drives, err := e.upload(ctx, tenant, container, key, uploadID)
	if err != nil {
		return ArtifactInfo{}, err
	}
	if isMarker(up) {
		s, err := e.settle(ctx, tenant, container, key, uploadID, up, drives)
		if err != nil {
			return ArtifactInfo{}, fmt.Errorf("engine: complete upload: %w", err)
		}
		switch s.state {
		case completionDone:
			if !markerHas(up, parts) {
				return ArtifactInfo{}, fmt.Errorf("%w: upload already completed with other parts", ErrInvalidPart)
			}
			return e.info(tenant, container, key, s.cur), nil
		case completionGone:
			return ArtifactInfo{}, ErrNoSuchUpload
		}
		// Pending: the completion never became visible, or it did and its
		// artifact was deleted since (which deleted the parts' data) and
		// the tombstone purged. Complete again only in the first case.
		lost, err := e.partsLost(ctx, tenant, container, key, up, drives)
		if err != nil {
			return ArtifactInfo{}, fmt.Errorf("engine: complete upload: %w", err)
		}
		if lost {
			if _, err := e.abort(ctx, tenant, container, key, uploadID, up, drives); err != nil {
				return ArtifactInfo{}, fmt.Errorf("engine: complete upload: %w", err)
			}
			return ArtifactInfo{}, ErrNoSuchUpload
		}
	}
	raws, recs, err := e.allParts(ctx, tenant, container, uploadID, drives, up.Data)
	if err != nil {
		return ArtifactInfo{}, err
	}
	u := uploadOf(key, uploadID, up)
	e.observe(up.Version) // the marker must be newer than the upload record
	version, now := e.newVersion()
	rec := record{
		Version: version, ContentType: u.ContentType, Metadata: u.Metadata, Modified: now.UnixNano(),
		Data: up.Data, Parity: up.Parity, StripeSize: up.StripeSize, PG: up.PG,
	}
	etags := md5.New()
	for _, cp := range parts {
		p, ok := recs[cp.Number]
		if !ok || strings.Trim(cp.ETag, `"`) != p.ETag || len(p.Parts) != 1 {
			return ArtifactInfo{}, fmt.Errorf("%w: part %d", ErrInvalidPart, cp.Number)
		}
	}
	numbers := make([]string, len(parts))
	for i, cp := range parts {
		p := recs[cp.Number]
		if p.Size < MinPartSize && i != len(parts)-1 {
			return ArtifactInfo{}, fmt.Errorf("%w: part %d is %d bytes", ErrEntityTooSmall, cp.Number, p.Size)
		}
		sum, _ := hex.DecodeString(p.ETag)
		etags.Write(sum)
		rec.Size += p.Size
		rec.Parts = append(rec.Parts, p.Parts[0])
		numbers[i] = strconv.Itoa(cp.Number)
	}
	rec.ETag = fmt.Sprintf("%x-%d", etags.Sum(nil), len(parts))
	if finish != nil {
		chosen := make([]PartInfo, len(parts))
		for i, cp := range parts {
			p := recs[cp.Number]
			chosen[i] = PartInfo{Number: cp.Number, Size: p.Size, ETag: p.ETag, Modified: time.Unix(0, p.Modified), Metadata: p.Metadata}
		}
		extra, err := finish(u, chosen)
		if err == nil && metadataSize(extra)+metadataSize(rec.Metadata) > MaxMetadataSize {
			err = ErrMetadataTooLarge
		}
		if err != nil {
			return ArtifactInfo{}, err
		}
		if len(extra) > 0 {
			merged := maps.Clone(rec.Metadata)
			if merged == nil {
				merged = map[string]string{}
			}
			maps.Copy(merged, extra)
			rec.Metadata = merged
		}
	}
	wq := max(up.Data, up.Parity+1)
	// Step 1: the marker. From here on the upload takes no part, and a
	// crash is settled by whoever touches the upload next.
	meta := maps.Clone(u.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[partNumbersKey] = strings.Join(numbers, ",")
	mk := record{
		Version: version, ETag: rec.ETag, Size: rec.Size, Parts: rec.Parts,
		ContentType: u.ContentType, Metadata: meta, Modified: up.Modified,
		Data: up.Data, Parity: up.Parity, StripeSize: up.StripeSize, PG: up.PG,
	}
	ukey := uploadKey(tenant, container, key, uploadID)
	if err := e.putQuorum(ctx, ukey, drives, &mk, wq); err != nil {
		return ArtifactInfo{}, fmt.Errorf("engine: complete upload: marker: %w", err)
	}
	// Step 2: the artifact.
	ok := make([]bool, len(drives))
	for j := range ok {
		ok[j] = true
	}
	gctx, gcancel := cleanupCtx(ctx)
	defer gcancel()
	replaced, err := e.artifactWrite(tenant, container, key, drives, wq).latest(ctx, &rec, nil, ok)
	if err != nil {
		// The write was rolled back: make the upload an upload in progress
		// again, unless a crash-like failure left the artifact visible
		// after all, which the settle then finishes.
		if rerr := e.revert(gctx, tenant, container, key, uploadID, &mk, drives); rerr != nil {
			e.log.Warn("complete upload: marker left for the sweeper", "err", rerr)
		}
		return ArtifactInfo{}, fmt.Errorf("engine: complete upload: %w", err)
	}
	// The parts were counted as they arrived; the artifact takes their
	// place (unused parts are dropped below).
	var inParts int64
	for _, p := range recs {
		inParts += p.Size
	}
	rb, ra := liveSize(replaced)
	e.usage(tenant, rec.Size-inParts-rb, 1-ra)
	// Step 3: forget the part records, and the data of unused parts. The
	// marker stays, for retries (CompletedUploadRetention).
	keep := map[[16]byte]bool{}
	for _, p := range rec.Parts {
		keep[p.DataID] = true
	}
	for n, raw := range raws {
		e.deleteRecord(gctx, drives, raw.Key, raw.Version)
		e.dropPart(gctx, tenant, container, key, drives, recs[n], keep)
	}
	return e.info(tenant, container, key, &rec), nil
}

// markerHas reports whether a completion marker completed exactly parts.
func markerHas(mk *record, parts []CompletePart) bool {
	if len(parts) != len(mk.Parts) {
		return false
	}
	numbers := strings.Split(mk.Metadata[partNumbersKey], ",")
	for i, cp := range parts {
		if strings.Trim(cp.ETag, `"`) != mk.Parts[i].ETag {
			return false
		}
		if len(numbers) == len(parts) && numbers[i] != strconv.Itoa(cp.Number) {
			return false
		}
	}
	return true
}

// completion is what a completion marker's completion came to.
type completion int

const (
	// completionPending: the artifact's record of the completion did not
	// reach a read quorum and nothing newer is served.
	completionPending completion = iota
	// completionDone: the version of the artifact served is the
	// completion's; the marker is kept for retries.
	completionDone
	// completionGone: the completion happened but is no longer what is
	// served, or its marker expired; the marker was removed.
	completionGone
)

// settled is the outcome of settle.
type settled struct {
	state completion
	cur   *record // the artifact's version served, if any
	all   bool    // every drive answered
}

// settle looks at whether the completion marker mk made it into the
// artifact and finishes what the completion left: for a completion done,
// the artifact's record on the drives that lack it, the part records and
// the unused parts' shard files; for one overwritten since, also the
// marker. A pending completion is left as it is, for the caller to
// complete again, abort or revert.
func (e *Engine) settle(ctx context.Context, tenant, container, key, id string, mk *record, drives []driver.Driver) (settled, error) {
	ikey := indexPrefix(tenant, container) + key
	arecs, answered := e.readRecordsK(ctx, drives, ikey, mk.Data)
	if answered < mk.Data {
		return settled{}, fmt.Errorf("%w: settle upload: %d of %d drives answered", ErrReadQuorum, answered, len(drives))
	}
	cur := chooseVersion(arecs, mk.Data)
	s := settled{cur: cur, all: answered == len(drives)}
	switch {
	case cur != nil && !cur.Deleted && cur.PG == mk.PG && slices.EqualFunc(cur.Parts, mk.Parts, func(p, q part) bool { return p.DataID == q.DataID }):
		s.state = completionDone
		e.rollForward(ctx, tenant, container, key, drives, cur, arecs)
	case cur != nil && cur.Version.Compare(mk.Version) > 0:
		s.state = completionGone
	default:
		return s, nil
	}
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	if _, err := e.dropParts(ctx, tenant, container, key, id, drives, mk.Data, partRefs(arecs)); err != nil {
		return settled{}, err
	}
	if s.state == completionGone || e.cfg.Now().Sub(versionTime(mk.Version)) > CompletedUploadRetention {
		e.deleteRecord(ctx, drives, uploadKey(tenant, container, key, id), driver.Version{})
		s.state = completionGone
	}
	return s, nil
}

// rollForward writes cur, the artifact's version served, to the drives
// whose record is missing or older: a completion that crashed while its
// artifact record was being written reached some drives only.
func (e *Engine) rollForward(ctx context.Context, tenant, container, key string, drives []driver.Driver, cur *record, recs []*record) {
	ok := make([]bool, len(drives))
	need := false
	for j, r := range recs {
		if drives[j] != nil && (r == nil || r.Version.Compare(cur.Version) < 0) {
			ok[j], need = true, true
		}
	}
	if !need || cur.IsInline {
		return
	}
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	if err := e.artifactWrite(tenant, container, key, drives, 1).write(ctx, cur, nil, ok); err != nil {
		e.log.Debug("complete upload: artifact record not rolled forward; healing will", "err", err)
	}
}

// revert turns a pending completion marker back into an upload in
// progress: it removes the stray artifact records of the marker's version
// and writes the upload's record anew. A completion that turns out done
// or gone is settled instead, and one whose parts lost their data (see
// partsLost) is aborted. It needs every drive to answer: drives that
// did not could hold enough of the artifact's record to serve it once
// back, and an upload in progress may replace (and delete) parts.
func (e *Engine) revert(ctx context.Context, tenant, container, key, id string, mk *record, drives []driver.Driver) error {
	s, err := e.settle(ctx, tenant, container, key, id, mk, drives)
	if err != nil || s.state != completionPending {
		return err
	}
	if !s.all {
		return fmt.Errorf("%w: revert upload: not every drive answered", ErrReadQuorum)
	}
	if lost, err := e.partsLost(ctx, tenant, container, key, mk, drives); err != nil || lost {
		if lost {
			_, err = e.abort(ctx, tenant, container, key, id, mk, drives)
		}
		return err
	}
	e.removeStrays(ctx, indexPrefix(tenant, container)+key, drives, mk.Version)
	u := uploadOf(key, id, mk)
	e.observe(mk.Version)
	version, _ := e.newVersion()
	up := record{
		Version: version, ContentType: u.ContentType, Metadata: u.Metadata, Modified: mk.Modified,
		Data: mk.Data, Parity: mk.Parity, StripeSize: mk.StripeSize, PG: mk.PG,
	}
	return e.putQuorum(ctx, uploadKey(tenant, container, key, id), drives, &up, max(mk.Data, mk.Parity+1))
}

// partsLost reports whether some part of completion marker mk has its
// shard files on fewer than k drives: the completion happened, and the
// artifact was deleted or overwritten since, deleting them. A completion
// that did not happen leaves them on a write quorum. The drives are asked
// in parallel, and those that miss the straggler grace once all but
// Parity answered are not waited for (fanOut); it fails with
// ErrReadQuorum if the drives that answered cannot tell.
func (e *Engine) partsLost(ctx context.Context, tenant, container, key string, mk *record, drives []driver.Driver) (bool, error) {
	live := 0
	for _, d := range drives {
		if d != nil {
			live++
		}
	}
	type probe struct {
		found bool
		err   error
	}
	for _, p := range mk.Parts {
		shard := shardOf(tenant, container, key, mk.PG, p.DataID)
		res, done := fanOut(ctx, e, len(drives), func(j int) bool { return drives[j] != nil }, max(1, live-mk.Parity),
			func(ctx context.Context, j int) probe {
				rc, err := drives[j].ReadShard(ctx, shard, 0, 0)
				if err == nil {
					rc.Close()
				}
				return probe{found: err == nil, err: err}
			},
			func(probe) bool { return true }, nil)
		missing, present := 0, 0
		var first error
		for j, r := range res {
			switch {
			case !done[j]:
			case r.found:
				present++
			case errors.Is(r.err, driver.ErrNotFound):
				missing++
			case first == nil:
				first = r.err
			}
		}
		if missing > len(drives)-mk.Data {
			return true, nil
		}
		if present+missing < live && present < mk.Data {
			if first == nil {
				first = fmt.Errorf("%w: %d of %d drives answered", ErrReadQuorum, present+missing, len(drives))
			}
			return false, fmt.Errorf("engine: look for part data: %w", first)
		}
	}
	return false, nil
}

// removeStrays deletes ikey's records of version v, the remains of a
// completion's artifact write that never reached a read quorum.
func (e *Engine) removeStrays(ctx context.Context, ikey string, drives []driver.Driver, v driver.Version) {
	e.deleteRecord(ctx, drives, ikey, v)
}

// putQuorum writes an upload record (an upload's or its marker) to every
// drive and fails, rolled back, unless wq drives took it (keepShards: it
// collects no shard files, as a marker names the parts' data, which the
// record it replaces must not lose).
func (e *Engine) putQuorum(ctx context.Context, ikey string, drives []driver.Driver, rec *record, wq int) error {
	ok := make([]bool, len(drives))
	for j := range ok {
		ok[j] = true
	}
	w := &recordWrite{e: e, ikey: ikey, drives: drives, wq: wq, keepShards: true}
	return w.write(ctx, rec, nil, ok)
}

// partRefs returns the data ids that the live artifact records in recs
// name: shard files no upload clean-up may delete.
func partRefs(recs []*record) map[[16]byte]bool {
	keep := map[[16]byte]bool{}
	for _, r := range recs {
		if r == nil || r.Deleted {
			continue
		}
		for _, p := range r.Parts {
			keep[p.DataID] = true
		}
	}
	return keep
}

// dropParts deletes every part record of an upload and the shard files of
// the parts whose data ids keep does not hold, and returns the bytes the
// parts held. Each record goes before its shard files: a crash in between
// leaves unreferenced files, never a record naming deleted ones.
func (e *Engine) dropParts(ctx context.Context, tenant, container, key, id string, drives []driver.Driver, k int, keep map[[16]byte]bool) (int64, error) {
	raws, recs, err := e.allParts(ctx, tenant, container, id, drives, k)
	if err != nil {
		return 0, err
	}
	var size int64
	for n, raw := range raws {
		size += recs[n].Size
		e.deleteRecord(ctx, drives, raw.Key, raw.Version)
		e.dropPart(ctx, tenant, container, key, drives, recs[n], keep)
	}
	return size, nil
}

// AbortUpload discards an upload and all its parts. An upload already
// completed is ErrNoSuchUpload, and its artifact is left alone; one whose
// completion crashed before its artifact became visible is aborted. No
// shard file an artifact record of key names is deleted.
func (e *Engine) AbortUpload(ctx context.Context, tenant, container, key, uploadID string) error {
	unlock := e.lockUpload(uploadID)
	defer unlock()
	up, drives, err := e.upload(ctx, tenant, container, key, uploadID)
	if err != nil {
		return err
	}
	if isMarker(up) {
		s, err := e.settle(ctx, tenant, container, key, uploadID, up, drives)
		if err != nil {
			return fmt.Errorf("engine: abort upload: %w", err)
		}
		if s.state != completionPending {
			return ErrNoSuchUpload
		}
	}
	inParts, err := e.abort(ctx, tenant, container, key, uploadID, up, drives)
	if err != nil {
		return fmt.Errorf("engine: abort upload: %w", err)
	}
	e.usage(tenant, -inParts, 0)
	return nil
}

// abort removes an upload in progress, or one with a pending completion
// marker (and that completion's stray artifact records): the part records
// and the shard files no artifact record of key names, then the upload's
// record, so that a crash leaves an upload to abort again.
func (e *Engine) abort(ctx context.Context, tenant, container, key, id string, up *record, drives []driver.Driver) (int64, error) {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	ikey := indexPrefix(tenant, container) + key
	if isMarker(up) {
		e.removeStrays(ctx, ikey, drives, up.Version)
	}
	arecs, answered := e.readRecordsK(ctx, drives, ikey, up.Data)
	if answered < up.Data {
		return 0, fmt.Errorf("%w: %d of %d drives answered", ErrReadQuorum, answered, len(drives))
	}
	size, err := e.dropParts(ctx, tenant, container, key, id, drives, up.Data, partRefs(arecs))
	if err != nil {
		return 0, err
	}
	e.deleteRecord(ctx, drives, uploadKey(tenant, container, key, id), driver.Version{})
	return size, nil
}

// dropPart deletes the shard files of part record p whose data ids keep
// does not hold.
func (e *Engine) dropPart(ctx context.Context, tenant, container, key string, drives []driver.Driver, p *record, keep map[[16]byte]bool) {
	for _, pt := range p.Parts {
		if keep[pt.DataID] {
			continue
		}
		committed := make([]bool, len(drives))
		for j, d := range drives {
			committed[j] = d != nil
		}
		e.deleteShards(ctx, drives, shardOf(tenant, container, key, p.PG, pt.DataID), committed)
	}
}

// deleteRecord removes ikey's record of version v (of any version if v is
// zero) from every drive. It returns once a majority answered and the
// others had the straggler grace (fanCleanup); the rest go on in the
// background.
func (e *Engine) deleteRecord(ctx context.Context, drives []driver.Driver, ikey string, v driver.Version) {
	mask := make([]bool, len(drives))
	for j, d := range drives {
		mask[j] = d != nil
	}
	e.fanCleanup(ctx, mask, func(ctx context.Context, j int) error {
		err := drives[j].DeleteRecord(ctx, ikey, v)
		if err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
			e.log.Warn("record delete failed", "shard", j, "err", err)
		}
		return err
	})
}

// ListUploads returns up to limit uploads in progress in a container whose
// keys start with prefix and sort after after (or equal after with an
// upload id above afterID), in key then id order. Completed uploads (see
// CompletedUploadRetention) are not listed.
func (e *Engine) ListUploads(ctx context.Context, tenant, container, prefix, after, afterID string, limit int) ([]Upload, bool, error) {
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return nil, false, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	m := e.cfg.Topology.Map()
	drives := e.allDrives(m)
	base := uploadPrefix(tenant, container)
	start := ""
	if after != "" {
		start = base + after + "\x00" + afterID
		if afterID == "" {
			start = base + after + "\x00\xff"
		}
	}
	var ups []Upload
	for {
		raws, recs, truncated, err := e.listNewest(ctx, drives, base+prefix, start, limit, len(drives)-m.Policy.Parity)
		if err != nil {
			return nil, false, err
		}
		for i, raw := range raws {
			if len(ups) == limit {
				return ups, true, nil
			}
			start = raw.Key
			if isMarker(recs[i]) || recs[i].Deleted {
				continue
			}
			key, id, _ := strings.Cut(raw.Key[len(base):], "\x00")
			ups = append(ups, uploadOf(key, id, recs[i]))
		}
		if !truncated {
			return ups, false, nil
		}
	}
}

// allDrives returns the drives of m the topology provides.
func (e *Engine) allDrives(m *placement.Map) []driver.Driver {
	var drives []driver.Driver
	for _, dr := range m.Drives {
		if d, err := e.cfg.Topology.Drive(dr.ID); err == nil && d != nil {
			drives = append(drives, d)
		}
	}
	return drives
}

// DefaultUploadSweepInterval is how often RunUploadSweeper runs
// SweepUploads.
const DefaultUploadSweepInterval = time.Hour

// SweepUploads walks the multipart upload records of every container and
// settles the completion markers: it finishes the clean-up of completions
// that crashed, removes the markers of completions overwritten since or
// older than CompletedUploadRetention, and turns a marker whose completion
// never became visible back into an upload in progress once it is older
// than UploadCompletionGrace (or aborts it if its container is gone). It
// returns how many markers it looked at and the first error; a marker it
// could not settle is tried again on the next call.
func (e *Engine) SweepUploads(ctx context.Context) (int, error) {
	m := e.cfg.Topology.Map()
	drives := e.allDrives(m)
	const base = "\x01U\x00"
	after := ""
	seen := 0
	var first error
	for {
		raws, recs, truncated, err := e.listNewest(ctx, drives, base, after, 1000, len(drives)-m.Policy.Parity)
		if err != nil {
			return seen, fmt.Errorf("engine: sweep uploads: %w", err)
		}
		for i, raw := range raws {
			after = raw.Key
			if !isMarker(recs[i]) {
				continue
			}
			f := strings.SplitN(raw.Key[len(base):], "\x00", 4)
			if len(f) != 4 {
				continue
			}
			seen++
			if err := e.sweepUpload(ctx, f[0], f[1], f[2], f[3]); err != nil && first == nil {
				first = fmt.Errorf("engine: sweep upload %s: %w", f[3], err)
			}
		}
		if !truncated || ctx.Err() != nil {
			return seen, first
		}
	}
}

func (e *Engine) sweepUpload(ctx context.Context, tenant, container, key, id string) error {
	unlock := e.lockUpload(id)
	defer unlock()
	mk, drives, err := e.uploadRecord(ctx, tenant, container, key, id)
	if errors.Is(err, ErrNoSuchUpload) {
		return nil
	}
	if err != nil {
		return err
	}
	if !isMarker(mk) {
		return nil
	}
	s, err := e.settle(ctx, tenant, container, key, id, mk, drives)
	if err != nil || s.state != completionPending || e.cfg.Now().Sub(versionTime(mk.Version)) < UploadCompletionGrace {
		return err
	}
	_, err = e.cfg.Containers.Container(ctx, tenant, container)
	if errors.Is(err, ErrNoSuchContainer) {
		_, err = e.abort(ctx, tenant, container, key, id, mk, drives)
		return err
	}
	if err != nil {
		return err
	}
	return e.revert(ctx, tenant, container, key, id, mk, drives)
}

// RunUploadSweeper calls SweepUploads every interval (0 means
// DefaultUploadSweepInterval), and once a minute after it starts, until
// ctx ends.
func (e *Engine) RunUploadSweeper(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultUploadSweepInterval
	}
	wait := min(interval, time.Minute)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = interval
		sctx, cancel := context.WithTimeout(ctx, interval)
		n, err := e.SweepUploads(sctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			e.log.Warn("upload sweep incomplete; will retry", "markers", n, "err", err)
		}
	}
}
