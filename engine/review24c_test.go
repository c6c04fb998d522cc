package engine

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// review24cGone sets up, in the plain rig (one map), an upload completed
// with every drive up whose object was then deleted: its marker is a gone
// completion's. It returns the upload id, the key's set and the record the
// upload had in progress on curSet[3] before the Complete.
func review24cGone(t *testing.T, r *migRig, key string, seed uint64) (string, []placement.DriveID, driver.Record) {
	t.Helper()
	ctx := t.Context()
	data := randBytes(seed, 1000)
	_, cur := r.olderAndCurrent(t)
	r.useChain([]*placement.Map{cur})
	curSet := cur.Set(cur.PGOf("t", "c", key))
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pi, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	inProgress, err := r.topo.drives[curSet[3]].GetRecord(ctx, uploadKey("t", "c", key, id))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{{Number: 1, ETag: pi.ETag}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.e.Delete(ctx, "t", "c", key); err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	return id, curSet, inProgress
}

// TestReview24cDropMarkerSparesNewerRecord (review 24c N1): dropMarker
// skips, in its first pass, the records of a version equal to or newer
// than the marker, but its last step (deleteRecord with the zero
// Version) deletes whatever record each drive holds: a record newer than
// the marker on a drive (one findUpload did not count: it was slow, or
// written after the read) is deleted with it. The marker's delete should
// carry mk.Version.
func TestReview24cDropMarkerSparesNewerRecord(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/review24c-newer"
	id, curSet, inProgress := review24cGone(t, r, key, 2431)
	ukey := uploadKey("t", "c", key, id)
	mk, at, err := r.e.findUpload(ctx, "t", "c", key, id)
	if err != nil || !isMarker(mk) {
		t.Fatalf("findUpload = %v, %v; want the marker", mk, err)
	}
	// curSet[3] now holds a record of the upload newer than the marker.
	rec, err := unmarshalRecord(inProgress.Data)
	if err != nil {
		t.Fatal(err)
	}
	r.e.observe(mk.Version)
	v, _ := r.e.newVersion()
	rec.Version = v
	if v.Compare(mk.Version) <= 0 {
		t.Fatalf("new version %v not newer than the marker's %v", v, mk.Version)
	}
	d3 := r.topo.drives[curSet[3]]
	if err := d3.DeleteRecord(ctx, ukey, driver.Version{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d3.PutRecord(ctx, driver.Record{Key: ukey, Version: v, Data: rec.marshal()}); err != nil {
		t.Fatal(err)
	}
	dropped := r.e.dropMarker(ctx, at.drives, ukey, mk)
	r.e.WaitBackground()
	for _, did := range curSet[:3] {
		if _, err := r.topo.drives[did].GetRecord(ctx, ukey); err == nil {
			t.Errorf("%s still holds the marker (dropMarker = %v)", did, dropped)
		}
	}
	raw, err := d3.GetRecord(ctx, ukey)
	if err != nil {
		t.Fatalf("dropMarker (= %v) deleted %s's record newer than the marker: %v", dropped, curSet[3], err)
	}
	if raw.Version != v {
		t.Fatalf("%s holds version %v, want %v", curSet[3], raw.Version, v)
	}
}

// TestReview24cGoneRetryHungDrive (review 24c N2): dropMarker reads with
// readRecordsEach, which waits for every drive; under settle's cleanup
// context (cleanupTimeout, 30 s) a hung drive of the set holds a retried
// AbortUpload (or CompleteUpload) of a completed-then-deleted upload for
// 30 s, where deleteRecord before returned after a majority and the
// straggler grace. Every gone marker of a sweep pass waits the same.
func TestReview24cGoneRetryHungDrive(t *testing.T) {
	const bound = 8 * time.Second
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/review24c-hung"
	id, curSet, _ := review24cGone(t, r, key, 2432)
	hung := r.topo.drives[curSet[3]]
	hung.SetHang(true)
	defer hung.SetHang(false)
	rctx, cancel := context.WithTimeout(ctx, 4*bound)
	defer cancel()
	began := time.Now()
	err := r.e.AbortUpload(rctx, "t", "c", key, id)
	took := time.Since(began)
	t.Logf("AbortUpload with %s hung: %v after %v", curSet[3], err, took)
	if !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("AbortUpload = %v, want ErrNoSuchUpload", err)
	}
	if took > bound {
		t.Errorf("AbortUpload of a gone completion took %v with one drive hung (bound %v)", took, bound)
	}
}

// TestReview24cListUploadsLargeMetadataHungGet (review 24c N3): pickable
// (review 24b S2's fix) reads a cut upload record whole with a GetRecord
// on the listing's drive, synchronously inside listMerged's merge loop and
// under the caller's context: a drive that answered the listing and then
// hangs on GetRecord holds ListUploads until the request's deadline (the
// listing's own straggler grace does not cover it), and the reads of a
// page's cut records run one after another.
func TestReview24cListUploadsLargeMetadataHungGet(t *testing.T) {
	const bound = 8 * time.Second
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/review24c-list-hung"
	_, cur := r.olderAndCurrent(t)
	r.useChain([]*placement.Map{cur})
	curSet := cur.Set(cur.PGOf("t", "c", key))
	if _, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{Metadata: map[string]string{"note": strings.Repeat("n", 1500)}}); err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	d := r.topo.drives[curSet[0]]
	d.SetBeforeGetRecord(func(ctx context.Context, key string) { <-ctx.Done() })
	defer d.SetBeforeGetRecord(nil)
	rctx, cancel := context.WithTimeout(ctx, 4*bound)
	defer cancel()
	began := time.Now()
	ups, _, err := r.e.ListUploads(rctx, "t", "c", "", "", "", 10)
	took := time.Since(began)
	t.Logf("ListUploads with %s's GetRecord hung: %d uploads, %v, after %v", curSet[0], len(ups), err, took)
	if err != nil || len(ups) != 1 {
		t.Errorf("ListUploads = %d uploads, %v; want the upload", len(ups), err)
	}
	if took > bound {
		t.Errorf("ListUploads took %v with one drive's GetRecord hung (bound %v)", took, bound)
	}
}
