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
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// uploadRecordFault is a drive that fails, for one upload's record (ukey),
// the writes of its moved record (one naming epoch) when failPut is set,
// and every delete (a rollback's) when failDelete is set: a drive that
// went away part way through a move's record write and its rollback.
// With lostReply set, the moved record's write lands but the drive
// answers an error (its reply lost), and with readsFailAfter set too,
// reads of the upload's record fail from then on (failGet).
type uploadRecordFault struct {
	driver.Driver
	ukey, epoch                                             string
	failPut, failDelete, lostReply, readsFailAfter, failGet atomic.Bool
}

func (f *uploadRecordFault) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	if f.failGet.Load() && key == f.ukey {
		return driver.Record{}, fmt.Errorf("test: get the upload record: %w", driver.ErrOffline)
	}
	return f.Driver.GetRecord(ctx, key)
}

func (f *uploadRecordFault) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if (f.failPut.Load() || f.lostReply.Load()) && r.Key == f.ukey {
		if rec, err := unmarshalRecord(r.Data); err == nil && rec.Metadata[uploadEpochKey] == f.epoch {
			if f.lostReply.Load() {
				f.Driver.PutRecord(ctx, r)
				f.failGet.Store(f.readsFailAfter.Load())
			}
			return driver.Record{}, false, fmt.Errorf("test: put the moved upload record: %w", driver.ErrOffline)
		}
	}
	return f.Driver.PutRecord(ctx, r)
}

func (f *uploadRecordFault) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	if f.failDelete.Load() && key == f.ukey {
		return fmt.Errorf("test: delete the upload record: %w", driver.ErrOffline)
	}
	return f.Driver.DeleteRecord(ctx, key, v)
}

// failedMoveOnto runs a MoveUploads whose record write of upload id
// lands on the drives of cur's set for key that lands reports, only, and
// whose rollback fails there: the remains of a failed move (a crash of
// the mover part way through that write leaves the same).
func failedMoveOnto(t *testing.T, r *migRig, cur *placement.Map, key, id string, lands func(did placement.DriveID) bool) {
	t.Helper()
	ukey := uploadKey("t", "c", key, id)
	faults := map[placement.DriveID]*uploadRecordFault{}
	for _, did := range cur.Drives {
		f := &uploadRecordFault{Driver: r.topo.drives[did.ID], ukey: ukey, epoch: fmt.Sprint(cur.Epoch)}
		faults[did.ID] = f
		r.topo.drives[did.ID] = drivertest.NewFaulty(f)
	}
	for _, did := range cur.Set(cur.PGOf("t", "c", key)) {
		if lands(did) {
			faults[did].failDelete.Store(true)
		} else {
			faults[did].failPut.Store(true)
		}
	}
	if st, err := r.e.MoveUploads(t.Context()); err == nil || st.Moved != 0 {
		t.Fatalf("MoveUploads with the record write failing part way = %+v, %v; want it failed", st, err)
	}
	for _, f := range faults {
		f.failPut.Store(false)
		f.failDelete.Store(false)
	}
	r.e.moveRetries.Delete(id)
}

// oneCurrentOnly returns a lands function for failedMoveOnto that picks
// the first drive of the current set the older set (oldSet) lacks, and
// reports it in *x.
func oneCurrentOnly(oldSet []placement.DriveID, x *placement.DriveID) func(placement.DriveID) bool {
	return func(did placement.DriveID) bool {
		if *x == "" && !slices.Contains(oldSet, did) {
			*x = did
			return true
		}
		return false
	}
}

// TestFailedMoveOlderSetWins (review 21 F1 scenario A): a move's record
// write (MoveUploads) lands on one drive of the current set that the
// older set lacks, below the write quorum, and its rollback fails there.
// That drive is away (within parity) when part 2 is put, so the part
// goes to the older set and is acknowledged. With every drive back, the
// upload must show both parts (the moved record on one drive is the
// remains of a failed move), requests on it are refused (ErrReadQuorum:
// neither set is chosen), the next pass must move it again with part 2,
// and Complete must assemble both.
// Before the fix the current set served the stale moved record (part 2
// hidden, part 1 too: the failed move deleted its copies), and the next
// pass rolled it forward and deleted the older set's parts.
func TestFailedMoveOlderSetWins(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
	cur := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
	const key = "mp/split"
	data1, data2 := randBytes(41, MinPartSize), randBytes(42, 100<<10)
	id, part1 := olderUpload(t, r, old, cur, key, data1)
	oldSet := old.Set(old.PGOf("t", "c", key))
	var x placement.DriveID
	failedMoveOnto(t, r, cur, key, id, oneCurrentOnly(oldSet, &x))
	listed := func(what string, want ...int) {
		t.Helper()
		parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10)
		var got []int
		for _, p := range parts {
			got = append(got, p.Number)
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ListParts %s: parts %v, %v; want %v", what, got, err, want)
		}
	}
	// Neither set is chosen while the current one holds the moved record
	// on fewer than its read quorum: retryable, until a pass reconciles.
	undecided(t, r, key, id, "after the failed move")

	r.topo.drives[x].SetOffline(true)
	pi2, err := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(data2), PutOptions{Size: int64(len(data2))})
	r.topo.drives[x].SetOffline(false)
	if err != nil {
		t.Fatalf("PutPart 2 with %s (holding the failed move's record) away: %v", x, err)
	}
	part2 := CompletePart{Number: 2, ETag: pi2.ETag}
	undecided(t, r, key, id, "with every drive back")
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 1 || ups[0].ID != id {
		t.Errorf("ListUploads with every drive back: %+v, %v; want upload %s", ups, err, id)
	}
	// Part 1's copy, which the failed move kept (its undo could not take
	// the record back on x), is in place; part 2 is copied.
	st, err := r.e.MoveUploads(ctx)
	if err != nil || st.Moved != 1 || st.Parts != 1 {
		t.Errorf("next MoveUploads = %+v, %v; want the upload moved again, part 2 copied", st, err)
	}
	listed("after the next move pass", 1, 2)
	if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
		t.Errorf("Residue(old map) after the move = %d, %v; want 0", n, err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1, part2}, nil); err != nil {
		t.Fatalf("CompleteUpload of the two acknowledged parts: %v", err)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, append(slices.Clone(data1), data2...)) {
		t.Fatalf("read after Complete: %d bytes, %v; want the %d bytes put", len(got), err, len(data1)+len(data2))
	}
	probeShardFiles(t, r, 2*cur.Policy.SetSize()) // nothing of the older set's parts or the failed move's copies left
}

// TestFailedMoveAbortThroughOlderSetStays (review 21 F2): the moved
// record of a failed move stays on one drive of the current set only.
// That drive is away when the client aborts, so the abort goes through
// the older set. Once the drive is back, requests on the upload are
// refused (ErrReadQuorum) until a move pass reconciles the two sets; then
// the upload must stay aborted: not listed, no parts, not completable,
// across move passes.
func TestFailedMoveAbortThroughOlderSetStays(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
	cur := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
	const key = "mp/aborted"
	data := randBytes(43, 100<<10)
	id, part := olderUpload(t, r, old, cur, key, data)
	var x placement.DriveID
	failedMoveOnto(t, r, cur, key, id, oneCurrentOnly(old.Set(old.PGOf("t", "c", key)), &x))
	r.topo.drives[x].SetOffline(true)
	err := r.e.AbortUpload(ctx, "t", "c", key, id)
	r.topo.drives[x].SetOffline(false)
	if err != nil {
		t.Fatalf("AbortUpload with %s away: %v", x, err)
	}
	undecided(t, r, key, id, "after the abort, before a move pass")
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 0 {
		t.Errorf("MoveUploads after the abort = %+v, %v; want the failed move's record aborted, nothing moved", st, err)
	}
	for pass := range 2 {
		if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
			t.Errorf("pass %d: ListUploads after the abort: %+v, %v; want none", pass, ups, err)
		}
		if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
			t.Errorf("pass %d: ListParts of the aborted upload: %d parts, %v; want ErrNoSuchUpload", pass, len(parts), err)
		}
		st, err := r.e.MoveUploads(ctx)
		t.Logf("MoveUploads: %+v, %v", st, err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part}, nil); !errors.Is(err, ErrNoSuchUpload) {
		got, rerr := read(ctx, r.e, key, 0, -1)
		t.Errorf("CompleteUpload of the aborted upload: %v; want ErrNoSuchUpload (the key now reads %d bytes, %v)", err, len(got), rerr)
	}
	if err := r.e.AbortUpload(ctx, "t", "c", key, id); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("AbortUpload again: %v; want ErrNoSuchUpload", err)
	}
	// Past the retention the sweep purges the tombstones, with the failed
	// move's record on x (a live record of the upload a drive holds): the
	// upload must not come back then either.
	r.skew.Store(int64(CompletedUploadRetention + time.Minute))
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Fatalf("SweepUploads past the retention: %v", err)
	}
	r.e.WaitBackground()
	if raw, err := r.topo.drives[x].GetRecord(ctx, uploadKey("t", "c", key, id)); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("drive %s after the sweep: the failed move's record: %v, %v; want it purged", x, raw.Version, err)
	}
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Errorf("ListUploads after the sweep: %+v, %v; want none", ups, err)
	}
	if _, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("ListParts after the sweep: %v; want ErrNoSuchUpload", err)
	}
}

// TestFailedMoveUndecidedRefuses: the moved record of a failed move stays
// on two drives of the current set the older set lacks. With two other
// drives of the current set away, the four that answer (its read quorum)
// cannot tell a failed move from one that reached its write quorum on
// the two away: the upload is served by neither set, and a part put then
// is refused (503), not acknowledged into a set the next pass discards.
// With every drive back it is still refused (the rule does not depend on
// how many drives answer), until the next move pass moves it again whole;
// then it takes parts and completes.
func TestFailedMoveUndecidedRefuses(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
	cur := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
	const key = "mp/undecided"
	data1, data2 := randBytes(44, MinPartSize), randBytes(45, 100<<10)
	id, part1 := olderUpload(t, r, old, cur, key, data1)
	oldSet := old.Set(old.PGOf("t", "c", key))
	var took, others []placement.DriveID
	failedMoveOnto(t, r, cur, key, id, func(did placement.DriveID) bool {
		if !slices.Contains(oldSet, did) && len(took) < 2 {
			took = append(took, did)
			return true
		}
		if !slices.Contains(oldSet, did) {
			others = append(others, did)
		}
		return false
	})
	for _, did := range others {
		r.topo.drives[did].SetOffline(true)
	}
	_, _, lerr := r.e.ListParts(ctx, "t", "c", key, id, 0, 10)
	_, perr := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(data2), PutOptions{Size: int64(len(data2))})
	for _, did := range others {
		r.topo.drives[did].SetOffline(false)
	}
	if !errors.Is(lerr, ErrReadQuorum) || !errors.Is(perr, ErrReadQuorum) {
		t.Errorf("with %v (holding the failed move's record) answering and %v away: ListParts %v, PutPart %v; want ErrReadQuorum", took, others, lerr, perr)
	}
	undecided(t, r, key, id, "with every drive back")
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 {
		t.Errorf("next MoveUploads = %+v, %v; want the upload moved again", st, err)
	}
	pi2, err := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(data2), PutOptions{Size: int64(len(data2))})
	if err != nil {
		t.Fatalf("PutPart 2 after the move pass: %v", err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1, {Number: 2, ETag: pi2.ETag}}, nil); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, append(slices.Clone(data1), data2...)) {
		t.Fatalf("read after Complete: %d bytes, %v; want the %d bytes put", len(got), err, len(data1)+len(data2))
	}
}

// TestFailedMoveCompleteThroughOlderSetStays: the moved record of a
// failed move stays on one drive of the current set only, which is away
// when the client completes the upload: the completion goes through the
// older set (its marker there). Once the drive is back, requests on the
// upload are refused (ErrReadQuorum) until a move pass reconciles; then
// the completed upload wins over the failed move's record: a retried Complete answers
// the artifact, the upload is not listed and takes no parts; and once
// the sweep removes the marker past the retention, the failed move's
// record goes with it, so the upload does not come back in progress.
func TestFailedMoveCompleteThroughOlderSetStays(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
	cur := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
	const key = "mp/completed"
	data := randBytes(46, 100<<10)
	id, part := olderUpload(t, r, old, cur, key, data)
	var x placement.DriveID
	failedMoveOnto(t, r, cur, key, id, oneCurrentOnly(old.Set(old.PGOf("t", "c", key)), &x))
	r.topo.drives[x].SetOffline(true)
	info, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part}, nil)
	r.topo.drives[x].SetOffline(false)
	if err != nil {
		t.Fatalf("CompleteUpload with %s away: %v", x, err)
	}
	gone := func(what string) {
		t.Helper()
		if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
			t.Errorf("ListUploads %s: %+v, %v; want none", what, ups, err)
		}
		if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
			t.Errorf("ListParts %s: %d parts, %v; want ErrNoSuchUpload", what, len(parts), err)
		}
		if _, err := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(data), PutOptions{Size: int64(len(data))}); !errors.Is(err, ErrNoSuchUpload) {
			t.Errorf("PutPart %s: %v; want ErrNoSuchUpload", what, err)
		}
		if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
			t.Errorf("read %s: %d bytes, %v; want the %d bytes completed", what, len(got), err, len(data))
		}
	}
	undecided(t, r, key, id, "with every drive back")
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 0 {
		t.Errorf("MoveUploads with every drive back = %+v, %v; want the failed move's record dropped, nothing moved", st, err)
	}
	gone("after the move pass reconciled")
	if again, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part}, nil); err != nil || again.ETag != info.ETag {
		t.Errorf("CompleteUpload retried: %+v, %v; want ETag %s", again, err, info.ETag)
	}
	if st, err := r.e.MoveUploads(ctx); err != nil {
		t.Errorf("MoveUploads: %+v, %v", st, err)
	}
	gone("after a move pass")
	r.skew.Store(int64(CompletedUploadRetention + time.Minute))
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Fatalf("SweepUploads past the retention: %v", err)
	}
	r.e.WaitBackground()
	if raw, err := r.topo.drives[x].GetRecord(ctx, uploadKey("t", "c", key, id)); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("drive %s after the sweep: the failed move's record: %v, %v; want it removed with the marker", x, raw.Version, err)
	}
	gone("after the sweep removed the marker")
}

// undecided checks that, while a failed move's record and an older set's
// upload are both there, ListParts, PutPart and CompleteUpload of the
// upload answer ErrReadQuorum (retryable) and choose neither.
func undecided(t *testing.T, r *migRig, key, id, what string) {
	t.Helper()
	ctx := t.Context()
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("ListParts %s: %d parts, %v; want ErrReadQuorum", what, len(parts), err)
	}
	data := randBytes(49, 1000)
	if _, err := r.e.PutPart(ctx, "t", "c", key, id, 3, bytes.NewReader(data), PutOptions{Size: int64(len(data))}); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("PutPart %s: %v; want ErrReadQuorum", what, err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{{Number: 3, ETag: "x"}}, nil); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("CompleteUpload %s: %v; want ErrReadQuorum", what, err)
	}
}

// TestFailedMoveLostReplyOnSharedDrives (F4, the shared-drive case): the
// current set (2+2 on d00..d03) holds the older set's drives (1+1 on d00,
// d01). The move's record lands on those two but their replies are lost
// (errors), and the other two refuse it: the write fails with nothing to
// roll back by its own count, yet the moved record replaced the older
// set's on both of its drives, where the older set holds nothing any more
// and the current set holds the moved record on its read quorum, without
// parts (the failed move removed its copies): part 1 would be hidden, and
// no pass would look at it again. The move's undo must read those drives
// again, take the moved record back and put back the older one.
func TestFailedMoveLostReplyOnSharedDrives(t *testing.T) {
	lostReplyOnSharedDrives(t, false)
}

// TestFailedMoveLostReplyUnconfirmedKeepsParts: as
// TestFailedMoveLostReplyOnSharedDrives, but the two drives do not answer
// the undo's reads either: the moved record stays on both (the current
// set's read quorum, the older set left with nothing), so the move's
// copies of the parts must stay with it, or part 1 is hidden for good.
func TestFailedMoveLostReplyUnconfirmedKeepsParts(t *testing.T) {
	lostReplyOnSharedDrives(t, true)
}

func lostReplyOnSharedDrives(t *testing.T, unconfirmed bool) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
	cur := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 2)
	const key = "mp/lost"
	data1 := randBytes(47, MinPartSize)
	id, part1 := olderUpload(t, r, old, cur, key, data1)
	oldSet := old.Set(old.PGOf("t", "c", key))
	faults := map[placement.DriveID]*uploadRecordFault{}
	for _, did := range cur.Set(cur.PGOf("t", "c", key)) {
		f := &uploadRecordFault{Driver: r.topo.drives[did], ukey: uploadKey("t", "c", key, id), epoch: fmt.Sprint(cur.Epoch)}
		faults[did] = f
		r.topo.drives[did] = drivertest.NewFaulty(f)
		if slices.Contains(oldSet, did) {
			f.lostReply.Store(true)
			f.readsFailAfter.Store(unconfirmed)
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
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); err != nil || len(parts) != 1 || parts[0].ETag != part1.ETag {
		t.Errorf("ListParts after the failed move: %+v, %v; want part 1", parts, err)
	}
	if st, err := r.e.MoveUploads(ctx); err != nil {
		t.Errorf("next MoveUploads = %+v, %v", st, err)
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
		t.Errorf("Residue(old map) after the next pass = %d, %v; want 0", n, err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data1) {
		t.Fatalf("read after Complete: %d bytes, %v; want the %d bytes put", len(got), err, len(data1))
	}
}
