package cluster

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/tenant"
)

// TestShareTraffic: three real memberships exchange their tenants' rates
// by gossip, so that each node's share of a tenant served round robin is
// a third, and of a tenant served by one node all of it there.
func TestShareTraffic(t *testing.T) {
	ms := startCluster(t, 3)
	waitFor(t, 10*time.Second, func() string {
		for _, m := range ms {
			if n := len(m.ml.Members()); n != 3 {
				return fmt.Sprintf("%s sees %d live members", m.name, n)
			}
		}
		return ""
	})
	trs := make([]*tenant.Traffic, len(ms))
	for i, m := range ms {
		trs[i] = tenant.NewTraffic(100 * time.Millisecond)
		go m.ShareTraffic(t.Context(), trs[i])
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // alice round robin, bob on n1 only
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			for _, tr := range trs {
				tr.Observe("alice")
			}
			trs[0].Observe("bob")
		}
	}()
	waitFor(t, 10*time.Second, func() string {
		for i, tr := range trs {
			if s := tr.Share("alice"); s < 0.25 || s > 0.42 {
				return fmt.Sprintf("n%d: alice's share %.2f, want about 1/3 (reports %v)", i+1, s, tr.Reports("alice"))
			}
		}
		if s := trs[0].Share("bob"); s != 1 {
			return fmt.Sprintf("n1: bob's share %.2f, want 1", s)
		}
		if s := trs[1].Share("bob"); s > 1.0/6+1e-9 {
			return fmt.Sprintf("n2: bob's share %.2f, want the floor 1/6", s)
		}
		return ""
	})
}

// TestEncodeRates: many tenants' rates are split into messages that each
// fit in a datagram and together carry every rate.
func TestEncodeRates(t *testing.T) {
	rates := map[string]float64{}
	for i := range 500 {
		rates[fmt.Sprintf("tenant-with-a-long-name-%040d", i)] = float64(i) + 0.25
	}
	msgs := encodeRates("node-1", rates)
	got := map[string]float64{}
	for _, msg := range msgs {
		if len(msg) > maxRateMsg+100 || msg[0] != msgRates {
			t.Fatalf("message of %d bytes tagged %d", len(msg), msg[0])
		}
		var r rateReport
		if err := json.Unmarshal(msg[1:], &r); err != nil || r.Node != "node-1" {
			t.Fatalf("message %q: %v", msg, err)
		}
		for k, v := range r.Rates {
			got[k] = v
		}
	}
	if len(msgs) < 2 || len(got) != len(rates) {
		t.Fatalf("%d messages carry %d rates, want several carrying %d", len(msgs), len(got), len(rates))
	}
	for k, v := range rates {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
}
