package local

// Review of 306eaeb (pack files, session 23): tests of the defects found,
// and of crashes and reopens under load.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"golang.org/x/sys/unix"
)

// revAlloc returns the bytes of disk the file at path occupies.
func revAlloc(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func revSetPackMax(t *testing.T, n int64) {
	old := packMax
	packMax = n
	t.Cleanup(func() { packMax = old })
}

// revRef returns the pack reference index.db holds for key.
func revRef(t *testing.T, d *Driver, key string) packRef {
	t.Helper()
	r, ok := storedRef(storedValue(t, d, key))
	if !ok {
		t.Fatalf("%s is not packed", key)
	}
	return r
}

// TestReviewPackSealedTailPunched: the dead tail of a sealed pack (a dead
// extent with no live extent after it) is punched out. gap() gives such
// a span the end 1<<62, and fallocate(PUNCH_HOLE) of a range ending past
// the file system's s_maxbytes fails with EFBIG (ext4: 16 TiB), so on
// ext4 nothing after the last live extent of a sealed pack is ever freed
// until the whole pack empties.
func TestReviewPackSealedTailPunched(t *testing.T) {
	revSetPackMax(t, 1<<20)
	c := testConfig(t, true)
	d := open(t, c)
	ctx := t.Context()
	sizes := map[string]int{"a": 64 << 10, "b": 960 << 10, "c": 8 << 10} // a, b fill pack 1; c seals it
	for _, k := range []string{"a", "b", "c"} {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: patterned(k, sizes[k])}); err != nil {
			t.Fatal(err)
		}
	}
	flushHeld(t, d)
	if ra, rb, rc := revRef(t, d, "a"), revRef(t, d, "b"), revRef(t, d, "c"); ra.id != 1 || rb.id != 1 || rc.id != 2 {
		t.Fatalf("layout: a in %d, b in %d, c in %d; want 1, 1, 2", ra.id, rb.id, rc.id)
	}
	pack1 := filepath.Join(c.Dir, packsDir, packName(1))
	before := revAlloc(t, pack1)
	if err := d.DeleteRecord(ctx, "b", driver.Version{}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	after := revAlloc(t, pack1)
	if after > 64<<10+2*packBlock {
		t.Errorf("sealed pack 1 occupies %d bytes (before the delete: %d) for 64 KiB live: its dead tail was not punched", after, before)
	}
	if r, err := d.GetRecord(ctx, "a"); err != nil || !bytes.Equal(r.Data, patterned("a", sizes["a"])) {
		t.Fatalf("get a: %v", err)
	}
}

// TestReviewPackPunchSameSpanTwoPacks: dead extents of two packs whose
// gaps have the same offsets are both punched. packChanges.punch is keyed
// by the span alone ([from, to) → pack id), so the second pack's span
// overwrites the first's and one pack keeps its dead blocks.
func TestReviewPackPunchSameSpanTwoPacks(t *testing.T) {
	revSetPackMax(t, 40<<10)
	c := testConfig(t, true)
	d := open(t, c)
	ctx := t.Context()
	const size = 20 << 10
	keys := []string{"a", "b", "c", "d", "e"} // a, b in pack 1; c, d in pack 2; e in pack 3
	for _, k := range keys {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: patterned(k, size)}); err != nil {
			t.Fatal(err)
		}
	}
	flushHeld(t, d)
	for i, k := range keys {
		if r := revRef(t, d, k); r.id != uint32(i/2+1) || r.off != int64(i%2*size) {
			t.Fatalf("layout: %s in pack %d at %d", k, r.id, r.off)
		}
	}
	for _, k := range []string{"a", "c"} { // the same gap [0, 20 KiB) in packs 1 and 2
		if err := d.DeleteRecord(ctx, k, driver.Version{}); err != nil {
			t.Fatal(err)
		}
	}
	flushHeld(t, d)
	for _, id := range []uint32{1, 2} {
		if a := revAlloc(t, filepath.Join(c.Dir, packsDir, packName(id))); a > size+packBlock {
			t.Errorf("pack %d occupies %d bytes for %d live: its dead extent was not punched", id, a, size)
		}
	}
}

// TestReviewPackPutPrevUnreadable: PutRecord over a record whose packed
// data cannot be read (here the pack cannot be opened, as with EMFILE or
// an I/O error) must not report a replaced record with empty data. The
// batch view's Get (packs.logical) turns any read failure into the
// Version alone, so PutRecord returns ok with prev.Data empty: the engine
// (recordWrite.putOne) then cannot unmarshal prev and its rollback
// deletes the new record without putting the old one back.
func TestReviewPackPutPrevUnreadable(t *testing.T) {
	c, d, old, f := packedNotOpen(t)
	ctx := t.Context()
	p := d.commit.packs
	// A directory in its place: opening it fails (EISDIR) as with
	// EMFILE or EIO, not ENOENT (a lost pack: its records can be
	// replaced, TestReviewPack2MissingPackBlocksHeal).
	path := filepath.Join(c.Dir, packsDir, packName(1))
	if err := os.Rename(path, path+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	prev, ok, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: patterned("new", 9<<10)})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	p.fmu.Lock()
	p.files[1] = f
	p.fmu.Unlock()
	if err == nil && ok && !bytes.Equal(prev.Data, old) {
		t.Errorf("PutRecord over an unreadable record: ok, prev of %d bytes (want an error or the %d bytes replaced)", len(prev.Data), len(old))
	}
}

// TestReviewPackFlushAppendsShareBlock: a flush never rewrites a block
// that holds committed data. Packs are filled back to back with no
// padding, so every flush's first append rewrites the last block of the
// previous flush's last extent (and open's truncation to an unaligned
// committed end rewrites it too): on a device that can garble a sector
// being written when power fails (the reason for index.db's 4 KiB pages,
// review 20 H2), an acknowledged, committed record is lost.
func TestReviewPackFlushAppendsShareBlock(t *testing.T) {
	c := testConfig(t, true)
	d := open(t, c)
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: patterned(k, 5000)}); err != nil {
			t.Fatal(err)
		}
		flushHeld(t, d)
	}
	ra, rb := revRef(t, d, "a"), revRef(t, d, "b")
	if ra.id == rb.id && rb.off/packBlock*packBlock < ra.end() {
		t.Errorf("the flush of b wrote at %d, in the block [%d, %d) that holds committed a [%d, %d)",
			rb.off, rb.off/packBlock*packBlock, rb.off/packBlock*packBlock+packBlock, ra.off, ra.end())
	}
}

// TestReviewPackFailedFlushAppendsKept: the appends of a flush that fails
// after writing them (the packs directory's fsync fails here; a failed
// fdatasync or an index.db commit failing with ENOSPC is the same) are
// left in the active pack, and every retry appends the whole flush again
// after them. The next successful flush commits an end past all of them,
// so not even a reopen cuts them off: they stay allocated until a
// neighbour extent dies.
func TestReviewPackFailedFlushAppendsKept(t *testing.T) {
	oldIdle := flushIdle
	flushIdle = time.Hour // this goroutine runs the flushes
	t.Cleanup(func() { flushIdle = oldIdle })
	c := testConfig(t, false)
	d, err := Open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const n, size = 8, 64 << 10
	for i := range n {
		k := fmt.Sprintf("k%d", i)
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: patterned(k, size)}); err != nil {
			t.Fatal(err)
		}
	}
	cm := &d.commit
	p := cm.packs
	dir := p.dir
	const failures = 4
	for range failures {
		p.dir, p.created = filepath.Join(dir, "gone"), true
		cm.startFlush()
		cm.waitFlush()
		if cm.flushErr == nil {
			t.Fatal("flush did not fail")
		}
	}
	p.dir = dir
	cm.startFlush()
	cm.waitFlush()
	if cm.flushErr != nil {
		t.Fatal(cm.flushErr)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(t, c)
	for i := range n {
		k := fmt.Sprintf("k%d", i)
		if r, err := d.GetRecord(ctx, k); err != nil || !bytes.Equal(r.Data, patterned(k, size)) {
			t.Fatalf("get %s: %v", k, err)
		}
	}
	live := int64(n * size)
	if a := revAlloc(t, filepath.Join(c.Dir, packsDir, packName(1))); a > 2*live {
		t.Errorf("after %d failed flushes, a successful one and a reopen, pack 1 occupies %d bytes for %d live", failures, a, live)
	}
}

// TestReviewPackPunchAfterReopen: after a reopen, dead extents of a sealed
// pack are punched out as before. packs.file opens a pack that is not
// open with os.Open (read-only), and free punches through that file:
// fallocate on a descriptor not open for writing fails with EBADF, so
// once the process has restarted no sealed pack's dead extent is freed
// (only wholly emptied packs are removed).
func TestReviewPackPunchAfterReopen(t *testing.T) {
	revSetPackMax(t, 40<<10)
	c := testConfig(t, true)
	d, err := Open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const size = 20 << 10
	for _, k := range []string{"a", "b", "c"} { // a, b in pack 1; c in pack 2
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: patterned(k, size)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(t, c)
	if ra, rb := revRef(t, d, "a"), revRef(t, d, "b"); ra.id != 1 || rb.id != 1 || ra.off != 0 {
		t.Fatalf("layout: a in %d at %d, b in %d", ra.id, ra.off, rb.id)
	}
	if err := d.DeleteRecord(ctx, "a", driver.Version{}); err != nil { // gap [0, 20 KiB), b live after it
		t.Fatal(err)
	}
	flushHeld(t, d)
	if a := revAlloc(t, filepath.Join(c.Dir, packsDir, packName(1))); a > size+packBlock {
		t.Errorf("sealed pack 1 occupies %d bytes for %d live after a reopen: the dead extent was not punched", a, size)
	}
	if r, err := d.GetRecord(ctx, "b"); err != nil || !bytes.Equal(r.Data, patterned("b", size)) {
		t.Fatalf("get b: %v", err)
	}
}

// TestReviewPackSurvivesKill is TestRecordLogSurvivesKill with packs that
// seal every few records, records of up to 9 KiB (punches, removals of
// emptied packs) and frequent flushes: a SIGKILL at any point of a flush,
// a seal, a punch or a removal loses no acknowledged record.
func TestReviewPackSurvivesKill(t *testing.T) {
	if dir := os.Getenv("VAULT_REVPACK_CHILD"); dir != "" {
		revPackChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("kills child processes")
	}
	dir := t.TempDir()
	acked := map[string]string{}
	pending := map[string]string{}
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestReviewPackSurvivesKill$")
		cmd.Env = append(os.Environ(), "VAULT_REVPACK_CHILD="+dir)
		n := killChild(t, cmd, round, pending, acked)
		revSetPackMax(t, 24<<10)
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
				t.Fatalf("round %d: get %s: %v", round, k, err)
			}
			if p, inFlight := pending[k]; got != data && !(inFlight && got == p) {
				t.Fatalf("round %d: %q = %.40q after the kill, want the acknowledged %.40q", round, k, got, data)
			}
			acked[k] = got
		}
		clear(pending)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d operations acknowledged, %d keys checked", round, n, len(acked))
	}
}

func revPackChild(dir string) {
	flushOps, flushBytes = 16, 32<<10
	packMax = 24 << 10
	writeUntilKilled(dir, 20, 3000, 6000)
}

// TestReviewPackStressOfflineReopen: readers, listings, writers, flushes
// sealing a pack per record (more packs than maxOpenPacks: seal closes
// under the packs' lock inside the flush's transaction) and Probe taking
// the drive offline and back, together: no deadlock, no wrong data.
func TestReviewPackStressOfflineReopen(t *testing.T) {
	setFlush(t, 32, 256<<10)
	revSetPackMax(t, 4<<10)
	d := open(t, testConfig(t, true))
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	const keys = 400
	data := func(k, g int) []byte { return patterned(fmt.Sprintf("k%d-%d-", k, g), 4<<10+g%5*700) }
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += 2 {
				k := i % keys
				var err error
				if i%7 == 0 {
					err = d.DeleteRecord(ctx, fmt.Sprintf("k%03d", k), driver.Version{})
				} else {
					_, _, err = d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("k%03d", k), Version: stamp(), Data: data(k, i)})
				}
				if err != nil && ctx.Err() == nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrOffline) {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				k := fmt.Sprintf("k%03d", i*7%keys)
				r, err := d.GetRecord(ctx, k)
				if err == nil && !bytes.HasPrefix(r.Data, []byte(fmt.Sprintf("k%d-", i*7%keys))) {
					t.Errorf("get %s: wrong data", k)
					return
				}
				if err != nil && ctx.Err() == nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrOffline) {
					t.Errorf("get %s: %v", k, err)
					return
				}
				if i%50 == 0 {
					if _, err := d.ListRecords(ctx, "k", "", 100); err != nil && ctx.Err() == nil && !errors.Is(err, driver.ErrOffline) {
						t.Errorf("list: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			time.Sleep(300 * time.Millisecond)
			d.setOffline(errors.New("review: offline"))
			d.Probe(context.Background())
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 1<<20)
		n := runtimeStack(buf)
		t.Fatalf("deadlock: goroutines:\n%s", buf[:n])
	}
	if err := d.Err(); err != nil {
		t.Fatalf("drive left offline: %v", err)
	}
}

func runtimeStack(buf []byte) int { return runtime.Stack(buf, true) }

// packedNotOpen opens a drive holding record "k" (returned as old) in
// pack 1, flushed, with pack 1 dropped from the open packs (as a sealed
// pack past maxOpenPacks, or one not read since open), so the next read
// opens it. f is pack 1's descriptor, for the test to put back.
func packedNotOpen(t *testing.T) (c Config, d *Driver, old []byte, f *os.File) {
	t.Helper()
	c = testConfig(t, true)
	d = open(t, c)
	old = patterned("old", 8<<10)
	if _, _, err := d.PutRecord(t.Context(), driver.Record{Key: "k", Version: stamp(), Data: old}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	p := d.commit.packs
	p.fmu.Lock()
	f = p.files[1]
	delete(p.files, 1)
	p.fmu.Unlock()
	return c, d, old, f
}

// genPutter returns put, writing generation gen of records k0..k(n-1)
// of size bytes to d, and flush, running one flush of d's record log in
// the calling goroutine and returning its outcome.
func genPutter(t *testing.T, d *Driver, n, size int) (put func(gen int), flush func() error) {
	put = func(gen int) {
		t.Helper()
		for i := range n {
			k := fmt.Sprintf("k%d", i)
			if _, _, err := d.PutRecord(t.Context(), driver.Record{Key: k, Version: stamp(), Data: patterned(fmt.Sprint(k, gen), size)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	flush = func() error {
		d.commit.startFlush()
		d.commit.waitFlush()
		return d.commit.flushErr
	}
	return put, flush
}
