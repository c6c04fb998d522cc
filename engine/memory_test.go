package engine

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// patternReader yields n pseudo-random bytes without holding them.
type patternReader struct {
	n, state uint64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	b = b[:min(uint64(len(b)), p.n)]
	var word [8]byte
	for i := 0; i < len(b); i += 8 {
		p.state ^= p.state << 13
		p.state ^= p.state >> 7
		p.state ^= p.state << 17
		binary.LittleEndian.PutUint64(word[:], p.state)
		copy(b[i:], word[:])
	}
	p.n -= uint64(len(b))
	return len(b), nil
}

// heapPeak samples live heap bytes until stop is called and returns the peak
// above the level at start.
func heapPeak() (stop func() uint64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v := read(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		if p := peak.Load(); p > base {
			return p - base
		}
		return 0
	}
}

// TestPutGet1GiBMemory streams 1 GiB through Put and Get and checks that the
// live heap never grows by more than a few stripes. The heap includes
// garbage not yet collected, so the bound is loose; the figure is logged.
func TestPutGet1GiBMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2 GiB")
	}
	const size = 1 << 30
	r := newRig(t, rigOptions{drives: 4}) // 2+2, 1 MiB stripes
	ctx := context.Background()

	stop := heapPeak()
	info, err := r.e.Put(ctx, "t", "c", "huge", &patternReader{n: size, state: 88172645463325252}, PutOptions{Size: size})
	putPeak := stop()
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.e.Open(ctx, "t", "c", "huge")
	if err != nil {
		t.Fatal(err)
	}
	h := md5.New()
	stop = heapPeak()
	err = a.WriteRange(ctx, h, 0, size)
	getPeak := stop()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != info.ETag {
		t.Fatalf("Get of 1 GiB: md5 %s, want %s", got, info.ETag)
	}
	t.Logf("1 GiB Put: peak live heap growth %.1f MiB; Get: %.1f MiB (stripe 1 MiB, 2+2: one stripe buffer is 2 MiB)",
		float64(putPeak)/(1<<20), float64(getPeak)/(1<<20))
	const limit = 32 << 20 // a few stripes plus uncollected garbage
	if putPeak > limit || getPeak > limit {
		t.Fatalf("heap grew by %d (put) / %d (get) bytes, want under %d", putPeak, getPeak, limit)
	}
}

// TestListMemory lists a container of inline artifacts: listings read only
// record heads, so memory does not grow with the artifacts' size.
func TestListMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 300 artifacts of 120 KiB")
	}
	r := newRig(t, rigOptions{drives: 4})
	data := randBytes(1, 120<<10) // inline: up to 128 KiB
	for i := range 300 {
		r.put(t, fmt.Sprintf("k%03d", i), data, int64(len(data)))
	}
	for _, limit := range []int{1, 1000} {
		stop := heapPeak()
		res, err := r.e.List(context.Background(), "t", "c", ListOptions{Limit: limit})
		peak := stop()
		if err != nil || len(res.Artifacts) != min(limit, 300) || res.Artifacts[0].Size != int64(len(data)) {
			t.Fatalf("List(limit %d) = %d artifacts, %v", limit, len(res.Artifacts), err)
		}
		t.Logf("List(limit %d) over 300 × 120 KiB inline artifacts on 4 drives: peak heap growth %.1f MiB", limit, float64(peak)/(1<<20))
		if peak > 8<<20 {
			t.Fatalf("List(limit %d) grew the heap by %d bytes", limit, peak)
		}
	}
}
