package engine

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestReview24dHiddenUploadNeverReclaimed: an upload record a
// CreateUpload racing DeleteContainer wrote after the abort pass (here:
// the container forgotten by the store without that pass) is, since
// ATTACK24 F3's fix, hidden from the next container of the name: not
// listed, not abortable. But nothing else removes it either: not
// SweepUploads (markers, tombstones and strays only), not the new
// container's DeleteContainer (its abort loop goes through ListUploads),
// not CreateContainer's sweep (artifacts only). Its record and its parts'
// data stay on the drives for ever, and the tenant's usage keeps the
// artifact and the bytes it was charged (review 24d R1). Fixed: once
// older than UploadCompletionGrace, SweepUploads aborts an upload whose
// container is gone or was made again since (sweepHidden); an upload of
// the container as it is stays.
func TestReview24dHiddenUploadNeverReclaimed(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	id, err := r.e.CreateUpload(ctx, "t", "c", "k", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.PutPart(ctx, "t", "c", "k", id, 1, bytes.NewReader(randBytes(3, 64<<10)), PutOptions{Size: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	// The race's outcome: the container is gone, its upload was not aborted.
	if err := r.e.cfg.Containers.DeleteContainer(ctx, "t", "c"); err != nil {
		t.Fatal(err)
	}
	// The name made again, deleted, made again, and every sweep run.
	for range 2 {
		if err := r.e.CreateContainer(ctx, "t", "c"); err != nil {
			t.Fatal(err)
		}
		ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) != 0 {
			t.Fatalf("the new container lists the deleted one's upload: %v", ups)
		}
		if _, err := r.e.SweepUploads(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.e.DeleteContainer(ctx, "t", "c"); err != nil {
			t.Fatal(err)
		}
	}
	// The name made once more, with an upload of its own that must stay.
	if err := r.e.CreateContainer(ctx, "t", "c"); err != nil {
		t.Fatal(err)
	}
	own, err := r.e.CreateUpload(ctx, "t", "c", "k", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := randBytes(4, 64<<10)
	pi, err := r.e.PutPart(ctx, "t", "c", "k", own, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	r.e.cfg.Now = func() time.Time { return time.Now().Add(UploadCompletionGrace + time.Minute) }
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Fatal(err)
	}
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 || ups[0].ID != own {
		t.Fatalf("after the sweep the container lists %v, want its own upload %s", ups, own)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", "k", own, []CompletePart{{1, pi.ETag}}, nil); err != nil {
		t.Fatalf("the container's own upload, past the grace: %v", err)
	}
	m := r.e.mapOf()
	drives, _ := r.e.pgDrives(m, m.PGOf("t", "c", "k"))
	recs, _ := r.e.readRecordsEach(ctx, drives, uploadKey("t", "c", "k", id))
	live := 0
	for _, rec := range recs {
		if rec != nil && !rec.Deleted {
			live++
		}
	}
	if live > 0 {
		t.Fatalf("upload %s of a deleted container: its record stays on %d of %d drives after every sweep and two deletions of the name; nothing can list, abort or reclaim it", id, live, len(drives))
	}
}

// staleContainers is the ContainerStore of a lagging follower (cluster:
// Container reads the local state and syncs only when the container is
// absent there): it has not applied a deletion and re-creation of the
// container yet, so it answers with the deleted one's info.
type staleContainers struct {
	ContainerStore
	stale ContainerInfo
}

func (s *staleContainers) Container(ctx context.Context, tenant, name string) (ContainerInfo, error) {
	if tenant == s.stale.Tenant && name == s.stale.Name {
		return s.stale, nil
	}
	return s.ContainerStore.Container(ctx, tenant, name)
}

// TestReview24dLaggingNodeStampsDeletedContainer: a bucket deleted and
// made again, then a CreateMultipartUpload served by a node whose store
// has not applied those two entries yet (cluster.Store.Container reads
// the local FSM and syncs only for an absent container). The node's
// checkContainer passes (it still sees the old container) and the record
// is stamped with the old container's Created: once every node caught
// up, the upload — acknowledged to the client, in the bucket that
// exists — answers NoSuchUpload to every UploadPart, is not listed, and
// leaks (review 24d R2). Before 97c283b it was a working upload of the
// new bucket. The reverse (an upload of the new bucket read through the
// lagging node) answers a false NoSuchUpload too, for the lag's length.
func TestReview24dLaggingNodeStampsDeletedContainer(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	old, err := r.e.cfg.Containers.Container(ctx, "t", "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.e.DeleteContainer(ctx, "t", "c"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	if err := r.e.CreateContainer(ctx, "t", "c"); err != nil {
		t.Fatal(err)
	}
	lagging, err := New(Config{Topology: r.e.cfg.Topology, Containers: &staleContainers{ContainerStore: r.e.cfg.Containers, stale: old}, StripeSize: r.e.cfg.StripeSize})
	if err != nil {
		t.Fatal(err)
	}
	id, err := lagging.CreateUpload(ctx, "t", "c", "k", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Caught up: any node now.
	if _, err := r.e.PutPart(ctx, "t", "c", "k", id, 1, bytes.NewReader(randBytes(3, 64<<10)), PutOptions{Size: 64 << 10}); err != nil {
		t.Fatalf("UploadPart to an upload CreateMultipartUpload acknowledged in bucket c (which exists): %v", err)
	}
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 {
		t.Fatalf("ListUploads: %d uploads, want the 1 acknowledged", len(ups))
	}
}
