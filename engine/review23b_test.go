package engine

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// TestReview23bCurrentMapMarkerHeldByOlderDriveAway (review 23b R1, leak
// and sweep noise): an upload created, completed and deleted entirely
// under the current map (never in an older set: its record names the
// current epoch, no parts generation). A drive of key's set in the older
// map is away. remainsElsewhere counts the away drive as "may hold
// remains", so the sweep keeps the gone marker and reports an error, on
// every pass, for as long as that drive is away (until it is removed or
// back; the older map cannot leave the history meanwhile). No older set
// can hold a record of an upload made under the current map, so the
// marker should go, as on main.
func TestReview23bCurrentMapMarkerHeldByOlderDriveAway(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := r.olderAndCurrent(t) // 1+1 on d00, d01; 2+2 on d02..d05
	r.useChain([]*placement.Map{old, cur})
	const key = "mp/current-only"
	oldSet := old.Set(old.PGOf("t", "c", key))
	curSet := cur.Set(cur.PGOf("t", "c", key))
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(2311, 1000)
	pi, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{{Number: 1, ETag: pi.ETag}}, nil); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	if err := r.e.Delete(ctx, "t", "c", key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	r.topo.drives[oldSet[1]].SetOffline(true)
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Errorf("SweepUploads with older-map drive %s away: %v; want nil (the upload never lived in an older set)", oldSet[1], err)
	}
	r.e.WaitBackground()
	ukey := uploadKey("t", "c", key, id)
	n := 0
	for _, did := range curSet {
		recs, err := r.topo.drives[did].ListRecords(ctx, ukey, "", 10)
		if err != nil {
			t.Fatalf("list on %s: %v", did, err)
		}
		n += len(recs)
	}
	if n != 0 {
		t.Errorf("marker records on %v after the sweep: %d, want 0 (completion gone, nothing of the upload in any older set)", curSet, n)
	}
}

// TestReview23bExpiredDoneRemainsDroppedObjectIntact (guard for the brief's
// "completed object's data deleted"): the F2 set-up with the completion
// still served and its marker past CompletedUploadRetention. Once the
// older drive is back, the sweep's dropRemains drops the older set's part
// records and shard files (dropUploadElsewhere, parts=true). The object
// must still read back byte for byte from every read quorum of its set
// (each pair of the 2+2 set's drives offline), so no shard file it names
// was collected.
func TestReview23bExpiredDoneRemainsDroppedObjectIntact(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/expired-done"
	data := randBytes(2312, 1000)
	_, _, id, part1, oldSet, curSet := movedWithRemains(t, r, key, data)
	r.topo.drives[oldSet[1]].SetOffline(true)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	r.topo.drives[curSet[3]].SetOffline(false)
	// Which read quorums read the object before the sweep (curSet[3] was
	// away during the Complete: its shard is missing until a heal).
	reads := func() map[[2]int]bool {
		ok := map[[2]int]bool{}
		for a := 0; a < len(curSet); a++ {
			for b := a + 1; b < len(curSet); b++ {
				r.topo.drives[curSet[a]].SetOffline(true)
				r.topo.drives[curSet[b]].SetOffline(true)
				got, err := readAll(ctx, r.e, key)
				r.topo.drives[curSet[a]].SetOffline(false)
				r.topo.drives[curSet[b]].SetOffline(false)
				ok[[2]int{a, b}] = err == nil && bytes.Equal(got, data)
			}
		}
		return ok
	}
	r.topo.drives[oldSet[1]].SetOffline(false)
	before := reads()
	r.topo.drives[oldSet[1]].SetOffline(true)
	r.skew.Store(int64(CompletedUploadRetention + time.Minute))
	if _, err := r.e.SweepUploads(ctx); err == nil {
		t.Errorf("SweepUploads with %s away: nil error; want the remains not dropped", oldSet[1])
	}
	r.topo.drives[oldSet[1]].SetOffline(false)
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Fatalf("SweepUploads: %v", err)
	}
	r.e.WaitBackground()
	if got, err := readAll(ctx, r.e, key); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after the sweep: %d bytes, %v; want %d bytes equal", len(got), err, len(data))
	}
	after := reads()
	for pair, ok := range before {
		if ok && !after[pair] {
			t.Errorf("read with %s, %s offline: intact before the sweep, not after (a shard file the object names was collected)", curSet[pair[0]], curSet[pair[1]])
		}
	}
	ukey := uploadKey("t", "c", key, id)
	for _, did := range r.ids {
		if recs, _ := r.topo.drives[did].ListRecords(ctx, ukey, "", 10); len(recs) != 0 {
			t.Errorf("%s still holds a record of the upload after the sweep", did)
		}
	}
}

// TestReview23bOlderSetMarkerStaleRecordLeaks (review 23b R2, leak): a
// 2+2 PG that a map change moved in part (slot 3: the older map's drive
// x, the current map's d04). The upload, begun under the older map, is
// completed before MoveUploads moved it (200: the marker is in the older
// set, its artifact in the current one), with x away: x keeps the
// upload's record in progress. The object is then deleted, x is back and
// the sweep settles the marker (completion gone). On main settle deletes
// the marker from the older set's drives, x's stale record with it. With
// the fix remainsElsewhere counts x's record (its own set's, not the
// current set's) as an older set's remains, and dropRemains acts only for
// a marker in the current set: the marker and x's record stay, with no
// error, and MoveUploads passes over a marker in an older set too.
func TestReview23bOlderSetMarkerStaleRecordLeaks(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	cur := r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
		s[3] = r.ids[4]
		return s
	})
	const key = "mp/older-marker"
	data := randBytes(2313, 1000)
	id, part1 := olderUpload(t, r, old, cur, key, data)
	oldSet := old.Set(old.PGOf("t", "c", key))
	x := oldSet[3]
	r.topo.drives[x].SetOffline(true)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		t.Fatalf("CompleteUpload with %s away: %v", x, err)
	}
	r.topo.drives[x].SetOffline(false)
	if err := r.e.Delete(ctx, "t", "c", key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for range 2 {
		if _, err := r.e.SweepUploads(ctx); err != nil {
			t.Logf("SweepUploads: %v", err)
		}
		if _, err := r.e.MoveUploads(ctx); err != nil {
			t.Logf("MoveUploads: %v", err)
		}
	}
	r.e.WaitBackground()
	ukey := uploadKey("t", "c", key, id)
	for _, did := range r.ids {
		if recs, _ := r.topo.drives[did].ListRecords(ctx, ukey, "", 10); len(recs) != 0 {
			t.Errorf("%s still holds a record of the upload after two sweeps and passes (completion deleted)", did)
		}
	}
	if _, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("ListParts: %v; want ErrNoSuchUpload", err)
	}
	// The older map leaves the history (its residue is nothing: markers
	// and idle uploads do not hold it).
	r.useChain([]*placement.Map{cur})
	for range 2 {
		if _, err := r.e.SweepUploads(ctx); err != nil {
			t.Logf("SweepUploads, older map dropped: %v", err)
		}
	}
	r.e.WaitBackground()
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Errorf("ListUploads, older map dropped: %+v, %v; want none", ups, err)
	}
	if _, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("ListParts, older map dropped: %v; want ErrNoSuchUpload", err)
	}
	if again, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("CompleteUpload retried, older map dropped: %+v, %v; want ErrNoSuchUpload", again, err)
	}
	for _, did := range r.ids {
		if recs, _ := r.topo.drives[did].ListRecords(ctx, ukey, "", 10); len(recs) != 0 {
			t.Logf("older map dropped: %s still holds a record of the upload", did)
		}
	}
}

// TestReview23bOlderSetMarkerHistoryDroppedFirst (review 23b R3,
// pre-existing; R2's set-up): the older map leaves the history before a
// sweep settled the marker (its completion kept, so the marker lives 24 h,
// longer than a migration). x's stale record in progress is then on a
// drive of no set of key's, which no sweep or pass reads, but
// ListUploads lists it: a completed upload listed in progress, which
// ListParts, Complete and Abort answer NoSuchUpload.
//
// Fixed: ListUploads does not list a record no kept map places where it
// is (strayUpload), and the sweep removes it, with x's part record, once
// nothing serves the upload (sweepStrays).
func TestReview23bOlderSetMarkerHistoryDroppedFirst(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	cur := r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
		s[3] = r.ids[4]
		return s
	})
	const key = "mp/older-marker-dropped"
	data := randBytes(2314, 1000)
	id, part1 := olderUpload(t, r, old, cur, key, data)
	x := old.Set(old.PGOf("t", "c", key))[3]
	r.topo.drives[x].SetOffline(true)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		t.Fatalf("CompleteUpload with %s away: %v", x, err)
	}
	r.topo.drives[x].SetOffline(false)
	r.useChain([]*placement.Map{cur})
	for range 2 {
		if _, err := r.e.SweepUploads(ctx); err != nil {
			t.Logf("SweepUploads: %v", err)
		}
	}
	r.skew.Store(int64(CompletedUploadRetention + time.Minute))
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Logf("SweepUploads past the retention: %v", err)
	}
	r.e.WaitBackground()
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Errorf("ListUploads (%s held the record in progress): %+v, %v; want none (completed, 200)", x, ups, err)
	}
	if err := r.e.AbortUpload(ctx, "t", "c", key, id); !errors.Is(err, ErrNoSuchUpload) {
		t.Logf("AbortUpload: %v", err)
	}
	ukey := uploadKey("t", "c", key, id)
	for _, did := range r.ids {
		if recs, _ := r.topo.drives[did].ListRecords(ctx, ukey, "", 10); len(recs) != 0 {
			t.Errorf("%s still holds a record of the upload after the sweep; want the stray removed", did)
		}
	}
	if recs, _ := r.topo.drives[x].ListRecords(ctx, partPrefix("t", "c", id), "", 10); len(recs) != 0 {
		t.Errorf("%s still holds %d part records of the upload after the sweep; want them removed with it", x, len(recs))
	}
}
