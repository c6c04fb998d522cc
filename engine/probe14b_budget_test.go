package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// errAfterReader returns n bytes of data, then err (after calling at, if set).
type errAfterReader struct {
	r   io.Reader
	n   int64
	err error
	at  func()
}

func (e *errAfterReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		if e.at != nil {
			e.at()
			e.at = nil
		}
		if e.err != nil {
			return 0, e.err
		}
		return e.r.Read(p)
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	return n, err
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("client went away")
	}
	return len(p), nil
}

// TestProbe14bStripedBudgetErrorPaths: every error and cancel path of a
// striped Put and Get gives back the parts of the shared budget it took.
func TestProbe14bStripedBudgetErrorPaths(t *testing.T) {
	// (fixed after the probe of session 14: a regression test now)
	r := newStripeRig(t, 8)
	chunk := stripeChunkStripes * stripeTestStripe
	size := 30 * chunk
	data := randBytes(77, size)
	ctx := t.Context()
	r.put(t, "base", data, int64(size))
	check := func(what string) {
		t.Helper()
		r.e.WaitBackground()
		if n := len(r.e.parts); n != 0 {
			t.Errorf("%s: %d parts of the budget still held", what, n)
		}
	}
	// Body error mid-Put.
	_, err := r.e.Put(ctx, "t", "c", "k1", &errAfterReader{r: bytes.NewReader(data), n: int64(5 * chunk), err: errors.New("body broke")}, PutOptions{Size: int64(size)})
	if err == nil {
		t.Fatal("Put with broken body succeeded")
	}
	check("body error")
	// Short body.
	_, err = r.e.Put(ctx, "t", "c", "k2", bytes.NewReader(data[:5*chunk]), PutOptions{Size: int64(size)})
	if err == nil {
		t.Fatal("Put with short body succeeded")
	}
	check("short body")
	// Too long body.
	_, err = r.e.Put(ctx, "t", "c", "k2", bytes.NewReader(data), PutOptions{Size: int64(size - 1)})
	if err == nil {
		t.Fatal("Put with long body succeeded")
	}
	check("long body")
	// ctx cancelled mid-Put.
	cctx, cancel := context.WithCancel(ctx)
	_, err = r.e.Put(cctx, "t", "c", "k3", &errAfterReader{r: bytes.NewReader(data), n: int64(7 * chunk), at: cancel}, PutOptions{Size: int64(size)})
	cancel()
	if err == nil {
		t.Log("Put with ctx cancelled mid-body succeeded")
	}
	check("ctx cancelled")
	// Write quorum lost mid-Put (2+1: two drives down).
	_, err = r.e.Put(ctx, "t", "c", "k4", &errAfterReader{r: bytes.NewReader(data), n: int64(6 * chunk), at: func() {
		r.faulty[0].SetOffline(true)
		r.faulty[1].SetOffline(true)
		r.faulty[2].SetOffline(true)
	}}, PutOptions{Size: int64(size)})
	for _, f := range r.faulty {
		f.SetOffline(false)
	}
	if err == nil {
		t.Log("Put with 3 of 6 drives down mid-body succeeded")
	}
	check("write quorum lost")
	// Get: writer fails early.
	a, err := r.e.Open(ctx, "t", "c", "base")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WriteRange(ctx, &failWriter{n: chunk + 10}, 0, int64(size)); err == nil {
		t.Fatal("WriteRange into a failing writer succeeded")
	}
	check("get writer error")
	// Reader closed early.
	rc := a.Reader(ctx, 0, int64(size))
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	check("reader closed early")
	// Range read across parts, ctx cancelled.
	cctx, cancel = context.WithCancel(ctx)
	rc = a.Reader(cctx, int64(chunk/2), int64(20*chunk))
	io.ReadFull(rc, buf)
	cancel()
	io.Copy(io.Discard, rc)
	rc.Close()
	check("range read ctx cancelled")
	// Degraded read with a drive hung.
	r.faulty[3].SetHang(true)
	hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
	var out bytes.Buffer
	err = a.WriteRange(hctx, &out, 0, int64(size))
	hcancel()
	r.faulty[3].SetHang(false)
	t.Logf("read with a drive hung: %v", err)
	check("hung drive read")
	// Many at once, some failing.
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			if i%2 == 0 {
				var sink failWriter
				sink.n = (i + 1) * chunk
				a.WriteRange(ctx, &sink, 0, int64(size))
				return
			}
			r.e.Put(ctx, "t", "c", fmt.Sprintf("m%d", i), &errAfterReader{r: bytes.NewReader(data), n: int64(i * chunk), err: errors.New("x")}, PutOptions{Size: int64(size)})
		})
	}
	wg.Wait()
	check("concurrent failures")
}
