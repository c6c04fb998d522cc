package tenant

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestLimiterTableBounded(t *testing.T) {
	l := NewRateLimiter(nil, 10_000)
	for i := range 20_000 {
		if _, ok := l.Allow(context.Background(), fmt.Sprintf("tenant-%d", i)); !ok {
			t.Fatalf("tenant-%d refused its first request", i)
		}
		if l.Len() > 10_000 {
			t.Fatalf("%d limiters after %d tenants, cap 10000", l.Len(), i+1)
		}
	}
	if l.Len() != 10_000 {
		t.Errorf("%d limiters, want the cap", l.Len())
	}
}

func TestLimiterBuckets(t *testing.T) {
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	settings := func(tenant string) (float64, int) {
		if tenant == "slow" {
			return 20, 20
		}
		return 0, 0
	}
	l := NewRateLimiter(settings, 0, "root")
	l.MaxWait = 0 // refuse at once: count the bucket's tokens
	l.now = func() time.Time { return now }
	count := func(tenant string, n int) (ok int, wait time.Duration) {
		for range n {
			if d, allowed := l.Allow(context.Background(), tenant); allowed {
				ok++
			} else {
				wait = d
			}
		}
		return ok, wait
	}
	tests := []struct {
		tenant string
		calls  int
		want   int
	}{
		{"slow", 200, 20},            // its burst
		{"other", 300, DefaultBurst}, // defaults
		{"root", 1000, 1000},         // exempt
	}
	for _, tc := range tests {
		got, wait := count(tc.tenant, tc.calls)
		if got != tc.want {
			t.Errorf("%s: %d of %d allowed, want %d", tc.tenant, got, tc.calls, tc.want)
		}
		if got < tc.calls && (wait <= 0 || wait > time.Second) {
			t.Errorf("%s: retry after %v", tc.tenant, wait)
		}
	}
	now = now.Add(500 * time.Millisecond) // 10 tokens back at 20/s
	if got, _ := count("slow", 50); got != 10 {
		t.Errorf("after 0.5 s: %d allowed, want 10", got)
	}
}

// fakeStore is a UsageStore in memory.
type fakeStore struct {
	mu     sync.Mutex
	limits map[string]Limits
	used   map[string]Usage
}

func (f *fakeStore) TenantLimits(tenant string) (Limits, Usage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limits[tenant], f.used[tenant], true
}

func (f *fakeStore) AddUsage(ctx context.Context, ds []UsageDelta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range ds {
		u := f.used[d.Tenant]
		u.Bytes += d.Bytes
		u.Artifacts += d.Artifacts
		f.used[d.Tenant] = u
	}
	return nil
}

func TestAdmitCapsUnknownSize(t *testing.T) {
	store := &fakeStore{limits: map[string]Limits{"t": {MaxBytes: 1000}}, used: map[string]Usage{"t": {Bytes: 400}}}
	u := NewMeter(store, nil)
	u.Record("t", 100, 1)
	left, _, err := u.Admit(context.Background(), "t", -1, 1)
	if err != nil || left != 500 {
		t.Errorf("Admit(-1) = %d, %v; want 500 left", left, err)
	}
	if _, _, err := u.Admit(context.Background(), "t", 501, 1); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("Admit(501) = %v", err)
	}
	if left, _, err := u.Admit(context.Background(), "none", 1<<40, 1); err != nil || left != -1 {
		t.Errorf("unlimited tenant: %d, %v", left, err)
	}
}

// TestAdmitReserves: what Admit admits is held against later admissions
// until released, once, however often release is called.
func TestAdmitReserves(t *testing.T) {
	store := &fakeStore{limits: map[string]Limits{"t": {MaxBytes: 1000, MaxArtifacts: 3}}, used: map[string]Usage{"t": {Bytes: 100, Artifacts: 1}}}
	m := NewMeter(store, nil)
	ctx := t.Context()
	_, release, err := m.Admit(ctx, "t", 600, 1)
	if err != nil {
		t.Fatalf("Admit(600) = %v", err)
	}
	if _, _, err := m.Admit(ctx, "t", 400, 0); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("Admit(400) with 100 stored and 600 reserved = %v, want ErrQuotaExceeded", err)
	}
	left, release2, err := m.Admit(ctx, "t", -1, 1)
	if err != nil || left != 300 {
		t.Errorf("Admit(unknown size) = %d, %v; want 300 left", left, err)
	}
	if _, _, err := m.Admit(ctx, "t", 1, 1); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("a fourth artifact with 1 stored and 2 reserved = %v, want ErrQuotaExceeded", err)
	}
	release()
	release() // a second call gives nothing back twice
	release2()
	if _, _, err := m.Admit(ctx, "t", 901, 0); !errors.Is(err, ErrQuotaExceeded) {
		t.Errorf("Admit(901) after release = %v, want ErrQuotaExceeded", err)
	}
	if left, _, err := m.Admit(ctx, "t", 900, 2); err != nil || left != 900 {
		t.Errorf("Admit(900) after release = %d, %v; want 900 left", left, err)
	}
}
