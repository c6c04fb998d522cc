package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/bench"
	"github.com/vaultaire/vaultaire/internal/testnode"
)

const (
	accessKey = "ALICEKEY"
	secretKey = "alicesecret"
)

// startServer runs a Vaultaire node on 4 local drives (2+2) on a loopback
// port and returns its endpoint.
func startServer(t testing.TB) string {
	t.Helper()
	return testnode.Start(t, nil).Endpoint
}

func client(endpoint string) *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint: aws.String(endpoint), Region: "us-east-1", UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	})
}

// buckets lists the tenant's buckets.
func buckets(t *testing.T, endpoint string) []string {
	t.Helper()
	out, err := client(endpoint).ListBuckets(t.Context(), &awss3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range out.Buckets {
		names = append(names, aws.ToString(b.Name))
	}
	return names
}

func config(endpoint string, w bench.Workload) bench.Config {
	return bench.Config{
		Endpoint: endpoint, AccessKey: accessKey, SecretKey: secretKey,
		Workload: w, Size: 4 << 10, Concurrency: 4, Ops: 50, Duration: 30 * time.Second,
		Verify: true,
	}
}

func TestWorkloads(t *testing.T) {
	endpoint := startServer(t)
	tests := []struct {
		name string
		cfg  func(*bench.Config)
	}{
		{"put", func(c *bench.Config) {}},
		{"get", func(c *bench.Config) { c.Workload = bench.Get; c.Objects = 20 }},
		{"get-1MiB", func(c *bench.Config) { c.Workload = bench.Get; c.Objects = 8; c.Size = 1 << 20; c.Ops = 20 }},
		{"mixed", func(c *bench.Config) { c.Workload = bench.Mixed; c.Objects = 20; c.Ops = 100 }},
		{"list", func(c *bench.Config) { c.Workload = bench.List; c.Objects = 25; c.ListPage = 10; c.Size = 16 }},
		{"multipart", func(c *bench.Config) {
			c.Workload = bench.Multipart
			c.Size, c.PartSize, c.PartConcurrency, c.Ops, c.Concurrency = 11<<20, 5<<20, 3, 3, 2
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(endpoint, bench.Put)
			tt.cfg(&cfg)
			var progress bytes.Buffer
			cfg.Progress = &progress
			res, err := bench.Run(t.Context(), cfg)
			if err != nil {
				t.Fatalf("Run: %v (errors %v)", err, res)
			}
			if res.ErrorOps != 0 {
				t.Errorf("errors %v, samples %v; want none", res.Errors, res.Samples)
			}
			if res.Ops != cfg.Ops {
				t.Errorf("ops = %d, want %d", res.Ops, cfg.Ops)
			}
			if res.OpsPerSec <= 0 || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.Latency.P99 < res.Latency.P50 {
				t.Errorf("implausible result: ops/s %v, latency %+v", res.OpsPerSec, res.Latency)
			}
			if cfg.Workload != bench.List && res.MiBPerSec <= 0 {
				t.Errorf("MiB/s = %v, want > 0", res.MiBPerSec)
			}
			if cfg.Workload == bench.List && res.KeysPerSec <= 0 {
				t.Errorf("keys/s = %v, want > 0", res.KeysPerSec)
			}
			if cfg.Workload == bench.Mixed && len(res.ByOp) < 3 {
				t.Errorf("mixed by-op = %v, want get, put, head (and delete)", res.ByOp)
			}
			var total int64
			for _, s := range res.Series {
				total += s.Ops
			}
			if total != res.Ops {
				t.Errorf("series sums to %d ops, want %d", total, res.Ops)
			}
			var table bytes.Buffer
			if err := bench.WriteTable(&table, res); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(table.String(), "p99.9 ms") || !strings.Contains(table.String(), string(cfg.Workload)) {
				t.Errorf("table:\n%s", table.String())
			}
			t.Logf("\n%s", table.String())
			if got := buckets(t, endpoint); len(got) != 0 {
				t.Errorf("buckets after the run: %v, want none", got)
			}
		})
	}
}

func TestDurationBound(t *testing.T) {
	endpoint := startServer(t)
	cfg := config(endpoint, bench.Put)
	cfg.Ops, cfg.Duration, cfg.Warmup = 0, 1500*time.Millisecond, 300*time.Millisecond
	start := time.Now()
	res, err := bench.Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run took %v for 1.8s of load", d)
	}
	if res.Seconds < 1.4 || res.Seconds > 1.6 {
		t.Errorf("measured %.2fs, want 1.5s", res.Seconds)
	}
	if n := len(res.Series); n != 2 {
		t.Errorf("series has %d seconds, want 2", n)
	}
	if res.Ops == 0 {
		t.Error("no operations measured")
	}
}

func TestJSON(t *testing.T) {
	endpoint := startServer(t)
	cfg := config(endpoint, bench.Put)
	cfg.Ops = 20
	res, err := bench.Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ops_per_sec", "mib_per_sec", "errors", "latency_ms", "series"} {
		if _, ok := m[f]; !ok {
			t.Errorf("JSON lacks %q: %s", f, b)
		}
	}
	lat, _ := m["latency_ms"].(map[string]any)
	for _, f := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[f]; !ok {
			t.Errorf("latency_ms lacks %q: %s", f, b)
		}
	}
	series, _ := m["series"].([]any)
	if len(series) == 0 {
		t.Fatalf("empty series: %s", b)
	}
	for _, f := range []string{"ops", "mib"} {
		if _, ok := series[0].(map[string]any)[f]; !ok {
			t.Errorf("series lacks %q: %s", f, b)
		}
	}
}

// corrupting flips one byte of every GET response body.
type corrupting struct{ http.RoundTripper }

func (c corrupting) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.RoundTripper.RoundTrip(req)
	if err == nil && req.Method == http.MethodGet && resp.StatusCode == http.StatusOK && req.URL.Query().Get("list-type") == "" {
		resp.Body = &flipFirst{ReadCloser: resp.Body}
	}
	return resp, err
}

type flipFirst struct {
	io.ReadCloser
	done bool
}

func (f *flipFirst) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if n > 0 && !f.done {
		p[0] ^= 0xff
		f.done = true
	}
	return n, err
}

func TestVerifyCatchesCorruption(t *testing.T) {
	endpoint := startServer(t)
	for _, verify := range []bool{true, false} {
		cfg := config(endpoint, bench.Get)
		cfg.Objects, cfg.Ops, cfg.Verify = 8, 20, verify
		cfg.HTTPClient = &http.Client{Transport: corrupting{http.DefaultTransport}}
		res, err := bench.Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := res.Errors["VerifyFailed"], map[bool]int64{true: 20, false: 0}[verify]; got != want {
			t.Errorf("verify=%v: VerifyFailed = %d, want %d (errors %v)", verify, got, want, res.Errors)
		}
	}
	if got := buckets(t, endpoint); len(got) != 0 {
		t.Errorf("buckets after the runs: %v, want none", got)
	}
}

func TestErrorsCountedByCode(t *testing.T) {
	endpoint := startServer(t)
	c := client(endpoint)
	if _, err := c.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String("shared")}); err != nil {
		t.Fatal(err)
	}
	cfg := config(endpoint, bench.Put)
	cfg.Bucket, cfg.SecretKey, cfg.Ops = "shared", "wrong-secret", 30
	res, err := bench.Run(t.Context(), cfg)
	if err == nil {
		t.Error("Run with a wrong secret: cleanup reported no error")
	}
	if res == nil {
		t.Fatal("no result")
	}
	if got := res.Errors["SignatureDoesNotMatch"]; got != 30 {
		t.Errorf("SignatureDoesNotMatch = %d, want 30 (errors %v)", got, res.Errors)
	}
	if res.Ops != 0 {
		t.Errorf("ops = %d, want 0", res.Ops)
	}
	// The shared bucket is left alone, and so is another tenant's view.
	if got := buckets(t, endpoint); len(got) != 1 || got[0] != "shared" {
		t.Errorf("buckets = %v, want [shared]", got)
	}

	// Without a bucket of its own, the run cannot even start.
	cfg.Bucket = ""
	res, err = bench.Run(t.Context(), cfg)
	if err == nil || res == nil || res.Errors["SignatureDoesNotMatch"] != 1 {
		t.Errorf("Run = %v, %v; want create-bucket failure counted", res, err)
	}
}

func TestExistingBucketKeepsOtherObjects(t *testing.T) {
	endpoint := startServer(t)
	c := client(endpoint)
	ctx := t.Context()
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("mine")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("mine"), Key: aws.String("keep"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	cfg := config(endpoint, bench.Mixed)
	cfg.Bucket, cfg.Objects = "mine", 16
	if _, err := bench.Run(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	out, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("mine")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != "keep" {
		t.Errorf("bucket holds %d objects after the run, want only keep", len(out.Contents))
	}
}

func TestPlot(t *testing.T) {
	res := &bench.Result{Workload: bench.Put, Size: 4096, Concurrency: 4, Bytes: 1}
	for i := range 5 {
		res.Series = append(res.Series, bench.Second{T: i, Ops: int64(100 + i), MiB: float64(i), MeanLatMS: 2, MaxLatMS: 9})
	}
	for _, name := range []string{"p.svg", "p.png"} {
		path := filepath.Join(t.TempDir(), name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := bench.WritePlot(f, name, res); err != nil {
			t.Fatal(err)
		}
		f.Close()
		b, _ := os.ReadFile(path)
		if len(b) < 1000 {
			t.Errorf("%s: %d bytes", name, len(b))
		}
		if name == "p.svg" && !bytes.Contains(b, []byte("<svg")) {
			t.Errorf("%s is not SVG", name)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4KiB", 4096, true}, {"1MiB", 1 << 20, true}, {"64MiB", 64 << 20, true}, {"1.5KiB", 1536, true},
		{"100", 100, true}, {"2g", 2 << 30, true}, {"10MB", 10 << 20, true},
		{"", 0, false}, {"x", 0, false}, {"4XiB", 0, false}, {"-1", 0, false}, {"0.3B", 0, false},
	}
	for _, tt := range tests {
		got, err := bench.ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && tt.want > 0 {
			if back, err := bench.ParseSize(bench.FormatSize(got)); err != nil || back != got {
				t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", got, back, err)
			}
		}
	}
}

func TestParseMix(t *testing.T) {
	m, err := bench.ParseMix("get=60,put=30,head=5,delete=5")
	if err != nil || m != (bench.Mix{Get: 60, Put: 30, Head: 5, Delete: 5}) {
		t.Errorf("ParseMix = %v, %v", m, err)
	}
	for _, bad := range []string{"", "get", "get=-1", "fly=3", "get=0,put=0"} {
		if _, err := bench.ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) succeeded", bad)
		}
	}
}

func TestInterruptCleansUp(t *testing.T) {
	endpoint := startServer(t)
	cfg := config(endpoint, bench.Mixed)
	cfg.Objects, cfg.Ops, cfg.Duration = 16, 0, time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := bench.Run(ctx, cfg)
	if err == nil {
		t.Error("interrupted Run returned no error")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("interrupted Run took %v", d)
	}
	if res == nil || res.Ops == 0 {
		t.Errorf("result of the interrupted run: %+v, want the operations done so far", res)
	}
	if got := buckets(t, endpoint); len(got) != 0 {
		t.Errorf("buckets after the interrupted run: %v, want none", got)
	}
}

// headerLog is a transport recording the x-amz-content-sha256 of every
// PUT it sends.
type headerLog struct {
	mu   sync.Mutex
	seen map[string]int // "hash" for a hex SHA-256, else the header's value
}

func (h *headerLog) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && (req.URL.Query().Has("partNumber") || strings.Count(req.URL.Path, "/") > 1) {
		v := req.Header.Get("X-Amz-Content-Sha256")
		if len(v) == 64 && strings.Trim(v, "0123456789abcdef") == "" {
			v = "hash"
		}
		h.mu.Lock()
		h.seen[v]++
		h.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestPayloadModes runs uploads in each payload mode against a real node:
// every object PUT and part upload carries the mode's x-amz-content-sha256,
// the server accepts them (streaming: every chunk's signature checked), and
// what it stored reads back identical (Verify).
func TestPayloadModes(t *testing.T) {
	endpoint := startServer(t)
	tests := []struct {
		payload bench.Payload
		header  string
	}{
		{bench.PayloadSigned, "hash"},
		{bench.PayloadUnsigned, "UNSIGNED-PAYLOAD"},
		{bench.PayloadStreaming, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
	}
	for _, tt := range tests {
		t.Run(string(tt.payload), func(t *testing.T) {
			for _, w := range []struct {
				name string
				cfg  func(*bench.Config)
			}{
				// 3 chunks of 64 KiB and one of 3 bytes when streamed; a
				// quarter of the mix is PUTs, read back by later GETs.
				{"mixed", func(c *bench.Config) {
					c.Workload, c.Objects, c.Ops, c.Size = bench.Mixed, 12, 60, 192<<10+3
					c.Mix = bench.Mix{Get: 2, Put: 1}
				}},
				{"multipart", func(c *bench.Config) {
					c.Workload = bench.Multipart
					c.Size, c.PartSize, c.PartConcurrency, c.Ops, c.Concurrency = 11<<20, 5<<20, 2, 2, 1
				}},
			} {
				log := &headerLog{seen: map[string]int{}}
				cfg := config(endpoint, bench.Put)
				cfg.Payload = tt.payload
				w.cfg(&cfg)
				cfg.HTTPClient = &http.Client{Transport: log}
				res, err := bench.Run(t.Context(), cfg)
				if err != nil {
					t.Fatalf("%s: Run: %v", w.name, err)
				}
				if res.ErrorOps != 0 || res.Ops != cfg.Ops {
					t.Errorf("%s: %d ops, errors %v; want %d, none", w.name, res.Ops, res.Errors, cfg.Ops)
				}
				if log.seen[tt.header] == 0 || len(log.seen) != 1 {
					t.Errorf("%s: uploads sent x-amz-content-sha256 %v, want only %q", w.name, log.seen, tt.header)
				}
			}
		})
	}
}
