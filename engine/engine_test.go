package engine

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/driver/local"
	"github.com/vaultaire/vaultaire/placement"
)

// rig is an Engine over local drives in temporary directories, each drive
// wrapped in a fault injector.
type rig struct {
	e      *Engine
	dirs   []string
	faulty []*drivertest.Faulty
	ids    []placement.DriveID
}

type rigOptions struct {
	drives     int
	stripeSize int64
	noSync     bool
	policy     placement.Policy                  // zero: placement.DefaultPolicy(drives)
	width      int                               // the map's stripe width (stripe.go); 0: unstriped
	remote     int                               // the last this many drives are of class remote
	storage    string                            // every container's storage policy (layout.go); "": local
	wrap       func(driver.Driver) driver.Driver // if set, wraps each drive (after the fault injector)
}

func newRig(t testing.TB, o rigOptions) *rig {
	t.Helper()
	if o.stripeSize == 0 {
		o.stripeSize = 1 << 20
	}
	r := &rig{}
	pdrives := make([]placement.Drive, o.drives)
	drives := make(map[placement.DriveID]driver.Driver)
	for i := range o.drives {
		id := placement.DriveID(fmt.Sprintf("d%02d", i))
		dir := t.TempDir()
		d, err := local.Open(context.Background(), local.Config{Dir: dir, ID: driver.DriveID(id), ClusterID: "test", NoSync: o.noSync})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		f := drivertest.NewFaulty(d)
		r.dirs = append(r.dirs, dir)
		r.faulty = append(r.faulty, f)
		r.ids = append(r.ids, id)
		pdrives[i] = placement.Drive{ID: id, Node: "n1", Class: "local"}
		if i >= o.drives-o.remote {
			pdrives[i].Class = driver.ClassRemote
		}
		drives[id] = f
		if o.wrap != nil {
			drives[id] = o.wrap(f)
		}
	}
	pol, err := placement.DefaultPolicy(o.drives)
	if err != nil {
		t.Fatal(err)
	}
	if o.policy.Data > 0 {
		pol = o.policy
	}
	m, err := placement.NewMap(pdrives, pol, placement.DefaultPGCount, 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Width = o.width
	topo, err := NewStatic(m, drives)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Topology: topo, Containers: &MemContainers{}, StripeSize: o.stripeSize}
	if o.storage != "" {
		cfg.StoragePolicy = func(string, string) string { return o.storage }
	}
	r.e, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.e.CreateContainer(context.Background(), "t", "c"); err != nil {
		t.Fatal(err)
	}
	return r
}

// faultyOf returns the fault injector of shard j of key's placement group.
func (r *rig) faultyOf(key string, j int) *drivertest.Faulty {
	m := r.e.mapOf()
	id := m.Set(m.PGOf("t", "c", key))[j]
	return r.faulty[slices.Index(r.ids, id)]
}

func (r *rig) dirOf(key string, j int) string {
	m := r.e.mapOf()
	id := m.Set(m.PGOf("t", "c", key))[j]
	return r.dirs[slices.Index(r.ids, id)]
}

func (r *rig) put(t testing.TB, key string, data []byte, size int64) ArtifactInfo {
	t.Helper()
	info, err := r.e.Put(context.Background(), "t", "c", key, bytes.NewReader(data), PutOptions{Size: size})
	if err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
	return info
}

func (r *rig) get(key string, off, length int64) ([]byte, error) {
	a, err := r.e.Open(context.Background(), "t", "c", key)
	if err != nil {
		return nil, err
	}
	if length < 0 {
		length = a.Info.Size - off
	}
	var buf bytes.Buffer
	err = a.WriteRange(context.Background(), &buf, off, length)
	return buf.Bytes(), err
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 128<<10 - 1, 128 << 10, 128<<10 + 1, 1<<20 - 1, 1 << 20, 1<<20 + 1, 50 << 20}
	if testing.Short() {
		sizes[len(sizes)-1] = 5<<20 + 3 // many stripes still, a tenth of the bytes
	}
	for _, drives := range []int{1, 4, 6} {
		r := newRig(t, rigOptions{drives: drives})
		for _, size := range sizes {
			for _, known := range []bool{true, false} {
				t.Run(fmt.Sprintf("drives%d/size%d/known%v", drives, size, known), func(t *testing.T) {
					data := randBytes(uint64(size), size)
					declared := int64(-1)
					if known {
						declared = int64(size)
					}
					key := fmt.Sprintf("obj-%d-%v", size, known)
					info := r.put(t, key, data, declared)
					if info.Size != int64(size) || info.ETag != md5hex(data) {
						t.Fatalf("Put info = size %d etag %s, want %d %s", info.Size, info.ETag, size, md5hex(data))
					}
					got, err := r.get(key, 0, -1)
					if err != nil {
						t.Fatalf("Get: %v", err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("Get returned %d different bytes", len(got))
					}
					if size > 10 {
						off, n := int64(size/3), int64(size/3)
						got, err := r.get(key, off, n)
						if err != nil || !bytes.Equal(got, data[off:off+n]) {
							t.Fatalf("ranged Get: err %v, equal %v", err, bytes.Equal(got, data[off:off+n]))
						}
					}
				})
			}
		}
		if len(r.e.Degraded()) != 0 {
			t.Fatalf("healthy reads queued heals: %v", r.e.Degraded())
		}
	}
}

// TestLostDrives takes every combination of up to m drives offline: reads
// return identical bytes; with more than m lost they fail cleanly.
func TestLostDrives(t *testing.T) {
	for _, drives := range []int{2, 4, 6} {
		r := newRig(t, rigOptions{drives: drives, stripeSize: 64 << 10})
		pol := r.e.mapOf().Policy
		objs := map[string][]byte{
			"inline": randBytes(1, 10_000),
			"large":  randBytes(2, 700_000),
		}
		for k, v := range objs {
			r.put(t, k, v, int64(len(v)))
		}
		for mask := 1; mask < 1<<drives; mask++ {
			for j := range drives {
				r.faulty[j].SetOffline(mask&(1<<j) != 0)
			}
			for k, v := range objs {
				got, err := r.get(k, 0, -1)
				// What matters is how many drives of the key's own set are lost.
				setLost := 0
				for j := range pol.SetSize() {
					if mask&(1<<slices.Index(r.faulty, r.faultyOf(k, j))) != 0 {
						setLost++
					}
				}
				switch {
				case setLost <= pol.Parity:
					if err != nil || !bytes.Equal(got, v) {
						t.Fatalf("%d drives, %s, lost mask %b: err %v, equal %v", drives, k, mask, err, bytes.Equal(got, v))
					}
				case err == nil:
					if !bytes.Equal(got, v) {
						t.Fatalf("%d drives, %s, lost mask %b: wrong bytes", drives, k, mask)
					}
				case !errors.Is(err, ErrReadQuorum):
					t.Fatalf("%d drives, %s, lost mask %b: err = %v, want ErrReadQuorum", drives, k, mask, err)
				}
			}
		}
		for _, f := range r.faulty {
			f.SetOffline(false)
		}
	}
}

// shardFiles returns the committed shard files under dir.
func shardFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(filepath.Join(dir, "shards"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func TestCorruptShardRepaired(t *testing.T) {
	r := newRig(t, rigOptions{drives: 6, stripeSize: 64 << 10})
	data := randBytes(3, 1_000_000)
	r.put(t, "big", data, int64(len(data)))
	for j := range 6 {
		files := shardFiles(t, r.dirOf("big", j))
		if len(files) != 1 {
			t.Fatalf("drive of shard %d holds %d shard files, want 1", j, len(files))
		}
		raw, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)/2] ^= 0x01
		if err := os.WriteFile(files[0], raw, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := r.get("big", 0, -1)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("flipped byte in shard %d: err %v, equal %v", j, err, bytes.Equal(got, data))
		}
		// Parity shards are only read when a data shard fails, so a flip
		// in one is found by Heal's verification rather than by the read.
		if j < 4 && len(r.e.Degraded()) != 1 {
			t.Fatalf("flipped byte in shard %d: Degraded = %v, want the artifact", j, r.e.Degraded())
		}
		healed, err := r.e.Heal(context.Background(), "t", "c", "big")
		if err != nil || len(healed) != 1 || healed[0] != j {
			t.Fatalf("Heal after flipping shard %d = %v, %v", j, healed, err)
		}
		if len(r.e.Degraded()) != 0 {
			t.Fatalf("Degraded after heal = %v", r.e.Degraded())
		}
		if healed, err := r.e.Heal(context.Background(), "t", "c", "big"); err != nil || len(healed) != 0 {
			t.Fatalf("second Heal = %v, %v; want nothing to do", healed, err)
		}
	}
}

func TestCorruptInlineRecord(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	data := randBytes(4, 5000)
	r.put(t, "small", data, int64(len(data)))
	for j := range 4 {
		f := r.faultyOf("small", j)
		f.SetCorruptReads(true)
		got, err := r.get("small", 0, -1)
		f.SetCorruptReads(false)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("corrupt record on shard %d: err %v, equal %v", j, err, bytes.Equal(got, data))
		}
	}
}

// TestHealLostDrive rebuilds the shards of a drive that was wiped.
func TestHealLostDrive(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	small, large := randBytes(5, 3000), randBytes(6, 500_000)
	r.put(t, "small", small, -1)
	r.put(t, "large", large, -1)
	// Offline during the overwrite: drive 0 of each set misses it.
	for _, k := range []string{"small", "large"} {
		r.faultyOf(k, 0).SetOffline(true)
		r.put(t, k, append([]byte("v2"), map[string][]byte{"small": small, "large": large}[k]...), -1)
		r.faultyOf(k, 0).SetOffline(false)
		got, err := r.get(k, 0, 2)
		if err != nil || string(got) != "v2" {
			t.Fatalf("%s after overwrite with a drive offline: %q, %v", k, got, err)
		}
		healed, err := r.e.Heal(context.Background(), "t", "c", k)
		if err != nil || !slices.Equal(healed, []int{0}) {
			t.Fatalf("Heal(%s) = %v, %v; want [0]", k, healed, err)
		}
		// With the other drives offline up to parity, the healed one serves.
		r.faultyOf(k, 1).SetOffline(true)
		r.faultyOf(k, 2).SetOffline(true)
		got, err = r.get(k, 0, 2)
		r.faultyOf(k, 1).SetOffline(false)
		r.faultyOf(k, 2).SetOffline(false)
		if err != nil || string(got) != "v2" {
			t.Fatalf("%s read through the healed drive: %q, %v", k, got, err)
		}
	}
}

type failingReader struct {
	r     io.Reader
	after int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("client went away")
	}
	p = p[:min(len(p), f.after)]
	n, err := f.r.Read(p)
	f.after -= n
	return n, err
}

// truncatedBody ends with io.ErrUnexpectedEOF, net/http's error for a
// body cut short, instead of io.EOF.
type truncatedBody struct{ data []byte }

func (b *truncatedBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// lastBytesWithError returns its last bytes together with an error (as a
// chunked-signature check does), then io.EOF.
type lastBytesWithError struct {
	data []byte
	sent bool
}

func (b *lastBytesWithError) Read(p []byte) (int, error) {
	n := copy(p, b.data)
	b.data = b.data[n:]
	if len(b.data) == 0 && !b.sent {
		b.sent = true
		return n, errors.New("signature mismatch")
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func TestPutReaderFailsLeavesNothing(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	old := randBytes(7, 300_000)
	r.put(t, "kept", old, -1)
	failAfter := func(n int) func() io.Reader {
		return func() io.Reader { return &failingReader{r: bytes.NewReader(randBytes(8, 2_000_000)), after: n} }
	}
	for _, tc := range []struct {
		name string
		key  string
		size int64
		body func() io.Reader
	}{
		{"inline/unknown", "new-small", -1, failAfter(50_000)},
		{"inline/known", "new-small2", 100_000, failAfter(50_000)},
		{"large/unknown", "new-large", -1, failAfter(1_500_000)},
		{"large/known", "new-large2", 3_000_000, failAfter(1_500_000)},
		{"overwrite", "kept", 3_000_000, failAfter(1_000_000)},
		{"short body", "short", 3_000_000, failAfter(1 << 30)},
		{"inline/unexpected EOF", "trunc-small", -1, func() io.Reader { return &truncatedBody{randBytes(2, 1000)} }},
		{"large/unexpected EOF", "trunc-large", -1, func() io.Reader { return &truncatedBody{randBytes(2, 700_000)} }},
		{"overwrite/unexpected EOF", "kept", -1, func() io.Reader { return &truncatedBody{randBytes(2, 700_000)} }},
		{"stripes/error with last bytes", "dwe-stripes", -1, func() io.Reader { return &lastBytesWithError{data: randBytes(6, 32768*10)} }},
		{"large/error with last bytes", "dwe-large", -1, func() io.Reader { return &lastBytesWithError{data: randBytes(6, 1<<20)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.e.Put(context.Background(), "t", "c", tc.key, tc.body(), PutOptions{Size: tc.size}); err == nil {
				t.Fatalf("Put with a failing body succeeded")
			}
			if tc.key == "kept" {
				got, err := r.get("kept", 0, -1)
				if err != nil || !bytes.Equal(got, old) {
					t.Fatalf("failed overwrite damaged the old version: %v", err)
				}
				return
			}
			if _, err := r.e.Head(context.Background(), "t", "c", tc.key); !errors.Is(err, ErrNoSuchArtifact) {
				t.Fatalf("Head after failed Put: err = %v, want ErrNoSuchArtifact", err)
			}
		})
	}
	// Only "kept" has shard files, one per drive, and no temp files remain.
	for _, dir := range r.dirs {
		if files := shardFiles(t, dir); len(files) != 1 {
			t.Fatalf("%s holds shard files %v, want only kept's", dir, files)
		}
		tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) || len(tmp) != 0 {
			t.Fatalf("%s/tmp holds %d files", dir, len(tmp))
		}
	}
	res, err := r.e.List(context.Background(), "t", "c", ListOptions{})
	if err != nil || len(res.Artifacts) != 1 || res.Artifacts[0].Key != "kept" {
		t.Fatalf("List after failed Puts = %+v, %v; want only kept", res.Artifacts, err)
	}
}

func TestBadDigestAndSizeMismatch(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	data := randBytes(9, 200_000)
	wrong := md5.Sum([]byte("other"))
	_, err := r.e.Put(context.Background(), "t", "c", "k", bytes.NewReader(data), PutOptions{Size: -1, MD5: wrong[:]})
	if !errors.Is(err, ErrBadDigest) {
		t.Fatalf("Put with wrong MD5: err = %v, want ErrBadDigest", err)
	}
	_, err = r.e.Put(context.Background(), "t", "c", "k", bytes.NewReader(data), PutOptions{Size: int64(len(data)) + 1})
	if !errors.Is(err, ErrIncompleteBody) {
		t.Fatalf("Put with short body: err = %v, want ErrIncompleteBody", err)
	}
	_, err = r.e.Put(context.Background(), "t", "c", "k", bytes.NewReader(data), PutOptions{Size: int64(len(data)) - 1})
	if !errors.Is(err, ErrIncompleteBody) {
		t.Fatalf("Put with long body: err = %v, want ErrIncompleteBody", err)
	}
	if _, err := r.e.Head(context.Background(), "t", "c", "k"); !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("Head after refused Puts: err = %v", err)
	}
	right := md5.Sum(data)
	if _, err := r.e.Put(context.Background(), "t", "c", "k", bytes.NewReader(data), PutOptions{Size: -1, MD5: right[:]}); err != nil {
		t.Fatalf("Put with right MD5: %v", err)
	}
}

func TestHostileKeys(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	long := strings.Repeat("é", 512) // 1024 bytes of UTF-8
	keys := []string{"../../etc/passwd", "a/../../b", long, "dir", "dir/", "dir//", "/leading", "..", ".", "a\\b", "ünï/cødé", "sp ace", "%2e%2e"}
	for i, k := range keys {
		size := 100 + i
		if i%2 == 0 {
			size = 200_000 + i // some stored as shard files
		}
		r.put(t, k, randBytes(uint64(i), size), -1)
	}
	for i, k := range keys {
		got, err := r.get(k, 0, -1)
		size := 100 + i
		if i%2 == 0 {
			size = 200_000 + i
		}
		if err != nil || !bytes.Equal(got, randBytes(uint64(i), size)) {
			t.Fatalf("Get(%q): err %v", k, err)
		}
	}
	res, err := r.e.List(context.Background(), "t", "c", ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, a := range res.Artifacts {
		listed = append(listed, a.Key)
	}
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(listed, want) {
		t.Fatalf("List = %q, want %q", listed, want)
	}
	for _, bad := range []string{"", "a\x00b", string([]byte{0xff, 0xfe}), long + "x"} {
		if _, err := r.e.Put(context.Background(), "t", "c", bad, strings.NewReader("x"), PutOptions{Size: 1}); !errors.Is(err, ErrInvalidName) && !errors.Is(err, ErrKeyTooLong) {
			t.Fatalf("Put(%q): err = %v, want a name error", bad, err)
		}
	}
	// Nothing but the driver's own files exists in any drive directory.
	for _, dir := range r.dirs {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(dir, p)
			seg, _ := filepath.Match("wal-[0-9]*.log", rel)            // the record log
			pack, _ := filepath.Match("packs/pack-[0-9a-f]*.dat", rel) // large record data
			ok := rel == "." || rel == "format.json" || rel == "index.db" || seg || rel == "packs" || pack ||
				rel == "tmp" || rel == "shards" || strings.HasPrefix(rel, "shards/")
			if !ok {
				t.Errorf("unexpected path %s in drive", rel)
			}
			if strings.HasPrefix(rel, "shards/") && d.Type().IsRegular() {
				name := filepath.Base(p)
				if len(name) != 64 || strings.Trim(name, "0123456789abcdef") != "" {
					t.Errorf("shard file %s is not named by a hash", rel)
				}
			}
			return nil
		})
	}
}

func TestConcurrentPutsOneWinner(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	for _, size := range []int{1000, 300_000} {
		key := fmt.Sprintf("contended-%d", size)
		const writers = 8
		bodies := make([][]byte, writers)
		var wg sync.WaitGroup
		for i := range writers {
			bodies[i] = randBytes(uint64(100*size+i), size)
			wg.Go(func() {
				if _, err := r.e.Put(context.Background(), "t", "c", key, bytes.NewReader(bodies[i]), PutOptions{Size: -1}); err != nil {
					t.Errorf("concurrent Put %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		got, err := r.get(key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(bodies, func(b []byte) bool { return bytes.Equal(b, got) }) {
			t.Fatalf("size %d: result is none of the bodies written", size)
		}
		// Every drive agrees on the winner, and the losers' shards are gone.
		var versions []driver.Version
		for j := range 4 {
			f := r.faultyOf(key, j)
			rec, err := f.GetRecord(context.Background(), indexPrefix("t", "c")+key)
			if err != nil {
				t.Fatal(err)
			}
			versions = append(versions, rec.Version)
		}
		if len(slices.Compact(slices.Clone(versions))) != 1 {
			t.Fatalf("drives disagree on the version: %v", versions)
		}
	}
	for _, dir := range r.dirs {
		if files := shardFiles(t, dir); len(files) != 1 {
			t.Fatalf("%s holds %d shard files after contended puts, want 1 (the winner's)", dir, len(files))
		}
	}
}

// TestContendedSmallPutsAllSucceed races many writers of small (inline)
// bodies on one key: each meets newer live inline versions and
// re-versions (latest), and every one must succeed, the key ending with
// one of the bodies. With a few retries in step they did not (CI saw
// "write quorum not reached ... stale version" with 8 writers).
func TestContendedSmallPutsAllSucceed(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	for round := range 10 {
		key := fmt.Sprintf("hot-%d", round)
		const writers = 24
		bodies := make([][]byte, writers)
		var wg sync.WaitGroup
		for i := range writers {
			bodies[i] = randBytes(uint64(1000*round+i), 1000)
			wg.Go(func() {
				if _, err := r.e.Put(t.Context(), "t", "c", key, bytes.NewReader(bodies[i]), PutOptions{Size: -1}); err != nil {
					t.Errorf("round %d: Put %d: %v", round, i, err)
				}
			})
		}
		wg.Wait()
		got, err := r.get(key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(bodies, func(b []byte) bool { return bytes.Equal(b, got) }) {
			t.Fatalf("round %d: result is none of the bodies written", round)
		}
	}
}

func TestWriteQuorum(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10}) // 2+2, write quorum 3
	for _, size := range []int{100, 500_000} {
		key := fmt.Sprintf("q%d", size)
		r.faultyOf(key, 3).SetOffline(true)
		r.put(t, key, randBytes(1, size), -1)
		r.faultyOf(key, 2).SetOffline(true)
		_, err := r.e.Put(context.Background(), "t", "c", key+"-lost", bytes.NewReader(randBytes(2, size)), PutOptions{Size: -1})
		if key+"-lost" != key && r.e.mapOf().PGOf("t", "c", key+"-lost") == r.e.mapOf().PGOf("t", "c", key) && !errors.Is(err, ErrWriteQuorum) {
			t.Fatalf("Put with 2 of 4 drives offline: err = %v, want ErrWriteQuorum", err)
		}
		for _, f := range r.faulty {
			f.SetOffline(false)
		}
	}
	// Deterministic check: take two drives of one key's own set offline.
	key := "quorum"
	r.faultyOf(key, 0).SetOffline(true)
	r.faultyOf(key, 1).SetOffline(true)
	for _, size := range []int{100, 500_000} {
		_, err := r.e.Put(context.Background(), "t", "c", key, bytes.NewReader(randBytes(3, size)), PutOptions{Size: -1})
		if !errors.Is(err, ErrWriteQuorum) {
			t.Fatalf("size %d with 2 of 4 drives offline: err = %v, want ErrWriteQuorum", size, err)
		}
	}
	if err := r.e.Delete(context.Background(), "t", "c", key); !errors.Is(err, ErrWriteQuorum) {
		t.Fatalf("Delete with 2 of 4 drives offline: err = %v, want ErrWriteQuorum", err)
	}
	for _, f := range r.faulty {
		f.SetOffline(false)
	}
	if _, err := r.e.Head(context.Background(), "t", "c", key); !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("Head after refused large Put: %v", err)
	}
}

func TestDeleteAndCopy(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	ctx := context.Background()
	data := randBytes(11, 400_000)
	if _, err := r.e.Put(ctx, "t", "c", "src", bytes.NewReader(data), PutOptions{Size: -1, ContentType: "text/plain", Metadata: map[string]string{"a": "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.e.CreateContainer(ctx, "t", "other"); err != nil {
		t.Fatal(err)
	}
	info, err := r.e.Copy(ctx, "t", "c", "src", "other", "dst", CopyOptions{})
	if err != nil || info.ETag != md5hex(data) {
		t.Fatalf("Copy = %+v, %v", info, err)
	}
	head, err := r.e.Head(ctx, "t", "other", "dst")
	if err != nil || head.ContentType != "text/plain" || head.Metadata["a"] != "1" {
		t.Fatalf("Head of copy = %+v, %v", head, err)
	}
	if _, err := r.e.Copy(ctx, "t", "c", "src", "c", "src", CopyOptions{ReplaceMetadata: true, ContentType: "x/y"}); err != nil {
		t.Fatalf("Copy onto itself: %v", err)
	}
	head, err = r.e.Head(ctx, "t", "c", "src")
	if err != nil || head.ContentType != "x/y" || head.Metadata != nil {
		t.Fatalf("Head after metadata replace = %+v, %v", head, err)
	}
	if got, err := r.get("src", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("data after self-copy: %v", err)
	}
	if err := r.e.Delete(ctx, "t", "c", "src"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.Head(ctx, "t", "c", "src"); !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("Head after Delete: %v", err)
	}
	if err := r.e.Delete(ctx, "t", "c", "never-existed"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if _, err := r.e.Copy(ctx, "t", "c", "src", "c", "x", CopyOptions{}); !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("Copy of a deleted key: %v", err)
	}
	for _, dir := range r.dirs {
		// Only the copy in "other" has shard files left.
		if files := shardFiles(t, dir); len(files) != 1 {
			t.Fatalf("%s holds %d shard files, want 1", dir, len(files))
		}
	}
}

func TestContainers(t *testing.T) {
	r := newRig(t, rigOptions{drives: 1})
	ctx := context.Background()
	if err := r.e.CreateContainer(ctx, "t", "c"); !errors.Is(err, ErrContainerExists) {
		t.Fatalf("second CreateContainer: %v", err)
	}
	if err := r.e.CreateContainer(ctx, "u", "c"); err != nil {
		t.Fatalf("other tenant, same name: %v", err)
	}
	r.put(t, "k", []byte("tenant t"), -1)
	if _, err := r.e.Put(ctx, "u", "c", "k", strings.NewReader("tenant u"), PutOptions{Size: -1}); err != nil {
		t.Fatal(err)
	}
	a, err := r.e.Open(ctx, "u", "c", "k")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.WriteRange(ctx, &buf, 0, a.Info.Size); err != nil || buf.String() != "tenant u" {
		t.Fatalf("tenant u reads %q, %v", buf.String(), err)
	}
	if got, err := r.get("k", 0, -1); err != nil || string(got) != "tenant t" {
		t.Fatalf("tenant t reads %q, %v", got, err)
	}
	if _, err := r.e.Open(ctx, "v", "c", "k"); !errors.Is(err, ErrNoSuchContainer) {
		t.Fatalf("tenant v opens t's container: %v", err)
	}
	if err := r.e.DeleteContainer(ctx, "t", "c"); !errors.Is(err, ErrContainerNotEmpty) {
		t.Fatalf("DeleteContainer non-empty: %v", err)
	}
	if err := r.e.Delete(ctx, "t", "c", "k"); err != nil {
		t.Fatal(err)
	}
	if err := r.e.DeleteContainer(ctx, "t", "c"); err != nil {
		t.Fatalf("DeleteContainer empty: %v", err)
	}
	cs, err := r.e.Containers(ctx, "u")
	if err != nil || len(cs) != 1 || cs[0].Name != "c" {
		t.Fatalf("Containers(u) = %v, %v", cs, err)
	}
	if _, err := r.e.Put(ctx, "t", "c", "k", strings.NewReader("x"), PutOptions{Size: -1}); !errors.Is(err, ErrNoSuchContainer) {
		t.Fatalf("Put into deleted container: %v", err)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := record{
		Version: driver.Version{1, 2, 3}, Deleted: true, Size: 1 << 40, ETag: "abc", ContentType: "a/b",
		Modified: -5, Metadata: map[string]string{"x": "y", "": "z"}, Data: 12, Parity: 4,
		StripeSize: 1 << 20, PG: 255, Shard: 15, Inline: []byte{0, 1, 2}, IsInline: true,
		Parts: []part{{DataID: [16]byte{9}, Size: 5 << 20, ETag: "abc"}, {Size: 1, ETag: ""}},
	}
	b := r.marshal()
	got, err := unmarshalRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*got) != fmt.Sprint(r) {
		t.Fatalf("round trip = %+v, want %+v", *got, r)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if _, err := unmarshalRecord(c); err == nil {
			t.Fatalf("flipped byte %d: no error", i)
		}
	}
	if _, err := unmarshalRecord(b[:len(b)-1]); err == nil {
		t.Fatalf("truncated record: no error")
	}
}

// TestMaxSizeKeepsOldVersion: a body over PutOptions.MaxSize fails before
// any record is written, so the version it would replace stays.
// TestFailedOverwriteKeepsOldVersion: an overwrite that reaches one drive
// of four fails with ErrWriteQuorum and is rolled back: the acknowledged
// version reads back byte for byte, before and after Heal.
func TestFailedOverwriteKeepsOldVersion(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10}) // 2+2
	for _, tc := range []struct {
		name     string
		old, new []byte
	}{
		{"large by inline", randBytes(1, 500_000), []byte("new small")},
		{"large by large", randBytes(2, 500_000), randBytes(3, 400_000)},
		{"inline by inline", randBytes(4, 1000), randBytes(5, 2000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "victim-" + tc.name
			info := r.put(t, key, tc.old, -1)
			for j := 1; j < 4; j++ {
				r.faultyOf(key, j).SetOffline(true)
			}
			_, err := r.e.Put(t.Context(), "t", "c", key, bytes.NewReader(tc.new), PutOptions{Size: -1})
			for j := 1; j < 4; j++ {
				r.faultyOf(key, j).SetOffline(false)
			}
			if !errors.Is(err, ErrWriteQuorum) {
				t.Fatalf("overwrite with 3 of 4 drives offline: err = %v, want ErrWriteQuorum", err)
			}
			check := func(when string) {
				t.Helper()
				got, err := r.get(key, 0, -1)
				if err != nil || !bytes.Equal(got, tc.old) {
					t.Fatalf("%s: Get = %d bytes (old %v, new %v), %v; want the old version", when, len(got), bytes.Equal(got, tc.old), bytes.Equal(got, tc.new), err)
				}
				if h, err := r.e.Head(t.Context(), "t", "c", key); err != nil || h.ETag != info.ETag || h.Version != info.Version {
					t.Fatalf("%s: Head = %+v, %v; want version %v ETag %s", when, h, err, info.Version, info.ETag)
				}
			}
			check("after the failed overwrite")
			// The one drive that took the new record has the old one back
			// (rollback), so it serves the old version with any other.
			raw, err := r.faultyOf(key, 0).GetRecord(t.Context(), indexPrefix("t", "c")+key)
			if err != nil || raw.Version != info.Version {
				t.Fatalf("record on the drive that took the failed overwrite: version %v, %v; want %v rolled back", raw.Version, err, info.Version)
			}
			r.faultyOf(key, 1).SetOffline(true)
			r.faultyOf(key, 2).SetOffline(true)
			got, err := r.get(key, 0, -1)
			r.faultyOf(key, 1).SetOffline(false)
			r.faultyOf(key, 2).SetOffline(false)
			if err != nil || !bytes.Equal(got, tc.old) {
				t.Fatalf("read from drives 0 and 3: equal old %v, %v; want the old version", bytes.Equal(got, tc.old), err)
			}
			if _, err := r.e.Heal(t.Context(), "t", "c", key); err != nil {
				t.Fatalf("Heal: %v", err)
			}
			check("after Heal")
		})
	}
}

func TestMaxSizeKeepsOldVersion(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	old := randBytes(1, 300_000)
	r.put(t, "k", old, -1)
	for _, size := range []int{1000, 500_000} {
		_, err := r.e.Put(context.Background(), "t", "c", "k", bytes.NewReader(randBytes(2, size)), PutOptions{Size: -1, MaxSize: 999})
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Put of %d bytes with MaxSize 999: err = %v, want ErrTooLarge", size, err)
		}
		if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, old) {
			t.Fatalf("old version after a refused Put of %d bytes: %v", size, err)
		}
	}
}
