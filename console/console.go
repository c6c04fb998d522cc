// Package console is the web console every node serves at /_vault/console/:
// static HTML, CSS and vanilla JavaScript embedded in the binary, with no
// build step and nothing fetched from elsewhere. Serving the assets needs
// no credentials; everything the console shows comes from the node's own S3
// and /_vault/admin endpoints, which the browser signs itself with SigV4
// (WebCrypto HMAC-SHA256) from keys held only in the page's memory. The
// Metrics tab, which names every tenant, is shown to root only, and reads
// /_vault/metrics signed with root's keys; the node refuses other tenants.
//
// It imports only the standard library and fasthttp; s3 imports it to hand
// /_vault/console/ requests to Serve.
package console

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

// Prefix is the path the console is served under.
const Prefix = "/_vault/console/"

//go:embed assets
var assets embed.FS

// files maps a name under Prefix to its content, read once.
var files = func() map[string][]byte {
	m := make(map[string][]byte)
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		m[strings.TrimPrefix(p, "assets/")] = b
		return err
	})
	if err != nil {
		panic("console: embedded assets: " + err.Error())
	}
	return m
}()

// csp allows only this node's own scripts, styles, images and requests,
// never inline script, and no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Serve answers a request for path p (Prefix or below, or /_vault/console):
// GET and HEAD of an embedded asset, with strict security headers.
func Serve(ctx *fasthttp.RequestCtx, p string) {
	h := &ctx.Response.Header
	// Set last: fasthttp's Error resets the headers.
	defer func() {
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
	}()
	m := string(ctx.Method())
	if m != http.MethodGet && m != http.MethodHead {
		ctx.Error("method not allowed\n", http.StatusMethodNotAllowed)
		h.Set("Allow", "GET, HEAD")
		return
	}
	if p+"/" == Prefix {
		ctx.Redirect(Prefix, http.StatusMovedPermanently)
		return
	}
	name := strings.TrimPrefix(p, Prefix)
	if name == "" {
		name = "index.html"
	}
	b, ok := files[name]
	if !ok {
		ctx.Error("not found\n", http.StatusNotFound)
		h.Set("Cache-Control", "no-store")
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	ctx.SetContentType(ct)
	// The page is always revalidated so a new binary's console is seen at
	// once; its scripts and styles may be cached briefly.
	if name == "index.html" {
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Cache-Control", "public, max-age=300")
	}
	ctx.SetStatusCode(http.StatusOK)
	if m == http.MethodGet {
		ctx.Response.SetBodyRaw(b)
	} else {
		h.SetContentLength(len(b))
		ctx.Response.SkipBody = true
	}
}
