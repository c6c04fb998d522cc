package limits

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/s3"
)

// FlushInterval is how often a node commits its pending usage changes.
const FlushInterval = time.Second

// UsageStore is what Usage needs of the replicated metadata store.
type UsageStore interface {
	TenantLimits(tenant string) (cluster.Limits, cluster.Usage, bool)
	AddUsage(ctx context.Context, deltas []cluster.UsageDelta) error
}

// Usage tracks tenants' stored bytes and artifacts and enforces quotas.
// It is safe for concurrent use.
type Usage struct {
	store UsageStore
	log   *slog.Logger

	mu       sync.Mutex               // guards the following fields
	pending  map[string]cluster.Usage // this node's changes not yet committed
	reserved map[string]cluster.Usage // admitted uploads in flight on this node
}

// NewUsage returns a Usage over store.
func NewUsage(store UsageStore, log *slog.Logger) *Usage {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Usage{store: store, log: log, pending: map[string]cluster.Usage{}, reserved: map[string]cluster.Usage{}}
}

// Record adds a change of a tenant's usage (engine.Config.OnUsage).
func (u *Usage) Record(tenant string, bytes, artifacts int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	p := u.pending[tenant]
	p.Bytes += bytes
	p.Artifacts += artifacts
	u.pending[tenant] = p
}

// Current returns a tenant's usage as this node knows it: the committed
// totals plus its own pending changes.
func (u *Usage) Current(tenant string) cluster.Usage {
	_, used, _ := u.store.TenantLimits(tenant)
	u.mu.Lock()
	p := u.pending[tenant]
	u.mu.Unlock()
	return cluster.Usage{Bytes: used.Bytes + p.Bytes, Artifacts: used.Artifacts + p.Artifacts}
}

// Admit implements s3.Quota. It checks the committed usage plus this
// node's pending changes plus the reservations of uploads in flight on
// this node against the quota and, when the upload fits, reserves its
// declared bytes (none if unknown) and its artifacts until release is
// called. The caller calls release once the upload has ended, stored (its
// usage recorded by then) or failed.
func (u *Usage) Admit(ctx context.Context, tenant string, bytes, artifacts int64) (int64, func(), error) {
	lim, used, ok := u.store.TenantLimits(tenant)
	if !ok || (lim.MaxBytes == 0 && lim.MaxArtifacts == 0) {
		return -1, func() {}, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	p, r := u.pending[tenant], u.reserved[tenant]
	cur := cluster.Usage{Bytes: used.Bytes + p.Bytes + r.Bytes, Artifacts: used.Artifacts + p.Artifacts + r.Artifacts}
	if lim.MaxArtifacts > 0 && artifacts > 0 && cur.Artifacts+artifacts > lim.MaxArtifacts {
		return 0, nil, fmt.Errorf("%w: tenant %s stores %d of its %d artifacts", s3.ErrQuotaExceeded, tenant, cur.Artifacts, lim.MaxArtifacts)
	}
	left := int64(-1)
	if lim.MaxBytes > 0 {
		left = max(0, lim.MaxBytes-cur.Bytes)
		if bytes > left || (bytes < 0 && left == 0) {
			return 0, nil, fmt.Errorf("%w: tenant %s stores %d of its %d bytes; %d more do not fit", s3.ErrQuotaExceeded, tenant, cur.Bytes, lim.MaxBytes, max(bytes, 1))
		}
	}
	res := cluster.Usage{Bytes: max(bytes, 0), Artifacts: max(artifacts, 0)}
	if res == (cluster.Usage{}) {
		return left, func() {}, nil
	}
	r.Bytes += res.Bytes
	r.Artifacts += res.Artifacts
	u.reserved[tenant] = r
	var once sync.Once
	return left, func() { once.Do(func() { u.unreserve(tenant, res) }) }, nil
}

// unreserve gives back a reservation of Admit.
func (u *Usage) unreserve(tenant string, res cluster.Usage) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.reserved[tenant]
	r.Bytes -= res.Bytes
	r.Artifacts -= res.Artifacts
	if r == (cluster.Usage{}) {
		delete(u.reserved, tenant)
	} else {
		u.reserved[tenant] = r
	}
}

// Flush commits the pending changes. On failure they stay pending, to be
// committed by a later Flush.
func (u *Usage) Flush(ctx context.Context) error {
	u.mu.Lock()
	batch := u.pending
	u.pending = map[string]cluster.Usage{}
	u.mu.Unlock()
	var deltas []cluster.UsageDelta
	for t, p := range batch {
		if p.Bytes != 0 || p.Artifacts != 0 {
			deltas = append(deltas, cluster.UsageDelta{Tenant: t, Bytes: p.Bytes, Artifacts: p.Artifacts})
		}
	}
	if len(deltas) == 0 {
		return nil
	}
	err := u.store.AddUsage(ctx, deltas)
	if err != nil {
		// An ambiguous failure (the entry may still commit) is retried
		// too, so a batch can be counted twice; recounting usage from
		// the drives (an audit) is not built yet.
		u.mu.Lock()
		for _, d := range deltas {
			p := u.pending[d.Tenant]
			p.Bytes += d.Bytes
			p.Artifacts += d.Artifacts
			u.pending[d.Tenant] = p
		}
		u.mu.Unlock()
	}
	return err
}

// Run flushes every FlushInterval until ctx ends, then once more.
func (u *Usage) Run(ctx context.Context) {
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := u.Flush(fctx); err != nil {
				u.log.Warn("usage: final flush failed", "err", err)
			}
			cancel()
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := u.Flush(fctx); err != nil && ctx.Err() == nil {
				u.log.Warn("usage: flush failed; will retry", "err", err)
			}
			cancel()
		}
	}
}
