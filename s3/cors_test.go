package s3_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/s3"
	"github.com/vaultaire/vaultaire/tenant"
)

// startConfigServer runs a test node whose containers and bucket
// configuration live in a real single-node cluster.Store, with the
// tenants of testnode.Keys and root.
func startConfigServer(t *testing.T) *env {
	t.Helper()
	e, _ := startConfigServerWith(t, nil)
	return e
}

// startConfigServerWith is startConfigServer with a hook to adjust the S3
// config; it returns the store too.
func startConfigServerWith(t testing.TB, tweak func(*s3.Config)) (*env, *cluster.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := cluster.Open(ctx, cluster.Config{Dir: t.TempDir(), NodeID: "n1", RaftAddr: "127.0.0.1:7", Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, name := range []string{"root", "alice", "bob"} {
		if _, _, err := st.CreateTenant(ctx, name); err != nil && !errors.Is(err, tenant.ErrTenantExists) {
			t.Fatal(err)
		}
	}
	n := testnode.StartWith(t, func(c *engine.Config) { c.Containers = st }, func(c *s3.Config) {
		c.Configs = st
		if tweak != nil {
			tweak(c)
		}
	})
	return &env{endpoint: n.Endpoint, eng: n.Engine, dirs: n.Dirs}, st
}

func corsRules() *types.CORSConfiguration {
	return &types.CORSConfiguration{CORSRules: []types.CORSRule{
		{AllowedOrigins: []string{"https://*.example.com"}, AllowedMethods: []string{"GET", "PUT"},
			AllowedHeaders: []string{"x-amz-*", "Content-Type"}, ExposeHeaders: []string{"ETag"}, MaxAgeSeconds: aws.Int32(600)},
		{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"HEAD"}},
	}}
}

func TestBucketCors(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("site")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetBucketCors(ctx, &awss3.GetBucketCorsInput{Bucket: b})
	wantCode(t, "GetBucketCors without one", err, "NoSuchCORSConfiguration")
	_, err = c.PutBucketCors(ctx, &awss3.PutBucketCorsInput{Bucket: aws.String("nope"), CORSConfiguration: corsRules()})
	wantCode(t, "PutBucketCors missing bucket", err, "NoSuchBucket")
	for _, tc := range []struct {
		name string
		rule types.CORSRule
		code string
	}{
		{"bad method", types.CORSRule{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"PATCH"}}, "InvalidRequest"},
		{"two wildcards", types.CORSRule{AllowedOrigins: []string{"https://*.*.com"}, AllowedMethods: []string{"GET"}}, "InvalidRequest"},
		{"header wildcards", types.CORSRule{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"GET"}, AllowedHeaders: []string{"*a*"}}, "InvalidRequest"},
	} {
		_, err := c.PutBucketCors(ctx, &awss3.PutBucketCorsInput{Bucket: b, CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{tc.rule}}})
		wantCode(t, tc.name, err, tc.code)
	}
	many := make([]types.CORSRule, 101)
	for i := range many {
		many[i] = types.CORSRule{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"GET"}}
	}
	_, err = c.PutBucketCors(ctx, &awss3.PutBucketCorsInput{Bucket: b, CORSConfiguration: &types.CORSConfiguration{CORSRules: many}})
	wantCode(t, "101 rules", err, "InvalidRequest")
	if _, err := c.PutBucketCors(ctx, &awss3.PutBucketCorsInput{Bucket: b, CORSConfiguration: corsRules()}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetBucketCors(ctx, &awss3.GetBucketCorsInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.CORSRules) != 2 || got.CORSRules[0].AllowedOrigins[0] != "https://*.example.com" || aws.ToInt32(got.CORSRules[0].MaxAgeSeconds) != 600 ||
		len(got.CORSRules[0].AllowedMethods) != 2 || got.CORSRules[1].AllowedMethods[0] != "HEAD" {
		t.Fatalf("GetBucketCors = %+v", got.CORSRules)
	}
	// Another tenant neither sees nor sets it.
	bob := e.client("BOBKEY", "bobsecret")
	_, err = bob.GetBucketCors(ctx, &awss3.GetBucketCorsInput{Bucket: b})
	wantCode(t, "bob GetBucketCors", err, "NoSuchBucket")

	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("index.html"), Body: strings.NewReader("hi")}); err != nil {
		t.Fatal(err)
	}
	preflightCases(t, e.endpoint)

	// Actual requests carry the headers of the matching rule.
	wantActual(t, e, "https://app.example.com", "https://app.example.com")
	wantActual(t, e, "https://evil.test", "")

	if _, err := c.DeleteBucketCors(ctx, &awss3.DeleteBucketCorsInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetBucketCors(ctx, &awss3.GetBucketCorsInput{Bucket: b})
	wantCode(t, "GetBucketCors after delete", err, "NoSuchCORSConfiguration")
	wantPreflight(t, e.endpoint, "/site/index.html", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}, 403, "CORS is not enabled", nil)

	// A second tenant's bucket of the same name, with or without rules of
	// its own, cannot switch alice's CORS off: each owner's rules are
	// consulted and the first that allows the preflight answers it.
	if _, err := c.PutBucketCors(ctx, &awss3.PutBucketCorsInput{Bucket: b, CORSConfiguration: corsRules()}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	appGet := map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"}
	wantPreflight(t, e.endpoint, "/site/index.html", appGet, 200, "", map[string]string{"Access-Control-Allow-Origin": "https://app.example.com"})
	bobRules := &types.CORSConfiguration{CORSRules: []types.CORSRule{{AllowedOrigins: []string{"https://bob.example"}, AllowedMethods: []string{"GET"}}}}
	if _, err := bob.PutBucketCors(ctx, &awss3.PutBucketCorsInput{Bucket: b, CORSConfiguration: bobRules}); err != nil {
		t.Fatal(err)
	}
	wantPreflight(t, e.endpoint, "/site/index.html", appGet, 200, "", map[string]string{"Access-Control-Allow-Origin": "https://app.example.com"})
	wantPreflight(t, e.endpoint, "/site/index.html", map[string]string{"Origin": "https://bob.example", "Access-Control-Request-Method": "GET"},
		200, "", map[string]string{"Access-Control-Allow-Origin": "https://bob.example", "Access-Control-Allow-Methods": "GET"})
	wantPreflight(t, e.endpoint, "/site/index.html", map[string]string{"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"}, 403, "This CORS request is not allowed", nil)
	// Alice's reads still carry only her own rules' headers.
	wantActual(t, e, "https://bob.example", "")
}

// wantActual sends a GET with Origin signed by alice (aws-sdk via a raw
// presigned URL) and checks Access-Control-Allow-Origin.
func wantActual(t *testing.T, e *env, origin, allow string) {
	t.Helper()
	ps := awss3.NewPresignClient(e.client("ALICEKEY", "alicesecret"))
	req, err := ps.PresignGetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String("site"), Key: aws.String("index.html")})
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, req.URL, nil)
	hr.Header.Set("Origin", origin)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hi" {
		t.Fatalf("GET with Origin %s: %d %s", origin, resp.StatusCode, body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allow {
		t.Errorf("Origin %s: Access-Control-Allow-Origin = %q, want %q", origin, got, allow)
	}
	if resp.Header.Get("Vary") != "Origin" {
		t.Errorf("Origin %s: Vary = %q", origin, resp.Header.Get("Vary"))
	}
	if allow != "" && resp.Header.Get("Access-Control-Expose-Headers") != "ETag" {
		t.Errorf("Expose-Headers = %q", resp.Header.Get("Access-Control-Expose-Headers"))
	}
}

func preflightCases(t *testing.T, endpoint string) {
	t.Helper()
	for _, tc := range []struct {
		name   string
		path   string
		h      map[string]string
		status int
		msg    string
		want   map[string]string
	}{
		{"object, matching rule", "/site/index.html", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "Content-Type, X-Amz-Date"},
			200, "", map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Methods": "GET, PUT",
				"Access-Control-Allow-Headers": "content-type, x-amz-date", "Access-Control-Max-Age": "600", "Access-Control-Expose-Headers": "ETag"}},
		{"bucket, wildcard origin", "/site", map[string]string{"Origin": "https://other.test", "Access-Control-Request-Method": "HEAD"},
			200, "", map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "HEAD"}},
		{"origin not allowed", "/site/index.html", map[string]string{"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"}, 403, "This CORS request is not allowed", nil},
		{"method not allowed", "/site/index.html", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "DELETE"}, 403, "This CORS request is not allowed", nil},
		{"header not allowed", "/site/index.html", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}, 403, "This CORS request is not allowed", nil},
		{"no origin", "/site/index.html", map[string]string{"Access-Control-Request-Method": "GET"}, 400, "Origin request header needed", nil},
		{"no method", "/site/index.html", map[string]string{"Origin": "https://app.example.com"}, 400, "Access-Control-Request-Method", nil},
		// As a bucket without rules: a preflight tells nothing of which names exist.
		{"unknown bucket", "/nosuch/x", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}, 403, "CORS is not enabled", nil},
	} {
		t.Run(tc.name, func(t *testing.T) { wantPreflight(t, endpoint, tc.path, tc.h, tc.status, tc.msg, tc.want) })
	}
}

func wantPreflight(t *testing.T, endpoint, path string, h map[string]string, status int, msg string, want map[string]string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, endpoint+path, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status || !strings.Contains(string(body), msg) {
		t.Fatalf("OPTIONS %s: %d %s, want %d with %q", path, resp.StatusCode, body, status, msg)
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("OPTIONS %s: %s = %q, want %q", path, k, got, v)
		}
	}
	if status != 200 && resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("refused preflight allows an origin")
	}
}
