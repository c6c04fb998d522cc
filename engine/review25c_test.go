package engine

import (
	"bytes"
	"slices"
	"testing"

	"github.com/vaultaire/vaultaire/driver/faulty"
	"github.com/vaultaire/vaultaire/placement"
)

// Review 25c of 6ad9cdb (writeBack's migration skip only while no older
// version is held by k drives of the set).

// r25cMaps returns a 2+2 map over d00..d05 (epoch 1) and the map after it
// (epoch 2) in which every PG keeps slots 0 and 1 and gets two other
// drives in slots 2 and 3 (a join or drain: the records on slots 0 and 1
// are placed in both sets).
func r25cMaps(t *testing.T, r *histRig) (base, next *placement.Map) {
	t.Helper()
	base = r.newMap(t, 6, placement.Policy{Data: 2, Parity: 2}, 4, 1)
	next = r.remap(t, base, 6, 2, func(set []placement.DriveID) []placement.DriveID {
		var spare []placement.DriveID
		for _, id := range r.ids {
			if !slices.Contains(set, id) {
				spare = append(spare, id)
			}
		}
		return append(set[:2:2], spare[:2]...)
	})
	return base, next
}

// TestReview25cWriteBackOfMigrationCopyLosesShards: two PUTs across a
// map change. Y (older version) planned under the new map lands on
// A,B,E,F (or, fence-compatible: its records are refused as stale by A,B,
// which already hold X, and land on E,F); X (newer) planned under the
// older map lands on A,B,C,D. Both acknowledged, X wins. The current set
// then holds X on A,B (placed in both sets, "migration's copy") and Y on
// E,F. Since 6ad9cdb a read writes X's record back to E,F (heldBefore
// finds Y), though E,F have none of X's shard files (C,D hold slots 2 and
// 3). Migration then finds the current set whole, does not copy C,D's
// files (copyLacking skips drives holding the version), and cleanOlder
// deletes them: X is left with no spare shard (records on four drives,
// shard files on two) until the healer takes the key from the in-memory
// queue the read put it in (or a scan finds it). Before 6ad9cdb the read
// skipped the write-back and migration copied the files (copyLacking).
func TestReview25cWriteBackOfMigrationCopyLosesShards(t *testing.T) {
	for _, readFirst := range []bool{false, true} {
		name := "no read before migration"
		if readFirst {
			name = "read before migration"
		}
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			r := newHistRig(t)
			base, next := r25cMaps(t, r)
			y := bytes.Repeat([]byte("y"), 300<<10)
			x := bytes.Repeat([]byte("x"), 300<<10)
			r.topo.use(next, base)
			r.put(t, "k", y)
			r.topo.use(base) // a node still on the older map
			r.put(t, "k", x)
			r.topo.use(next, base)
			if readFirst {
				got, err := read(ctx, r.e, "k", 0, -1)
				if err != nil || !bytes.Equal(got, x) {
					t.Fatalf("read before migration: %d bytes, %v; want X", len(got), err)
				}
				t.Logf("heal queue after the read: %v", r.e.Degraded())
				if _, err := read(ctx, r.e, "k", 0, -1); err != nil {
					t.Fatal(err)
				}
			}
			if st := migrateAll(t, r.e, 10); st.Failed != 0 {
				t.Fatalf("MigrateAll: %+v", st)
			}
			if res, err := r.e.Migrate(ctx, "t", "c", "k"); err != nil || res.Incomplete {
				t.Fatalf("second Migrate: %+v, %v", res, err)
			}
			r.topo.use(next) // migration done: the older map is dropped
			set := next.Set(pgOf(next, "t", "c", "k"))
			// 2+2 must survive any two drives lost: lose slots 0 and 1.
			r.topo.drives[set[0]].SetOffline(true)
			r.topo.drives[set[1]].SetOffline(true)
			got, err := read(ctx, r.e, "k", 0, -1)
			r.topo.drives[set[0]].SetOffline(false)
			r.topo.drives[set[1]].SetOffline(false)
			if err != nil || !bytes.Equal(got, x) {
				t.Errorf("after migration, slots 0 and 1 offline: %d bytes, %v; want X from slots 2 and 3", len(got), err)
			}
			healed, err := r.e.Heal(ctx, "t", "c", "k")
			t.Logf("Heal after migration: %v, %v", healed, err)
		})
	}
}

// TestReview25cSkipMissesOlderOnFewerThanK: the narrowed skip still
// applies when the failed write's version is on k drives and no single
// older version is on k drives of the set: a third version (a second
// failed PUT, on one drive) or a drive that missed the acknowledged
// version (offline during its PUT, not healed yet). 2+2 with a map
// history (same sets): a read every drive answered serves the failed
// PUT's version without writing it back (have 2 < m+1 = 3); a read the
// other two drives answered then serves a version before it. Without a
// history the first read writes back or answers 503.
func TestReview25cSkipMissesOlderOnFewerThanK(t *testing.T) {
	for _, tc := range []string{"third version", "drive missed v1"} {
		t.Run(tc, func(t *testing.T) {
			ctx := t.Context()
			r, topo, old := newR25Rig(t, placement.Policy{Data: 2, Parity: 2})
			v1 := bytes.Repeat([]byte("1"), 300<<10)
			v2 := bytes.Repeat([]byte("2"), 300<<10)
			v3 := bytes.Repeat([]byte("3"), 300<<10)
			eio := faulty.Rule{Op: faulty.OpPutRecord, Fault: faulty.EIO}
			if tc == "drive missed v1" {
				r.set([]int{3}, faulty.Rule{Op: faulty.OpAll, Fault: faulty.Offline})
			}
			if err := r.putBytes(ctx, "k", v1); err != nil {
				t.Fatal(err)
			}
			r.set([]int{0, 1, 2, 3})
			topo.setOlder(old)
			if tc == "third version" {
				r.set([]int{0, 1, 3}, eio)
				if err := r.putBytes(ctx, "k", v2); err == nil {
					t.Fatal("v2 acknowledged")
				}
				r.set([]int{0, 1, 2, 3})
			}
			r.set([]int{2, 3}, eio)
			if err := r.putBytes(ctx, "k", v3); err == nil {
				t.Fatal("v3 acknowledged with two of four drives failing record writes")
			}
			got, err := r.read(ctx, "k")
			served := err == nil && bytes.Equal(got, v3)
			t.Logf("read with every drive answering: %v, failed PUT's version served: %v", err, served)
			r.set([]int{0, 1, 2, 3})
			r.set([]int{0, 1}, faulty.Rule{Op: faulty.OpAll, Fault: faulty.Offline})
			got, err = r.read(ctx, "k")
			t.Logf("read with v3's two drives away: %v (%d bytes, v1 %v, v2 %v)", err, len(got), bytes.Equal(got, v1), bytes.Equal(got, v2))
			if served && err == nil && !bytes.Equal(got, v3) {
				t.Fatal("a read every drive answered served the failed PUT's version, a later read a version before it")
			}
		})
	}
}
