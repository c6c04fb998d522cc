package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/engine"
)

// remoteObjects counts the shard objects (obj/, one per large shard) in
// the rig's remote buckets and their bytes.
func (r *remoteRig) remoteObjects(t *testing.T, s server) (n int, size int64) {
	t.Helper()
	for _, b := range r.buckets {
		p := s3.NewListObjectsV2Paginator(s.client(""), &s3.ListObjectsV2Input{Bucket: aws.String(b), Prefix: aws.String("obj/")})
		for p.HasMorePages() {
			out, err := p.NextPage(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range out.Contents {
				n++
				size += aws.ToInt64(o.Size)
			}
		}
	}
	return n, size
}

// used sums Usage.Used of the rig's local drives, or of its remote ones.
func (r *remoteRig) used(t *testing.T, remote bool) uint64 {
	t.Helper()
	var sum uint64
	ds := r.locals
	if remote {
		ds = ds[:0:0]
		for _, d := range r.remotes {
			ds = append(ds, d)
		}
	}
	for _, d := range ds {
		info, err := d.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		sum += info.Usage.Used
	}
	return sum
}

// read reads version vid ("" the newest) of key of the tier container.
func (r *remoteRig) read(t *testing.T, key, vid string) ([]byte, error) {
	t.Helper()
	a, err := r.eng.OpenVersion(t.Context(), "t", "tr", key, vid)
	if err != nil {
		return nil, err
	}
	rc := a.Reader(t.Context(), 0, a.Info.Size)
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestTierCollect: a tiered key overwritten or deleted leaves its remote
// copy hidden; the next tier pass removes it (records and shard objects),
// so the remote bucket's objects and bytes and the remote drives' usage go
// back down, while every key still reads as last written. A second pass
// collects nothing, and an overwritten key is tiered again.
func TestTierCollect(t *testing.T) {
	s := startVaultd(t)
	rig := newRemoteRig(t, s)
	ctx := t.Context()
	bodies := map[string][]byte{}
	var large int64
	for i := range 6 {
		key := fmt.Sprintf("a%d", i)
		bodies[key] = payload(2<<20+1000*i, uint64(i)) // a shard object of its own
		large += int64(len(bodies[key]))
	}
	for i := range 2 {
		bodies[fmt.Sprintf("s%d", i)] = payload(10000+i, uint64(100+i)) // inline
	}
	for key, body := range bodies {
		if err := rig.put(t, "tr", key, body); err != nil {
			t.Fatal(err)
		}
	}
	st, err := rig.eng.TierContainer(ctx, "t", "tr", engine.TierRule{MinSize: 1}, nil)
	if err != nil || st.Moved != len(bodies) {
		t.Fatalf("tier: %+v, %v; want %d moved", st, err, len(bodies))
	}
	tieredObjs, tieredBytes := rig.remoteObjects(t, s)
	tieredUsed := rig.used(t, true)
	// The remote layout of 2 remote drives is 1+1: each large artifact
	// is a shard object (its bytes and block checksums) in each bucket.
	if tieredObjs != 12 || tieredBytes < 2*large {
		t.Fatalf("after tiering: %d remote objects of %d bytes, want 12 of at least %d", tieredObjs, tieredBytes, 2*large)
	}

	// Overwrite three, delete three and one small one: reads see the
	// local set's versions; the remote copies are hidden, still there.
	for i := range 3 {
		key := fmt.Sprintf("a%d", i)
		bodies[key] = payload(3000+i, uint64(200+i))
		if err := rig.put(t, "tr", key, bodies[key]); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"a3", "a4", "a5", "s0"} {
		if err := rig.eng.Delete(ctx, "t", "tr", key); err != nil {
			t.Fatal(err)
		}
		delete(bodies, key)
	}
	check := func(when string) {
		t.Helper()
		for key, want := range bodies {
			if got, err := rig.read(t, key, ""); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %s: %d bytes (want %d), %v", when, key, len(got), len(want), err)
			}
		}
		for _, key := range []string{"a3", "a4", "a5", "s0"} {
			if _, err := rig.read(t, key, ""); !errors.Is(err, engine.ErrNoSuchArtifact) {
				t.Errorf("%s: deleted %s: %v, want ErrNoSuchArtifact", when, key, err)
			}
		}
	}
	check("overwritten and deleted")
	if n, _ := rig.remoteObjects(t, s); n != tieredObjs {
		t.Fatalf("%d remote objects before the tier pass, want the %d hidden ones still there", n, tieredObjs)
	}

	// A pass with nothing due collects the hidden copies.
	st, err = rig.eng.TierContainer(ctx, "t", "tr", engine.TierRule{MinSize: 1 << 40}, nil)
	want := large + 10000 // a0..a5 and s0
	if err != nil || st.Collected != 7 || st.CollectedBytes != want || st.Moved != 0 {
		t.Errorf("collecting pass: %+v, %v; want 7 collected of %d bytes", st, err, want)
	}
	objs, objBytes := rig.remoteObjects(t, s)
	used := rig.used(t, true)
	t.Logf("remote: %d objects / %d bytes / usage %d tiered, %d / %d / %d collected", tieredObjs, tieredBytes, tieredUsed, objs, objBytes, used)
	if objs != 0 || objBytes != 0 {
		t.Errorf("after collecting: %d remote objects of %d bytes left, want none", objs, objBytes)
	}
	if used+uint64(2*(large+10000)) > tieredUsed {
		t.Errorf("remote drives' usage %d after collecting, %d before: want it down by at least %d", used, tieredUsed, 2*(large+10000))
	}
	check("collected")
	if st, err := rig.eng.TierContainer(ctx, "t", "tr", engine.TierRule{MinSize: 1 << 40}, nil); err != nil || st.Collected != 0 {
		t.Errorf("second collecting pass: %+v, %v; want nothing collected", st, err)
	}
	// The overwritten keys are tiered again, and read back from there.
	if st, err := rig.eng.TierContainer(ctx, "t", "tr", engine.TierRule{MinSize: 1}, nil); err != nil || st.Moved != 3 || st.Collected != 0 {
		t.Errorf("tiering the overwritten keys: %+v, %v; want 3 moved", st, err)
	}
	check("tiered again")
}

// TestTierVersions: a tier pass moves every version of a versioned key,
// noncurrent and current, with its version id (the null version moved to
// its version key included); delete markers and pointers stay local. Each
// version reads back byte-identical by id, the version listing is
// unchanged, and the local drives hold no shard bytes of them. A tiered
// version deleted by id is collected by the next pass.
func TestTierVersions(t *testing.T) {
	s := startVaultd(t)
	rig := newRemoteRig(t, s)
	ctx := t.Context()
	baseline := rig.used(t, false)
	type ver struct{ key, vid string }
	bodies := map[ver][]byte{}
	put := func(key string, v engine.Versioning, seed uint64) string {
		t.Helper()
		body := payload(2<<20+int(seed), seed)
		info, err := rig.eng.Put(ctx, "t", "tr", key, bytes.NewReader(body), engine.PutOptions{Size: int64(len(body)), Versioning: v})
		if err != nil {
			t.Fatal(err)
		}
		vid := info.VersionID
		if vid == "" {
			vid = engine.NullVersion
		}
		bodies[ver{key, vid}] = body
		return vid
	}
	put("n", engine.Unversioned, 1) // the null version, adopted by the next write
	put("n", engine.VersioningEnabled, 2)
	put("v", engine.VersioningEnabled, 3)
	v2 := put("v", engine.VersioningEnabled, 4)
	put("v", engine.VersioningEnabled, 5)
	if _, err := rig.eng.DeleteVersion(ctx, "t", "tr", "v", engine.DeleteOptions{Versioning: engine.VersioningEnabled}); err != nil {
		t.Fatal(err)
	}
	put("v", engine.VersioningEnabled, 6)
	put("p", engine.Unversioned, 7) // a plain key beside them
	listing := func() []engine.VersionInfo {
		t.Helper()
		res, err := rig.eng.ListVersions(ctx, "t", "tr", engine.VersionListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Versions
	}
	before := listing()
	if len(before) != 8 {
		t.Fatalf("%d versions listed, want 8 (7 and a delete marker): %+v", len(before), before)
	}

	var movedIDs []string
	st, err := rig.eng.TierContainer(ctx, "t", "tr", engine.TierRule{MinSize: 1}, func(a engine.ArtifactInfo) { movedIDs = append(movedIDs, a.Key+"@"+a.VersionID) })
	if err != nil || st.Moved != 7 {
		t.Fatalf("tier: %+v, %v; want 7 versions moved (%v)", st, err, movedIDs)
	}
	after := listing()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("versions listed after tiering:\n%+v\nbefore:\n%+v", after, before)
	}
	for v, want := range bodies {
		if got, err := rig.read(t, v.key, v.vid); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s version %s after tiering: %d bytes (want %d), %v", v.key, v.vid, len(got), len(want), err)
		}
	}
	for key, seed := range map[string]uint64{"n": 2, "v": 6, "p": 7} {
		if got, err := rig.read(t, key, ""); err != nil || !bytes.Equal(got, payload(2<<20+int(seed), seed)) {
			t.Errorf("%s, current version, after tiering: %v", key, err)
		}
	}
	// (Each version's local shards were 1 MiB each, 2+2; what is left
	// is the pointers' and the marker's records.)
	if used := rig.used(t, false); used >= baseline+1<<20 {
		t.Errorf("local drives use %d bytes after tiering every version, %d before any write: they still hold shards", used, baseline)
	}
	objs, _ := rig.remoteObjects(t, s)
	if objs != 14 {
		t.Errorf("%d remote shard objects after tiering, want 14 (7 versions, 1+1)", objs)
	}
	if st, err := rig.eng.TierContainer(ctx, "t", "tr", engine.TierRule{MinSize: 1}, nil); err != nil || st.Moved != 0 {
		t.Errorf("second pass: %+v, %v; want nothing moved", st, err)
	}

	// A tiered noncurrent version deleted by id goes from the remote
	// drives at the next pass.
	if _, err := rig.eng.DeleteVersion(ctx, "t", "tr", "v", engine.DeleteOptions{Versioning: engine.VersioningEnabled, VersionID: v2}); err != nil {
		t.Fatal(err)
	}
	delete(bodies, ver{"v", v2})
	st, err = rig.eng.TierContainer(ctx, "t", "tr", engine.TierRule{MinSize: 1 << 40}, nil)
	if err != nil || st.Collected != 1 {
		t.Errorf("pass after deleting version %s: %+v, %v; want it collected", v2, st, err)
	}
	if n, _ := rig.remoteObjects(t, s); n != 12 {
		t.Errorf("%d remote shard objects after collecting a version, want 12", n)
	}
	if _, err := rig.read(t, "v", v2); !errors.Is(err, engine.ErrNoSuchVersion) {
		t.Errorf("deleted version %s: %v, want ErrNoSuchVersion", v2, err)
	}
	for v, want := range bodies {
		if got, err := rig.read(t, v.key, v.vid); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s version %s after collecting: %v", v.key, v.vid, err)
		}
	}
}
