package local

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

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
			errs[i] = c.do(func(b *bolt.Bucket) error {
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
