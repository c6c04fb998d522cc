package local

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"

	bolt "go.etcd.io/bbolt"
)

// TestCommitterIsolatesFailures checks that a mutation failing its shared
// transaction fails alone.
func TestCommitterIsolatesFailures(t *testing.T) {
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
	c := &committer{db: db}
	errBad := errors.New("bad op")
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = c.do(func(b kv) error {
				if i%10 == 3 {
					return errBad
				}
				return b.Put(fmt.Appendf(nil, "k%03d", i), []byte("v"))
			})
		})
	}
	wg.Wait()
	if err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(recordsBucket)
		for i, err := range errs {
			bad := i%10 == 3
			if bad != errors.Is(err, errBad) || !bad && err != nil {
				t.Errorf("op %d: err %v", i, err)
			}
			if stored := b.Get(fmt.Appendf(nil, "k%03d", i)) != nil; stored == bad {
				t.Errorf("op %d: stored %v, want %v", i, stored, !bad)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if c.leading || len(c.queue) != 0 {
		t.Errorf("committer not idle: leading %v, %d queued", c.leading, len(c.queue))
	}
}

// TestGroupCommitSharesFsyncs checks, on a durable drive, that concurrent
// PutRecords share one commit (one set of fsyncs) and that none of them
// returns before the commit holding its record, fsyncs included, is done.
//
// The first PutRecord's commit is held in the committed hook (it has been
// written and fsynced but not acknowledged) while 31 more arrive and
// queue; on release they must all go in one second commit.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	ctx := t.Context()
	d, err := Open(ctx, Config{Dir: t.TempDir(), ID: "d", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const n = 32
	var (
		commits  atomic.Int32
		acked    atomic.Int32
		held     = make(chan struct{})
		release  = make(chan struct{})
		batches  []int
		ackedAt  []int32 // acknowledged PutRecords when each commit completed
		batchesM sync.Mutex
	)
	d.commit.committed = func(ops int, err error) {
		if err != nil {
			t.Errorf("commit of %d: %v", ops, err)
		}
		batchesM.Lock()
		batches = append(batches, ops)
		ackedAt = append(ackedAt, acked.Load())
		batchesM.Unlock()
		if commits.Add(1) == 1 {
			close(held)
			<-release
		}
	}
	put := func(i int) error {
		r := driver.Record{Key: fmt.Sprintf("t/c/k%03d", i), Data: bytes.Repeat([]byte{byte(i)}, 4096)}
		r.Version[15] = 1
		_, _, err := d.PutRecord(ctx, r)
		acked.Add(1)
		return err
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = put(0) })
	<-held
	for i := 1; i < n; i++ {
		wg.Go(func() { errs[i] = put(i) })
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d.commit.mu.Lock()
		queued := len(d.commit.queue)
		d.commit.mu.Unlock()
		if queued == n-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d PutRecords queued, want %d", queued, n-1)
		}
		time.Sleep(time.Millisecond)
	}
	if a := acked.Load(); a != 0 {
		t.Fatalf("%d PutRecords acknowledged while the first commit was held", a)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("PutRecord %d: %v", i, err)
		}
	}
	batchesM.Lock()
	defer batchesM.Unlock()
	if want := []int{1, n - 1}; !slices.Equal(batches, want) {
		t.Fatalf("commits of %v mutations, want %v: %d records cost %d commits", batches, want, n, len(batches))
	}
	// No PutRecord of a batch was acknowledged before its commit ended:
	// when the second commit completed only the first had returned.
	if ackedAt[0] != 0 || ackedAt[1] > 1 {
		t.Fatalf("acknowledged before their commit: %v", ackedAt)
	}
	for i := range n {
		got, err := d.GetRecord(ctx, fmt.Sprintf("t/c/k%03d", i))
		if err != nil || len(got.Data) != 4096 || got.Data[0] != byte(i) {
			t.Fatalf("record %d after the commits: %v, %d bytes", i, err, len(got.Data))
		}
	}
}
