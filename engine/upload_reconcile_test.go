package engine

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/vaultaire/vaultaire/placement"
)

// TestReconcileKeepsNewestPartAcrossGenerations: a move that succeeded
// (its record on exactly the write quorum, the older set's clean-up cut
// short by an older drive away), then part 2 put again into the current
// set, then two holders of the moved record lose it: the current set
// holds it on fewer than its read quorum while the older set's remains
// still serve the upload. Requests are refused (neither is chosen), and
// the next pass reconciles them: part 2 is the one acknowledged last
// (the current generation's), not the older set's, and the upload
// completes with it.
func TestReconcileKeepsNewestPartAcrossGenerations(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := r.olderAndCurrent(t) // 1+1 on d00, d01; 2+2 on d02..d05
	const key = "mp/newest"
	data1, data2, data2b := randBytes(81, MinPartSize), randBytes(82, 1000), randBytes(83, 1500)
	id, part1 := olderUpload(t, r, old, cur, key, data1)
	r.useChain([]*placement.Map{old})
	if _, err := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(data2), PutOptions{Size: int64(len(data2))}); err != nil {
		t.Fatal(err)
	}
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
	ukey := uploadKey("t", "c", key, id)
	for _, did := range curSet[1:3] {
		raw, err := r.topo.drives[did].GetRecord(ctx, ukey)
		if err != nil {
			t.Fatalf("%s holds no moved record: %v", did, err)
		}
		if err := r.topo.drives[did].DeleteRecord(ctx, ukey, raw.Version); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("ListParts with the moved record on 1 drive and the older set's remains: %v; want ErrReadQuorum", err)
	}
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 {
		t.Errorf("MoveUploads reconciling = %+v, %v; want the upload moved", st, err)
	}
	parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10)
	var etags []string
	for _, p := range parts {
		etags = append(etags, p.ETag)
	}
	if want := []string{part1.ETag, pi2.ETag}; err != nil || !slices.Equal(etags, want) {
		t.Errorf("ListParts after the pass: ETags %v, %v; want %v", etags, err, want)
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
		t.Errorf("Residue(old map) after the pass = %d, %v; want 0", n, err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1, {Number: 2, ETag: pi2.ETag}}, nil); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, append(slices.Clone(data1), data2b...)) {
		t.Fatalf("read after Complete: %d bytes, %v; want the %d bytes acknowledged", len(got), err, len(data1)+len(data2b))
	}
	// Part 1's copy missed the drive away during the move: nothing else
	// of the older set's parts, or of part 2 put before the move, is left.
	probeShardFiles(t, r, 2*cur.Policy.SetSize()-1)
}

// TestOlderSetServedOnlyWhenCurrentAnswers: an upload not moved yet lives
// in an older map's set. While the current map's set answers with fewer
// than its read quorum (it may hold the upload moved there), the older
// set does not serve it: a part is refused (ErrReadQuorum), not put where
// the next clean-up would drop it. With the current set back, it is
// served from the older set.
func TestOlderSetServedOnlyWhenCurrentAnswers(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := r.olderAndCurrent(t) // 1+1 on d00, d01; 2+2 on d02..d05
	const key = "mp/unread"
	id, _ := olderUpload(t, r, old, cur, key, randBytes(84, 1000))
	curSet := cur.Set(cur.PGOf("t", "c", key))
	for _, did := range curSet[:3] {
		r.topo.drives[did].SetOffline(true)
	}
	data := randBytes(85, 1000)
	_, perr := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
	_, _, lerr := r.e.ListParts(ctx, "t", "c", key, id, 0, 10)
	for _, did := range curSet[:3] {
		r.topo.drives[did].SetOffline(false)
	}
	if !errors.Is(perr, ErrReadQuorum) || !errors.Is(lerr, ErrReadQuorum) {
		t.Errorf("with 3 of the current set's 4 drives away: PutPart %v, ListParts %v; want ErrReadQuorum", perr, lerr)
	}
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); err != nil || len(parts) != 1 {
		t.Errorf("ListParts with the current set back: %d parts, %v; want 1", len(parts), err)
	}
}

// TestReconcileReplacesKeptCopy: a failed move keeps its copy of part 1
// (its undo cannot take the record back on x). With x away, part 1 is put
// again through the older set. The next pass must keep that part (newer
// than the copy), written over the copy's record in the current set, and
// collect the copy's shard files.
func TestReconcileReplacesKeptCopy(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
	cur := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
	const key = "mp/recopy"
	data1, data1b := randBytes(86, 1000), randBytes(87, 1200)
	id, _ := olderUpload(t, r, old, cur, key, data1)
	var x placement.DriveID
	failedMoveOnto(t, r, cur, key, id, oneCurrentOnly(old.Set(old.PGOf("t", "c", key)), &x))
	r.topo.drives[x].SetOffline(true)
	pi1, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(data1b), PutOptions{Size: int64(len(data1b))})
	r.topo.drives[x].SetOffline(false)
	if err != nil {
		t.Fatalf("PutPart 1 again with %s away: %v", x, err)
	}
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 || st.Parts != 1 {
		t.Errorf("MoveUploads = %+v, %v; want the upload moved, part 1 copied again", st, err)
	}
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); err != nil || len(parts) != 1 || parts[0].ETag != pi1.ETag {
		t.Errorf("ListParts after the pass: %+v, %v; want part 1 with ETag %s", parts, err, pi1.ETag)
	}
	probeShardFiles(t, r, cur.Policy.SetSize())
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{{Number: 1, ETag: pi1.ETag}}, nil); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data1b) {
		t.Fatalf("read after Complete: %d bytes, %v; want the %d bytes put last", len(got), err, len(data1b))
	}
}
