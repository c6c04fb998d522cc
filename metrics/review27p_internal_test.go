package metrics

import (
	"fmt"
	"sync"
	"testing"

	"github.com/vaultaire/vaultaire/s3"
)

// TestReview27pSeriesCacheBounded (66f5357): hostile operation names,
// statuses and tenants from many goroutines grow the series cache no
// further than the label values the vectors admit: operations (unknown
// ones are "Unknown"), four status classes, MaxTenants tenants, "" and
// OtherTenant.
func TestReview27pSeriesCacheBounded(t *testing.T) {
	const maxTenants = 3
	m := New(Config{MaxTenants: maxTenants})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				m.ObserveRequest(&s3.RequestEvent{
					Operation: fmt.Sprintf("op-%d-%d", g, i),
					Status:    (i * 37) % 1000,
					Tenant:    fmt.Sprintf("tenant-%d-%d", g, i),
					BytesIn:   1,
				})
				m.ObserveRequest(&s3.RequestEvent{Operation: "GetObject", Status: 200 + i%400, Tenant: ""})
			}
		})
	}
	wg.Wait()
	m.req.series.mu.RLock()
	n := len(m.req.series.m)
	m.req.series.mu.RUnlock()
	if bound := len(Operations) * 4 * (maxTenants + 2); n > bound {
		t.Fatalf("series cache holds %d label sets, want at most %d", n, bound)
	}
}
