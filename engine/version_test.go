package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// vget reads version vid of key ("" the newest) in full.
func (r *rig) vget(t testing.TB, key, vid string) ([]byte, error) {
	t.Helper()
	a, err := r.e.OpenVersion(t.Context(), "t", "c", key, vid)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = a.WriteRange(t.Context(), &buf, 0, a.Info.Size)
	return buf.Bytes(), err
}

func (r *rig) vput(t testing.TB, key string, data []byte, v Versioning) ArtifactInfo {
	t.Helper()
	info, err := r.e.Put(t.Context(), "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(len(data)), Versioning: v})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// versionsOf lists key's versions as "id:size" (a marker as "id:marker"),
// newest first, the latest starred.
func (r *rig) versionsOf(t testing.TB, key string) []string { return versionsOf(t, r.e, key) }

func versionsOf(t testing.TB, e *Engine, key string) []string {
	t.Helper()
	res, err := e.ListVersions(t.Context(), "t", "c", VersionListOptions{Prefix: key})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range res.Versions {
		if v.Key != key {
			continue
		}
		s := fmt.Sprintf("%s:%d", v.VersionID, v.Size)
		if v.DeleteMarker {
			s = v.VersionID + ":marker"
		}
		if v.IsLatest {
			s += "*"
		}
		out = append(out, s)
	}
	return out
}

func (r *rig) listKeys(t testing.TB) []string {
	t.Helper()
	res, err := r.e.List(t.Context(), "t", "c", ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, a := range res.Artifacts {
		keys = append(keys, fmt.Sprintf("%s:%d", a.Key, a.Size))
	}
	return keys
}

// TestVersioningLifecycle walks one key through an unversioned write,
// versioned writes, delete markers, deletes by version id and a
// suspended write, for an inline and a sharded body, checking reads,
// listings and usage at each step.
func TestVersioningLifecycle(t *testing.T) {
	for _, size := range []int{100, 300 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 6})
			u := &usageTotals{}
			r.e.cfg.OnUsage = u.add
			ctx := t.Context()
			body := func(i int) []byte { return randBytes(uint64(i), size+i) }
			must := func(got []byte, err error, want []byte, what string) {
				t.Helper()
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s: %d bytes, %v; want %d bytes", what, len(got), err, len(want))
				}
			}
			usage := func(wantBytes, wantN int64) {
				t.Helper()
				if b, n := u.get(); b != wantBytes || n != wantN {
					t.Fatalf("usage %d bytes %d artifacts, want %d, %d", b, n, wantBytes, wantN)
				}
			}
			sz := func(i int) int64 { return int64(size + i) }
			var got []byte
			var err error

			r.vput(t, "k", body(0), Unversioned)
			v1 := r.vput(t, "k", body(1), VersioningEnabled)
			v2 := r.vput(t, "k", body(2), VersioningEnabled)
			if !ValidVersionID(v1.VersionID) || v1.VersionID == v2.VersionID || v1.VersionID == NullVersion {
				t.Fatalf("version ids %q %q", v1.VersionID, v2.VersionID)
			}
			got, err = r.vget(t, "k", "")
			must(got, err, body(2), "latest")
			got, err = r.vget(t, "k", NullVersion)
			must(got, err, body(0), "null version kept from before versioning")
			got, err = r.vget(t, "k", v1.VersionID)
			must(got, err, body(1), "v1")
			want := []string{fmt.Sprintf("%s:%d*", v2.VersionID, sz(2)), fmt.Sprintf("%s:%d", v1.VersionID, sz(1)), fmt.Sprintf("null:%d", sz(0))}
			if got := r.versionsOf(t, "k"); !slices.Equal(got, want) {
				t.Fatalf("versions %v, want %v", got, want)
			}
			if got := r.listKeys(t); !slices.Equal(got, []string{fmt.Sprintf("k:%d", sz(2))}) {
				t.Fatalf("List %v: want the key once, at its latest", got)
			}
			usage(sz(0)+sz(1)+sz(2), 3)

			// A delete marker hides the key; its versions stay.
			del, err := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled})
			if err != nil || !del.DeleteMarker || !ValidVersionID(del.VersionID) {
				t.Fatalf("delete: %+v, %v", del, err)
			}
			var dm *DeleteMarkerError
			if _, err := r.e.Open(ctx, "t", "c", "k"); !errors.As(err, &dm) || dm.ByVersion || dm.VersionID != del.VersionID || !errors.Is(err, ErrNoSuchArtifact) {
				t.Fatalf("Open after delete: %v", err)
			}
			if _, err := r.e.OpenVersion(ctx, "t", "c", "k", del.VersionID); !errors.As(err, &dm) || !dm.ByVersion {
				t.Fatalf("OpenVersion(marker): %v", err)
			}
			if got := r.listKeys(t); len(got) != 0 {
				t.Fatalf("List after delete marker: %v", got)
			}
			if got := r.versionsOf(t, "k"); len(got) != 4 || got[0] != del.VersionID+":marker*" {
				t.Fatalf("versions after delete marker %v", got)
			}
			if err := r.e.DeleteContainer(ctx, "t", "c"); !errors.Is(err, ErrContainerNotEmpty) {
				t.Fatalf("DeleteContainer with versions left: %v", err)
			}
			// Healing long after keeps the deleted pointer: it is the key's state.
			r.e.cfg.Now = func() time.Time { return time.Now().Add(2 * TombstoneGrace) }
			if _, err := r.e.Heal(ctx, "t", "c", "k"); err != nil {
				t.Fatal(err)
			}
			r.e.cfg.Now = time.Now
			if _, err := r.e.Open(ctx, "t", "c", "k"); !errors.As(err, &dm) || dm.VersionID != del.VersionID {
				t.Fatalf("Open after a heal past the tombstone grace: %v", err)
			}

			// Deleting the marker brings v2 back; deleting v2 makes v1 current.
			if res, err := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled, VersionID: del.VersionID}); err != nil || !res.DeleteMarker {
				t.Fatalf("delete marker by id: %+v %v", res, err)
			}
			got, err = r.vget(t, "k", "")
			must(got, err, body(2), "latest after marker removed")
			if _, err := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled, VersionID: v2.VersionID}); err != nil {
				t.Fatal(err)
			}
			got, err = r.vget(t, "k", "")
			must(got, err, body(1), "latest after v2 removed")
			if _, err := r.vget(t, "k", v2.VersionID); !errors.Is(err, ErrNoSuchVersion) {
				t.Fatalf("deleted version: %v", err)
			}
			if got := r.listKeys(t); !slices.Equal(got, []string{fmt.Sprintf("k:%d", sz(1))}) {
				t.Fatalf("List %v", got)
			}
			usage(sz(0)+sz(1), 2)

			// Suspended: a put replaces the null version only.
			r.vput(t, "k", body(3), VersioningSuspended)
			got, err = r.vget(t, "k", "")
			must(got, err, body(3), "suspended latest")
			got, err = r.vget(t, "k", NullVersion)
			must(got, err, body(3), "null version replaced")
			want = []string{fmt.Sprintf("null:%d*", sz(3)), fmt.Sprintf("%s:%d", v1.VersionID, sz(1))}
			if got := r.versionsOf(t, "k"); !slices.Equal(got, want) {
				t.Fatalf("versions %v, want %v", got, want)
			}
			usage(sz(1)+sz(3), 2)

			// Deleting every version empties the container.
			for _, vid := range []string{NullVersion, v1.VersionID} {
				if _, err := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{VersionID: vid}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := r.e.Open(ctx, "t", "c", "k"); !errors.Is(err, ErrNoSuchArtifact) {
				t.Fatalf("Open of an emptied key: %v", err)
			}
			usage(0, 0)
			r.e.WaitBackground()
			if size > DefaultInlineMax {
				for _, dir := range r.dirs {
					if files := shardFiles(t, dir); len(files) != 0 {
						t.Fatalf("shard files left in %s: %v", dir, files)
					}
				}
			}
			if err := r.e.DeleteContainer(ctx, "t", "c"); err != nil {
				t.Fatalf("DeleteContainer once every version is gone: %v", err)
			}
		})
	}
}

// TestVersionHealedAndMultipart: a noncurrent version is an artifact of
// its own that Scan finds and Heal repairs; a completed multipart upload
// becomes a version and keeps its data when overwritten.
func TestVersionHealedAndMultipart(t *testing.T) {
	r := newRig(t, rigOptions{drives: 6})
	ctx := t.Context()
	old := randBytes(1, 300<<10)
	v1 := r.vput(t, "h", old, VersioningEnabled)
	r.vput(t, "h", randBytes(2, 10), VersioningEnabled)
	// Lose the old version's shard file and record on one drive.
	ikey := indexPrefix("t", "c") + versionKey("h", v1.VersionID)
	d := r.faultyOf("h", 0)
	if err := d.DeleteRecord(ctx, ikey, [16]byte{}); err != nil {
		t.Fatal(err)
	}
	files := shardFiles(t, r.dirOf("h", 0))
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	st, err := r.e.Scan(ctx, "t", "c", "", 1000)
	if err != nil || st.Queued != 1 {
		t.Fatalf("scan: %+v, %v: want the version queued", st, err)
	}
	if !slices.Contains(r.e.Degraded(), HealItem{"t", "c", versionKey("h", v1.VersionID)}) {
		t.Fatalf("degraded %q", r.e.Degraded())
	}
	if fixed, err := r.e.Heal(ctx, "t", "c", versionKey("h", v1.VersionID)); err != nil || len(fixed) != 1 {
		t.Fatalf("heal: %v, %v", fixed, err)
	}
	if got := shardFiles(t, r.dirOf("h", 0)); len(got) != len(files) {
		t.Fatalf("shard files after heal %v, want %d", got, len(files))
	}
	if got, err := r.vget(t, "h", v1.VersionID); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("healed version: %v", err)
	}

	// Multipart.
	id, err := r.e.CreateUpload(ctx, "t", "c", "m", PutOptions{ContentType: "a/b"})
	if err != nil {
		t.Fatal(err)
	}
	part := randBytes(3, 200<<10)
	pi, err := r.e.PutPart(ctx, "t", "c", "m", id, 1, bytes.NewReader(part), PutOptions{Size: int64(len(part))})
	if err != nil {
		t.Fatal(err)
	}
	// The part's records, put back after the completion as if its cleanup
	// had failed: a later settle of the upload must not drop their data.
	pk := partKey("t", "c", id, 1)
	var partRecs []driver.Record
	for _, d := range r.faulty {
		if rec, err := d.GetRecord(ctx, pk); err == nil {
			partRecs = append(partRecs, rec)
		}
	}
	info, err := r.e.CompleteUploadVersion(ctx, "t", "c", "m", id, []CompletePart{{1, pi.ETag}}, nil, VersioningEnabled)
	if err != nil || !ValidVersionID(info.VersionID) || !strings.HasSuffix(info.ETag, "-1") {
		t.Fatalf("complete: %+v %v", info, err)
	}
	r.e.WaitBackground()
	for _, rec := range partRecs {
		for _, d := range r.faulty {
			d.PutRecord(ctx, rec)
		}
	}
	if err := r.e.AbortUpload(ctx, "t", "c", "m", id); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("abort of a completed upload: %v", err)
	}
	if again, err := r.e.CompleteUploadVersion(ctx, "t", "c", "m", id, []CompletePart{{1, pi.ETag}}, nil, VersioningEnabled); err != nil || again.VersionID != info.VersionID {
		t.Fatalf("retried completion: %+v, %v; want version %s again", again, err, info.VersionID)
	}
	r.vput(t, "m", []byte("newer"), VersioningEnabled)
	r.e.WaitBackground()
	a, err := r.e.OpenVersion(ctx, "t", "c", "m", info.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(a.Reader(ctx, 0, a.Info.Size))
	if err != nil || !bytes.Equal(got, part) || a.Info.ETag != info.ETag || a.PartCount() != 1 {
		t.Fatalf("multipart version: %d bytes %v, etag %s", len(got), err, a.Info.ETag)
	}
}

// TestMigrateVersions: versions, delete markers and pointers written
// under older maps move with MigrateAll like any artifact, and read the
// same once the older maps are dropped.
func TestMigrateVersions(t *testing.T) {
	for _, tc := range migrateMaps {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			r := newMigRig(t)
			ms := tc.maps(t, r)
			r.useChain(ms[:1])
			put := func(key string, data []byte) string {
				t.Helper()
				info, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(len(data)), Versioning: VersioningEnabled})
				if err != nil {
					t.Fatal(err)
				}
				return info.VersionID
			}
			want := map[[2]string][]byte{}
			for i, data := range [][]byte{randBytes(1, 300<<10), randBytes(2, 1000), randBytes(3, 200<<10)} {
				want[[2]string{"a", put("a", data)}] = data
				want[[2]string{"b", put("b", data[:len(data)/(i+1)])}] = data[:len(data)/(i+1)]
			}
			del, err := r.e.DeleteVersion(ctx, "t", "c", "b", DeleteOptions{Versioning: VersioningEnabled})
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(ms); i++ {
				r.useChain(ms[:i+1])
			}
			check := func(e *Engine, what string) {
				t.Helper()
				for kv, data := range want {
					a, err := e.OpenVersion(ctx, "t", "c", kv[0], kv[1])
					if err != nil {
						t.Fatalf("%s: %s@%s: %v", what, kv[0], kv[1], err)
					}
					got, err := io.ReadAll(a.Reader(ctx, 0, a.Info.Size))
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("%s: %s@%s: %d bytes, %v", what, kv[0], kv[1], len(got), err)
					}
				}
				var dm *DeleteMarkerError
				if _, err := e.Open(ctx, "t", "c", "b"); !errors.As(err, &dm) || dm.VersionID != del.VersionID {
					t.Fatalf("%s: b: %v, want its delete marker", what, err)
				}
				if got := versionsOf(t, e, "a"); len(got) != 3 || !strings.HasSuffix(got[0], "*") {
					t.Fatalf("%s: versions of a: %v", what, got)
				}
			}
			check(r.e, "before migration")
			if sum := migrateAll(t, r.e, 3); sum.Failed != 0 {
				t.Fatalf("MigrateAll: %+v", sum)
			}
			checkResidue(t, r.e, ms)
			r.topo.use(ms[len(ms)-1])
			check(r.e, "after migration")
			check(r.plain, "without history")
		})
	}
}

// TestRetention: a retention or legal hold rewrites the version's record
// and keeps its data (inline or in shard files); DeleteVersion refuses a
// protected version until the retention ends or with the bypass
// (GOVERNANCE only); a COMPLIANCE retention can only be extended.
func TestRetention(t *testing.T) {
	for _, size := range []int{100, 300 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 6})
			ctx := t.Context()
			data := randBytes(9, size)
			now := time.Now()
			r.e.cfg.Now = func() time.Time { return now }
			until := now.Add(time.Hour)
			info, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader(data), PutOptions{Size: int64(size), Versioning: VersioningEnabled,
				Retention: &Retention{Mode: RetentionCompliance, Until: until}})
			if err != nil {
				t.Fatal(err)
			}
			r.vput(t, "k", []byte("newer"), VersioningEnabled)
			del := func(bypass bool) error {
				_, err := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled, VersionID: info.VersionID, BypassGovernance: bypass})
				return err
			}
			if err := del(true); !errors.Is(err, ErrLocked) {
				t.Fatalf("delete of a COMPLIANCE version: %v", err)
			}
			for _, tc := range []struct {
				r    Retention
				want error
			}{
				{Retention{Mode: RetentionCompliance, Until: until.Add(-time.Second)}, ErrLocked},
				{Retention{Mode: RetentionGovernance, Until: until.Add(time.Hour)}, ErrLocked},
				{Retention{}, ErrLocked},
				{Retention{Mode: RetentionCompliance, Until: until.Add(time.Hour)}, nil},
			} {
				if err := r.e.SetRetention(ctx, "t", "c", "k", info.VersionID, tc.r, true); !errors.Is(err, tc.want) {
					t.Fatalf("SetRetention(%+v): %v, want %v", tc.r, err, tc.want)
				}
			}
			if err := r.e.SetLegalHold(ctx, "t", "c", "k", info.VersionID, true); err != nil {
				t.Fatal(err)
			}
			r.e.WaitBackground()
			got, err := r.vget(t, "k", info.VersionID)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("version after retention changes: %d bytes, %v", len(got), err)
			}
			a, err := r.e.OpenVersion(ctx, "t", "c", "k", info.VersionID)
			if err != nil || a.RetentionOf() != (Retention{Mode: RetentionCompliance, Until: time.Unix(0, until.Add(time.Hour).UnixNano()), LegalHold: true}) {
				t.Fatalf("retention %+v, %v", a.RetentionOf(), err)
			}
			// Past the retention the legal hold still holds; released, the version goes.
			now = now.Add(3 * time.Hour)
			if err := del(false); !errors.Is(err, ErrLocked) {
				t.Fatalf("delete under legal hold: %v", err)
			}
			if err := r.e.SetLegalHold(ctx, "t", "c", "k", info.VersionID, false); err != nil {
				t.Fatal(err)
			}
			if err := del(false); err != nil {
				t.Fatalf("delete once free: %v", err)
			}
			// GOVERNANCE yields to the bypass.
			g, err := r.e.Put(ctx, "t", "c", "g", bytes.NewReader(data), PutOptions{Size: int64(size), Versioning: VersioningEnabled,
				Retention: &Retention{Mode: RetentionGovernance, Until: now.Add(time.Hour)}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.e.DeleteVersion(ctx, "t", "c", "g", DeleteOptions{VersionID: g.VersionID}); !errors.Is(err, ErrLocked) {
				t.Fatalf("delete of a GOVERNANCE version: %v", err)
			}
			if _, err := r.e.DeleteVersion(ctx, "t", "c", "g", DeleteOptions{VersionID: g.VersionID, BypassGovernance: true}); err != nil {
				t.Fatalf("delete of a GOVERNANCE version with the bypass: %v", err)
			}
		})
	}
}

// namesLocker is an UploadLocker that records the names it locks.
type namesLocker struct {
	mu    sync.Mutex
	names []string
}

func (l *namesLocker) LockUpload(_ context.Context, id string) (func() bool, func(), error) {
	l.mu.Lock()
	l.names = append(l.names, id)
	l.mu.Unlock()
	return func() bool { return true }, func() {}, nil
}

// TestVersionChangesTakeKeyLock: retention and legal-hold changes and a
// version's deletion by id hold the key's cluster-wide lock, not only the
// per-node pointer lock, so the two racing through two nodes are
// serialised (probe H3: both succeeded, and the version came back without
// its data); without the lock they fail as a conflict and change nothing.
func TestVersionChangesTakeKeyLock(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	ctx := t.Context()
	info, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader([]byte("v1")), PutOptions{Size: 2, Versioning: VersioningEnabled})
	if err != nil {
		t.Fatal(err)
	}
	r.vput(t, "k", []byte("v2"), VersioningEnabled)
	until := time.Now().Add(time.Hour)
	r.e.cfg.UploadLocker = refusingLocker{}
	if err := r.e.SetRetention(ctx, "t", "c", "k", info.VersionID, Retention{Mode: RetentionGovernance, Until: until}, false); !errors.Is(err, ErrConditionConflict) {
		t.Fatalf("SetRetention without the key lock: %v, want ErrConditionConflict", err)
	}
	if err := r.e.SetLegalHold(ctx, "t", "c", "k", info.VersionID, true); !errors.Is(err, ErrConditionConflict) {
		t.Fatalf("SetLegalHold without the key lock: %v, want ErrConditionConflict", err)
	}
	if _, err := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled, VersionID: info.VersionID}); !errors.Is(err, ErrConditionConflict) {
		t.Fatalf("DeleteVersion without the key lock: %v, want ErrConditionConflict", err)
	}
	rec := &namesLocker{}
	r.e.cfg.UploadLocker = rec
	if a, err := r.e.OpenVersion(ctx, "t", "c", "k", info.VersionID); err != nil || a.RetentionOf() != (Retention{}) {
		t.Fatalf("version after the refused changes: %v; want it whole and unlocked", err)
	}
	if err := r.e.SetLegalHold(ctx, "t", "c", "k", info.VersionID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled, VersionID: info.VersionID}); err != nil {
		t.Fatal(err)
	}
	want := keyLockName("t", "c", "k")
	if len(rec.names) != 2 || rec.names[0] != want || rec.names[1] != want {
		t.Fatalf("locks taken %q, want the key's lock %q twice", rec.names, want)
	}
}

// TestAdoptKeepsLockedNullVersion: a plain record written over a
// versioned key (an unversioned write under a stale versioning state)
// is adopted by the next versioned write. When the key's null version is
// under retention or legal hold, it is not replaced: the plain record
// becomes a version of its own, and every version keeps its bytes.
func TestAdoptKeepsLockedNullVersion(t *testing.T) {
	for _, lock := range []string{"compliance", "legalhold"} {
		t.Run(lock, func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 6})
			ctx := t.Context()
			r.vput(t, "k", []byte("v0 null"), Unversioned)
			r.vput(t, "k", []byte("v1"), VersioningEnabled) // v0 becomes the stored null version
			var err error
			if lock == "compliance" {
				err = r.e.SetRetention(ctx, "t", "c", "k", NullVersion, Retention{Mode: RetentionCompliance, Until: time.Now().Add(time.Hour)}, false)
			} else {
				err = r.e.SetLegalHold(ctx, "t", "c", "k", NullVersion, true)
			}
			if err != nil {
				t.Fatal(err)
			}
			r.vput(t, "k", []byte("v2 stale"), Unversioned) // a plain record over the pointer
			r.vput(t, "k", []byte("v3"), VersioningEnabled) // adopts it
			if got, err := r.vget(t, "k", NullVersion); err != nil || string(got) != "v0 null" {
				t.Fatalf("null version: %q, %v; want the locked %q", got, err, "v0 null")
			}
			if got, err := r.vget(t, "k", ""); err != nil || string(got) != "v3" {
				t.Fatalf("current: %q, %v; want v3", got, err)
			}
			res, err := r.e.ListVersions(ctx, "t", "c", VersionListOptions{Prefix: "k"})
			if err != nil {
				t.Fatal(err)
			}
			var bodies []string
			for _, v := range res.Versions {
				b, err := r.vget(t, "k", v.VersionID)
				if err != nil {
					t.Fatalf("version %s: %v", v.VersionID, err)
				}
				bodies = append(bodies, string(b))
			}
			slices.Sort(bodies)
			if want := []string{"v0 null", "v1", "v2 stale", "v3"}; !slices.Equal(bodies, want) {
				t.Fatalf("versions hold %q, want %q", bodies, want)
			}
		})
	}
}

// listCounter counts the index records its drive returns to listings.
type listCounter struct {
	driver.Driver
	n *atomic.Int64
}

func (c listCounter) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	recs, err := c.Driver.ListRecords(ctx, prefix, after, limit)
	c.n.Add(int64(len(recs)))
	return recs, err
}

// TestListVersionsManyVersions: a key with many versions (a null version
// from before versioning, delete markers, versions deleted by id, and
// minutes to hours between writes) lists page by page, at every page
// size, exactly as the versions were written, newest first, with
// continuous markers, also resumed after a version since deleted; and a
// page deep inside the key reads a bounded number of index records, not
// every version of the key (probe M6).
func TestListVersionsManyVersions(t *testing.T) {
	old := maxGroupRead
	maxGroupRead = 16 // keys with more versions are paged by seeking
	t.Cleanup(func() { maxGroupRead = old })
	var listed atomic.Int64
	r := newRig(t, rigOptions{drives: 6, noSync: true, wrap: func(d driver.Driver) driver.Driver { return listCounter{d, &listed} }})
	ctx := t.Context()
	now := time.Now().Add(-30 * 24 * time.Hour)
	r.e.cfg.Now = func() time.Time { return now }
	tick := func(i int) { now = now.Add(time.Duration(1+i%5*37) * time.Minute) } // uneven gaps
	const n = 600
	type ver struct {
		key, vid string
		marker   bool
	}
	var want []ver // newest last
	r.vput(t, "a", []byte("a"), VersioningEnabled)
	r.vput(t, "m", []byte("null"), Unversioned)
	want = append(want, ver{"m", NullVersion, false})
	var deleted string
	for i := range n {
		tick(i)
		switch {
		case i%97 == 50:
			res, err := r.e.DeleteVersion(ctx, "t", "c", "m", DeleteOptions{Versioning: VersioningEnabled})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, ver{"m", res.VersionID, true})
		case i%113 == 70:
			j := len(want) - 3
			if _, err := r.e.DeleteVersion(ctx, "t", "c", "m", DeleteOptions{Versioning: VersioningEnabled, VersionID: want[j].vid}); err != nil {
				t.Fatal(err)
			}
			deleted = want[j].vid
			want = slices.Delete(want, j, j+1)
		default:
			info := r.vput(t, "m", []byte(fmt.Sprint(i)), VersioningEnabled)
			want = append(want, ver{"m", info.VersionID, false})
		}
	}
	tick(0)
	r.vput(t, "z", []byte("z"), VersioningEnabled)
	slices.Reverse(want)
	// The full listing: a, m's versions newest first, z.
	all := func(limit int, keyMarker, idMarker string) []ver {
		var got []ver
		for pages := 0; ; pages++ {
			if pages > 2*n {
				t.Fatalf("limit %d: more than %d pages", limit, 2*n)
			}
			res, err := r.e.ListVersions(ctx, "t", "c", VersionListOptions{Limit: limit, KeyMarker: keyMarker, VersionIDMarker: idMarker})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Versions) > limit || res.Truncated && len(res.Versions) == 0 {
				t.Fatalf("limit %d: page of %d versions, truncated %v", limit, len(res.Versions), res.Truncated)
			}
			for _, v := range res.Versions {
				if v.Key == "m" && v.IsLatest != (v.VersionID == want[0].vid) {
					t.Fatalf("limit %d: %s IsLatest %v", limit, v.VersionID, v.IsLatest)
				}
				got = append(got, ver{v.Key, v.VersionID, v.DeleteMarker})
			}
			if !res.Truncated {
				return got
			}
			if last := res.Versions[len(res.Versions)-1]; res.NextKey != last.Key || res.NextVersion != last.VersionID {
				t.Fatalf("limit %d: next markers %q %q, want the last listed %q %q", limit, res.NextKey, res.NextVersion, last.Key, last.VersionID)
			}
			keyMarker, idMarker = res.NextKey, res.NextVersion
		}
	}
	strip := func(vs []ver) []ver {
		return slices.DeleteFunc(slices.Clone(vs), func(v ver) bool { return v.key != "m" })
	}
	for _, limit := range []int{1, 7, 100, 1000} {
		got := all(limit, "", "")
		if len(got) != len(want)+2 || got[0].key != "a" || got[len(got)-1].key != "z" || !slices.Equal(strip(got), want) {
			t.Fatalf("limit %d: listed %d versions, want %d (first %v, last %v)", limit, len(got), len(want)+2, got[:min(3, len(got))], got[max(0, len(got)-3):])
		}
	}
	// Resumed after a version since deleted: placed by its time.
	i := slices.IndexFunc(want, func(v ver) bool { return v.vid < deleted && v.vid != NullVersion })
	if got := strip(all(10, "m", deleted)); !slices.Equal(got, want[i:]) {
		t.Fatalf("resumed after the deleted %s: %d versions, want %d", deleted, len(got), len(want[i:]))
	}
	// A marker past 2262 (ids hold unsigned nanoseconds) lists all of m.
	if got := strip(all(10, "m", strings.Repeat("f", 32))); !slices.Equal(got, want) {
		t.Fatalf("resumed after ffff...: %d versions, want all %d", len(got), len(want))
	}
	// Resumed after the null version: m is done.
	if got := strip(all(10, "m", NullVersion)); len(got) != 0 {
		t.Fatalf("resumed after null: %v", got)
	}
	// A page deep inside m reads about a page of records per drive, not
	// m's versions: the older code read all of them on every drive.
	mid := want[len(want)/2].vid
	listed.Store(0)
	res, err := r.e.ListVersions(ctx, "t", "c", VersionListOptions{Limit: 5, KeyMarker: "m", VersionIDMarker: mid})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Versions) != 5 || res.Versions[0].VersionID != want[len(want)/2+1].vid {
		t.Fatalf("page after %s: %+v", mid, res.Versions)
	}
	if got, all := listed.Load(), int64(6*(n+1)); got > all/3 {
		t.Fatalf("a page of 5 read %d index records; all of m's are %d", got, all)
	}
	t.Logf("a page of 5 deep in %d versions read %d index records", n, listed.Load())
}

// TestDeleteVersionsOneLock: DeleteVersions (DeleteObjects' entries naming
// versions of one key) takes the key's cluster-wide lock once for all of
// them, not once per version (two Raft applies each in a cluster), and
// ends as the deletes one by one would: the deleted versions gone, a
// protected one kept with ErrLocked, a missing one succeeding, an
// invalid id refused, and the newest version left current.
func TestDeleteVersionsOneLock(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	ctx := t.Context()
	const n = 40
	var vids []string
	var bodies [][]byte
	for i := range n {
		bodies = append(bodies, randBytes(uint64(i), 100+i))
		if i == 5 {
			info, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader(bodies[i]), PutOptions{Size: int64(len(bodies[i])), Versioning: VersioningEnabled,
				Retention: &Retention{Mode: RetentionCompliance, Until: time.Now().Add(time.Hour)}})
			if err != nil {
				t.Fatal(err)
			}
			vids = append(vids, info.VersionID)
			continue
		}
		vids = append(vids, r.vput(t, "k", bodies[i], VersioningEnabled).VersionID)
	}
	other := r.vput(t, "other", []byte("stays"), VersioningEnabled)
	// Every version but the two oldest, newest first (as a client deleting
	// what it listed), one twice, one missing, one invalid.
	var del []string
	for i := n - 1; i >= 2; i-- {
		del = append(del, vids[i])
	}
	missing := vids[n-1][:len(vids[n-1])-4] + "abcd"
	del = append(del, vids[n-1], missing, "not-a-version")
	rec := &namesLocker{}
	r.e.cfg.UploadLocker = rec
	res, errs := r.e.DeleteVersions(ctx, "t", "c", "k", del, false)
	r.e.cfg.UploadLocker = nil
	if want := keyLockName("t", "c", "k"); len(rec.names) != 1 || rec.names[0] != want {
		t.Fatalf("locks taken %q, want the key's lock %q once", rec.names, want)
	}
	for i, vid := range del {
		var want error
		switch vid {
		case vids[5]:
			want = ErrLocked
		case "not-a-version":
			want = ErrInvalidVersion
		}
		if !errors.Is(errs[i], want) || (want == nil) != (errs[i] == nil) {
			t.Errorf("entry %d (%s): %v, want %v", i, vid, errs[i], want)
		}
		if errs[i] == nil && res[i].VersionID != vid {
			t.Errorf("entry %d: result names version %q, want %q", i, res[i].VersionID, vid)
		}
	}
	// Left: the two oldest and the protected one, the protected one current.
	want := []string{fmt.Sprintf("%s:%d*", vids[5], len(bodies[5])), fmt.Sprintf("%s:%d", vids[1], len(bodies[1])), fmt.Sprintf("%s:%d", vids[0], len(bodies[0]))}
	if got := r.versionsOf(t, "k"); !slices.Equal(got, want) {
		t.Fatalf("versions left %q, want %q", got, want)
	}
	if got, err := r.vget(t, "k", ""); err != nil || !bytes.Equal(got, bodies[5]) {
		t.Fatalf("current version after the batch: %d bytes, %v; want the protected version's", len(got), err)
	}
	if got, err := r.vget(t, "other", other.VersionID); err != nil || string(got) != "stays" {
		t.Fatalf("another key's version: %q, %v", got, err)
	}
	// The older ones: the protected version stays current.
	_, errs = r.e.DeleteVersions(ctx, "t", "c", "k", []string{vids[0], vids[1]}, false)
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("deleting the last unprotected versions: %v", errs)
	}
	if got, err := r.vget(t, "k", ""); err != nil || !bytes.Equal(got, bodies[5]) {
		t.Fatalf("current version: %d bytes, %v; want the protected version's", len(got), err)
	}
}

// TestHealRewritesVersionPointer: a drive that lost a versioned key's
// pointer record (it names no data of its own) gets it back from Heal.
// Heal looked for missing records only through the data's parts, so a
// pointer stayed missing for ever (found in session 12 when migration
// began waiting for complete sets: a pointer's older copy stayed).
func TestHealRewritesVersionPointer(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, noSync: true})
	ctx := t.Context()
	r.vput(t, "a", randBytes(5, 70<<10), VersioningEnabled)
	info := r.vput(t, "a", randBytes(6, 900), VersioningEnabled)
	r.e.WaitBackground()
	ikey := indexPrefix("t", "c") + "a"
	raw, err := r.faulty[2].GetRecord(ctx, ikey)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := unmarshalRecord(raw.Data); err != nil || !rec.Pointer {
		t.Fatalf("the record of a on drive 2: %+v %v, want a version pointer", rec, err)
	}
	if err := r.faulty[2].DeleteRecord(ctx, ikey, raw.Version); err != nil {
		t.Fatal(err)
	}
	healed, err := r.e.Heal(ctx, "t", "c", "a")
	if err != nil || len(healed) != 1 {
		t.Fatalf("Heal: %v %v, want one slot rewritten", healed, err)
	}
	got, err := r.faulty[2].GetRecord(ctx, ikey)
	if err != nil || got.Version != raw.Version {
		t.Fatalf("drive 2 after Heal: %v %v, want the pointer of version %v", got.Version, err, raw.Version)
	}
	a, err := r.e.Open(ctx, "t", "c", "a")
	if err != nil || a.Info.VersionID != info.VersionID {
		t.Fatalf("Open: %v %v, want version %s", a.Info.VersionID, err, info.VersionID)
	}
}
