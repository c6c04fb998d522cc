package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// Review 25g: cdd8a74 (a versioned completion writes its version key
// directly, its marker names the version id and stays for retries).

// skewRig is newRig with a clock the test moves forward.
func skewRig(t *testing.T, o rigOptions) (*rig, *atomic.Int64) {
	t.Helper()
	r := newRig(t, o)
	skew := &atomic.Int64{}
	r.e.cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	return r, skew
}

// completeOne makes an upload of key with one part and completes it under
// versioning state v, returning the upload id, the part and the answer.
func completeOne(t *testing.T, r *rig, key string, body []byte, v Versioning) (string, CompletePart, ArtifactInfo) {
	t.Helper()
	ctx := t.Context()
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pi, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	cp := CompletePart{Number: 1, ETag: pi.ETag}
	info, err := r.e.CompleteUploadVersion(ctx, "t", "c", key, id, []CompletePart{cp}, nil, v)
	if err != nil {
		t.Fatalf("CompleteUploadVersion(%s): %v", key, err)
	}
	return id, cp, info
}

// TestReview25gVersionTombstoneMarkersHoldWrongSet (G1): markersHold now
// takes baseKey(key) for the marker prefix, but still looks for markers
// on the drives of m.PGOf(tenant, container, key) with key the version
// key: the PG of the version key's own hash, not its key's (pgOf), where
// the markers are. With more drives than a set is wide, a version
// deleted by id (or expired as noncurrent by lifecycle, or a null
// version replaced then deleted) inside CompletedUploadRetention has its
// tombstone purged after TombstoneGrace while its completion's marker is
// still there; the marker then reads as a completion that never became
// visible (pending): the state review 22b F1 / 22c G2 showed resurrects
// the deleted object through the reconcile of a weak marker.
func TestReview25gVersionTombstoneMarkersHoldWrongSet(t *testing.T) {
	ctx := t.Context()
	r, skew := skewRig(t, rigOptions{drives: 8, policy: placement.Policy{Data: 1, Parity: 1}})
	m := r.e.mapOf()
	for i := range 40 {
		key := fmt.Sprintf("g1/%d", i)
		body := randBytes(uint64(2500+i), 300<<10)
		id, cp, info := completeOne(t, r, key, body, VersioningEnabled)
		vkey := versionKey(key, info.VersionID)
		mset := m.Set(m.PGOf("t", "c", key))
		wrong := m.Set(m.PGOf("t", "c", vkey))
		disjoint := true
		for _, d := range wrong {
			for _, e := range mset {
				disjoint = disjoint && d != e
			}
		}
		if !disjoint {
			continue // the wrong set holds a marker drive: the bug hides
		}
		if _, err := r.e.DeleteVersion(ctx, "t", "c", key, DeleteOptions{Versioning: VersioningEnabled, VersionID: info.VersionID}); err != nil {
			t.Fatal(err)
		}
		skew.Add(int64(TombstoneGrace + time.Minute)) // well inside CompletedUploadRetention
		if _, err := r.e.Heal(ctx, "t", "c", vkey); err != nil {
			t.Logf("Heal(version key): %v", err)
		}
		set := m.Set(pgOf(m, "t", "c", vkey))
		ikey := indexPrefix("t", "c") + vkey
		held := 0
		for _, did := range set {
			raw, err := r.faulty[indexOf(r.ids, did)].GetRecord(ctx, ikey)
			if err == nil {
				if rec, err := unmarshalRecord(raw.Data); err == nil && rec.Deleted {
					held++
				}
			}
		}
		pending, err := r.e.completionPending(ctx, "t", "c", key, id)
		mk, _, ferr := r.e.findUpload(ctx, "t", "c", key, id)
		marker := ferr == nil && isMarker(mk)
		t.Logf("%s: marker set %v, markersHold looked at %v; tombstone on %d of %d; marker there %v, pending %v (%v)", key, mset, wrong, held, len(set), marker, pending, err)
		if marker && held != len(set) {
			t.Errorf("the deleted version's tombstone was purged while its completion's marker (upload %s) remains: %d of %d drives hold it; want all (markersHold)", id, held, len(set))
		}
		if pending {
			t.Errorf("the marker of a completion whose version was deleted reads pending (a completion that never happened), want gone")
		}
		// Complete's own path still refuses (partsLost: the version's
		// tombstone deleted the parts' data); the reconcile of a weak
		// marker does not look (review 22b F1).
		if again, err := r.e.CompleteUploadVersion(ctx, "t", "c", key, id, []CompletePart{cp}, nil, VersioningEnabled); err == nil {
			t.Errorf("retried completion after the version's deletion: %+v; want ErrNoSuchUpload", again)
		}
		return
	}
	t.Skip("no key whose version key's set missed its marker set")
}

func indexOf(ids []placement.DriveID, id placement.DriveID) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}

// pointerSpy watches the key's pointer writes: once one naming version
// old lands while armed, later writes of the key's record fail (a crash
// of the node after that write).
type pointerSpy struct {
	driver.Driver
	s *spyState
}

type spyState struct {
	mu    sync.Mutex
	armed bool
	ikey  string
	old   string
	seen  int
}

func (p pointerSpy) PutRecord(ctx context.Context, rec driver.Record) (driver.Record, bool, error) {
	p.s.mu.Lock()
	if p.s.armed && rec.Key == p.s.ikey {
		if r, err := unmarshalRecord(rec.Data); err == nil && r.Pointer {
			if pointerTarget(r) == p.s.old {
				p.s.seen++
			} else if p.s.seen > 0 {
				p.s.mu.Unlock()
				return driver.Record{}, false, errors.New("spy: node crashed")
			}
		}
	}
	p.s.mu.Unlock()
	return p.Driver.PutRecord(ctx, rec)
}

// TestReview25gRetryRepointsOldVersion (G2): a retried
// CompleteMultipartUpload within CompletedUploadRetention (a client that
// timed out: common) answers the version from the marker and then calls
// point for it: writePointer replaces the key's pointer to the newer
// current version (here a delete marker) with one naming the
// completion's older version, and only a second write puts the newer one
// back. Between the two, GET serves the old version; a crash (or a
// failed second write: point returns the error) leaves the key pointing
// at it for good: the deleted object is back. Before cdd8a74 a retry
// answered ErrNoSuchUpload (marker dropped) and wrote nothing.
func TestReview25gRetryRepointsOldVersion(t *testing.T) {
	ctx := t.Context()
	s := &spyState{}
	r := newRig(t, rigOptions{drives: 4, wrap: func(d driver.Driver) driver.Driver { return pointerSpy{d, s} }})
	body := randBytes(2601, 200<<10)
	id, cp, info := completeOne(t, r, "g2", body, VersioningEnabled)
	del, err := r.e.DeleteVersion(ctx, "t", "c", "g2", DeleteOptions{Versioning: VersioningEnabled})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.armed, s.ikey, s.old = true, indexPrefix("t", "c")+"g2", info.VersionID
	s.mu.Unlock()
	again, err := r.e.CompleteUploadVersion(ctx, "t", "c", "g2", id, []CompletePart{cp}, nil, VersioningEnabled)
	s.mu.Lock()
	s.armed = false
	seen := s.seen
	s.mu.Unlock()
	t.Logf("retry: %+v, %v; pointer writes naming the old version %s: %d (delete marker %s)", again.VersionID, err, info.VersionID, seen, del.VersionID)
	if seen > 0 {
		t.Errorf("the retried completion wrote %d pointer records naming its version %s over the key's newer delete marker", seen, info.VersionID)
	}
	if got, err := r.get("g2", 0, -1); err == nil {
		t.Errorf("GET after delete marker and a retried completion (second pointer write failed): %d bytes (the completed body: %v); want no such artifact", len(got), bytes.Equal(got, body))
	}
}

// listHook runs fn once, at the first ListRecords of a part-record
// prefix while armed (CompleteUpload reading its parts: after
// completeUploadVersion chose the version id, before the completion's
// record time).
type listHook struct {
	driver.Driver
	h *hookState
}

type hookState struct {
	armed atomic.Bool
	once  sync.Once
	fn    func()
}

func (l listHook) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	if l.h.armed.Load() && strings.HasPrefix(prefix, "\x01P\x00") {
		l.h.once.Do(l.h.fn)
	}
	return l.Driver.ListRecords(ctx, prefix, after, limit)
}

// TestReview25gListOrderVsPointer (G3, pre-existing in kind): the
// completion's version id is taken before CompleteUpload (and a pending
// re-completion reuses the first attempt's, up to 24 h old), while its
// record's modification time is taken inside it. Listings order
// versions by the id's time, point by the modification time: a
// versioned PUT between the two is listed newer than the completion
// (and flagged IsLatest: the listing's merger drops the pointer's
// target, so IsLatest is the first listed), while the key points at the
// completion and GET serves it. Fails on a666a2e too.
func TestReview25gListOrderVsPointer(t *testing.T) {
	ctx := t.Context()
	h := &hookState{}
	r := newRig(t, rigOptions{drives: 4, wrap: func(d driver.Driver) driver.Driver { return listHook{d, h} }})
	id, err := r.e.CreateUpload(ctx, "t", "c", "g3", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := randBytes(2701, 200<<10)
	pi, err := r.e.PutPart(ctx, "t", "c", "g3", id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	other := randBytes(2702, 1000)
	var pinfo ArtifactInfo
	var perr error
	h.fn = func() {
		time.Sleep(2 * time.Millisecond)
		pinfo, perr = r.e.Put(context.Background(), "t", "c", "g3", bytes.NewReader(other), PutOptions{Size: int64(len(other)), Versioning: VersioningEnabled})
		time.Sleep(2 * time.Millisecond)
	}
	h.armed.Store(true)
	info, err := r.e.CompleteUploadVersion(ctx, "t", "c", "g3", id, []CompletePart{{1, pi.ETag}}, nil, VersioningEnabled)
	h.armed.Store(false)
	if err != nil || perr != nil {
		t.Fatalf("completion %v, put %v", err, perr)
	}
	a, err := r.e.Open(ctx, "t", "c", "g3")
	if err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	if kv, err := r.e.keyVersions(ctx, "t", "c", "g3"); err == nil {
		t.Logf("keyVersions: %+v", kv)
	}
	res, err := r.e.ListVersions(ctx, "t", "c", VersionListOptions{Prefix: "g3"})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	latest := ""
	for _, v := range res.Versions {
		listed = append(listed, fmt.Sprintf("%s:%v", v.VersionID, v.IsLatest))
		if v.IsLatest {
			latest = v.VersionID
		}
	}
	_, own, _ := r.e.locate(ctx, "t", "c", "g3")
	t.Logf("key's record: pointer %v -> %s (modified %d)", own.Pointer, pointerTarget(own), own.Modified)
	t.Logf("completion %s (modified %v), put %s (modified %v); GET %s; listed %v, IsLatest %s", info.VersionID, info.Modified.UnixNano(), pinfo.VersionID, pinfo.Modified.UnixNano(), a.Info.VersionID, listed, latest)
	if len(res.Versions) == 0 || res.Versions[0].VersionID != a.Info.VersionID || latest != a.Info.VersionID {
		t.Errorf("GET serves %s, but the listing's newest is %v", a.Info.VersionID, listed)
	}
}

// TestReview25gRetryAfterVersionGone (holds): a retried completion whose
// version was deleted by id, or (Suspended) whose null version a PUT
// replaced, answers ErrNoSuchUpload and changes nothing; the sweep past
// retention drops the marker; the key keeps what it had.
func TestReview25gRetryAfterVersionGone(t *testing.T) {
	ctx := t.Context()
	r, skew := skewRig(t, rigOptions{drives: 4})
	body := randBytes(2801, 200<<10)
	// Deleted by id.
	id, cp, info := completeOne(t, r, "h1", body, VersioningEnabled)
	keep := r.vput(t, "h1", randBytes(2802, 1000), VersioningEnabled)
	if _, err := r.e.DeleteVersion(ctx, "t", "c", "h1", DeleteOptions{Versioning: VersioningEnabled, VersionID: info.VersionID}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.CompleteUploadVersion(ctx, "t", "c", "h1", id, []CompletePart{cp}, nil, VersioningEnabled); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("retry after the version was deleted: %v; want ErrNoSuchUpload", err)
	}
	// Suspended, null version replaced by a PUT.
	id2, cp2, info2 := completeOne(t, r, "h2", body, VersioningSuspended)
	if info2.VersionID != NullVersion {
		t.Fatalf("suspended completion answered %q", info2.VersionID)
	}
	other := randBytes(2803, 5000)
	r.vput(t, "h2", other, VersioningSuspended)
	if _, err := r.e.CompleteUploadVersion(ctx, "t", "c", "h2", id2, []CompletePart{cp2}, nil, VersioningSuspended); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("retry after the null version was replaced: %v; want ErrNoSuchUpload", err)
	}
	skew.Add(int64(CompletedUploadRetention + time.Hour))
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Errorf("uploads after the sweep: %+v, %v", ups, err)
	}
	if got, err := r.get("h2", 0, -1); err != nil || !bytes.Equal(got, other) {
		t.Errorf("h2: %d bytes, %v; want the PUT's", len(got), err)
	}
	if a, err := r.e.Open(ctx, "t", "c", "h1"); err != nil || a.Info.VersionID != keep.VersionID {
		t.Errorf("h1: %v; want version %s", err, keep.VersionID)
	}
	if _, err := r.vget(t, "h1", info.VersionID); err == nil {
		t.Errorf("h1's deleted version %s is back", info.VersionID)
	}
}
