package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Limits are a tenant's rate limit and quota, replicated with the tenant.
// Zero values mean "the default" for the rate (see package limits) and
// "unlimited" for the quota.
type Limits struct {
	RPS          float64 `json:"rps,omitempty"`           // requests per second
	Burst        int     `json:"burst,omitempty"`         // token bucket size
	MaxBytes     int64   `json:"max_bytes,omitempty"`     // stored bytes (before erasure coding)
	MaxArtifacts int64   `json:"max_artifacts,omitempty"` // stored artifacts
}

// Usage is what a tenant stores, as committed through Raft. Each node
// batches its changes and commits them every UsageFlushInterval, so the
// committed totals lag the truth by about that much.
type Usage struct {
	Bytes     int64 `json:"bytes"`
	Artifacts int64 `json:"artifacts"`
}

// UsageDelta is one tenant's change of usage.
type UsageDelta struct {
	Tenant    string `json:"tenant"`
	Bytes     int64  `json:"bytes"`
	Artifacts int64  `json:"artifacts"`
}

// setLimitsCmd changes some of a tenant's limits: the fields named in Set.
type setLimitsCmd struct {
	Tenant string   `json:"tenant"`
	Limits Limits   `json:"limits"`
	Set    []string `json:"set"` // "rate" (RPS and Burst), "quota" (MaxBytes and MaxArtifacts)
}

// usageCmd adds usage deltas. Deltas of tenants that no longer exist are
// ignored.
type usageCmd struct {
	Deltas []UsageDelta `json:"deltas"` // sorted by tenant
}

// ErrInvalidLimits reports negative limits.
var ErrInvalidLimits = errors.New("cluster: invalid limits")

func (f *fsm) setLimits(c setLimitsCmd) error {
	t, ok := f.tenants[c.Tenant]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchTenant, c.Tenant)
	}
	for _, s := range c.Set {
		switch s {
		case "rate":
			t.Limits.RPS, t.Limits.Burst = c.Limits.RPS, c.Limits.Burst
		case "quota":
			t.Limits.MaxBytes, t.Limits.MaxArtifacts = c.Limits.MaxBytes, c.Limits.MaxArtifacts
		}
	}
	return nil
}

func (f *fsm) addUsage(c usageCmd) error {
	for _, d := range c.Deltas {
		if t, ok := f.tenants[d.Tenant]; ok {
			t.Usage.Bytes += d.Bytes
			t.Usage.Artifacts += d.Artifacts
		}
	}
	return nil
}

// SetRate sets a tenant's request rate limit (0 for the default).
func (s *Store) SetRate(ctx context.Context, tenant string, rps float64, burst int) error {
	if rps < 0 || burst < 0 {
		return fmt.Errorf("%w: rps %v, burst %d", ErrInvalidLimits, rps, burst)
	}
	return s.applyCmd(ctx, cmdSetLimits, setLimitsCmd{Tenant: tenant, Limits: Limits{RPS: rps, Burst: burst}, Set: []string{"rate"}})
}

// SetQuota sets a tenant's quota (0 for unlimited).
func (s *Store) SetQuota(ctx context.Context, tenant string, maxBytes, maxArtifacts int64) error {
	if maxBytes < 0 || maxArtifacts < 0 {
		return fmt.Errorf("%w: bytes %d, artifacts %d", ErrInvalidLimits, maxBytes, maxArtifacts)
	}
	return s.applyCmd(ctx, cmdSetLimits, setLimitsCmd{Tenant: tenant, Limits: Limits{MaxBytes: maxBytes, MaxArtifacts: maxArtifacts}, Set: []string{"quota"}})
}

// AddUsage commits usage deltas (a node's batch).
func (s *Store) AddUsage(ctx context.Context, deltas []UsageDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	deltas = slices.Clone(deltas)
	slices.SortFunc(deltas, func(a, b UsageDelta) int { return strings.Compare(a.Tenant, b.Tenant) })
	return s.applyCmd(ctx, cmdUsage, usageCmd{Deltas: deltas})
}

// LocalTenants returns all tenants, with limits and committed usage, from
// this node's state without a leader round trip (for metrics scrapes;
// Tenants syncs with the leader first).
func (s *Store) LocalTenants() []Tenant { return s.fsm.tenantList() }

// TenantLimits returns a tenant's limits and committed usage from the
// local state (no leader round trip: it is on every request's path).
func (s *Store) TenantLimits(tenant string) (Limits, Usage, bool) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	t, ok := s.fsm.tenants[tenant]
	if !ok {
		return Limits{}, Usage{}, false
	}
	return t.Limits, t.Usage, true
}
