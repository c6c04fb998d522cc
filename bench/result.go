package bench

import (
	"sort"
	"sync"
	"time"
)

// Result is what a run measured. Its JSON form is the `--json` output;
// scripts rely on ops_per_sec, mib_per_sec, errors and latency_ms.
type Result struct {
	Workload    Workload `json:"workload"`
	Endpoint    string   `json:"endpoint"`
	Bucket      string   `json:"bucket"`
	Size        int64    `json:"size_bytes"`
	Sizes       string   `json:"sizes,omitempty"` // the size distribution, if one was used (Size is its mean)
	Concurrency int      `json:"concurrency"`
	Objects     int      `json:"objects,omitempty"` // prepared objects (get, mixed, list)
	Mix         string   `json:"mix,omitempty"`     // mixed only
	Verify      bool     `json:"verify"`

	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"` // measured time, after warm-up
	Ops      int64     `json:"ops"`     // successful operations that ended in the measured time
	Bytes    int64     `json:"bytes"`   // their payload bytes
	ErrorOps int64     `json:"error_ops"`

	// Rates count the share of every successful operation that fell in
	// the measured time (an operation straddling its start or end counts
	// in proportion), not only those that ended in it.
	OpsPerSec  float64 `json:"ops_per_sec"`
	MiBPerSec  float64 `json:"mib_per_sec"`
	KeysPerSec float64 `json:"keys_per_sec,omitempty"` // list: keys listed per second

	Latency LatencyMS         `json:"latency_ms"` // successful operations
	ByOp    map[string]OpSum  `json:"by_op,omitempty"`
	Errors  map[string]int64  `json:"errors"`                  // S3 error code → count
	Samples map[string]string `json:"error_samples,omitempty"` // code → one message
	Series  []Second          `json:"series"`
}

// LatencyMS are latency percentiles in milliseconds.
type LatencyMS struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// OpSum summarises one operation type of the mixed workload.
type OpSum struct {
	Ops       int64     `json:"ops"`
	OpsPerSec float64   `json:"ops_per_sec"`
	Latency   LatencyMS `json:"latency_ms"`
}

// Second is one second of the measured run.
type Second struct {
	T         int     `json:"t"` // seconds since the measured start
	Ops       int64   `json:"ops"`
	MiB       float64 `json:"mib"`
	Errors    int64   `json:"errors"`
	MeanLatMS float64 `json:"mean_latency_ms"`
	P50LatMS  float64 `json:"p50_latency_ms"`
	P99LatMS  float64 `json:"p99_latency_ms"`
	MaxLatMS  float64 `json:"max_latency_ms"`
}

// recorder collects measured operations. Safe for concurrent use.
type recorder struct {
	start time.Time // measured start

	mu      sync.Mutex // guards the following fields
	hist    histogram
	byOp    map[string]*opStat
	ops     int64
	bytes   int64
	keys    int64
	moved   struct{ ops, bytes, keys float64 } // the measured window's share of every successful operation (inWindow)
	errOps  int64
	latSum  time.Duration
	errors  map[string]int64
	samples map[string]string
	seconds []secStat
}

type opStat struct {
	hist   histogram
	latSum time.Duration
}

type secStat struct {
	ops, bytes, errors int64
	latSum, latMax     time.Duration
	hist               *histogram // allocated on the second's first success (about 30 KB)
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, byOp: map[string]*opStat{}, errors: map[string]int64{}, samples: map[string]string{}}
}

func (r *recorder) sec(t time.Time) *secStat {
	i := max(int(t.Sub(r.start)/time.Second), 0)
	for len(r.seconds) <= i {
		r.seconds = append(r.seconds, secStat{})
	}
	return &r.seconds[i]
}

// ok records a successful operation that ended at end.
func (r *recorder) ok(op string, end time.Time, lat time.Duration, bytes, keys int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hist.record(lat)
	s := r.byOp[op]
	if s == nil {
		s = &opStat{}
		r.byOp[op] = s
	}
	s.hist.record(lat)
	s.latSum += lat
	r.ops++
	r.bytes += bytes
	r.keys += keys
	r.latSum += lat
	sec := r.sec(end)
	sec.ops++
	sec.bytes += bytes
	sec.latSum += lat
	sec.latMax = max(sec.latMax, lat)
	if sec.hist == nil {
		sec.hist = new(histogram)
	}
	sec.hist.record(lat)
}

// share adds the fraction f (inWindow) of a successful operation's bytes
// and keys to what the measured window moved, from which the rates are
// taken: a run of a few long operations (64 MiB objects, 16 in flight in
// 10 s: about three per worker) is then not counted in whole waves of
// operations that happen to end inside the window.
func (r *recorder) share(f float64, bytes, keys int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.moved.ops += f
	r.moved.bytes += f * float64(bytes)
	r.moved.keys += f * float64(keys)
}

// inWindow returns the fraction of the operation from t0 to end that lies
// inside the window from "from" to "to" (a zero to: no end), taking its
// work as spread evenly over its time.
func inWindow(t0, end, from, to time.Time) float64 {
	if !end.After(t0) {
		if !end.Before(from) && (to.IsZero() || !end.After(to)) {
			return 1
		}
		return 0
	}
	lo, hi := t0, end
	if lo.Before(from) {
		lo = from
	}
	if !to.IsZero() && hi.After(to) {
		hi = to
	}
	if !hi.After(lo) {
		return 0
	}
	return float64(hi.Sub(lo)) / float64(end.Sub(t0))
}

// fail records a failed operation under its error code.
func (r *recorder) fail(end time.Time, code, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errOps++
	r.errors[code]++
	if _, ok := r.samples[code]; !ok {
		r.samples[code] = msg
	}
	r.sec(end).errors++
}

// snapshot returns the totals so far, for the progress line.
func (r *recorder) snapshot() (ops, bytes, errs int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ops, r.bytes, r.errOps
}

func latencyMS(h *histogram, sum time.Duration) LatencyMS {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	l := LatencyMS{
		P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)), P99: ms(h.quantile(0.99)),
		P999: ms(h.quantile(0.999)), Max: float64(h.max) / 1000,
	}
	if h.total > 0 {
		l.Mean = ms(sum / time.Duration(h.total))
	}
	return l
}

// result fills the measured part of res for a measured time of d.
func (r *recorder) result(res *Result, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	secs := d.Seconds()
	res.Seconds = secs
	res.Ops, res.Bytes, res.ErrorOps = r.ops, r.bytes, r.errOps
	if secs > 0 {
		res.OpsPerSec = r.moved.ops / secs
		res.MiBPerSec = r.moved.bytes / secs / (1 << 20)
		if r.moved.keys > 0 {
			res.KeysPerSec = r.moved.keys / secs
		}
	}
	res.Latency = latencyMS(&r.hist, r.latSum)
	if len(r.byOp) > 1 {
		res.ByOp = map[string]OpSum{}
		for name, s := range r.byOp {
			o := OpSum{Ops: int64(s.hist.total), Latency: latencyMS(&s.hist, s.latSum)}
			if secs > 0 {
				o.OpsPerSec = float64(o.Ops) / secs
			}
			res.ByOp[name] = o
		}
	}
	res.Errors = map[string]int64{}
	for k, v := range r.errors {
		res.Errors[k] = v
	}
	if len(r.samples) > 0 {
		res.Samples = map[string]string{}
		for k, v := range r.samples {
			res.Samples[k] = v
		}
	}
	n := min(len(r.seconds), int((d+time.Second-1)/time.Second))
	res.Series = make([]Second, n)
	for i := range n {
		s := r.seconds[i]
		res.Series[i] = Second{T: i, Ops: s.ops, MiB: float64(s.bytes) / (1 << 20), Errors: s.errors,
			MaxLatMS: float64(s.latMax.Microseconds()) / 1000}
		if s.ops > 0 {
			res.Series[i].MeanLatMS = float64((s.latSum / time.Duration(s.ops)).Microseconds()) / 1000
		}
		if s.hist != nil {
			res.Series[i].P50LatMS = float64(s.hist.quantile(0.50).Microseconds()) / 1000
			res.Series[i].P99LatMS = float64(s.hist.quantile(0.99).Microseconds()) / 1000
		}
	}
}

// sortedCodes returns the error codes of m, most frequent first.
func sortedCodes(m map[string]int64) []string {
	codes := make([]string, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool {
		if m[codes[i]] != m[codes[j]] {
			return m[codes[i]] > m[codes[j]]
		}
		return codes[i] < codes[j]
	})
	return codes
}
