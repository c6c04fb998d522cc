package metrics_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/metrics"
	"github.com/vaultaire/vaultaire/s3"
)

const dashboardPath = "../deploy/grafana/vaultaire.json"

// exported returns the names of every series family the package exports
// with all providers set, and a histogram's _bucket, _sum and _count names.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New(metrics.Config{
		Engine: func() engine.Stats { return engine.Stats{} },
		Drives: func(context.Context) []metrics.DriveSample {
			return []metrics.DriveSample{{ID: "d0", Node: "n1", Class: "ssd", Online: true}}
		},
		Raft:    func() metrics.RaftSample { return metrics.RaftSample{State: "leader"} },
		Members: func() map[string]int { return map[string]int{"alive": 1} },
		Usage:   func() []metrics.TenantUsage { return []metrics.TenantUsage{{Tenant: "alice"}} },
		Scrub:   func() []engine.ScrubStatus { return []engine.ScrubStatus{{Drive: "d0"}} },
		Remotes: func() []metrics.RemoteSample { return []metrics.RemoteSample{{Drive: "remote-cold", Online: true}} },
		Map: func() metrics.MapSample {
			return metrics.MapSample{Epoch: 3, DrainDrives: 2, DrainRate: -1, DrainETA: -1}
		},
		Conns: func() s3.ConnStats { return s3.ConnStats{Open: 1} },
	})
	for _, code := range []string{"", "SlowDown", "QuotaExceeded"} {
		m.ObserveRequest(&s3.RequestEvent{Operation: "PutObject", Status: 200, Tenant: "alice", ErrorCode: code, Latency: time.Millisecond})
	}
	names := make(map[string]bool)
	for name, f := range scrapeHandler(t, m.Handler()) {
		if !strings.HasPrefix(name, "vaultaire_") {
			continue
		}
		names[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[name+suffix] = true
			}
		}
	}
	return names
}

// dashboard is the part of Grafana's dashboard JSON model the test reads.
type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// seriesName finds the series names in a PromQL expression.
var seriesName = regexp.MustCompile(`vaultaire_[a-z0-9_]+`)

func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs = %+v, want the one DS_PROMETHEUS Prometheus datasource", d.Inputs)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("title %q, uid %q, schemaVersion %d: want a titled Grafana 10+ dashboard", d.Title, d.UID, d.SchemaVersion)
	}

	names := exported(t)
	used := make(map[string]bool)
	check := func(where, expr string) {
		t.Helper()
		found := seriesName.FindAllString(expr, -1)
		if len(found) == 0 && !strings.Contains(expr, "process_") && !strings.Contains(expr, "go_") {
			t.Errorf("%s: expression %q names no series", where, expr)
		}
		for _, name := range found {
			if !names[name] {
				t.Errorf("%s: expression names %s, which package metrics does not export", where, name)
			}
			used[strings.TrimSuffix(name, "_bucket")] = true
		}
	}
	for _, v := range d.Templating.List {
		check("variable "+v.Name, v.Definition)
	}
	var walk func([]panel)
	ids := make(map[int]bool)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %q: id %d is not unique", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no queries", p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q: datasource %+v, want ${DS_PROMETHEUS}", p.Title, p.Datasource)
			}
			for _, tg := range p.Targets {
				if tg.Datasource == nil || tg.Datasource.UID != "${DS_PROMETHEUS}" {
					t.Errorf("panel %q: query datasource %+v, want ${DS_PROMETHEUS}", p.Title, tg.Datasource)
				}
				check("panel "+p.Title, tg.Expr)
			}
		}
	}
	walk(d.Panels)

	// Every exported family is on the dashboard somewhere.
	for name := range names {
		if strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_bucket") {
			continue
		}
		if !used[name] {
			t.Errorf("%s is not on the dashboard", name)
		}
	}
}

// TestDocListsSeries checks that the package comment lists every series.
func TestDocListsSeries(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	listed := regexp.MustCompile(`(?m)^//\t([a-z0-9_]+)(?:\{[a-z_,]+\})?  +[a-z]`).FindAllSubmatch(doc, -1)
	var inDoc []string
	for _, l := range listed {
		inDoc = append(inDoc, "vaultaire_"+string(l[1]))
	}
	for name := range exported(t) {
		if strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_bucket") {
			continue
		}
		if !slices.Contains(inDoc, name) {
			t.Errorf("%s is not listed in the package comment", name)
		}
	}
	names := exported(t)
	for _, name := range inDoc {
		if !names[name] {
			t.Errorf("package comment lists %s, which is not exported", name)
		}
	}
}
