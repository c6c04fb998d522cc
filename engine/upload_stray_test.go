package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// TestSweepStraysSpareServedUpload (guard of the review 23b R3 fix): an
// upload in progress begun under an older map whose change moved only
// slot 3 of its set (x → d04) is still in progress when that map leaves
// the history (idle: Residue lets it go). Its records on the kept slots
// are placed in the current map, so findUpload serves it from there;
// x's record is a stray (strayUpload). The sweep must leave x's records
// while the upload is served (a part record of the same key there is
// one of the live upload's), list the upload once, and the upload must
// show its part and complete byte for byte. Once the completion's marker
// has expired and gone, the sweep removes x's stray record, and the
// completed object still reads back.
func TestSweepStraysSpareServedUpload(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	cur := r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
		s[3] = r.ids[4]
		return s
	})
	const key = "mp/stray-served"
	data := randBytes(2501, 1000)
	id, part1 := olderUpload(t, r, old, cur, key, data)
	x := old.Set(old.PGOf("t", "c", key))[3]
	ukey := uploadKey("t", "c", key, id)
	r.useChain([]*placement.Map{cur})
	for range 2 {
		if _, err := r.e.SweepUploads(ctx); err != nil {
			t.Fatalf("SweepUploads: %v", err)
		}
	}
	r.e.WaitBackground()
	if _, err := r.topo.drives[x].GetRecord(ctx, ukey); err != nil {
		t.Errorf("%s: upload record: %v; want it kept while the upload is served", x, err)
	}
	if recs, err := r.topo.drives[x].ListRecords(ctx, partPrefix("t", "c", id), "", 10); err != nil || len(recs) != 1 {
		t.Errorf("%s: %d part records, %v; want part 1's kept while the upload is served", x, len(recs), err)
	}
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10)
	if err != nil || len(ups) != 1 || ups[0].ID != id {
		t.Fatalf("ListUploads: %+v, %v; want the upload in progress, once", ups, err)
	}
	parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10)
	if err != nil || len(parts) != 1 || parts[0].ETag != part1.ETag {
		t.Fatalf("ListParts: %+v, %v; want part 1", parts, err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after Complete: %d bytes, %v; want the part's %d bytes", len(got), err, len(data))
	}
	r.skew.Store(int64(CompletedUploadRetention + time.Minute))
	for range 2 {
		if _, err := r.e.SweepUploads(ctx); err != nil {
			t.Errorf("SweepUploads past the retention: %v", err)
		}
	}
	r.e.WaitBackground()
	for _, did := range r.ids {
		if recs, _ := r.topo.drives[did].ListRecords(ctx, ukey, "", 10); len(recs) != 0 {
			t.Errorf("%s still holds a record of the upload after the marker expired", did)
		}
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read after the sweeps: %d bytes, %v; want the part's %d bytes", len(got), err, len(data))
	}
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Errorf("ListUploads after the sweeps: %+v, %v; want none", ups, err)
	}
}

// TestSweepStraysHungDrive: with one drive of the set hung, the sweep
// still removes a stray record of an aborted upload from the drive that
// holds it, within the straggler grace: sweepStrays read the upload's
// records from every drive and waited for each (cleanupTimeout, 30 s)
// per stray, as dropMarker did (review 24c N2).
func TestSweepStraysHungDrive(t *testing.T) {
	const bound = 8 * time.Second
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	cur := r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
		s[3] = r.ids[4]
		return s
	})
	const key = "mp/stray-hung"
	id, _ := olderUpload(t, r, old, cur, key, randBytes(2502, 1000))
	set := old.Set(old.PGOf("t", "c", key))
	x := set[3]
	ukey := uploadKey("t", "c", key, id)
	r.useChain([]*placement.Map{cur})
	if err := r.e.AbortUpload(ctx, "t", "c", key, id); err != nil {
		t.Fatalf("AbortUpload: %v", err)
	}
	if _, err := r.topo.drives[x].GetRecord(ctx, ukey); err != nil {
		t.Fatalf("%s: the stray upload record is not there to sweep: %v", x, err)
	}
	hung := r.topo.drives[set[0]]
	hung.SetHang(true)
	defer hung.SetHang(false)
	began := time.Now()
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Logf("SweepUploads with %s hung: %v", set[0], err)
	}
	if took := time.Since(began); took > bound {
		t.Errorf("SweepUploads with %s hung took %v (bound %v)", set[0], took, bound)
	}
	if _, err := r.topo.drives[x].GetRecord(ctx, ukey); err == nil {
		t.Errorf("%s still holds the stray record of the aborted upload", x)
	}
}
