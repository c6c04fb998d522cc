package tenant_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/s3"
	"github.com/vaultaire/vaultaire/tenant"
)

// These tests run the limiter and the meter in a real node (testnode:
// engine and s3 server) against real S3 clients.

// The s3 server's interfaces, which tenant satisfies without importing s3.
var (
	_ s3.Quota   = (*tenant.Meter)(nil)
	_ s3.Limiter = (*tenant.RateLimiter)(nil)
)

// memStore is a tenant.Store in memory.
type memStore struct {
	mu     sync.Mutex
	limits map[string]tenant.Limits
	used   map[string]tenant.Usage
}

func (f *memStore) TenantLimits(name string) (tenant.Limits, tenant.Usage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limits[name], f.used[name], true
}

func (f *memStore) AddUsage(ctx context.Context, ds []tenant.UsageDelta) error {
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

func client(endpoint, access, secret string) *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint: aws.String(endpoint), Region: "us-east-1", UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(access, secret, ""),
	})
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestRateLimitEndToEnd: alice, limited to 20 requests/s, fires 180
// requests from 60 connections at once, far more than the bucket and a
// second's queue hold; the excess gets 503 SlowDown, the rest succeed
// (after waiting up to a second for a token), and bob is unaffected at the
// same time.
func TestRateLimitEndToEnd(t *testing.T) {
	lim := tenant.NewRateLimiter(func(tenant string) (float64, int) {
		if tenant == "alice" {
			return 20, 20
		}
		return 0, 0
	}, 0)
	n := testnode.Start(t, func(c *s3.Config) { c.Limiter = lim })
	ctx := context.Background()
	alice, bob := client(n.Endpoint, "ALICEKEY", "alicesecret"), client(n.Endpoint, "BOBKEY", "bobsecret")
	var ok, slow, other, bobFailed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 60 {
		wg.Go(func() {
			for range 3 {
				_, err := alice.ListBuckets(ctx, &awss3.ListBucketsInput{})
				switch {
				case err == nil:
					ok.Add(1)
				case code(err) == "SlowDown":
					slow.Add(1)
				default:
					other.Add(1)
					t.Logf("alice: %v", err)
				}
			}
			if w < 5 {
				for range 10 {
					if _, err := bob.ListBuckets(ctx, &awss3.ListBucketsInput{}); err != nil {
						bobFailed.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("alice: %d ok, %d SlowDown in %v", ok.Load(), slow.Load(), took)
	maxOK := int64(20 + 20*took.Seconds() + 1)
	if ok.Load() < 20 || ok.Load() > maxOK || slow.Load() != 180-ok.Load() || slow.Load() == 0 || other.Load() != 0 {
		t.Errorf("alice: %d ok, %d SlowDown, %d other in %v; want 20..%d ok and the rest SlowDown", ok.Load(), slow.Load(), other.Load(), took, maxOK)
	}
	if bobFailed.Load() != 0 {
		t.Errorf("bob had %d failures while alice was limited", bobFailed.Load())
	}
}

// TestQuotaEndToEnd: a tenant with a 1 MiB quota.
func TestQuotaEndToEnd(t *testing.T) {
	store := &memStore{limits: map[string]tenant.Limits{"alice": {MaxBytes: 1 << 20}}, used: map[string]tenant.Usage{}}
	u := tenant.NewMeter(store, nil)
	n := testnode.StartWith(t, func(c *engine.Config) { c.OnUsage = u.Record }, func(c *s3.Config) { c.Quota = u })
	ctx := context.Background()
	c := client(n.Endpoint, "ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("quota")}); err != nil {
		t.Fatal(err)
	}
	put := func(key string, size int) error {
		_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("quota"), Key: aws.String(key), Body: bytes.NewReader(make([]byte, size))})
		return err
	}
	exists := func(key string) bool {
		_, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("quota"), Key: aws.String(key)})
		return err == nil
	}
	if err := put("two-mib", 2<<20); code(err) != "QuotaExceeded" {
		t.Fatalf("2 MiB put: %v, want QuotaExceeded", err)
	}
	if exists("two-mib") {
		t.Error("the refused upload was stored")
	}
	if err := put("a", 600<<10); err != nil {
		t.Fatal(err)
	}
	if err := u.Flush(ctx); err != nil { // committed or pending, the same answer
		t.Fatal(err)
	}
	if err := put("b", 600<<10); code(err) != "QuotaExceeded" {
		t.Fatalf("second 600 KiB put: %v, want QuotaExceeded", err)
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("quota"), Key: aws.String("a")}); err != nil {
		t.Fatal(err)
	}
	if err := put("b", 600<<10); err != nil {
		t.Fatalf("after the delete the upload should fit: %v", err)
	}
	if got := u.Current("alice"); got.Bytes != 600<<10 || got.Artifacts != 1 {
		t.Errorf("usage %+v, want 600 KiB in 1 artifact", got)
	}
	// Overwriting with a smaller body gives space back.
	if err := put("b", 100); err != nil {
		t.Fatal(err)
	}
	u.Flush(ctx)
	if _, used, _ := store.TenantLimits("alice"); used.Bytes != 100 || used.Artifacts != 1 {
		t.Errorf("committed usage %+v, want 100 bytes in 1 artifact", used)
	}
	// Artifact quota.
	store.mu.Lock()
	store.limits["alice"] = tenant.Limits{MaxArtifacts: 2}
	store.mu.Unlock()
	if err := put("c", 10); err != nil {
		t.Fatal(err)
	}
	if err := put("d", 10); code(err) != "QuotaExceeded" {
		t.Errorf("third artifact: %v, want QuotaExceeded", err)
	}
}

// TestQuotaStreamedUpload: a body of undeclared length (chunked transfer
// encoding) that crosses the quota is cut off and nothing is stored.
func TestQuotaStreamedUpload(t *testing.T) {
	store := &memStore{limits: map[string]tenant.Limits{"alice": {MaxBytes: 1 << 20}}, used: map[string]tenant.Usage{}}
	u := tenant.NewMeter(store, nil)
	n := testnode.StartWith(t, func(c *engine.Config) { c.OnUsage = u.Record }, func(c *s3.Config) { c.Quota = u })
	ctx := context.Background()
	c := client(n.Endpoint, "ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("stream")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		size int
		want int
	}{{"small", 100 << 10, http.StatusOK}, {"big", 2 << 20, http.StatusForbidden}} {
		req, err := awss3.NewPresignClient(c).PresignPutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("stream"), Key: aws.String(tc.key)})
		if err != nil {
			t.Fatal(err)
		}
		// An io.Reader of unknown length makes net/http send chunks.
		hreq, _ := http.NewRequest(http.MethodPut, req.URL, io.MultiReader(bytes.NewReader(make([]byte, tc.size))))
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The size was not declared, so the cut-off path answers.
		if resp.StatusCode != tc.want || (tc.want == http.StatusForbidden && !bytes.Contains(body, []byte("would exceed"))) {
			t.Errorf("%s: status %d %s, want %d", tc.key, resp.StatusCode, body, tc.want)
		}
	}
	if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("stream"), Key: aws.String("big")}); err == nil {
		t.Error("the cut-off upload was stored")
	}
	if got := u.Current("alice"); got.Bytes != 100<<10 || got.Artifacts != 1 {
		t.Errorf("usage %+v, want only the small upload", got)
	}
}

// TestRateLimitShapesSequentialClient: a real node, alice limited to 20
// requests/s (burst 20) and a client sending one request at a time at
// twice that rate: every request succeeds, and the run takes as long as
// the rate says rather than as long as the client asked.
func TestRateLimitShapesSequentialClient(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 4 s")
	}
	lim := tenant.NewRateLimiter(func(tenant string) (float64, int) {
		if tenant == "alice" {
			return 20, 20
		}
		return 0, 0
	}, 0)
	n := testnode.Start(t, func(c *s3.Config) { c.Limiter = lim })
	alice := client(n.Endpoint, "ALICEKEY", "alicesecret")
	const requests = 100
	tick := time.NewTicker(25 * time.Millisecond) // 40/s
	defer tick.Stop()
	start := time.Now()
	for i := range requests {
		if _, err := alice.ListBuckets(t.Context(), &awss3.ListBucketsInput{}); err != nil {
			t.Fatalf("request %d: %v (code %q); a sequential client must be slowed, not refused", i, err, code(err))
		}
		<-tick.C
	}
	// Unthrottled: 100 × 25 ms = 2.5 s. At 20/s after a burst of 20: 4 s.
	if took := time.Since(start); took < 3800*time.Millisecond {
		t.Errorf("%d requests took %v; want at least 4 s at 20/s", requests, took)
	}
}
