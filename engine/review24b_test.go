package engine

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// TestReview24bSweepMarkerDropDriveAwayResurrects (review 24b): review
// 23 H1's set-up (the move leaves the older set's remains, the Complete
// runs with curSet[3] away, so curSet[3] keeps the moved record in
// progress), then the object is deleted and curSet[3] is away again
// while the upload sweep settles the gone completion: it drops the
// older set's remains and deletes the marker from the drives that
// answer. curSet[3] comes back with its record in progress, and past
// TombstoneGrace a Heal purges the key's tombstone (markersHold: no
// marker is left anywhere). Nothing hides curSet[3]'s record any more:
// findUpload serves it (held below the read quorum, no later set holds
// anything), so the completed-then-deleted upload is listed in progress
// again and a retried Complete is not refused.
func TestReview24bSweepMarkerDropDriveAwayResurrects(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/deleted-completion-sweep-away"
	data := randBytes(2411, 1000)
	old, cur := r.olderAndCurrent(t)
	id, part1 := olderUpload(t, r, old, cur, key, data)
	oldSet := old.Set(old.PGOf("t", "c", key))
	curSet := cur.Set(cur.PGOf("t", "c", key))
	r.topo.drives[oldSet[1]].SetOffline(true)
	if st, err := r.e.MoveUploads(ctx); st.Moved != 1 {
		t.Fatalf("MoveUploads = %+v, %v; want the upload moved (clean-up failing)", st, err)
	}
	r.topo.drives[oldSet[1]].SetOffline(false)
	r.topo.drives[curSet[3]].SetOffline(true)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		t.Fatalf("CompleteUpload with %s away: %v", curSet[3], err)
	}
	if err := r.e.Delete(ctx, "t", "c", key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	ukey := uploadKey("t", "c", key, id)
	for pass := range 2 {
		n, err := r.e.SweepUploads(ctx)
		t.Logf("sweep %d with %s away: %d markers, %v", pass, curSet[3], n, err)
	}
	r.e.WaitBackground()
	for _, did := range curSet[:3] {
		if _, err := r.topo.drives[did].GetRecord(ctx, ukey); err == nil {
			t.Logf("%s still holds the marker after the sweeps", did)
		}
	}
	r.topo.drives[curSet[3]].SetOffline(false)
	if raw, err := r.topo.drives[curSet[3]].GetRecord(ctx, ukey); err == nil {
		if rec, err := unmarshalRecord(raw.Data); err == nil {
			t.Logf("%s back, holds the upload's record: marker=%v deleted=%v", curSet[3], isMarker(rec), rec.Deleted)
		}
	}
	r.skew.Store(int64(TombstoneGrace + time.Minute))
	if _, err := r.e.Heal(ctx, "t", "c", key); err != nil {
		t.Logf("Heal (tombstone purge): %v", err)
	}
	ikey := indexPrefix("t", "c") + key
	for _, did := range curSet {
		if _, err := r.topo.drives[did].GetRecord(ctx, ikey); err == nil {
			t.Logf("%s still holds the key's record: not purged", did)
		}
	}
	deletedCompletionStaysGone(t, r, key, id, part1, data)
}

// TestReview24bSweepMarkerDropDriveAwayPlain (review 24b): the same
// without any map change. An upload of the current map completes with
// curSet[3] away (it keeps the record in progress) and the object is
// deleted; the next upload sweep, with curSet[3] still away, deletes the
// gone completion's marker from the drives that answer. When curSet[3]
// comes back, its record in progress is all that is left of the upload,
// and findUpload serves it: the completed-then-deleted upload is listed
// in progress and a retried Complete is taken.
func TestReview24bSweepMarkerDropDriveAwayPlain(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/deleted-completion-sweep-away-plain"
	data := randBytes(2412, 1000)
	_, cur := r.olderAndCurrent(t)
	r.useChain([]*placement.Map{cur})
	curSet := cur.Set(cur.PGOf("t", "c", key))
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pi, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	part1 := CompletePart{Number: 1, ETag: pi.ETag}
	r.topo.drives[curSet[3]].SetOffline(true)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		t.Fatalf("CompleteUpload with %s away: %v", curSet[3], err)
	}
	if err := r.e.Delete(ctx, "t", "c", key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for pass := range 2 {
		n, err := r.e.SweepUploads(ctx)
		t.Logf("sweep %d with %s away: %d markers, %v", pass, curSet[3], n, err)
	}
	r.e.WaitBackground()
	r.topo.drives[curSet[3]].SetOffline(false)
	deletedCompletionStaysGone(t, r, key, id, part1, data)
	if got, err := read(ctx, r.e, key, 0, -1); err != nil {
		t.Logf("read after the retried Complete: %v (the deleted part's data is gone: an acknowledged object that cannot be read)", err)
	} else {
		t.Logf("read after the retried Complete: %d bytes, equal to the deleted data: %v", len(got), bytes.Equal(got, data))
	}
}

// TestReview24bStrayWithLargeMetadataListedForEver (review 24b): review
// 23b R3's set-up (an upload begun under the old map, completed with x
// away, the old map dropped), with an upload whose user metadata (1.5
// KiB, within MaxMetadataSize and S3's 2 KiB) makes its record longer
// than driver.ListDataMax. Listings cut such a record after its head,
// which carries no metadata, so inDroppedMap finds no uploadEpochKey
// and strayUpload says "not a stray": ListUploads lists x's stale record
// for ever (the R3 phantom: ListParts and Abort answer NoSuchUpload),
// and the sweep never removes it.
func TestReview24bStrayWithLargeMetadataListedForEver(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	cur := r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
		s[3] = r.ids[4]
		return s
	})
	const key = "mp/stray-large-metadata"
	data := randBytes(2413, 1000)
	r.useChain([]*placement.Map{old})
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{Metadata: map[string]string{"note": strings.Repeat("n", 1500)}})
	if err != nil {
		t.Fatal(err)
	}
	pi, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{old, cur})
	x := old.Set(old.PGOf("t", "c", key))[3]
	r.topo.drives[x].SetOffline(true)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{{Number: 1, ETag: pi.ETag}}, nil); err != nil {
		t.Fatalf("CompleteUpload with %s away: %v", x, err)
	}
	r.topo.drives[x].SetOffline(false)
	ukey := uploadKey("t", "c", key, id)
	if raw, err := r.topo.drives[x].GetRecord(ctx, ukey); err != nil || len(raw.Data) <= driver.ListDataMax {
		t.Fatalf("%s: upload record of %d bytes, %v; want one longer than ListDataMax (%d)", x, len(raw.Data), err, driver.ListDataMax)
	}
	r.useChain([]*placement.Map{cur})
	for range 2 {
		if _, err := r.e.SweepUploads(ctx); err != nil {
			t.Logf("SweepUploads: %v", err)
		}
	}
	r.skew.Store(int64(CompletedUploadRetention + time.Minute))
	for range 2 {
		if _, err := r.e.SweepUploads(ctx); err != nil {
			t.Logf("SweepUploads past the retention: %v", err)
		}
	}
	r.e.WaitBackground()
	if _, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
		t.Logf("ListParts: %v", err)
	}
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Errorf("ListUploads (%s held the record in progress): %+v, %v; want none (completed, 200; every other operation answers NoSuchUpload)", x, ups, err)
	}
	if _, err := r.topo.drives[x].GetRecord(ctx, ukey); err == nil {
		t.Errorf("%s still holds the stray upload record after the sweeps; want it removed", x)
	}
}
