package console_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/vaultaire/vaultaire/console"
)

// securityHeaders are on every answer of the console.
var securityHeaders = map[string]string{
	"X-Frame-Options":        "DENY",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
}

func checkSecurity(t *testing.T, get func(string) string) {
	t.Helper()
	for k, want := range securityHeaders {
		if got := get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline or eval'd script", csp)
	}
}

func TestServe(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		status       int
		ctype, cache string
		body         string // a substring of the body
	}{
		{"GET", "/_vault/console/", 200, "text/html", "no-cache", `<script src="app.js" defer></script>`},
		{"GET", "/_vault/console/index.html", 200, "text/html", "no-cache", "Log in"},
		{"GET", "/_vault/console/app.js", 200, "javascript", "max-age=300", "AWS4-HMAC-SHA256"},
		{"GET", "/_vault/console/style.css", 200, "text/css", "max-age=300", "body{"},
		{"HEAD", "/_vault/console/app.js", 200, "javascript", "max-age=300", ""},
		{"GET", "/_vault/console/nope.js", 404, "", "no-store", ""},
		{"GET", "/_vault/console/../admin/tenants", 404, "", "no-store", ""},
		{"POST", "/_vault/console/", 405, "", "", ""},
		{"GET", "/_vault/console", 301, "", "", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(tc.method)
			ctx.Request.SetRequestURI(tc.path)
			console.Serve(&ctx, tc.path)
			h := &ctx.Response.Header
			if ctx.Response.StatusCode() != tc.status {
				t.Fatalf("status %d, want %d", ctx.Response.StatusCode(), tc.status)
			}
			checkSecurity(t, func(k string) string { return string(h.Peek(k)) })
			if ct := string(h.ContentType()); tc.ctype != "" && !strings.Contains(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if cc := string(h.Peek("Cache-Control")); !strings.Contains(cc, tc.cache) {
				t.Errorf("Cache-Control %q, want %q", cc, tc.cache)
			}
			if !strings.Contains(string(ctx.Response.Body()), tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
			if tc.status == 301 && string(h.Peek("Location")) != "/_vault/console/" && !strings.HasSuffix(string(h.Peek("Location")), "/_vault/console/") {
				t.Errorf("Location %q", h.Peek("Location"))
			}
		})
	}
}

// TestAssetsSmall keeps the console free of frameworks, inline script and
// anything fetched from elsewhere.
func TestAssetsSmall(t *testing.T) {
	total := 0
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("GET")
		console.Serve(&ctx, console.Prefix+name)
		body := string(ctx.Response.Body())
		total += len(body)
		for _, bad := range []string{"http://", "https://", "localStorage.setItem", "document.cookie", "eval("} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
	if strings.Contains(strings.ReplaceAll(string(mustAsset(t, "index.html")), `<script src="app.js" defer></script>`, ""), "<script") {
		t.Error("index.html has inline script")
	}
	if total > 64<<10 {
		t.Errorf("console assets are %d bytes: keep them small", total)
	}
}

func mustAsset(t *testing.T, name string) []byte {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	console.Serve(&ctx, console.Prefix+name)
	return ctx.Response.Body()
}

// TestServedByNode: a real vaultd serves the console without credentials
// at /_vault/console/, with the security headers.
func TestServedByNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vaultd: not in -short")
	}
	addr := startVaultd(t, "NODEROOTKEY", "node-root-secret-1")
	for _, p := range []string{"/_vault/console/", "/_vault/console/app.js", "/_vault/console"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Fatalf("GET %s: %d %v", p, resp.StatusCode, err)
		}
		checkSecurity(t, resp.Header.Get)
	}
}
