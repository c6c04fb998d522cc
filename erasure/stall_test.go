package erasure

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// hangWriter blocks its first Write at or after block `at` until release
// is closed, then fails.
type hangWriter struct {
	bytes.Buffer
	at      int
	blocks  int
	release chan struct{}
}

func (w *hangWriter) Write(p []byte) (int, error) {
	if w.blocks++; w.blocks > w.at {
		<-w.release
		return 0, errors.New("released")
	}
	return w.Buffer.Write(p)
}

// TestEncodeDropsStalledWriter: a writer that hangs mid-stream or at the
// last block is dropped once the others are ahead, Encode returns without
// waiting for it, and the other shards decode to the input.
func TestEncodeDropsStalledWriter(t *testing.T) {
	const k, m = 4, 2
	c, err := New(Config{Data: k, Parity: m, StripeSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 40<<10) // 640 KiB: 10 stripes
	for _, tc := range []struct {
		name string
		at   int // block index at which writer 1 hangs
	}{{"first block", 0}, {"mid-stream", 4}, {"last block", 9}} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(unblock)
			bufs := make([]*bytes.Buffer, k+m)
			ws := make([]io.Writer, k+m)
			for j := range ws {
				bufs[j] = new(bytes.Buffer)
				ws[j] = bufs[j]
			}
			hw := &hangWriter{at: tc.at, release: release}
			ws[1] = hw
			var dropped []int
			began := time.Now()
			res, err := c.Encode(t.Context(), bytes.NewReader(data), ws, EncodeOptions{
				Quorum: k, Stall: 500 * time.Millisecond,
				Drop: func(j int) { dropped = append(dropped, j) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("Encode took %v with a stalled writer, want about the stall timeout", took)
			}
			if !errors.Is(res.Errs[1], ErrStalled) {
				t.Errorf("stalled writer's error = %v, want ErrStalled", res.Errs[1])
			}
			if len(dropped) != 1 || dropped[0] != 1 {
				t.Errorf("Drop called for %v, want [1]", dropped)
			}
			for j, e := range res.Errs {
				if j != 1 && e != nil {
					t.Errorf("writer %d: %v", j, e)
				}
			}
			unblock() // the dropped writer's goroutine ends; nothing may panic
			var out bytes.Buffer
			_, err = c.Decode(t.Context(), &out, int64(len(data)), 0, int64(len(data)), func(_ context.Context, j int, off, length int64) (io.ReadCloser, error) {
				if j == 1 {
					return nil, errors.New("dropped")
				}
				b := bufs[j].Bytes()
				return io.NopCloser(bytes.NewReader(b[off:min(off+length, int64(len(b)))])), nil
			})
			if err != nil || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("decode without the dropped shard: %d bytes, %v", out.Len(), err)
			}
		})
	}
}

// stallReader blocks every Read until its ctx ends.
type stallReader struct{ ctx context.Context }

func (r stallReader) Read([]byte) (int, error) { <-r.ctx.Done(); return 0, r.ctx.Err() }
func (r stallReader) Close() error             { return nil }

// TestDecodeSkipsStalledShard: a data shard whose stream hangs (from the
// first block or mid-read) is replaced by parity after ReadStall, its
// stream's ctx is cancelled, and the read returns the right bytes.
func TestDecodeSkipsStalledShard(t *testing.T) {
	const k, m = 4, 2
	c, err := New(Config{Data: k, Parity: m, StripeSize: 64 << 10, ReadStall: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("fedcba9876543210"), 40<<10)
	bufs := make([]*bytes.Buffer, k+m)
	ws := make([]io.Writer, k+m)
	for j := range ws {
		bufs[j] = new(bytes.Buffer)
		ws[j] = bufs[j]
	}
	if _, err := c.Encode(t.Context(), bytes.NewReader(data), ws, EncodeOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		after int64 // bytes of shard 2 served before it hangs
	}{{"hangs at once", 0}, {"hangs mid-read", int64(bufs[2].Len() / 2)}} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var stalled []context.Context
			open := func(ctx context.Context, j int, off, length int64) (io.ReadCloser, error) {
				b := bufs[j].Bytes()
				rd := io.Reader(bytes.NewReader(b[off:min(off+length, int64(len(b)))]))
				if j == 2 {
					mu.Lock()
					stalled = append(stalled, ctx)
					mu.Unlock()
					rd = io.MultiReader(io.LimitReader(rd, max(tc.after-off, 0)), stallReader{ctx})
				}
				return io.NopCloser(rd), nil
			}
			began := time.Now()
			var out bytes.Buffer
			res, err := c.Decode(t.Context(), &out, int64(len(data)), 0, int64(len(data)), open)
			if err != nil || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("decode: %d bytes, %v", out.Len(), err)
			}
			if took := time.Since(began); took > 3*time.Second {
				t.Errorf("decode took %v with a stalled shard, want about ReadStall", took)
			}
			if len(res.Bad) != 1 || res.Bad[0] != 2 {
				t.Errorf("Bad = %v, want [2]", res.Bad)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ctx := range stalled {
				if ctx.Err() == nil {
					t.Error("the stalled stream's ctx was not cancelled")
				}
			}
		})
	}
}
