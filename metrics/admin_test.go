package metrics_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/metrics"
	"github.com/vaultaire/vaultaire/s3"
)

// limitsAdmin is an s3.Admin and s3.LimitsAdmin that records the limits set.
type limitsAdmin struct {
	mu  sync.Mutex // guards set
	set []string
}

func (a *limitsAdmin) CreateTenant(ctx context.Context, name string) (s3.NewTenant, error) {
	return s3.NewTenant{}, errors.New("not in this test")
}

func (a *limitsAdmin) AddKey(ctx context.Context, name string) (s3.NewTenant, error) {
	return s3.NewTenant{}, errors.New("not in this test")
}

func (a *limitsAdmin) DeleteTenant(ctx context.Context, name string) error {
	return errors.New("not in this test")
}

func (a *limitsAdmin) Tenants(ctx context.Context) ([]s3.TenantInfo, error) { return nil, nil }

func (a *limitsAdmin) SetRate(ctx context.Context, name string, rps float64, burst int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.set = append(a.set, "rate "+name)
	return nil
}

func (a *limitsAdmin) SetQuota(ctx context.Context, name string, maxBytes, maxArtifacts int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.set = append(a.set, "quota "+name)
	return nil
}

// rootPut sends a root-signed PUT with a JSON body to the admin API.
func rootPut(t *testing.T, endpoint, path, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, endpoint+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("x-amz-content-sha256", hash)
	creds := aws.Credentials{AccessKeyID: testnode.Root.AccessKey, SecretAccessKey: testnode.Root.Secret}
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestOperationsLabelled checks that the admin rate and quota calls, ACL
// and version listings are counted under their own operation labels, not
// as "Unknown".
func TestOperationsLabelled(t *testing.T) {
	admin := &limitsAdmin{}
	n := testnode.Start(t, func(c *s3.Config) {
		m := metrics.New(metrics.Config{Engine: c.Engine.Stats})
		c.Observer = m
		c.Metrics, c.MetricsToken = m.Handler(), scrapeToken
		c.Admin = admin
	})
	url := n.Endpoint + "/_vault/metrics"
	before := scrapeURL(t, url)
	if got := rootPut(t, n.Endpoint, "/_vault/admin/tenants/alice/rate", `{"rps":5,"burst":10}`); got != http.StatusNoContent {
		t.Fatalf("set rate: status %d, want 204", got)
	}
	if got := rootPut(t, n.Endpoint, "/_vault/admin/tenants/alice/quota", `{"max_bytes":1000}`); got != http.StatusNoContent {
		t.Fatalf("set quota: status %d, want 204", got)
	}
	if got := rootPut(t, n.Endpoint, "/_vault/admin/tenants/alice/quota", `{"max_bytes":-1}`); got != http.StatusBadRequest {
		t.Fatalf("set a negative quota: status %d, want 400", got)
	}
	alice := client(n.Endpoint, "ALICEKEY", "alicesecret")
	ctx := t.Context()
	if _, err := alice.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("labels")}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.GetBucketAcl(ctx, &awss3.GetBucketAclInput{Bucket: aws.String("labels")}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("labels")}); err != nil {
		t.Fatal(err)
	}
	after := scrapeURL(t, url)
	if want := []string{"rate alice", "quota alice"}; len(admin.set) != 2 || admin.set[0] != want[0] || admin.set[1] != want[1] {
		t.Fatalf("limits set: %q, want %q", admin.set, want)
	}
	delta := func(kv ...string) float64 {
		t.Helper()
		b, _ := before.value("vaultaire_s3_requests_total", kv...)
		a, _ := after.value("vaultaire_s3_requests_total", kv...)
		return a - b
	}
	for _, c := range []struct {
		kv   []string
		want float64
	}{
		{[]string{"operation", "AdminSetRate", "status_class", "2xx", "tenant", "root"}, 1},
		{[]string{"operation", "AdminSetQuota", "status_class", "2xx", "tenant", "root"}, 1},
		{[]string{"operation", "AdminSetQuota", "status_class", "4xx", "tenant", "root"}, 1},
		{[]string{"operation", "GetBucketAcl", "status_class", "2xx", "tenant", "alice"}, 1},
		{[]string{"operation", "ListObjectVersions", "status_class", "2xx", "tenant", "alice"}, 1},
		{[]string{"operation", "Unknown"}, 0},
	} {
		if got := delta(c.kv...); got != c.want {
			t.Errorf("requests_total%v: went up by %v, want %v", c.kv, got, c.want)
		}
	}
}
