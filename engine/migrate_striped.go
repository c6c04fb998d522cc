package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// Striped artifacts move slot by slot too. A striped record (stripe.go)
// lives in its key's PG (the home set) and names parts whose shard files
// are in the PGs its seed draws; a map change that gives some of those
// PGs' slots new drives, keeping the policy and the PG count, leaves
// every other shard file where it is, under the same name. So
// moveStriped copies part p's shard j from the old holder of slot j of
// p's PG to the new one, for the changed slots only, then writes the
// record again with the new map's layout fingerprint (the same version,
// seed, parts and data ids) to the home set's drives whose slot holds
// every part (writeMoved: the artifact stays readable from the old
// layout or the new at every step), and deletes the copied files from
// their old holders. Slots that could not be copied (the old holder is
// gone) are left to Heal (completeSet) once k slots of every part are
// there; fewer, and the artifact is re-encoded whole (move). Before,
// every map change re-encoded every striped artifact whose PGs' sets
// changed: 2.8-3.7x the ideal bytes moved at width 8 (make scale-test).
//
// The old layout's record on a drive leaving the home set is removed by
// cleanOlder, which deletes the part files that record's slot names in
// the old map only where the current map does not put the same part's
// same slot on the same drive (keepStripedFile): those files are the new
// layout's too.

// stripedSlots returns, per PG of rec's parts, the slots whose drive
// differs between src's map and cur, or errNotShardMove unless rec can
// move so: a live striped version placed in src under cur's policy, PG
// and PG count, and no drive in both sets of a PG (or of the home PG) at
// different slots.
func stripedSlots(cur *placement.Map, pg uint32, src location, rec *record) (map[uint32][]int, error) {
	if rec.Deleted || rec.IsInline || !rec.striped() || len(rec.Parts) == 0 || src.pg != pg || rec.PG != pg ||
		src.m.Policy != cur.Policy || rec.Data != cur.Policy.Data || rec.Parity != cur.Policy.Parity ||
		cur.PGCount() != rec.PGCount || src.m.PGCount() != rec.PGCount || !stripedIn(rec, src.m) {
		return nil, errNotShardMove
	}
	changed := map[uint32][]int{}
	pgs := append([]uint32{pg}, stripePGs(rec.Seed, rec.Width, rec.PGCount)...)
	for _, q := range pgs {
		if _, ok := changed[q]; ok {
			continue
		}
		oldSet, newSet := src.m.Set(q), cur.Set(q)
		if len(oldSet) != len(newSet) {
			return nil, errNotShardMove
		}
		slots := []int{}
		for j, id := range newSet {
			if id == oldSet[j] {
				continue
			}
			if slices.Contains(oldSet, id) {
				return nil, errNotShardMove
			}
			slots = append(slots, j)
		}
		changed[q] = slots
	}
	return changed, nil
}

// moveStriped moves rec, the newest version of key as the older set src
// holds it, into cur slot by slot (see above). It returns errNotShardMove,
// having left nothing behind, when rec cannot move so or some part would
// have fewer than k slots holding it.
func (e *Engine) moveStriped(ctx context.Context, tenant, container, key string, cur *placement.Map, pg uint32, src location, rec *record) error {
	changed, err := stripedSlots(cur, pg, src, rec)
	if err != nil {
		return err
	}
	served, _ := src.holding(rec.Version)
	if served == nil || !sameData(served, rec) {
		return errNotShardMove
	}
	n, k := cur.Policy.SetSize(), cur.Policy.ReadQuorum()
	// Slot j of every part was committed where the home set's slot j
	// holds the record (a striped write records only those slots).
	holds := func(j int) bool { return src.recs[j] != nil && sameData(src.recs[j], served) }
	var jobs []copyJob
	have := make([][]bool, len(served.Parts)) // per part and slot: the current map's drive holds the file
	for p, pt := range served.Parts {
		q := served.partPG(p)
		have[p] = make([]bool, n)
		newDrives, _ := e.pgDrives(cur, q)
		oldDrives, _ := e.pgDrives(src.m, q)
		for j := range n {
			if !holds(j) {
				continue
			}
			if !slices.Contains(changed[q], j) {
				have[p][j] = true
				continue
			}
			if newDrives[j] != nil { // an old holder gone fails its copy: rebuilt below
				jobs = append(jobs, copyJob{p, j, oldDrives[j], newDrives[j], shardOf(tenant, container, key, q, pt.DataID)})
			}
		}
	}
	codec, err := e.codec(served.Data, served.Parity, served.StripeSize)
	if err != nil {
		return err
	}
	copied := make([]bool, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, c := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			copied[i] = c.from != nil && copyShard(ctx, codec, served.Parts[c.p].Size, c.j, c.shard, c.from, c.to) == nil
		})
	}
	wg.Wait()
	for i, c := range jobs {
		if copied[i] {
			have[c.p][c.j] = true
		}
	}
	// A slot whose old holder could not give its file (a node down
	// mid-drain) is rebuilt from k others of its part's old set, so the
	// record can still name every part there; else a single dead holder
	// would fail the slot for every part in it and re-encode them all.
	rebuilt := e.rebuildSlots(ctx, tenant, container, key, cur, src, served, jobs2slots(jobs, copied))
	for p, slots := range rebuilt {
		for _, j := range slots {
			have[p][j] = true
		}
	}
	for p, slots := range rebuilt {
		q := served.partPG(p)
		newDrives, _ := e.pgDrives(cur, q)
		for _, j := range slots {
			jobs = append(jobs, copyJob{p, j, nil, newDrives[j], shardOf(tenant, container, key, q, served.Parts[p].DataID)})
			copied = append(copied, true)
		}
	}
	// The home set's slots that hold every part get the record.
	ok := make([]bool, n)
	count := n
	for j := range ok {
		ok[j] = true
		for p := range have {
			ok[j] = ok[j] && have[p][j]
		}
		if !ok[j] {
			count--
		}
	}
	// dropCopies deletes the copies made to the slots where mask is set.
	dropCopies := func(mask func(j int) bool) {
		for i, c := range jobs {
			if copied[i] && mask(c.j) {
				if err := c.to.DeleteShard(context.WithoutCancel(ctx), c.shard); err != nil && !errors.Is(err, driver.ErrNotFound) {
					e.log.Warn("shard delete failed", "pg", c.shard.PG, "shard", c.j, "err", err)
				}
			}
		}
	}
	if count < k {
		dropCopies(func(int) bool { return true })
		return errNotShardMove
	}
	drives, _ := e.pgDrives(cur, pg)
	moved := *served
	moved.Inline = nil
	moved.Layout = layoutOf(cur, served.Seed, served.Width, served.PGCount)
	w := e.artifactWrite(tenant, container, key, drives, k)
	if err := e.writeMoved(ctx, w, cur.Set(pg), k, &moved, nil, ok, src); err != nil {
		dropCopies(func(int) bool { return true })
		return fmt.Errorf("engine: slot-by-slot move of a striped artifact: %w", err)
	}
	// Copies to slots that missed another part are named by no record.
	dropCopies(func(j int) bool { return !ok[j] })
	// The copied files' old holders: the new layout does not use them.
	ctx = context.WithoutCancel(ctx)
	for i, c := range jobs {
		if !copied[i] || !ok[c.j] || c.from == nil {
			continue
		}
		// Unfenced, as deletePartShards: the old holder left the PG.
		from, err := e.cfg.Topology.Drive(src.m.Set(c.shard.PG)[c.j])
		if err != nil || from == nil {
			continue
		}
		if err := from.DeleteShard(ctx, c.shard); err != nil && !errors.Is(err, driver.ErrNotFound) {
			e.log.Warn("old shard delete failed", "pg", c.shard.PG, "shard", c.j, "err", err)
		}
	}
	return nil
}

// keepStripedFile reports whether the shard file of striped record r's
// part pt at slot j, as the map r is placed in (old) puts it, is also
// the current version's file there: cur puts the same slot of the same
// PG on the same drive and the current version (newest) names the same
// data id. cleanOlder must not delete such a file when it removes r, an
// older layout's record of a version moved slot by slot (moveStriped).
func keepStripedFile(old, cur *placement.Map, newest, r *record, pt part, j int) bool {
	if newest == nil || old == nil || !newest.striped() || !slices.ContainsFunc(newest.Parts, func(q part) bool { return q.DataID == pt.DataID }) {
		return false
	}
	p := slices.IndexFunc(r.Parts, func(q part) bool { return q.DataID == pt.DataID })
	if p < 0 {
		return false
	}
	q := r.partPG(p)
	if q != newest.partPG(p) || int(q) >= cur.PGCount() || int(q) >= old.PGCount() {
		return false
	}
	os, cs := old.Set(q), cur.Set(q)
	return j < len(os) && j < len(cs) && os[j] == cs[j]
}

// cleanOlderParts deletes the shard files of newest, a striped version
// the current map cur serves, from the drives that held a slot of one of
// its parts' PGs in an older map and hold none of that PG in cur: the
// copies of slots moved slot by slot whose old holder could not be
// reached when they moved (moveStriped deletes the others), or that Heal
// rebuilt elsewhere. A drive of cur's set of the PG at any slot keeps its
// file (one name per PG and data id: it may be that slot's).
func (e *Engine) cleanOlderParts(ctx context.Context, tenant, container, key string, cur *placement.Map, newest *record) error {
	var errs []error
	for _, m := range e.olderMaps(cur) {
		if m.PGCount() != newest.PGCount || m.Policy != cur.Policy {
			continue
		}
		for p, pt := range newest.Parts {
			q := newest.partPG(p)
			now := cur.Set(q)
			for _, id := range m.Set(q) {
				if slices.Contains(now, id) {
					continue
				}
				d, err := e.cfg.Topology.Drive(id)
				if err != nil || d == nil {
					continue // gone from the topology: nothing reaches its files
				}
				if err := d.DeleteShard(ctx, shardOf(tenant, container, key, q, pt.DataID)); err != nil && !errors.Is(err, driver.ErrNotFound) {
					errs = append(errs, fmt.Errorf("drive %s: %w", id, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// copyJob is one shard file moveStriped copies: part p's shard j, from
// its old holder (nil: rebuilt) to its new one.
type copyJob struct {
	p, j     int
	from, to driver.Driver
	shard    driver.Shard
}

// jobs2slots returns, per part, the slots whose copy failed.
func jobs2slots(jobs []copyJob, copied []bool) map[int][]int {
	failed := map[int][]int{}
	for i, c := range jobs {
		if !copied[i] {
			failed[c.p] = append(failed[c.p], c.j)
		}
	}
	return failed
}

// rebuildSlots rebuilds, for each part p of rec (as placed in src's map)
// with slots in failed, those slots' shard files onto cur's drives of the
// part's PG from k other slots of its old set (each block verified by its
// checksum, as Heal does: a slot without the file is passed over). It returns, per part, the
// slots it rebuilt; a part it could not rebuild is left out (the slots
// then fail the record, and the artifact is re-encoded or retried).
func (e *Engine) rebuildSlots(ctx context.Context, tenant, container, key string, cur *placement.Map, src location, rec *record, failed map[int][]int) map[int][]int {
	if len(failed) == 0 {
		return nil
	}
	codec, err := e.codec(rec.Data, rec.Parity, rec.StripeSize)
	if err != nil {
		return nil
	}
	out := map[int][]int{}
	for p, slots := range failed {
		q := rec.partPG(p)
		shard := shardOf(tenant, container, key, q, rec.Parts[p].DataID)
		oldDrives, _ := e.pgDrives(src.m, q)
		newDrives, _ := e.pgDrives(cur, q)
		ws := map[int]io.Writer{}
		sws := map[int]driver.ShardWriter{}
		for _, j := range slots {
			if newDrives[j] == nil {
				continue
			}
			sw, err := newDrives[j].CreateShard(ctx, shard)
			if err != nil {
				continue
			}
			ws[j], sws[j] = sw, sw
		}
		if len(ws) == 0 {
			continue
		}
		_, err := codec.Rebuild(ctx, rec.Parts[p].Size, func(ctx context.Context, j int, off, length int64) (io.ReadCloser, error) {
			if slices.Contains(slots, j) || oldDrives[j] == nil {
				return nil, errArtifactIncomplete
			}
			return oldDrives[j].ReadShard(ctx, shard, off, length)
		}, ws)
		for j, sw := range sws {
			if err == nil && sw.Commit(ctx) == nil {
				out[p] = append(out[p], j)
			}
			sw.Abort()
		}
	}
	return out
}
