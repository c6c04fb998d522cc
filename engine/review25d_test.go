package engine

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// Review 25d: c82f3e5 (keptData/versionRefs; a versioned completion's
// marker through dropMarker, kept while a drive is away).

// markerLeft completes an upload of key as a version (v) on a 4-drive
// rig with drive 3 offline, so that dropCompletion keeps the marker: it
// checks that drives 0..2 hold the marker and drive 3 the upload in
// progress and its part record, then brings drive 3 back unless away.
func markerLeft(t *testing.T, r *rig, key string, body []byte, v Versioning, away bool) (id string, info ArtifactInfo, cp CompletePart) {
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
	cp = CompletePart{1, pi.ETag}
	r.faulty[3].SetOffline(true)
	info, err = r.e.CompleteUploadVersion(ctx, "t", "c", key, id, []CompletePart{cp}, nil, v)
	if err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	r.faulty[3].SetOffline(false)
	m := r.e.mapOf()
	drives, _ := r.e.pgDrives(m, m.PGOf("t", "c", key))
	recs, _ := r.e.readRecordsEach(ctx, drives, uploadKey("t", "c", key, id))
	for j, rec := range recs {
		switch {
		case rec == nil:
			t.Fatalf("drive %d: no record of the upload", j)
		case j < 3 && !isMarker(rec):
			t.Fatalf("drive %d: %+v; want the marker", j, rec)
		case j == 3 && isMarker(rec):
			t.Fatalf("drive 3: the marker; want the upload in progress")
		}
	}
	if n := partRecordsOn(t, drives[3], key, id, recs[3]); n != 1 {
		t.Fatalf("drive 3: %d part records; want 1", n)
	}
	r.faulty[3].SetOffline(away)
	return id, info, cp
}

func partRecordsOn(t *testing.T, d driver.Driver, key, id string, up *record) int {
	t.Helper()
	n := 0
	if err := eachRecord(t.Context(), d, partPrefix("t", "c", partsID(id, up)), func(_ driver.Record, p *record) error {
		if !p.Deleted {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// noUpload checks that upload id of key is served by nothing, listed by
// nothing, and that no drive holds a live record of it.
func noUpload(t *testing.T, r *rig, key, id string) {
	t.Helper()
	ctx := t.Context()
	if _, _, err := r.e.findUpload(ctx, "t", "c", key, id); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("findUpload: %v; want ErrNoSuchUpload", err)
	}
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10)
	if err != nil || len(ups) != 0 {
		t.Errorf("ListUploads: %+v, %v; want none", ups, err)
	}
	if n := liveUploadRecords(t, r.e, "c", key, id); n != 0 {
		t.Errorf("%d drives hold a live record of the upload; want 0", n)
	}
}

func sweepAt(t *testing.T, r *rig, shift time.Duration) {
	t.Helper()
	r.e.cfg.Now = func() time.Time { return time.Now().Add(shift) }
	if _, err := r.e.SweepUploads(t.Context()); err != nil {
		t.Fatalf("SweepUploads: %v", err)
	}
	r.e.WaitBackground()
}

// TestReview25dMarkerLeftSettles: the marker kept by a drive away goes
// at the sweep past CompletedUploadRetention once the drive is back, with
// the stale drive's upload and part records; meanwhile the upload is not
// listed, a retried completion answers the same version (the marker
// names it: completionVidKey) and makes no second one; the version reads
// byte for byte throughout.
func TestReview25dMarkerLeftSettles(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	body := randBytes(31, 200<<10)
	id, info, cp := markerLeft(t, r, "m", body, VersioningEnabled, false)
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10)
	if err != nil || len(ups) != 0 {
		t.Fatalf("ListUploads with the marker left: %+v, %v", ups, err)
	}
	// A retry with drive 3 away again: the same version, the marker stays.
	r.faulty[3].SetOffline(true)
	if got, err := r.e.CompleteUploadVersion(ctx, "t", "c", "m", id, []CompletePart{cp}, nil, VersioningEnabled); err != nil || got.VersionID != info.VersionID {
		t.Fatalf("retried CompleteUploadVersion: %+v, %v; want version %s again", got, err, info.VersionID)
	}
	r.faulty[3].SetOffline(false)
	if vs := r.versionsOf(t, "m"); len(vs) != 1 {
		t.Fatalf("versions after the retry: %v; want one", vs)
	}
	sweepAt(t, r, CompletedUploadRetention+time.Hour)
	noUpload(t, r, "m", id)
	m := r.e.mapOf()
	drives, _ := r.e.pgDrives(m, m.PGOf("t", "c", "m"))
	if n := partRecordsOn(t, drives[3], "m", id, &record{}); n != 0 {
		t.Errorf("drive 3 keeps %d part records", n)
	}
	if err := r.e.AbortUpload(ctx, "t", "c", "m", id); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("AbortUpload after the sweep: %v", err)
	}
	if got, err := r.vget(t, "m", info.VersionID); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("version after the sweep: %d bytes, %v", len(got), err)
	}
}

// TestReview25dMarkerLeftVersionDeleted: the version (the key's only
// one) is deleted by id while drive 3, which missed the completion, is
// still away. The key's tombstone is kept while the marker is
// (markersHold); the sweep settles the marker as gone and drops drive
// 3's remains; after that the tombstone is purged, and nothing brings
// the upload back (listed, completable) or a version.
func TestReview25dMarkerLeftVersionDeleted(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	body := randBytes(32, 200<<10)
	id, info, cp := markerLeft(t, r, "m", body, VersioningEnabled, true)
	if _, err := r.e.DeleteVersion(ctx, "t", "c", "m", DeleteOptions{Versioning: VersioningEnabled, VersionID: info.VersionID}); err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	r.faulty[3].SetOffline(false)
	// Past the tombstone grace: the tombstone stays (markersHold).
	r.e.cfg.Now = func() time.Time { return time.Now().Add(TombstoneGrace + time.Minute) }
	if _, err := r.e.Heal(ctx, "t", "c", "m"); err != nil {
		t.Logf("Heal: %v", err)
	}
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10)
	if err != nil || len(ups) != 0 {
		t.Fatalf("ListUploads before the sweep: %+v, %v", ups, err)
	}
	sweepAt(t, r, UploadCompletionGrace+TombstoneGrace+time.Minute)
	noUpload(t, r, "m", id)
	if _, err := r.e.Heal(ctx, "t", "c", "m"); err != nil {
		t.Logf("Heal: %v", err)
	}
	sweepAt(t, r, CompletedUploadRetention+time.Hour)
	noUpload(t, r, "m", id)
	if _, err := r.e.CompleteUploadVersion(ctx, "t", "c", "m", id, []CompletePart{cp}, nil, VersioningEnabled); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("CompleteUploadVersion after the deletion: %v; want ErrNoSuchUpload", err)
	}
	if vs := r.versionsOf(t, "m"); len(vs) != 0 {
		t.Errorf("versions: %v; want none", vs)
	}
	if _, err := r.e.Open(ctx, "t", "c", "m"); !errors.Is(err, ErrNoSuchArtifact) {
		t.Errorf("Open: %v; want ErrNoSuchArtifact", err)
	}
}

// TestReview25dMarkerLeftSuspendedOverwrite: versioning Suspended (the
// completion is the null version), marker left, then the null version
// is overwritten: the sweep settles the marker (gone), spares the new
// null version's data, and the upload stays gone.
func TestReview25dMarkerLeftSuspendedOverwrite(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	id, info, cp := markerLeft(t, r, "m", randBytes(33, 200<<10), VersioningSuspended, false)
	if info.VersionID != NullVersion {
		t.Fatalf("version %q; want the null version", info.VersionID)
	}
	newer := randBytes(34, 150<<10)
	r.vput(t, "m", newer, VersioningSuspended)
	sweepAt(t, r, UploadCompletionGrace+time.Minute)
	noUpload(t, r, "m", id)
	if _, err := r.e.CompleteUploadVersion(ctx, "t", "c", "m", id, []CompletePart{cp}, nil, VersioningSuspended); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("retried CompleteUploadVersion: %v; want ErrNoSuchUpload", err)
	}
	if got, err := r.get("m", 0, -1); err != nil || !bytes.Equal(got, newer) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
}

// TestReview25dMarkerLeftLegalHold: the version under a legal hold, the
// marker left: the sweep settles the marker and the version (and its
// hold) stay.
func TestReview25dMarkerLeftLegalHold(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	body := randBytes(35, 200<<10)
	id, info, _ := markerLeft(t, r, "m", body, VersioningEnabled, false)
	if err := r.e.SetLegalHold(ctx, "t", "c", "m", info.VersionID, true); err != nil {
		t.Fatal(err)
	}
	sweepAt(t, r, CompletedUploadRetention+time.Minute)
	noUpload(t, r, "m", id)
	if got, err := r.vget(t, "m", info.VersionID); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("version: %d bytes, %v", len(got), err)
	}
	if _, err := r.e.DeleteVersion(ctx, "t", "c", "m", DeleteOptions{Versioning: VersioningEnabled, VersionID: info.VersionID}); err == nil {
		t.Errorf("the held version was deleted")
	}
}

// TestReview25dMarkerLeftOlderMap: the completion is made (versioned) in
// an older map's set, drive away, then the map changes: MoveUploads
// leaves the marker where it is; the sweep settles it there (the key's
// pointer read in the older set is newer), sparing the version's data,
// which the older set still holds until migration.
func TestReview25dMarkerLeftOlderMap(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, err := placement.NewMap(r.pdrives[0:4], placement.Policy{Data: 2, Parity: 2}, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := placement.NewMap(r.pdrives[2:6], placement.Policy{Data: 2, Parity: 2}, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{old})
	body := randBytes(36, 200<<10)
	id, err := r.e.CreateUpload(ctx, "t", "c", "m", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pi, err := r.e.PutPart(ctx, "t", "c", "m", id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	set := old.Set(old.PGOf("t", "c", "m"))
	away := r.topo.drives[set[3]]
	away.SetOffline(true)
	info, err := r.e.CompleteUploadVersion(ctx, "t", "c", "m", id, []CompletePart{{1, pi.ETag}}, nil, VersioningEnabled)
	if err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	away.SetOffline(false)
	mk, at, err := r.e.findUpload(ctx, "t", "c", "m", id)
	if err != nil || !isMarker(mk) {
		t.Fatalf("findUpload after the completion: %+v, %v; want the marker", mk, err)
	}
	r.useChain([]*placement.Map{old, cur})
	if _, err := r.e.MoveUploads(ctx); err != nil {
		t.Logf("MoveUploads: %v", err)
	}
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10)
	if err != nil || len(ups) != 0 {
		t.Fatalf("ListUploads after the map change: %+v, %v", ups, err)
	}
	r.skew.Store(int64(CompletedUploadRetention + time.Hour))
	if _, err := r.e.SweepUploads(ctx); err != nil {
		t.Logf("SweepUploads: %v", err)
	}
	r.e.WaitBackground()
	if _, _, err := r.e.findUpload(ctx, "t", "c", "m", id); !errors.Is(err, ErrNoSuchUpload) {
		t.Errorf("findUpload after the sweep: %v; want ErrNoSuchUpload (marker was in epoch %d)", err, at.m.Epoch)
	}
	ups, _, err = r.e.ListUploads(ctx, "t", "c", "", "", "", 10)
	if err != nil || len(ups) != 0 {
		t.Errorf("ListUploads after the sweep: %+v, %v", ups, err)
	}
	a, err := r.e.OpenVersion(ctx, "t", "c", "m", info.VersionID)
	if err != nil {
		t.Fatalf("OpenVersion: %v", err)
	}
	var buf bytes.Buffer
	if err := a.WriteRange(ctx, &buf, 0, a.Info.Size); err != nil || !bytes.Equal(buf.Bytes(), body) {
		t.Fatalf("version: %d bytes, %v", buf.Len(), err)
	}
}

// TestReview25dHungDriveAbort: a drive that hangs (every call) costs an
// abort of an upload of a key with versions the straggler graces of its
// reads (the key's records, then versionRefs' listing), not the
// clean-up timeout; a part's replacement (checkReplaceable) likewise.
func TestReview25dHungDriveAbort(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	for i := range 3 {
		r.vput(t, "m", randBytes(uint64(40+i), 10<<10), VersioningEnabled)
	}
	id, err := r.e.CreateUpload(ctx, "t", "c", "m", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.e.PutPart(ctx, "t", "c", "m", id, 1, bytes.NewReader(randBytes(44, 64<<10)), PutOptions{Size: 64 << 10}); err != nil {
			t.Fatal(err)
		}
	}
	r.faulty[2].SetHang(true)
	defer r.faulty[2].SetHang(false)
	start := time.Now()
	if _, err := r.e.PutPart(ctx, "t", "c", "m", id, 1, bytes.NewReader(randBytes(45, 64<<10)), PutOptions{Size: 64 << 10}); err != nil {
		t.Fatalf("PutPart with a drive hung: %v", err)
	}
	t.Logf("PutPart (replacing) with a drive hung: %v", time.Since(start))
	start = time.Now()
	if err := r.e.AbortUpload(ctx, "t", "c", "m", id); err != nil {
		t.Fatalf("AbortUpload with a drive hung: %v", err)
	}
	el := time.Since(start)
	t.Logf("AbortUpload with a drive hung: %v", el)
	if el > 10*time.Second {
		t.Errorf("AbortUpload took %v with one drive hung", el)
	}
	r.faulty[2].SetHang(false)
	if got := r.versionsOf(t, "m"); len(got) != 3 {
		t.Errorf("versions: %v", got)
	}
}

// failPartDeletes fails DeleteRecord of part records while on is set.
type failPartDeletes struct {
	driver.Driver
	on *atomic.Bool
}

func (f failPartDeletes) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	if f.on.Load() && strings.HasPrefix(key, "\x01P\x00") {
		return errors.New("injected: part record delete fails")
	}
	return f.Driver.DeleteRecord(ctx, key, v)
}

// TestReview25dCompletionLeavesPartRecord: every drive answers the
// versioned completion, but drive 3 fails to delete the part record
// (CompleteUpload's step 3 is best effort). dropCompletion then drops
// the marker from every drive (dropMarker) without the settle's
// dropParts, so drive 3's part record, naming the version's data, is
// under no upload record any more: no sweep ever removes it. An
// unversioned completion's marker is settled (dropParts, then the
// marker) past CompletedUploadRetention. Leak only (the version's
// deletion deletes its shard files regardless). Fixed: the versioned
// completion's marker now stays, as an unversioned one's, and the sweep
// settles it past CompletedUploadRetention (dropParts, then the marker).
func TestReview25dCompletionLeavesPartRecord(t *testing.T) {
	ctx := t.Context()
	var on atomic.Bool
	n := 0
	r := newRig(t, rigOptions{drives: 4, wrap: func(d driver.Driver) driver.Driver {
		n++
		if n == 4 {
			return failPartDeletes{d, &on}
		}
		return d
	}})
	id, err := r.e.CreateUpload(ctx, "t", "c", "m", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := randBytes(46, 200<<10)
	pi, err := r.e.PutPart(ctx, "t", "c", "m", id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	up, _, err := r.e.findUpload(ctx, "t", "c", "m", id)
	if err != nil {
		t.Fatal(err)
	}
	on.Store(true)
	if _, err := r.e.CompleteUploadVersion(ctx, "t", "c", "m", id, []CompletePart{{1, pi.ETag}}, nil, VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	on.Store(false)
	m := r.e.mapOf()
	drives, _ := r.e.pgDrives(m, m.PGOf("t", "c", "m"))
	if n := partRecordsOn(t, drives[3], "m", id, up); n != 1 {
		t.Skipf("drive 3 holds %d part records; the set-up did not take", n)
	}
	sweepAt(t, r, CompletedUploadRetention+time.Hour)
	noUpload(t, r, "m", id)
	if n := partRecordsOn(t, drives[3], "m", id, up); n != 0 {
		t.Errorf("drive 3 keeps %d part record(s) of the completed upload after the sweep (orphaned: no upload record)", n)
	}
}

// TestReview25dRetryRaceAdoptsNull (pre-existing, not c82f3e5's): a
// client's retry of CompleteUploadVersion (versioning Enabled) that
// runs while the first call is between its CompleteUpload and its
// adopt. The retry's adopt(NullVersion) runs before it takes the
// upload's lease, sees the completed artifact as the key's plain record
// and adopts it as the null version; the first call's adopt(vid) then
// sees a pointer and does nothing, and the first call answers success
// with version vid, which does not exist. The retry answers
// ErrNoSuchUpload. The interleaving is played step by step.
func TestReview25dRetryRaceAdoptsNull(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	id, err := r.e.CreateUpload(ctx, "t", "c", "m", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := randBytes(47, 200<<10)
	pi, err := r.e.PutPart(ctx, "t", "c", "m", id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	parts := []CompletePart{{1, pi.ETag}}
	// The first call, as completeUploadVersion runs it: key's lock, then
	// adopt(NullVersion) (nothing), its version id, CompleteUpload.
	hold, err := r.e.lockKey(ctx, "t", "c", "m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.adopt(ctx, "t", "c", "m", NullVersion, true); err != nil {
		t.Fatal(err)
	}
	nv, _ := r.e.newVersion()
	vid := versionIDOf(nv)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", "m", id, parts, nil); err != nil {
		t.Fatal(err)
	}
	// The retry, whole, meanwhile: it waits for the key's lock.
	retried := make(chan error, 1)
	go func() {
		_, err := r.e.CompleteUploadVersion(ctx, "t", "c", "m", id, parts, nil, VersioningEnabled)
		retried <- err
	}()
	time.Sleep(300 * time.Millisecond)
	// The first call's rest.
	got, err := r.e.adopt(ctx, "t", "c", "m", vid, true)
	if err != nil {
		t.Fatal(err)
	}
	if got != "" {
		vid = got
	}
	hold.unlock()
	rerr := <-retried
	t.Logf("retry: %v; first call answers version %s; versions %v", rerr, vid, r.versionsOf(t, "m"))
	if b, err := r.vget(t, "m", vid); err != nil || !bytes.Equal(b, body) {
		t.Errorf("the version the first call answered: %d bytes, %v", len(b), err)
	}
}

// TestReview25dConcurrentPutDoubleAdopts (pre-existing, not c82f3e5's):
// CompleteUploadVersion's adopt(vid) holds no lock of the key while it
// reads the key's plain record (the completed artifact) and writes it
// under the version key. A versioned Put of the same key from another
// client in that window adopts the same record as the null version
// (putVersioned's adopt(NullVersion)): two versions then name the same
// shard files, and deleting one (by id, or a lifecycle's noncurrent
// expiry) deletes the other's data.
func TestReview25dConcurrentPutDoubleAdopts(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	id, err := r.e.CreateUpload(ctx, "t", "c", "m", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := randBytes(48, 200<<10)
	pi, err := r.e.PutPart(ctx, "t", "c", "m", id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	// The first call, as completeUploadVersion runs it: key's lock, its
	// version id, CompleteUpload.
	hold, err := r.e.lockKey(ctx, "t", "c", "m")
	if err != nil {
		t.Fatal(err)
	}
	nv, _ := r.e.newVersion()
	vid := versionIDOf(nv)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", "m", id, []CompletePart{{1, pi.ETag}}, nil); err != nil {
		t.Fatal(err)
	}
	// Its adopt(vid) pauses once it has read the key's plain record, at
	// its read of the version key.
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	for _, f := range r.faulty {
		f.SetBeforeGetRecord(func(ctx context.Context, key string) {
			if strings.HasSuffix(key, "m\x00"+vid) {
				once.Do(func() { close(reached) })
				<-release
			}
		})
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.e.adopt(ctx, "t", "c", "m", vid, true)
		hold.unlock()
		done <- err
	}()
	<-reached
	// A versioned Put of the key from another client in that window.
	other := randBytes(49, 10<<10)
	put := make(chan error, 1)
	go func() {
		_, err := r.e.Put(ctx, "t", "c", "m", bytes.NewReader(other), PutOptions{Size: int64(len(other)), Versioning: VersioningEnabled})
		put <- err
	}()
	time.Sleep(300 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	for _, f := range r.faulty {
		f.SetBeforeGetRecord(nil)
	}
	r.e.WaitBackground()
	t.Logf("versions: %v", r.versionsOf(t, "m"))
	if _, err := r.e.DeleteVersion(ctx, "t", "c", "m", DeleteOptions{Versioning: VersioningEnabled, VersionID: NullVersion}); err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	if b, err := r.vget(t, "m", vid); err != nil || !bytes.Equal(b, body) {
		t.Errorf("version %s (the completion) after the null version's deletion: %d bytes, %v", vid, len(b), err)
	}
}
