package metrics_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/metrics"
	"github.com/vaultaire/vaultaire/s3"
)

func TestTenantCap(t *testing.T) {
	m := metrics.New(metrics.Config{
		MaxTenants: 3,
		Usage: func() []metrics.TenantUsage {
			return []metrics.TenantUsage{
				{Tenant: "t0", Bytes: 5, Artifacts: 1},
				{Tenant: "late-a", Bytes: 100, Artifacts: 2},
				{Tenant: "late-b", Bytes: 200, Artifacts: 3},
			}
		},
	})
	// Ten tenants from many goroutines: t0..t2 come first and take the room.
	for i := range 3 {
		m.ObserveRequest(&s3.RequestEvent{Operation: "GetObject", Status: 200, Tenant: fmt.Sprintf("t%d", i), BytesOut: 10})
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			for range 50 {
				m.ObserveRequest(&s3.RequestEvent{Operation: "GetObject", Status: 200, Tenant: fmt.Sprintf("t%d", i), BytesOut: 10})
			}
		})
	}
	wg.Wait()
	m.ObserveRequest(&s3.RequestEvent{Operation: "ListBuckets", Status: 403, ErrorCode: "AccessDenied"})

	s := scrapeHandler(t, m.Handler())
	for _, name := range []string{"vaultaire_s3_requests_total", "vaultaire_s3_sent_bytes_total", "vaultaire_tenant_stored_bytes"} {
		got := s.labelValues(name, "tenant")
		delete(got, "") // unauthenticated requests are not tenants
		want := map[string]bool{"t0": true, "t1": true, "t2": true, metrics.OtherTenant: true}
		if name == "vaultaire_tenant_stored_bytes" {
			want = map[string]bool{"t0": true, metrics.OtherTenant: true}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s tenants = %v, want %v", name, got, want)
		}
	}
	for _, c := range []struct {
		name   string
		tenant string
		want   float64
	}{
		{"vaultaire_s3_requests_total", "t0", 51},
		{"vaultaire_s3_requests_total", metrics.OtherTenant, 7 * 50},
		{"vaultaire_s3_requests_total", "", 1},
		{"vaultaire_s3_sent_bytes_total", metrics.OtherTenant, 7 * 50 * 10},
		{"vaultaire_tenant_stored_bytes", "t0", 5},
		{"vaultaire_tenant_stored_bytes", metrics.OtherTenant, 300},
		{"vaultaire_tenant_artifacts", metrics.OtherTenant, 5},
	} {
		if got := s.must(t, c.name, "tenant", c.tenant); got != c.want {
			t.Errorf("%s{tenant=%q} = %v, want %v", c.name, c.tenant, got, c.want)
		}
	}
}

func TestRequestLabels(t *testing.T) {
	m := metrics.New(metrics.Config{})
	for _, c := range []struct {
		op     string
		status int
		code   string
	}{
		{"PutObject", 200, ""},
		{"PutObject", 204, ""},
		{"GetObject", 304, ""},
		{"GetObject", 404, "NoSuchKey"},
		{"PutObject", 403, "QuotaExceeded"},
		{"GetObject", 503, "SlowDown"},
		{"GetObject", 500, "InternalError"},
		{"Frobnicate", 200, ""}, // not a known operation
		{"", 400, "InvalidRequest"},
		{"GetObject", 0, ""}, // never answered: counted as a server error
	} {
		m.ObserveRequest(&s3.RequestEvent{Operation: c.op, Status: c.status, ErrorCode: c.code, Tenant: "alice",
			Bucket: "b", Key: "k", Latency: 3 * time.Millisecond, BytesIn: 5, BytesOut: -1})
	}
	s := scrapeHandler(t, m.Handler())
	for _, c := range []struct {
		op, class string
		want      float64
	}{
		{"PutObject", "2xx", 2},
		{"GetObject", "3xx", 1},
		{"GetObject", "4xx", 1},
		{"PutObject", "4xx", 1},
		{"GetObject", "5xx", 3},
		{"Unknown", "2xx", 1},
		{"Unknown", "4xx", 1},
	} {
		if got := s.must(t, "vaultaire_s3_requests_total", "operation", c.op, "status_class", c.class, "tenant", "alice"); got != c.want {
			t.Errorf("requests{%s,%s} = %v, want %v", c.op, c.class, got, c.want)
		}
	}
	if got := s.labelValues("vaultaire_s3_requests_total", "operation"); len(got) != 3 {
		t.Errorf("operations %v, want PutObject, GetObject and Unknown", got)
	}
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vaultaire_s3_rate_limited_total", 1},
		{"vaultaire_s3_quota_refused_total", 1},
		{"vaultaire_s3_received_bytes_total", 50},
		{"vaultaire_s3_sent_bytes_total", 0},
	} {
		if got := s.must(t, c.name, "tenant", "alice"); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if got := s.must(t, "vaultaire_s3_request_duration_seconds", "operation", "GetObject"); got != 5 {
		t.Errorf("GetObject durations observed %v, want 5", got)
	}
	// The text format adds the +Inf bucket.
	b := s["vaultaire_s3_request_duration_seconds"].GetMetric()[0].GetHistogram().GetBucket()
	if lo, hi := b[0].GetUpperBound(), b[len(b)-2].GetUpperBound(); lo != 0.001 || hi != 60 {
		t.Errorf("duration buckets span %v..%v s, want 0.001..60", lo, hi)
	}
	// No labels but the bounded ones: never a bucket or key.
	for name, f := range s {
		if !strings.HasPrefix(name, "vaultaire_") {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, lp := range mt.GetLabel() {
				switch lp.GetName() {
				case "operation", "status_class", "tenant":
				default:
					t.Errorf("%s has label %s", name, lp.GetName())
				}
			}
		}
	}
}

func TestProviders(t *testing.T) {
	var drivesCtx context.Context
	m := metrics.New(metrics.Config{
		Engine: func() engine.Stats {
			return engine.Stats{EncodeSeconds: 1.5, Encodes: 10, DecodeSeconds: 0.25, Decodes: 20,
				DegradedReads: 3, Repairs: 4, RepairedShards: 5, HealQueue: 6}
		},
		Drives: func(ctx context.Context) []metrics.DriveSample {
			drivesCtx = ctx
			return []metrics.DriveSample{
				{ID: "d0", Node: "n1", Class: "ssd", Online: true, Used: 100, Free: 900, Total: 1000},
				{ID: "d1", Node: "n2", Class: "hdd", Online: false, Used: 7, Free: 8, Total: 15},
				{ID: "d1", Node: "n2", Class: "hdd"}, // repeated: ignored
			}
		},
		Raft: func() metrics.RaftSample {
			return metrics.RaftSample{State: "Follower", Term: 7, CommitIndex: 120, AppliedIndex: 118,
				LastContact: 250 * time.Millisecond, Voters: 3, NonVoters: 2}
		},
		Members: func() map[string]int { return map[string]int{"alive": 4, "suspect": 1, "dead": 0} },
		Usage: func() []metrics.TenantUsage {
			return []metrics.TenantUsage{{Tenant: "alice", Bytes: 1 << 30, Artifacts: 42}, {Tenant: "bob", Bytes: 0, Artifacts: 0}}
		},
		Conns: func() s3.ConnStats {
			return s3.ConnStats{Open: 9, RefusedPerSource: 4, RefusedTotal: 2, Unanswered: 1}
		},
	})
	start := time.Now()
	s := scrapeHandler(t, m.Handler())
	if dl, ok := drivesCtx.Deadline(); !ok || dl.Sub(start) < metrics.DefaultScrapeTimeout || dl.Sub(start) > metrics.DefaultScrapeTimeout+time.Second {
		t.Errorf("Drives ctx deadline %v after the scrape began (set %v), want %v", dl.Sub(start), ok, metrics.DefaultScrapeTimeout)
	}
	for _, c := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"vaultaire_erasure_encode_seconds_total", nil, 1.5},
		{"vaultaire_erasure_encodes_total", nil, 10},
		{"vaultaire_erasure_decode_seconds_total", nil, 0.25},
		{"vaultaire_erasure_decodes_total", nil, 20},
		{"vaultaire_degraded_reads_total", nil, 3},
		{"vaultaire_repairs_total", nil, 4},
		{"vaultaire_repaired_shards_total", nil, 5},
		{"vaultaire_heal_queue", nil, 6},

		{"vaultaire_drive_info", []string{"drive", "d0", "node", "n1", "class", "ssd"}, 1},
		{"vaultaire_drive_info", []string{"drive", "d1", "node", "n2", "class", "hdd"}, 1},
		{"vaultaire_drive_online", []string{"drive", "d0", "node", "n1"}, 1},
		{"vaultaire_drive_online", []string{"drive", "d1", "node", "n2"}, 0},
		{"vaultaire_drive_used_bytes", []string{"drive", "d0", "node", "n1"}, 100},
		{"vaultaire_drive_free_bytes", []string{"drive", "d0", "node", "n1"}, 900},
		{"vaultaire_drive_total_bytes", []string{"drive", "d0", "node", "n1"}, 1000},
		{"vaultaire_drive_used_bytes", []string{"drive", "d1", "node", "n2"}, 7},
		{"vaultaire_drive_free_bytes", []string{"drive", "d1", "node", "n2"}, 8},
		{"vaultaire_drive_total_bytes", []string{"drive", "d1", "node", "n2"}, 15},

		{"vaultaire_raft_state", []string{"state", "follower"}, 1},
		{"vaultaire_raft_state", []string{"state", "leader"}, 0},
		{"vaultaire_raft_state", []string{"state", "candidate"}, 0},
		{"vaultaire_raft_state", []string{"state", "shutdown"}, 0},
		{"vaultaire_raft_term", nil, 7},
		{"vaultaire_raft_commit_index", nil, 120},
		{"vaultaire_raft_applied_index", nil, 118},
		{"vaultaire_raft_last_contact_seconds", nil, 0.25},
		{"vaultaire_raft_voters", nil, 3},
		{"vaultaire_raft_nonvoters", nil, 2},

		{"vaultaire_gossip_members", []string{"state", "alive"}, 4},
		{"vaultaire_gossip_members", []string{"state", "suspect"}, 1},
		{"vaultaire_gossip_members", []string{"state", "dead"}, 0},

		{"vaultaire_tenant_stored_bytes", []string{"tenant", "alice"}, 1 << 30},
		{"vaultaire_tenant_artifacts", []string{"tenant", "alice"}, 42},
		{"vaultaire_tenant_stored_bytes", []string{"tenant", "bob"}, 0},

		{"vaultaire_connections_open", nil, 9},
		{"vaultaire_connections_refused_total", []string{"cap", "per_ip"}, 4},
		{"vaultaire_connections_refused_total", []string{"cap", "total"}, 2},
		{"vaultaire_connections_refused_unanswered_total", nil, 1},
	} {
		if got := s.must(t, c.name, c.kv...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.kv, got, c.want)
		}
	}
	for name, n := range map[string]int{"vaultaire_drive_online": 2, "vaultaire_raft_state": 4, "vaultaire_gossip_members": 3, "vaultaire_tenant_artifacts": 2} {
		if got := len(s[name].GetMetric()); got != n {
			t.Errorf("%s has %d series, want %d", name, got, n)
		}
	}
}

// TestNoProviders checks that a nil provider leaves its series out.
func TestNoProviders(t *testing.T) {
	s := scrapeHandler(t, metrics.New(metrics.Config{}).Handler())
	for _, name := range []string{"vaultaire_erasure_encodes_total", "vaultaire_heal_queue", "vaultaire_drive_online",
		"vaultaire_raft_state", "vaultaire_raft_term", "vaultaire_gossip_members", "vaultaire_tenant_stored_bytes"} {
		if _, ok := s[name]; ok {
			t.Errorf("%s present without its provider", name)
		}
	}
	s.must(t, "go_goroutines")
}

// TestDrivesTimeout checks that a Drives provider stuck on I/O cannot hold
// a scrape longer than ScrapeTimeout.
func TestDrivesTimeout(t *testing.T) {
	m := metrics.New(metrics.Config{
		ScrapeTimeout: 50 * time.Millisecond,
		Drives: func(ctx context.Context) []metrics.DriveSample {
			<-ctx.Done()
			return nil
		},
		Raft: func() metrics.RaftSample { return metrics.RaftSample{State: "leader", Term: 2} },
	})
	start := time.Now()
	s := scrapeHandler(t, m.Handler())
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("scrape took %v with a 50ms ScrapeTimeout", took)
	}
	if got := s.must(t, "vaultaire_raft_state", "state", "leader"); got != 1 {
		t.Errorf("raft_state{leader} = %v, want 1", got)
	}
	if _, ok := s["vaultaire_drive_online"]; ok {
		t.Error("drive series present though the provider returned none")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg     metrics.Config
		wantErr bool
	}{
		{metrics.Config{}, false},
		{metrics.Config{MaxTenants: -1}, true},
		{metrics.Config{ScrapeTimeout: -time.Second}, true},
	} {
		cfg := c.cfg
		err := cfg.Validate()
		if (err != nil) != c.wantErr {
			t.Errorf("Validate(%+v) = %v, want error %v", c.cfg, err, c.wantErr)
		}
		if err == nil && (cfg.MaxTenants != metrics.DefaultMaxTenants || cfg.ScrapeTimeout != metrics.DefaultScrapeTimeout || cfg.Logger == nil) {
			t.Errorf("Validate(%+v) left %+v, want defaults filled in", c.cfg, cfg)
		}
	}
}

func BenchmarkObserveRequest(b *testing.B) {
	m := metrics.New(metrics.Config{})
	ev := &s3.RequestEvent{Operation: "GetObject", Status: 200, Tenant: "alice", BytesOut: 1 << 20, Latency: 2 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveRequest(ev)
	}
}
