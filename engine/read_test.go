package engine

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestReaderCloseStopsSlowRead: closing a Reader while a drive read is
// slow returns at once (it cancels the read's ctx) instead of waiting on
// the drive.
func TestReaderCloseStopsSlowRead(t *testing.T) {
	const latency = 5 * time.Second
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	key := "slow"
	r.put(t, key, randBytes(4, 500_000), -1)
	a, err := r.e.Open(t.Context(), "t", "c", key)
	if err != nil {
		t.Fatal(err)
	}
	// Every drive slow: the read cannot go on from parity instead.
	for j := range 4 {
		r.faultyOf(key, j).SetLatency(latency)
		defer r.faultyOf(key, j).SetLatency(0)
	}
	rc := a.Reader(t.Context(), 0, a.Info.Size)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	rc.Close()
	if d := time.Since(start); d > latency/2 {
		t.Fatalf("Close took %v waiting on a drive %v slow", d, latency)
	}
	if n, err := rc.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("Read after Close = %d, %v; want an error", n, err)
	}
}

// TestCancelledReadIsNotQuorumLoss: a read whose ctx ends while the drives
// are slow fails with the ctx's error, not ErrReadQuorum, and queues no
// heal, even when the artifact was opened degraded (a parity drive
// offline): the read found nothing to repair.
func TestCancelledReadIsNotQuorumLoss(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	key := "cancel"
	r.put(t, key, randBytes(5, 500_000), -1)
	r.faultyOf(key, 3).SetOffline(true)
	defer r.faultyOf(key, 3).SetOffline(false)
	a, err := r.e.Open(t.Context(), "t", "c", key)
	if err != nil {
		t.Fatal(err)
	}
	for j := range 3 {
		r.faultyOf(key, j).SetLatency(200 * time.Millisecond)
		defer r.faultyOf(key, j).SetLatency(0)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err = a.WriteRange(ctx, io.Discard, 0, a.Info.Size)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrReadQuorum) {
		t.Fatalf("WriteRange with its ctx ended: err = %v, want context.DeadlineExceeded and not ErrReadQuorum", err)
	}
	if q := r.e.Degraded(); len(q) != 0 {
		t.Fatalf("heal queue after a cancelled read = %v, want empty", q)
	}
}
