package s3_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/vaultaire/vaultaire/s3"
)

// tenantAdmin is an s3.Admin without the ClusterAdmin side: a single node.
type tenantAdmin struct{}

func (tenantAdmin) CreateTenant(ctx context.Context, name string) (s3.NewTenant, error) {
	return s3.NewTenant{}, errors.New("not in this test")
}

func (tenantAdmin) AddKey(ctx context.Context, name string) (s3.NewTenant, error) {
	return s3.NewTenant{}, errors.New("not in this test")
}

func (tenantAdmin) DeleteTenant(ctx context.Context, name string) error {
	return errors.New("not in this test")
}

func (tenantAdmin) Tenants(ctx context.Context) ([]s3.TenantInfo, error) { return nil, nil }

// clusterAdmin is an s3.Admin that is also an s3.ClusterAdmin.
type clusterAdmin struct {
	tenantAdmin
	status any
	err    error
}

func (a clusterAdmin) ClusterStatus(ctx context.Context) (any, error) { return a.status, a.err }

var _ s3.ClusterAdmin = clusterAdmin{}

// adminDo sends a SigV4-signed request (unsigned if access is "") to the
// admin API and returns the status and body.
func adminDo(t *testing.T, endpoint, method, path, access, secret string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, endpoint+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if access != "" {
		sum := sha256.Sum256(nil)
		hash := hex.EncodeToString(sum[:])
		req.Header.Set("x-amz-content-sha256", hash)
		creds := aws.Credentials{AccessKeyID: access, SecretAccessKey: secret}
		if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestAdminCluster(t *testing.T) {
	status := map[string]any{"node": "n1", "leader": "n2", "term": float64(7)}
	clustered := startServerWith(t, func(c *s3.Config) { c.Admin = clusterAdmin{status: status} })
	single := startServerWith(t, func(c *s3.Config) { c.Admin = tenantAdmin{} })
	noAdmin := startServer(t)
	failing := startServerWith(t, func(c *s3.Config) {
		c.Admin = clusterAdmin{err: errors.New("raft: not ready")}
	})
	const path = "/_vault/admin/cluster"

	for _, tc := range []struct {
		name     string
		endpoint string
		method   string
		access   string
		secret   string
		status   int
		contains string
	}{
		{"root GET on a cluster node", clustered.endpoint, http.MethodGet, root.AccessKey, root.Secret, 200, `"leader":"n2"`},
		{"single node", single.endpoint, http.MethodGet, root.AccessKey, root.Secret, 404, "This node is not in cluster mode."},
		{"no admin at all", noAdmin.endpoint, http.MethodGet, root.AccessKey, root.Secret, 404, "<Code>NotFound</Code>"},
		{"status fails", failing.endpoint, http.MethodGet, root.AccessKey, root.Secret, 500, "<Code>InternalError</Code>"},
		{"tenant key", clustered.endpoint, http.MethodGet, "ALICEKEY", "alicesecret", 403, "<Code>AccessDenied</Code>"},
		{"unsigned", clustered.endpoint, http.MethodGet, "", "", 403, "<Code>AccessDenied</Code>"},
		{"wrong root secret", clustered.endpoint, http.MethodGet, root.AccessKey, "wrong-secret", 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"PUT", clustered.endpoint, http.MethodPut, root.AccessKey, root.Secret, 405, "<Code>MethodNotAllowed</Code>"},
		{"DELETE", clustered.endpoint, http.MethodDelete, root.AccessKey, root.Secret, 405, "<Code>MethodNotAllowed</Code>"},
		{"POST on a single node", single.endpoint, http.MethodPost, root.AccessKey, root.Secret, 405, "<Code>MethodNotAllowed</Code>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, body := adminDo(t, tc.endpoint, tc.method, path, tc.access, tc.secret)
			if got != tc.status || !strings.Contains(body, tc.contains) {
				t.Fatalf("%s %s = %d %s, want %d containing %q", tc.method, path, got, body, tc.status, tc.contains)
			}
		})
	}

	_, body := adminDo(t, clustered.endpoint, http.MethodGet, path, root.AccessKey, root.Secret)
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if len(got) != len(status) || got["node"] != status["node"] || got["leader"] != status["leader"] || got["term"] != status["term"] {
		t.Fatalf("GET %s = %v, want %v", path, got, status)
	}
	if got, body := adminDo(t, clustered.endpoint, http.MethodGet, path+"/x", root.AccessKey, root.Secret); got != 404 {
		t.Fatalf("GET %s/x = %d %s, want 404", path, got, body)
	}
}

// TestAdminLimitsBodyOverLimit sends an admin limits PUT whose body runs
// far past the 4 KiB the handler reads (found by FuzzXMLBody), then a
// second request on the same connection. The PUT is refused and sets
// nothing, and the unread rest of its body is never parsed as a request:
// the second request gets its own answer (or the connection is closed).
func TestAdminLimitsBodyOverLimit(t *testing.T) {
	admin := &limitsAdmin{}
	e := startServerWith(t, func(c *s3.Config) { c.Admin = admin })
	body := `{"rps": 1, "pad": "` + strings.Repeat("x", 64<<10) + `"}`
	sum := sha256.Sum256([]byte(body))
	put := sdkSignedAs(t, e.endpoint, "PUT", "/_vault/admin/tenants/alice/rate", hex.EncodeToString(sum[:]), root.AccessKey, root.Secret).withBody(body)
	health := wireRequest{method: "GET", target: "/_vault/health", host: strings.TrimPrefix(e.endpoint, "http://")}

	conn, err := net.Dial("tcp", strings.TrimPrefix(e.endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	read := func(method string) (int, string, error) {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(got), err
	}
	if _, err := io.WriteString(conn, put.bytes()); err != nil {
		t.Fatal(err)
	}
	status, got, err := read("PUT")
	if err != nil || status != 400 || !strings.Contains(got, "<Code>InvalidArgument</Code>") {
		t.Fatalf("oversize limits body: %d %s %v, want 400 InvalidArgument", status, got, err)
	}
	if calls := admin.take(); len(calls) != 0 {
		t.Fatalf("oversize limits body set %+v", calls)
	}
	if _, err := io.WriteString(conn, health.bytes()); err != nil {
		return // closed: fine
	}
	if status, got, err := read("GET"); err == nil && (status != 200 || !strings.Contains(got, `"status":"ok"`)) {
		t.Fatalf("the request after the oversize body got %d %s: its unread body was parsed as a request", status, got)
	}
}

// sdkSignedAs is sdkSigned with the given credentials.
func sdkSignedAs(t *testing.T, endpoint, method, path, payloadHash, access, secret string) wireRequest {
	t.Helper()
	req, err := http.NewRequest(method, endpoint+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	creds := aws.Credentials{AccessKeyID: access, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, payloadHash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return wireRequest{method: method, target: req.URL.RequestURI(), host: req.URL.Host, header: headerLines(req.Header)}
}

// limitsAdmin is an s3.LimitsAdmin that records the limits it is given.
type limitsAdmin struct {
	tenantAdmin
	mu    sync.Mutex // guards calls
	calls []s3.TenantLimits
}

func (a *limitsAdmin) SetRate(ctx context.Context, name string, rps float64, burst int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, s3.TenantLimits{RPS: rps, Burst: burst})
	return nil
}

func (a *limitsAdmin) SetQuota(ctx context.Context, name string, maxBytes, maxArtifacts int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, s3.TenantLimits{MaxBytes: maxBytes, MaxArtifacts: maxArtifacts})
	return nil
}

// take returns and forgets the recorded calls.
func (a *limitsAdmin) take() []s3.TenantLimits {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.calls
	a.calls = nil
	return c
}
