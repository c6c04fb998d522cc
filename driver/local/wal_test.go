package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// setFlush lowers the flush thresholds for the test, so that flushes run
// while it works.
func setFlush(t *testing.T, ops, bytes int) {
	oldOps, oldBytes := flushOps, flushBytes
	flushOps, flushBytes = ops, bytes
	t.Cleanup(func() { flushOps, flushBytes = oldOps, oldBytes })
}

// flushHeld writes what d's record log holds into index.db and waits for
// the flush to end.
func flushHeld(t testing.TB, d *Driver) {
	t.Helper()
	d.flushIdle()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		d.commit.memMu.Lock()
		n := d.commit.mem.len() + d.commit.flushing.len()
		d.commit.memMu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("record log still holds %d records 10 s after a flush began", n)
		}
	}
}

// crash closes d's files as a killed process would leave them: nothing
// held in memory is flushed into index.db.
func crash(t *testing.T, d *Driver) {
	t.Helper()
	unregisterTrim(d)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed.Store(true)
	d.commit.waitFlush() // a flush under way is not interrupted; it may or may not end first
	d.commit.log.close()
	d.commit.packs.close()
	if err := d.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// stamp returns a version newer than every earlier stamp, across processes.
var stampSeq atomic.Uint64

func stamp() driver.Version {
	var v driver.Version
	binary.BigEndian.PutUint64(v[:], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(v[8:], stampSeq.Add(1))
	return v
}

// TestRecordLogReplaysAfterCrash: records acknowledged but held only in
// the log (no flush since) are there after the drive is reopened without a
// clean close, deletes included; a torn frame at the log's end is ignored.
func TestRecordLogReplaysAfterCrash(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	d, err := Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range 40 {
		k := fmt.Sprintf("k%02d", i%25)
		v := fmt.Sprintf("value %d", i)
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: []byte(v)}); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	for i := range 5 {
		k := fmt.Sprintf("k%02d", i*3)
		if err := d.DeleteRecord(ctx, k, driver.Version{}); err != nil {
			t.Fatal(err)
		}
		delete(want, k)
	}
	if d.commit.mem.len() == 0 {
		t.Fatal("nothing held in the log: the test needs an unflushed log")
	}
	crash(t, d)
	// A torn frame at the end: the write of an unacknowledged batch.
	segs, err := listSegments(dir)
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, segs[0]), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{1, 2, 3, 4, 200, 0, 0, 0, 9, 9}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	d, err = Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	checkRecords(t, d, want)
	if d.commit.mem.len() != 0 {
		t.Fatalf("%d records held in memory after the replay, want them in index.db", d.commit.mem.len())
	}
	// Writes go on after the replay, and a clean close leaves the log empty.
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "after", Version: stamp(), Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	want["after"] = "x"
	checkRecords(t, d, want)
}

// TestRecordLogIdleFlush: a drive that goes quiet writes what its log
// holds into index.db: nothing stays in memory, and the log takes no
// space.
func TestRecordLogIdleFlush(t *testing.T) {
	old := flushIdle
	flushIdle = 50 * time.Millisecond
	t.Cleanup(func() { flushIdle = old })
	ctx := t.Context()
	dir := t.TempDir()
	d, err := Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := range 20 {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("k%02d", i), Version: stamp(), Data: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	held := func() int {
		d.commit.memMu.RLock()
		defer d.commit.memMu.RUnlock()
		return d.commit.mem.len() + d.commit.flushing.len()
	}
	if held() == 0 {
		t.Fatal("nothing held after the puts")
	}
	deadline := time.Now().Add(10 * time.Second)
	for held() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := held(); n > 0 {
		t.Fatalf("%d records still held in memory after the drive went quiet", n)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		segs, err := listSegments(dir)
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, s := range segs {
			if fi, err := os.Stat(filepath.Join(dir, s)); err == nil {
				size += fi.Size()
			}
		}
		if size == 0 && len(segs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log after an idle flush: %d segments, %d bytes; want one, empty", len(segs), size)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := map[string]string{}
	for i := range 20 {
		want[fmt.Sprintf("k%02d", i)] = "v"
	}
	checkRecords(t, d, want)
}

// TestRecordLogStopsAtCorruptFrame: replay applies frames in order and
// stops at the first corrupt one; nothing after it is applied (it was
// never acknowledged: frames are acknowledged in order).
func TestRecordLogStopsAtCorruptFrame(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	d, err := Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for i := range 5 {
		offs = append(offs, d.commit.log.off)
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("k%d", i), Version: stamp(), Data: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	crash(t, d)
	segs, _ := listSegments(dir)
	path := filepath.Join(dir, segs[len(segs)-1])
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[offs[2]+walHeader] ^= 0xff // frame 3's body
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err = Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, d, map[string]string{"k0": "v", "k1": "v"})

	// A frame out of sequence (one missing before it) is not applied.
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k5", Version: stamp(), Data: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	w, seq := d.commit.log, d.commit.seq
	crash(t, d)
	f, err := os.OpenFile(filepath.Join(dir, w.segs[len(w.segs)-1]), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	gap := &wal{dir: dir, noSync: true, f: f, off: w.off, size: w.size}
	if err := gap.append(seq+2, []mutation{{key: "k6", val: append(make([]byte, driver.VersionSize), 'v')}}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d, err = Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	checkRecords(t, d, map[string]string{"k0": "v", "k1": "v", "k5": "v"})
}

// checkRecords checks that d holds exactly want (key → data), through
// GetRecord and ListRecords.
func checkRecords(t *testing.T, d *Driver, want map[string]string) {
	t.Helper()
	ctx := t.Context()
	for k, v := range want {
		r, err := d.GetRecord(ctx, k)
		if err != nil || string(r.Data) != v {
			t.Fatalf("GetRecord(%q) = %q, %v; want %q", k, r.Data, err, v)
		}
	}
	got, err := d.ListRecords(ctx, "", "", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range got {
		keys = append(keys, r.Key)
		if string(r.Data) != want[r.Key] {
			t.Fatalf("listed %q = %q, want %q", r.Key, r.Data, want[r.Key])
		}
	}
	if w := slices.Sorted(maps.Keys(want)); !slices.Equal(keys, w) {
		t.Fatalf("listed %q, want %q", keys, w)
	}
}

// TestRecordLogMatchesModel: random puts, stale puts, deletes and
// conditional deletes, with flushes running among them (low thresholds)
// and the drive sometimes reopened: GetRecord and ListRecords (random
// prefix, after and limit) always agree with a map of what was
// acknowledged, as do PutRecord's and DeleteRecord's answers.
func TestRecordLogMatchesModel(t *testing.T) {
	setFlush(t, 7, 1<<10)
	ctx := t.Context()
	dir := t.TempDir()
	open := func() *Driver {
		d, err := Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c", NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := open()
	defer func() { d.Close() }()
	type rec struct {
		v    driver.Version
		data string
	}
	model := map[string]rec{}
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a/1", "a/2", "a/3", "a/30", "a/4", "b/1", "b/2", "c", "c/1/x", "d/9"}
	for i := range 3000 {
		k := keys[rng.IntN(len(keys))]
		switch op := rng.IntN(10); {
		case op < 5:
			v := stamp()
			if rng.IntN(8) == 0 && model[k].v != (driver.Version{}) {
				v = driver.Version{} // older than what is stored: stale
			}
			data := fmt.Sprintf("%d-%d", i, rng.IntN(1000))
			prev, ok, err := d.PutRecord(ctx, driver.Record{Key: k, Version: v, Data: []byte(data)})
			old, had := model[k]
			switch {
			case had && old.v.Compare(v) > 0:
				if !errors.Is(err, driver.ErrStale) {
					t.Fatalf("op %d: stale put of %q: %v, want ErrStale", i, k, err)
				}
			case err != nil:
				t.Fatalf("op %d: put %q: %v", i, k, err)
			default:
				if ok != had || had && (prev.Version != old.v || string(prev.Data) != old.data) {
					t.Fatalf("op %d: put %q replaced %v %q (%v), want %q (%v)", i, k, prev.Version, prev.Data, ok, old.data, had)
				}
				model[k] = rec{v, data}
			}
		case op < 8:
			var v driver.Version
			if rng.IntN(2) == 0 {
				v = model[k].v
				if rng.IntN(3) == 0 {
					v = stamp() // not the stored version
				}
			}
			err := d.DeleteRecord(ctx, k, v)
			old, had := model[k]
			switch {
			case !had:
				if !errors.Is(err, driver.ErrNotFound) {
					t.Fatalf("op %d: delete of missing %q: %v", i, k, err)
				}
			case !v.IsZero() && v != old.v:
				if !errors.Is(err, driver.ErrStale) {
					t.Fatalf("op %d: delete of %q at another version: %v", i, k, err)
				}
			case err != nil:
				t.Fatalf("op %d: delete %q: %v", i, k, err)
			default:
				delete(model, k)
			}
		case op < 9:
			r, err := d.GetRecord(ctx, k)
			old, had := model[k]
			if had != (err == nil) || had && (r.Version != old.v || string(r.Data) != old.data) {
				t.Fatalf("op %d: get %q = %v %q, %v; want %q (%v)", i, k, r.Version, r.Data, err, old.data, had)
			}
		default:
			prefix := []string{"", "a", "a/", "a/3", "b", "c", "c/", "z"}[rng.IntN(8)]
			after := []string{"", "a/2", "a/3", "b/1", "c", "0"}[rng.IntN(6)]
			limit := 1 + rng.IntN(6)
			got, err := d.ListRecords(ctx, prefix, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, k := range slices.Sorted(maps.Keys(model)) {
				if strings.HasPrefix(k, prefix) && k > after && len(want) < limit {
					want = append(want, k)
				}
			}
			var gotKeys []string
			for _, r := range got {
				gotKeys = append(gotKeys, r.Key)
				if string(r.Data) != model[r.Key].data || r.Version != model[r.Key].v {
					t.Fatalf("op %d: listed %q = %q, want %q", i, r.Key, r.Data, model[r.Key].data)
				}
			}
			if !slices.Equal(gotKeys, want) {
				t.Fatalf("op %d: list(%q, after %q, %d) = %q, want %q", i, prefix, after, limit, gotKeys, want)
			}
		}
		switch rng.IntN(400) {
		case 0:
			d.Close()
			d = open()
		case 1:
			crash(t, d)
			d = open()
		}
	}
}

// TestRecordLogConcurrent: writers, readers and listers at once while
// flushes run (low thresholds): every writer reads its own acknowledged
// record back, through GetRecord and ListRecords. Run it with -race.
func TestRecordLogConcurrent(t *testing.T) {
	setFlush(t, 16, 4<<10)
	ctx := t.Context()
	d, err := Open(ctx, Config{Dir: t.TempDir(), ID: "d", ClusterID: "c", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				k := fmt.Sprintf("g%d/k%d", g, i%20)
				data := fmt.Sprintf("%d", i)
				if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: []byte(data)}); err != nil {
					errs <- err
					return
				}
				r, err := d.GetRecord(ctx, k)
				if err != nil || string(r.Data) != data {
					errs <- fmt.Errorf("get %q after its put: %q, %v", k, r.Data, err)
					return
				}
				l, err := d.ListRecords(ctx, k, "", 1)
				if err != nil || len(l) != 1 || l[0].Key != k || string(l[0].Data) != data {
					errs <- fmt.Errorf("list %q after its put: %v, %v", k, l, err)
					return
				}
				if i%7 == 0 {
					if err := d.DeleteRecord(ctx, k, r.Version); err != nil {
						errs <- fmt.Errorf("delete %q: %v", k, err)
						return
					}
					if _, err := d.GetRecord(ctx, k); !errors.Is(err, driver.ErrNotFound) {
						errs <- fmt.Errorf("get %q after its delete: %v", k, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestRecordLogSurvivesKill: a child process writes and deletes records on
// a durable drive (flushes running among them) and is killed with SIGKILL
// at a random moment, three times over on the same drive. After each kill
// every acknowledged change is there; an operation in flight at the kill
// may or may not have taken effect, nothing else may differ.
func TestRecordLogSurvivesKill(t *testing.T) {
	if dir := os.Getenv("VAULT_WAL_CHILD"); dir != "" {
		walChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("kills child processes")
	}
	dir := t.TempDir()
	acked := map[string]string{}   // key → data ("" deleted) of the last acknowledged op
	pending := map[string]string{} // key → data of the op in flight at the kill
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRecordLogSurvivesKill$")
		cmd.Env = append(os.Environ(), "VAULT_WAL_CHILD="+dir)
		n := killChild(t, cmd, round, pending, acked)
		d, err := Open(t.Context(), Config{Dir: dir, ID: "d", ClusterID: "c"})
		if err != nil {
			t.Fatal(err)
		}
		for k, data := range acked {
			r, err := d.GetRecord(t.Context(), k)
			got := string(r.Data)
			if errors.Is(err, driver.ErrNotFound) {
				got, err = "", nil
			}
			if err != nil {
				t.Fatal(err)
			}
			if p, inFlight := pending[k]; got != data && !(inFlight && got == p) {
				t.Fatalf("round %d: %q = %q after the kill, want the acknowledged %q", round, k, got, data)
			}
			acked[k] = got // what the next round starts from
		}
		clear(pending)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d operations acknowledged, %d keys checked", round, n, len(acked))
	}
}

// killChild starts cmd, a child that prints "B key data" before each
// operation and "A key" once it is acknowledged, SIGKILLs it after 0.7 to
// 1.5 s, and records in acked what it acknowledged (and in pending what
// was in flight). It fails the test if fewer than 50 operations were
// acknowledged before the kill, and returns how many were.
func killChild(t *testing.T, cmd *exec.Cmd, round int, pending, acked map[string]string) int {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	kill := time.After(time.Duration(700+rand.IntN(800)) * time.Millisecond)
	n := 0
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break read
			}
			f := strings.SplitN(l, " ", 3)
			switch {
			case len(f) == 3 && f[0] == "B":
				pending[f[1]] = f[2]
			case len(f) == 2 && f[0] == "A":
				acked[f[1]] = pending[f[1]]
				delete(pending, f[1])
				n++
			}
		case <-kill:
			cmd.Process.Signal(syscall.SIGKILL)
			kill = nil
		}
	}
	cmd.Wait()
	if n < 50 {
		t.Fatalf("round %d: only %d operations acknowledged before the kill", round, n)
	}
	return n
}

// walChild is the child of TestRecordLogSurvivesKill: four writers on
// their own keys, each printing "B key data" before an operation and
// "A key" once it is acknowledged ("" data: a delete), until killed.
func walChild(dir string) {
	flushOps, flushBytes = 64, 16<<10
	writeUntilKilled(dir, 30, 0, 300)
}

// writeUntilKilled opens the drive in dir and runs four writers, each on
// keys keys of its own, putting records of minData to minData+spread
// bytes (one in five operations a delete) and printing "B key data"
// before each operation and "A key" once it is acknowledged, until the
// process is killed.
func writeUntilKilled(dir string, keys, minData, spread int) {
	ctx := context.Background()
	d, err := Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", a...)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("w%d/k%02d", g, rand.IntN(keys))
				if rand.IntN(5) == 0 {
					say("B %s ", k)
					err := d.DeleteRecord(ctx, k, driver.Version{})
					if err != nil && !errors.Is(err, driver.ErrNotFound) {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(2)
					}
				} else {
					data := fmt.Sprintf("%d-%d-%s", g, i, bytes.Repeat([]byte("x"), minData+rand.IntN(spread)))
					say("B %s %s", k, data)
					if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: []byte(data)}); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(2)
					}
				}
				say("A %s", k)
			}
		})
	}
	wg.Wait()
}

// TestRecordLogNearlyFullDisk: with too little room to fill a segment
// ahead (RLIMIT_FSIZE standing in for ENOSPC), frames are appended past
// its end, and none overwrites the one before (review 19 H1: the next
// append zero-filled from the old end, over the acknowledged frame).
func TestRecordLogNearlyFullDisk(t *testing.T) {
	old := flushIdle
	flushIdle = time.Hour
	t.Cleanup(func() { flushIdle = old })
	ctx := t.Context()
	dir := t.TempDir()
	d, err := Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	tight := lim
	tight.Cur = 256 << 10 // the zero-fill cannot fit, a small frame can
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &tight); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range 3 {
		k := fmt.Sprintf("k%d", i)
		_, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: []byte("acknowledged")})
		if err != nil {
			syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim)
			t.Fatalf("put %s: %v", k, err)
		}
		want[k] = "acknowledged"
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	crash(t, d)
	d, err = Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	checkRecords(t, d, want)
}

// TestRecordLogFailedFrameCutOff: a frame whose fdatasync failed is cut
// off the segment, so the next frame, which takes its seq (here in a new
// segment, as after a flush), is the one replayed (review 19 M1: the
// failed frame was replayed and the acknowledged one skipped).
func TestRecordLogFailedFrameCutOff(t *testing.T) {
	dir := t.TempDir()
	w := &wal{dir: dir}
	if err := w.startSegment(1); err != nil {
		t.Fatal(err)
	}
	val := func(s string) []byte { return append(make([]byte, driver.VersionSize), s...) }
	if err := w.append(1, []mutation{{key: "a", val: val("1")}}); err != nil {
		t.Fatal(err)
	}
	real := fdatasync
	failed := false
	fdatasync = func(f *os.File) error {
		if !failed {
			failed = true
			return syscall.EIO // the bytes are in the file all the same
		}
		return real(f)
	}
	t.Cleanup(func() { fdatasync = real })
	if err := w.append(2, []mutation{{key: "failed", val: val("never acknowledged")}}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append with a failing fdatasync: %v", err)
	}
	if err := w.startSegment(2); err != nil {
		t.Fatal(err)
	}
	if err := w.append(2, []mutation{{key: "acked", val: val("2")}}); err != nil {
		t.Fatal(err)
	}
	if err := w.append(3, []mutation{{key: "acked3", val: val("3")}}); err != nil {
		t.Fatal(err)
	}
	w.close()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	if _, _, err := replayLog(dir, segs, 0, func(_ uint64, muts []mutation) error {
		for _, m := range muts {
			got[m.key] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{"a": true, "acked": true, "acked3": true}; !maps.Equal(got, want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
}

// TestRecordLogLargeFrame: a record of 64 MiB (the internode limit) is
// replayed after a crash, and so is the frame after it (review 19 H2: a
// frame over 64 MiB was taken for corrupt and stopped the replay).
func TestRecordLogLargeFrame(t *testing.T) {
	old, oldLog := flushIdle, flushLog
	flushIdle, flushLog = time.Hour, 1<<40
	t.Cleanup(func() { flushIdle, flushLog = old, oldLog })
	setFlush(t, 1<<30, 1<<30)
	ctx := t.Context()
	dir := t.TempDir()
	d, err := Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("b"), 64<<20+1)
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "big", Version: stamp(), Data: big}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "after", Version: stamp(), Data: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	crash(t, d)
	d, err = Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if r, err := d.GetRecord(ctx, "big"); err != nil || !bytes.Equal(r.Data, big) {
		t.Fatalf("the 64 MiB record after a crash: %d bytes, %v", len(r.Data), err)
	}
	if r, err := d.GetRecord(ctx, "after"); err != nil || string(r.Data) != "v" {
		t.Fatalf("the record after it: %q, %v", r.Data, err)
	}
}

// TestRecordLogBrokenReopens: a frame whose fdatasync fails and that cannot
// be cut off either (the cut's own fdatasync fails) breaks the log: writes
// fail until Probe takes the drive offline and reopens it, and the drive
// reopened holds every acknowledged record and takes writes again. (The
// failed frame was never acknowledged: the replay may keep it or not.)
func TestRecordLogBrokenReopens(t *testing.T) {
	ctx := t.Context()
	d := open(t, testConfig(t, false))
	want := map[string]string{}
	put := func(k string) error {
		_, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: []byte("value of " + k)})
		if err == nil {
			want[k] = "value of " + k
		}
		return err
	}
	for i := range 5 {
		if err := put(fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	real := fdatasync
	var failing atomic.Bool
	failing.Store(true)
	fdatasync = func(f *os.File) error {
		if failing.Load() {
			return syscall.EIO
		}
		return real(f)
	}
	t.Cleanup(func() { fdatasync = real })
	if err := put("failed"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("put with every fdatasync failing: %v, want EIO", err)
	}
	failing.Store(false)
	if err := put("refused"); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("put after the log broke: %v, want it refused as broken", err)
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("Probe of a drive with a broken log: %v, want it reopened", err)
	}
	if err := d.commit.logBroken(); err != nil {
		t.Fatalf("log still broken after Probe: %v", err)
	}
	if err := put("after"); err != nil {
		t.Fatalf("put after Probe reopened the drive: %v", err)
	}
	for k, v := range want {
		r, err := d.GetRecord(ctx, k)
		if err != nil || string(r.Data) != v {
			t.Fatalf("GetRecord(%q) after the reopen = %q, %v; want %q", k, r.Data, err, v)
		}
	}
}
