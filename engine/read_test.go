package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
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

// TestReaderInlineReadAtOnce: a short range of an inline artifact is read
// when Reader is called (readDone) and gives what a streamed read gives:
// the bytes, io.EOF after them (a ReadAll and a WriteTo), the read's error
// after the bytes read before it when too few shards are left, and an
// error for a Read after Close.
func TestReaderInlineReadAtOnce(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	ctx := t.Context()
	data := randBytes(7, 4<<10)
	r.put(t, "small", data, int64(len(data)))
	a, err := r.e.Open(ctx, "t", "c", "small")
	if err != nil {
		t.Fatal(err)
	}
	for _, rg := range []struct{ off, n int64 }{{0, 4 << 10}, {100, 1000}, {4<<10 - 1, 1}, {0, 0}} {
		rc := a.Reader(ctx, rg.off, rg.n)
		if _, ok := rc.(*readDone); !ok {
			t.Fatalf("Reader of %d bytes of an inline artifact is a %T, want *readDone", rg.n, rc)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, data[rg.off:rg.off+rg.n]) {
			t.Fatalf("ReadAll(Reader(%d, %d)) = %d bytes, %v; want the range", rg.off, rg.n, len(got), err)
		}
		rc.Close()
		var buf bytes.Buffer
		rc = a.Reader(ctx, rg.off, rg.n)
		if n, err := rc.(io.WriterTo).WriteTo(&buf); err != nil || n != rg.n || !bytes.Equal(buf.Bytes(), data[rg.off:rg.off+rg.n]) {
			t.Fatalf("WriteTo of Reader(%d, %d) = %d, %v; want the range", rg.off, rg.n, n, err)
		}
		rc.Close()
	}
	rc := a.Reader(ctx, 0, 10)
	rc.Close()
	if n, err := rc.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("Read after Close = %d, %v; want an error", n, err)
	}
	if _, err := io.ReadAll(a.Reader(ctx, 0, int64(len(data))+1)); !errors.Is(err, ErrInvalidRange) {
		t.Fatalf("Reader past the end: %v, want ErrInvalidRange", err)
	}
	// Too few shards: the holders of three of four drives lost.
	b := *a
	b.holders = slices.Clone(a.holders)
	for j := range 3 {
		b.holders[j] = nil
	}
	if _, err := io.ReadAll(b.Reader(ctx, 0, int64(len(data)))); !errors.Is(err, ErrReadQuorum) {
		t.Fatalf("Reader with one shard of four: %v, want ErrReadQuorum", err)
	}
}
