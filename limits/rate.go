package limits

import (
	"math"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Defaults of RateLimiter.
const (
	DefaultRPS         = 100
	DefaultBurst       = 200
	DefaultMaxLimiters = 10_000
)

// RateSettings returns a tenant's configured rate; zero values mean the
// defaults.
type RateSettings func(tenant string) (rps float64, burst int)

// RateLimiter is a per-tenant token bucket limiter. It is safe for
// concurrent use.
type RateLimiter struct {
	settings RateSettings
	exempt   map[string]bool
	now      func() time.Time
	buckets  *lru.Cache[string, *bucket]
}

type bucket struct {
	lim   *rate.Limiter
	rps   float64
	burst int
}

// NewRateLimiter returns a limiter keeping at most max buckets (0 means
// DefaultMaxLimiters). Tenants in exempt are never limited.
func NewRateLimiter(settings RateSettings, max int, exempt ...string) *RateLimiter {
	if max <= 0 {
		max = DefaultMaxLimiters
	}
	c, _ := lru.New[string, *bucket](max) // max > 0: never fails
	l := &RateLimiter{settings: settings, exempt: map[string]bool{}, now: time.Now, buckets: c}
	for _, t := range exempt {
		l.exempt[t] = true
	}
	return l
}

// Allow takes a token from tenant's bucket, or says how long until one is
// there.
func (l *RateLimiter) Allow(tenant string) (time.Duration, bool) {
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
	b, ok := l.buckets.Get(tenant)
	if !ok || b.rps != rps || b.burst != burst {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(rps), burst), rps: rps, burst: burst}
		l.buckets.Add(tenant, b)
	}
	now := l.now()
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// Len returns how many buckets are kept.
func (l *RateLimiter) Len() int { return l.buckets.Len() }
