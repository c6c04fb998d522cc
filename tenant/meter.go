package tenant

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// FlushInterval is how often a node commits its pending usage changes.
const FlushInterval = time.Second

// Store is what a Meter needs of the replicated metadata store
// (cluster.Store). Implementations must be safe for concurrent use.
type Store interface {
	// TenantLimits returns a tenant's limits and committed usage, and
	// false for an unknown tenant. It is on every upload's path: it
	// must answer from local state, without a network round trip.
	TenantLimits(tenant string) (Limits, Usage, bool)
	// AddUsage commits a batch of usage changes. After a failure the
	// batch may still commit (the Meter retries it, so it may count
	// twice).
	AddUsage(ctx context.Context, deltas []UsageDelta) error
}

// Meter tracks tenants' stored bytes and artifacts and enforces their
// quotas. It is safe for concurrent use.
type Meter struct {
	store Store
	log   *slog.Logger

	mu       sync.Mutex       // guards the following fields
	pending  map[string]Usage // this node's changes not yet committed
	reserved map[string]Usage // admitted uploads in flight on this node
}

// NewMeter returns a Meter over store.
func NewMeter(store Store, log *slog.Logger) *Meter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Meter{store: store, log: log, pending: map[string]Usage{}, reserved: map[string]Usage{}}
}

// Record adds a change of a tenant's usage (engine.Config.OnUsage).
func (m *Meter) Record(tenant string, bytes, artifacts int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pending[tenant]
	p.Bytes += bytes
	p.Artifacts += artifacts
	m.pending[tenant] = p
}

// Current returns a tenant's usage as this node knows it: the committed
// totals plus its own pending changes.
func (m *Meter) Current(tenant string) Usage {
	_, used, _ := m.store.TenantLimits(tenant)
	m.mu.Lock()
	p := m.pending[tenant]
	m.mu.Unlock()
	return Usage{Bytes: used.Bytes + p.Bytes, Artifacts: used.Artifacts + p.Artifacts}
}

// Admit implements s3.Quota: it returns the most bytes the upload may
// store (-1: no limit), or an error wrapping ErrQuotaExceeded. It checks the committed usage plus this
// node's pending changes plus the reservations of uploads in flight on
// this node against the quota and, when the upload fits, reserves its
// declared bytes (none if unknown) and its artifacts until release is
// called. The caller calls release once the upload has ended, stored (its
// usage recorded by then) or failed.
func (m *Meter) Admit(ctx context.Context, tenant string, bytes, artifacts int64) (int64, func(), error) {
	lim, used, ok := m.store.TenantLimits(tenant)
	if !ok || (lim.MaxBytes == 0 && lim.MaxArtifacts == 0) {
		return -1, func() {}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, r := m.pending[tenant], m.reserved[tenant]
	cur := Usage{Bytes: used.Bytes + p.Bytes + r.Bytes, Artifacts: used.Artifacts + p.Artifacts + r.Artifacts}
	if lim.MaxArtifacts > 0 && artifacts > 0 && cur.Artifacts+artifacts > lim.MaxArtifacts {
		return 0, nil, fmt.Errorf("%w: tenant %s stores %d of its %d artifacts", ErrQuotaExceeded, tenant, cur.Artifacts, lim.MaxArtifacts)
	}
	left := int64(-1)
	if lim.MaxBytes > 0 {
		left = max(0, lim.MaxBytes-cur.Bytes)
		if bytes > left || (bytes < 0 && left == 0) {
			return 0, nil, fmt.Errorf("%w: tenant %s stores %d of its %d bytes; %d more do not fit", ErrQuotaExceeded, tenant, cur.Bytes, lim.MaxBytes, max(bytes, 1))
		}
	}
	res := Usage{Bytes: max(bytes, 0), Artifacts: max(artifacts, 0)}
	if res == (Usage{}) {
		return left, func() {}, nil
	}
	r.Bytes += res.Bytes
	r.Artifacts += res.Artifacts
	m.reserved[tenant] = r
	var once sync.Once
	return left, func() { once.Do(func() { m.unreserve(tenant, res) }) }, nil
}

// unreserve gives back a reservation of Admit.
func (m *Meter) unreserve(tenant string, res Usage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.reserved[tenant]
	r.Bytes -= res.Bytes
	r.Artifacts -= res.Artifacts
	if r == (Usage{}) {
		delete(m.reserved, tenant)
	} else {
		m.reserved[tenant] = r
	}
}

// Flush commits the pending changes. On failure they stay pending, to be
// committed by a later Flush.
func (m *Meter) Flush(ctx context.Context) error {
	m.mu.Lock()
	batch := m.pending
	m.pending = map[string]Usage{}
	m.mu.Unlock()
	var deltas []UsageDelta
	for t, p := range batch {
		if p.Bytes != 0 || p.Artifacts != 0 {
			deltas = append(deltas, UsageDelta{Tenant: t, Bytes: p.Bytes, Artifacts: p.Artifacts})
		}
	}
	if len(deltas) == 0 {
		return nil
	}
	err := m.store.AddUsage(ctx, deltas)
	if err != nil {
		// An ambiguous failure (the entry may still commit) is retried
		// too, so a batch can be counted twice; recounting usage from
		// the drives (an audit) is not built yet.
		m.mu.Lock()
		for _, d := range deltas {
			p := m.pending[d.Tenant]
			p.Bytes += d.Bytes
			p.Artifacts += d.Artifacts
			m.pending[d.Tenant] = p
		}
		m.mu.Unlock()
	}
	return err
}

// Run flushes every FlushInterval until ctx ends, then once more.
func (m *Meter) Run(ctx context.Context) {
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := m.Flush(fctx); err != nil {
				m.log.Warn("usage: final flush failed", "err", err)
			}
			cancel()
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := m.Flush(fctx); err != nil && ctx.Err() == nil {
				m.log.Warn("usage: flush failed; will retry", "err", err)
			}
			cancel()
		}
	}
}
