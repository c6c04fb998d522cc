package remote

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReview28r2LineStress: the line of callers waiting for room (4a14ced)
// under a flusher that frees room at random moments, callers of mixed
// sizes (some larger than the cap, admitted alone into an empty queue)
// arriving all the time, a third of them giving up at random points (at
// the head, with a wake-up buffered for them, behind it). Checks: every
// caller that does not give up is admitted (no lost wake-up: each
// waits at most 5 s, while the flusher frees room every few hundred µs),
// callers are admitted in the order they entered the line (FIFO, seen
// from the line itself), the line is empty and qbytes matches the queue
// at the end. Run with -race. (Passes: the line holds.)
func TestReview28r2LineStress(t *testing.T) {
	d := &Driver{cfg: Config{MaxQueueBytes: 4000, MaxBatchBytes: 4000}, closing: make(chan struct{})}
	d.flushing = true // the flusher below stands in for flushLoop
	stop := make(chan struct{})
	var flusher sync.WaitGroup
	flusher.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rand.IntN(400)) * time.Microsecond):
			}
			d.cmu.Lock()
			n, size := 0, int64(0)
			for n < len(d.queue) && (n == 0 || size+d.queue[n].cost() <= d.cfg.MaxBatchBytes) {
				size += d.queue[n].cost()
				n++
			}
			d.queue = d.queue[n:]
			d.qbytes -= size
			d.roomMade()
			d.cmu.Unlock()
		}
	})
	var stuck, admitted, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := range 150 {
				size := []int{10, 300, 1500, 3900, 6000}[(w+i)%5]
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if (w+i)%3 == 0 {
					cancel()
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rand.IntN(300))*time.Microsecond)
				}
				err := d.enqueue(ctx, &op{e: entry{data: make([]byte, size)}})
				switch {
				case err == nil:
					admitted.Add(1)
				case (w+i)%3 != 0:
					stuck.Add(1)
					t.Errorf("a caller that waits 5 s was not admitted: %v", err)
				default:
					gaveUp.Add(1)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	close(stop)
	flusher.Wait()
	d.cmu.Lock()
	defer d.cmu.Unlock()
	var q int64
	for _, o := range d.queue {
		q += o.cost()
	}
	t.Logf("admitted %d, gave up %d, stuck %d", admitted.Load(), gaveUp.Load(), stuck.Load())
	if d.line.Len() != 0 || q != d.qbytes {
		t.Errorf("after the storm: %d in line, qbytes %d, queue costs %d", d.line.Len(), d.qbytes, q)
	}
}

// TestReview28r2LineFIFO: callers that enter the line in order A, B, C
// (each too large to fit beside what is queued) are admitted in that
// order, also when B, at the head after A, is woken while C arrives,
// and when a caller between them gives up. (Passes.)
func TestReview28r2LineFIFO(t *testing.T) {
	d := &Driver{cfg: Config{MaxQueueBytes: 1000, MaxBatchBytes: 1000}, closing: make(chan struct{})}
	d.flushing = true
	d.qbytes = 900
	order := make(chan string, 8)
	inLine := func(n int) {
		for {
			d.cmu.Lock()
			l := d.line.Len()
			d.cmu.Unlock()
			if l == n {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	var wg sync.WaitGroup
	enter := func(name string, ctx context.Context, n int) {
		wg.Go(func() {
			if d.enqueue(ctx, &op{e: entry{data: make([]byte, 500)}}) == nil {
				order <- name
			}
		})
		inLine(n)
	}
	enter("A", t.Context(), 1)
	enter("B", t.Context(), 2)
	gctx, give := context.WithCancel(t.Context())
	enter("gives-up", gctx, 3)
	enter("C", t.Context(), 4)
	give()
	inLine(3)
	free := func() { // the flusher takes the whole queue
		d.cmu.Lock()
		d.queue, d.qbytes = nil, 0
		d.roomMade()
		d.cmu.Unlock()
	}
	var got []string
	for len(got) < 3 {
		free()
		select {
		case n := <-order:
			got = append(got, n)
		case <-time.After(5 * time.Second):
			t.Fatalf("admitted %v, then none for 5 s with an empty queue (a lost wake-up)", got)
		}
	}
	wg.Wait()
	if got[0] != "A" || got[1] != "B" || got[2] != "C" {
		t.Errorf("admitted in order %v, want [A B C]", got)
	}
}
