package engine

import (
	"bytes"
	"context"
	"crypto/rand"
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
// of the final key's placement group in the map current at its creation
// (which it keeps across map changes: multipart_move.go), under their own
// key spaces (which sort apart from artifacts, so listings never see
// them):
//
//	upload: "\x01U\x00" tenant "\x00" container "\x00" key "\x00" uploadID
//	part:   "\x01P\x00" tenant "\x00" container "\x00" uploadID ["." gen] "\x00" %05d
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
// Usage accounting (Config.OnUsage) counts an upload in progress as one
// artifact and its parts' bytes as they arrive. It is approximate across
// crashes: the clean-up a settle finishes after a crash is not counted
// again.

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
	// The stamp comes from the store's synced view: a node lagging
	// behind a deletion and re-creation of the name would otherwise stamp
	// the deleted container's time on an upload of the new one (review
	// 24d R2).
	info, err := e.syncedContainer(ctx, tenant, container)
	if err != nil {
		return "", err
	}
	m := e.mapFor(tenant, container)
	pg := m.PGOf(tenant, container, key)
	drives, _ := e.pgDrives(m, pg)
	version, now := e.newVersion()
	var id [16]byte
	rand.Read(id[:])
	uploadID := hex.EncodeToString(id[:])
	meta := maps.Clone(opts.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[uploadEpochKey] = strconv.FormatUint(uint64(m.Epoch), 10) // the map it lives in (findUpload)
	meta[uploadContainerKey] = strconv.FormatInt(info.Created.UnixNano(), 10)
	rec := record{
		Version: version, ContentType: opts.ContentType, Metadata: meta, Modified: now.UnixNano(),
		Data: m.Policy.Data, Parity: m.Policy.Parity, StripeSize: e.cfg.StripeSize, PG: pg,
	}
	// Striped like a Put: the seed drawn here places part n in the
	// ((n-1) mod width)'th of its PGs (PutPart), where the completed
	// artifact's record wants it when parts 1, 2, ... are completed in
	// order.
	e.setStriping(&rec, m, stripeWidth(m))
	if err := e.recordWriteAt(uploadKey(tenant, container, key, uploadID), tenant, container, key, drives, m.Policy.WriteQuorum()).write(ctx, &rec, nil, present(drives)); err != nil {
		return "", fmt.Errorf("engine: create upload: %w", err)
	}
	// An upload in progress counts as an artifact, so that a tenant's
	// artifact quota bounds its open uploads too; Complete turns it into
	// the artifact, Abort removes it.
	e.usage(tenant, 0, 1)
	return uploadID, nil
}

// upload reads an upload's record from the set it lives in (findUpload):
// an upload in progress or the marker of a completion (isMarker).
func (e *Engine) upload(ctx context.Context, tenant, container, key, id string) (*record, uploadAt, error) {
	if err := validKey(key); err != nil {
		return nil, uploadAt{}, err
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return nil, uploadAt{}, err
	}
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, uploadAt{}, ErrNoSuchUpload
	}
	up, at, err := e.findUpload(ctx, tenant, container, key, id)
	if err != nil {
		return nil, uploadAt{}, err
	}
	if ok, err := e.inContainer(ctx, up, tenant, container); err != nil || !ok {
		if err == nil {
			err = ErrNoSuchUpload // a deleted container's (ATTACK24 F3)
		}
		return nil, uploadAt{}, err
	}
	return up, at, nil
}

// syncedContainer returns container's info as the store has it once
// synced with the cluster (Containers syncs; Container reads the node's
// own state, which may lag).
func (e *Engine) syncedContainer(ctx context.Context, tenant, container string) (ContainerInfo, error) {
	cs, err := e.cfg.Containers.Containers(ctx, tenant)
	if err != nil {
		return ContainerInfo{}, err
	}
	for _, c := range cs {
		if c.Name == container {
			return c, nil
		}
	}
	return ContainerInfo{}, fmt.Errorf("%w: %s/%s", ErrNoSuchContainer, tenant, container)
}

// inContainer reports whether upload record up belongs to the container
// of that name as it is now (ofContainer): checked against the node's
// own state, and if that says no, against the synced one, so that a node
// lagging behind a re-creation of the name does not refuse the new
// container's uploads (review 24d R2).
func (e *Engine) inContainer(ctx context.Context, up *record, tenant, container string) (bool, error) {
	if info, err := e.cfg.Containers.Container(ctx, tenant, container); err == nil && ofContainer(up, info.Created) {
		return true, nil
	}
	info, err := e.syncedContainer(ctx, tenant, container)
	if err != nil {
		return false, err
	}
	return ofContainer(up, info.Created), nil
}

// uploadAt is where an upload's records and parts' shard files live: the
// set of its PG in the map current when it was created.
type uploadAt struct {
	m      *placement.Map // that map: the current one, or an older one (MapHistory)
	pg     uint32
	drives []driver.Driver // pg's set in m
	recs   []*record       // the upload's records placed there, as read (nil where none)
}

// same reports whether at and o are the same set of the same map.
func (at uploadAt) same(o uploadAt) bool {
	return at.m.Epoch == o.m.Epoch && at.m.Layout == o.m.Layout && at.pg == o.pg
}

// moved reports whether writes to the upload's set would go to drives
// other than cur's set of the same PG: the upload (record up) is in an
// older map, and a map change moved its PG or one its parts are striped
// over (or changed the PG count or the policy).
func (at uploadAt) moved(cur *placement.Map, up *record) bool {
	return at.m.Epoch < cur.Epoch && (at.m.Policy != cur.Policy || at.m.PGCount() != cur.PGCount() || !slices.Equal(at.m.Set(at.pg), cur.Set(at.pg)) ||
		!stripedIn(up, cur))
}

// findUpload reads an upload's record from the set it was created in: the
// set of key's PG in the map its record names (uploadEpochKey), or, for
// a record that names none or a map no longer kept, the first set holding
// a record of it placed there, the current map's first, then the
// container's other layouts' (otherLayouts), then the older maps'
// (MapHistory). An upload keeps its placement until it is completed
// or aborted, and Residue keeps its map in the history until then.
//
// A set serves the upload only if every set before it answered with its
// read quorum and holds nothing of it: a set that did not answer may hold
// the upload moved there (MoveUploads), and the older set's records the
// remains of that move (ErrReadQuorum). A set whose newest record of the
// upload fewer than its read quorum hold, where a later set serves the
// upload too (in progress, completed or aborted) or does not answer, is
// the remains of a failed move, or of a successful one that drives lost
// since: findUpload chooses neither (errMoveUndecided) and the next
// moveUpload reconciles them (reconcileUpload).
func (e *Engine) findUpload(ctx context.Context, tenant, container, key, id string) (*record, uploadAt, error) {
	cur := e.mapFor(tenant, container)
	// The container's other layouts too: an upload created just before
	// its storage policy changed lives in the layout it started with
	// (probe F1 of session 10: it answered NoSuchUpload and, listed but
	// impossible to abort, refused every later set-policy).
	maps := e.uploadMaps(cur)
	read := func(m *placement.Map) (*record, uploadAt, int, error) {
		return e.readUploadIn(ctx, maps, m, tenant, container, key, id, m.Policy.ReadQuorum())
	}
	for i, m := range maps {
		rec, at, held, err := read(m)
		if need := noneQuorum(m); err == nil && rec == nil && i < len(maps)-1 && need > m.Policy.ReadQuorum() {
			// Nothing here, from the read quorum: a failed move's
			// record on a read quorum (below the write quorum) may be
			// on the drives that did not answer, and a later set must
			// not serve the upload then (review 22 F2). Enough drives
			// that any read quorum meets one of them.
			rec, at, held, err = e.readUploadIn(ctx, maps, m, tenant, container, key, id, need)
		}
		if err != nil {
			return nil, uploadAt{}, err
		}
		if rec == nil {
			continue
		}
		if held < m.Policy.ReadQuorum() {
			for _, o := range maps[i+1:] {
				if orec, _, _, err := read(o); err != nil || orec != nil {
					return nil, uploadAt{}, fmt.Errorf("%w: map epoch %d pg %d holds %d of %d", errMoveUndecided, m.Epoch, at.pg, held, len(at.drives))
				}
			}
		}
		if rec.Deleted {
			return nil, uploadAt{}, ErrNoSuchUpload
		}
		return rec, at, nil
	}
	return nil, uploadAt{}, ErrNoSuchUpload
}

// madeInOther reports whether upload record r names (uploadEpochKey) a
// map of maps other than m.
func madeInOther(r *record, m *placement.Map, maps []*placement.Map) bool {
	epoch, err := strconv.ParseUint(r.Metadata[uploadEpochKey], 10, 64)
	return err == nil && placement.Epoch(epoch) != m.Epoch &&
		slices.ContainsFunc(maps, func(o *placement.Map) bool { return o.Epoch == placement.Epoch(epoch) })
}

// inDroppedMap reports whether upload record r names (uploadEpochKey) a
// map older than maps[0] that is not one of maps (uploadMaps): one gone
// from the history. Maps are only ever added, with higher epochs, and
// dropped, never brought back, so a node whose history lags behind (a
// Raft log applied late) holds more maps than the present, not fewer: a
// map dropped for it is dropped for good.
func inDroppedMap(r *record, maps []*placement.Map) bool {
	if len(maps) == 0 || maps[0] == nil {
		return false
	}
	epoch, err := strconv.ParseUint(r.Metadata[uploadEpochKey], 10, 64)
	if err != nil || placement.Epoch(epoch) >= maps[0].Epoch {
		return false
	}
	return !slices.ContainsFunc(maps, func(o *placement.Map) bool { return o.Epoch == placement.Epoch(epoch) })
}

// strayUpload reports whether upload record r of key, held by drive did,
// is one findUpload never reads: made in a map gone from the history
// (inDroppedMap), and where no map of maps (uploadMaps) places it, at
// did's slot of key's set. What a drive that missed a completion or an
// abort kept of an upload in an older set is left so when that map goes
// (review 23b R3): nothing else reads it, and ListUploads would list it
// for ever, an upload every operation answers ErrNoSuchUpload.
func strayUpload(r *record, maps []*placement.Map, did placement.DriveID, tenant, container, key string) bool {
	if r.Deleted || !inDroppedMap(r, maps) {
		return false
	}
	for _, m := range maps {
		pg := m.PGOf(tenant, container, key)
		if j := slices.Index(m.Set(pg), did); j >= 0 && placedIn(r, m, pg, j) {
			return false
		}
	}
	return true
}

// noneQuorum is how many drives of a set of m must answer that they hold
// no record of an upload for findUpload to pass over the set: enough
// that a record on a read quorum of the set is seen.
func noneQuorum(m *placement.Map) int {
	k := m.Policy.ReadQuorum()
	return max(k, m.Policy.Data+m.Policy.Parity-k+1)
}

// errMoveUndecided is findUpload's error when an upload's records in two
// sets are those of a move that may have failed: retryable (ErrReadQuorum,
// 503) until moveUpload reconciles them.
var errMoveUndecided = fmt.Errorf("%w: upload: a set holds its moved record on fewer than its read quorum, another serves it", ErrReadQuorum)

// uploadMaps returns the maps whose sets may hold an upload of a
// container whose map is cur, in the order findUpload reads them: cur,
// the container's other layouts, the older maps.
func (e *Engine) uploadMaps(cur *placement.Map) []*placement.Map {
	return append(append([]*placement.Map{cur}, e.otherLayouts(cur)...), e.olderMaps(cur)...)
}

// readUploadIn reads upload id's record from key's set in m, one of maps
// (uploadMaps), waiting for need drives (above the set's size: every
// drive): the newest record placed there (chooseVersion), where it is,
// and how many drives hold that version. A drive whose slot a map change
// kept holds a record placed for both maps: the record says which one it
// was made in (uploadEpochKey), and it counts only there if that map is
// one of maps. ErrReadQuorum if fewer than need (at most the set's size)
// answered.
func (e *Engine) readUploadIn(ctx context.Context, maps []*placement.Map, m *placement.Map, tenant, container, key, id string, need int) (*record, uploadAt, int, error) {
	pg := m.PGOf(tenant, container, key)
	drives, _ := e.pgDrives(m, pg)
	recs, answered := e.readRecordsQuorum(ctx, drives, uploadKey(tenant, container, key, id), need)
	n, want := 0, need
	if need > len(drives) {
		want = 0 // every drive the cluster has
		for _, d := range drives {
			if d != nil {
				want++
			}
		}
	}
	for j, a := range answered {
		if a {
			n++
		}
		if recs[j] != nil && (!placedIn(recs[j], m, pg, j) || madeInOther(recs[j], m, maps)) {
			recs[j] = nil // another map's placement of a drive in both sets
		}
	}
	if n < want {
		return nil, uploadAt{}, 0, fmt.Errorf("%w: upload: map epoch %d pg %d: %d of %d drives answered, need %d", ErrReadQuorum, m.Epoch, pg, n, len(drives), want)
	}
	at := uploadAt{m: m, pg: pg, drives: drives, recs: recs}
	rec := chooseVersion(recs, m.Policy.ReadQuorum())
	if rec == nil {
		return nil, at, 0, nil
	}
	held := 0
	for _, r := range recs {
		if r != nil && r.Version == rec.Version {
			held++
		}
	}
	return rec, at, held, nil
}

// activeUpload is upload for operations on an upload in progress: a
// completed one (or one being completed) is ErrNoSuchUpload.
func (e *Engine) activeUpload(ctx context.Context, tenant, container, key, id string) (*record, uploadAt, error) {
	up, at, err := e.upload(ctx, tenant, container, key, id)
	if err == nil && isMarker(up) {
		err = ErrNoSuchUpload
	}
	return up, at, err
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
	up, at, err := e.activeUpload(ctx, tenant, container, key, uploadID)
	if err != nil {
		return PartInfo{}, err
	}
	if opts.CheckUpload != nil {
		if err := opts.CheckUpload(up.Metadata); err != nil {
			return PartInfo{}, err
		}
	}
	drives := at.drives
	var hold *uploadHold
	if at.moved(e.mapFor(tenant, container), up) {
		// The upload lives in an older map's set, which drives now fence
		// against writes under that map except those made under the
		// upload's lease (cluster.Fence): stream the part under it too.
		// Parts of such an upload are written one at a time.
		if hold, err = e.lockUpload(ctx, uploadID); err != nil {
			return PartInfo{}, err
		}
		defer hold.unlock()
		ctx = hold.ctx
		// Read again under the lease: the migrator may have moved the
		// upload into the current map meanwhile (MoveUploads).
		if up, at, err = e.activeUpload(ctx, tenant, container, key, uploadID); err != nil {
			return PartInfo{}, err
		}
		drives = at.drives
	}
	codec, err := e.codec(up.Data, up.Parity, up.StripeSize)
	if err != nil {
		return PartInfo{}, err
	}
	// The part's record goes to the upload's set; its data to the PG
	// the upload's striping gives part n (the same set, unstriped).
	prec := record{
		Data: up.Data, Parity: up.Parity, StripeSize: up.StripeSize, PG: up.PG,
		Seed: up.Seed, Width: up.Width, PGCount: up.PGCount, Layout: up.Layout,
	}
	if up.striped() {
		prec.Offset = (n - 1) % up.Width
	}
	ddrives, derrs := e.partDrives(at.m, &prec, 0)
	var dataID [16]byte
	rand.Read(dataID[:])
	wq := max(up.Data, up.Parity+1)
	pkey := partKey(tenant, container, partsID(uploadID, up), n)
	if prec.striped() {
		// Its shard files go to another PG than its record: a stripe
		// intent lets the collector find them if a crash stops the
		// part before its record (stripe_gc.go).
		base, unintend, err := e.writeIntent(ctx, at.m, &prec, tenant, container, key, pkey, wq)
		if err != nil {
			return PartInfo{}, err
		}
		defer unintend() // after the record, or the shard files' deletion
		dataID = intentDataID(base, 0)
	}
	shard := shardOf(tenant, container, key, prec.partPG(0), dataID)
	committed := make([]bool, len(ddrives))
	limit := int64(MaxPartSize)
	if opts.MaxSize > 0 {
		limit = min(limit, opts.MaxSize)
	}
	if opts.Size >= 0 {
		limit = opts.Size
	}
	digest, release := newETagHash(true)
	defer release()
	size, err := e.putShards(ctx, codec, ddrives, derrs, shard, io.LimitReader(body, limit+1), wq, digest, committed)
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
		e.deleteShards(ctx, ddrives, shard, committed)
		return PartInfo{}, err
	}
	// The upload may have completed or been aborted while the data
	// streamed: check again under its lock, and commit the part under it.
	if hold == nil {
		if hold, err = e.lockUpload(ctx, uploadID); err != nil {
			e.deleteShards(ctx, ddrives, shard, committed)
			return PartInfo{}, err
		}
		defer hold.unlock()
		ctx = hold.ctx // writes under the lease carry it
	}
	if _, now, err := e.activeUpload(ctx, tenant, container, key, uploadID); err != nil || !now.same(at) {
		if err == nil {
			// The migrator moved the upload while the part streamed into
			// its older set (MoveUploads): the client sends it again.
			err = fmt.Errorf("%w: the upload moved into the current map; send the part again", ErrMetadataUnavailable)
		}
		e.deleteShards(ctx, ddrives, shard, committed)
		return PartInfo{}, err
	}
	if err := e.checkReplaceable(ctx, tenant, container, key, pkey, drives, up.Data); err != nil {
		e.deleteShards(ctx, ddrives, shard, committed)
		return PartInfo{}, err
	}
	if err := hold.check(); err != nil {
		e.deleteShards(ctx, ddrives, shard, committed)
		return PartInfo{}, err
	}
	version, now := e.newVersion()
	etag := hex.EncodeToString(sum)
	rec := prec
	rec.Version, rec.Size, rec.ETag, rec.Modified = version, size, etag, now.UnixNano()
	rec.Parts, rec.Metadata = []part{{DataID: dataID, Size: size, ETag: etag}}, meta
	mask := committed // slot j's record where slot j's shard is
	if rec.striped() {
		mask = present(drives) // the records; the shards are in another PG
		if slices.Contains(committed, false) {
			// No record says which slot missed the shard: the part
			// says so, and its completion queues the artifact for
			// Heal (a striped Put queues itself).
			rec.Metadata = withEntries(meta, map[string]string{partMissedKey: "1"})
		}
	}
	w := e.recordWriteAt(pkey, tenant, container, key, drives, wq)
	res, settle := w.put(ctx, &rec, nil, mask)
	replaced := replacedOf(res)
	err = w.finish(ctx, &rec, res)
	settle(err == nil)
	if err != nil {
		e.deleteShards(ctx, ddrives, shard, committed)
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
// before forgetting the upload. It observes the versions of the records
// it reads, so the part's version is issued after theirs.
func (e *Engine) checkReplaceable(ctx context.Context, tenant, container, key, pkey string, drives []driver.Driver, k int) error {
	olds, _ := e.readRecordsK(ctx, drives, pkey, k)
	for _, r := range olds {
		if r != nil {
			// The part put next is newer than the one it replaces, even
			// if that was stamped by a clock ahead of ours (or is a
			// move's copy keeping its source's version): the
			// reconcile orders parts by version (review 22 F1).
			e.observe(r.Version)
		}
	}
	if !slices.ContainsFunc(olds, func(r *record) bool { return r != nil }) {
		return nil
	}
	arecs, answered := e.readRecordsK(ctx, drives, indexPrefix(tenant, container)+key, k)
	if answered < k {
		return fmt.Errorf("%w: put part: %d of %d drives answered", ErrReadQuorum, answered, len(drives))
	}
	refs, err := e.keptData(ctx, tenant, container, key, drives, k, arecs)
	if err != nil {
		return err
	}
	for _, r := range olds {
		if r != nil && slices.ContainsFunc(r.Parts, func(p part) bool { return refs[p.DataID] }) {
			return fmt.Errorf("%w: the upload was completed", ErrNoSuchUpload)
		}
	}
	return nil
}
