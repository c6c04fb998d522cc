package local

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/vaultaire/vaultaire/driver"

	bolt "go.etcd.io/bbolt"
)

// TestReview28pCommitterNoStaleWake: with commitOps and their wake
// channels recycled (2a5e20f), no caller of do returns before a commit that
// ran its fn (a stale signal left in a recycled channel would wake its next
// user as if its batch were committed), and each acknowledged mutation is
// in the index; failing mutations fail alone. Run with -race: an op used
// after it went back to the pool is a data race on its fields.
func TestReview28pCommitterNoStaleWake(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(recordsBucket)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var commits atomic.Int64
	c := &committer{db: db, committed: func(int, error) { commits.Add(1) }}
	errBad := errors.New("bad op")
	const workers, each = 32, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				bad := rand.IntN(7) == 0
				var ranAt atomic.Int64
				ranAt.Store(-1)
				key := fmt.Appendf(nil, "w%02d/%04d", w, i)
				err := c.do(func(b kv) error {
					ranAt.Store(commits.Load())
					if bad {
						return errBad
					}
					return b.Put(key, []byte("v"))
				})
				if at := ranAt.Load(); at < 0 || commits.Load() <= at {
					t.Errorf("%s: do returned (err %v) before a commit ran its fn (ran at commit %d, now %d)", key, err, at, commits.Load())
					return
				}
				if bad != errors.Is(err, errBad) || !bad && err != nil {
					t.Errorf("%s: err %v, bad %v", key, err, bad)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(recordsBucket)
		n := 0
		b.ForEach(func(k, v []byte) error { n++; return nil })
		if n == 0 {
			t.Error("nothing stored")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if c.leading || len(c.queue) != 0 {
		t.Errorf("committer not idle: leading %v, %d queued", c.leading, len(c.queue))
	}
}

// TestReview28pAckedRecordsSurviveCrash: concurrent PutRecords on a
// durable drive, with random cancels and one record-log fdatasync in
// every few failing (never the cut-off's that follows), then a crash
// (no drain) and a reopen: every PutRecord that returned nil is in the
// index, at the version it wrote or newer; a failure wraps the injected
// EIO or ctx's error. A stale wake of a recycled commitOp (2a5e20f)
// would acknowledge a record whose frame failed or was never written.
func TestReview28pAckedRecordsSurviveCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	real := fdatasync
	var calls atomic.Int64
	fdatasync = func(f *os.File) error {
		if calls.Add(1)%5 == 2 {
			return syscall.EIO // the bytes are in the file all the same
		}
		return real(f)
	}
	defer func() { fdatasync = real }()
	const workers, each = 16, 40
	acked := make([][]driver.Record, workers)
	var failed, eio atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := driver.Record{Key: fmt.Sprintf("t/c/w%02d-%03d", w, i), Version: stamp(), Data: []byte(fmt.Sprint(w, i))}
				pctx, cancel := context.WithCancel(ctx)
				if rand.IntN(4) == 0 {
					cancel()
				}
				_, _, err := d.PutRecord(pctx, r)
				cancel()
				if err == nil {
					acked[w] = append(acked[w], r)
					continue
				}
				failed.Add(1)
				if errors.Is(err, syscall.EIO) {
					eio.Add(1)
				}
				if !errors.Is(err, syscall.EIO) && !errors.Is(err, context.Canceled) && !errors.Is(err, driver.ErrOffline) {
					t.Errorf("%s: %v", r.Key, err)
				}
			}
		})
	}
	wg.Wait()
	fdatasync = real
	crash(t, d)
	d, err = Open(ctx, Config{Dir: dir, ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := 0
	for _, rs := range acked {
		for _, r := range rs {
			n++
			got, err := d.GetRecord(ctx, r.Key)
			if err != nil {
				t.Errorf("acknowledged %s lost after reopen: %v", r.Key, err)
				continue
			}
			if got.Version.Compare(r.Version) < 0 || string(got.Data) != string(r.Data) {
				t.Errorf("acknowledged %s: got %v %q, want %v %q", r.Key, got.Version, got.Data, r.Version, r.Data)
			}
		}
	}
	if n == 0 || eio.Load() == 0 {
		t.Fatalf("acknowledged %d, failed on fdatasync %d: the test did not exercise both", n, eio.Load())
	}
	t.Logf("acknowledged %d, failed %d (%d on fdatasync), fdatasyncs %d", n, failed.Load(), eio.Load(), calls.Load())
}

// TestReview28pRecordErrorSame: recordError (2e30b49) prints what
// fmt.Errorf("driver/local: %s record version %v: %w") printed and
// answers errors.Is/As through it alike.
func TestReview28pRecordErrorSame(t *testing.T) {
	v := stamp()
	pe := &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}
	for _, inner := range []error{driver.ErrStale, driver.ErrNotFound, noSpace(pe), fmt.Errorf("wrapped: %w", driver.ErrStale)} {
		for _, op := range []string{"put", "delete"} {
			got := error(&recordError{op: op, v: v, err: inner})
			want := fmt.Errorf("driver/local: %s record version %v: %w", op, v, inner)
			if got.Error() != want.Error() {
				t.Errorf("message %q, want %q", got, want)
			}
			for _, target := range []error{driver.ErrStale, driver.ErrNotFound, driver.ErrNoSpace, syscall.ENOSPC} {
				if errors.Is(got, target) != errors.Is(want, target) {
					t.Errorf("%v: errors.Is %v differs", got, target)
				}
			}
			var p1, p2 *os.PathError
			if errors.As(got, &p1) != errors.As(want, &p2) {
				t.Errorf("%v: errors.As *os.PathError differs", got)
			}
		}
	}
	// And from PutRecord itself: a stale write.
	ctx := t.Context()
	d, err := Open(ctx, Config{Dir: t.TempDir(), ID: "d", ClusterID: "c", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	newer := stamp()
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "t/c/k", Version: newer, Data: []byte("n")}); err != nil {
		t.Fatal(err)
	}
	_, _, err = d.PutRecord(ctx, driver.Record{Key: "t/c/k", Version: v, Data: []byte("o")})
	if !errors.Is(err, driver.ErrStale) || err.Error() != fmt.Sprintf("driver/local: put record version %v: %v", v, driver.ErrStale) {
		t.Fatalf("stale put: %v", err)
	}
	err = d.DeleteRecord(ctx, "t/c/k", v)
	if err != nil && !errors.Is(err, driver.ErrStale) {
		t.Fatalf("stale delete: %v", err)
	}
}
