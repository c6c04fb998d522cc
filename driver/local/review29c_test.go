package local

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	bolt "go.etcd.io/bbolt"
)

// Review 29c: the record cache (cache.go, b812a10).

// TestReview29cCacheReopenReplayed: a record is cached, then overwritten
// or deleted (held in the log, not yet flushed); the drive goes offline
// (Probe: the log broken, index.db replaced, a failed write probe) and
// is reopened, whose replay writes the new state into index.db. A read
// must serve the new state, not the value cached before the drive went
// offline: reopen takes the new open's log, mem and index, and must take
// its (empty) cache too.
func TestReview29cCacheReopenReplayed(t *testing.T) {
	oldIdle := flushIdle
	flushIdle = time.Hour // the write stays in the log until the drive goes offline
	t.Cleanup(func() { flushIdle = oldIdle })
	for _, del := range []bool{false, true} {
		t.Run(fmt.Sprintf("delete=%v", del), func(t *testing.T) {
			ctx := driver.WithFill(t.Context()) // a GET's read: it fills the cache
			d := open(t, testConfig(t, true))
			v1 := stamp()
			if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: v1, Data: []byte("old")}); err != nil {
				t.Fatal(err)
			}
			flushHeld(t, d)
			if r, err := d.GetRecord(ctx, "k"); err != nil || string(r.Data) != "old" {
				t.Fatalf("first read: %q, %v", r.Data, err)
			}
			if _, ok := cached(d, "k"); !ok {
				t.Fatal("not cached: the test needs the record cached")
			}
			if del {
				if err := d.DeleteRecord(ctx, "k", v1); err != nil {
					t.Fatal(err)
				}
			} else if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: []byte("new")}); err != nil {
				t.Fatal(err)
			}
			d.setOffline(errors.New("review29c: taken offline"))
			if err := d.Probe(ctx); err != nil {
				t.Fatalf("Probe (reopen): %v", err)
			}
			r, err := d.GetRecord(ctx, "k")
			switch {
			case del && !errors.Is(err, driver.ErrNotFound):
				t.Errorf("read after reopen of a deleted record: %q, %v; want ErrNotFound", r.Data, err)
			case !del && (err != nil || string(r.Data) != "new"):
				t.Errorf("read after reopen: %q, %v; want new (the replayed write)", r.Data, err)
			}
		})
	}
}

// TestReview29cCacheReplacedDrive: a record is cached, then the disk is
// replaced (its contents vanish); Probe takes the drive offline and
// formats the empty directory afresh. The new drive holds no record: a
// read must not serve the old disk's cached one.
func TestReview29cCacheReplacedDrive(t *testing.T) {
	ctx := driver.WithFill(t.Context()) // a GET's read: it fills the cache
	c := testConfig(t, true)
	d := open(t, c)
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: []byte("old disk")}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	if _, err := d.GetRecord(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := cached(d, "k"); !ok {
		t.Fatal("not cached: the test needs the record cached")
	}
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(c.Dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("Probe of a wiped drive: %v", err)
	}
	if recs, err := d.ListRecords(ctx, "", "", 10); err != nil || len(recs) != 0 {
		t.Fatalf("listing of the new drive: %d records, %v", len(recs), err)
	}
	if r, err := d.GetRecord(ctx, "k"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("read on the replaced drive: %q, %v; want ErrNotFound (the old disk's record, cached)", r.Data, err)
	}
}

// TestReview29cCacheAfterAttachOffline: a drive Attach found offline and
// a Probe brought online has a record cache like one Open opened.
func TestReview29cCacheAfterAttachOffline(t *testing.T) {
	ctx := driver.WithFill(t.Context()) // a GET's read: it fills the cache
	c := testConfig(t, true)
	c.Dir = filepath.Join(c.Dir, "drive")
	if err := os.WriteFile(c.Dir, []byte("not a drive"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Attach(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := os.Remove(c.Dir); err != nil {
		t.Fatal(err)
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	if _, err := d.GetRecord(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	d.commit.memMu.RLock()
	on := d.commit.cache != nil
	d.commit.memMu.RUnlock()
	if !on {
		t.Fatal("no record cache on a drive brought online by Probe after Attach found it offline")
	}
	if _, ok := cached(d, "k"); !ok {
		t.Error("a record read from index.db was not cached")
	}
}

// TestReview29cCacheAddAccounting: add replacing a key with a larger
// value while the cache is full may evict the key's own old entry in its
// loop, whose bytes it had already taken off: bytes then undercounts and
// the cache outgrows cacheBytes. An entry larger than cacheBytes must not
// be kept either.
func TestReview29cCacheAddAccounting(t *testing.T) {
	old := cacheBytes
	cacheBytes = 4 << 10
	t.Cleanup(func() { cacheBytes = old })
	rc := newRecordCache()
	check := func(when string) {
		t.Helper()
		sum := 0
		for k, v := range rc.vals {
			sum += len(k) + len(v) + cacheEntryOverhead
		}
		if sum != rc.bytes || sum > cacheBytes {
			t.Fatalf("%s: entries take %d bytes, bytes says %d, bound %d", when, sum, rc.bytes, cacheBytes)
		}
	}
	for i := range 2000 {
		k := fmt.Sprintf("k%02d", i%16)
		rc.add(k, bytes.Repeat([]byte{'v'}, 100+(i*37)%400))
		check(fmt.Sprintf("add %d", i))
	}
	rc.add("huge", make([]byte, cacheBytes))
	check("add of a value larger than the cache")
}

// BenchmarkReview29cCacheAddFull: the cost of add on a full cache (every
// add evicts) with small values: heavy miss traffic.
func BenchmarkReview29cCacheAddFull(b *testing.B) {
	for _, vlen := range []int{100, 1000, 16 << 10} {
		b.Run(fmt.Sprintf("val=%d", vlen), func(b *testing.B) {
			rc := newRecordCache()
			val := make([]byte, vlen)
			keys := make([]string, 1<<20)
			for i := range keys {
				keys[i] = fmt.Sprintf("bucket/object-%012d", i)
			}
			for i := 0; rc.bytes+len(keys[0])+vlen+cacheEntryOverhead <= cacheBytes; i++ {
				rc.add(keys[i], val)
			}
			b.ReportMetric(float64(len(rc.vals)), "entries")
			b.ResetTimer()
			for i := range b.N {
				rc.add(keys[i%len(keys)], val)
			}
		})
	}
}

// TestReview29cCacheUncertainCommit (coverage; passes before and after):
// a read misses, reads the old value from index.db, and before it caches
// it the key is overwritten and a flush's commit writes the new value
// into index.db but reports an error (emulated as in revUncertain: the
// mutations stay held). The read must not cache the old value, and the
// new value must be served while held and after the flush that commits.
func TestReview29cCacheUncertainCommit(t *testing.T) {
	oldIdle := flushIdle
	flushIdle = time.Hour
	t.Cleanup(func() { flushIdle = oldIdle })
	for _, size := range []int{10, 8 << 10} { // inline, packed
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			ctx := driver.WithFill(t.Context()) // a GET's read: it fills the cache
			d := open(t, testConfig(t, true))
			cm := &d.commit
			if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: bytes.Repeat([]byte("o"), size)}); err != nil {
				t.Fatal(err)
			}
			flushHeld(t, d)
			newData := bytes.Repeat([]byte("n"), size)
			var once sync.Once
			var hookErr error
			cm.beforeRemember = func(string) {
				once.Do(func() {
					if _, _, hookErr = d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: newData}); hookErr != nil {
						return
					}
					cm.memMu.Lock()
					fl := maps.Clone(cm.mem.byKey)
					cm.memMu.Unlock()
					hookErr = d.db.Update(func(tx *bolt.Tx) error {
						_, err := applyMutations(tx, slices.Sorted(maps.Keys(fl)), fl, cm.seq, cm.packs)
						return err
					})
					cm.packs.committed(&packChanges{active: cm.packs.active, end: cm.packs.end})
				})
			}
			if r, err := d.GetRecord(ctx, "k"); err != nil || r.Data[0] != 'o' {
				t.Fatalf("racing read: %v", err)
			}
			cm.beforeRemember = nil
			if hookErr != nil {
				t.Fatal(hookErr)
			}
			if _, ok := cached(d, "k"); ok {
				t.Fatal("the old value was cached under a held write")
			}
			for _, when := range []string{"held", "flushed", "flushed, cached"} {
				if when == "flushed" {
					flushHeld(t, d)
				}
				if r, err := d.GetRecord(ctx, "k"); err != nil || !bytes.Equal(r.Data, newData) {
					t.Fatalf("%s: read %s, %v; want the new value", when, short(r.Data), err)
				}
			}
			if v, ok := cached(d, "k"); !ok || !bytes.Equal(v[driver.VersionSize:], newData) {
				t.Errorf("cache after the flush: %v %s", ok, short(v))
			}
		})
	}
}

// TestReview29cCacheStressOffline: writers replace records with newer
// versions and readers read them while the drive is taken offline and
// reopened again and again (each reopen replays what the log held): a
// reader never sees a key's version go back.
func TestReview29cCacheStressOffline(t *testing.T) {
	setFlush(t, 16, 1<<20)
	ctx := driver.WithFill(t.Context()) // a GET's read: it fills the cache
	d := open(t, testConfig(t, true))
	const keys = 8
	var seq atomic.Uint64
	put := func(k int) error {
		n := seq.Add(1)
		var v driver.Version
		binary.BigEndian.PutUint64(v[8:], n)
		_, _, err := d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("k%d", k), Version: v, Data: fmt.Appendf(nil, "v%d", n)})
		if errors.Is(err, driver.ErrStale) || errors.Is(err, driver.ErrOffline) {
			err = nil
		}
		return err
	}
	for k := range keys {
		if err := put(k); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 2 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := put(mrand.IntN(keys)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var reads, reopens atomic.Int64
	for range 3 {
		wg.Go(func() {
			seen := make([]uint64, keys)
			for time.Now().Before(deadline) {
				k := mrand.IntN(keys)
				r, err := d.GetRecord(ctx, fmt.Sprintf("k%d", k))
				if errors.Is(err, driver.ErrOffline) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				n := binary.BigEndian.Uint64(r.Version[8:])
				if string(r.Data) != fmt.Sprintf("v%d", n) {
					errs <- fmt.Errorf("k%d: version %d with data %q", k, n, r.Data)
					return
				}
				if n < seen[k] {
					errs <- fmt.Errorf("k%d: read version %d after %d", k, n, seen[k])
					return
				}
				seen[k] = n
				reads.Add(1)
			}
		})
	}
	wg.Go(func() {
		for time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			d.setOffline(errors.New("review29c: offline"))
			if err := d.Probe(ctx); err != nil {
				errs <- fmt.Errorf("reopen: %w", err)
				return
			}
			reopens.Add(1)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if reads.Load() == 0 || reopens.Load() == 0 {
		t.Errorf("%d reads, %d reopens: the stress did not run", reads.Load(), reopens.Load())
	}
}
