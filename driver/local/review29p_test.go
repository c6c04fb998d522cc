package local

import (
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// TestReview29pPeekMatchesGet: wherever PeekRecord answers (ok), its
// answer is GetRecord's: a record held in the log, a delete held in the
// log, a cached record, a key never read; and it answers nothing for a
// drive offline, closed, or an invalid key.
func TestReview29pPeekMatchesGet(t *testing.T) {
	ctx := driver.WithFill(t.Context()) // a GET's reads: they fill the cache
	d := open(t, testConfig(t, true))
	same := func(what, key string, wantOK bool) {
		t.Helper()
		pr, ok, perr := d.PeekRecord(key)
		if ok != wantOK {
			t.Errorf("%s: PeekRecord ok %v, want %v", what, ok, wantOK)
		}
		if !ok {
			return
		}
		gr, gerr := d.GetRecord(ctx, key)
		if errors.Is(perr, driver.ErrNotFound) != errors.Is(gerr, driver.ErrNotFound) || (perr == nil) != (gerr == nil) {
			t.Errorf("%s: PeekRecord err %v, GetRecord %v", what, perr, gerr)
		}
		if perr == nil && (pr.Key != gr.Key || pr.Version != gr.Version || string(pr.Data) != string(gr.Data) || pr.Truncated != gr.Truncated || (pr.Data == nil) != (gr.Data == nil)) {
			t.Errorf("%s: PeekRecord %+v, GetRecord %+v", what, pr, gr)
		}
	}
	put := func(key, data string) {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: key, Version: stamp(), Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	put("a", "held")
	put("e", "")
	put("x", "to delete")
	if err := d.DeleteRecord(ctx, "x", driver.Version{}); err != nil {
		t.Fatal(err)
	}
	same("held", "a", true)
	same("held, empty data", "e", true)
	same("a delete held", "x", true)
	same("never written", "nope", false)
	flushHeld(t, d)
	same("flushed, not read", "a", false)
	same("a delete flushed", "x", false)
	if _, err := d.GetRecord(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetRecord(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	same("cached", "a", true)
	same("cached, empty data", "e", true)
	same("invalid key", "", false)
	d.setOffline(errors.New("review29p: offline"))
	same("offline", "a", false)
	if err := d.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	same("reopened: cache emptied", "a", false)
	if _, err := d.GetRecord(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	same("cached again", "a", true)
	d.Close()
	if _, ok, _ := d.PeekRecord("a"); ok {
		t.Error("closed: PeekRecord answered")
	}
}

// TestReview29pPeekStressOffline: writers, readers that peek (and read
// with GetRecord, which fills the cache, when a peek cannot answer) and
// setOffline/Probe cycles: a reader never sees a key's version go back,
// nor data not its version's.
func TestReview29pPeekStressOffline(t *testing.T) {
	setFlush(t, 16, 1<<20)
	ctx := driver.WithFill(t.Context()) // reads fill the cache, which peeks then read
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
	var peeks, reopens atomic.Int64
	for range 3 {
		wg.Go(func() {
			seen := make([]uint64, keys)
			for time.Now().Before(deadline) {
				k := mrand.IntN(keys)
				key := fmt.Sprintf("k%d", k)
				r, ok, err := d.PeekRecord(key)
				if ok {
					peeks.Add(1)
				} else {
					r, err = d.GetRecord(ctx, key)
					if errors.Is(err, driver.ErrOffline) {
						continue
					}
				}
				if err != nil {
					errs <- fmt.Errorf("%s: peeked %v: %w", key, ok, err)
					return
				}
				n := binary.BigEndian.Uint64(r.Version[8:])
				if string(r.Data) != fmt.Sprintf("v%d", n) {
					errs <- fmt.Errorf("%s: version %d with data %q (peeked %v)", key, n, r.Data, ok)
					return
				}
				if n < seen[k] {
					errs <- fmt.Errorf("%s: read version %d after %d (peeked %v)", key, n, seen[k], ok)
					return
				}
				seen[k] = n
			}
		})
	}
	wg.Go(func() {
		for time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			d.setOffline(errors.New("review29p: offline"))
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
	if peeks.Load() == 0 || reopens.Load() == 0 {
		t.Errorf("%d peeks, %d reopens: the stress did not run", peeks.Load(), reopens.Load())
	}
}
