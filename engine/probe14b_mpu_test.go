package engine

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// TestProbe14bCompletedUploadResurfaces: an upload completes while one
// drive of its set is offline, so that drive keeps the upload's
// in-progress record. After the completion marker is swept
// (CompletedUploadRetention), does the stale record make the completed
// upload list as in progress again, and does aborting it harm the
// completed artifact?
func TestProbe14bCompletedUploadResurfaces(t *testing.T) {
	// (held up in the probe of session 14: kept as a regression test)
	r := newP14Rig(t, 6, 0, placement.Policy{}, 0)
	ctx := t.Context()
	const key = "mpu"
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	partSize := 5 << 20
	var parts []CompletePart
	var all []byte
	for n := 1; n <= 2; n++ {
		data := randBytes(uint64(n), partSize)
		pi, err := r.e.PutPart(ctx, "t", "c", key, id, n, bytes.NewReader(data), PutOptions{Size: int64(partSize)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, CompletePart{Number: n, ETag: pi.ETag})
		all = append(all, data...)
	}
	m := r.e.mapFor("t", "c")
	set := m.Set(m.PGOf("t", "c", key))
	stale := set[len(set)-1]
	r.offline(true, stale)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, parts, nil); err != nil {
		t.Fatalf("CompleteUpload with one drive offline: %v", err)
	}
	r.e.WaitBackground()
	r.offline(false, stale)
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 100)
	t.Logf("after complete: uploads %v, %v", ups, err)
	r.skew.Store(int64(CompletedUploadRetention + time.Hour))
	n, err := r.e.SweepUploads(ctx)
	t.Logf("SweepUploads: %d, %v", n, err)
	r.e.WaitBackground()
	ups, _, err = r.e.ListUploads(ctx, "t", "c", "", "", "", 100)
	t.Logf("after sweep: uploads %v, %v", ups, err)
	for _, u := range ups {
		if u.ID == id {
			t.Errorf("completed upload %s listed in progress after its marker was swept", id)
			aerr := r.e.AbortUpload(ctx, "t", "c", key, id)
			t.Logf("AbortUpload of it: %v", aerr)
			r.e.WaitBackground()
		}
	}
	got, err := read(ctx, r.e, key, 0, -1)
	if err != nil || !bytes.Equal(got, all) {
		t.Errorf("completed artifact: read %v (equal %v)", err, bytes.Equal(got, all))
	}
	_ = fmt.Sprint
}
