package tenant

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Defaults of RateLimiter.
const (
	DefaultRPS         = 100
	DefaultBurst       = 200
	DefaultMaxLimiters = 10_000

	// DefaultMaxWait is how long a request may wait for a token before
	// it is refused instead.
	DefaultMaxWait = time.Second
	// DefaultMaxWaiters is how many of a tenant's requests may wait for
	// a token at once on a node; more are refused at once.
	DefaultMaxWaiters = 64
)

// RateSettings returns a tenant's configured rate; zero values mean the
// defaults.
type RateSettings func(tenant string) (rps float64, burst int)

// RateLimiter is a per-tenant token bucket limiter that shapes before it
// refuses: a request whose token comes within MaxWait waits for it, so a
// client slightly over its rate (a sequential one especially) is slowed
// down rather than failed; a request that would wait longer, or that finds
// MaxWaiters of its tenant's requests already waiting, is refused with the
// time until its token. A waiting request holds its connection, hence the
// bound on waiters. It is safe for concurrent use; set MaxWait and
// MaxWaiters before the first request.
type RateLimiter struct {
	// MaxWait is the longest a request waits for a token (default
	// DefaultMaxWait); zero refuses at once whenever the bucket is empty.
	MaxWait time.Duration
	// MaxWaiters bounds the requests per tenant waiting at once (default
	// DefaultMaxWaiters).
	MaxWaiters int
	// Traffic, if set, makes the rate cluster-wide: each request is
	// counted in it, and this node allows a tenant its rate and burst
	// times Traffic.Share. Set it before the first request.
	Traffic *Traffic
	// Bytes, if set, gives tenants' bandwidths, which WaitIn and WaitOut
	// shape (per node). Set it before the first request.
	Bytes BytesSettings

	settings RateSettings
	exempt   map[string]bool
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error
	buckets  *lru.Cache[string, *bucket]
	bytes    *lru.Cache[string, *byteBuckets]
}

type bucket struct {
	lim *rate.Limiter

	mu    sync.Mutex // guards rps and burst, the settings of lim
	rps   float64
	burst int

	waiters atomic.Int64 // requests waiting for a token
}

// NewRateLimiter returns a limiter keeping at most max buckets (0 means
// DefaultMaxLimiters). Tenants in exempt are never limited.
func NewRateLimiter(settings RateSettings, max int, exempt ...string) *RateLimiter {
	if max <= 0 {
		max = DefaultMaxLimiters
	}
	c, _ := lru.New[string, *bucket](max) // max > 0: never fails
	bc, _ := lru.New[string, *byteBuckets](max)
	l := &RateLimiter{
		MaxWait: DefaultMaxWait, MaxWaiters: DefaultMaxWaiters,
		settings: settings, exempt: map[string]bool{}, now: time.Now, sleep: sleep, buckets: c, bytes: bc,
	}
	for _, t := range exempt {
		l.exempt[t] = true
	}
	return l
}

// Allow takes a token from tenant's bucket. When the bucket is
// empty it waits for the token if it comes within MaxWait and fewer than
// MaxWaiters of the tenant's requests are waiting already; otherwise, or
// if ctx ends while waiting, it gives the token back and returns how long
// until one is there, and false.
func (l *RateLimiter) Allow(ctx context.Context, tenant string) (time.Duration, bool) {
	if l.exempt[tenant] {
		return 0, true
	}
	rps, burst := float64(DefaultRPS), DefaultBurst
	if l.settings != nil {
		if r, b := l.settings(tenant); r > 0 {
			rps, burst = r, b
		}
	}
	if burst <= 0 {
		burst = max(1, int(math.Ceil(rps)))
	}
	if l.Traffic != nil {
		l.Traffic.Observe(tenant)
		if f := l.Traffic.Share(tenant); f < 1 {
			rps, burst = rps*f, max(1, int(math.Ceil(float64(burst)*f)))
		}
	}
	now := l.now()
	b, ok := l.buckets.Get(tenant)
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(rps), burst), rps: rps, burst: burst}
		l.buckets.Add(tenant, b)
	} else {
		// A new rate or share keeps the tokens the bucket holds: a
		// fresh, full bucket at every rebalance would add a burst.
		b.mu.Lock()
		if b.rps != rps {
			b.lim.SetLimitAt(now, rate.Limit(rps))
			b.rps = rps
		}
		if b.burst != burst {
			b.lim.SetBurstAt(now, burst)
			b.burst = burst
		}
		b.mu.Unlock()
	}
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second, false
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return 0, true
	}
	if d > l.MaxWait {
		r.CancelAt(now)
		return d, false
	}
	if n := b.waiters.Add(1); n > int64(l.MaxWaiters) {
		b.waiters.Add(-1)
		r.CancelAt(now)
		return d, false
	}
	defer b.waiters.Add(-1)
	if err := l.sleep(ctx, d); err != nil {
		r.CancelAt(l.now())
		return d, false
	}
	return 0, true
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Len returns how many buckets are kept.
func (l *RateLimiter) Len() int { return l.buckets.Len() }
