package tenant

import (
	"context"
	"testing"
	"time"
)

// TestBandwidthShapes: bytes in and out go at the tenant's bandwidth
// after a burst of a quarter second, each direction on its own; an
// exempt tenant, a tenant without a bandwidth and a lifted bandwidth
// never wait.
func TestBandwidthShapes(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)}
	bw := map[string][2]int64{"alice": {1 << 20, 4 << 20}, "root": {1, 1}}
	l := NewRateLimiter(nil, 0, "root")
	l.now = clk.Now
	l.sleep = func(_ context.Context, d time.Duration) error { clk.Advance(d); return nil }
	l.Bytes = func(name string) (int64, int64) { return bw[name][0], bw[name][1] }
	transfer := func(tenant string, out bool, total, chunk int) time.Duration {
		start := clk.Now()
		for sent := 0; sent < total; sent += chunk {
			wait := l.WaitIn
			if out {
				wait = l.WaitOut
			}
			if err := wait(context.Background(), tenant, chunk); err != nil {
				t.Fatal(err)
			}
		}
		return clk.Now().Sub(start)
	}
	near := func(got, want time.Duration) bool {
		return got > want-50*time.Millisecond && got < want+50*time.Millisecond
	}
	// 8 MiB in at 1 MiB/s with 256 KiB ahead: 7.75 s, in reads of 32 KiB
	// or in one read larger than the burst.
	if got := transfer("alice", false, 8<<20, 32<<10); !near(got, 7750*time.Millisecond) {
		t.Errorf("8 MiB in: %v, want 7.75 s", got)
	}
	clk.Advance(time.Minute) // the bucket refills
	if got := transfer("alice", false, 2<<20, 2<<20); !near(got, 1750*time.Millisecond) {
		t.Errorf("2 MiB in one read: %v, want 1.75 s", got)
	}
	if got := transfer("alice", true, 8<<20, 64<<10); !near(got, 1750*time.Millisecond) {
		t.Errorf("8 MiB out at 4 MiB/s: %v, want 1.75 s (out has its own bucket)", got)
	}
	for _, who := range []string{"root", "bob"} {
		if got := transfer(who, false, 8<<20, 64<<10); got != 0 {
			t.Errorf("%s waited %v, want no wait", who, got)
		}
	}
	bw["alice"] = [2]int64{0, 0}
	if got := transfer("alice", false, 8<<20, 64<<10); got != 0 {
		t.Errorf("alice waited %v after her bandwidth was lifted", got)
	}
}
