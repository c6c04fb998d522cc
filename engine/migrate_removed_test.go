package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"

	"github.com/vaultaire/vaultaire/placement"
)

// walkPass walks every key once with MigrateAll, going on past failed
// batches as a migrator pass does, and returns the totals and the errors.
func walkPass(ctx context.Context, e *Engine) (MigrateStats, error) {
	var total MigrateStats
	var errs []error
	after := ""
	for {
		st, err := e.MigrateAll(ctx, after, 1000)
		total.Keys += st.Keys
		total.Moved += st.Moved
		total.Failed += st.Failed
		if err != nil {
			errs = append(errs, err)
		}
		if after = st.Next; after == "" {
			return total, errors.Join(errs...)
		}
	}
}

// joinRig returns a rig holding 12 keys of the given sizes (in turn)
// written under 2+2 on 4 drives, then joined to 4+2 on 6 (so the sets
// share every older drive): the older map, the joined one, and the keys'
// bytes.
func joinRig(t *testing.T, sizes []int) (*migRig, *placement.Map, *placement.Map, map[string][]byte) {
	t.Helper()
	r := newMigRig(t)
	old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	join := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
	r.useChain([]*placement.Map{old})
	want := map[string][]byte{}
	for i := range 12 {
		k := fmt.Sprintf("k%02d", i)
		want[k] = randBytes(uint64(i+1), sizes[i%len(sizes)])
		r.put(t, k, want[k])
	}
	r.useChain([]*placement.Map{old, join})
	return r, old, join, want
}

// TestMigrateAfterForcedRemoval: a join (2+2 on 4 drives to 4+2 on 6)
// whose new drive d05 dies for good before migration finished, and is
// then removed (`vaultd cluster remove --force`: a map of the 5 drives
// left). The older maps name d05, which the topology now reports
// removed: migration must move everything readable into the new map and
// leave both older maps with a Residue of 0, so they can be dropped,
// instead of waiting for d05 for ever.
func TestMigrateAfterForcedRemoval(t *testing.T) {
	ctx := t.Context()
	r, old, join, want := joinRig(t, []int{900, 70 << 10, 300 << 10})
	r.topo.drives["d05"].SetOffline(true)
	pass := func() error {
		_, err := walkPass(ctx, r.e)
		return err
	}
	for range 2 {
		if err := pass(); err != nil {
			t.Logf("pass with d05 offline: %v", err)
		}
	}
	r.topo.remove("d05")
	removed, err := placement.NewMap(r.pdrives[:5], placement.Policy{Data: 2, Parity: 2}, 16, 3)
	if err != nil {
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{old, join, removed})
	var clean bool
	for i := range 3 {
		err := pass()
		if clean = err == nil; clean {
			break
		}
		t.Logf("pass %d after the removal: %v", i+1, err)
	}
	if !clean {
		t.Fatalf("no clean migration pass after d05 was removed")
	}
	for _, m := range []*placement.Map{old, join} {
		if n, err := r.e.Residue(ctx, m); err != nil || n != 0 {
			t.Errorf("Residue(epoch %d) after the removal = %d, %v; want 0, nil", m.Epoch, n, err)
		}
	}
	r.useChain([]*placement.Map{removed}) // both dropped
	for k, b := range want {
		if got, err := read(ctx, r.e, k, 0, -1); err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s after the older maps were dropped: %d bytes (want %d), %v", k, len(got), len(b), err)
		}
	}
}

// TestMigrateWaitsForWholeSet: a join (2+2 on 4 drives to 4+2 on 6, so
// the sets share every older drive) while a new drive is offline. Moving
// then would replace the 2+2 copies on the shared drives by a 4+2 set
// short of a shard: one spare shard instead of two. The move waits (the
// older map is kept, Residue counts the key), reads go on, and once the
// drive is back the next pass moves everything onto a whole set.
func TestMigrateWaitsForWholeSet(t *testing.T) {
	ctx := t.Context()
	r, old, cur, want := joinRig(t, []int{0, 900, 70 << 10, 300 << 10})
	pass := func() (MigrateStats, error) { return walkPass(ctx, r.e) }
	readAll := func(when string) {
		t.Helper()
		for k, b := range want {
			if got, err := read(ctx, r.e, k, 0, -1); err != nil || !bytes.Equal(got, b) {
				t.Errorf("%s: %s: %d bytes (want %d), %v", when, k, len(got), len(b), err)
			}
		}
	}
	r.topo.drives["d05"].SetOffline(true)
	st, err := pass()
	if !errors.Is(err, errMoveDeferred) || st.Moved != 0 || st.Failed != len(want) {
		t.Errorf("pass with d05 offline: %+v, %v; want every key deferred", st, err)
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n == 0 {
		t.Errorf("Residue(old) with d05 offline = %d, %v; want > 0 (the older copies kept)", n, err)
	}
	readAll("d05 offline")
	r.topo.drives["d05"].SetOffline(false)
	if st, err := pass(); err != nil || st.Moved != len(want) {
		t.Fatalf("pass with d05 back: %+v, %v; want every key moved", st, err)
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
		t.Errorf("Residue(old) after the pass = %d, %v; want 0", n, err)
	}
	r.useChain([]*placement.Map{cur})
	readAll("the older map dropped")
	for k := range want {
		pg := pgOf(cur, "t", "c", k)
		for j, id := range cur.Set(pg) {
			if _, err := r.topo.drives[id].GetRecord(ctx, indexPrefix("t", "c")+k); err != nil {
				t.Errorf("%s: drive %s (slot %d) of the current set: %v", k, id, j, err)
			}
		}
	}
}

// TestMigratePassGoesOnAfterFailedBatch: with one drive of the current
// map offline, the moves into its sets are deferred and fail their batch.
// The pass goes on to the next batches (probe 16: it stopped at the first
// failed batch, so every pass began again at the start and keys after the
// first batch whose new set lacks the offline drive never moved), and is
// not clean.
func TestMigratePassGoesOnAfterFailedBatch(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	cur := r.newMap(t, 6, placement.Policy{Data: 2, Parity: 2}, 32, 2)
	r.useChain([]*placement.Map{old})
	const n = 1300
	for i := range n {
		r.put(t, fmt.Sprintf("k%05d", i), randBytes(uint64(i), 64))
	}
	r.useChain([]*placement.Map{old, cur})
	r.topo.drives["d05"].SetOffline(true)
	c := &fakeCoordinator{topo: r.topo}
	c.leader.Store(true)
	if clean, _ := r.e.migratePass(ctx, c, slog.New(slog.DiscardHandler)); clean {
		t.Errorf("a pass with deferred moves was clean")
	}
	// keys after the first batch whose current set does not hold d05
	movable, stillOld := 0, 0
	for i := 1000; i < n; i++ {
		k := fmt.Sprintf("k%05d", i)
		if slices.Contains(cur.Set(cur.PGOf("t", "c", k)), "d05") {
			continue
		}
		movable++
		res, err := r.e.Migrate(ctx, "t", "c", k)
		if err != nil {
			t.Fatalf("Migrate(%s): %v", k, err)
		}
		if res.Moved {
			stillOld++
		}
	}
	t.Logf("keys after the first batch not touching d05: %d; left in the old map by the pass: %d", movable, stillOld)
	if stillOld > 0 {
		t.Errorf("%d of %d movable keys after the first batch were never migrated while d05 was offline", stillOld, movable)
	}
}

// TestMigrateForcedRemovalNewPolicy: a dead drive force-removed from 4+2
// on 6 drives leaves 5, where the map's policy becomes 3+2. Every drive
// of the new set is in the older set too, and the older set has one
// spare shard: replacing its records one drive at a time would leave
// neither set a read quorum after the second, so migration used to stop
// there every pass and the older map stayed for ever (NOTE13). The
// replaced records now carry the older placement's record, whose shard
// files stay until the move is done (record.Prev): every key moves, reads
// hold throughout, and the older map empties.
func TestMigrateForcedRemovalNewPolicy(t *testing.T) {
	for _, width := range []int{1, 4} {
		t.Run(fmt.Sprintf("width %d", width), func(t *testing.T) { forcedRemovalNewPolicy(t, width) })
	}
}

func forcedRemovalNewPolicy(t *testing.T, width int) {
	ctx := t.Context()
	r := newMigRig(t)
	old := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 1)
	old.Width = width
	r.useChain([]*placement.Map{old})
	want := map[string][]byte{}
	sizes := []int{900, 70 << 10, 300 << 10, 1 << 20} // the largest two striped at width 4
	for i := range 12 {
		k := fmt.Sprintf("k%02d", i)
		want[k] = randBytes(uint64(i+1), sizes[i%len(sizes)])
		r.put(t, k, want[k])
	}
	r.topo.remove("d05")
	removed, err := placement.NewMap(r.pdrives[:5], placement.Policy{Data: 3, Parity: 2}, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	removed.Width = width
	r.useChain([]*placement.Map{old, removed})
	readAll := func(when string) {
		t.Helper()
		for k, b := range want {
			if got, err := read(ctx, r.e, k, 0, -1); err != nil || !bytes.Equal(got, b) {
				t.Errorf("%s: %s: %d bytes (want %d), %v", when, k, len(got), len(b), err)
			}
		}
	}
	readAll("before migration")
	var clean bool
	for i := range 3 {
		_, err := walkPass(ctx, r.e)
		if clean = err == nil; clean {
			break
		}
		t.Logf("pass %d: %v", i+1, err)
	}
	if !clean {
		t.Fatalf("no clean migration pass after d05 was removed")
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
		t.Errorf("Residue(old) = %d, %v; want 0, nil", n, err)
	}
	r.useChain([]*placement.Map{removed}) // dropped
	readAll("the older map dropped")
	// Only the new placement's shard files are left: a file per drive
	// and part of each key not inline (a striped key's parts spread over
	// the drives of their PGs).
	files, held := 0, 0
	for k, b := range want {
		if len(b) <= DefaultInlineMax {
			continue
		}
		a, err := r.e.Open(ctx, "t", "c", k)
		if err != nil {
			t.Fatal(err)
		}
		files += 5 * len(a.rec.Parts)
	}
	for id, dir := range r.dirs {
		if id != "d05" {
			held += len(shardFiles(t, dir))
		}
	}
	if held != files {
		t.Errorf("the drives hold %d shard files, want %d", held, files)
	}
}

// TestMigrateCarryingPrevCrash: the move of TestMigrateForcedRemovalNewPolicy
// stopped after each of its record writes in turn, as by a crash (every
// drive goes away at once, so nothing is rolled back): the key reads back
// from whichever set serves it. Then the next pass finishes the move, or
// a client overwrites or deletes the key first (replacing records that
// carry the older one): either way only the current placement is left,
// none of the older placement's shard files, and the older map empties.
func TestMigrateCarryingPrevCrash(t *testing.T) {
	for _, then := range []string{"pass", "overwrite", "delete"} {
		for _, size := range []int{900, 300 << 10} {
			for stop := 1; stop <= 5; stop++ {
				t.Run(fmt.Sprintf("%s, %d bytes, stop after write %d", then, size, stop), func(t *testing.T) {
					carryingPrevCrash(t, then, size, stop)
				})
			}
		}
	}
}

func carryingPrevCrash(t *testing.T, then string, size, stop int) {
	ctx := t.Context()
	r := newMigRig(t)
	old := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 1)
	r.useChain([]*placement.Map{old})
	want := randBytes(uint64(size+stop), size)
	r.put(t, "k", want)
	r.topo.remove("d05")
	removed, err := placement.NewMap(r.pdrives[:5], placement.Policy{Data: 3, Parity: 2}, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{old, removed})
	var olderFiles []string // the older placement's
	for _, id := range r.ids[:5] {
		olderFiles = append(olderFiles, shardFiles(t, r.dirs[id])...)
	}
	writes := 0
	crash := func() {
		if writes++; writes == stop {
			for _, id := range r.ids[:5] {
				r.topo.drives[id].SetOffline(true)
			}
		}
	}
	r.hook.Store(&crash)
	_, merr := r.e.Migrate(ctx, "t", "c", "k")
	r.hook.Store(nil)
	for _, id := range r.ids[:5] {
		r.topo.drives[id].SetOffline(false)
	}
	if writes < stop {
		t.Fatalf("the move made %d record writes, want at least %d", writes, stop)
	}
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after the crash (migrate: %v): %d bytes (want %d), %v", merr, len(got), len(want), err)
	}
	switch then {
	case "overwrite":
		want = randBytes(uint64(size+stop+1), size+1)
		r.put(t, "k", want)
	case "delete":
		if err := r.e.Delete(ctx, "t", "c", "k"); err != nil {
			t.Fatal(err)
		}
		want = nil
	}
	if _, err := walkPass(ctx, r.e); err != nil {
		t.Fatalf("pass after the crash: %v", err)
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
		t.Fatalf("Residue(old) = %d, %v; want 0, nil", n, err)
	}
	r.useChain([]*placement.Map{removed})
	got, err := read(ctx, r.e, "k", 0, -1)
	switch {
	case want == nil && !errors.Is(err, ErrNoSuchArtifact):
		t.Fatalf("the older map dropped: read of the deleted key: %d bytes, %v; want ErrNoSuchArtifact", len(got), err)
	case want != nil && (err != nil || !bytes.Equal(got, want)):
		t.Fatalf("the older map dropped: %d bytes (want %d), %v", len(got), len(want), err)
	}
	// The older placement's shard files are gone. (The interrupted
	// move's own may be left, unnamed by any record, as a crashed Put
	// leaves its files.)
	for _, f := range olderFiles {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("the older placement's shard file %s is left", f)
		}
	}
}
