package remote

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestReview27r2AbandonedGrows: while the head of the line waits (a
// compaction's batch in submitAll waits with closeCtx, i.e. for as long
// as the backend stalls), every later caller that gives up kept its
// ticket in a map until the line reached it: a stall with a steady
// stream of timed-out writers grew it without bound (the very case the
// bounded queue exists for). A caller that gives up now leaves the line.
func TestReview27r2AbandonedGrows(t *testing.T) {
	d := &Driver{cfg: Config{MaxQueueBytes: 1000, MaxBatchBytes: 1000}, closing: make(chan struct{})}
	d.flushing = true // a flusher runs and is stalled on its PUT
	d.qbytes = 900
	head := make(chan error, 1)
	hctx, hcancel := context.WithCancel(t.Context())
	go func() { head <- d.enqueue(hctx, &op{e: entry{data: make([]byte, 500)}}) }()
	for {
		d.cmu.Lock()
		n := d.line.Len()
		d.cmu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	const n = 5000
	for range n {
		wg.Go(func() { d.enqueue(ctx, &op{e: entry{data: make([]byte, 10)}}) })
	}
	wg.Wait()
	d.cmu.Lock()
	left := d.line.Len() - 1 // but the head
	d.cmu.Unlock()
	hcancel()
	<-head
	d.cmu.Lock()
	after := d.line.Len()
	d.cmu.Unlock()
	if left != 0 || after != 0 {
		t.Errorf("after %d callers gave up behind a waiting head, %d stay in line (%d once the head gave up too), want none", n, left, after)
	}
}
