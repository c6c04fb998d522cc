package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultaire/vaultaire/s3"
)

// Operations are the operation label values: the names of the s3
// server's routes; any other RequestEvent.Operation is counted as
// "Unknown".
var Operations = s3.Operations()

// DurationBuckets are the upper bounds, in seconds, of
// s3_request_duration_seconds.
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60}

// statusClasses are the status_class label values by HTTP status / 100.
var statusClasses = [...]string{2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

// requestMetrics are the series ObserveRequest updates.
type requestMetrics struct {
	requests    *prometheus.CounterVec
	durations   map[string]prometheus.Observer // by operation, complete
	received    *prometheus.CounterVec
	sent        *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	quota       *prometheus.CounterVec
	series      *seriesCache
}

// seriesCache holds the series ObserveRequest updates for every request,
// by operation, status class and tenant label: looking each up in its
// vector (WithLabelValues hashes the values) was most of ObserveRequest's
// microsecond. It grows as the vectors do, by the label values seen.
type seriesCache struct {
	mu sync.RWMutex // guards m
	m  map[seriesKey]*requestSeries
}

type seriesKey struct{ op, class, tenant string }

// requestSeries are one label set's series of requests, received and sent.
type requestSeries struct {
	requests, received, sent prometheus.Counter
}

// get returns k's series, taking them from rm's vectors the first time.
func (c *seriesCache) get(rm *requestMetrics, k seriesKey) *requestSeries {
	c.mu.RLock()
	s, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return s
	}
	s = &requestSeries{
		requests: rm.requests.WithLabelValues(k.op, k.class, k.tenant),
		received: rm.received.WithLabelValues(k.tenant),
		sent:     rm.sent.WithLabelValues(k.tenant),
	}
	c.mu.Lock()
	c.m[k] = s
	c.mu.Unlock()
	return s
}

func newRequestMetrics(reg prometheus.Registerer) requestMetrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "s3", Name: name, Help: help,
		}, labels)
		reg.MustRegister(c)
		return c
	}
	rm := requestMetrics{
		requests:    counter("requests_total", "S3 and admin requests served, by operation, status class and tenant.", "operation", "status_class", "tenant"),
		received:    counter("received_bytes_total", "Request body bytes received, by tenant.", "tenant"),
		sent:        counter("sent_bytes_total", "Response body bytes sent, by tenant.", "tenant"),
		rateLimited: counter("rate_limited_total", "Requests refused with 503 SlowDown by the rate limiter, by tenant.", "tenant"),
		quota:       counter("quota_refused_total", "Uploads refused with 403 QuotaExceeded, by tenant.", "tenant"),
		durations:   make(map[string]prometheus.Observer, len(Operations)),
		series:      &seriesCache{m: make(map[seriesKey]*requestSeries)},
	}
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "s3", Name: "request_duration_seconds",
		Help:    "Time to serve a request (to the response headers for a streamed download), by operation.",
		Buckets: DurationBuckets,
	}, []string{"operation"})
	reg.MustRegister(hist)
	for _, op := range Operations {
		rm.durations[op] = hist.WithLabelValues(op)
	}
	return rm
}

// ObserveRequest counts a served request. It implements s3.Observer: it
// does not block and does not keep ev.
func (m *Metrics) ObserveRequest(ev *s3.RequestEvent) {
	op := ev.Operation
	dur, ok := m.req.durations[op]
	if !ok {
		op = "Unknown"
		dur = m.req.durations[op]
	}
	tenant := m.tenants.label(ev.Tenant)
	rs := m.req.series.get(&m.req, seriesKey{op, statusClass(ev.Status), tenant})
	rs.requests.Inc()
	dur.Observe(ev.Latency.Seconds())
	rs.received.Add(float64(max(0, ev.BytesIn)))
	rs.sent.Add(float64(max(0, ev.BytesOut)))
	switch {
	case ev.RateLimited():
		m.req.rateLimited.WithLabelValues(tenant).Inc()
	case ev.QuotaRefused():
		m.req.quota.WithLabelValues(tenant).Inc()
	}
}

// statusClass returns the status_class of an HTTP status; a status outside
// 200..599, which the server never answers, counts as "5xx".
func statusClass(status int) string {
	if c := status / 100; c >= 2 && c <= 5 {
		return statusClasses[c]
	}
	return statusClasses[5]
}

// tenantSet admits up to limit distinct tenant label values. Once admitted
// a tenant keeps its label for the life of the process.
type tenantSet struct {
	limit int

	mu    sync.RWMutex        // guards known
	known map[string]struct{} // admitted tenants
}

func newTenantSet(limit int) *tenantSet {
	return &tenantSet{limit: limit, known: make(map[string]struct{})}
}

// label returns the tenant label value for tenant: tenant itself if it is
// "" or admitted (admitting it if there is room), else OtherTenant.
func (s *tenantSet) label(tenant string) string {
	if tenant == "" {
		return ""
	}
	s.mu.RLock()
	_, ok := s.known[tenant]
	full := len(s.known) >= s.limit
	s.mu.RUnlock()
	switch {
	case ok:
		return tenant
	case full:
		return OtherTenant
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.known[tenant]; !ok {
		if len(s.known) >= s.limit {
			return OtherTenant
		}
		s.known[tenant] = struct{}{}
	}
	return tenant
}
