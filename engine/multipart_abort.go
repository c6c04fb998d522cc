package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

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

// keptData returns the data ids whose shard files an upload's clean-up
// must spare: those the key's records arecs (read from drives, a set of
// k data shards) name (partRefs), and those any version of key names
// (versionRefs). A completion in a versioned container makes a version
// (CompleteUploadVersion): its record, naming the parts' data, lives
// under the version key while the key holds a pointer, so a clean-up
// sparing only what the key's records name deleted a version's data
// (review 25b P1).
func (e *Engine) keptData(ctx context.Context, tenant, container, key string, drives []driver.Driver, k int, arecs []*record) (map[[16]byte]bool, error) {
	keep := partRefs(arecs)
	if err := e.versionRefs(ctx, keep, tenant, container, key, drives, k); err != nil {
		return nil, err
	}
	m := e.mapFor(tenant, container)
	if cur, _ := e.pgDrives(m, pgOf(m, tenant, container, key)); !slices.Equal(cur, drives) {
		if err := e.versionRefs(ctx, keep, tenant, container, key, cur, m.Policy.ReadQuorum()); err != nil {
			return nil, err
		}
	}
	return keep, nil
}

// versionRefs adds to keep the data ids that the live records of key's
// versions (versionKey) on drives, a set of k data shards, name. Each
// version was written on a write quorum w of the set, so n-w+1 drives
// answering show every one; with fewer it fails with ErrReadQuorum and
// the clean-up deletes nothing. The other drives get the straggler grace.
func (e *Engine) versionRefs(ctx context.Context, keep map[[16]byte]bool, tenant, container, key string, drives []driver.Driver, k int) error {
	n := len(drives)
	need := max(n-max(k, n-k+1)+1, 1)
	prefix := indexPrefix(tenant, container) + versionKey(key, "")
	type listed struct {
		ids [][16]byte
		ok  bool
	}
	res, _ := fanOut(ctx, e, n, func(j int) bool { return drives[j] != nil }, need,
		func(ctx context.Context, j int) listed {
			var ids [][16]byte
			err := eachRecord(ctx, drives[j], prefix, func(_ driver.Record, r *record) error {
				if !r.Deleted {
					for _, p := range r.Parts {
						ids = append(ids, p.DataID)
					}
				}
				return nil
			})
			return listed{ids, err == nil}
		}, func(l listed) bool { return l.ok }, nil)
	answered := 0
	for _, l := range res {
		if l.ok {
			answered++
			for _, id := range l.ids {
				keep[id] = true
			}
		}
	}
	if answered < need {
		return fmt.Errorf("%w: versions of %s: %d of %d drives answered", ErrReadQuorum, key, answered, n)
	}
	return nil
}

// dropParts deletes every part record of an upload (its partsID id) and the shard files of
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
	hold, err := e.lockUpload(ctx, uploadID)
	if err != nil {
		return err
	}
	defer hold.unlock()
	ctx = hold.ctx // writes under the lease carry it
	up, at, err := e.upload(ctx, tenant, container, key, uploadID)
	if err != nil {
		return err
	}
	if isMarker(up) {
		s, err := e.settle(ctx, tenant, container, key, uploadID, up, at)
		if err != nil {
			return fmt.Errorf("engine: abort upload: %w", err)
		}
		if s.state != completionPending {
			return ErrNoSuchUpload
		}
	}
	if err := hold.check(); err != nil {
		return err
	}
	if err := e.abortCharged(ctx, tenant, container, key, uploadID, up, at); err != nil {
		return fmt.Errorf("engine: abort upload: %w", err)
	}
	return nil
}

// abortCharged is abort returning the upload's usage charge (its parts'
// bytes and the upload itself) to its tenant once it succeeded: every
// path that discards an upload in progress (AbortUpload, the sweep's
// for a deleted or re-made container) goes through it.
func (e *Engine) abortCharged(ctx context.Context, tenant, container, key, id string, up *record, at uploadAt) error {
	inParts, err := e.abort(ctx, tenant, container, key, id, up, at)
	if err != nil {
		return err
	}
	e.usage(tenant, -inParts, -1)
	return nil
}

// withUpload runs fn under upload id's lease (lockUpload; fn's ctx
// carries it for the writes) with the upload's record as findUpload
// serves it; an upload already gone is nothing to do.
func (e *Engine) withUpload(ctx context.Context, tenant, container, key, id string, fn func(ctx context.Context, hold *uploadHold, up *record, at uploadAt) error) error {
	hold, err := e.lockUpload(ctx, id)
	if err != nil {
		return err
	}
	defer hold.unlock()
	up, at, err := e.findUpload(hold.ctx, tenant, container, key, id)
	if errors.Is(err, ErrNoSuchUpload) {
		return nil
	}
	if err != nil {
		return err
	}
	return fn(hold.ctx, hold, up, at)
}

// abort removes an upload in progress, or one with a pending completion
// marker (and that completion's stray artifact records): the part records
// and the shard files no artifact record of key names, then the upload's
// record, so that a crash leaves an upload to abort again.
func (e *Engine) abort(ctx context.Context, tenant, container, key, id string, up *record, at uploadAt) (int64, error) {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	drives := at.drives
	ikey := indexPrefix(tenant, container) + key
	if isMarker(up) {
		e.removeStrays(ctx, indexPrefix(tenant, container)+artKey(key, up), e.markerSet(tenant, container, key, at, up).drives, up.Version)
	}
	arecs, answered := e.readRecordsK(ctx, drives, ikey, up.Data)
	if answered < up.Data {
		return 0, fmt.Errorf("%w: %d of %d drives answered", ErrReadQuorum, answered, len(drives))
	}
	keep, err := e.keptData(ctx, tenant, container, key, drives, up.Data, arecs)
	if err != nil {
		return 0, err
	}
	size, err := e.dropParts(ctx, tenant, container, key, partsID(id, up), drives, up.Data, keep)
	if err != nil {
		return 0, err
	}
	// A tombstone, not a delete: a drive of the set that missed the abort
	// (offline) keeps the upload's record, which would otherwise be the
	// newest once it is back and bring the upload back (probe of session
	// 13). SweepUploads removes the tombstone, and any such record, after
	// CompletedUploadRetention.
	version, now := e.newVersion()
	tomb := record{
		Version: version, Deleted: true, Modified: now.UnixNano(),
		Data: up.Data, Parity: up.Parity, StripeSize: up.StripeSize, PG: up.PG,
		Seed: up.Seed, Width: up.Width, PGCount: up.PGCount, Layout: up.Layout,
	}
	if m := withPlacement(nil, up); len(m) > 0 {
		tomb.Metadata = m
	}
	if err := e.putQuorum(ctx, uploadKey(tenant, container, key, id), drives, &tomb, max(up.Data, up.Parity+1)); err != nil {
		return 0, err
	}
	return size, nil
}

// dropPart deletes the shard files of part record p, read from drives
// (the upload's set), whose data ids keep does not hold: on those drives,
// or on the drives of the PG its striping puts them in (deletePartShards).
func (e *Engine) dropPart(ctx context.Context, tenant, container, key string, drives []driver.Driver, p *record, keep map[[16]byte]bool) {
	e.fanCleanup(ctx, present(drives), func(ctx context.Context, j int) error {
		err := e.deletePartShards(ctx, tenant, container, key, p, j, drives[j], func(pt part) bool { return keep[pt.DataID] })
		if err != nil {
			e.log.Warn("part shard delete failed", "pg", p.partPG(0), "shard", j, "err", err)
		}
		return err
	})
}

// deleteRecord removes ikey's record of version v (of any version if v is
// zero) from every drive. It returns once a majority answered and the
// others had the straggler grace (fanCleanup); the rest go on in the
// background.
func (e *Engine) deleteRecord(ctx context.Context, drives []driver.Driver, ikey string, v driver.Version) {
	e.fanCleanup(ctx, present(drives), func(ctx context.Context, j int) error {
		err := drives[j].DeleteRecord(ctx, ikey, v)
		if err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
			e.log.Warn("record delete failed", "shard", j, "err", err)
		}
		return err
	})
}

// DefaultUploadSweepInterval is how often RunUploadSweeper runs
// SweepUploads.
const DefaultUploadSweepInterval = time.Hour

// SweepUploads walks the multipart upload records of every container,
// removes aborted uploads' tombstones older than CompletedUploadRetention,
// and settles the completion markers: it finishes the clean-up of completions
// that crashed, removes the markers of completions overwritten since or
// older than CompletedUploadRetention (once it has dropped what an older
// map's set still holds of the upload, and every drive of those sets
// answered: dropRemains), and turns a marker whose completion
// never became visible back into an upload in progress once it is older
// than UploadCompletionGrace (or aborts it if its container is gone). It
// also removes the records a map dropped from the history left where no
// kept map places them, once nothing serves their upload (sweepStrays).
// It returns how many markers it looked at and the first error; a marker
// it could not settle is tried again on the next call.
func (e *Engine) SweepUploads(ctx context.Context) (int, error) {
	m := e.cfg.Topology.Map()
	ls := e.recordSet(m)
	const base = "\x01U\x00"
	after := ""
	seen := 0
	var first error
	away := false // a drive did not answer a purge: no more purges this pass
	// Records of an upload made in a map gone from the history, on a
	// drive no kept map places them at (strayUpload): looked at once
	// the page's markers are settled, as one of them may be what still
	// serves the upload.
	ms := e.uploadMaps(m)
	var strays []string
	strayOn := map[string][]bool{} // per stray: the drives the listing saw it on
	hidden := containerStamps{e: e}
	pick := func(j int, raw driver.Record, r *record) bool {
		if inDroppedMap(r, ms) && (strayOn[raw.Key] == nil || !strayOn[raw.Key][j]) {
			if f := strings.SplitN(raw.Key[len(base):], "\x00", 4); len(f) == 4 &&
				strayUpload(r, e.uploadMaps(e.mapFor(f[0], f[1])), ls.ids[j], f[0], f[1], f[2]) {
				if strayOn[raw.Key] == nil {
					strays = append(strays, raw.Key)
					strayOn[raw.Key] = make([]bool, len(ls.drives))
				}
				strayOn[raw.Key][j] = true
			}
		}
		return true
	}
	for {
		strays = strays[:0]
		clear(strayOn)
		raws, recs, truncated, err := e.listCoveringPick(ctx, ls, base, after, 1000, pick)
		if err != nil {
			return seen, fmt.Errorf("engine: sweep uploads: %w", err)
		}
		for i, raw := range raws {
			after = raw.Key
			f := strings.SplitN(raw.Key[len(base):], "\x00", 4)
			if len(f) != 4 {
				continue
			}
			if recs[i].Deleted {
				// An aborted upload's tombstone: past the retention, it
				// goes from every drive, with any record of the upload a
				// drive that missed the abort still holds.
				if !away && e.cfg.Now().Sub(versionTime(recs[i].Version)) > CompletedUploadRetention {
					err := e.purgeAborted(ctx, ls.drives, raw.Key, f[0], f[1], f[2], f[3], recs[i])
					away = errors.Is(err, errDriveAway)
					if err != nil && first == nil {
						first = fmt.Errorf("engine: sweep aborted upload %s: %w", f[3], err)
					}
				}
				continue
			}
			if !isMarker(recs[i]) {
				if e.cfg.Now().Sub(versionTime(recs[i].Version)) > UploadCompletionGrace && hidden.of(ctx, f[0], f[1], recs[i]) {
					if err := e.sweepHidden(ctx, f[0], f[1], f[2], f[3]); err != nil && first == nil {
						first = fmt.Errorf("engine: sweep upload %s of a deleted container: %w", f[3], err)
					}
				}
				continue
			}
			seen++
			if err := e.sweepUpload(ctx, f[0], f[1], f[2], f[3]); err != nil && first == nil {
				first = fmt.Errorf("engine: sweep upload %s: %w", f[3], err)
			}
		}
		for _, ukey := range strays {
			if truncated && ukey > after {
				continue // past the page: the next one lists it again
			}
			f := strings.SplitN(ukey[len(base):], "\x00", 4)
			if err := e.sweepStrays(ctx, ls, strayOn[ukey], f[0], f[1], f[2], f[3]); err != nil && first == nil {
				first = fmt.Errorf("engine: sweep upload %s: records a dropped map left: %w", f[3], err)
			}
		}
		if !truncated || ctx.Err() != nil {
			return seen, first
		}
	}
}

// containerStamps answers, for one pass of SweepUploads, whether an
// upload record belongs to no container as the store has it synced: its
// container is gone, or was made again since (the record's stamp names
// another incarnation of the name, ofContainer). It asks the store once
// per tenant; a tenant it cannot list has no hidden uploads this pass.
type containerStamps struct {
	e       *Engine
	created map[string]map[string]time.Time // tenant → container → Created; nil: unknown
}

func (c *containerStamps) of(ctx context.Context, tenant, container string, up *record) bool {
	if c.created == nil {
		c.created = map[string]map[string]time.Time{}
	}
	names, ok := c.created[tenant]
	if !ok {
		if cs, err := c.e.cfg.Containers.Containers(ctx, tenant); err == nil {
			names = make(map[string]time.Time, len(cs))
			for _, ci := range cs {
				names[ci.Name] = ci.Created
			}
		}
		c.created[tenant] = names
	}
	if names == nil {
		return false
	}
	created, ok := names[container]
	return !ok || !ofContainer(up, created)
}

// sweepHidden aborts, under its lease, upload id in progress once the
// store, synced, confirms it belongs to no container: a CreateUpload
// that checked its container before a DeleteContainer and wrote its
// record after the deletion's abort pass (ATTACK24 F3). Nothing can list,
// complete or abort such an upload, so without this its record, its
// parts' data and its usage charge would stay for ever (review 24d R1).
// SweepUploads calls it only for records older than
// UploadCompletionGrace, far longer than a CreateUpload takes.
func (e *Engine) sweepHidden(ctx context.Context, tenant, container, key, id string) error {
	return e.withUpload(ctx, tenant, container, key, id, func(ctx context.Context, hold *uploadHold, up *record, at uploadAt) error {
		if isMarker(up) || up.Deleted {
			return nil // a marker is sweepUpload's
		}
		info, err := e.syncedContainer(ctx, tenant, container)
		switch {
		case err == nil && ofContainer(up, info.Created):
			return nil
		case err != nil && !errors.Is(err, ErrNoSuchContainer):
			return err
		}
		if err := hold.check(); err != nil {
			return err
		}
		return e.abortCharged(ctx, tenant, container, key, id, up, at)
	})
}

// sweepStrays removes, under the upload's lease, what the drives of ls
// hold of upload id where no kept map places it, made in a map gone from
// the history (strayUpload): its record and, on that drive, its parts'
// records and their shard files, sparing the data an artifact record of
// key names (as abort does). Only once findUpload serves nothing of the
// upload: no upload lives on under those records' keys (a part record
// of the same key on such a drive may be a replica of a live one's),
// and nothing ever reads them again but ListUploads, which would list
// the upload for ever (review 23b R3), or a later map that happens to
// place them again. A drive that does not answer keeps its records for
// the next sweep.
func (e *Engine) sweepStrays(ctx context.Context, ls listSet, on []bool, tenant, container, key, id string) error {
	hold, err := e.lockUpload(ctx, id)
	if err != nil {
		return err
	}
	defer hold.unlock()
	ctx = hold.ctx // writes under the lease carry it
	if _, _, err := e.findUpload(ctx, tenant, container, key, id); !errors.Is(err, ErrNoSuchUpload) {
		return err // served (they stay hidden behind it until it goes), or unknown
	}
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	ms := e.uploadMaps(e.mapFor(tenant, container))
	// The drives the listing saw the stray on (on), then the straggler
	// grace: another drive that hangs is not waited for (as dropMarker,
	// review 24c N2), and one holding the stray gets the clean-up's time
	// however slow (review 25b L1).
	recs, _ := e.readRecordsUntil(ctx, ls.drives, uploadKey(tenant, container, key, id), func(ok int, answered []bool) bool {
		for j, o := range on {
			if o && !answered[j] {
				return false
			}
		}
		return ok > 0
	})
	var keep map[[16]byte]bool
	var errs []error
	for j, r := range recs {
		if r == nil || !strayUpload(r, ms, ls.ids[j], tenant, container, key) {
			continue
		}
		if keep == nil {
			keep = map[[16]byte]bool{}
			for _, m := range ms {
				drives, _ := e.pgDrives(m, m.PGOf(tenant, container, key))
				arecs, answered := e.readRecordsK(ctx, drives, indexPrefix(tenant, container)+key, m.Policy.ReadQuorum())
				if answered < m.Policy.ReadQuorum() {
					return fmt.Errorf("%w: map epoch %d: %d of %d drives answered", ErrReadQuorum, m.Epoch, answered, len(drives))
				}
				refs, err := e.keptData(ctx, tenant, container, key, drives, m.Policy.ReadQuorum(), arecs)
				if err != nil {
					return err
				}
				for dataID := range refs {
					keep[dataID] = true
				}
			}
		}
		if err := hold.check(); err != nil {
			return err
		}
		if err := e.dropStray(ctx, ls.drives[j], tenant, container, key, id, r, keep); err != nil {
			errs = append(errs, fmt.Errorf("drive %s: %w", ls.ids[j], err))
		}
	}
	return errors.Join(errs...)
}

// dropStray removes upload record r of upload id from drive d, after the
// part records d holds under r's partsID and their shard files (but the
// data ids keep holds): each record before its files, the upload's
// last, so that a crash leaves what the next sweep finds again.
func (e *Engine) dropStray(ctx context.Context, d driver.Driver, tenant, container, key, id string, r *record, keep map[[16]byte]bool) error {
	err := eachRecord(ctx, d, partPrefix(tenant, container, partsID(id, r)), func(raw driver.Record, p *record) error {
		if err := d.DeleteRecord(ctx, raw.Key, raw.Version); err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
			return err
		}
		if p.Deleted {
			return nil
		}
		return e.deletePartShards(ctx, tenant, container, key, p, p.Shard, d, func(pt part) bool { return keep[pt.DataID] })
	})
	if err != nil {
		return err
	}
	if err := d.DeleteRecord(ctx, uploadKey(tenant, container, key, id), r.Version); err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
		return err
	}
	return nil
}

// purgeAborted removes the tombstone tomb of an aborted upload (ikey,
// tenant, container, key, id) from drives, with what a drive that missed
// the abort still holds of the upload: its record and its parts' records
// and shard files. The records of the upload go first, the tombstones
// only once every drive answered: a drive away now would keep a live
// record that, the tombstones gone, brought the aborted upload back
// (listed, taking parts). Else it is left for the next sweep.
func (e *Engine) purgeAborted(ctx context.Context, drives []driver.Driver, ikey, tenant, container, key, id string, tomb *record) error {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	recs, each := e.readRecordsEach(ctx, drives, ikey)
	for j, d := range drives {
		if d == nil || !each[j] {
			return errDriveAway
		}
	}
	if slices.ContainsFunc(recs, func(r *record) bool { return r != nil && !r.Deleted }) {
		// A drive missed the abort: its parts' records and shard files
		// are dropped as the abort dropped the others', in the set the
		// upload lived in, sparing the data an artifact of key names.
		if at, ok := e.abortedSet(tenant, container, key, tomb); ok {
			arecs, answered := e.readRecordsK(ctx, at.drives, indexPrefix(tenant, container)+key, tomb.Data)
			if answered < tomb.Data {
				return fmt.Errorf("%w: %d of %d drives answered", ErrReadQuorum, answered, len(at.drives))
			}
			keep, err := e.keptData(ctx, tenant, container, key, at.drives, tomb.Data, arecs)
			if err != nil {
				return err
			}
			if _, err := e.dropParts(ctx, tenant, container, key, partsID(id, tomb), at.drives, tomb.Data, keep); err != nil {
				return err
			}
		}
		for j, r := range recs {
			if r != nil && !r.Deleted {
				if err := drives[j].DeleteRecord(ctx, ikey, r.Version); err != nil && !errors.Is(err, driver.ErrNotFound) {
					return err
				}
			}
		}
	}
	e.deleteRecord(ctx, drives, ikey, driver.Version{})
	return nil
}

// errDriveAway is purgeAborted's error when a drive did not answer (up to
// the clean-up timeout): the sweep purges nothing more in that pass.
var errDriveAway = fmt.Errorf("%w: a drive did not answer; aborted uploads' tombstones stay", ErrReadQuorum)

// abortedSet returns the set an aborted upload lived in, from its
// tombstone: its PG in the map of the epoch the tombstone names (the
// current one if none), if the history still has that map.
func (e *Engine) abortedSet(tenant, container, key string, tomb *record) (uploadAt, bool) {
	cur := e.mapFor(tenant, container)
	m := cur
	if v, ok := tomb.Metadata[uploadEpochKey]; ok {
		m = nil
		for _, o := range append(append([]*placement.Map{cur}, e.otherLayouts(cur)...), e.olderMaps(cur)...) {
			if strconv.FormatUint(uint64(o.Epoch), 10) == v {
				m = o
				break
			}
		}
		if m == nil {
			return uploadAt{}, false
		}
	}
	pg := m.PGOf(tenant, container, key)
	drives, _ := e.pgDrives(m, pg)
	return uploadAt{m: m, pg: pg, drives: drives}, true
}

func (e *Engine) sweepUpload(ctx context.Context, tenant, container, key, id string) error {
	return e.withUpload(ctx, tenant, container, key, id, func(ctx context.Context, hold *uploadHold, mk *record, at uploadAt) error {
		if !isMarker(mk) {
			return nil
		}
		s, err := e.settle(ctx, tenant, container, key, id, mk, at)
		if err == nil && s.remains {
			return e.dropRemains(ctx, hold, tenant, container, key, id, mk, at)
		}
		if err != nil || s.state != completionPending || e.cfg.Now().Sub(versionTime(mk.Version)) < UploadCompletionGrace {
			return err
		}
		_, err = e.cfg.Containers.Container(ctx, tenant, container)
		if err == nil || errors.Is(err, ErrNoSuchContainer) {
			if cerr := hold.check(); cerr != nil {
				return cerr
			}
		}
		if errors.Is(err, ErrNoSuchContainer) {
			return e.abortCharged(ctx, tenant, container, key, id, mk, at) // usage too (review 25b L4)
		}
		if err != nil {
			return err
		}
		return e.revert(ctx, tenant, container, key, id, mk, at)
	})
}

// dropRemains removes, for a marker mk of a completion gone (settle) that
// lives in key's set of the current map (at), what older sets still hold
// of the upload (dropUploadElsewhere, as moveUpload does), then the marker
// once no drive of them may hold any (remainsElsewhere): every drive of
// those sets answered and holds nothing (review 22b F2). A marker in an
// older set, or whose remains could not all be dropped, stays for a later
// sweep; MoveUploads drops the remains too.
func (e *Engine) dropRemains(ctx context.Context, hold *uploadHold, tenant, container, key, id string, mk *record, at uploadAt) error {
	cur := e.mapFor(tenant, container)
	pg := cur.PGOf(tenant, container, key)
	if !at.same(uploadAt{m: cur, pg: pg}) {
		return nil
	}
	if err := hold.check(); err != nil {
		return err
	}
	if err := e.dropUploadElsewhere(ctx, tenant, container, key, id, cur, pg, partsID(id, mk), true); err != nil {
		return err
	}
	if e.remainsElsewhere(ctx, tenant, container, key, id, mk, at) {
		return nil
	}
	if err := hold.check(); err != nil {
		return err
	}
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	e.dropMarker(ctx, at.drives, uploadKey(tenant, container, key, id), mk)
	return nil
}

// dropMarker deletes the marker mk of a completion gone from drives, the
// set holding it, under ikey, if every drive of the set answers: one away
// may hold the upload in progress (it missed the Complete), which only
// the marker hides, and with the marker gone from the others that record
// would serve the completed, maybe deleted, upload again once the drive
// is back (review 24b S1). Records older than the marker go first and
// the marker last, so that a failure leaves the marker hiding what is
// left. It reports whether the marker was deleted; if not, a later sweep
// tries again.
func (e *Engine) dropMarker(ctx context.Context, drives []driver.Driver, ikey string, mk *record) bool {
	// One answer, then the straggler grace for the rest: a hung drive
	// counts as away (review 24c N2), not a wait of cleanupTimeout.
	recs, answered := e.readRecordsQuorum(ctx, drives, ikey, 1)
	for j, d := range drives {
		if d != nil && !answered[j] {
			return false
		}
	}
	for j, r := range recs {
		if r == nil || r.Version.Compare(mk.Version) >= 0 {
			continue
		}
		if err := drives[j].DeleteRecord(ctx, ikey, r.Version); err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
			return false
		}
	}
	e.deleteRecord(ctx, drives, ikey, mk.Version) // not a newer record (review 24c N1)
	return true
}

// RunUploadSweeper calls SweepUploads every interval (0 means
// DefaultUploadSweepInterval), and once a minute after it starts, until
// ctx ends; on each tick only if active reports true (nil: always). A
// cluster passes "this node leads Raft", so that one node, not all of
// them, walks the markers and takes their leases.
func (e *Engine) RunUploadSweeper(ctx context.Context, interval time.Duration, active func() bool) {
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
		if active != nil && !active() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, interval)
		n, err := e.SweepUploads(sctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			e.log.Warn("upload sweep incomplete; will retry", "markers", n, "err", err)
		}
	}
}
