package engine

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

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

// partMissedKey is the metadata entry of a striped part's record whose
// shard files missed a drive of their PG's set (a write quorum took
// them): completing the upload queues the artifact for Heal.
const partMissedKey = "\x00missed"

// isMarker reports whether an upload record is a completion marker.
func isMarker(up *record) bool { return up.ETag != "" }

// uploadOf describes an upload record, or a marker as the upload it was.
func uploadOf(key, id string, up *record) Upload {
	meta := up.Metadata
	if slices.ContainsFunc(uploadKeysMeta, func(k string) bool { _, ok := meta[k]; return ok }) {
		meta = maps.Clone(meta)
		for _, k := range uploadKeysMeta {
			delete(meta, k)
		}
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
	return e.completeUpload(ctx, tenant, container, key, uploadID, parts, finish, "")
}

// completeUpload is CompleteUpload writing the artifact under version key
// vid of key if vid is set (completionVidKey; completeUploadVersion then
// points the key at it; newVersionSlot: a new version id, the
// completion's version's), under key itself if not. The ArtifactInfo's
// VersionID is the version id the artifact is under: vid, or for a
// retried completion the one its marker names ("" for key itself).
func (e *Engine) completeUpload(ctx context.Context, tenant, container, key, uploadID string, parts []CompletePart, finish func(Upload, []PartInfo) (map[string]string, error), vid string) (ArtifactInfo, error) {
	if len(parts) == 0 || len(parts) > MaxPartNum {
		return ArtifactInfo{}, fmt.Errorf("%w: %d parts", ErrInvalidPart, len(parts))
	}
	for i := 1; i < len(parts); i++ {
		if parts[i].Number <= parts[i-1].Number {
			return ArtifactInfo{}, ErrInvalidPartOrder
		}
	}
	// Parts to copy (multipart_move.go) are copied before the lock, whose
	// lease is short; used below if the parts are still those.
	pre := e.copyAhead(ctx, tenant, container, key, uploadID, parts)
	preUsed := false
	defer func() {
		if pre != nil && !preUsed {
			pre.drop()
		}
	}()
	hold, err := e.lockUpload(ctx, uploadID)
	if err != nil {
		return ArtifactInfo{}, err
	}
	defer hold.unlock()
	ctx = hold.ctx // writes under the lease carry it
	up, at, err := e.upload(ctx, tenant, container, key, uploadID)
	if err != nil {
		return ArtifactInfo{}, err
	}
	drives := at.drives
	if isMarker(up) {
		s, err := e.settle(ctx, tenant, container, key, uploadID, up, at)
		if err != nil {
			return ArtifactInfo{}, fmt.Errorf("engine: complete upload: %w", err)
		}
		switch s.state {
		case completionDone:
			if !markerHas(up, parts) {
				return ArtifactInfo{}, fmt.Errorf("%w: upload already completed with other parts", ErrInvalidPart)
			}
			info := e.info(tenant, container, key, s.cur)
			info.VersionID, info.Retried = up.Metadata[completionVidKey], true
			return info, nil
		case completionGone:
			return ArtifactInfo{}, ErrNoSuchUpload
		}
		// Pending: the completion never became visible, or it did and its
		// artifact was deleted since (which deleted the parts' data) and
		// the tombstone purged. Complete again only in the first case,
		// under the same key as the first attempt: its remains there
		// are replaced.
		vid = up.Metadata[completionVidKey]
		lost, err := e.partsLost(ctx, tenant, container, key, up, e.markerSet(tenant, container, key, at, up))
		if err != nil {
			return ArtifactInfo{}, fmt.Errorf("engine: complete upload: %w", err)
		}
		if lost {
			if err := hold.check(); err != nil {
				return ArtifactInfo{}, err
			}
			inParts, err := e.abort(ctx, tenant, container, key, uploadID, up, at)
			if err != nil {
				return ArtifactInfo{}, fmt.Errorf("engine: complete upload: %w", err)
			}
			e.usage(tenant, -inParts, -1)
			return ArtifactInfo{}, ErrNoSuchUpload
		}
	}
	raws, recs, err := e.allParts(ctx, tenant, container, partsID(uploadID, up), drives, up.Data)
	if err != nil {
		return ArtifactInfo{}, err
	}
	u := uploadOf(key, uploadID, up)
	e.observe(up.Version) // the marker must be newer than the upload record
	version, now := e.newVersion()
	if vid == newVersionSlot {
		// The version id is the completion's own version, as a put's:
		// listings order versions by their ids' time, pointers by the
		// modified time, and the two agree.
		vid = versionIDOf(version)
	}
	// Where the artifact goes: the upload's set, or if a map change
	// placed the key elsewhere since, the key's current set, which gets
	// copies of the parts (multipart_move.go).
	as, moved := e.completionSet(tenant, container, key, at, up)
	rec := record{
		Version: version, ContentType: u.ContentType, Metadata: u.Metadata, Modified: now.UnixNano(),
		Data: as.data, Parity: as.parity, StripeSize: up.StripeSize, PG: as.pg,
	}
	switch {
	case pre.fits(at, as):
		rec.Seed, rec.Width, rec.PGCount, rec.Layout = pre.stripe.Seed, pre.stripe.Width, pre.stripe.PGCount, pre.stripe.Layout
	case moved:
		e.setStriping(&rec, as.m, stripeWidth(as.m)) // striped anew in the current map
	default:
		rec.Seed, rec.Width, rec.PGCount, rec.Layout = up.Seed, up.Width, up.PGCount, up.Layout
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
			chosen[i] = PartInfo{Number: cp.Number, Size: p.Size, ETag: p.ETag, Modified: time.Unix(0, p.Modified), Metadata: withoutReserved(p.Metadata)}
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
	// A part not where the artifact's record places it (every part if
	// the artifact moved to another map; with striping, a part
	// completed at another index than its number's) is copied there.
	dropCopies := func() {}
	chosen := make([]*record, len(parts))
	need := make([]bool, len(parts))
	copying := false
	for i, cp := range parts {
		chosen[i] = recs[cp.Number]
		need[i] = moved || chosen[i].partPG(0) != rec.partPG(i)
		copying = copying || need[i]
	}
	if copying && pre.fits(at, as) && slices.EqualFunc(pre.src, chosen, func(id [16]byte, p *record) bool { return id == p.Parts[0].DataID }) {
		rec.Parts, dropCopies, preUsed = pre.parts, pre.drop, true
	} else if copying {
		copies, drop, err := e.copyParts(ctx, tenant, container, key, at, chosen, need, as, &rec)
		if err != nil {
			return ArtifactInfo{}, err
		}
		rec.Parts, dropCopies = copies, drop
	}
	wq := max(up.Data, up.Parity+1)
	// Step 1: the marker. From here on the upload takes no part, and a
	// crash is settled by whoever touches the upload next.
	meta := maps.Clone(u.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[partNumbersKey] = strings.Join(numbers, ",")
	meta = withPlacement(meta, up) // a reverted marker is the upload again
	if vid != "" {
		meta[completionVidKey] = vid
	}
	if moved {
		meta[movedKey] = fmt.Sprintf("%d %d %d %d %d %d", as.m.Epoch, as.pg, rec.Seed, rec.Width, rec.PGCount, rec.Layout)
	}
	mk := record{
		Version: version, ETag: rec.ETag, Size: rec.Size, Parts: rec.Parts,
		ContentType: u.ContentType, Metadata: meta, Modified: up.Modified,
		Data: up.Data, Parity: up.Parity, StripeSize: up.StripeSize, PG: up.PG,
		Seed: up.Seed, Width: up.Width, PGCount: up.PGCount, Layout: up.Layout, // placed as the upload
	}
	ukey := uploadKey(tenant, container, key, uploadID)
	akey := artKey(key, &mk)
	if err := hold.check(); err != nil {
		dropCopies()
		return ArtifactInfo{}, err
	}
	if err := e.putQuorum(ctx, ukey, drives, &mk, wq); err != nil {
		dropCopies() // the marker was rolled back: nothing names them
		return ArtifactInfo{}, fmt.Errorf("engine: complete upload: marker: %w", err)
	}
	// From here on the marker names the copies: a failure leaves them
	// for the settle (or, never completed, as unreferenced files).
	// Step 2: the artifact.
	gctx, gcancel := cleanupCtx(ctx)
	defer gcancel()
	if err := hold.check(); err != nil {
		// The marker is written: whoever touches the upload next settles
		// it (a pending completion is completed again or reverted).
		return ArtifactInfo{}, err
	}
	replaced, err := e.artifactWrite(tenant, container, akey, as.drives, max(as.data, as.parity+1)).latest(ctx, &rec, nil, present(as.drives))
	if err != nil {
		// The write was rolled back: make the upload an upload in progress
		// again, unless a crash-like failure left the artifact visible
		// after all, which the settle then finishes.
		if rerr := e.revert(gctx, tenant, container, key, uploadID, &mk, at); rerr != nil {
			e.log.Warn("complete upload: marker left for the sweeper", "err", rerr)
		}
		return ArtifactInfo{}, fmt.Errorf("engine: complete upload: %w", err)
	}
	// The parts were counted as they arrived, and the upload as an
	// artifact; the artifact takes their place (unused parts are dropped
	// below).
	var inParts int64
	for _, p := range recs {
		inParts += p.Size
	}
	rb, ra := liveSize(replaced)
	e.usage(tenant, rec.Size-inParts-rb, -ra)
	for i, p := range chosen {
		if !need[i] && p.Metadata[partMissedKey] != "" {
			e.queueHeal(HealItem{tenant, container, akey}) // a part's shard missed a drive
			break
		}
	}
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
	info := e.info(tenant, container, key, &rec)
	info.VersionID = vid
	return info, nil
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
	// remains: the completion is gone but its marker was kept, since an
	// older set may still hold remains of the upload (remainsElsewhere).
	remains bool
}

// settle looks at whether the completion marker mk made it into the
// artifact and finishes what the completion left: for a completion done,
// the artifact's record on the drives that lack it, the part records and
// the unused parts' shard files; for one overwritten since, also the
// marker. A pending completion is left as it is, for the caller to
// complete again, abort or revert.
func (e *Engine) settle(ctx context.Context, tenant, container, key, id string, mk *record, at uploadAt) (settled, error) {
	drives := at.drives
	as := e.markerSet(tenant, container, key, at, mk) // where the artifact was written
	ikey := indexPrefix(tenant, container) + artKey(key, mk)
	arecs, answered := e.readRecordsK(ctx, as.drives, ikey, as.data)
	if answered < as.data {
		return settled{}, fmt.Errorf("%w: settle upload: %d of %d drives answered", ErrReadQuorum, answered, len(as.drives))
	}
	cur := chooseVersion(arecs, as.data)
	s := settled{cur: cur, all: answered == len(as.drives), state: completionOf(mk, as, cur)}
	switch s.state {
	case completionDone:
		e.rollForward(ctx, tenant, container, artKey(key, mk), as.drives, cur, arecs)
	case completionPending:
		return s, nil
	}
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	keep, err := e.keptData(ctx, tenant, container, key, as.drives, as.data, arecs)
	if err != nil {
		return settled{}, err
	}
	if _, err := e.dropParts(ctx, tenant, container, key, partsID(id, mk), drives, mk.Data, keep); err != nil {
		return settled{}, err
	}
	if s.state == completionGone || e.cfg.Now().Sub(versionTime(mk.Version)) > CompletedUploadRetention {
		s.state = completionGone
		if s.remains = e.remainsElsewhere(ctx, tenant, container, key, id, mk, at); s.remains {
			return s, nil // the marker stays until those are dropped (sweepUpload)
		}
		e.dropMarker(ctx, drives, uploadKey(tenant, container, key, id), mk)
	}
	return s, nil
}

// remainsElsewhere reports whether a drive of key's sets in the older maps
// or the other layouts may hold a live record of upload id that is neither
// its marker mk nor placed in key's set of the current map: it holds one,
// or did not answer (a removed drive holds nothing). Such a record is the
// remains of a move whose clean-up failed (dropUploadElsewhere). While it
// may exist, mk must stay: deleted, it would no longer hide them, and
// findUpload would serve them as the upload in progress, listed, taking
// parts, and completed again into an artifact deleted since (review 22b
// F2). It only reads, like olderSetsHold for a tombstone. A record placed
// in mk's own set (at) at its drive's slot is not counted: deleting mk
// deletes it too, on those drives (review 23b R2). Nor is anything for a
// marker of an upload made in key's set of the current map and never
// moved (uploadEpochKey the current epoch, no partsGenKey): no older set
// or other layout's set ever held it (review 23b R1).
func (e *Engine) remainsElsewhere(ctx context.Context, tenant, container, key, id string, mk *record, at uploadAt) bool {
	cur := e.mapFor(tenant, container)
	pg := cur.PGOf(tenant, container, key)
	if at.same(uploadAt{m: cur, pg: pg}) && mk.Metadata[partsGenKey] == "" && mk.Metadata[uploadEpochKey] == strconv.FormatUint(uint64(cur.Epoch), 10) {
		return false
	}
	home := cur.Set(pg)
	own := at.m.Set(at.pg)
	ukey := uploadKey(tenant, container, key, id)
	seen := map[placement.DriveID]bool{}
	for _, m := range append(e.otherLayouts(cur), e.olderMaps(cur)...) {
		for _, did := range m.Set(m.PGOf(tenant, container, key)) {
			if seen[did] {
				continue
			}
			seen[did] = true
			d, err := e.cfg.Topology.Drive(did)
			if errors.Is(err, driver.ErrRemoved) {
				continue
			}
			var raw driver.Record
			if err == nil {
				raw, err = d.GetRecord(ctx, ukey)
			}
			if errors.Is(err, driver.ErrNotFound) {
				continue
			}
			if err != nil {
				return true // away: it may hold them
			}
			r, err := unmarshalRecord(raw.Data)
			if err != nil {
				return true // dropUploadElsewhere removes it
			}
			if r.Deleted || raw.Version == mk.Version {
				continue // an abort's tombstone, or the marker itself
			}
			if j := slices.Index(home, did); j >= 0 && placedIn(r, cur, pg, j) {
				continue // the current set's: not uncovered by deleting mk
			}
			if j := slices.Index(own, did); j >= 0 && placedIn(r, at.m, at.pg, j) {
				continue // mk's own set's: deleted with mk (at.drives)
			}
			return true
		}
	}
	return false
}

// completionOf is what the completion of marker mk, whose artifact set is
// as, came to, cur being the artifact's version as serves (settle).
func completionOf(mk *record, as artSet, cur *record) completion {
	switch {
	case cur != nil && !cur.Deleted && cur.PG == as.pg && slices.EqualFunc(cur.Parts, mk.Parts, func(p, q part) bool { return p.DataID == q.DataID }):
		return completionDone
	case cur != nil && cur.Version.Compare(mk.Version) > 0:
		return completionGone
	}
	return completionPending
}

// completionPending reports whether upload id of key is a completion
// marker whose completion is pending (settle), reading only.
func (e *Engine) completionPending(ctx context.Context, tenant, container, key, id string) (bool, error) {
	mk, at, err := e.findUpload(ctx, tenant, container, key, id)
	if errors.Is(err, ErrNoSuchUpload) {
		return false, nil
	}
	if err != nil || !isMarker(mk) {
		return false, err
	}
	as := e.markerSet(tenant, container, key, at, mk)
	arecs, answered := e.readRecordsK(ctx, as.drives, indexPrefix(tenant, container)+artKey(key, mk), as.data)
	if answered < as.data {
		return false, fmt.Errorf("%w: completion of upload %s: %d of %d drives answered", ErrReadQuorum, id, answered, len(as.drives))
	}
	return completionOf(mk, as, chooseVersion(arecs, as.data)) == completionPending, nil
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
	// Without the older placement a migration's record may carry (Prev):
	// it names the files of the slot it was read from, not of the drives
	// written (review F4b of session 17).
	fwd := *cur
	fwd.Prev = nil
	if err := e.artifactWrite(tenant, container, key, drives, 1).write(ctx, &fwd, nil, ok); err != nil {
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
func (e *Engine) revert(ctx context.Context, tenant, container, key, id string, mk *record, at uploadAt) error {
	drives := at.drives
	as := e.markerSet(tenant, container, key, at, mk)
	s, err := e.settle(ctx, tenant, container, key, id, mk, at)
	if err != nil || s.state != completionPending {
		return err
	}
	if !s.all {
		return fmt.Errorf("%w: revert upload: not every drive answered", ErrReadQuorum)
	}
	if lost, err := e.partsLost(ctx, tenant, container, key, mk, as); err != nil || lost {
		if lost {
			_, err = e.abort(ctx, tenant, container, key, id, mk, at)
		}
		return err
	}
	e.removeStrays(ctx, indexPrefix(tenant, container)+artKey(key, mk), as.drives, mk.Version)
	u := uploadOf(key, id, mk)
	e.observe(mk.Version)
	version, _ := e.newVersion()
	meta := withPlacement(u.Metadata, mk)
	up := record{
		Version: version, ContentType: u.ContentType, Metadata: meta, Modified: mk.Modified,
		Data: mk.Data, Parity: mk.Parity, StripeSize: mk.StripeSize, PG: mk.PG,
		Seed: mk.Seed, Width: mk.Width, PGCount: mk.PGCount, Layout: mk.Layout,
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
func (e *Engine) partsLost(ctx context.Context, tenant, container, key string, mk *record, as artSet) (bool, error) {
	art := as.record(mk.Parts)
	type probe struct {
		found bool
		err   error
	}
	for i, p := range mk.Parts {
		drives, _ := e.partDrives(as.m, art, i)
		live := 0
		for _, d := range drives {
			if d != nil {
				live++
			}
		}
		shard := shardOf(tenant, container, key, art.partPG(i), p.DataID)
		res, done := fanOut(ctx, e, len(drives), func(j int) bool { return drives[j] != nil }, max(1, live-as.parity),
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
		if missing > len(drives)-as.data {
			return true, nil
		}
		if present+missing < live && present < as.data {
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
	w := &recordWrite{e: e, ikey: ikey, drives: drives, wq: wq, keepShards: true}
	return w.write(ctx, rec, nil, present(drives))
}
