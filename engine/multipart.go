package engine

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
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
	if err := e.writeRecordsAt(ctx, uploadKey(tenant, container, key, uploadID), tenant, container, key, drives, &rec, nil, ok, m.Policy.WriteQuorum()); err != nil {
		return "", fmt.Errorf("engine: create upload: %w", err)
	}
	return uploadID, nil
}

// upload reads an upload's record from its placement group.
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

// readNewest reads the newest record under ikey from drives, needing k
// answers; driver.ErrNotFound if none holds one.
func (e *Engine) readNewest(ctx context.Context, drives []driver.Driver, ikey string, k int) (*record, error) {
	recs, answered := e.readRecords(ctx, drives, ikey)
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
	up, drives, err := e.upload(ctx, tenant, container, key, uploadID)
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
	if _, _, err := e.upload(ctx, tenant, container, key, uploadID); err != nil {
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
	pkey := partKey(tenant, container, uploadID, n)
	res := e.putRecords(ctx, pkey, drives, &rec, nil, committed)
	replaced := replacedOf(res)
	if err := e.writeRecordsRes(ctx, pkey, tenant, container, key, drives, &rec, res, wq); err != nil {
		e.deleteShards(ctx, drives, shard, committed)
		return PartInfo{}, err
	}
	rb, _ := liveSize(replaced)
	e.usage(tenant, size-rb, 0)
	return PartInfo{Number: n, Size: size, ETag: etag, Modified: time.Unix(0, rec.Modified), Metadata: meta}, nil
}

// listNewest returns up to limit records under prefix sorting after after,
// merged across drives (newest version per key), in key order. Each drive
// is asked for limit+1 records, which is enough: a key among the first
// limit of the union is among the first limit of every drive holding it.
func (e *Engine) listNewest(ctx context.Context, drives []driver.Driver, prefix, after string, limit int, k int) ([]driver.Record, []*record, bool, error) {
	type entry struct {
		raw driver.Record
		rec *record
	}
	newest := map[string]entry{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	answered := 0
	for _, d := range drives {
		if d == nil {
			continue
		}
		wg.Go(func() {
			recs, err := d.ListRecords(ctx, prefix, after, limit+1)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				return
			}
			answered++
			for _, raw := range recs {
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
		})
	}
	wg.Wait()
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
	up, drives, err := e.upload(ctx, tenant, container, key, uploadID)
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

// CompleteUpload assembles the listed parts, in ascending part order, into
// key's newest version. Every part but the last must be at least
// MinPartSize bytes. The ETag is S3's: the MD5 of the parts' binary MD5s,
// then "-" and the part count. finish, if set, sees the upload and the parts chosen (with
// the metadata their uploads stored) before the artifact becomes visible;
// the entries it returns are added to the artifact's metadata, and an error
// fails the completion, leaving the upload as it was.
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
	raws, recs, err := e.allParts(ctx, tenant, container, uploadID, drives, up.Data)
	if err != nil {
		return ArtifactInfo{}, err
	}
	version, now := e.newVersion()
	rec := record{
		Version: version, ContentType: up.ContentType, Metadata: up.Metadata, Modified: now.UnixNano(),
		Data: up.Data, Parity: up.Parity, StripeSize: up.StripeSize, PG: up.PG,
	}
	etags := md5.New()
	used := map[int]bool{}
	for _, cp := range parts {
		p, ok := recs[cp.Number]
		if !ok || strings.Trim(cp.ETag, `"`) != p.ETag || len(p.Parts) != 1 {
			return ArtifactInfo{}, fmt.Errorf("%w: part %d", ErrInvalidPart, cp.Number)
		}
	}
	for i, cp := range parts {
		p := recs[cp.Number]
		if p.Size < MinPartSize && i != len(parts)-1 {
			return ArtifactInfo{}, fmt.Errorf("%w: part %d is %d bytes", ErrEntityTooSmall, cp.Number, p.Size)
		}
		sum, _ := hex.DecodeString(p.ETag)
		etags.Write(sum)
		rec.Size += p.Size
		rec.Parts = append(rec.Parts, p.Parts[0])
		used[cp.Number] = true
	}
	rec.ETag = fmt.Sprintf("%x-%d", etags.Sum(nil), len(parts))
	if finish != nil {
		chosen := make([]PartInfo, len(parts))
		for i, cp := range parts {
			p := recs[cp.Number]
			chosen[i] = PartInfo{Number: cp.Number, Size: p.Size, ETag: p.ETag, Modified: time.Unix(0, p.Modified), Metadata: p.Metadata}
		}
		u := Upload{Key: key, ID: uploadID, Initiated: time.Unix(0, up.Modified), ContentType: up.ContentType, Metadata: up.Metadata}
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
	ok := make([]bool, len(drives))
	for j := range ok {
		ok[j] = true
	}
	replaced, err := e.writeLatest(ctx, tenant, container, key, drives, &rec, nil, ok, max(up.Data, up.Parity+1))
	if err != nil {
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
	// The upload is done: forget its records, and the data of unused parts.
	gctx := context.WithoutCancel(ctx)
	for n, raw := range raws {
		if !used[n] {
			e.dropPart(gctx, tenant, container, key, drives, recs[n])
		}
		e.deleteRecord(gctx, drives, raw.Key, raw.Version)
	}
	e.deleteRecord(gctx, drives, uploadKey(tenant, container, key, uploadID), up.Version)
	return e.info(tenant, container, key, &rec), nil
}

// AbortUpload discards an upload and all its parts.
func (e *Engine) AbortUpload(ctx context.Context, tenant, container, key, uploadID string) error {
	unlock := e.lockUpload(uploadID)
	defer unlock()
	up, drives, err := e.upload(ctx, tenant, container, key, uploadID)
	if err != nil {
		return err
	}
	raws, recs, err := e.allParts(ctx, tenant, container, uploadID, drives, up.Data)
	if err != nil {
		return err
	}
	// Forget the upload first, so no new part can be added.
	e.deleteRecord(ctx, drives, uploadKey(tenant, container, key, uploadID), up.Version)
	var inParts int64
	for n, raw := range raws {
		inParts += recs[n].Size
		e.dropPart(ctx, tenant, container, key, drives, recs[n])
		e.deleteRecord(ctx, drives, raw.Key, raw.Version)
	}
	e.usage(tenant, -inParts, 0)
	return nil
}

func (e *Engine) dropPart(ctx context.Context, tenant, container, key string, drives []driver.Driver, p *record) {
	for _, pt := range p.Parts {
		committed := make([]bool, len(drives))
		for j, d := range drives {
			committed[j] = d != nil
		}
		e.deleteShards(ctx, drives, shardOf(tenant, container, key, p.PG, pt.DataID), committed)
	}
}

// deleteRecord removes ikey's record of version v from every drive.
func (e *Engine) deleteRecord(ctx context.Context, drives []driver.Driver, ikey string, v driver.Version) {
	var wg sync.WaitGroup
	for j, d := range drives {
		if d == nil {
			continue
		}
		wg.Go(func() {
			err := d.DeleteRecord(ctx, ikey, v)
			if err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
				e.log.Warn("record delete failed", "shard", j, "err", err)
			}
		})
	}
	wg.Wait()
}

// ListUploads returns up to limit uploads in progress in a container whose
// keys start with prefix and sort after after (or equal after with an
// upload id above afterID), in key then id order.
func (e *Engine) ListUploads(ctx context.Context, tenant, container, prefix, after, afterID string, limit int) ([]Upload, bool, error) {
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return nil, false, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	m := e.cfg.Topology.Map()
	var drives []driver.Driver
	for _, dr := range m.Drives {
		if d, err := e.cfg.Topology.Drive(dr.ID); err == nil {
			drives = append(drives, d)
		}
	}
	base := uploadPrefix(tenant, container)
	start := ""
	if after != "" {
		start = base + after + "\x00" + afterID
		if afterID == "" {
			start = base + after + "\x00\xff"
		}
	}
	raws, recs, truncated, err := e.listNewest(ctx, drives, base+prefix, start, limit, len(drives)-m.Policy.Parity)
	if err != nil {
		return nil, false, err
	}
	ups := make([]Upload, 0, len(raws))
	for i, raw := range raws {
		key, id, _ := strings.Cut(raw.Key[len(base):], "\x00")
		ups = append(ups, Upload{Key: key, ID: id, Initiated: time.Unix(0, recs[i].Modified), ContentType: recs[i].ContentType, Metadata: recs[i].Metadata})
	}
	return ups, truncated, nil
}
