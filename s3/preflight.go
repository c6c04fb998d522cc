package s3

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// preflights holds the preflight of each request with a body, decided when
// its headers arrived, until its handler takes it. It is keyed by the
// address of the request's header, unique among connections in flight; an
// address does not keep the request alive, and every request with a body
// stores its own entry before anything reads one, so an entry left behind
// by a request fasthttp dropped (a broken body) is never taken by another:
// such entries are deleted by the ErrorHandler, or swept once old.
type preflights struct {
	m      sync.Map // uintptr → *preflight
	stores atomic.Int64
}

// preflightMaxAge is the age past which an entry is a leftover: far longer
// than fasthttp takes from a request's headers to its handler.
const preflightMaxAge = 10 * time.Minute

func headerKey(h *fasthttp.RequestHeader) uintptr { return uintptr(unsafe.Pointer(h)) }

func (p *preflights) store(h *fasthttp.RequestHeader, pf *preflight) {
	p.m.Store(headerKey(h), pf)
	if p.stores.Add(1)%4096 == 0 {
		p.m.Range(func(k, v any) bool {
			if time.Since(v.(*preflight).at) > preflightMaxAge {
				p.m.Delete(k)
			}
			return true
		})
	}
}

func (p *preflights) load(h *fasthttp.RequestHeader) (*preflight, bool) {
	v, ok := p.m.Load(headerKey(h))
	if !ok {
		return nil, false
	}
	return v.(*preflight), true
}

func (p *preflights) take(h *fasthttp.RequestHeader) (*preflight, bool) {
	v, ok := p.m.LoadAndDelete(headerKey(h))
	if !ok {
		return nil, false
	}
	return v.(*preflight), true
}

func (p *preflights) delete(h *fasthttp.RequestHeader) { p.m.Delete(headerKey(h)) }

// preflight is what the server decides from a request's headers alone,
// before reading any of its body: its route, its authentication and
// whether the rate limiter admits it.
type preflight struct {
	path        string // the raw path
	vault       bool   // a /_vault/ path: served by vaultRoutes
	route       *route
	bucket, key string
	vhost       bool
	auth        *sigv4.Result
	tenant      string
	anonymous   bool          // an unsigned read of a public bucket (anonymous.go)
	retryAfter  time.Duration // refused by the Limiter
	err         error
	at          time.Time // when it was decided
}

// headerReceived runs when a request's headers have arrived, before
// fasthttp reads anything of its body. A request with a body is
// authenticated here: if it is refused, it is marked as expecting
// "100 Continue", which keeps fasthttp from reading its body, and expect
// answers it; if it is admitted, the body's first bytes must arrive within
// the body rate window.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if !hasBody(h) {
		s.preflights.delete(h) // a leftover of a request fasthttp dropped
		return fasthttp.RequestConfig{}
	}
	ctx, cancel := newLazyDeadline(time.Now().Add(s.cfg.RequestTimeout))
	defer cancel()
	pf := s.preflight(ctx, h)
	s.preflights.store(h, pf)
	if pf.err != nil || pf.retryAfter > 0 {
		h.Set(fasthttp.HeaderExpect, "100-continue")
		return fasthttp.RequestConfig{}
	}
	// fasthttp reads the first min(size, 8 KiB) before the handler: give
	// them the windows the minimum rate allows for them.
	first := int64(8 << 10)
	if n := h.ContentLength(); n > 0 {
		first = min(first, int64(n))
	}
	windows := max(1, (first+s.cfg.BodyRateMin-1)/s.cfg.BodyRateMin)
	return fasthttp.RequestConfig{ReadTimeout: time.Duration(windows) * s.cfg.BodyRateWindow}
}

// takePreflight returns the preflight of fctx's request, deciding it now
// if headerReceived did not: routed by fctx's query arguments, then
// parsed once for the route and the handler (op.query), not twice.
func (s *Server) takePreflight(ctx context.Context, fctx *fasthttp.RequestCtx) *preflight {
	h := &fctx.Request.Header
	if pf, ok := s.preflights.take(h); ok {
		return pf
	}
	return s.preflightArgs(ctx, h, fctx.QueryArgs())
}

// expect answers "Expect: 100-continue" (sent by the client, or set by
// headerReceived on a refused request): 100 for an admitted request,
// else the refusal, at once, closing the connection.
func (s *Server) expect(fctx *fasthttp.RequestCtx) int {
	h := &fctx.Request.Header
	pf, ok := s.preflights.load(h)
	if !ok {
		ctx, cancel := newLazyDeadline(time.Now().Add(s.cfg.RequestTimeout))
		pf = s.preflight(ctx, h)
		cancel()
		s.preflights.store(h, pf)
	}
	if pf.err == nil && pf.retryAfter == 0 {
		return fasthttp.StatusContinue
	}
	s.preflights.delete(h)
	r := s.begin(fctx)
	r.ev.Bucket, r.ev.Key, r.ev.Tenant, r.ev.Anonymous = pf.bucket, pf.key, pf.tenant, pf.anonymous
	r.ev.Operation = pf.route.name
	err := pf.err
	if err == nil {
		err = slowDown(r, pf.retryAfter)
	}
	s.writeError(r, err)
	s.end(r)
	return fctx.Response.StatusCode()
}

// framingConflict reports a request with both Content-Length and
// Transfer-Encoding. fasthttp keeps only the chunked framing, so it is
// found in the raw headers.
func framingConflict(h *fasthttp.RequestHeader) bool {
	if h.ContentLength() != -1 {
		return false
	}
	for line := range bytes.SplitSeq(h.RawHeaders(), []byte("\n")) {
		name, _, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Length")) {
			return true
		}
	}
	return false
}

// preflight routes and authenticates a request from its headers, and asks
// the Limiter whether it may proceed.
func (s *Server) preflight(ctx context.Context, h *fasthttp.RequestHeader) *preflight {
	return s.preflightArgs(ctx, h, nil)
}

// preflightArgs is preflight with the query's arguments parsed already
// (the request's own, fctx.QueryArgs, which requestTarget's query
// mirrors), or nil to parse them here.
func (s *Server) preflightArgs(ctx context.Context, h *fasthttp.RequestHeader, args *fasthttp.Args) *preflight {
	host, path, query := requestTarget(h)
	pf := &preflight{path: path, at: time.Now(), route: methodNotAllowed}
	if framingConflict(h) {
		pf.err = errFraming
		return pf
	}
	if args == nil {
		args = fasthttp.AcquireArgs()
		defer fasthttp.ReleaseArgs(args)
		args.Parse(query)
	}
	t := target{method: string(h.Method()), path: path, query: args, copySource: len(h.Peek("x-amz-copy-source")) > 0}
	// The node's reserved paths; on a virtual-host bucket's host the path
	// is a key, even one that starts with _vault/.
	if _, vhost := s.vhostBucket(host); !vhost && (path == "/_vault" || strings.HasPrefix(path, "/_vault/")) {
		pf.vault = true
		pf.route = first(vaultRoutes, &t)
		if hasBody(h) {
			// Only the admin API takes bodies, and only from root.
			auth, tenant, err := s.authenticate(ctx, h, host, path, query, path)
			switch {
			case err != nil:
				pf.err = err
			case auth.AccessKey != s.cfg.Root.AccessKey || tenant != s.cfg.RootTenant:
				pf.err = ErrAccessDenied
			}
		}
		return pf
	}
	if pf.bucket, pf.key, pf.vhost, pf.err = s.route(host, path); pf.err != nil {
		return pf
	}
	t.bucket, t.key = pf.bucket, pf.key
	pf.route = resolve(&t)
	if pf.route.name == preflightRoute {
		// Anonymous: no signature, no tenant to rate-limit, and no body.
		if hasBody(h) {
			pf.err = errUnexpectedContent
		}
		return pf
	}
	if pf.route.name == postObjectRoute {
		return pf // authenticated by its form's signed policy (postobject.go)
	}
	// SigV2 signs the bucket in the resource, not the Host header.
	resource := path
	if pf.vhost {
		resource = "/" + pf.bucket + path
	}
	if owner, ok := s.anonymousTenant(h, pf, query); ok {
		a := anonymousAuth
		pf.auth, pf.tenant, pf.anonymous = &a, owner, true
	} else if pf.auth, pf.tenant, pf.err = s.authenticate(ctx, h, host, path, query, resource); pf.err != nil {
		return pf
	}
	if s.cfg.Limiter != nil {
		if wait, ok := s.cfg.Limiter.Allow(ctx, pf.tenant); !ok {
			pf.retryAfter = max(wait, time.Nanosecond)
		}
	}
	return pf
}

func (s *Server) serve(ctx context.Context, r *request, cancel context.CancelFunc, pf *preflight) error {
	r.ev.Operation = pf.route.name
	op := operation{s: s, r: r, ctx: ctx, cancel: cancel, path: pf.path}
	if pf.vault {
		if pf.err != nil {
			return pf.err
		}
		return pf.route.serve(&op)
	}
	r.ev.Bucket, r.ev.Key, r.ev.Tenant, r.ev.Anonymous = pf.bucket, pf.key, pf.tenant, pf.anonymous
	if pf.err != nil {
		return pf.err
	}
	if pf.retryAfter > 0 {
		return slowDown(r, pf.retryAfter)
	}
	op.auth, op.tenant, op.bucket, op.key = pf.auth, pf.tenant, pf.bucket, pf.key
	if bw, ok := s.cfg.Limiter.(Bandwidth); ok && op.tenant != "" && hasBody(&r.fctx.Request.Header) {
		// Bounded as an upload is (BodyTimeout), not as the request's
		// other work; end stops it. A request without a body has
		// nothing to shape; the timer is made only if a wait needs it.
		bctx, stop := newLazyDeadline(time.Now().Add(s.cfg.BodyTimeout))
		r.shapeIn, r.stopIn = func(n int) error { return bw.WaitIn(bctx, op.tenant, n) }, stop
	}
	err := op.dispatch(pf.route)
	if pf.anonymous && errors.Is(err, engine.ErrNoSuchArtifact) {
		// As S3 without s3:ListBucket: a missing key is not told apart.
		return ErrAccessDenied
	}
	return err
}

// authenticate verifies a request's signature from its headers and
// returns the tenant it acts for. resource is the request's /bucket/key
// path as SigV2 presigned URLs sign it.
func (s *Server) authenticate(ctx context.Context, h *fasthttp.RequestHeader, host, rawPath, rawQuery, resource string) (*sigv4.Result, string, error) {
	// The header lines as received: repeated headers are signed with all
	// their values, and headers sent empty (Content-Type:) are present.
	// One pass: fasthttp unfolds obsolete line folding (a value continued
	// on the next line) in place as it iterates, so a second pass over the
	// same headers can see other values (review SIGREVIEW: building them
	// in three passes read past the end and crashed the process).
	//
	// The names and values are copied into one string (a Builder's,
	// sized for the raw headers), then cut from it: two allocations per
	// line before, and the list grown as lines came.
	var sb strings.Builder
	sb.Grow(len(h.RawHeaders()))
	var ends [32][2]int // per line, where its name and its value end in sb
	lines := ends[:0]
	for k, v := range h.AllInOrder() {
		sb.Write(k)
		n := sb.Len()
		sb.Write(v)
		lines = append(lines, [2]int{n, sb.Len()})
	}
	all := sb.String()
	// The header list and the key lookup in one allocation (each was
	// one, the lookup's closure and the tenant it set two more).
	st := &authState{s: s}
	hl := &st.headers
	hl.Grow(len(lines))
	start := 0
	for _, e := range lines {
		hl.Add(all[start:e[0]], all[e[0]:e[1]])
		start = e[1]
	}
	req := sigv4.Request{
		Method:      string(h.Method()),
		RawPath:     rawPath,
		RawQuery:    rawQuery,
		Host:        host,
		Header:      hl.Get,
		HeaderNames: hl.Names(),
	}
	// The query is parsed into url.Values only for a V2 presigned URL:
	// parsing every request's was 4% of a small GET's allocations.
	if hasQueryKey(req.RawQuery, "AWSAccessKeyId") && len(h.Peek("Authorization")) == 0 {
		if q, err := url.ParseQuery(req.RawQuery); err == nil && isPresignV2(q) {
			res, err := verifyPresignV2(ctx, h, resource, q, st.Secret, s.cfg.Now())
			if err != nil {
				return nil, "", err
			}
			return res, st.tenant, nil
		}
	}
	res, err := sigv4.Verify(ctx, &req, st, s.cfg.Now())
	if err != nil {
		return nil, "", err
	}
	return res, st.tenant, nil
}

// authState is one authentication's header list and key lookup.
type authState struct {
	s       *Server
	headers sigv4.HeaderList
	tenant  string // set by Secret: the access key's tenant
}

// Secret returns accessKey's secret and records its tenant.
func (a *authState) Secret(ctx context.Context, accessKey string) (string, error) {
	if accessKey == a.s.cfg.Root.AccessKey {
		a.tenant = a.s.cfg.RootTenant
		return a.s.cfg.Root.Secret, nil
	}
	t, secret, err := a.s.cfg.Keys.LookupKey(ctx, accessKey)
	a.tenant = t
	return secret, err
}

type credentials func(ctx context.Context, accessKey string) (string, error)

func (c credentials) Secret(ctx context.Context, accessKey string) (string, error) {
	return c(ctx, accessKey)
}

// hasQueryKey reports whether raw, a raw query, has a parameter named key
// once decoded as url.ParseQuery decodes it, without allocating unless a
// parameter name is escaped.
func hasQueryKey(raw, key string) bool {
	for part := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if strings.ContainsAny(k, "%+") {
			if d, err := url.QueryUnescape(k); err == nil {
				k = d
			}
		}
		if k == key {
			return true
		}
	}
	return false
}
