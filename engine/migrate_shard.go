package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/erasure"
	"github.com/vaultaire/vaultaire/placement"
)

// Shard-level migration. When a map change gives a PG new drives in some
// slots but keeps its erasure policy and PG number (placement.Plan moves
// single (PG, slot) entries), a version's shard j is the same bytes under
// the same file name whichever drive holds slot j: moveShards copies the
// shard files of the changed slots from their old holders and writes
// those slots' records, instead of re-encoding the whole artifact into the
// new set. The unchanged slots are not touched. A changed slot whose old
// holder cannot give its files is left to Heal (Migrate's completeSet),
// which rebuilds it from k others once the new set serves the version.
// Striped records (stripe.go) move slot by slot too, part by part
// (moveStriped, migrate_striped.go).

// errNotShardMove says a move is not a shard-level one: move re-encodes.
var errNotShardMove = errors.New("engine: not a shard-level move")

// shardMovable returns the slots of pg's set in cur whose drive differs
// from src's set, or errNotShardMove unless rec can move shard by shard:
// a live version in shard files, placed under cur's policy in the same PG,
// and no drive in both sets at different slots (its one file name would
// have to hold two shards).
func shardMovable(cur *placement.Map, pg uint32, src location, rec *record) ([]int, error) {
	if rec.Deleted || rec.IsInline || rec.striped() || len(rec.Parts) == 0 || src.pg != pg || src.m.Policy != cur.Policy ||
		rec.Data != cur.Policy.Data || rec.Parity != cur.Policy.Parity || rec.PG != pg {
		return nil, errNotShardMove
	}
	oldSet, newSet := src.m.Set(src.pg), cur.Set(pg)
	if len(oldSet) != len(newSet) {
		return nil, errNotShardMove
	}
	var changed []int
	for j, id := range newSet {
		if id == oldSet[j] {
			continue
		}
		if slices.Contains(oldSet, id) {
			return nil, errNotShardMove
		}
		changed = append(changed, j)
	}
	return changed, nil
}

// moveShards moves rec, the newest version of key as the older set src
// holds it, into pg's set of cur slot by slot (see above). It returns
// errNotShardMove, having written nothing, when the version cannot move
// so or fewer than k slots of the new set would hold it: move then
// re-encodes it. Writes go through cur's (fenced) drives.
func (e *Engine) moveShards(ctx context.Context, tenant, container, key string, cur *placement.Map, pg uint32, src location, rec *record) error {
	if rec.striped() {
		return e.moveStriped(ctx, tenant, container, key, cur, pg, src, rec) // migrate_striped.go
	}
	changed, err := shardMovable(cur, pg, src, rec)
	if err != nil {
		return err
	}
	served, _ := src.holding(rec.Version)
	if served == nil || !sameData(served, rec) {
		return errNotShardMove
	}
	holds := func(j int) bool { return src.recs[j] != nil && sameData(src.recs[j], served) }
	kept := 0 // unchanged slots already holding the version
	for j := range cur.Set(pg) {
		if !slices.Contains(changed, j) && holds(j) {
			kept++
		}
	}
	drives, _ := e.pgDrives(cur, pg)
	n := len(drives)
	copied := make([]bool, n)
	var wg sync.WaitGroup
	for _, j := range changed {
		if !holds(j) || src.drives[j] == nil || drives[j] == nil {
			continue
		}
		wg.Go(func() {
			copied[j] = e.copyShards(ctx, tenant, container, key, pg, served, j, src.drives[j], drives[j]) == nil
		})
	}
	wg.Wait()
	dropCopies := func(which []bool) {
		for _, p := range served.Parts {
			e.deleteShards(ctx, drives, shardOf(tenant, container, key, pg, p.DataID), which)
		}
	}
	got := 0
	for _, c := range copied {
		if c {
			got++
		}
	}
	if kept+got < cur.Policy.ReadQuorum() {
		dropCopies(copied)
		return errNotShardMove
	}
	moved := *served
	moved.Inline = nil
	w := e.artifactWrite(tenant, container, key, drives, 0)
	res := w.putAll(ctx, &moved, nil, copied)
	took := kept
	failed := make([]bool, n)
	for j, r := range res {
		switch {
		case !copied[j]:
		case r.err == nil:
			took++
		default:
			failed[j] = true
		}
	}
	dropCopies(failed)
	if took < cur.Policy.ReadQuorum() {
		w.rollback(ctx, &moved, res)
		dropCopies(copied)
		return fmt.Errorf("%w: shard-level move: %d of %d slots hold the version, need %d", ErrWriteQuorum, took, n, cur.Policy.ReadQuorum())
	}
	w.collect(ctx, &moved, res)
	return nil
}

// copyShards copies shard j of each of rec's parts (of key, in pg) from
// drive from to drive to, each verified block by block as it streams
// through (erasure.Codec.Verify) and committed only if intact: a corrupt
// or torn source is not spread, and the slot is left to Heal.
func (e *Engine) copyShards(ctx context.Context, tenant, container, key string, pg uint32, rec *record, j int, from, to driver.Driver) error {
	codec, err := e.codec(rec.Data, rec.Parity, rec.StripeSize)
	if err != nil {
		return err
	}
	for _, p := range rec.Parts {
		s := shardOf(tenant, container, key, pg, p.DataID)
		if err := copyShard(ctx, codec, p.Size, j, s, from, to); err != nil {
			return fmt.Errorf("engine: copy shard %d of %s/%s (a part of %d bytes): %w", j, tenant, container, p.Size, err)
		}
	}
	return nil
}

// copyShard copies shard file s, shard j of a part of size bytes, from
// drive from to drive to, verifying it on the way.
func copyShard(ctx context.Context, codec *erasure.Codec, size int64, j int, s driver.Shard, from, to driver.Driver) error {
	w, err := to.CreateShard(ctx, s)
	if err != nil {
		return err
	}
	open := func(ctx context.Context, _ int, off, length int64) (io.ReadCloser, error) {
		rc, err := from.ReadShard(ctx, s, off, length)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.TeeReader(rc, w), rc}, nil
	}
	if err := codec.Verify(ctx, size, j, open); err != nil {
		w.Abort()
		return err
	}
	return w.Commit(ctx)
}

// copyLacking gives the drives of loc, the current set (cur, pg) serving
// newest, that answered without it their shard by copying the shard files
// from the drive that held the same slot of the same PG under the same
// policy in an older map and still holds the version there (its record
// says which shard it holds), then writing their record. It returns the
// slots it completed and marks them in loc.recs; the others are left to
// Heal (completeSet), which rebuilds from k others. It must run before
// cleanOlder removes the old holders.
func (e *Engine) copyLacking(ctx context.Context, tenant, container, key string, cur *placement.Map, pg uint32, loc location, newest *record) []int {
	if newest.Deleted || newest.IsInline || newest.striped() || len(newest.Parts) == 0 {
		return nil
	}
	ikey := indexPrefix(tenant, container) + key
	set := cur.Set(pg)
	copied := make([]bool, len(set))
	var wg sync.WaitGroup
	for j, r := range loc.recs {
		has := r != nil && r.Version == newest.Version && sameData(r, newest)
		if has || !loc.answered[j] || loc.drives[j] == nil {
			continue
		}
		wg.Go(func() {
			for _, m := range e.olderMaps(cur) {
				if m.Policy != cur.Policy || pgOf(m, tenant, container, key) != pg || m.Set(pg)[j] == set[j] {
					continue
				}
				from, err := e.cfg.Topology.Drive(m.Set(pg)[j])
				if err != nil {
					continue
				}
				raw, err := from.GetRecord(ctx, ikey)
				if err != nil {
					continue
				}
				old, err := unmarshalRecord(raw.Data)
				if err != nil || old.Version != newest.Version || !sameData(old, newest) || !placedIn(old, m, pg, j) {
					continue
				}
				if e.copyShards(ctx, tenant, container, key, pg, newest, j, from, loc.drives[j]) == nil {
					copied[j] = true
					return
				}
			}
		})
	}
	wg.Wait()
	if !slices.Contains(copied, true) {
		return nil
	}
	moved := *newest
	moved.Inline = nil
	w := e.artifactWrite(tenant, container, key, loc.drives, 0)
	// A drive that refused it as stale holds a newer version, which may
	// name moved's files too (a metadata update): neither collected nor
	// deleted (as writeMoved).
	w.copied = true
	res := w.putAll(ctx, &moved, nil, copied)
	stale := make([]bool, len(set))
	for j := range res {
		stale[j] = errors.Is(res[j].err, driver.ErrStale)
	}
	w.collect(ctx, &moved, res)
	var done []int
	failed := make([]bool, len(set))
	for j, r := range res {
		switch {
		case !copied[j] || stale[j]:
		case r.err == nil:
			done = append(done, j)
			placed := moved
			placed.Shard = j
			loc.recs[j] = &placed
		default:
			failed[j] = true
		}
	}
	for _, p := range newest.Parts {
		e.deleteShards(ctx, loc.drives, shardOf(tenant, container, key, pg, p.DataID), failed)
	}
	return done
}
