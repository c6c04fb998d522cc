package engine

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

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
	old := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 1)
	r.topo.use(old)
	const key = "remains"
	r.put(t, key, []byte("never acknowledged, say"))
	// The write's remains: its records on 3 of the 6 drives (k is 4).
	pg := old.PGOf("t", "c", key)
	set := old.Set(pg)
	ikey := indexPrefix("t", "c") + key
	var kept []placement.DriveID
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
