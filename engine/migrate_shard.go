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

// Shard-level migration. When a map change gives a PG new drives in some
// slots but keeps its erasure policy and PG number (placement.Plan moves
// single (PG, slot) entries), a version's shard j is the same bytes under
// the same file name whichever drive holds slot j: moveShards copies the
// shard files of the changed slots from their old holders and writes
// those slots' records, instead of re-encoding the whole artifact into the
// new set. The unchanged slots are not touched. A changed slot whose old
// holder cannot give its files is left to Heal (Migrate's completeSet),
// which rebuilds it from k others once the new set serves the version.

// errNotShardMove says a move is not a shard-level one: move re-encodes.
var errNotShardMove = errors.New("engine: not a shard-level move")

// shardMovable returns the slots of pg's set in cur whose drive differs
// from src's set, or errNotShardMove unless rec can move shard by shard:
// a live version in shard files, placed under cur's policy in the same PG,
// and no drive in both sets at different slots (its one file name would
// have to hold two shards).
func shardMovable(cur *placement.Map, pg uint32, src location, rec *record) ([]int, error) {
	if rec.Deleted || rec.IsInline || len(rec.Parts) == 0 || src.pg != pg || src.m.Policy != cur.Policy ||
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
			copied[j] = e.copyShards(ctx, tenant, container, key, pg, served.Parts, src.drives[j], drives[j]) == nil
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

// copyShards copies the shard files of parts (of key, in pg) from drive
// from to drive to, committing each only when read whole.
func (e *Engine) copyShards(ctx context.Context, tenant, container, key string, pg uint32, parts []part, from, to driver.Driver) error {
	for _, p := range parts {
		s := shardOf(tenant, container, key, pg, p.DataID)
		if err := copyShard(ctx, s, from, to); err != nil {
			return fmt.Errorf("engine: copy shard %s/%s part of %d bytes: %w", tenant, container, p.Size, err)
		}
	}
	return nil
}

// copyShard copies shard file s from drive from to drive to.
func copyShard(ctx context.Context, s driver.Shard, from, to driver.Driver) error {
	rc, err := from.ReadShard(ctx, s, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	w, err := to.CreateShard(ctx, s)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, rc); err != nil {
		w.Abort()
		return err
	}
	return w.Commit(ctx)
}
