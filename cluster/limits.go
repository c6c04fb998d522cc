package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vaultaire/vaultaire/tenant"
)

// setLimitsCmd changes some of a tenant's limits: the fields named in Set.
type setLimitsCmd struct {
	Tenant string        `json:"tenant"`
	Limits tenant.Limits `json:"limits"`
	Set    []string      `json:"set"` // "rate" (RPS and Burst), "bandwidth" (BytesIn and BytesOut), "quota" (MaxBytes and MaxArtifacts)
}

// usageCmd adds usage deltas. Deltas of tenants that no longer exist are
// ignored.
type usageCmd struct {
	Deltas []tenant.UsageDelta `json:"deltas"` // sorted by tenant
}

func (f *fsm) setLimits(c setLimitsCmd) error {
	t, ok := f.tenants[c.Tenant]
	if !ok {
		return fmt.Errorf("%w: %s", tenant.ErrNoSuchTenant, c.Tenant)
	}
	for _, s := range c.Set {
		switch s {
		case "rate":
			t.Limits.RPS, t.Limits.Burst = c.Limits.RPS, c.Limits.Burst
		case "bandwidth":
			t.Limits.BytesIn, t.Limits.BytesOut = c.Limits.BytesIn, c.Limits.BytesOut
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
func (s *Store) SetRate(ctx context.Context, name string, rps float64, burst int) error {
	l := tenant.Limits{RPS: rps, Burst: burst}
	if err := l.Validate(); err != nil {
		return err
	}
	return s.applyCmd(ctx, cmdSetLimits, setLimitsCmd{Tenant: name, Limits: l, Set: []string{"rate"}})
}

// SetBandwidth sets a tenant's bandwidth in bytes per second, of request
// bodies (in) and response bodies (out), each enforced per node (0 for
// unlimited).
func (s *Store) SetBandwidth(ctx context.Context, name string, in, out int64) error {
	l := tenant.Limits{BytesIn: in, BytesOut: out}
	if err := l.Validate(); err != nil {
		return err
	}
	return s.applyCmd(ctx, cmdSetLimits, setLimitsCmd{Tenant: name, Limits: l, Set: []string{"bandwidth"}})
}

// SetQuota sets a tenant's quota (0 for unlimited).
func (s *Store) SetQuota(ctx context.Context, name string, maxBytes, maxArtifacts int64) error {
	l := tenant.Limits{MaxBytes: maxBytes, MaxArtifacts: maxArtifacts}
	if err := l.Validate(); err != nil {
		return err
	}
	return s.applyCmd(ctx, cmdSetLimits, setLimitsCmd{Tenant: name, Limits: l, Set: []string{"quota"}})
}

// AddUsage commits usage deltas (a node's batch).
func (s *Store) AddUsage(ctx context.Context, deltas []tenant.UsageDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	deltas = slices.Clone(deltas)
	slices.SortFunc(deltas, func(a, b tenant.UsageDelta) int { return strings.Compare(a.Tenant, b.Tenant) })
	return s.applyCmd(ctx, cmdUsage, usageCmd{Deltas: deltas})
}

// LocalTenants returns all tenants, with limits and committed usage, from
// this node's state without a leader round trip (for metrics scrapes;
// Tenants syncs with the leader first).
func (s *Store) LocalTenants() []tenant.Tenant { return s.fsm.tenantList() }

// TenantLimits returns a tenant's limits and committed usage from the
// local state (no leader round trip: it is on every request's path).
func (s *Store) TenantLimits(name string) (tenant.Limits, tenant.Usage, bool) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	t, ok := s.fsm.tenants[name]
	if !ok {
		return tenant.Limits{}, tenant.Usage{}, false
	}
	return t.Limits, t.Usage, true
}
