package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vaultaire/vaultaire/driver"
)

// allocated returns the bytes of blocks file occupies on disk.
func allocated(t *testing.T, file string) int64 {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// TestReclaimFreeIndexPages checks that the blocks of index.db's free pages
// go back to the file system after deletes (holes punched), that the
// records left and those written afterwards into the freed pages read back
// intact, and that the index passes bbolt's consistency check on reopen.
func TestReclaimFreeIndexPages(t *testing.T) {
	keepInIndex(t)           // about index.db's pages
	c := testConfig(t, true) // what is free does not depend on fsyncs
	d, err := Open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(c.Dir, indexFile)
	const records, size = 1200, 8 << 10
	val := func(i, gen int) []byte {
		return bytes.Repeat([]byte{byte(i), byte(i >> 8), byte(gen)}, size/3)
	}
	key := func(i int) string { return fmt.Sprintf("t\x00b\x00%08x", uint32(i)*2654435761) }
	put := func(i, gen int) {
		t.Helper()
		r := driver.Record{Key: key(i), Data: val(i, gen)}
		r.Version[15] = byte(gen)
		if _, _, err := d.PutRecord(t.Context(), r); err != nil {
			t.Fatalf("PutRecord %d: %v", i, err)
		}
	}
	check := func(what string, gens map[int]int) {
		t.Helper()
		for i := range records {
			r, err := d.GetRecord(t.Context(), key(i))
			gen, live := gens[i]
			switch {
			case !live && err == nil:
				t.Fatalf("%s: record %d still there", what, i)
			case live && err != nil:
				t.Fatalf("%s: GetRecord %d: %v", what, i, err)
			case live && !bytes.Equal(r.Data, val(i, gen)):
				t.Fatalf("%s: record %d differs", what, i)
			}
		}
	}
	gens := map[int]int{}
	for i := range records {
		put(i, 1)
		gens[i] = 1
	}
	flushHeld(t, d) // into index.db: the record log holds them first
	full := allocated(t, index)
	// Readers of the records never deleted run throughout: a punched
	// page they could read would come back as zeros.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for w := range 4 {
		readers.Go(func() {
			for n := w; ; n += 4 {
				select {
				case <-stop:
					return
				default:
				}
				i := (n * 4) % records
				r, err := d.GetRecord(t.Context(), key(i))
				if errors.Is(err, context.Canceled) {
					return // the test failed and is ending
				}
				if err != nil || !bytes.Equal(r.Data, val(i, 1)) && !bytes.Equal(r.Data, val(i, 2)) {
					t.Errorf("concurrent GetRecord %d: %v (data differs: %v)", i, err, err == nil)
					return
				}
			}
		})
	}
	for i := range records {
		if i%4 != 0 {
			if err := d.DeleteRecord(t.Context(), key(i), driver.Version{}); err != nil {
				t.Fatal(err)
			}
			delete(gens, i)
		}
	}
	// returned waits until index.db's allocation is back near what the
	// live records need.
	returned := func(what string) {
		t.Helper()
		live := int64(len(gens)) * (size + 64)
		want := live*3/2 + 256<<10
		flushHeld(t, d)
		var got int64
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got = allocated(t, index); got <= want {
				break
			}
		}
		t.Logf("index.db: %d KiB allocated full, %d KiB %s (%d KiB live)", full>>10, got>>10, what, live>>10)
		if got > want {
			t.Fatalf("index.db keeps %d KiB allocated %s, want at most %d KiB", got>>10, what, want>>10)
		}
	}
	returned("after deleting 3/4")
	check("after the deletes", gens)
	// Write into the freed pages: new records and overwrites.
	for i := range records {
		if i%4 != 1 {
			put(i, 2)
			gens[i] = 2
		}
	}
	close(stop)
	readers.Wait()
	check("after writing again", gens)
	returned("after writing again")
	// Pages punched and then reused are freed again by later commits,
	// allocated this time: overwrites of what is left cycle the free
	// pages through that, and the drive must notice and return them.
	for i := range records {
		if i%4 != 0 && gens[i] != 0 {
			if err := d.DeleteRecord(t.Context(), key(i), driver.Version{}); err != nil {
				t.Fatal(err)
			}
			delete(gens, i)
		}
	}
	returned("after deleting 3/4 again")
	for gen := 3; gen < 9; gen++ {
		for i := range gens {
			put(i, gen)
			gens[i] = gen
		}
	}
	returned("after overwriting what was left six times")
	check("after the overwrites", gens)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	checkIndex(t, index)
}

// TestReclaimQuietsOnceOnlyPartBlocksAreLeft: once a drive has returned
// what it can (the free pages left share their 4 KiB blocks with live
// pages, which 1 KiB pages leave after scattered deletes), no reclaim runs
// while it is idle. A pass measures its residue from the free pages at
// its start; when that count was not taken again for each pass (only for
// the drive's first), the pages freed since the first pass were taken for
// pages freed behind the walk, the residue came out 0, and a reclaim
// walked the whole index every second, punching nothing.
func TestReclaimQuietsOnceOnlyPartBlocksAreLeft(t *testing.T) {
	keepInIndex(t) // about index.db's pages
	c := testConfig(t, true)
	d, err := Open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	key := func(i int) string { return fmt.Sprintf("t\x00b\x00%08x", uint32(i)*2654435761) }
	const records = 24000
	for i := range records {
		r := driver.Record{Key: key(i), Data: bytes.Repeat([]byte{byte(i)}, 100+i%1500)}
		r.Version[15] = 1
		if _, _, err := d.PutRecord(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	flushHeld(t, d)
	for i := range records {
		if i%4 != 0 {
			if err := d.DeleteRecord(t.Context(), key(i), driver.Version{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	flushHeld(t, d)
	// Quiet: no reclaim scheduled or run for 2.5 s (a reclaim sets
	// nextReclaim when it ends).
	const quiet = 2500 * time.Millisecond
	last, since := d.nextReclaim.Load(), time.Now()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if n := d.nextReclaim.Load(); n != last || d.reclaiming.Load() {
			last, since = n, time.Now()
		}
		if time.Since(since) >= quiet {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle drive still reclaiming after 60 s: %d KiB taken for unreturned (residue %d KiB), %d KiB allocated",
				d.pendingFree()>>10, d.residue.Load()>>10, allocated(t, filepath.Join(c.Dir, indexFile))>>10)
		}
	}
	if n := d.pendingFree(); n >= reclaimMin {
		t.Errorf("quiet with %d KiB taken for unreturned, want under %d KiB", n>>10, reclaimMin>>10)
	}
}

// TestPunchFreeUnderLoad: punch rounds run back to back while writers
// overwrite and delete records of 0.1 to 3 KiB (1 KiB pages: most free
// runs share blocks with live pages) and readers check every record they
// read; the index then passes bbolt's check and holds what was written
// last.
func TestPunchFreeUnderLoad(t *testing.T) {
	keepInIndex(t)            // about index.db's pages
	setFlush(t, 256, 256<<10) // many flushes, each freeing pages
	c := testConfig(t, true)
	d, err := Open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) string { return fmt.Sprintf("t\x00b\x00%08x", uint32(i)*2654435761) }
	val := func(i, gen int) []byte {
		n := 100 + (i*7919+gen*104729)%3000
		return bytes.Repeat([]byte{byte(i), byte(i >> 8), byte(gen), 0xa5}, n/4+1)[:n]
	}
	valid := func(i int, data []byte) bool {
		if len(data) < 4 {
			return false
		}
		return bytes.Equal(data, val(i, int(data[2])))
	}
	const records, writers = 4000, 2
	var mu sync.Mutex
	gens := make([]int, records) // 0: deleted
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(records/writers)*writers + w // each writer its own keys
				mu.Lock()
				g := gens[i]
				mu.Unlock()
				if g != 0 && rng.IntN(3) == 0 {
					if err := d.DeleteRecord(t.Context(), key(i), driver.Version{}); err != nil {
						t.Error(err)
						return
					}
					g = 0
				} else {
					g = g%250 + 1
					r := driver.Record{Key: key(i), Data: val(i, g)}
					if _, _, err := d.PutRecord(t.Context(), r); err != nil {
						t.Error(err)
						return
					}
				}
				mu.Lock()
				gens[i] = g
				mu.Unlock()
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := n * 31 % records
				r, err := d.GetRecord(t.Context(), key(i))
				if err == nil && !valid(i, r.Data) {
					t.Errorf("GetRecord %d read %d bytes that are no value written", i, len(r.Data))
					return
				}
				if n%50 == 0 {
					recs, err := d.ListRecords(t.Context(), "t\x00b\x00", key(i), 20)
					if err != nil {
						t.Error(err)
						return
					}
					for _, r := range recs {
						// Cut at ListDataMax: a prefix of a value.
						if len(r.Data) < 4 {
							continue
						}
						j := int(r.Data[0]) | int(r.Data[1])<<8
						if r.Key != key(j) || !bytes.HasPrefix(val(j, int(r.Data[2])), r.Data) {
							t.Errorf("ListRecords read %d bytes under %q that are no value written", len(r.Data), r.Key)
							return
						}
					}
				}
			}
		})
	}
	var punched int64
	deadline := time.Now().Add(8 * time.Second)
	for rounds := 0; time.Now().Before(deadline); rounds++ {
		n, _, err := d.punchFree()
		if err != nil {
			t.Fatal(err)
		}
		punched += n
	}
	close(stop)
	wg.Wait()
	t.Logf("punched %d KiB", punched>>10)
	if punched == 0 {
		t.Fatal("nothing punched: the test proves nothing")
	}
	for i := range records {
		r, err := d.GetRecord(t.Context(), key(i))
		switch {
		case gens[i] == 0 && err == nil:
			t.Fatalf("record %d deleted but read", i)
		case gens[i] != 0 && (err != nil || !bytes.Equal(r.Data, val(i, gens[i]))):
			t.Fatalf("record %d: %v (differs)", i, err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	checkIndex(t, filepath.Join(c.Dir, indexFile))
}

// TestReclaimRoundBoundsItsWalk: a round of punchFree that finds nothing
// to punch still stops at reclaimRoundTime (it holds the drive's writers
// off) and the next round goes on from where it stopped; the rounds
// together make a complete pass.
func TestReclaimRoundBoundsItsWalk(t *testing.T) {
	keepInIndex(t) // about index.db's pages
	c := testConfig(t, true)
	d := open(t, c)
	d.noPunch.Store(true) // no background reclaim: this test runs the rounds
	for i := range 3000 {
		r := driver.Record{Key: fmt.Sprintf("t\x00b\x00%08x", uint32(i)*2654435761), Data: bytes.Repeat([]byte{byte(i)}, 100+i%1500)}
		if _, _, err := d.PutRecord(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	flushHeld(t, d)
	// Return what can be, in rounds, until two passes complete (the
	// first leaves the pages no walk had found free before to the next).
	for range 2 {
		for rounds := 0; ; rounds++ {
			_, more, err := d.punchFree()
			if err != nil {
				t.Fatal(err)
			}
			if !more {
				break
			}
			if rounds > 1000 {
				t.Fatal("no complete pass in 1000 rounds")
			}
		}
	}
	old := reclaimRoundTime
	reclaimRoundTime = 0 // every round out of time after its first node
	t.Cleanup(func() { reclaimRoundTime = old })
	var rounds int
	for last := d.reclaimFrom.Load(); ; rounds++ {
		n, more, err := d.punchFree()
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("round %d punched %d bytes after a complete pass", rounds, n)
		}
		if !more {
			break
		}
		from := d.reclaimFrom.Load()
		if from <= last && last > 2 {
			t.Fatalf("round %d went on from page %d, after page %d: no progress", rounds, from, last)
		}
		last = from
		if rounds > 100000 {
			t.Fatal("no complete pass")
		}
	}
	if pages := d.indexSize.Load() / d.pageSize; rounds < 10 {
		t.Fatalf("a pass over %d pages with no time per round took %d rounds: the walk is not bounded", pages, rounds)
	}
}

// TestUnreturnedCountsTheLastCommitsGrowth: what a drive takes for free
// pages not yet returned is measured against index.db's size after its
// last commit, new pages included. Measured against the size noted inside
// the flush's transaction (before the commit allocates the nodes it
// writes), a flush growing the index by megabytes made those megabytes of
// live pages look unreturned and scheduled reclaims during loads.
func TestUnreturnedCountsTheLastCommitsGrowth(t *testing.T) {
	keepInIndex(t) // about index.db's pages
	c := testConfig(t, true)
	d := open(t, c)
	d.noPunch.Store(true) // no reclaim: the measure is what is tested
	for i := range 3000 {
		r := driver.Record{Key: fmt.Sprintf("t\x00b\x00%08x", uint32(i)*2654435761), Data: bytes.Repeat([]byte{byte(i)}, 2000)}
		if _, _, err := d.PutRecord(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	flushHeld(t, d)
	var size int64
	if err := d.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	st := d.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * d.pageSize
	want := allocated(t, filepath.Join(c.Dir, indexFile)) - (size - free)
	if got := d.pendingFree(); got > want+64<<10 || got < want-64<<10 {
		t.Errorf("unreturned = %d KiB, want %d KiB (index %d KiB allocated, %d KiB in size, %d KiB free)",
			got>>10, want>>10, allocated(t, filepath.Join(c.Dir, indexFile))>>10, size>>10, free>>10)
	}
}

// checkIndex runs bbolt's consistency check on the closed index at path.
func checkIndex(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("index check: %v", err)
	}
}

// TestReclaimSparesPagesTheNextFlushTakes: while an index only grows
// (new records, no deletes), the pages a flush frees are the old copies
// of the nodes it rewrote, which the next flush takes again. Punching
// them is a journal operation each, undone by the next flush's writes
// (review 20 M2: about 1,100 such punches in a 60 MB load). A reclaim
// running between every two flushes must leave most of them allocated:
// at the end, the bytes punched over the load may exceed the free pages
// then left by at most a quarter of what was punched.
func TestReclaimSparesPagesTheNextFlushTakes(t *testing.T) {
	keepInIndex(t) // about index.db's pages
	c := testConfig(t, true)
	d := open(t, c)
	d.noPunch.Store(true) // no scheduled reclaim: the test runs each pass
	rng := rand.New(rand.NewPCG(20, 2))
	var punched int64
	pass := func() {
		t.Helper()
		for {
			n, more, err := d.punchFree()
			if err != nil {
				t.Fatal(err)
			}
			punched += n
			if !more {
				return
			}
		}
	}
	for round := range 24 {
		for range 250 {
			r := driver.Record{Key: fmt.Sprintf("t\x00b\x00%016x", rng.Uint64()), Data: make([]byte, 1000+rng.IntN(5000))}
			r.Version[15] = byte(round + 1)
			if _, _, err := d.PutRecord(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		flushHeld(t, d)
		pass()
	}
	// Quiet now: two more passes return what is left free.
	pass()
	pass()
	st := d.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * d.pageSize
	size := d.committedSize()
	wasted := punched - free
	t.Logf("index %d KiB; punched %d KiB over the load, %d KiB free at the end: %d KiB punched and taken again", size>>10, punched>>10, free>>10, wasted>>10)
	if wasted > size/4 {
		t.Errorf("%d KiB punched and taken again by later flushes, want at most a quarter of the %d KiB index", wasted>>10, size>>10)
	}
	if left := allocated(t, filepath.Join(c.Dir, indexFile)) - (size - free); left > 64<<10 {
		t.Errorf("%d KiB of free pages still allocated once the drive is quiet, want at most 64 KiB", left>>10)
	}
}
