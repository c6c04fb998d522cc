package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// Review 25h: 7227059 (fixes of review 25g).

// pointerFail fails every write of record key ikey while armed.
type pointerFail struct {
	driver.Driver
	armed *atomic.Bool
	ikey  string
}

func (p pointerFail) PutRecord(ctx context.Context, rec driver.Record) (driver.Record, bool, error) {
	if p.armed.Load() && rec.Key == p.ikey {
		return driver.Record{}, false, errors.New("spy: pointer write failed")
	}
	return p.Driver.PutRecord(ctx, rec)
}

// TestReview25hRetryAfterFailedFirstCallSkipsLock (H1): a first
// CompleteMultipartUpload whose artifact was written but whose pointer
// write failed (or whose client went away: op.ctx cancelled, or whose
// completedRetention failed) answers an error, and S3 never applied the
// upload's retention / legal hold nor the bucket's default retention.
// The client's retry finds the marker done and gets Retried=true, so S3
// skips completedRetention (G4 fix): the version stays unlocked for good
// (a Compliance bucket's object is deletable). The engine cannot tell a
// retry of a call that answered success from one that did not; the
// assertion below is one possible fix (Retried only if ...); writing the
// lock into the version record at completion (finish) is the other, and
// this test would then be rewritten at the S3 level. Fixed at the S3
// level (s3/multipart.go): a retry's version that carries neither a
// retention nor a legal hold gets them applied; this test checks what
// that rule reads: the retry's ArtifactInfo carries the version's lock
// state, none here, and a lock set since is seen by a later retry.
func TestReview25hRetryAfterFailedFirstCallSkipsLock(t *testing.T) {
	ctx := t.Context()
	armed := &atomic.Bool{}
	ikey := indexPrefix("t", "c") + "h1"
	r := newRig(t, rigOptions{drives: 4, wrap: func(d driver.Driver) driver.Driver { return pointerFail{d, armed, ikey} }})
	body := randBytes(2611, 200<<10)
	id, err := r.e.CreateUpload(ctx, "t", "c", "h1", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pi, err := r.e.PutPart(ctx, "t", "c", "h1", id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	cp := CompletePart{Number: 1, ETag: pi.ETag}
	armed.Store(true)
	_, err = r.e.CompleteUploadVersion(ctx, "t", "c", "h1", id, []CompletePart{cp}, nil, VersioningEnabled)
	armed.Store(false)
	if err == nil {
		t.Fatal("first completion succeeded with every pointer write failing")
	}
	again, err := r.e.CompleteUploadVersion(ctx, "t", "c", "h1", id, []CompletePart{cp}, nil, VersioningEnabled)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	got, gerr := r.get("h1", 0, -1)
	t.Logf("retry: vid %s Retried %v; GET %d bytes, %v", again.VersionID, again.Retried, len(got), gerr)
	if gerr != nil || !bytes.Equal(got, body) {
		t.Fatalf("after the retry GET: %d bytes, %v; want the completion's body", len(got), gerr)
	}
	if r := again.Retention(); r.Mode != RetentionNone || r.LegalHold {
		t.Fatalf("retry: the version carries %+v; want no lock (the first call set none), so S3 applies it now", r)
	}
	if err := r.e.SetLegalHold(ctx, "t", "c", "h1", again.VersionID, true); err != nil {
		t.Fatal(err)
	}
	third, err := r.e.CompleteUploadVersion(ctx, "t", "c", "h1", id, []CompletePart{cp}, nil, VersioningEnabled)
	if err != nil {
		t.Fatalf("second retry: %v", err)
	}
	if !third.Retried || !third.Retention().LegalHold {
		t.Fatalf("second retry: Retried %v, lock %+v; want the legal hold set since seen (S3 then leaves it)", third.Retried, third.Retention())
	}
}

// TestReview25hRetryHidesNewerPlainRecord (H2, Suspended): pointCompleted skips only
// a pointer to the version or a newer claim; a plain record at the key
// (an unversioned write under a stale versioning state, probe H2/H5)
// newer than the completion is replaced by the retry's pointer (its
// shard files kept, no record names them): GET serves the older
// completion and the newer body is gone from every listing.
func TestReview25hRetryHidesNewerPlainRecord(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	body := randBytes(2612, 200<<10)
	id, cp, _ := completeOne(t, r, "h2", body, VersioningSuspended)
	newer := randBytes(2613, 1000)
	r.put(t, "h2", newer, int64(len(newer))) // unversioned: a stale node's write
	if _, err := r.e.CompleteUploadVersion(t.Context(), "t", "c", "h2", id, []CompletePart{cp}, nil, VersioningSuspended); err != nil {
		t.Fatalf("retry: %v", err)
	}
	got, err := r.get("h2", 0, -1)
	if err != nil || !bytes.Equal(got, newer) {
		t.Errorf("GET after a newer plain write and a retried completion: %d bytes, %v (the completion's: %v); want the newer %d bytes", len(got), err, bytes.Equal(got, body), len(newer))
	}
}

// crashAfterMarker lets the writes of record ukey through until another
// record's write comes (the artifact's), then fails every write while
// armed: a node that crashed after the completion's marker.
type crashAfterMarker struct {
	driver.Driver
	armed, tripped *atomic.Bool
	ukey           *atomic.Value
}

func (c crashAfterMarker) PutRecord(ctx context.Context, rec driver.Record) (driver.Record, bool, error) {
	if c.armed.Load() {
		if u, _ := c.ukey.Load().(string); c.tripped.Load() || rec.Key != u {
			c.tripped.Store(true)
			return driver.Record{}, false, errors.New("spy: node crashed")
		}
	}
	return c.Driver.PutRecord(ctx, rec)
}

// TestReview25hPendingRecompletionListOrder (H3, G3 residual): a pending
// completion (marker written, artifact not) re-completed later reuses the
// first attempt's version id (old time) with Modified = now: a versioned
// PUT in between is listed first, the pointer names the re-completion,
// GET serves it.
func TestReview25hPendingRecompletionListOrder(t *testing.T) {
	knownOpen(t, "review 25h H3: a pending re-completion keeps its old version id")
	ctx := t.Context()
	armed, tripped, ukey := &atomic.Bool{}, &atomic.Bool{}, &atomic.Value{}
	r := newRig(t, rigOptions{drives: 4, wrap: func(d driver.Driver) driver.Driver { return crashAfterMarker{d, armed, tripped, ukey} }})
	id, err := r.e.CreateUpload(ctx, "t", "c", "h3", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ukey.Store(uploadKey("t", "c", "h3", id))
	body := randBytes(2614, 200<<10)
	pi, err := r.e.PutPart(ctx, "t", "c", "h3", id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	cp := CompletePart{Number: 1, ETag: pi.ETag}
	armed.Store(true)
	_, err = r.e.CompleteUploadVersion(ctx, "t", "c", "h3", id, []CompletePart{cp}, nil, VersioningEnabled)
	armed.Store(false)
	if err == nil {
		t.Fatal("first completion succeeded")
	}
	time.Sleep(5 * time.Millisecond)
	other := randBytes(2615, 1000)
	pinfo, err := r.e.Put(ctx, "t", "c", "h3", bytes.NewReader(other), PutOptions{Size: int64(len(other)), Versioning: VersioningEnabled})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	info, err := r.e.CompleteUploadVersion(ctx, "t", "c", "h3", id, []CompletePart{cp}, nil, VersioningEnabled)
	if err != nil {
		t.Fatalf("re-completion: %v", err)
	}
	a, err := r.e.Open(ctx, "t", "c", "h3")
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.e.ListVersions(ctx, "t", "c", VersionListOptions{Prefix: "h3"})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, v := range res.Versions {
		listed = append(listed, fmt.Sprintf("%s:%v", v.VersionID, v.IsLatest))
	}
	t.Logf("re-completion %s (retried %v, modified %d), put %s; GET %s; listed %v", info.VersionID, info.Retried, info.Modified.UnixNano(), pinfo.VersionID, a.Info.VersionID, listed)
	if len(res.Versions) == 0 || res.Versions[0].VersionID != a.Info.VersionID {
		t.Errorf("GET serves %s, but the listing's newest is %v", a.Info.VersionID, listed)
	}
}
