package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// TestMapHistoryUnreadableRemains: a small (inline) write under an older
// map that reached fewer than k drives and could not be rolled back (the
// drives had moved on to a newer map epoch and fenced the rollback) left
// records that its own set cannot decode, on drives the current map's set
// shares. Nothing ever acknowledged or served it: reads find no such key,
// and migration neither fails on it for ever (keeping every older map:
// a drain never finished, CI's TestClusterDrainAndRemove) nor keeps its
// records.
func TestMapHistoryUnreadableRemains(t *testing.T) {
	r := newHistRig(t)
	ctx := t.Context()
	const key = "remains"
	old, kept, ikey := unreadableRemains(t, r, key)
	if _, err := r.e.Open(ctx, "t", "c", key); !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("Open of a key whose only version is unreadable remains: %v, want ErrNoSuchArtifact", err)
	}
	// Young, they may be a write still in flight: they stay (and keep
	// the old map), and the key still reads as absent.
	if _, err := r.e.Migrate(ctx, "t", "c", key); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n != 3 {
		t.Fatalf("residue of the old map after a Migrate within InFlightGrace: %d records, %v; want the 3 remains", n, err)
	}
	if _, err := r.e.Open(ctx, "t", "c", key); !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("Open: %v, want ErrNoSuchArtifact", err)
	}
	r.skew.Store(int64(InFlightGrace + time.Minute))
	if _, err := r.e.Migrate(ctx, "t", "c", key); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for _, id := range kept {
		if _, err := r.topo.drives[id].GetRecord(context.WithoutCancel(ctx), ikey); err == nil {
			t.Errorf("drive %s still holds the remains after Migrate", id)
		}
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
		t.Fatalf("residue of the old map after Migrate: %d records, %v; want 0 (the map can go)", n, err)
	}
}

// unreadableRemains leaves on 3 of the 6 drives of an old 4+2 map (epoch
// 1) the records of an inline write of key that reached fewer than k
// drives, and makes the current map (epoch 2, 2+2 on 4 drives) one whose
// set of the key holds those three drives in other slots. It returns the
// old map, the drives holding the remains and the key's index key.
func unreadableRemains(t *testing.T, r *histRig, key string) (old *placement.Map, kept []placement.DriveID, ikey string) {
	t.Helper()
	ctx := t.Context()
	old = r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 1)
	r.topo.use(old)
	r.put(t, key, []byte("never acknowledged, say"))
	// The write's remains: its records on 3 of the 6 drives (k is 4).
	pg := old.PGOf("t", "c", key)
	set := old.Set(pg)
	ikey = indexPrefix("t", "c") + key
	for j, id := range set {
		if j < 3 {
			kept = append(kept, id)
			continue
		}
		d := r.topo.drives[id]
		raw, err := d.GetRecord(ctx, ikey)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteRecord(ctx, ikey, raw.Version); err != nil {
			t.Fatal(err)
		}
	}
	// The current map: 2+2 on 4 drives, its set of the key holding the
	// three drives with the remains.
	cur := &placement.Map{Epoch: 2, Policy: placement.Policy{Data: 2, Parity: 2}, Drives: r.pdrives}
	other := r.ids[0]
	for _, id := range r.ids {
		if !slices.Contains(set[:3], id) {
			other = id
			break
		}
	}
	for range 16 {
		cur.PGs = append(cur.PGs, []placement.DriveID{other, kept[2], kept[0], kept[1]}) // other slots than the old map's
	}
	if err := cur.Validate(); err != nil {
		t.Fatal(err)
	}
	r.topo.use(cur, old)
	return old, kept, ikey
}

// fencedHist is a histTopo whose drives fence writes planned under an
// outdated map (FencedTopology); the test drives do not refuse anything,
// but the engine knows that the cluster's would.
type fencedHist struct{ *histTopo }

func (f fencedHist) DriveIn(m *placement.Map, pg uint32, id placement.DriveID) (driver.Driver, error) {
	return f.Drive(id)
}

// TestMapHistoryFencedRemains: the remains of TestMapHistoryUnreadableRemains
// under a Topology that fences writes, in a PG the current map moved:
// once the current map has been current for mapSettle no write under the
// old map can land there any more, so migration removes them then rather
// than after InFlightGrace (CI's TestClusterDrainAndRemove: a failed
// 1 KiB PUT racing set-erasure kept its map, and every older map with a
// drive of its, for 15 minutes, and the drain did not finish).
func TestMapHistoryFencedRemains(t *testing.T) {
	r := newHistRig(t)
	ctx := t.Context()
	const key = "remains"
	old, kept, ikey := unreadableRemains(t, r, key)
	now := func() time.Time { return time.Now().Add(time.Duration(r.skew.Load())) }
	fe, err := New(Config{Topology: fencedHist{r.topo}, Containers: r.conts, StripeSize: 64 << 10, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// The map has just become current: a write under the old one may
	// still be in flight on a node that has not applied it yet.
	if _, err := fe.Migrate(ctx, "t", "c", key); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if n, err := fe.Residue(ctx, old); err != nil || n != 3 {
		t.Fatalf("residue of the old map after a Migrate as the map changed: %d records, %v; want the 3 remains", n, err)
	}
	r.skew.Store(int64(mapSettle + time.Second))
	// Without a fence, still within InFlightGrace: they stay.
	if _, err := r.e.Migrate(ctx, "t", "c", key); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n != 3 {
		t.Fatalf("residue of the old map after an unfenced Migrate within InFlightGrace: %d records, %v; want the 3 remains", n, err)
	}
	// Fenced, the map settled: they go, and the old map can.
	if _, err := fe.Migrate(ctx, "t", "c", key); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for _, id := range kept {
		if _, err := r.topo.drives[id].GetRecord(context.WithoutCancel(ctx), ikey); err == nil {
			t.Errorf("drive %s still holds the remains after Migrate", id)
		}
	}
	if n, err := fe.Residue(ctx, old); err != nil || n != 0 {
		t.Fatalf("residue of the old map after Migrate: %d records, %v; want 0 (the map can go)", n, err)
	}
	if _, err := fe.Open(ctx, "t", "c", key); !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("Open: %v, want ErrNoSuchArtifact", err)
	}
}

// migratingKey marks the ctx of the Migrate a test runs from inside a
// read (TestLocateRacingMigration), so its own reads pass the hook.
type migratingKey struct{}

// TestLocateRacingMigration: migration moves an artifact between a
// read's look at the current map's set and its look at the older map's
// set. The read must still serve it, not answer "no such key" (CI's
// TestClusterGrow: a 100 KiB artifact, inline, read through the third
// node while the leader migrated to the 4+2 map).
func TestLocateRacingMigration(t *testing.T) {
	for _, tc := range []struct {
		name string
		maps func(t *testing.T, r *histRig) (old, cur *placement.Map)
		// nth is the old set's drives' GetRecord call that is the read
		// of the old set: the second where the current set shares them.
		nth  int32
		data []byte
	}{{
		// The old set's drives are in the new set, in other slots: the
		// current set's first read sees the old placement's records,
		// which the move then replaces.
		name: "shared drives, inline",
		maps: func(t *testing.T, r *histRig) (*placement.Map, *placement.Map) {
			return r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1), r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
		},
		nth:  2,
		data: bytes.Repeat([]byte("inline "), 1000),
	}, {
		name: "shared drives, shard files",
		maps: func(t *testing.T, r *histRig) (*placement.Map, *placement.Map) {
			return r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1), r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
		},
		nth:  2,
		data: bytes.Repeat([]byte("not inline "), 20000),
	}, {
		// The new set has none of the old set's drives: the current
		// set's first read sees nothing, and the move's clean-up then
		// empties the old set.
		name: "disjoint sets",
		maps: func(t *testing.T, r *histRig) (*placement.Map, *placement.Map) {
			old := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
			cur := &placement.Map{Epoch: 2, Policy: placement.Policy{Data: 2, Parity: 2}, Drives: r.pdrives}
			for range 16 {
				cur.PGs = append(cur.PGs, slices.Clone(r.ids[2:6]))
			}
			if err := cur.Validate(); err != nil {
				t.Fatal(err)
			}
			return old, cur
		},
		nth:  1,
		data: bytes.Repeat([]byte("inline "), 1000),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHistRig(t)
			ctx := t.Context()
			old, cur := tc.maps(t, r)
			r.topo.use(old)
			const key = "racing"
			r.put(t, key, tc.data)
			r.topo.use(cur, old)
			ikey := indexPrefix("t", "c") + key

			var started atomic.Bool
			done := make(chan struct{})
			var migrateErr error
			for _, id := range old.Set(old.PGOf("t", "c", key)) {
				var calls atomic.Int32
				r.topo.drives[id].SetBeforeGetRecord(func(ctx context.Context, k string) {
					if k != ikey || ctx.Value(migratingKey{}) != nil || calls.Add(1) != tc.nth {
						return
					}
					// The read's look at the old set: migrate first.
					if started.CompareAndSwap(false, true) {
						res, err := r.e.Migrate(context.WithValue(context.WithoutCancel(ctx), migratingKey{}, true), "t", "c", key)
						if err == nil && !res.Moved {
							err = fmt.Errorf("migrate did not move it: %+v", res)
						}
						migrateErr = err
						close(done)
					}
					<-done
				})
			}
			got, err := read(ctx, r.e, key, 0, -1)
			if !started.Load() {
				t.Fatal("the read never looked at the old set: the test did not interleave the migration")
			}
			if migrateErr != nil {
				t.Fatalf("Migrate: %v", migrateErr)
			}
			if err != nil {
				t.Fatalf("read during the migration: %v", err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("read %d bytes, not the %d written", len(got), len(tc.data))
			}
		})
	}
}
