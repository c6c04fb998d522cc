package tenant

import (
	"maps"
	"sync"
	"time"
)

// Defaults of Traffic.
const (
	// DefaultShareWindow is how often a node's request counts are
	// rolled into a rate and exchanged with the other nodes, and so how
	// often the tenants' shares are rebalanced.
	DefaultShareWindow = time.Second
	// DefaultMaxTraffic bounds the tenants whose traffic a node counts,
	// and the tenants it keeps per other node.
	DefaultMaxTraffic = 10_000
)

// Traffic counts this node's requests per tenant and holds the rates the
// other nodes report, so that a RateLimiter can hold a tenant to its rate
// cluster-wide: each node allows rate × Share, its share of the tenant's
// recent requests cluster-wide, at least 1/(2N) of them with N live
// nodes. It is safe for concurrent use.
//
// Memory is bounded: only tenants that made requests in the last two
// windows are counted (at most DefaultMaxTraffic; beyond that a new
// tenant is not counted and gets its full rate), and a node's report of
// a tenant is forgotten 3 windows after it arrived.
type Traffic struct {
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex                   // guards the following fields
	counts  map[string]int64             // this node's requests in the current window
	rates   map[string]float64           // this node's requests per second in the last window
	peers   map[string]map[string]report // tenant → node → its last report
	perPeer map[string]int               // node → tenants in peers
	nodes   int                          // live nodes, this one included
}

type report struct {
	rate float64   // requests per second
	at   time.Time // when it arrived
}

// NewTraffic returns a Traffic rolled every window (0: DefaultShareWindow).
func NewTraffic(window time.Duration) *Traffic {
	if window <= 0 {
		window = DefaultShareWindow
	}
	return &Traffic{
		window: window, now: time.Now,
		counts: map[string]int64{}, rates: map[string]float64{},
		peers: map[string]map[string]report{}, perPeer: map[string]int{}, nodes: 1,
	}
}

// Window returns how often Roll is to be called.
func (t *Traffic) Window() time.Duration { return t.window }

// Observe counts a request of tenant on this node.
func (t *Traffic) Observe(tenant string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.counts[tenant]; ok || len(t.counts) < DefaultMaxTraffic {
		t.counts[tenant]++
	}
}

// Roll closes the current window, to be called every Window: it returns
// this node's rate (requests per second over the window) of every tenant
// it served in it, and, once, a rate of 0 for a tenant it served in the
// window before but no more, so that the other nodes learn it stopped.
// It forgets the other nodes' reports older than 3 windows. The map
// returned is the caller's.
func (t *Traffic) Roll() map[string]float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	secs := t.window.Seconds()
	out := make(map[string]float64, len(t.counts)+len(t.rates))
	rates := make(map[string]float64, len(t.counts))
	for name, n := range t.counts {
		rates[name] = float64(n) / secs
		out[name] = rates[name]
	}
	for name := range t.rates {
		if _, ok := rates[name]; !ok {
			out[name] = 0 // stopped: said once
		}
	}
	t.rates = rates
	clear(t.counts)
	old := t.now().Add(-3 * t.window)
	for name, by := range t.peers {
		for node, r := range by {
			if r.at.Before(old) {
				delete(by, node)
				t.perPeer[node]--
			}
		}
		if len(by) == 0 {
			delete(t.peers, name)
		}
	}
	for node, n := range t.perPeer {
		if n <= 0 {
			delete(t.perPeer, node)
		}
	}
	return out
}

// Merge records a report of node's rates (Roll's result on that node). A
// rate of 0 forgets the tenant's entry for node.
func (t *Traffic) Merge(node string, rates map[string]float64) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, r := range rates {
		by := t.peers[name]
		_, had := by[node]
		if r <= 0 || r != r { // 0 or NaN
			if had {
				delete(by, node)
				t.perPeer[node]--
				if len(by) == 0 {
					delete(t.peers, name)
				}
			}
			continue
		}
		if !had {
			if t.perPeer[node] >= DefaultMaxTraffic {
				continue
			}
			if by == nil {
				by = map[string]report{}
				t.peers[name] = by
			}
			t.perPeer[node]++
		}
		by[node] = report{rate: r, at: now}
	}
}

// SetNodes sets the number of live nodes, this one included.
func (t *Traffic) SetNodes(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nodes = max(n, 1)
}

// Share returns the fraction of tenant's rate this node allows: its share
// s of the tenant's requests over the last window cluster-wide (its own
// rate over the sum of its own and the other nodes' last reports), but at
// least 1/(2N) with N live nodes, so that a tenant turning to this node
// is served at once, if slowly, until the next reports. With no traffic
// known anywhere, or one node, it is 1.
//
// The bound: in a steady state the nodes together allow at most
// rate × Σ max(s_i, 1/(2N)) ≤ rate × (1 + (N-1)/(2N)) < 1.5 × rate, and
// exactly rate when every node serving the tenant has a share of at least
// 1/(2N) (round robin: each allows rate/N). After the tenant's traffic
// moves, the shares follow within about two windows.
func (t *Traffic) Share(tenant string) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes <= 1 {
		return 1
	}
	own := t.rates[tenant]
	total := own
	for _, r := range t.peers[tenant] {
		total += r.rate
	}
	if total <= 0 {
		return 1
	}
	return min(1, max(own/total, 1/(2*float64(t.nodes))))
}

// Reports returns, for tests and status, the rates the other nodes last
// reported for tenant.
func (t *Traffic) Reports(tenant string) map[string]float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]float64, len(t.peers[tenant]))
	for node, r := range t.peers[tenant] {
		out[node] = r.rate
	}
	return out
}

// Rates returns this node's rates of the last window.
func (t *Traffic) Rates() map[string]float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.rates)
}
