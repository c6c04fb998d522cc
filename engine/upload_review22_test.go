package engine

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// TestReconcileAbortKeepsDoneCompletion (review 22 F7): a tombstone in
// one set and, in another, a completion marker whose completion happened
// (its artifact is served) and whose holders were lost since. No request
// sequence is known to reach it; the tombstone is written here with
// abort. The reconcile's aborted case must not abort the marker's set:
// abort removes the artifact record of the marker's version, the object
// acknowledged by the Complete.
func TestReconcileAbortKeepsDoneCompletion(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/abort-done"
	data := randBytes(2301, 1000)
	old, cur, id, part1, _, curSet := movedWithRemains(t, r, key, data)
	info, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil)
	if err != nil {
		t.Fatalf("CompleteUpload with %s away: %v", curSet[3], err)
	}
	r.topo.drives[curSet[3]].SetOffline(false)
	rec, at, _, err := r.e.readUploadIn(ctx, r.e.uploadMaps(cur), old, "t", "c", key, id, math.MaxInt)
	if err != nil || rec == nil {
		t.Fatalf("the older set's remains: %v, %v", rec, err)
	}
	if _, err := r.e.abort(ctx, "t", "c", key, id, rec, at); err != nil {
		t.Fatalf("a tombstone in the older set: %v", err)
	}
	wipeUploadRecord(t, r, key, id, curSet[0], curSet[1])
	if st, err := r.e.MoveUploads(ctx); err != nil {
		t.Errorf("MoveUploads: %+v, %v", st, err)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after the reconcile: %d bytes, %v; want the %d bytes completed", len(got), err, len(data))
	}
	if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("ListParts after the reconcile: %d parts, %v; want ErrNoSuchUpload (completed)", len(parts), err)
	}
	if again, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil || again.Version != info.Version {
		t.Errorf("CompleteUpload retried: %+v, %v; want the completion answered again (version %v)", again, err, info.Version)
	}
}
