package tenant

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"
)

// TestTrafficShare: a node's share of a tenant's rate follows its part of
// the tenant's traffic, never below 1/(2N), and is 1 when nothing is
// known.
func TestTrafficShare(t *testing.T) {
	tests := []struct {
		name  string
		nodes int
		own   int                // requests this node served in the window
		peers map[string]float64 // other nodes' reports
		want  float64
	}{
		{"no traffic anywhere", 3, 0, nil, 1},
		{"single node", 1, 10, map[string]float64{"n2": 10}, 1},
		{"alone in serving the tenant", 3, 30, nil, 1},
		{"round robin", 3, 10, map[string]float64{"n2": 10, "n3": 10}, 1.0 / 3},
		{"two thirds", 3, 20, map[string]float64{"n2": 10}, 2.0 / 3},
		{"floor when the tenant just arrived here", 3, 0, map[string]float64{"n2": 50}, 1.0 / 6},
		{"floor for a trickle", 4, 1, map[string]float64{"n2": 1000}, 1.0 / 8},
		{"a report of 0 forgets the node", 3, 10, map[string]float64{"n2": 0}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTraffic(time.Second)
			tr.SetNodes(tc.nodes)
			for range tc.own {
				tr.Observe("alice")
			}
			tr.Observe("bob") // another tenant changes nothing
			tr.Roll()
			tr.Merge("n2", map[string]float64{"n2-only": 5})
			for node, r := range tc.peers {
				tr.Merge(node, map[string]float64{"alice": r})
			}
			if got := tr.Share("alice"); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("Share = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTrafficRollAndExpiry: Roll reports a stopped tenant once at rate 0
// and then forgets it; other nodes' reports expire after 3 windows.
func TestTrafficRollAndExpiry(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)}
	tr := NewTraffic(500 * time.Millisecond)
	tr.now = clk.Now
	tr.SetNodes(2)
	for range 5 {
		tr.Observe("alice")
	}
	if got := tr.Roll(); fmt.Sprint(got) != "map[alice:10]" {
		t.Errorf("first Roll = %v, want alice at 10/s", got)
	}
	if got := tr.Roll(); fmt.Sprint(got) != "map[alice:0]" {
		t.Errorf("second Roll = %v, want alice stopped (0)", got)
	}
	if got := tr.Roll(); len(got) != 0 {
		t.Errorf("third Roll = %v, want nothing", got)
	}
	tr.Merge("n2", map[string]float64{"alice": 7})
	clk.Advance(1400 * time.Millisecond)
	tr.Roll()
	if got := tr.Reports("alice"); got["n2"] != 7 {
		t.Errorf("reports after 1.4 s = %v, want n2's 7 kept", got)
	}
	clk.Advance(200 * time.Millisecond)
	tr.Roll()
	if got := tr.Reports("alice"); len(got) != 0 || len(tr.peers) != 0 || len(tr.perPeer) != 0 {
		t.Errorf("reports after 1.6 s = %v (%d tenants, %d nodes kept), want all expired", got, len(tr.peers), len(tr.perPeer))
	}
}

// TestTrafficBounded: a node counts at most DefaultMaxTraffic tenants and
// keeps at most that many per other node.
func TestTrafficBounded(t *testing.T) {
	tr := NewTraffic(time.Second)
	many := map[string]float64{}
	for i := range DefaultMaxTraffic + 100 {
		name := fmt.Sprintf("t%d", i)
		tr.Observe(name)
		many[name] = 1
	}
	tr.Merge("n2", many)
	if len(tr.counts) != DefaultMaxTraffic || tr.perPeer["n2"] != DefaultMaxTraffic {
		t.Errorf("%d counted, %d kept of n2; want %d each", len(tr.counts), tr.perPeer["n2"], DefaultMaxTraffic)
	}
}

// TestLimiterShare: with a Traffic, the limiter allows rate × share, and
// a change of share keeps the bucket's tokens (no fresh burst).
func TestLimiterShare(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)}
	l := NewRateLimiter(func(string) (float64, int) { return 30, 30 }, 0)
	l.now = clk.Now
	l.MaxWait = 0
	tr := NewTraffic(time.Second)
	tr.now = clk.Now
	l.Traffic = tr
	tr.SetNodes(3)
	// Round robin: two other nodes serve as much as this one.
	tr.Merge("n2", map[string]float64{"alice": 1})
	tr.Merge("n3", map[string]float64{"alice": 1})
	for range 1 {
		tr.Observe("alice")
	}
	tr.Roll()
	// A third of 30/s burst 30: 10 at once, then 10 per second.
	allowed := func() int {
		n := 0
		for range 100 {
			if _, ok := l.Allow(context.Background(), "alice"); ok {
				n++
			}
		}
		return n
	}
	if got := allowed(); got != 10 {
		t.Errorf("burst at a third: %d allowed, want 10", got)
	}
	clk.Advance(time.Second)
	if got := allowed(); got != 10 {
		t.Errorf("a second later: %d allowed, want 10", got)
	}
	// This node now serves all of it (the others stopped): the full rate,
	// from the tokens left, not a fresh full bucket.
	tr.Merge("n2", map[string]float64{"alice": 0})
	tr.Merge("n3", map[string]float64{"alice": 0})
	tr.Roll()
	if got := allowed(); got != 0 {
		t.Errorf("right after the share grew: %d allowed, want 0 (no fresh burst)", got)
	}
	clk.Advance(time.Second)
	if got := allowed(); got != 30 {
		t.Errorf("a second later at the full rate: %d allowed, want 30", got)
	}
}
