package engine

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// TestReplacedByMajority: a replaced version counts for one write only.
func TestReplacedByMajority(t *testing.T) {
	x := &record{Version: driver.Version{1}}
	older := &record{Version: driver.Version{0, 9}}
	t1 := &record{Version: driver.Version{2}, Deleted: true}
	ok := func(prev *record) recordPut { return recordPut{prev: prev} }
	fail := recordPut{err: errors.New("offline")}
	tests := []struct {
		name string
		res  []recordPut
		want *record
	}{
		{"all drives", []recordPut{ok(x), ok(x), ok(x), ok(x), ok(x), ok(x)}, x},
		{"majority", []recordPut{ok(t1), ok(x), ok(x), ok(x), ok(x), ok(t1)}, x},
		{"minority", []recordPut{ok(x), ok(t1), ok(t1), ok(older), ok(x), ok(older)}, nil},
		{"another's majority", []recordPut{ok(x), ok(t1), ok(t1), ok(t1), ok(x), ok(t1)}, t1},
		{"half with slot 0", []recordPut{ok(x), ok(x), ok(x), ok(t1), ok(t1), ok(t1)}, x},
		{"half without slot 0", []recordPut{ok(t1), ok(older), ok(t1), ok(x), ok(x), ok(x)}, nil},
		{"failed drives do not count", []recordPut{fail, ok(x), ok(x), ok(x), ok(x), fail}, x},
		{"half with slot 0 failed", []recordPut{fail, ok(x), ok(x), fail, ok(x), fail}, nil},
		{"too few answered", []recordPut{fail, ok(x), ok(x), fail, fail, fail}, nil},
		{"drives that missed the version", []recordPut{ok(older), ok(x), ok(x), ok(x), ok(x), ok(older)}, x},
		{"nothing replaced", []recordPut{ok(nil), ok(nil), ok(nil), ok(nil)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := replacedByMajority(tc.res); got != tc.want {
				t.Fatalf("replacedByMajority = %v, want %v", got, tc.want)
			}
		})
	}
}

// refusingLocker never grants a lock, as a cluster whose lease another
// node holds; expiring grants locks that have already expired.
type refusingLocker struct{ expired bool }

func (l refusingLocker) LockUpload(ctx context.Context, id string) (func() bool, func(), error) {
	if l.expired {
		return func() bool { return false }, func() {}, nil
	}
	return nil, nil, ErrMetadataUnavailable
}

// TestUploadLockerRefused: without the cluster lock (or with one that
// expired) no multipart operation changes the upload; each fails as
// unavailable.
func TestUploadLockerRefused(t *testing.T) {
	for _, expired := range []bool{false, true} {
		r := newRig(t, rigOptions{drives: 4})
		ctx := t.Context()
		id, err := r.e.CreateUpload(ctx, "t", "c", "k", PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.e.PutPart(ctx, "t", "c", "k", id, 1, bytes.NewReader([]byte("part one")), PutOptions{Size: 8})
		if err != nil {
			t.Fatal(err)
		}
		r.e.cfg.UploadLocker = refusingLocker{expired: expired}
		ops := map[string]func() error{
			"PutPart": func() error {
				_, err := r.e.PutPart(ctx, "t", "c", "k", id, 1, bytes.NewReader([]byte("replaced")), PutOptions{Size: 8})
				return err
			},
			"Complete": func() error {
				_, err := r.e.CompleteUpload(ctx, "t", "c", "k", id, []CompletePart{{Number: 1, ETag: p.ETag}}, nil)
				return err
			},
			"Abort": func() error { return r.e.AbortUpload(ctx, "t", "c", "k", id) },
		}
		for name, op := range ops {
			if err := op(); !errors.Is(err, ErrMetadataUnavailable) {
				t.Fatalf("expired %v: %s without the lock: %v, want ErrMetadataUnavailable", expired, name, err)
			}
		}
		r.e.cfg.UploadLocker = nil
		parts, _, err := r.e.ListParts(ctx, "t", "c", "k", id, 0, 100)
		if err != nil || len(parts) != 1 || parts[0].ETag != p.ETag {
			t.Fatalf("expired %v: the upload changed: %+v, %v", expired, parts, err)
		}
		if _, err := r.e.Head(ctx, "t", "c", "k"); !errors.Is(err, ErrNoSuchArtifact) {
			t.Fatalf("expired %v: artifact visible: %v", expired, err)
		}
	}
}

// countingLocker grants every lock and counts the grants.
type countingLocker struct{ n atomic.Int64 }

func (l *countingLocker) LockUpload(ctx context.Context, id string) (func() bool, func(), error) {
	l.n.Add(1)
	return func() bool { return true }, func() {}, nil
}

// TestUploadSweeperOnlyWhenActive: RunUploadSweeper sweeps (and takes
// upload locks) only on ticks where active reports true, so that in a
// cluster only the Raft leader walks the completion markers.
func TestUploadSweeperOnlyWhenActive(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	ctx := t.Context()
	id, err := r.e.CreateUpload(ctx, "t", "c", "k", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.e.PutPart(ctx, "t", "c", "k", id, 1, bytes.NewReader([]byte("part")), PutOptions{Size: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", "k", id, []CompletePart{{1, p.ETag}}, nil); err != nil {
		t.Fatal(err)
	}
	locks := &countingLocker{}
	r.e.cfg.UploadLocker = locks // the completion's marker stays: one lock per sweep
	var active atomic.Bool
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.e.RunUploadSweeper(sctx, 5*time.Millisecond, active.Load) }()
	defer func() { stop(); <-done }()
	time.Sleep(200 * time.Millisecond)
	if n := locks.n.Load(); n != 0 {
		t.Fatalf("an inactive sweeper took %d upload locks", n)
	}
	active.Store(true)
	for deadline := time.Now().Add(10 * time.Second); locks.n.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("an active sweeper took no upload lock in 10 s")
		}
	}
}
