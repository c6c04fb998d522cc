package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/s3"
)

// metricsGet GETs url, a node's /_vault/metrics, signed (SigV4) by the
// node's root credentials, as the endpoint requires by default.
func metricsGet(ctx context.Context, url string, root aws.Credentials) (*http.Response, error) {
	req, err := signedReq(ctx, http.MethodGet, url, root)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// signedReq returns a request without a body for url, signed (SigV4)
// with creds.
func signedReq(ctx context.Context, method, url string, creds aws.Credentials) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(nil)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("x-amz-content-sha256", hash)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		return nil, err
	}
	return req, nil
}

// startMetricsNode runs a single node in-process with env and extra
// server flags, logging at info into the returned buffer, until the test
// ends; it returns the S3 endpoint and the first data directory.
func startMetricsNode(t *testing.T, env map[string]string, flags ...string) (endpoint, data string, logs *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	s3Addr := testnet.Addr(t)
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	var out syncBuffer
	done := make(chan error, 1)
	args := append([]string{"server", "--name", "m", "--data", dir + "/a," + dir + "/b", "--s3", s3Addr, "--raft", testnet.Addr(t), "--log-level", "info"}, flags...)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, &out, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
	})
	endpoint = "http://" + s3Addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("server exited before serving: %v\n%s", err, logs.String())
		default:
		}
		if resp, err := http.Get(endpoint + "/_vault/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return endpoint, dir + "/a", logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("node not healthy after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrapeStatus GETs endpoint's /_vault/metrics with req's credentials
// (set by auth, if not nil) and returns the status and body.
func scrapeStatus(t *testing.T, endpoint string, auth func(*http.Request) *http.Request) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, endpoint+"/_vault/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		req = auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestMetricsAuthenticatedByDefault: a node started with no metrics
// setting generates a token into its data directory (mode 0600, its path
// logged, never its value) and serves /_vault/metrics only to that token
// and to root; a tenant's signature, a wrong token and no credentials are
// refused. VAULT_METRICS_TOKEN replaces the file; --metrics-open serves
// anyone.
func TestMetricsAuthenticatedByDefault(t *testing.T) {
	root := aws.Credentials{AccessKeyID: "METRICSROOTKEY", SecretAccessKey: "metrics-root-secret-1"}
	rootEnv := map[string]string{"VAULT_ROOT_ACCESS_KEY": root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": root.SecretAccessKey}
	bearer := func(tok string) func(*http.Request) *http.Request {
		return func(r *http.Request) *http.Request { r.Header.Set("Authorization", "Bearer "+tok); return r }
	}
	signedBy := func(creds aws.Credentials) func(*http.Request) *http.Request {
		return func(r *http.Request) *http.Request {
			req, err := signedReq(r.Context(), r.Method, r.URL.String(), creds)
			if err != nil {
				t.Fatal(err)
			}
			return req
		}
	}

	t.Run("generated token", func(t *testing.T) {
		ep, data, logs := startMetricsNode(t, rootEnv)
		file := filepath.Join(data, "metrics-token")
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatalf("no generated token: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", file, fi.Mode().Perm())
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		token := strings.TrimSpace(string(b))
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(token) {
			t.Fatalf("generated token %q: want 64 hex digits", token)
		}
		if l := logs.String(); !strings.Contains(l, file) || strings.Contains(l, token) {
			t.Errorf("the log must name %s and never show the token:\n%s", file, l)
		}
		// A tenant of this node, to show it cannot read the metrics.
		req, err := signedReq(t.Context(), http.MethodPut, ep+"/_vault/admin/tenants/alice", root)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var alice s3.NewTenant
		err = json.NewDecoder(resp.Body).Decode(&alice)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("create tenant: %d %v", resp.StatusCode, err)
		}
		for _, tc := range []struct {
			name string
			auth func(*http.Request) *http.Request
			want int
		}{
			{"no credentials", nil, http.StatusForbidden},
			{"wrong token", bearer(token[:63] + "x"), http.StatusForbidden},
			{"tenant signed", signedBy(aws.Credentials{AccessKeyID: alice.AccessKey, SecretAccessKey: alice.SecretKey}), http.StatusForbidden},
			{"token", bearer(token), http.StatusOK},
			{"root signed", signedBy(root), http.StatusOK},
		} {
			code, body := scrapeStatus(t, ep, tc.auth)
			if code != tc.want {
				t.Errorf("%s: status %d, want %d", tc.name, code, tc.want)
			}
			if served := strings.Contains(body, "vaultaire_tenant"); served != (tc.want == http.StatusOK) {
				t.Errorf("%s: tenant series served: %v", tc.name, served)
			}
		}
	})

	t.Run("token from the environment", func(t *testing.T) {
		env := map[string]string{"VAULT_METRICS_TOKEN": "env-metrics-token-1"}
		for k, v := range rootEnv {
			env[k] = v
		}
		ep, data, _ := startMetricsNode(t, env)
		if _, err := os.Stat(filepath.Join(data, "metrics-token")); err == nil {
			t.Error("a token file was generated although VAULT_METRICS_TOKEN is set")
		}
		if code, _ := scrapeStatus(t, ep, bearer("env-metrics-token-1")); code != http.StatusOK {
			t.Errorf("VAULT_METRICS_TOKEN: status %d, want 200", code)
		}
		if code, _ := scrapeStatus(t, ep, nil); code != http.StatusForbidden {
			t.Errorf("no credentials: status %d, want 403", code)
		}
	})

	t.Run("open", func(t *testing.T) {
		ep, _, _ := startMetricsNode(t, rootEnv, "--metrics-open")
		if code, _ := scrapeStatus(t, ep, nil); code != http.StatusOK {
			t.Errorf("--metrics-open, no credentials: status %d, want 200", code)
		}
	})
}

// TestMetricsToken checks where the metrics token comes from and that a
// token file others can read is refused.
func TestMetricsToken(t *testing.T) {
	dir := t.TempDir()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	// Generated once, then read back.
	first, file, created, err := metricsToken(env(), dir)
	if err != nil || !created || file != filepath.Join(dir, "metrics-token") || len(first) != 64 {
		t.Fatalf("first start: token of %d chars, file %q, created %v, %v", len(first), file, created, err)
	}
	again, _, created, err := metricsToken(env(), dir)
	if err != nil || created || again != first {
		t.Fatalf("second start: same token %v, created %v, %v", again == first, created, err)
	}
	// The environment wins.
	if tok, file, _, err := metricsToken(env("VAULT_METRICS_TOKEN", "abc"), dir); err != nil || tok != "abc" || file != "" {
		t.Errorf("VAULT_METRICS_TOKEN: %q from %q, %v", tok, file, err)
	}
	// A named file: its first line; refused when others can read it or it is empty.
	named := filepath.Join(t.TempDir(), "tok")
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string // "" means an error
	}{
		{"mode 0600", "file-token\nignored\n", 0o600, "file-token"},
		{"mode 0400", "file-token\n", 0o400, "file-token"},
		{"mode 0644", "file-token\n", 0o644, ""},
		{"mode 0640", "file-token\n", 0o640, ""},
		{"empty", "\n", 0o600, ""},
	} {
		os.Remove(named)
		if err := os.WriteFile(named, []byte(tc.content), tc.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(named, tc.mode)
		tok, _, _, err := metricsToken(env("VAULT_METRICS_TOKEN_FILE", named), dir)
		if (err == nil) != (tc.want != "") || tok != tc.want {
			t.Errorf("%s: token %q, %v; want %q", tc.name, tok, err, tc.want)
		}
	}
	if _, _, _, err := metricsToken(env("VAULT_METRICS_TOKEN_FILE", filepath.Join(dir, "missing")), dir); err == nil {
		t.Error("a missing VAULT_METRICS_TOKEN_FILE was accepted")
	}
}
