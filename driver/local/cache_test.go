package local

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// cached returns what d's record cache holds for key.
func cached(d *Driver, key string) ([]byte, bool) {
	d.commit.memMu.RLock()
	defer d.commit.memMu.RUnlock()
	v, ok := d.commit.cache.vals[key]
	return v, ok
}

// short describes b by its first bytes and its length.
func short(b []byte) string {
	if len(b) > 8 {
		return fmt.Sprintf("%q... (%d bytes)", b[:8], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// TestRecordCacheFollowsFlushes: a record GetRecord cached is replaced or
// deleted; reads serve the new state while the log holds it and after a
// flush has written it into index.db, never the cached one.
func TestRecordCacheFollowsFlushes(t *testing.T) {
	small, large := []byte("first"), bytes.Repeat([]byte("L"), 8<<10) // large: a pack holds its data
	tests := []struct {
		name   string
		first  []byte
		second []byte // nil: delete
	}{
		{"overwrite", small, []byte("second")},
		{"overwrite packed", large, bytes.Repeat([]byte("M"), 8<<10)},
		{"delete", small, nil},
		{"delete packed", large, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := driver.WithFill(t.Context()) // a GET's read: it fills the cache
			d := open(t, testConfig(t, true))
			v1 := stamp()
			if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: v1, Data: tc.first}); err != nil {
				t.Fatal(err)
			}
			flushHeld(t, d)
			if r, err := d.GetRecord(ctx, "k"); err != nil || !bytes.Equal(r.Data, tc.first) {
				t.Fatalf("first read: %v, %d bytes", err, len(r.Data))
			}
			if _, ok := cached(d, "k"); !ok {
				t.Fatal("a record read from index.db was not cached")
			}
			if tc.second != nil {
				if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: tc.second}); err != nil {
					t.Fatal(err)
				}
			} else if err := d.DeleteRecord(ctx, "k", v1); err != nil {
				t.Fatal(err)
			}
			for _, when := range []string{"held in the log", "after the flush"} {
				if when == "after the flush" {
					flushHeld(t, d)
					if _, ok := cached(d, "k"); ok {
						t.Errorf("the flush left the replaced record cached")
					}
				}
				r, err := d.GetRecord(ctx, "k")
				switch {
				case tc.second == nil && !errors.Is(err, driver.ErrNotFound):
					t.Errorf("%s: read of a deleted record: %v, %s", when, err, short(r.Data))
				case tc.second != nil && (err != nil || !bytes.Equal(r.Data, tc.second)):
					t.Errorf("%s: read %s (%v), want the second value", when, short(r.Data), err)
				}
			}
		})
	}
}

// TestRecordCacheRefusesReadRacingFlush: a read that looked in the log
// before a flush committed a new value, and read the old one from
// index.db, does not cache what it read.
func TestRecordCacheRefusesReadRacingFlush(t *testing.T) {
	ctx := driver.WithFill(t.Context()) // a GET's read: it fills the cache
	d := open(t, testConfig(t, true))
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	var once sync.Once
	var hookErr error
	d.commit.beforeRemember = func(string) {
		once.Do(func() { // between the read of "old" and caching it
			_, _, hookErr = d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: []byte("new")})
			flushHeld(t, d)
		})
	}
	if r, err := d.GetRecord(ctx, "k"); err != nil || string(r.Data) != "old" {
		t.Fatalf("racing read: %q, %v; want old (read before the write)", r.Data, err)
	}
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	d.commit.beforeRemember = nil
	if v, ok := cached(d, "k"); ok {
		t.Errorf("cached %q, read before a flush that committed since", v[driver.VersionSize:])
	}
	if r, err := d.GetRecord(ctx, "k"); err != nil || string(r.Data) != "new" {
		t.Errorf("read after: %q, %v; want new", r.Data, err)
	}
}

// TestRecordCacheBounded: the cache keeps under cacheBytes however many
// records are read, and skips values over cacheValueMax.
func TestRecordCacheBounded(t *testing.T) {
	old, oldMax := cacheBytes, cacheValueMax
	cacheBytes, cacheValueMax = 16<<10, 1<<10
	t.Cleanup(func() { cacheBytes, cacheValueMax = old, oldMax })
	ctx := driver.WithFill(t.Context()) // a GET's read: it fills the cache
	d := open(t, testConfig(t, true))
	for i := range 200 {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("k%03d", i), Version: stamp(), Data: bytes.Repeat([]byte{byte(i)}, 300)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "big", Version: stamp(), Data: make([]byte, 2<<10)}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	for round := range 2 {
		for i := range 200 {
			r, err := d.GetRecord(ctx, fmt.Sprintf("k%03d", i))
			if err != nil || len(r.Data) != 300 || r.Data[0] != byte(i) {
				t.Fatalf("round %d, k%03d: %v", round, i, err)
			}
		}
	}
	if _, err := d.GetRecord(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	d.commit.memMu.RLock()
	n, size := len(d.commit.cache.vals), d.commit.cache.bytes
	_, big := d.commit.cache.vals["big"]
	d.commit.memMu.RUnlock()
	if size > cacheBytes || n == 0 || n >= 200 {
		t.Errorf("cache holds %d records, %d bytes; want some, at most %d bytes", n, size, cacheBytes)
	}
	if big {
		t.Error("a value over cacheValueMax was cached")
	}
}

// TestRecordCacheStress: writers replace records with newer versions
// while flushes run often and readers read them; a reader never sees a
// key's version go back, nor data that is not its version's.
func TestRecordCacheStress(t *testing.T) {
	setFlush(t, 16, 1<<20)
	ctx := driver.WithFill(t.Context()) // a GET's read: it fills the cache
	d := open(t, testConfig(t, true))
	const keys = 8
	var seq atomic.Uint64
	put := func(k int) error {
		n := seq.Add(1)
		var v driver.Version
		v[15] = byte(n)
		v[14] = byte(n >> 8)
		v[13] = byte(n >> 16)
		_, _, err := d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("k%d", k), Version: v, Data: fmt.Appendf(nil, "v%d", n)})
		if errors.Is(err, driver.ErrStale) {
			err = nil // a newer one won
		}
		return err
	}
	for k := range keys {
		if err := put(k); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 2 {
		wg.Go(func() {
			for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
				if err := put(rand.IntN(keys)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var reads atomic.Int64
	for range 3 {
		wg.Go(func() {
			seen := make([]uint64, keys)
			for i := 0; i < 200000 && time.Now().Before(deadline); i++ {
				k := rand.IntN(keys)
				r, err := d.GetRecord(ctx, fmt.Sprintf("k%d", k))
				if err != nil {
					errs <- err
					return
				}
				n := uint64(r.Version[15]) | uint64(r.Version[14])<<8 | uint64(r.Version[13])<<16
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
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if reads.Load() == 0 || seq.Load() < 100 {
		t.Errorf("%d reads, %d writes: the stress did not run", reads.Load(), seq.Load())
	}
}

// TestRecordCacheUncached: a read whose ctx carries driver.Uncached (the
// scrubber's) reads index.db, not the cache, and does not fill it.
func TestRecordCacheUncached(t *testing.T) {
	ctx := driver.WithFill(t.Context()) // a GET's read: it fills the cache
	d := open(t, testConfig(t, true))
	v := stamp()
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: v, Data: []byte("on disk")}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	if _, err := d.GetRecord(driver.Uncached(ctx), "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := cached(d, "k"); ok {
		t.Error("an uncached read filled the cache")
	}
	if _, err := d.GetRecord(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	d.commit.memMu.Lock() // what a cached copy no longer matching the disk would look like
	d.commit.cache.vals["k"] = append(v[:], "in the cache"...)
	d.commit.memMu.Unlock()
	if r, err := d.GetRecord(driver.Uncached(ctx), "k"); err != nil || string(r.Data) != "on disk" {
		t.Errorf("uncached read: %q, %v; want index.db's", r.Data, err)
	}
	if r, err := d.GetRecord(ctx, "k"); err != nil || string(r.Data) != "in the cache" {
		t.Errorf("cached read: %q, %v; want the cache's (the test's setup)", r.Data, err)
	}
}

// TestRecordCacheFillsOnlyServingReads: only a read marked with
// driver.WithFill (a GET's or HEAD's) fills the cache; others (a
// listing's, a delete's, a heal's lookups) read index.db and keep nothing.
func TestRecordCacheFillsOnlyServingReads(t *testing.T) {
	ctx := t.Context()
	d := open(t, testConfig(t, true))
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	if _, err := d.GetRecord(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := cached(d, "k"); ok {
		t.Error("a read not marked as serving filled the cache")
	}
	if _, err := d.GetRecord(driver.WithFill(ctx), "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := cached(d, "k"); !ok {
		t.Error("a serving read did not fill the cache")
	}
}
