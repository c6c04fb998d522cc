package engine

import (
	"errors"
	"testing"
	"time"
)

// TestAbortedUploadStaysAborted: an upload aborted while a drive of its set
// was offline stays aborted once the drive is back (probe of session 13:
// the abort deleted the upload's records, so the returning drive's record
// was the only one and the upload was listed again, its parts listed and
// new parts accepted). The abort leaves a tombstone, newer than the
// drive's record, that the upload sweep removes from every drive once it
// is older than CompletedUploadRetention.
func TestAbortedUploadStaysAborted(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, noSync: true})
	ctx := t.Context()
	var skew time.Duration
	r.e.cfg.Now = func() time.Time { return time.Now().Add(skew) }
	u := startUpload(t, r.e, "k", 1)
	r.faulty[3].SetOffline(true)
	if err := r.e.AbortUpload(ctx, "t", "c", "k", u.id); err != nil {
		t.Fatalf("AbortUpload with a drive offline: %v", err)
	}
	r.faulty[3].SetOffline(false)
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 0)
	if err != nil || len(ups) != 0 {
		t.Errorf("ListUploads once the drive is back: %v, %v; want none", ups, err)
	}
	if _, _, err := r.e.ListParts(ctx, "t", "c", "k", u.id, 0, 0); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("ListParts of the aborted upload: %v, want ErrNoSuchUpload", err)
	}
	if err := r.e.AbortUpload(ctx, "t", "c", "k", u.id); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("a second AbortUpload: %v, want ErrNoSuchUpload", err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", "k", u.id, u.parts, nil); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("CompleteUpload of the aborted upload: %v, want ErrNoSuchUpload", err)
	}
	records := func() int {
		t.Helper()
		n := 0
		for _, f := range r.faulty {
			recs, err := f.ListRecords(ctx, uploadKey("t", "c", "k", u.id), "", 10)
			if err != nil {
				t.Fatal(err)
			}
			n += len(recs)
		}
		return n
	}
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Fatal(err)
	}
	if n := records(); n == 0 {
		t.Errorf("a sweep right after the abort removed the tombstone")
	}
	skew = CompletedUploadRetention + time.Minute
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	if n := records(); n != 0 {
		t.Errorf("%d upload records left on the drives after the sweep past the retention", n)
	}
}

// TestAbortedUploadPurgedOnlyWhole: the sweep removes an aborted upload's
// tombstone only once every drive answers, with what a drive that missed
// the abort still holds. Before, a sweep while that drive was still away
// removed the tombstones from the others: back, its upload record was the
// only one, and the aborted upload was listed again and took parts; its
// part records and shard files were never removed.
func TestAbortedUploadPurgedOnlyWhole(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, noSync: true})
	ctx := t.Context()
	var skew time.Duration
	r.e.cfg.Now = func() time.Time { return time.Now().Add(skew) }
	u := startUpload(t, r.e, "k", 1)
	away := r.faulty[3]
	away.SetOffline(true)
	if err := r.e.AbortUpload(ctx, "t", "c", "k", u.id); err != nil {
		t.Fatalf("AbortUpload with a drive offline: %v", err)
	}
	skew = CompletedUploadRetention + time.Minute
	if _, err := r.e.SweepUploads(ctx); err == nil {
		t.Errorf("a sweep with a drive away past the retention: no error, want the tombstone left for the next sweep")
	}
	r.e.WaitBackground()
	away.SetOffline(false)
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 0); err != nil || len(ups) != 0 {
		t.Fatalf("ListUploads once the drive is back: %v, %v; want none (the aborted upload came back)", ups, err)
	}
	count := func(prefix string) int {
		t.Helper()
		n := 0
		for _, f := range r.faulty {
			recs, err := f.ListRecords(ctx, prefix, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			n += len(recs)
		}
		return n
	}
	if n := count(partPrefix("t", "c", u.id)); n == 0 {
		t.Fatal("the drive that missed the abort holds no part record: the test does not test the purge")
	}
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Fatalf("a sweep with every drive back: %v", err)
	}
	r.e.WaitBackground()
	if n := count(uploadKey("t", "c", "k", u.id)); n != 0 {
		t.Errorf("%d upload records left after the sweep", n)
	}
	if n := count(partPrefix("t", "c", u.id)); n != 0 {
		t.Errorf("%d part records left after the sweep (the drive that missed the abort)", n)
	}
	for i, dir := range r.dirs {
		if files := shardFiles(t, dir); len(files) != 0 {
			t.Errorf("drive %d holds %d shard files after the sweep, want 0", i, len(files))
		}
	}
}
