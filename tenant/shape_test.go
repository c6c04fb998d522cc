package tenant

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock whose sleeps advance it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func twenty(string) (float64, int) { return 20, 20 }

// TestLimiterShapes: with a bucket of 20/s and burst 20, a request whose
// token comes within MaxWait waits for it; later ones are refused.
func TestLimiterShapes(t *testing.T) {
	t.Run("sequential client at twice the rate is slowed, never refused", func(t *testing.T) {
		clk := &fakeClock{now: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)}
		l := NewRateLimiter(twenty, 0)
		l.now = clk.Now
		var slept time.Duration
		l.sleep = func(_ context.Context, d time.Duration) error { slept += d; clk.Advance(d); return nil }
		start := clk.Now()
		for i := range 200 {
			if wait, ok := l.Allow(context.Background(), "alice"); !ok {
				t.Fatalf("request %d refused (retry after %v)", i, wait)
			}
			clk.Advance(25 * time.Millisecond) // 40/s
		}
		// 200 requests at 20/s with 20 in the bucket: 9 s, not the 5 s asked for.
		if took := clk.Now().Sub(start); took < 9*time.Second || slept < 4*time.Second {
			t.Errorf("took %v (slept %v), want about 9 s", took, slept)
		}
	})
	t.Run("queue longer than MaxWait is refused", func(t *testing.T) {
		clk := &fakeClock{now: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)}
		l := NewRateLimiter(twenty, 0)
		l.now = clk.Now
		l.sleep = func(context.Context, time.Duration) error { return nil } // concurrent waiters: the clock stands still
		ok, refused := 0, 0
		var lastWait time.Duration
		for range 100 {
			if wait, allowed := l.Allow(context.Background(), "alice"); allowed {
				ok++
			} else {
				refused++
				lastWait = wait
			}
		}
		// 20 from the bucket, 20 queued within a second (50 ms apart).
		if ok != 40 || refused != 60 || lastWait <= time.Second || lastWait > 1100*time.Millisecond {
			t.Errorf("%d allowed, %d refused, retry after %v; want 40, 60, just over 1 s", ok, refused, lastWait)
		}
	})
	t.Run("MaxWaiters bounds the waiting requests", func(t *testing.T) {
		l := NewRateLimiter(twenty, 0)
		l.MaxWaiters = 3
		release := make(chan struct{})
		var waiting atomic.Int64
		l.sleep = func(ctx context.Context, d time.Duration) error { waiting.Add(1); <-release; return nil }
		for range 20 { // empty the bucket
			if _, ok := l.Allow(context.Background(), "alice"); !ok {
				t.Fatal("burst refused")
			}
		}
		var wg sync.WaitGroup
		var allowed atomic.Int64
		for range 3 {
			wg.Go(func() {
				if _, ok := l.Allow(context.Background(), "alice"); ok {
					allowed.Add(1)
				}
			})
		}
		for deadline := time.Now().Add(10 * time.Second); waiting.Load() < 3; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				close(release)
				t.Fatalf("%d of 3 requests waiting for a token", waiting.Load())
			}
		}
		if wait, ok := l.Allow(context.Background(), "alice"); ok || wait <= 0 {
			t.Errorf("fourth waiter: %v, %v; want refused with a wait", wait, ok)
		}
		close(release)
		wg.Wait()
		if allowed.Load() != 3 {
			t.Errorf("%d of 3 waiters allowed", allowed.Load())
		}
	})
	t.Run("a cancelled wait is refused and gives its token back", func(t *testing.T) {
		clk := &fakeClock{now: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)}
		l := NewRateLimiter(twenty, 0)
		l.now = clk.Now
		l.sleep = sleep
		for range 20 {
			l.Allow(context.Background(), "alice")
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		wait, ok := l.Allow(ctx, "alice")
		if ok || wait != 50*time.Millisecond {
			t.Errorf("cancelled: %v, %v; want refused after 50ms", wait, ok)
		}
		l.sleep = func(_ context.Context, d time.Duration) error {
			if d != 50*time.Millisecond {
				t.Errorf("next request waits %v, want 50ms (the cancelled token returned)", d)
			}
			return nil
		}
		if _, ok := l.Allow(context.Background(), "alice"); !ok {
			t.Error("next request refused")
		}
	})
}
