package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	// VAULT_TEST_PACKMIN=N runs the package's tests with records of N
	// bytes and more in packs: most of them, at 1.
	if v := os.Getenv("VAULT_TEST_PACKMIN"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "VAULT_TEST_PACKMIN:", err)
			os.Exit(2)
		}
		packMin = n
	}
	os.Exit(m.Run())
}

// keepInIndex keeps every record's data in index.db for the test (no
// packs), whatever VAULT_TEST_PACKMIN says: for tests of the index itself.
func keepInIndex(t *testing.T) {
	old := packMin
	packMin = 1 << 30
	t.Cleanup(func() { packMin = old })
}

// patterned returns n bytes derived from seed.
func patterned(seed string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed[i%len(seed)] ^ byte(i/len(seed))
	}
	return b
}

// storedValue returns index.db's value of key.
func storedValue(t *testing.T, d *Driver, key string) []byte {
	t.Helper()
	var v []byte
	if err := d.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(recordsBucket).Get([]byte(key)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// packBytes returns the bytes of disk the files in dir occupy.
func packBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, e.Name()), &st); err != nil {
			t.Fatal(err)
		}
		total += st.Blocks * 512
	}
	return total
}

// TestPackRoundTrip: records of every size read back the same from the
// log, from index.db with their data in a pack, and after a reopen;
// those of packMin bytes and more are in the pack, the others inline;
// a listing cuts packed data as it cuts inline data.
func TestPackRoundTrip(t *testing.T) {
	c := testConfig(t, false)
	d := open(t, c)
	ctx := t.Context()
	sizes := []int{0, 1, 100, packMin - 1, packMin, packMin + 1, 20 << 10, 130 << 10}
	want := map[string][]byte{}
	for i, n := range sizes {
		k := fmt.Sprintf("k%02d", i)
		want[k] = patterned(k, n)
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: want[k]}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stage string, d *Driver) {
		t.Helper()
		for k, w := range want {
			r, err := d.GetRecord(ctx, k)
			if err != nil || !bytes.Equal(r.Data, w) {
				t.Fatalf("%s: get %s: %v, %d bytes, want %d", stage, k, err, len(r.Data), len(w))
			}
		}
		list, err := d.ListRecords(ctx, "k", "", 100)
		if err != nil || len(list) != len(want) {
			t.Fatalf("%s: list: %v, %d records", stage, err, len(list))
		}
		for _, r := range list {
			w := driver.Record{Key: r.Key, Data: want[r.Key]}.CutForList()
			if !bytes.Equal(r.Data, w.Data) || r.Truncated != w.Truncated {
				t.Fatalf("%s: listed %s: %d bytes truncated %v, want %d %v", stage, r.Key, len(r.Data), r.Truncated, len(w.Data), w.Truncated)
			}
		}
	}
	check("logged", d)
	flushHeld(t, d)
	check("flushed", d)
	for i, n := range sizes {
		v := storedValue(t, d, fmt.Sprintf("k%02d", i))
		_, packed := storedRef(v)
		if packed != (n >= packMin) {
			t.Errorf("record of %d bytes: stored %d bytes, packed %v", n, len(v), packed)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := open(t, c)
	check("reopened", d2)
}

// TestPackSpaceFreed: overwriting and deleting packed records frees their
// blocks, and a sealed pack left with nothing live is removed; what stays
// live reads back.
func TestPackSpaceFreed(t *testing.T) {
	old := packMax
	packMax = 1 << 20
	t.Cleanup(func() { packMax = old })
	c := testConfig(t, false)
	d := open(t, c)
	ctx := t.Context()
	const n, size = 200, 20 << 10 // 4 MB: four packs
	put := func(i int, gen string) {
		t.Helper()
		k := fmt.Sprintf("r%03d", i)
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: patterned(k+gen, size)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		put(i, "a")
		if i%50 == 49 {
			flushHeld(t, d)
		}
	}
	dir := filepath.Join(c.Dir, packsDir)
	full := packBytes(t, dir)
	if full < n*size {
		t.Fatalf("packs occupy %d bytes for %d of data", full, n*size)
	}
	// Delete the odd records, overwrite the even ones.
	for i := range n {
		if i%2 == 1 {
			if err := d.DeleteRecord(ctx, fmt.Sprintf("r%03d", i), driver.Version{}); err != nil {
				t.Fatal(err)
			}
		} else {
			put(i, "b")
		}
	}
	flushHeld(t, d)
	after := packBytes(t, dir)
	live := int64(n / 2 * size)
	if after > live+live/20+4*packBlock {
		t.Errorf("packs occupy %d bytes after the churn, %d live (before: %d)", after, live, full)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) > 4 {
		t.Errorf("%d pack files after the first generation died: want the emptied ones removed", len(ents))
	}
	for i := range n {
		k := fmt.Sprintf("r%03d", i)
		r, err := d.GetRecord(ctx, k)
		switch {
		case i%2 == 1 && !errors.Is(err, driver.ErrNotFound):
			t.Fatalf("deleted %s: %v", k, err)
		case i%2 == 0 && (err != nil || !bytes.Equal(r.Data, patterned(k+"b", size))):
			t.Fatalf("overwritten %s: %v", k, err)
		}
	}
}

// TestPackCrashLeftovers: what a crash leaves in the packs past the last
// committed flush (an append never referenced, a pack created but never
// committed) is dropped on open; what was acknowledged reads back.
func TestPackCrashLeftovers(t *testing.T) {
	c := testConfig(t, false)
	d, err := Open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	want := patterned("x", 10<<10)
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "x", Version: stamp(), Data: want}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	logged := patterned("y", 9<<10) // acknowledged, held only by the log at the crash
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "y", Version: stamp(), Data: logged}); err != nil {
		t.Fatal(err)
	}
	crash(t, d)
	dir := filepath.Join(c.Dir, packsDir)
	active := filepath.Join(dir, packName(1))
	f, err := os.OpenFile(active, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 12345)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, packName(2)), []byte("never committed"), 0o600); err != nil {
		t.Fatal(err)
	}
	d2 := open(t, c)
	if _, err := os.Stat(filepath.Join(dir, packName(2))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("uncommitted pack 2 after open: %v", err)
	}
	for k, w := range map[string][]byte{"x": want, "y": logged} {
		r, err := d2.GetRecord(ctx, k)
		if err != nil || !bytes.Equal(r.Data, w) {
			t.Fatalf("get %s after the crash: %v", k, err)
		}
	}
	flushHeld(t, d2) // y goes to the pack now, after x: the garbage was cut off
	fi, err := os.Stat(active)
	if err != nil {
		t.Fatal(err)
	}
	// y starts on the block after x's (a flush never shares a block with
	// committed data), where the leftovers were cut off.
	if w := alignBlock(int64(len(want))) + alignBlock(int64(len(logged))); fi.Size() != w {
		t.Errorf("active pack of %d bytes, want %d: the crash's leftovers kept", fi.Size(), w)
	}
}

// TestPackCorruptData: data changed in a pack reads as driver.ErrCorrupt,
// never as the record.
func TestPackCorruptData(t *testing.T) {
	c := testConfig(t, false)
	d := open(t, c)
	ctx := t.Context()
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: patterned("k", 8<<10)}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	f, err := os.OpenFile(filepath.Join(c.Dir, packsDir, packName(1)), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, 5000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := d.GetRecord(ctx, "k"); !errors.Is(err, driver.ErrCorrupt) {
		t.Fatalf("get of corrupt packed data: %v, want ErrCorrupt", err)
	}
}

// TestPackReadersDuringChurn: readers running beside overwrites, deletes
// and the flushes that punch out dead data always read a whole version of
// a record, never freed or torn data.
func TestPackReadersDuringChurn(t *testing.T) {
	setFlush(t, 16, 1<<20)
	old := packMax
	packMax = 512 << 10
	t.Cleanup(func() { packMax = old })
	beforePackRead = func() { time.Sleep(100 * time.Microsecond) }
	t.Cleanup(func() { beforePackRead = nil })
	d := open(t, testConfig(t, true))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	const keys = 64
	var gen [keys]atomic.Int64
	data := func(k, g int) []byte { return patterned(fmt.Sprintf("k%d-%d-", k, g), 5<<10+g%7*1000) }
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 3 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				k := i % keys
				r, err := d.GetRecord(ctx, "k"+strconv.Itoa(k))
				if errors.Is(err, driver.ErrNotFound) || ctx.Err() != nil {
					continue
				}
				if err != nil {
					t.Errorf("get k%d: %v", k, err)
					return
				}
				if !bytes.HasPrefix(r.Data, []byte(fmt.Sprintf("k%d-", k))) {
					t.Errorf("get k%d: data of another record or freed: % x", k, r.Data[:8])
					return
				}
				reads.Add(1)
			}
		})
	}
	for i := 0; ctx.Err() == nil && i < 20000; i++ {
		k := i % keys
		g := int(gen[k].Add(1))
		var err error
		if g%5 == 0 {
			err = d.DeleteRecord(ctx, "k"+strconv.Itoa(k), driver.Version{})
		} else {
			_, _, err = d.PutRecord(ctx, driver.Record{Key: "k" + strconv.Itoa(k), Version: stamp(), Data: data(k, g)})
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, driver.ErrNotFound) {
			t.Fatalf("write k%d: %v", k, err)
		}
	}
	cancel()
	wg.Wait()
	if reads.Load() < 100 {
		t.Fatalf("%d reads completed", reads.Load())
	}
}

// TestPackCorruptRecordReplaced: a record whose packed data is corrupt can
// still be overwritten by a newer version (healing) and deleted.
func TestPackCorruptRecordReplaced(t *testing.T) {
	c := testConfig(t, false)
	d := open(t, c)
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: patterned(k, 8<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	flushHeld(t, d)
	if err := os.WriteFile(filepath.Join(c.Dir, packsDir, packName(1)), make([]byte, 16<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	good := patterned("a2", 6<<10)
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "a", Version: stamp(), Data: good}); err != nil {
		t.Fatalf("overwrite of a corrupt record: %v", err)
	}
	if err := d.DeleteRecord(ctx, "b", driver.Version{}); err != nil {
		t.Fatalf("delete of a corrupt record: %v", err)
	}
	flushHeld(t, d)
	if r, err := d.GetRecord(ctx, "a"); err != nil || !bytes.Equal(r.Data, good) {
		t.Fatalf("healed record: %v", err)
	}
	if _, err := d.GetRecord(ctx, "b"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("deleted corrupt record: %v", err)
	}
}

// TestPackFormat1Kept: an index created before packs (value format 1)
// keeps its layout: records of every size stay in index.db and read back,
// across reopens.
func TestPackFormat1Kept(t *testing.T) {
	c := testConfig(t, false)
	packsEnabled = false
	d, err := Open(t.Context(), c)
	packsEnabled = true
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	want := map[string][]byte{"small": patterned("s", 100), "big": patterned("b", 50<<10)}
	put := func(d *Driver) {
		t.Helper()
		for k, v := range want {
			if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: v}); err != nil {
				t.Fatal(err)
			}
		}
		flushHeld(t, d)
	}
	check := func(d *Driver) {
		t.Helper()
		for k, v := range want {
			if r, err := d.GetRecord(ctx, k); err != nil || !bytes.Equal(r.Data, v) {
				t.Fatalf("get %s: %v", k, err)
			}
			if sv := storedValue(t, d, k); !bytes.Equal(sv[driver.VersionSize:], want[k]) {
				t.Fatalf("%s stored as %d bytes, not as format 1", k, len(sv))
			}
		}
		if _, err := os.Stat(filepath.Join(c.Dir, packsDir)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("packs/ on a format 1 drive: %v", err)
		}
	}
	put(d)
	check(d)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := open(t, c) // packs enabled: an existing index keeps format 1
	check(d2)
	want["big"] = patterned("b2", 70<<10)
	put(d2)
	check(d2)
}

// TestPackManyPacks: reads spread over more packs than are kept open
// (maxOpenPacks) all succeed, and no more than that stay open.
func TestPackManyPacks(t *testing.T) {
	old := packMax
	packMax = 4 << 10 // one record per pack
	t.Cleanup(func() { packMax = old })
	d := open(t, testConfig(t, true))
	ctx := t.Context()
	n := maxOpenPacks + 40
	for i := range n {
		k := fmt.Sprintf("k%04d", i)
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: patterned(k, 5<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	flushHeld(t, d)
	for round := range 2 {
		for i := range n {
			k := fmt.Sprintf("k%04d", i)
			if r, err := d.GetRecord(ctx, k); err != nil || !bytes.Equal(r.Data, patterned(k, 5<<10)) {
				t.Fatalf("round %d: get %s: %v", round, k, err)
			}
		}
	}
	p := d.commit.packs
	p.fmu.Lock()
	open := len(p.files)
	p.fmu.Unlock()
	if open > maxOpenPacks+1 { // +1: the active pack, opened for appends
		t.Errorf("%d packs open, want at most %d", open, maxOpenPacks+1)
	}
}
