package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape is a parsed exposition: metric families by name.
type scrape map[string]*dto.MetricFamily

// parse parses the Prometheus text format.
func parse(t *testing.T, r io.Reader) scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

// scrapeToken is the metrics bearer token of the test servers
// (s3.Config.MetricsToken), which scrapeURL sends.
const scrapeToken = "metrics-test-token"

// scrapeURL GETs url with the metrics token and parses the answer.
func scrapeURL(t *testing.T, url string) scrape {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+scrapeToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET %s: Content-Type %q, want text/plain", url, ct)
	}
	return parse(t, resp.Body)
}

// scrapeHandler serves one scrape from h and parses it.
func scrapeHandler(t *testing.T, h http.Handler) scrape {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_vault/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	return parse(t, rec.Body)
}

// matches reports whether m has every label in kv (name, value pairs); as
// in Prometheus, a missing label has the value "".
func matches(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		got := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] {
				got = lp.GetValue()
			}
		}
		if got != kv[i+1] {
			return false
		}
	}
	return true
}

// value sums the values of name's series carrying the labels kv (name,
// value pairs), and reports
// whether any matched. A histogram's value is its sample count.
func (s scrape) value(name string, kv ...string) (float64, bool) {
	f, ok := s[name]
	if !ok {
		return 0, false
	}
	var sum float64
	var any bool
	for _, m := range f.GetMetric() {
		if !matches(m, kv) {
			continue
		}
		any = true
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			sum += m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			sum += m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			sum += float64(m.GetHistogram().GetSampleCount())
		default:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, any
}

// must is value that fails the test if no series matches.
func (s scrape) must(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	v, ok := s.value(name, kv...)
	if !ok {
		t.Fatalf("no series %s%v in scrape", name, kv)
	}
	return v
}

// labelValues returns the distinct values of label across name's series.
func (s scrape) labelValues(name, label string) map[string]bool {
	vals := make(map[string]bool)
	for _, m := range s[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				vals[lp.GetValue()] = true
			}
		}
	}
	return vals
}
