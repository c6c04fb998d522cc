package tenant

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MinBytesBurst is the smallest burst of a bandwidth bucket: a tenant's
// stream may run this many bytes ahead of its rate.
const MinBytesBurst = 16 << 10

// BytesSettings returns a tenant's bandwidth in bytes per second, in
// (request bodies) and out (response bodies); 0 means unlimited.
type BytesSettings func(tenant string) (in, out int64)

// byteBuckets are a tenant's bandwidth buckets. A nil limiter is
// unlimited.
type byteBuckets struct {
	mu      sync.Mutex // guards the following fields
	in, out *rate.Limiter
	rin     int64 // in's rate
	rout    int64 // out's rate
}

// WaitIn waits until n more bytes of tenant's request bodies fit its
// inbound bandwidth (Bytes), or ctx ends: bandwidth is shaped, never
// refused. Exempt tenants, and tenants without a bandwidth, never wait.
func (l *RateLimiter) WaitIn(ctx context.Context, tenant string, n int) error {
	return l.waitBytes(ctx, tenant, false, n)
}

// WaitOut is WaitIn for the bytes of tenant's response bodies.
func (l *RateLimiter) WaitOut(ctx context.Context, tenant string, n int) error {
	return l.waitBytes(ctx, tenant, true, n)
}

func (l *RateLimiter) waitBytes(ctx context.Context, tenant string, out bool, n int) error {
	if l.Bytes == nil || n <= 0 || l.exempt[tenant] {
		return nil
	}
	in, outRate := l.Bytes(tenant)
	r := in
	if out {
		r = outRate
	}
	b, ok := l.bytes.Get(tenant)
	if r <= 0 && !ok {
		return nil
	}
	if !ok {
		b = &byteBuckets{}
		l.bytes.Add(tenant, b)
	}
	now := l.now()
	b.mu.Lock()
	lim, cur := &b.in, &b.rin
	if out {
		lim, cur = &b.out, &b.rout
	}
	switch {
	case r <= 0:
		*lim, *cur = nil, 0
	case *lim == nil:
		*lim, *cur = rate.NewLimiter(rate.Limit(r), bytesBurst(r)), r
	case *cur != r:
		(*lim).SetLimitAt(now, rate.Limit(r))
		(*lim).SetBurstAt(now, bytesBurst(r))
		*cur = r
	}
	bl := *lim
	b.mu.Unlock()
	if bl == nil {
		return nil
	}
	// Reserve n bytes in chunks of at most the burst, and wait for the
	// last: the bytes go at the bucket's rate, however large the read.
	var d time.Duration
	for left := n; left > 0; {
		k := min(left, bl.Burst())
		res := bl.ReserveN(now, k)
		if !res.OK() {
			return fmt.Errorf("tenant: bandwidth of %s: cannot reserve %d bytes", tenant, k)
		}
		d = res.DelayFrom(now)
		left -= k
	}
	if d <= 0 {
		return nil
	}
	return l.sleep(ctx, d)
}

// bytesBurst is the burst of a bandwidth of r bytes per second: a quarter
// of a second of it, at least MinBytesBurst.
func bytesBurst(r int64) int {
	return int(max(r/4, MinBytesBurst))
}
