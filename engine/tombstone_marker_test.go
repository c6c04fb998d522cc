package engine

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// TestTombstoneKeptWhileUploadMarker (guard of the review 22c G2 fix): the
// tombstone of a deleted multipart object is not purged while its
// upload's completion marker remains (markersHold), as a marker without
// it reads as a completion that never happened; once the sweep has
// removed the marker (its completion gone), Heal purges it.
func TestTombstoneKeptWhileUploadMarker(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	m := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	r.useChain([]*placement.Map{m})
	const key = "mp/tombstone-marker"
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(2502, 1000)
	pi, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{{Number: 1, ETag: pi.ETag}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.e.Delete(ctx, "t", "c", key); err != nil {
		t.Fatal(err)
	}
	set := m.Set(m.PGOf("t", "c", key))
	ikey := indexPrefix("t", "c") + key
	tombstones := func() int {
		n := 0
		for _, did := range set {
			raw, err := r.topo.drives[did].GetRecord(ctx, ikey)
			if err == nil {
				if rec, err := unmarshalRecord(raw.Data); err == nil && rec.Deleted {
					n++
				}
			} else if !errors.Is(err, driver.ErrNotFound) {
				t.Fatalf("%s: %v", did, err)
			}
		}
		return n
	}
	r.skew.Store(int64(TombstoneGrace + time.Minute))
	if _, err := r.e.Heal(ctx, "t", "c", key); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	if n := tombstones(); n != len(set) {
		t.Fatalf("after Heal with the marker there: %d of %d drives hold the tombstone; want all", n, len(set))
	}
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Fatalf("SweepUploads: %v", err)
	}
	r.e.WaitBackground()
	if _, err := r.e.Heal(ctx, "t", "c", key); err != nil {
		t.Fatalf("Heal after the sweep: %v", err)
	}
	if n := tombstones(); n != 0 {
		t.Errorf("after the sweep removed the marker and Heal: %d of %d drives hold the tombstone; want it purged", n, len(set))
	}
}
