package engine

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// TestReview22bDeletedCompletionResurrects (review 22b F1): F3's set-up
// (an upload moved with the older set's clean-up cut short, completed
// through the current set: 200, marker on curSet[0..2]; two marker
// holders are disks replaced since), and then the object is deleted
// (200) and its tombstone purged after TombstoneGrace (15 min, well
// inside CompletedUploadRetention) before a pass reconciles (in the
// field: the reconcile needs every drive of every set, so one older-set
// drive away is enough to delay it). The reconcile's markerCompletion
// finds no artifact record, takes the completion for pending, and writes
// the older set's remains back in progress: the acknowledged Complete is
// undone, the upload is listed again, and a retried Complete brings the
// deleted object back. Complete's own path checks this case (partsLost);
// the reconcile does not.
func TestReview22bDeletedCompletionResurrects(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/deleted-completion"
	data := randBytes(2301, 1000)
	_, _, id, part1, _, curSet := movedWithRemains(t, r, key, data)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		t.Fatalf("CompleteUpload with %s away: %v", curSet[3], err)
	}
	r.topo.drives[curSet[3]].SetOffline(false)
	wipeUploadRecord(t, r, key, id, curSet[0], curSet[1])
	if err := r.e.Delete(ctx, "t", "c", key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	r.skew.Store(int64(TombstoneGrace + time.Minute))
	if _, err := r.e.Heal(ctx, "t", "c", key); err != nil {
		t.Logf("Heal (tombstone purge): %v", err)
	}
	ikey := indexPrefix("t", "c") + key
	for _, did := range curSet {
		if raw, err := r.topo.drives[did].GetRecord(ctx, ikey); err == nil {
			t.Logf("%s still holds the key's record (version %v): purge did not run", did, raw.Version)
		}
	}
	deletedCompletionStaysGone(t, r, key, id, part1, data)
}

// TestReview22bGoneMarkerUncoversRemains (review 22b F2, no disk lost):
// B1's set-up, completed through the current set (200, marker on the
// write quorum), with oldSet[1] (holding the older set's remains: record
// and part) away until the object is deleted (200) and the sweep settles
// the marker (completionGone: it deletes the marker). The current set
// then holds nothing of the upload, and findUpload serves the older
// set's remains: the completed upload is in progress again.
func TestReview22bGoneMarkerUncoversRemains(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/gone-marker"
	data := randBytes(2302, 1000)
	_, _, id, part1, oldSet, curSet := movedWithRemains(t, r, key, data)
	r.topo.drives[oldSet[1]].SetOffline(true)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		t.Fatalf("CompleteUpload with %s away: %v", curSet[3], err)
	}
	r.topo.drives[curSet[3]].SetOffline(false)
	st, err := r.e.MoveUploads(ctx)
	t.Logf("pass with %s away: %+v, %v", oldSet[1], st, err)
	if err := r.e.Delete(ctx, "t", "c", key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	n, err := r.e.SweepUploads(ctx)
	r.e.WaitBackground()
	t.Logf("sweep: %d, %v", n, err)
	r.topo.drives[oldSet[1]].SetOffline(false)
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Errorf("ListUploads: %+v, %v; want none (completed then deleted)", ups, err)
	}
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("ListParts: %d parts, %v; want ErrNoSuchUpload (completed)", len(parts), err)
	}
	if again, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err == nil {
		t.Errorf("CompleteUpload retried: %+v; want ErrNoSuchUpload, not the deleted object made again", again)
	}
}

// TestReview22bGoneMarkerDeletedOnceRemainsDropped (review 22b F2's fix,
// no leak): the F2 set-up, the completion then gone by a Delete or by
// CompletedUploadRetention. While the older set's drive is away the sweep
// keeps the marker (it hides the remains that drive may hold); once the
// drive is back, the sweep alone drops the remains under the upload's
// lease and then the marker: no drive holds a record of the upload or of
// its parts, and the completed upload does not come back.
func TestReview22bGoneMarkerDeletedOnceRemainsDropped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delete bool // gone by a Delete, else by CompletedUploadRetention
	}{{"deleted", true}, {"expired", false}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newMigRig(t)
			ctx := t.Context()
			key := "mp/gone-marker-" + tc.name
			data := randBytes(2304, 1000)
			_, _, id, part1, oldSet, curSet := movedWithRemains(t, r, key, data)
			r.topo.drives[oldSet[1]].SetOffline(true)
			if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
				t.Fatalf("CompleteUpload with %s away: %v", curSet[3], err)
			}
			r.topo.drives[curSet[3]].SetOffline(false)
			if _, err := r.e.MoveUploads(ctx); err == nil {
				t.Fatalf("MoveUploads with %s away: nil error; want the older set's clean-up failing", oldSet[1])
			}
			if tc.delete {
				if err := r.e.Delete(ctx, "t", "c", key); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			} else {
				r.skew.Store(int64(CompletedUploadRetention + time.Minute))
			}
			ukey := uploadKey("t", "c", key, id)
			records := func(prefix string, ids []placement.DriveID) int {
				t.Helper()
				n := 0
				for _, did := range ids {
					recs, err := r.topo.drives[did].ListRecords(ctx, prefix, "", 100)
					if err != nil {
						t.Fatalf("list %q on %s: %v", prefix, did, err)
					}
					n += len(recs)
				}
				return n
			}
			if _, err := r.e.SweepUploads(ctx); err == nil {
				t.Errorf("SweepUploads with %s away: nil error; want the older set's remains not dropped", oldSet[1])
			}
			r.e.WaitBackground()
			if got := records(ukey, curSet); got == 0 {
				t.Fatalf("after a sweep with %s away: no marker on %v; want it kept (it hides the older set's remains)", oldSet[1], curSet)
			}
			r.topo.drives[oldSet[1]].SetOffline(false)
			if _, err := r.e.SweepUploads(ctx); err != nil {
				t.Fatalf("SweepUploads with every drive back: %v", err)
			}
			r.e.WaitBackground()
			if got, want := records(ukey, r.ids), 0; got != want {
				t.Errorf("records of the upload on every drive after the sweep: %d, want %d (marker and remains gone)", got, want)
			}
			if got, want := records(partPrefix("t", "c", id), r.ids), 0; got != want {
				t.Errorf("part records of the upload on every drive after the sweep: %d, want %d", got, want)
			}
			if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
				t.Errorf("ListUploads: %+v, %v; want none", ups, err)
			}
			if _, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
				t.Errorf("ListParts: %v; want ErrNoSuchUpload", err)
			}
			if again, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); !errors.Is(err, ErrNoSuchUpload) {
				t.Errorf("CompleteUpload retried: %+v, %v; want ErrNoSuchUpload", again, err)
			}
		})
	}
}

// TestReview22bOlderUploadTwoCurrentAway (review 22b F3, availability):
// an upload still in the older set (1+1) after a map change, with two of
// the current 2+2 set's drives away (its parity; k = 2 answer "nothing").
// Main and round 1 served the upload from the older set; since noneQuorum
// an older set is served only once n-k+1 = 3 drives of the current set
// answered that they hold no moved record of it (a move's record on a
// read quorum but below the write quorum would otherwise be passed over).
// The accepted trade-off, pinned: 503 (ErrReadQuorum) while two are
// away, served again, and completed, once one of them is back.
func TestReview22bOlderUploadTwoCurrentAway(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/older-two-away"
	data := randBytes(2303, 1000)
	old, cur := r.olderAndCurrent(t)
	id, part1 := olderUpload(t, r, old, cur, key, data)
	curSet := cur.Set(cur.PGOf("t", "c", key))
	oldSet := old.Set(old.PGOf("t", "c", key))
	t.Logf("old set %v, current set %v", oldSet, curSet)
	var away []placement.DriveID
	for _, did := range curSet[2:] {
		if !slices.Contains(oldSet, did) {
			r.topo.drives[did].SetOffline(true)
			away = append(away, did)
		}
	}
	if len(away) != cur.Policy.Parity {
		t.Fatalf("away %v: want %d drives of the current set away, none of the older set", away, cur.Policy.Parity)
	}
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("ListParts with %v away: %d parts, %v; want ErrReadQuorum (503: fewer than n-k+1 drives of the current set answered)", away, len(parts), err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("CompleteUpload with %v away: %v; want ErrReadQuorum", away, err)
	}
	r.topo.drives[away[0]].SetOffline(false)
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); err != nil || len(parts) != 1 || parts[0].ETag != part1.ETag {
		t.Fatalf("ListParts with %s back: %+v, %v; want the older set's part 1 (ETag %s)", away[0], parts, err, part1.ETag)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		t.Fatalf("CompleteUpload with %s back: %v", away[0], err)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read after Complete: %d bytes, %v; want the part's %d bytes", len(got), err, len(data))
	}
}

// knownOpen skips a test of an open defect or an accepted trade-off of
// issue 14 (it fails on this code) unless VAULT_KNOWN is set, so that CI
// stays green while the test documents the case and runs on demand.
func knownOpen(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("VAULT_KNOWN") == "" {
		t.Skip(what + "; set VAULT_KNOWN=1 to run")
	}
}

// deletedCompletionStaysGone runs two upload move passes over an upload
// whose Complete succeeded and whose object was deleted since, and checks
// that it stays gone: not listed, no parts, a retried Complete refused,
// the object not readable.
func deletedCompletionStaysGone(t *testing.T, r *migRig, key, id string, part1 CompletePart, data []byte) {
	t.Helper()
	ctx := t.Context()
	for pass := range 2 {
		r.e.moveRetries.Delete(id)
		st, err := r.e.MoveUploads(ctx)
		t.Logf("pass %d: %+v, %v", pass, st, err)
	}
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Errorf("ListUploads after the pass: %+v, %v; want none (completed then deleted)", ups, err)
	}
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("ListParts after the pass: %d parts, %v; want ErrNoSuchUpload (completed)", len(parts), err)
	}
	if again, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err == nil {
		t.Errorf("CompleteUpload retried: %+v; want ErrNoSuchUpload, not the deleted object made again", again)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err == nil {
		t.Errorf("read after delete: %d bytes (equal to the deleted data: %v); want no such artifact", len(got), bytes.Equal(got, data))
	}
}
