package engine

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// Review 22 of wt-upmove: each test here is a finding when it fails.

// otherNode makes the rig's engine issue versions as a node whose clock
// runs skew behind (or ahead, skew > 0) of the one before and that never
// saw the versions issued since last (its own last version): the engine
// stands for another node of the cluster. The reconcile compares part
// versions issued by different nodes (the mover's copies vs a PutPart's).
func otherNode(r *migRig, skew time.Duration, last int64) {
	r.skew.Store(int64(skew))
	r.e.lastVersion.Store(last)
}

// TestReview22ReconcileNewestIsClockOrder (HIGH): "the newest version
// of each part across all generations" compares version stamps made by
// different nodes' clocks. A move's copy of a part gets a NEW version
// from the mover's clock (writeMovedUpload: rec.Version = newVersion()),
// not the source part's version, so it is not ordered against a part put
// through another node.
//
// copy-ahead: the mover's clock is 1 s ahead. Its failed move keeps the
// copy of part 1 (content A) in the current set. With x away, part 1 is
// put again (content B) through another node, into the older set, and
// acknowledged. The reconcile keeps the copy (newer stamp), and B is gone.
//
// old-part-ahead: part 2 was first put through a node whose clock is
// 1 s ahead. The upload moves (successfully, the older set's clean-up cut
// short), part 2 is put again (X) into the current set through a node on
// time, and holders lose the moved record (B1's set-up). The reconcile
// takes the older set's stale part 2 (its stamp is ahead) over X.
func TestReview22ReconcileNewestIsClockOrder(t *testing.T) {
	t.Run("copy-ahead", func(t *testing.T) {
		r := newMigRig(t)
		ctx := t.Context()
		old := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
		cur := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
		const key = "mp/skew-copy"
		data1, data1b := randBytes(2201, 1000), randBytes(2202, 1200)
		id, _ := olderUpload(t, r, old, cur, key, data1)
		last := r.e.lastVersion.Load()
		otherNode(r, time.Second, last) // the mover
		var x placement.DriveID
		failedMoveOnto(t, r, cur, key, id, oneCurrentOnly(old.Set(old.PGOf("t", "c", key)), &x))
		otherNode(r, 0, last) // the node the client talks to
		r.topo.drives[x].SetOffline(true)
		pi1, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(data1b), PutOptions{Size: int64(len(data1b))})
		r.topo.drives[x].SetOffline(false)
		if err != nil {
			t.Fatalf("PutPart 1 again with %s away: %v", x, err)
		}
		if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 {
			t.Errorf("MoveUploads = %+v, %v; want the upload reconciled", st, err)
		}
		if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); err != nil || len(parts) != 1 || parts[0].ETag != pi1.ETag {
			t.Errorf("ListParts after the reconcile: %+v, %v; want part 1 with the acknowledged ETag %s", parts, err, pi1.ETag)
		}
		if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{{Number: 1, ETag: pi1.ETag}}, nil); err != nil {
			t.Fatalf("CompleteUpload with the acknowledged part 1: %v (acknowledged part lost)", err)
		}
		if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data1b) {
			t.Fatalf("read after Complete: %d bytes, %v; want the %d bytes acknowledged", len(got), err, len(data1b))
		}
	})
	t.Run("old-part-ahead", func(t *testing.T) {
		r := newMigRig(t)
		ctx := t.Context()
		old, cur := r.olderAndCurrent(t) // 1+1 on d00, d01; 2+2 on d02..d05
		const key = "mp/skew-old"
		data1, data2, data2b := randBytes(2203, MinPartSize), randBytes(2204, 1000), randBytes(2205, 1500)
		id, part1 := olderUpload(t, r, old, cur, key, data1)
		last := r.e.lastVersion.Load()
		r.useChain([]*placement.Map{old})
		otherNode(r, time.Second, last) // a node 1 s ahead takes part 2
		if _, err := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(data2), PutOptions{Size: int64(len(data2))}); err != nil {
			t.Fatal(err)
		}
		otherNode(r, 0, last) // the mover, and the node of the later requests
		r.useChain([]*placement.Map{old, cur})
		oldSet := old.Set(old.PGOf("t", "c", key))
		curSet := cur.Set(cur.PGOf("t", "c", key))
		r.topo.drives[curSet[3]].SetOffline(true)
		r.topo.drives[oldSet[1]].SetOffline(true)
		if st, err := r.e.MoveUploads(ctx); st.Moved != 1 {
			t.Fatalf("MoveUploads = %+v, %v; want the upload moved (clean-up failing)", st, err)
		}
		r.topo.drives[curSet[3]].SetOffline(false)
		pi2, err := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(data2b), PutOptions{Size: int64(len(data2b))})
		if err != nil {
			t.Fatalf("PutPart 2 again after the move: %v", err)
		}
		r.topo.drives[oldSet[1]].SetOffline(false)
		wipeUploadRecord(t, r, key, id, curSet[1:3]...)
		if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 {
			t.Errorf("MoveUploads reconciling = %+v, %v; want the upload moved", st, err)
		}
		parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10)
		var etags []string
		for _, p := range parts {
			etags = append(etags, p.ETag)
		}
		if want := []string{part1.ETag, pi2.ETag}; err != nil || !slices.Equal(etags, want) {
			t.Errorf("ListParts after the reconcile: ETags %v, %v; want %v (part 2 as acknowledged last)", etags, err, want)
		}
		if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1, {Number: 2, ETag: pi2.ETag}}, nil); err != nil {
			t.Fatalf("CompleteUpload with the acknowledged part 2: %v (acknowledged part lost)", err)
		}
	})
}

// wipeUploadRecord removes upload id's record from drives: each is a disk
// replaced since (a Heal restores artifacts, never upload records).
func wipeUploadRecord(t *testing.T, r *migRig, key, id string, drives ...placement.DriveID) {
	t.Helper()
	ukey := uploadKey("t", "c", key, id)
	for _, did := range drives {
		raw, err := r.topo.drives[did].GetRecord(t.Context(), ukey)
		if err != nil {
			t.Fatalf("%s holds no record of the upload: %v", did, err)
		}
		if err := r.topo.drives[did].DeleteRecord(t.Context(), ukey, raw.Version); err != nil {
			t.Fatal(err)
		}
	}
}

// movedWithRemains is B1's set-up: an upload of key moves from the older
// set (1+1 on d00, d01) into the current one (2+2 on d02..d05) with
// curSet[3] and oldSet[1] away, so the moved record is on exactly the
// write quorum (curSet[0..2]) and the older set keeps its records (d00:
// the record only, d01: everything). curSet[3] stays away on return.
func movedWithRemains(t *testing.T, r *migRig, key string, data []byte) (old, cur *placement.Map, id string, part1 CompletePart, oldSet, curSet []placement.DriveID) {
	t.Helper()
	old, cur = r.olderAndCurrent(t)
	id, part1 = olderUpload(t, r, old, cur, key, data)
	oldSet = old.Set(old.PGOf("t", "c", key))
	curSet = cur.Set(cur.PGOf("t", "c", key))
	r.topo.drives[curSet[3]].SetOffline(true)
	r.topo.drives[oldSet[1]].SetOffline(true)
	if st, err := r.e.MoveUploads(t.Context()); st.Moved != 1 {
		t.Fatalf("MoveUploads = %+v, %v; want the upload moved (clean-up failing)", st, err)
	}
	r.topo.drives[oldSet[1]].SetOffline(false)
	return
}

// TestReview22StrongMarkerLosesDrivesResurrects (the brief's "a completion
// marker that was strong then lost drives"): an upload moved (the older
// set's clean-up cut short, B1's set-up), then completed through the
// current set (200; marker on the write quorum curSet[0..2]). Two of the
// marker's holders are disks replaced since (within the 2+2 set's
// parity): the marker is on one drive, below the read quorum, while the
// older set's remains serve the upload. The reconcile takes the marker
// for a failed Complete and writes the upload back in progress over it:
// the completed upload is listed again, shows parts, takes parts, and a
// retried Complete no longer answers the completion.
func TestReview22StrongMarkerLosesDrivesResurrects(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/marker-lost"
	data := randBytes(2206, 1000)
	_, _, id, part1, _, curSet := movedWithRemains(t, r, key, data)
	info, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil)
	if err != nil {
		t.Fatalf("CompleteUpload with %s away: %v", curSet[3], err)
	}
	r.topo.drives[curSet[3]].SetOffline(false)
	wipeUploadRecord(t, r, key, id, curSet[0], curSet[1])
	if st, err := r.e.MoveUploads(ctx); err != nil {
		t.Logf("MoveUploads: %+v, %v", st, err)
	}
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Errorf("ListUploads after the pass: %+v, %v; want none (completed, 200)", ups, err)
	}
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("ListParts after the pass: %d parts, %v; want ErrNoSuchUpload (completed)", len(parts), err)
	}
	if again, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil || again.ETag != info.ETag || again.Version != info.Version {
		t.Errorf("CompleteUpload retried: %+v, %v; want the completion answered again (ETag %s, version %v), not a new completion", again, err, info.ETag, info.Version)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read: %d bytes, %v", len(got), err)
	}
}

// TestReview22WeakTombstoneStays503 (MEDIUM): as above, but the upload
// is aborted (200; tombstone on curSet[0..2]) and two tombstone holders
// are disks replaced since. The reconcile aborts the older set, but
// leaves the current set's tombstone on one drive: findUpload still sees
// a newest record below the read quorum with a later set serving (its
// tombstone), so requests on the upload answer 503 on every pass, with
// every drive up.
func TestReview22WeakTombstoneStays503(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/tomb-lost"
	_, _, id, _, _, curSet := movedWithRemains(t, r, key, randBytes(2207, 1000))
	if err := r.e.AbortUpload(ctx, "t", "c", key, id); err != nil {
		t.Fatalf("AbortUpload with %s away: %v", curSet[3], err)
	}
	r.topo.drives[curSet[3]].SetOffline(false)
	wipeUploadRecord(t, r, key, id, curSet[0], curSet[1])
	for pass := range 3 {
		r.e.moveRetries.Delete(id)
		st, err := r.e.MoveUploads(ctx)
		t.Logf("pass %d: %+v, %v", pass, st, err)
	}
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("ListParts after 3 passes, every drive up: %d parts, %v; want ErrNoSuchUpload", len(parts), err)
	}
	if err := r.e.AbortUpload(ctx, "t", "c", key, id); err != nil && !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("AbortUpload retried after 3 passes, every drive up: %v; want nil or ErrNoSuchUpload", err)
	}
	// How long: the sweep past the retention (informative).
	r.skew.Store(int64(CompletedUploadRetention + time.Minute))
	n, err := r.e.SweepUploads(ctx)
	r.e.WaitBackground()
	_, _, lerr := r.e.ListParts(ctx, "t", "c", key, id, 0, 10)
	t.Logf("after a sweep past CompletedUploadRetention (%v): swept %d, %v; ListParts: %v", CompletedUploadRetention, n, err, lerr)
}

// TestReview22UnconfirmedMoveRecordBelowWriteQuorum (the author's risk 5):
// the F4 shared-drive case with the undo's reads failing (the copies
// kept): the moved record is on 2 drives of the 2+2 set (its read
// quorum, below its write quorum 3) and the next pass, finding it served
// there, only drops the older set. Nothing rewrites it to the write
// quorum. A part is then put and acknowledged; two disks of the set are
// replaced (the set's parity): a record written to its write quorum
// would survive on one drive, this one is gone, and with it the upload
// and its acknowledged parts.
func TestReview22UnconfirmedMoveRecordBelowWriteQuorum(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
	cur := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 2)
	const key = "mp/below-wq"
	data1, data2 := randBytes(2208, MinPartSize), randBytes(2209, 1000)
	id, part1 := olderUpload(t, r, old, cur, key, data1)
	oldSet := old.Set(old.PGOf("t", "c", key))
	curSet := cur.Set(cur.PGOf("t", "c", key))
	ukey := uploadKey("t", "c", key, id)
	faults := map[placement.DriveID]*uploadRecordFault{}
	for _, did := range curSet {
		f := &uploadRecordFault{Driver: r.topo.drives[did], ukey: ukey, epoch: fmt.Sprint(cur.Epoch)}
		faults[did] = f
		r.topo.drives[did] = drivertest.NewFaulty(f)
		if slices.Contains(oldSet, did) {
			f.lostReply.Store(true)
			f.readsFailAfter.Store(true)
		} else {
			f.failPut.Store(true)
		}
	}
	if st, err := r.e.MoveUploads(ctx); err == nil || st.Moved != 0 {
		t.Fatalf("MoveUploads with the record's replies lost = %+v, %v; want it failed", st, err)
	}
	for _, f := range faults {
		f.lostReply.Store(false)
		f.failPut.Store(false)
		f.readsFailAfter.Store(false)
		f.failGet.Store(false)
	}
	r.e.moveRetries.Delete(id)
	for pass := range 2 {
		if st, err := r.e.MoveUploads(ctx); err != nil {
			t.Errorf("MoveUploads %d: %+v, %v", pass, st, err)
		}
	}
	pi2, err := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(data2), PutOptions{Size: int64(len(data2))})
	if err != nil {
		t.Fatalf("PutPart 2: %v", err)
	}
	var holders []placement.DriveID
	for _, did := range curSet {
		if _, err := r.topo.drives[did].GetRecord(ctx, ukey); err == nil {
			holders = append(holders, did)
		}
	}
	if wq := cur.Policy.WriteQuorum(); len(holders) < wq {
		t.Errorf("after two passes the upload's record is on %v: %d drives, below the write quorum %d", holders, len(holders), wq)
	}
	// Two disks replaced (the 2+2 set's parity): the holders, if only two.
	if len(holders) == 2 {
		wipeUploadRecord(t, r, key, id, holders...)
	}
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); err != nil || len(parts) != 2 {
		t.Errorf("ListParts after two disks of the 2+2 set were replaced: %d parts, %v; want the 2 acknowledged", len(parts), err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1, {Number: 2, ETag: pi2.ETag}}, nil); err != nil {
		t.Errorf("CompleteUpload of the acknowledged parts: %v", err)
	}
}

// TestReview22FailedMoveOnReadQuorumSplits (HIGH): with 2+2 (read quorum
// 2, write quorum 3) a move's record write that lands on 2 drives only
// and cannot be rolled back there (failedMoveOnto; a crash of the mover
// part way leaves the same) is held by the read quorum: findUpload takes
// it for a move that succeeded. The rule "an older set serves only if
// every set before it answered with its read quorum and holds nothing"
// does not keep the older set out while those two drives are away: the
// other two answer, hold nothing, and the older set serves the upload and
// acknowledges part 2. With the two drives back, the current set serves
// the moved record (part 2 hidden, 200), and the next pass (at.same)
// drops the older set's parts: the acknowledged part 2 is deleted.
func TestReview22FailedMoveOnReadQuorumSplits(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := r.olderAndCurrent(t) // 1+1 on d00, d01; 2+2 on d02..d05
	const key = "mp/split-k"
	data1, data2 := randBytes(2210, MinPartSize), randBytes(2211, 1000)
	id, part1 := olderUpload(t, r, old, cur, key, data1)
	curSet := cur.Set(cur.PGOf("t", "c", key))
	failedMoveOnto(t, r, cur, key, id, func(did placement.DriveID) bool { return did == curSet[0] || did == curSet[1] })
	r.topo.drives[curSet[0]].SetOffline(true)
	r.topo.drives[curSet[1]].SetOffline(true)
	pi2, err := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(data2), PutOptions{Size: int64(len(data2))})
	r.topo.drives[curSet[0]].SetOffline(false)
	r.topo.drives[curSet[1]].SetOffline(false)
	if err != nil {
		t.Logf("PutPart 2 with the two holders away: %v (refused: not this finding)", err)
		return
	}
	t.Logf("PutPart 2 with the failed move's two holders away: acknowledged (%s)", pi2.ETag)
	parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10)
	if err != nil || len(parts) != 2 {
		t.Errorf("ListParts with every drive back: %d parts, %v; want the 2 acknowledged (or ErrReadQuorum)", len(parts), err)
	}
	st, err := r.e.MoveUploads(ctx)
	t.Logf("next MoveUploads: %+v, %v", st, err)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1, {Number: 2, ETag: pi2.ETag}}, nil); err != nil {
		t.Errorf("CompleteUpload of the acknowledged parts after the pass: %v (acknowledged part lost)", err)
	}
}
