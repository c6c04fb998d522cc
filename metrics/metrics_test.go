package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/metrics"
	"github.com/vaultaire/vaultaire/s3"
)

func client(endpoint, access, secret string) *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint:     aws.String(endpoint),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(access, secret, ""),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
	})
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("%s: error %v, want code %s", what, err, code)
	}
}

// denyBob is an s3.Limiter that refuses every request of tenant bob.
type denyBob struct{}

func (denyBob) Allow(_ context.Context, tenant string) (time.Duration, bool) {
	return time.Second, tenant != "bob"
}

// smallQuota is an s3.Quota that refuses uploads over 512 KiB.
type smallQuota struct{}

func (smallQuota) Admit(ctx context.Context, tenant string, n, artifacts int64) (int64, func(), error) {
	if n > 512<<10 {
		return 0, nil, fmt.Errorf("%w: uploads are limited to 512 KiB", s3.ErrQuotaExceeded)
	}
	return -1, func() {}, nil
}

// TestServer drives a real S3 server and checks the series it exports
// move as the requests say.
func TestServer(t *testing.T) {
	var m *metrics.Metrics
	n := testnode.Start(t, func(c *s3.Config) {
		m = metrics.New(metrics.Config{Engine: c.Engine.Stats})
		c.Observer = m
		c.Metrics, c.MetricsToken = m.Handler(), scrapeToken
		c.Limiter = denyBob{}
		c.Quota = smallQuota{}
	})
	ctx := t.Context()
	url := n.Endpoint + "/_vault/metrics"
	alice := client(n.Endpoint, "ALICEKEY", "alicesecret")

	before := scrapeURL(t, url)
	if _, err := alice.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("photos")}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("v"), 1024)
	if _, err := alice.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("a.jpg"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	out, err := alice.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("a.jpg")})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	got.ReadFrom(out.Body)
	out.Body.Close()
	if !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("GetObject: got %d bytes, want the 1024 put", got.Len())
	}
	// Bodies up to 128 KiB are stored inline, without erasure coding.
	big := bytes.Repeat([]byte("w"), 256<<10)
	if _, err := alice.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("b.bin"), Body: bytes.NewReader(big)}); err != nil {
		t.Fatal(err)
	}
	if out, err = alice.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("b.bin")}); err != nil {
		t.Fatal(err)
	}
	got.Reset()
	got.ReadFrom(out.Body)
	out.Body.Close()
	if got.Len() != len(big) {
		t.Fatalf("GetObject b.bin: got %d bytes, want %d", got.Len(), len(big))
	}
	if _, err := alice.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("photos")}); err != nil {
		t.Fatal(err)
	}
	_, err = alice.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("missing")})
	wantCode(t, "GetObject missing", err, "NoSuchKey")
	after := scrapeURL(t, url)

	delta := func(name string, kv ...string) float64 {
		t.Helper()
		b, _ := before.value(name, kv...) // absent before: 0
		return after.must(t, name, kv...) - b
	}
	for _, c := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"vaultaire_s3_requests_total", []string{"operation", "CreateBucket", "status_class", "2xx", "tenant", "alice"}, 1},
		{"vaultaire_s3_requests_total", []string{"operation", "PutObject", "status_class", "2xx", "tenant", "alice"}, 2},
		{"vaultaire_s3_requests_total", []string{"operation", "GetObject", "status_class", "2xx", "tenant", "alice"}, 2},
		{"vaultaire_s3_requests_total", []string{"operation", "ListObjectsV2", "status_class", "2xx", "tenant", "alice"}, 1},
		{"vaultaire_s3_requests_total", []string{"operation", "GetObject", "status_class", "4xx", "tenant", "alice"}, 1},
		{"vaultaire_s3_requests_total", []string{"tenant", "alice"}, 7},
		// The first scrape is counted once it has been served.
		{"vaultaire_s3_requests_total", []string{"operation", "Metrics", "status_class", "2xx", "tenant", ""}, 1},
		{"vaultaire_s3_request_duration_seconds", []string{"operation", "CreateBucket"}, 1},
		{"vaultaire_s3_request_duration_seconds", []string{"operation", "PutObject"}, 2},
		{"vaultaire_s3_request_duration_seconds", []string{"operation", "GetObject"}, 3},
		{"vaultaire_s3_received_bytes_total", []string{"tenant", "alice"}, 1024 + 256<<10},
		{"vaultaire_erasure_encodes_total", nil, 1},
	} {
		if d := delta(c.name, c.kv...); d != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.kv, d, c.want)
		}
	}
	// Sent: the two bodies, and the listing and error documents.
	if d := delta("vaultaire_s3_sent_bytes_total", "tenant", "alice"); d < 1024+256<<10 || d > 1024+256<<10+4096 {
		t.Errorf("sent bytes moved by %v, want the %d bytes of the bodies read and a few documents", d, 1024+256<<10)
	}
	if d := delta("vaultaire_erasure_encode_seconds_total"); d <= 0 {
		t.Errorf("erasure_encode_seconds_total moved by %v, want > 0", d)
	}
	if d := delta("vaultaire_erasure_decodes_total"); d < 1 {
		t.Errorf("erasure_decodes_total moved by %v, want >= 1", d)
	}
	after.must(t, "vaultaire_heal_queue")
	if _, ok := after["vaultaire_raft_term"]; ok {
		t.Error("raft series present without a Raft provider")
	}
	// The histogram has one series per fixed operation, created up front.
	if ops := after.labelValues("vaultaire_s3_request_duration_seconds", "operation"); len(ops) != len(metrics.Operations) {
		t.Errorf("duration histogram has %d operations, want the %d fixed ones", len(ops), len(metrics.Operations))
	}
	for _, name := range []string{"go_goroutines", "go_gc_duration_seconds", "go_memstats_alloc_bytes"} {
		after.must(t, name)
	}
	if runtime.GOOS == "linux" {
		after.must(t, "process_cpu_seconds_total")
		after.must(t, "process_resident_memory_bytes")
	}

	// Refusals: bob is rate-limited, alice's 1 MiB upload is over quota.
	bob := client(n.Endpoint, "BOBKEY", "bobsecret")
	_, err = bob.ListBuckets(ctx, &awss3.ListBucketsInput{})
	wantCode(t, "bob ListBuckets", err, "SlowDown")
	_, err = alice.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("huge"), Body: bytes.NewReader(make([]byte, 1<<20))})
	wantCode(t, "alice PutObject 1 MiB", err, "QuotaExceeded")
	before, after = after, scrapeURL(t, url)
	for _, c := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"vaultaire_s3_rate_limited_total", []string{"tenant", "bob"}, 1},
		{"vaultaire_s3_quota_refused_total", []string{"tenant", "alice"}, 1},
		{"vaultaire_s3_requests_total", []string{"operation", "ListBuckets", "status_class", "5xx", "tenant", "bob"}, 1},
		{"vaultaire_s3_requests_total", []string{"operation", "PutObject", "status_class", "4xx", "tenant", "alice"}, 1},
		{"vaultaire_erasure_encodes_total", nil, 0},
	} {
		if d := delta(c.name, c.kv...); d != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.kv, d, c.want)
		}
	}
	if _, ok := after.value("vaultaire_s3_rate_limited_total", "tenant", "alice"); ok {
		t.Error("rate_limited_total has a series for alice, who was never limited")
	}
}
