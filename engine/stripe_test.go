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
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// shardFiles returns the shard files each drive of r holds, by drive, as
// found on disk (not through the engine).
func (r *rig) shardFiles(t testing.TB) [][]string {
	t.Helper()
	out := make([][]string, len(r.dirs))
	for i, dir := range r.dirs {
		root := filepath.Join(dir, "shards")
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				out[i] = append(out[i], path)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return out
}

// drivesWithShards counts the drives holding at least one shard file.
func drivesWithShards(files [][]string) (n, total int) {
	for _, f := range files {
		if len(f) > 0 {
			n++
		}
		total += len(f)
	}
	return n, total
}

// homeRecord returns key's record on slot 0 of its PG.
func (r *rig) homeRecord(t testing.TB, key string) *record {
	t.Helper()
	m := r.e.mapOf()
	drives, _ := r.e.pgDrives(m, m.PGOf("t", "c", key))
	raw, err := drives[0].GetRecord(t.Context(), indexPrefix("t", "c")+key)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := unmarshalRecord(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

const stripeTestStripe = 64 << 10 // a part is stripeChunkStripes of them: 256 KiB, above DefaultInlineMax

func newStripeRig(t testing.TB, width int) *rig {
	return newRig(t, rigOptions{drives: 6, stripeSize: stripeTestStripe, noSync: true,
		policy: placement.Policy{Data: 2, Parity: 1}, width: width})
}

// TestStripedPutGet: a body larger than one part is spread over width
// PGs (shard files on at least 5 of 6 drives, where one PG has 3), reads
// back whole and by ranges across part boundaries; a smaller body, or a
// map of width 1, keeps the single-PG layout (3 drives, format 1).
func TestStripedPutGet(t *testing.T) {
	chunk := stripeChunkStripes * stripeTestStripe
	tests := []struct {
		name      string
		width     int
		size      int
		unknown   bool // Size -1
		striped   bool
		minDrives int
	}{
		{"small", 8, chunk - 100, false, false, 3},
		{"one part exactly", 8, chunk, false, false, 3},
		{"large", 8, 10*chunk + 1234, false, true, 5},
		{"parts exactly", 8, 9 * chunk, false, true, 5},
		{"unknown size", 8, 10*chunk + 7, true, true, 5},
		{"width 1", 1, 10*chunk + 1234, false, false, 3},
		{"width 2", 2, 10*chunk + 1234, false, true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newStripeRig(t, tt.width)
			data := randBytes(uint64(tt.size), tt.size)
			size := int64(tt.size)
			if tt.unknown {
				size = -1
			}
			info := r.put(t, "k", data, size)
			if info.ETag != md5hex(data) {
				t.Fatalf("ETag %s, want %s", info.ETag, md5hex(data))
			}
			rec := r.homeRecord(t, "k")
			if rec.striped() != tt.striped {
				t.Fatalf("record width %d, striped %v, want striped %v", rec.Width, rec.striped(), tt.striped)
			}
			if tt.striped && rec.Width != tt.width {
				t.Fatalf("record width %d, want %d", rec.Width, tt.width)
			}
			files := r.shardFiles(t)
			n, total := drivesWithShards(files)
			if !tt.striped && n != 3 {
				t.Fatalf("unstriped: shard files on %d drives, want 3", n)
			}
			if n < tt.minDrives {
				t.Fatalf("shard files on %d drives, want at least %d", n, tt.minDrives)
			}
			// 3 per part; a lane dropped as too slow (a loaded machine)
			// leaves a part on a write quorum of 2, for the healer.
			if total < 2*len(rec.Parts) || total > 3*len(rec.Parts) {
				t.Fatalf("%d shard files, want 2 to 3 per part, %d parts", total, len(rec.Parts))
			}
			got, err := r.get("k", 0, -1)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("get: %d bytes, equal %v, err %v", len(got), bytes.Equal(got, data), err)
			}
			for _, rg := range [][2]int{{0, 1}, {chunk - 10, 20}, {chunk, chunk}, {3*chunk - 1, 2*chunk + 2}, {tt.size - 5, 5}, {7, tt.size - 7}} {
				off, n := rg[0], rg[1]
				if off < 0 || off+n > tt.size {
					continue
				}
				got, err := r.get("k", int64(off), int64(n))
				if err != nil || !bytes.Equal(got, data[off:off+n]) {
					t.Fatalf("range %d+%d: %d bytes, err %v", off, n, len(got), err)
				}
			}
			// A copy is striped too, and reads back.
			if _, err := r.e.Copy(t.Context(), "t", "c", "k", "c", "k2", CopyOptions{}); err != nil {
				t.Fatal(err)
			}
			if got, err := r.get("k2", 0, -1); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("copy: %d bytes, err %v", len(got), err)
			}
			// Deleting both (and so replacing their records) removes
			// every part's shard files, wherever they are.
			for _, k := range []string{"k", "k2"} {
				if err := r.e.Delete(t.Context(), "t", "c", k); err != nil {
					t.Fatal(err)
				}
			}
			r.e.WaitBackground()
			if _, total := drivesWithShards(r.shardFiles(t)); total != 0 {
				t.Fatalf("%d shard files left after delete", total)
			}
		})
	}
}

// TestStripedOverwrite: overwriting a striped artifact removes the older
// version's parts from every PG they were in.
func TestStripedOverwrite(t *testing.T) {
	r := newStripeRig(t, 8)
	size := 6*stripeChunkStripes*stripeTestStripe + 3
	r.put(t, "k", randBytes(1, size), int64(size))
	data := randBytes(2, size)
	r.put(t, "k", data, int64(size))
	r.e.WaitBackground()
	rec := r.homeRecord(t, "k")
	if _, total := drivesWithShards(r.shardFiles(t)); total < 2*len(rec.Parts) || total > 3*len(rec.Parts) {
		t.Fatalf("%d shard files after overwrite, want 2 to 3 for each of %d parts", total, len(rec.Parts))
	}
	if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: err %v", err)
	}
}

// TestStripedHeal: a shard file lost on a drive outside the key's own
// PG (a part striped elsewhere) is read around and rebuilt by Heal on
// that drive.
func TestStripedHeal(t *testing.T) {
	r := newStripeRig(t, 8)
	size := 10*stripeChunkStripes*stripeTestStripe + 99
	data := randBytes(3, size)
	r.put(t, "k", data, int64(size))
	m := r.e.mapOf()
	home := m.Set(m.PGOf("t", "c", "k"))
	files := r.shardFiles(t)
	lost := ""
	for i, f := range files {
		if len(f) > 0 && !slices.Contains(home, r.ids[i]) {
			lost = f[0]
			break
		}
	}
	if lost == "" {
		t.Fatal("no shard file outside the key's own PG")
	}
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}
	got, err := r.get("k", 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("degraded get: err %v", err)
	}
	if _, err := r.e.Heal(t.Context(), "t", "c", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lost); err != nil {
		t.Fatalf("lost shard not rebuilt: %v", err)
	}
	// The rebuilt file serves: with another drive of that part's set
	// gone, the part still decodes only if it is right.
	got, err = r.get("k", 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get after heal: err %v", err)
	}
}

// TestStripedRecordFormat: a striped record round-trips in format 2; an
// unstriped one is still written, byte for byte, in format 1.
func TestStripedRecordFormat(t *testing.T) {
	plain := record{Size: 5, ETag: "x", Data: 2, Parity: 1, StripeSize: 4096, PG: 7, Parts: []part{{Size: 5}}}
	if b := plain.marshal(); b[1] != 1 {
		t.Fatalf("unstriped record written in format %d", b[1])
	}
	st := plain
	st.Seed, st.Width, st.PGCount, st.Layout = 42, 8, 256, 99
	b := st.marshal()
	if b[1] != 2 {
		t.Fatalf("striped record written in format %d", b[1])
	}
	got, err := unmarshalRecord(b)
	if err != nil || got.Seed != 42 || got.Width != 8 || got.PGCount != 256 || got.Layout != 99 {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// A width past the maximum is refused.
	st.Width = maxWidth + 1
	if _, err := unmarshalRecord(st.marshal()); err == nil {
		t.Fatal("width 17 decoded")
	}
}

// TestStripedMigrate: a map change that keeps the key's own PG's drive
// set but moves the drives of the PGs its parts are striped over (here:
// the same drives in other slots, so reading the old files through the
// new map would decode the wrong shards) leaves the artifact readable
// from the older map, counts it as residue, and MigrateAll moves every
// part into the new map's sets; the older parts' shard files are removed
// and, once the history is dropped, it reads back from the new map alone.
func TestStripedMigrate(t *testing.T) {
	r := newMigRig(t)
	pol := placement.Policy{Data: 2, Parity: 1}
	m1 := r.newMap(t, 6, pol, 16, 1)
	m1.Width = 8
	home := m1.PGOf("t", "c", "big")
	m2 := &placement.Map{Epoch: 2, Policy: pol, Drives: m1.Drives, Width: 8}
	for pg := range m1.PGCount() {
		set := slices.Clone(m1.Set(uint32(pg)))
		if uint32(pg) != home {
			set = append(set[1:], set[0]) // rotated: same drives, other slots
		}
		m2.PGs = append(m2.PGs, set)
	}
	if err := m2.Validate(); err != nil {
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{m1})
	chunk := stripeChunkStripes * 64 << 10
	data := randBytes(9, 10*chunk+5)
	if _, err := r.e.Put(t.Context(), "t", "c", "big", bytes.NewReader(data), PutOptions{Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	files := func() int {
		n := 0
		for _, id := range r.ids {
			n += len(shardFiles(t, r.dirs[id]))
		}
		return n
	}
	read := func(e *Engine) []byte {
		t.Helper()
		a, err := e.Open(t.Context(), "t", "c", "big")
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		var buf bytes.Buffer
		if err := a.WriteRange(t.Context(), &buf, 0, a.Info.Size); err != nil {
			t.Fatalf("read: %v", err)
		}
		return buf.Bytes()
	}
	r.useChain([]*placement.Map{m1, m2})
	if got := read(r.e); !bytes.Equal(got, data) {
		t.Fatal("read under the new map (the older one serving it) differs")
	}
	if n, err := r.e.Residue(t.Context(), m1); n == 0 || err != nil {
		t.Fatalf("Residue(m1) = %d, %v; want the striped record counted", n, err)
	}
	sum := migrateAll(t, r.e, 100)
	if sum.Moved != 1 || sum.Failed != 0 {
		t.Fatalf("MigrateAll: %+v, want 1 moved", sum)
	}
	r.e.WaitBackground()
	checkResidue(t, r.e, []*placement.Map{m1})
	r.useChain([]*placement.Map{m2})
	for _, e := range []*Engine{r.e, r.plain} {
		if got := read(e); !bytes.Equal(got, data) {
			t.Fatal("read after migration differs")
		}
	}
	raw, err := r.topo.drives[m2.Set(home)[0]].GetRecord(t.Context(), indexPrefix("t", "c")+"big")
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := unmarshalRecord(raw.Data); err != nil || rec.Width != 8 || !stripedIn(rec, m2) {
		t.Fatalf("migrated record %+v, %v: want striped over m2's PGs", rec, err)
	}
	if n := files(); n < 2*11 || n > 3*11 {
		t.Fatalf("%d shard files after migration, want 2 to 3 for each of 11 parts", n)
	}
}

// TestStripedScrub: a flipped byte in a shard file of a part striped to
// a drive outside the key's own PG (whose records are elsewhere) is found
// by the scrubber and rebuilt; a pass verifies every part's shards once.
func TestStripedScrub(t *testing.T) {
	r := newStripeRig(t, 8)
	size := 10*stripeChunkStripes*stripeTestStripe + 99
	data := randBytes(4, size)
	r.put(t, "k", data, int64(size))
	m := r.e.mapOf()
	home := m.Set(m.PGOf("t", "c", "k"))
	victim := ""
	for i, f := range r.shardFiles(t) {
		if len(f) > 0 && !slices.Contains(home, r.ids[i]) {
			victim = f[0]
			break
		}
	}
	if victim == "" {
		t.Fatal("no shard file outside the key's own PG")
	}
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(orig)
	bad[len(bad)/2] ^= 0x40
	if err := os.WriteFile(victim, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	drives := map[placement.DriveID]driver.Driver{}
	for i, id := range r.ids {
		drives[id] = r.faulty[i]
	}
	s, err := r.e.NewScrubber(ScrubConfig{Drives: drives, Period: 2 * time.Second, Rate: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if got, err := os.ReadFile(victim); err == nil && bytes.Equal(got, orig) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if got, err := os.ReadFile(victim); err != nil || !bytes.Equal(got, orig) {
		t.Fatalf("striped shard not repaired by the scrubber (status %+v)", s.Status())
	}
	var corrupt uint64
	for _, st := range s.Status() {
		corrupt += st.Corrupt
	}
	if corrupt == 0 {
		t.Fatalf("scrubber counted no corrupt shard: %+v", s.Status())
	}
}

// TestStripedVersions: with versioning, striped versions of a key (one
// first written unversioned, adopted as a version) read back each, and
// deleting them for good removes every part's shard files.
func TestStripedVersions(t *testing.T) {
	r := newStripeRig(t, 8)
	size := 5*stripeChunkStripes*stripeTestStripe + 11
	v0 := randBytes(20, size)
	r.put(t, "k", v0, int64(size)) // unversioned: adopted as the null version
	v1 := randBytes(21, size)
	i1 := r.vput(t, "k", v1, VersioningEnabled)
	v2 := randBytes(22, size)
	i2 := r.vput(t, "k", v2, VersioningEnabled)
	for _, c := range []struct {
		vid  string
		want []byte
	}{{"", v2}, {i2.VersionID, v2}, {i1.VersionID, v1}, {"null", v0}} {
		if got, err := r.vget(t, "k", c.vid); err != nil || !bytes.Equal(got, c.want) {
			t.Fatalf("version %q: %d bytes, err %v", c.vid, len(got), err)
		}
	}
	for _, vid := range []string{"null", i1.VersionID, i2.VersionID} {
		if _, err := r.e.DeleteVersion(t.Context(), "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled, VersionID: vid}); err != nil {
			t.Fatalf("delete version %s: %v", vid, err)
		}
	}
	r.e.WaitBackground()
	if _, total := drivesWithShards(r.shardFiles(t)); total != 0 {
		t.Fatalf("%d shard files left after deleting every version", total)
	}
}

// TestStripedMemory streams 256 MiB through a striped Put and Get and
// checks that the live heap stays bounded by the window (a lone stream's
// burst of parts and their encoders or decoders), whatever the size.
func TestStripedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 384 MiB")
	}
	const size = 256 << 20
	r := newRig(t, rigOptions{drives: 6, noSync: true, policy: placement.Policy{Data: 2, Parity: 1}, width: 8}) // 1 MiB stripes
	stop := heapPeak()
	info, err := r.e.Put(t.Context(), "t", "c", "huge", &patternReader{n: size, state: 88172645463325252}, PutOptions{Size: size})
	putPeak := stop()
	if err != nil {
		t.Fatal(err)
	}
	if rec := r.homeRecord(t, "huge"); !rec.striped() || len(rec.Parts) != size/(stripeChunkStripes<<20) {
		t.Fatalf("record width %d with %d parts, want striped in %d", rec.Width, len(rec.Parts), size/(stripeChunkStripes<<20))
	}
	a, err := r.e.Open(t.Context(), "t", "c", "huge")
	if err != nil {
		t.Fatal(err)
	}
	h := md5.New()
	stop = heapPeak()
	err = a.WriteRange(t.Context(), h, 0, size)
	getPeak := stop()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != info.ETag {
		t.Fatalf("Get: md5 %s, want %s", got, info.ETag)
	}
	t.Logf("256 MiB striped Put: peak live heap growth %.1f MiB (window %d parts of %d MiB); Get: %.1f MiB (window %d)",
		float64(putPeak)/(1<<20), stripeWriteBurst, stripeChunkStripes, float64(getPeak)/(1<<20), stripeReadBurst)
	// The window's parts, their coders, uncollected garbage: about twice
	// the window's bytes.
	part := uint64(stripeChunkStripes) << 20
	if putLimit := 2 * uint64(stripeWriteBurst) * part; putPeak > putLimit {
		t.Fatalf("Put: heap grew by %d bytes, want under %d", putPeak, putLimit)
	}
	if getLimit := 3 * uint64(stripeReadBurst) * part; getPeak > getLimit {
		t.Fatalf("Get: heap grew by %d bytes, want under %d", getPeak, getLimit)
	}
}

// TestStripedPutFails: a striped Put that fails (a body shorter or longer
// than its length, a wrong Content-MD5, parts' drive sets short of a
// write quorum) stores nothing: no version, no shard file on any drive.
func TestStripedPutFails(t *testing.T) {
	size := 10*stripeChunkStripes*stripeTestStripe + 3
	data := randBytes(30, size)
	tests := []struct {
		name    string
		body    []byte
		opts    PutOptions
		offline int // drives set offline first
		want    error
	}{
		{"short body", data[:size/2], PutOptions{Size: int64(size)}, 0, ErrIncompleteBody},
		{"long body", data, PutOptions{Size: int64(size - 1)}, 0, ErrIncompleteBody},
		{"too large", data, PutOptions{Size: -1, MaxSize: int64(size / 2)}, 0, ErrTooLarge},
		{"bad digest", data, PutOptions{Size: int64(size), MD5: make([]byte, 16)}, 0, ErrBadDigest},
		{"drives offline", data, PutOptions{Size: int64(size)}, 4, ErrWriteQuorum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newStripeRig(t, 8)
			for _, f := range r.faulty[:tt.offline] {
				f.SetOffline(true)
			}
			_, err := r.e.Put(t.Context(), "t", "c", "k", bytes.NewReader(tt.body), tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Put: %v, want %v", err, tt.want)
			}
			for _, f := range r.faulty {
				f.SetOffline(false)
			}
			r.e.WaitBackground()
			if _, err := r.e.Open(t.Context(), "t", "c", "k"); !errors.Is(err, ErrNoSuchArtifact) {
				t.Fatalf("Open after a failed put: %v, want ErrNoSuchArtifact", err)
			}
			if _, total := drivesWithShards(r.shardFiles(t)); total != 0 {
				t.Fatalf("%d shard files left by a failed put", total)
			}
			if n := len(r.e.parts); n != 0 {
				t.Fatalf("a failed put kept %d parts of the shared budget", n)
			}
		})
	}
}

// budgetProbe reads or takes bytes and notes the most parts of e's shared
// budget taken at any of its calls: a striped request's burst shows while
// it reads its body or writes its output.
type budgetProbe struct {
	e    *Engine
	r    io.Reader
	most int
}

func (p *budgetProbe) Read(b []byte) (int, error) {
	p.most = max(p.most, len(p.e.parts))
	return p.r.Read(b)
}

func (p *budgetProbe) Write(b []byte) (int, error) {
	p.most = max(p.most, len(p.e.parts))
	return len(b), nil
}

// TestStripedBurst: a lone striped Put or Get takes its burst from the
// engine's shared budget of extra parts and gives it back; with the budget
// spent by others it runs on its own window, and takes none.
func TestStripedBurst(t *testing.T) {
	size := 30*stripeChunkStripes*stripeTestStripe + 5
	data := randBytes(31, size)
	for _, tt := range []struct {
		name             string
		spent            int // parts of the budget others hold
		wantPut, wantGet int // parts of the budget held during the Put, the Get
	}{
		{"alone", 0, stripeWriteBurst - stripeWriteAhead, stripeReadBurst - stripeReadAhead},
		{"budget nearly spent", stripeBudgetParts - 1, stripeBudgetParts, stripeBudgetParts},
		{"budget spent", stripeBudgetParts, stripeBudgetParts, stripeBudgetParts},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newStripeRig(t, 8)
			if got := r.e.parts.take(tt.spent); got != tt.spent {
				t.Fatalf("took %d parts of the budget, want %d", got, tt.spent)
			}
			in := &budgetProbe{e: r.e, r: bytes.NewReader(data)}
			info, err := r.e.Put(t.Context(), "t", "c", "k", in, PutOptions{Size: int64(size)})
			if err != nil {
				t.Fatal(err)
			}
			a, err := r.e.Open(t.Context(), "t", "c", "k")
			if err != nil {
				t.Fatal(err)
			}
			h := md5.New()
			out := &budgetProbe{e: r.e}
			if err := a.WriteRange(t.Context(), io.MultiWriter(h, out), 0, int64(size)); err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != info.ETag {
				t.Fatalf("read back md5 %s, want %s", got, info.ETag)
			}
			if in.most != tt.wantPut || out.most != tt.wantGet {
				t.Fatalf("budget held during the Put %d, the Get %d; want %d and %d", in.most, out.most, tt.wantPut, tt.wantGet)
			}
			if n := len(r.e.parts); n != tt.spent {
				t.Fatalf("budget held after: %d parts, want the %d others hold", n, tt.spent)
			}
		})
	}
}

// TestStripedRangeReadsOnlyItsParts: with every shard file of the parts
// after the first removed, a range inside the first part still reads (it
// opens no other part) and one reaching the second fails with
// ErrReadQuorum rather than return bytes it could not verify.
func TestStripedRangeReadsOnlyItsParts(t *testing.T) {
	r := newStripeRig(t, 8)
	chunk := stripeChunkStripes * stripeTestStripe
	data := randBytes(40, 6*chunk)
	r.put(t, "k", data, int64(len(data)))
	rec := r.homeRecord(t, "k")
	gone := map[string]bool{}
	for _, p := range rec.Parts[1:] {
		gone[shardName("t", "c", "k", p.DataID)] = true
	}
	removed := 0
	for _, files := range r.shardFiles(t) {
		for _, f := range files {
			if gone[filepath.Base(f)] {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
				removed++
			}
		}
	}
	if removed < 2*(len(rec.Parts)-1) {
		t.Fatalf("removed %d shard files, want at least %d", removed, 2*(len(rec.Parts)-1))
	}
	if got, err := r.get("k", 10, int64(chunk-10)); err != nil || !bytes.Equal(got, data[10:chunk]) {
		t.Fatalf("range inside the first part: %d bytes, %v", len(got), err)
	}
	if _, err := r.get("k", int64(chunk-10), 20); !errors.Is(err, ErrReadQuorum) {
		t.Fatalf("range into the second part: %v, want ErrReadQuorum", err)
	}
}

// TestStripedHybrid: a striped artifact of a hybrid container keeps every
// part's data shards on local drives and its parity shards on the remote
// ones, reads back, and leaves no shard file anywhere once deleted (the
// parts' PGs are found in the container's layout, not the cluster map's).
func TestStripedHybrid(t *testing.T) {
	r := newRig(t, rigOptions{drives: 8, remote: 2, stripeSize: stripeTestStripe, noSync: true, width: 4, storage: PolicyHybrid})
	m := r.e.mapFor("t", "c")
	if m.Layout != placement.LayoutHybrid || m.Policy.Parity != 2 {
		t.Fatalf("layout %q policy %s, want hybrid with 2 parity shards", m.Layout, m.Policy)
	}
	data := randBytes(7, 3<<20)
	r.put(t, "big", data, int64(len(data)))
	if got, err := r.get("big", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), not the %d written", len(got), err, len(data))
	}
	files := r.shardFiles(t)
	pgs := map[string]bool{}
	remote := 0
	for i, f := range files {
		if i >= 6 {
			remote += len(f)
		}
		for _, path := range f {
			pgs[filepath.Base(filepath.Dir(filepath.Dir(path)))] = true
		}
	}
	_, total := drivesWithShards(files)
	if len(pgs) < 2 {
		t.Fatalf("shard files in %d PGs, want the artifact striped over several", len(pgs))
	}
	if total == 0 || remote*3 != total { // 4+2: a third of every part's shards are parity
		t.Fatalf("%d of %d shard files on the remote drives, want a third (the parity shards)", remote, total)
	}
	if err := r.e.Delete(t.Context(), "t", "c", "big"); err != nil {
		t.Fatal(err)
	}
	if _, total := drivesWithShards(r.shardFiles(t)); total != 0 {
		t.Fatalf("%d shard files left after the delete", total)
	}
}

// TestStripedPolicyChangeCleans: a set-erasure change (another k+m over
// the same drives) moves striped artifacts, and the older layout's part
// shard files go with them, in both directions, however many of the
// record's own drives stay in its new set (probe F1 of session 7: with
// 4+2 on 6 drives every drive is in every set, so the parts of the
// replaced records were never visited and stayed on disk).
func TestStripedPolicyChangeCleans(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to placement.Policy
	}{
		{"4+2 to 2+1", placement.Policy{Data: 4, Parity: 2}, placement.Policy{Data: 2, Parity: 1}},
		{"2+1 to 4+2", placement.Policy{Data: 2, Parity: 1}, placement.Policy{Data: 4, Parity: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newMigRig(t)
			// Through a fence as cluster's: a mutation planned under a map
			// in which its PG's set differs from the current one is refused.
			fenced, err := New(Config{Topology: fencedTopo{r.topo}, Containers: &MemContainers{}, StripeSize: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			if err := fenced.CreateContainer(t.Context(), "t", "c"); err != nil {
				t.Fatal(err)
			}
			r.e = fenced
			m1 := r.newMap(t, 6, tc.from, 16, 1)
			m1.Width = 8
			m2 := r.newMap(t, 6, tc.to, 16, 2)
			m2.Width = 8
			r.useChain([]*placement.Map{m1})
			chunk := stripeChunkStripes * 64 << 10
			objects := map[string][]byte{}
			for i := range 3 {
				key := fmt.Sprintf("big%d", i)
				objects[key] = randBytes(uint64(20+i), 6*chunk+1000*i+7)
				if _, err := r.e.Put(t.Context(), "t", "c", key, bytes.NewReader(objects[key]), PutOptions{Size: int64(len(objects[key]))}); err != nil {
					t.Fatal(err)
				}
			}
			files := func() int {
				n := 0
				for _, id := range r.ids {
					n += len(shardFiles(t, r.dirs[id]))
				}
				return n
			}
			if n, want := files(), 3*7*tc.from.SetSize(); n != want {
				t.Fatalf("%d shard files before the change, want %d", n, want)
			}
			r.useChain([]*placement.Map{m1, m2})
			sum := migrateAll(t, r.e, 100)
			if sum.Moved != 3 || sum.Failed != 0 {
				t.Fatalf("MigrateAll: %+v, want 3 moved", sum)
			}
			r.e.WaitBackground()
			checkResidue(t, r.e, []*placement.Map{m1})
			if again := migrateAll(t, r.e, 100); again.Failed != 0 {
				t.Fatalf("a second pass: %+v, want nothing failed", again)
			}
			r.useChain([]*placement.Map{m2})
			for key, data := range objects {
				a, err := r.e.Open(t.Context(), "t", "c", key)
				if err != nil {
					t.Fatalf("open %s: %v", key, err)
				}
				var buf bytes.Buffer
				if err := a.WriteRange(t.Context(), &buf, 0, a.Info.Size); err != nil || !bytes.Equal(buf.Bytes(), data) {
					t.Fatalf("read %s after the change: %v, equal %v", key, err, bytes.Equal(buf.Bytes(), data))
				}
			}
			if n, want := files(), 3*7*tc.to.SetSize(); n != want {
				t.Fatalf("%d shard files after the change, want %d (the older layout's parts left behind)", n, want)
			}
			for key := range objects {
				if err := r.e.Delete(t.Context(), "t", "c", key); err != nil {
					t.Fatal(err)
				}
			}
			r.e.WaitBackground()
			if n := files(); n != 0 {
				t.Fatalf("%d shard files after deleting every object, want 0", n)
			}
		})
	}
}

// fencedTopo resolves drives for a map as cluster's Topology does with
// its Fence: a mutation planned under a map m, for PG pg, is refused
// (driver.ErrOffline) when pg's drive set in m differs from its set in
// the current map.
type fencedTopo struct{ *histTopo }

func (f fencedTopo) DriveIn(m *placement.Map, pg uint32, id placement.DriveID) (driver.Driver, error) {
	d, err := f.Drive(id)
	if err != nil {
		return nil, err
	}
	return fencedDrive{Driver: d, stale: func() bool {
		cur := f.Map()
		return cur != nil && cur.Epoch != m.Epoch && (int(pg) >= cur.PGCount() || !slices.Equal(cur.Set(pg), m.Set(pg)))
	}}, nil
}

type fencedDrive struct {
	driver.Driver
	stale func() bool
}

var errFencedTest = fmt.Errorf("%w: stale map epoch (test fence)", driver.ErrOffline)

func (d fencedDrive) CreateShard(ctx context.Context, s driver.Shard) (driver.ShardWriter, error) {
	if d.stale() {
		return nil, errFencedTest
	}
	return d.Driver.CreateShard(ctx, s)
}

func (d fencedDrive) DeleteShard(ctx context.Context, s driver.Shard) error {
	if d.stale() {
		return errFencedTest
	}
	return d.Driver.DeleteShard(ctx, s)
}

func (d fencedDrive) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if d.stale() {
		return driver.Record{}, false, errFencedTest
	}
	return d.Driver.PutRecord(ctx, r)
}

func (d fencedDrive) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	if d.stale() {
		return errFencedTest
	}
	return d.Driver.DeleteRecord(ctx, key, v)
}

// TestStripedPutMissedDriveQueuesHeal: a striped Put acknowledged with a
// part's shard missing on one drive of its set (the write quorum took it)
// queues the key for healing at once, and the heal restores every shard
// (probe H2 of session 7: the key's records were on every drive, so
// nothing but a read or the monthly scrub would ever find the gap, and
// losing a node meanwhile made the artifact unreadable). A Put that missed
// nothing queues nothing.
func TestStripedPutMissedDriveQueuesHeal(t *testing.T) {
	r := newStripeRig(t, 8)
	size := 10*stripeChunkStripes*stripeTestStripe + 99
	r.put(t, "whole", randBytes(5, size), int64(size))
	if due := r.e.dueHeals(time.Now().Add(time.Hour)); len(due) != 0 {
		t.Fatalf("a Put that missed nothing queued %v", due)
	}
	_, full := drivesWithShards(r.shardFiles(t))
	m := r.e.mapOf()
	home := m.Set(m.PGOf("t", "c", "k"))
	bad := -1
	for i, id := range r.ids {
		if !slices.Contains(home, id) {
			bad = i
			break
		}
	}
	if bad < 0 {
		t.Fatal("every drive is in the key's own PG")
	}
	r.faulty[bad].SetFailWritesAfter(0)
	data := randBytes(6, size)
	r.put(t, "k", data, int64(size))
	r.faulty[bad].SetFailWritesAfter(-1)
	_, total := drivesWithShards(r.shardFiles(t))
	if total >= 2*full {
		t.Fatalf("%d shard files, want fewer than %d: the fault did not cost the put a shard", total, 2*full)
	}
	due := r.e.dueHeals(time.Now().Add(time.Hour))
	if !slices.Contains(due, HealItem{"t", "c", "k"}) {
		t.Fatalf("heal queue %v, want the degraded key queued", due)
	}
	if _, err := r.e.Heal(t.Context(), "t", "c", "k"); err != nil {
		t.Fatal(err)
	}
	if _, total := drivesWithShards(r.shardFiles(t)); total != 2*full {
		t.Fatalf("%d shard files after the heal, want %d", total, 2*full)
	}
	if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after heal: %v", err)
	}
}
