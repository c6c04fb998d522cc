package remote

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// TestReview27r2AbandonedGrows: while the head of the line waits (a
// compaction's batch in submitAll waits with closeCtx, i.e. for as long
// as the backend stalls), every later caller that gives up leaves its
// ticket in d.abandoned until the line reaches it. The goroutines are
// gone, the map entries are not: a stall with a steady stream of
// timed-out writers grows the map without bound (the very case the
// bounded queue exists for).
func TestReview27r2AbandonedGrows(t *testing.T) {
	if os.Getenv("VAULT_KNOWN") == "" {
		// Known open (NOTE27, LOW): one map entry per caller that gave up
		// while the head of the line waits, freed when the line moves.
		t.Skip("known open: VAULT_KNOWN=1 runs it")
	}
	d := &Driver{cfg: Config{MaxQueueBytes: 1000, MaxBatchBytes: 1000}, closing: make(chan struct{})}
	d.flushing = true // a flusher runs and is stalled on its PUT
	d.qbytes = 900
	head := make(chan error, 1)
	hctx, hcancel := context.WithCancel(t.Context())
	go func() { head <- d.enqueue(hctx, &op{e: entry{data: make([]byte, 500)}}) }()
	for {
		d.cmu.Lock()
		n := d.nextTicket
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
	left := len(d.abandoned)
	d.cmu.Unlock()
	hcancel()
	<-head
	d.cmu.Lock()
	after := len(d.abandoned)
	d.cmu.Unlock()
	t.Logf("abandoned after %d callers gave up behind a waiting head: %d (after the head gave up too: %d)", n, left, after)
	if left >= n/2 {
		t.Errorf("%d tickets of callers that gave up are kept while the head waits: grows with every timed-out writer during a stall", left)
	}
}
