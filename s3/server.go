// Package s3 is the S3 front end: it serves the S3 REST API over fasthttp
// as a thin adapter over the engine. It parses requests (path-style and
// virtual-host-style), authenticates them with AWS Signature V4 (s3/sigv4),
// resolves the access key to a tenant, calls the engine and writes S3 XML
// responses. It is the only package that speaks of buckets and objects, and
// the only one that knows S3 error codes (see errors.go).
//
// Request bodies are streamed (fasthttp StreamRequestBody) straight into the
// engine and responses are streamed out of it; no object is ever held in
// memory.
//
// No body is read before its request is authenticated. A request with a
// body is routed, authenticated and rate-limited from its headers alone,
// as soon as they arrive (headerReceived), before fasthttp reads any of
// the body; a client's "Expect: 100-continue" is answered only then. A
// request refused there, or later before its body was read to the end, is
// answered at once and its connection closed: the server sends the answer,
// shuts its side down and discards what the client still sends for at
// most two seconds (a lingering close), so unread body bytes are never
// parsed as a next request and no connection waits on a body nobody will
// read. An admitted body must keep arriving at Config.BodyRateMin bytes
// per Config.BodyRateWindow; headers must arrive within
// Config.HeaderTimeout. A request with both Content-Length and
// Transfer-Encoding is refused (RFC 9112 §6.1).
//
// Every request is routed once, from its headers, by the route table
// (routes.go), before the rate limiter: the route names the operation for
// metrics and the event logs, says whether it is a mutation (the
// transaction log) and serves it. Errors become S3 errors in one table
// (errors.go).
//
// Paths under /_vault/ are reserved for the node itself: /_vault/health
// (unauthenticated) and /_vault/admin/... (root credentials only).
package s3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// Keys resolves access keys to tenants. Implementations must be safe for
// concurrent use.
type Keys interface {
	// LookupKey returns the tenant owning accessKey and its secret, or an
	// error wrapping sigv4.ErrUnknownAccessKey.
	LookupKey(ctx context.Context, accessKey string) (tenant, secret string, err error)
}

// Credential is an access key and its secret. Its String and LogValue
// never show the secret.
type Credential struct {
	AccessKey string
	Secret    string
}

func (c Credential) String() string { return c.AccessKey + ":REDACTED" }

// LogValue implements slog.LogValuer, redacting the secret.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Limits of the front end.
const (
	MaxPutSize        = 5 << 30 // bytes in one PutObject, as S3
	maxXMLBody        = 2 << 20 // bytes of an XML request body
	maxDeleteObjects  = 1000
	headerBufferBytes = 64 << 10
)

// Config configures a Server.
type Config struct {
	Engine *engine.Engine
	Keys   Keys
	// Root is the root credential: it may use the admin API and acts as
	// RootTenant for S3 operations.
	Root       Credential
	RootTenant string // default "root"
	Admin      Admin  // tenant administration; nil disables /_vault/admin
	// Domain enables virtual-host-style requests: bucket.Domain.
	Domain string
	Region string // reported by GetBucketLocation; default "us-east-1"
	Node   string // node name reported by /_vault/health
	Logger *slog.Logger
	// RequestTimeout bounds a request's work apart from streaming a body;
	// default 1 minute. BodyTimeout bounds an upload or download; default
	// 1 hour. HeaderTimeout bounds reading a request's headers; default
	// 10 seconds. IdleTimeout bounds an idle keep-alive connection;
	// default 30 seconds.
	RequestTimeout time.Duration
	BodyTimeout    time.Duration
	HeaderTimeout  time.Duration
	IdleTimeout    time.Duration
	// A request body is read only once the request is authenticated, and
	// then only while it keeps arriving: at least BodyRateMin bytes in
	// every BodyRateWindow, or the request fails with RequestTimeout and
	// its connection closes. Defaults: 32 KiB per 30 seconds (about 1 KiB/s,
	// which any honest client beats; a connection that trickles less is
	// holding a file descriptor, not uploading).
	BodyRateWindow time.Duration
	BodyRateMin    int64 // bytes
	Now            func() time.Time

	// Observer, if set, receives every request's RequestEvent.
	Observer Observer
	// Limiter, if set, rate-limits authenticated requests per tenant
	// (503 SlowDown with Retry-After).
	Limiter Limiter
	// Quota, if set, admits uploads per tenant (403 QuotaExceeded).
	Quota Quota
	// Metrics, if set, serves GET /_vault/metrics. It carries no secrets
	// but does name tenants; with MetricsToken set, scrapes must send
	// "Authorization: Bearer <MetricsToken>" (Prometheus'
	// authorization.credentials), otherwise they are unauthenticated.
	Metrics      http.Handler
	MetricsToken string
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Engine == nil || c.Keys == nil {
		return errors.New("s3: config needs an Engine and Keys")
	}
	if c.Root.AccessKey == "" || c.Root.Secret == "" {
		return errors.New("s3: config needs root credentials")
	}
	if c.RootTenant == "" {
		c.RootTenant = "root"
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Minute
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = time.Hour
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.BodyRateWindow < 0 || c.BodyRateMin < 0 {
		return errors.New("s3: BodyRateWindow and BodyRateMin must not be negative")
	}
	if c.BodyRateWindow == 0 {
		c.BodyRateWindow = 30 * time.Second
	}
	if c.BodyRateMin == 0 {
		c.BodyRateMin = 32 << 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Server serves the S3 API.
type Server struct {
	cfg        Config
	log        *slog.Logger
	http       *fasthttp.Server
	preflights preflights
}

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

// New returns a Server for c.
func New(c Config) (*Server, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: c, log: c.Logger}
	s.http = &fasthttp.Server{
		Handler:                       s.handle,
		Name:                          "Vaultaire",
		StreamRequestBody:             true,
		ReadBufferSize:                headerBufferBytes,
		WriteBufferSize:               64 << 10,
		DisablePreParseMultipartForm:  true,
		ReadTimeout:                   c.HeaderTimeout,
		WriteTimeout:                  c.BodyTimeout,
		IdleTimeout:                   c.IdleTimeout,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		Logger:                        fasthttpLogger{c.Logger},
		HeaderReceived:                s.headerReceived,
		ExpectHandler:                 s.expect,
		ErrorHandler:                  s.parseError,
		// fasthttp's errors quote the request otherwise, credentials too.
		SecureErrorLogMessage: true,
	}
	return s, nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.http.Serve(ln) }

// Shutdown stops accepting connections and waits for in-flight requests to
// finish or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.ShutdownWithContext(ctx) }

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp", "msg", redact(fmt.Sprintf(format, args...)))
}

// secrets matches what must never be logged of a request: the
// Authorization header's value and presigned URLs' signatures.
var secrets = regexp.MustCompile(`(?i)(authorization\s*:\s*)[^\r\n]*|((?:x-amz-)?signature=)[^&\s"]*`)

// redact removes request credentials from a log message.
func redact(msg string) string {
	return secrets.ReplaceAllString(msg, "${1}${2}REDACTED")
}

// parseError answers a request fasthttp could not read (malformed, too
// large a header, or a body that stopped arriving before the handler)
// with an S3 error; fasthttp closes the connection.
func (s *Server) parseError(fctx *fasthttp.RequestCtx, err error) {
	e := ErrInvalidRequest
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		e = ErrRequestTimeout
	case errors.As(err, new(*fasthttp.ErrSmallBuffer)):
		e = ErrHeadersTooLarge
	case errors.Is(err, io.ErrUnexpectedEOF):
		e = ErrIncompleteBody // the connection ended inside the first body bytes
	}
	s.preflights.delete(&fctx.Request.Header)
	id := newRequestID()
	s.log.Debug("unreadable request", "id", id, "err", redact(err.Error()))
	fctx.Response.Header.DisableNormalizing()
	fctx.Response.Header.Set("x-amz-request-id", id)
	writeXML(fctx, e.Status, errorBody{Code: e.Code, Message: e.Message, RequestID: id})
}

// request is one request in flight. It must not outlive the handler, but
// for the response body stream.
type request struct {
	fctx     *fasthttp.RequestCtx
	id       string
	start    time.Time
	bodyDone bool // the request body was read to its end
	keepCtx  bool // a response body stream owns the context
	ev       RequestEvent
	auth     *sigv4.Result // set by authorizeRoot for admin requests
	body     *rateReader   // the request body as read, once asked for
	sent     *sentCounter  // the response body stream, if any
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// begin starts serving fctx's request.
func (s *Server) begin(fctx *fasthttp.RequestCtx) *request {
	r := &request{fctx: fctx, id: newRequestID(), start: time.Now()}
	// S3 clients read x-amz-meta-* names as sent: keep our spelling.
	fctx.Response.Header.DisableNormalizing()
	fctx.Response.Header.Set("x-amz-request-id", r.id)
	r.ev = RequestEvent{Time: r.start, Node: s.cfg.Node, RequestID: r.id, Operation: unknownOperation, ObjectSize: -1,
		RemoteAddr: fctx.RemoteAddr().String(), UserAgent: string(fctx.UserAgent())}
	return r
}

func (s *Server) handle(fctx *fasthttp.RequestCtx) {
	r := s.begin(fctx)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	pf := s.takePreflight(ctx, &fctx.Request.Header)
	err := s.serve(ctx, r, cancel, pf)
	if err != nil {
		s.writeError(r, err)
	}
	if !r.keepCtx {
		cancel()
	}
	s.end(r)
}

// end finishes a request whose response is set: it closes the connection
// if the request body was not read to its end, and hands the request's
// event to the Observer (for a streamed response, once the stream is
// closed, with the bytes actually sent).
func (s *Server) end(r *request) {
	fctx := r.fctx
	if hasBody(&fctx.Request.Header) && !r.bodyDone {
		// Never let an unread body be parsed as the next request, and
		// never wait for it: answer, then close.
		s.closeAfter(r)
	}
	if r.body != nil {
		r.ev.BytesIn = r.body.total
	}
	s.log.Debug("request", "id", r.id, "method", string(fctx.Method()), "status", fctx.Response.StatusCode(), "took", time.Since(r.start))
	if s.cfg.Observer == nil {
		return
	}
	r.ev.Status = fctx.Response.StatusCode()
	r.ev.Latency = time.Since(r.start)
	switch {
	case fctx.IsHead():
		r.ev.BytesOut = 0
	case r.sent != nil:
		// The stream may still add to the event (DeleteObjects' keys).
		r.sent.done = func(n int64) {
			r.ev.BytesOut = n
			s.cfg.Observer.ObserveRequest(&r.ev)
		}
		return
	case !fctx.Response.IsBodyStream():
		r.ev.BytesOut = int64(len(fctx.Response.Body()))
	}
	s.cfg.Observer.ObserveRequest(&r.ev)
}

// sentCounter counts the bytes of a response body stream that the server
// took to send, and reports them when the stream is closed (fasthttp
// closes it when the response is written or the write failed). A client
// that goes away mid-body is charged what was taken, at most the server's
// write buffer (64 KiB) more than what reached the socket.
type sentCounter struct {
	io.Reader
	io.Closer
	n    int64
	done func(n int64) // set by end; called once on Close
}

func (c *sentCounter) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *sentCounter) Close() error {
	err := c.Closer.Close()
	if c.done != nil {
		c.done(c.n)
		c.done = nil
	}
	return err
}

// lingerTimeout is how long a connection closed with its request body
// unread keeps reading (and discarding) after the answer was sent, so
// that the client reads the answer instead of a reset; lingerIdle ends it
// sooner when nothing more arrives, and maxDrain caps the bytes read.
const (
	lingerTimeout = 2 * time.Second
	lingerIdle    = 500 * time.Millisecond
	maxDrain      = 8 << 20
)

// closeAfter makes the request's connection close after its answer
// without reading the rest of its body first. The answer is written at
// once; then the server shuts its side down and discards what the client
// still sends for at most lingerTimeout (a "lingering close": closing a
// socket with unread input makes the kernel send a reset, which can
// destroy the answer before the client read it).
func (s *Server) closeAfter(r *request) {
	fctx := r.fctx
	fctx.Response.SetConnectionClose()
	if fctx.Response.IsBodyStream() {
		return // rare (a GET with a body): fasthttp writes it, then closes
	}
	if fctx.IsHead() {
		fctx.Response.SkipBody = true
	}
	var answer bytes.Buffer
	w := bufio.NewWriter(&answer)
	if err := fctx.Response.Write(w); err != nil || w.Flush() != nil {
		return
	}
	raw := fctx.Conn()
	fctx.HijackSetNoResponse(true)
	fctx.Hijack(func(c net.Conn) {
		c.SetWriteDeadline(time.Now().Add(s.cfg.HeaderTimeout))
		if _, err := c.Write(answer.Bytes()); err != nil {
			return
		}
		if cw, ok := raw.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		end := time.Now().Add(lingerTimeout)
		buf := make([]byte, 16<<10)
		for n := 0; n < maxDrain; {
			// A client that sends nothing more has read the answer by now.
			d := time.Now().Add(lingerIdle)
			if d.After(end) {
				d = end
			}
			c.SetReadDeadline(d)
			m, err := c.Read(buf)
			if err != nil {
				return
			}
			n += m
		}
	})
}

// rateReader reads a request body from the connection, failing with
// RequestTimeout when fewer than min bytes arrive in a window of time spent
// waiting for them, and with IncompleteBody when the connection fails
// otherwise (closed early, broken HTTP chunked framing). Only time blocked
// in Read counts: a server slow to consume the body (a busy disk) never
// fails its client. It counts the bytes read.
type rateReader struct {
	r      io.Reader
	conn   net.Conn // its read deadline ends the window
	window time.Duration
	min    int64
	got    int64         // bytes in the current window
	waited time.Duration // time spent in Read in the current window
	total  int64         // bytes read, in bytes
}

func (b *rateReader) Read(p []byte) (int, error) {
	start := time.Now()
	if b.conn != nil {
		b.conn.SetReadDeadline(start.Add(b.window - b.waited)) // a timer update, no system call
	}
	n, err := b.r.Read(p)
	b.waited += time.Since(start)
	b.total += int64(n)
	if b.got += int64(n); b.got >= b.min {
		b.got, b.waited = 0, 0
	}
	var ne net.Error
	switch {
	case err == nil, err == io.EOF:
	case errors.As(err, &ne) && ne.Timeout():
		err = fmt.Errorf("s3: request body: fewer than %d bytes in %v: %w", b.min, b.window, ErrRequestTimeout)
	default:
		// The connection ended early or its chunked framing is broken:
		// the client's doing, not a server error.
		err = fmt.Errorf("s3: request body: %w: %w", ErrIncompleteBody, err)
	}
	return n, err
}

// bodyStream returns the request body as received, read under the
// minimum rate. Only authenticated requests read their bodies.
func (r *request) bodyStream(s *Server) io.Reader {
	if r.body == nil {
		r.body = &rateReader{r: r.fctx.RequestBodyStream(), conn: r.fctx.Conn(), window: s.cfg.BodyRateWindow, min: s.cfg.BodyRateMin}
	}
	return r.body
}

// hasBody reports whether a request declares a body.
func hasBody(h *fasthttp.RequestHeader) bool {
	n := h.ContentLength()
	return n > 0 || n == -1
}

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
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
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

// takePreflight returns the preflight of the request with header h,
// deciding it now if headerReceived did not.
func (s *Server) takePreflight(ctx context.Context, h *fasthttp.RequestHeader) *preflight {
	if pf, ok := s.preflights.take(h); ok {
		return pf
	}
	return s.preflight(ctx, h)
}

// expect answers "Expect: 100-continue" (sent by the client, or set by
// headerReceived on a refused request): 100 for an admitted request,
// else the refusal, at once, closing the connection.
func (s *Server) expect(fctx *fasthttp.RequestCtx) int {
	h := &fctx.Request.Header
	pf, ok := s.preflights.load(h)
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		pf = s.preflight(ctx, h)
		cancel()
		s.preflights.store(h, pf)
	}
	if pf.err == nil && pf.retryAfter == 0 {
		return fasthttp.StatusContinue
	}
	s.preflights.delete(h)
	r := s.begin(fctx)
	r.ev.Bucket, r.ev.Key, r.ev.Tenant = pf.bucket, pf.key, pf.tenant
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

// requestTarget returns the host, raw path and raw query of a request
// exactly as fasthttp's URI parsing finds them (URI().Host(),
// PathOriginal(), QueryString()), which is what the request is routed and
// its query read by: from the request line (origin or absolute form) and
// the Host header, the host lowercased.
func requestTarget(h *fasthttp.RequestHeader) (host, path, query string) {
	uri := string(h.RequestURI())
	host = string(h.Host())
	if host == "" || strings.Contains(uri, "://") {
		// fasthttp's splitHostURI.
		if n := strings.Index(uri, "//"); n >= 0 && !strings.Contains(uri[:n], "/") {
			rest := uri[n+2:]
			end := -1
			for _, c := range "/?#" {
				if i := strings.IndexRune(rest, c); i >= 0 && (end < 0 || i < end) {
					end = i
				}
			}
			if end < 0 {
				host, uri = rest, "/"
			} else {
				host, uri = rest[:end], rest[end:]
			}
		}
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	host = strings.ToLower(host)
	q, f := strings.IndexByte(uri, '?'), strings.IndexByte(uri, '#')
	switch {
	case q >= 0 && (f < 0 || q < f):
		path, query = uri[:q], uri[q+1:]
		if f >= 0 {
			query = uri[q+1 : f]
		}
	case f >= 0:
		path = uri[:f]
	default:
		path = uri
	}
	return host, path, query
}

// preflight routes and authenticates a request from its headers, and asks
// the Limiter whether it may proceed.
func (s *Server) preflight(ctx context.Context, h *fasthttp.RequestHeader) *preflight {
	host, path, query := requestTarget(h)
	pf := &preflight{path: path, at: time.Now(), route: methodNotAllowed}
	if framingConflict(h) {
		pf.err = errFraming
		return pf
	}
	args := fasthttp.AcquireArgs()
	defer fasthttp.ReleaseArgs(args)
	args.Parse(query)
	t := target{method: string(h.Method()), path: path, query: args, copySource: len(h.Peek("x-amz-copy-source")) > 0}
	if path == "/_vault" || strings.HasPrefix(path, "/_vault/") {
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
	// SigV2 signs the bucket in the resource, not the Host header.
	resource := path
	if pf.vhost {
		resource = "/" + pf.bucket + path
	}
	if pf.auth, pf.tenant, pf.err = s.authenticate(ctx, h, host, path, query, resource); pf.err != nil {
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
	r.ev.Bucket, r.ev.Key, r.ev.Tenant = pf.bucket, pf.key, pf.tenant
	if pf.err != nil {
		return pf.err
	}
	if pf.retryAfter > 0 {
		return slowDown(r, pf.retryAfter)
	}
	op.auth, op.tenant, op.bucket, op.key = pf.auth, pf.tenant, pf.bucket, pf.key
	return op.dispatch(pf.route)
}

// authenticate verifies a request's signature from its headers and
// returns the tenant it acts for. resource is the request's /bucket/key
// path as SigV2 presigned URLs sign it.
func (s *Server) authenticate(ctx context.Context, h *fasthttp.RequestHeader, host, rawPath, rawQuery, resource string) (*sigv4.Result, string, error) {
	// The header lines as received: repeated headers are signed with all
	// their values, and headers sent empty (Content-Type:) are present.
	var hl sigv4.HeaderList
	for k, v := range h.AllInOrder() {
		hl.Add(string(k), string(v))
	}
	req := sigv4.Request{
		Method:      string(h.Method()),
		RawPath:     rawPath,
		RawQuery:    rawQuery,
		Host:        host,
		Header:      hl.Get,
		HeaderNames: hl.Names(),
	}
	var tenant string
	creds := credentials(func(ctx context.Context, accessKey string) (string, error) {
		if accessKey == s.cfg.Root.AccessKey {
			tenant = s.cfg.RootTenant
			return s.cfg.Root.Secret, nil
		}
		t, secret, err := s.cfg.Keys.LookupKey(ctx, accessKey)
		tenant = t
		return secret, err
	})
	if q, err := url.ParseQuery(req.RawQuery); err == nil && isPresignV2(q) && len(h.Peek("Authorization")) == 0 {
		res, err := verifyPresignV2(ctx, h, resource, q, creds, s.cfg.Now())
		if err != nil {
			return nil, "", err
		}
		return res, tenant, nil
	}
	res, err := sigv4.Verify(ctx, &req, creds, s.cfg.Now())
	if err != nil {
		return nil, "", err
	}
	return res, tenant, nil
}

type credentials func(ctx context.Context, accessKey string) (string, error)

func (c credentials) Secret(ctx context.Context, accessKey string) (string, error) {
	return c(ctx, accessKey)
}

// route splits the request into bucket and key, from the Host header for
// virtual-host-style requests and from the path otherwise.
func (s *Server) route(host, rawPath string) (bucket, key string, vhost bool, err error) {
	if !strings.HasPrefix(rawPath, "/") {
		return "", "", false, ErrInvalidRequest
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	rest := rawPath[1:]
	if d := s.cfg.Domain; d != "" && strings.HasSuffix(host, "."+d) {
		bucket, vhost = strings.TrimSuffix(host, "."+d), true
	} else {
		bucket, rest, _ = strings.Cut(rest, "/")
		if bucket, err = unescapePath(bucket); err != nil {
			return "", "", false, err
		}
	}
	if key, err = unescapePath(rest); err != nil {
		return "", "", false, err
	}
	return bucket, key, vhost, nil
}

// unescapePath decodes %XX escapes; '+' stays a plus, as S3 does in paths.
func unescapePath(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", ErrInvalidArgument
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// writeError writes err as an S3 XML error response.
func (s *Server) writeError(r *request, err error) {
	e := toS3(err)
	r.ev.ErrorCode = e.Code
	if e == ErrInternal || e == ErrServiceUnavailable {
		s.log.Warn("request failed", "id", r.id, "method", string(r.fctx.Method()), "err", err)
	}
	fctx := r.fctx
	fctx.Response.ResetBody()
	fctx.SetStatusCode(e.Status)
	if fctx.IsHead() {
		return
	}
	body := errorBody{Code: e.Code, Message: e.Message, Resource: string(r.fctx.URI().PathOriginal()), RequestID: r.id}
	writeXML(fctx, e.Status, body)
}

// writeXML writes v as an XML response body.
func writeXML(fctx *fasthttp.RequestCtx, status int, v any) {
	out, err := xml.Marshal(v)
	if err != nil {
		fctx.SetStatusCode(500)
		return
	}
	fctx.SetStatusCode(status)
	fctx.SetContentType("application/xml")
	fctx.Response.SetBodyRaw(append([]byte(xml.Header), out...))
}

// readXMLBody reads and verifies a small XML request body into v: its
// signature or x-amz-checksum-* as the request declared, and its
// Content-MD5 if one was sent.
func (op *operation) readXMLBody(v any) error {
	want, err := contentMD5(&op.r.fctx.Request.Header)
	if err != nil {
		return err
	}
	body := op.auth.Body(op.r.bodyStream(op.s))
	data, err := io.ReadAll(io.LimitReader(body, maxXMLBody+1))
	if err != nil {
		return err
	}
	if len(data) > maxXMLBody {
		return ErrMalformedXML // the rest is unread: the connection closes
	}
	op.r.bodyDone = true
	if sum := md5.Sum(data); want != nil && !bytes.Equal(sum[:], want) {
		return ErrBadDigest
	}
	if err := xml.Unmarshal(data, v); err != nil {
		return ErrMalformedXML
	}
	return nil
}

// contentMD5 returns the request's Content-MD5, nil if it has none, or
// ErrInvalidDigest if it is not the base64 of 16 bytes (an empty header
// included).
func contentMD5(h *fasthttp.RequestHeader) ([]byte, error) {
	v := h.Peek("Content-MD5")
	if len(v) == 0 {
		if hasHeader(h, "Content-MD5") {
			return nil, ErrInvalidDigest
		}
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(string(v))
	if err != nil || len(b) != md5.Size {
		return nil, ErrInvalidDigest
	}
	return b, nil
}

// hasHeader reports whether the request has the header name, even empty.
func hasHeader(h *fasthttp.RequestHeader, name string) bool {
	for k := range h.All() {
		if strings.EqualFold(string(k), name) {
			return true
		}
	}
	return false
}

// drainBody reads and verifies a body the operation ignores, up to limit.
func (op *operation) drainBody(limit int64) error {
	if op.r.fctx.Request.Header.ContentLength() == 0 {
		op.r.bodyDone = true
		return nil
	}
	body := op.auth.Body(op.r.bodyStream(op.s))
	n, err := io.Copy(io.Discard, io.LimitReader(body, limit+1))
	if err != nil {
		return err
	}
	if n > limit {
		return ErrMalformedXML
	}
	op.r.bodyDone = true
	return nil
}
