// Package s3 is the S3 front end: it serves the S3 REST API over fasthttp
// as a thin adapter over the engine. It parses requests (path-style and
// virtual-host-style), authenticates them with AWS Signature V4 (s3/sigv4),
// resolves the access key to a tenant, calls the engine and writes S3 XML
// responses. It is the only package that speaks of buckets and objects, and
// the only one that knows S3 error codes (see errors.go).
//
// Request bodies are streamed (fasthttp StreamRequestBody) straight into the
// engine and responses are streamed out of it; no object is ever held in
// memory. A request refused before its body was read closes the connection,
// so unread body bytes can never be parsed as a next request.
//
// Paths under /_vault/ are reserved for the node itself: /_vault/health
// (unauthenticated) and /_vault/admin/... (root credentials only).
package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

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
	// 1 hour. HeaderTimeout bounds reading request headers and idle
	// keep-alive connections; default 30 seconds.
	RequestTimeout time.Duration
	BodyTimeout    time.Duration
	HeaderTimeout  time.Duration
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
		c.HeaderTimeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Server serves the S3 API.
type Server struct {
	cfg  Config
	log  *slog.Logger
	http *fasthttp.Server
}

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
		IdleTimeout:                   c.HeaderTimeout,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		Logger:                        fasthttpLogger{c.Logger},
		// Bodies may take long to arrive; headers may not.
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			if h.ContentLength() != 0 {
				return fasthttp.RequestConfig{ReadTimeout: c.BodyTimeout}
			}
			return fasthttp.RequestConfig{}
		},
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
	l.log.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}

// request is one request in flight. It must not outlive the handler, but
// for the response body stream.
type request struct {
	fctx     *fasthttp.RequestCtx
	id       string
	bodyDone bool // the request body was read to its end
	keepCtx  bool // a response body stream owns the context
	ev       RequestEvent
	auth     *sigv4.Result // set by authorizeRoot for admin requests
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

func (s *Server) handle(fctx *fasthttp.RequestCtx) {
	r := &request{fctx: fctx, id: newRequestID()}
	// S3 clients read x-amz-meta-* names as sent: keep our spelling.
	fctx.Response.Header.DisableNormalizing()
	fctx.Response.Header.Set("x-amz-request-id", r.id)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	start := time.Now()
	r.ev = RequestEvent{Time: start, Node: s.cfg.Node, RequestID: r.id, Operation: "Unknown", ObjectSize: -1,
		RemoteAddr: fctx.RemoteAddr().String(), UserAgent: string(fctx.UserAgent()), BytesIn: max(0, declaredBodySize(r))}
	err := s.serve(ctx, r, cancel)
	if err != nil {
		s.writeError(r, err)
	}
	if !r.keepCtx {
		cancel()
	}
	if fctx.Request.Header.ContentLength() != 0 && !r.bodyDone && !drain(fctx) {
		// Never let an unread body be parsed as the next request.
		fctx.SetConnectionClose()
	}
	s.log.Debug("request", "id", r.id, "method", string(fctx.Method()), "status", fctx.Response.StatusCode(), "took", time.Since(start))
	if s.cfg.Observer != nil {
		r.ev.Status = fctx.Response.StatusCode()
		r.ev.Latency = time.Since(start)
		if !fctx.Response.IsBodyStream() {
			r.ev.BytesOut = int64(len(fctx.Response.Body()))
		} else if n := fctx.Response.Header.ContentLength(); n >= 0 {
			r.ev.BytesOut = int64(n)
		}
		if fctx.IsHead() {
			r.ev.BytesOut = 0
		}
		s.cfg.Observer.ObserveRequest(&r.ev)
	}
}

// maxDrain is the largest unread request body the server reads and
// discards after an early answer (a refused upload), so that the client
// gets the answer on a connection it can keep; larger bodies close the
// connection instead.
const maxDrain = 8 << 20

// drain reads and discards what is left of a request body of at most
// maxDrain bytes, and reports whether it reached the end.
func drain(fctx *fasthttp.RequestCtx) bool {
	n := fctx.Request.Header.ContentLength()
	if n < 0 || n > maxDrain {
		return false
	}
	_, err := io.Copy(io.Discard, io.LimitReader(fctx.RequestBodyStream(), maxDrain+1))
	return err == nil
}

func (s *Server) serve(ctx context.Context, r *request, cancel context.CancelFunc) error {
	path := string(r.fctx.URI().PathOriginal())
	if path == "/_vault" || strings.HasPrefix(path, "/_vault/") {
		return s.vault(ctx, r, path)
	}
	bucket, key, vhost, err := s.route(r, path)
	if err != nil {
		return err
	}
	r.ev.Bucket, r.ev.Key = bucket, key
	// SigV2 signs the bucket in the resource, not the Host header.
	resource := path
	if vhost {
		resource = "/" + bucket + path
	}
	auth, tenant, err := s.authenticate(ctx, r, resource)
	if err != nil {
		return err
	}
	r.ev.Tenant = tenant
	r.ev.Operation = operationName(r, bucket, key)
	if s.cfg.Limiter != nil {
		if wait, ok := s.cfg.Limiter.Allow(tenant); !ok {
			return slowDown(r, wait)
		}
	}
	op := operation{s: s, r: r, ctx: ctx, cancel: cancel, auth: auth, tenant: tenant, bucket: bucket, key: key}
	return op.dispatch()
}

// authenticate verifies the request's signature and returns the tenant it
// acts for.
// resource is the request's /bucket/key path as SigV2 presigned URLs sign it.
func (s *Server) authenticate(ctx context.Context, r *request, resource string) (*sigv4.Result, string, error) {
	h := &r.fctx.Request.Header
	// The header lines as received: repeated headers are signed with all
	// their values, and headers sent empty (Content-Type:) are present.
	var hl sigv4.HeaderList
	for k, v := range h.AllInOrder() {
		hl.Add(string(k), string(v))
	}
	req := sigv4.Request{
		Method:      string(r.fctx.Method()),
		RawPath:     string(r.fctx.URI().PathOriginal()),
		RawQuery:    string(r.fctx.URI().QueryString()),
		Host:        string(r.fctx.Host()),
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
		res, err := verifyPresignV2(ctx, r, resource, q, creds, s.cfg.Now())
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
func (s *Server) route(r *request, rawPath string) (bucket, key string, vhost bool, err error) {
	if !strings.HasPrefix(rawPath, "/") {
		return "", "", false, ErrInvalidRequest
	}
	host := string(r.fctx.Host())
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

// readXMLBody reads and verifies a small XML request body into v.
func (op *operation) readXMLBody(v any) error {
	body := op.auth.Body(op.r.fctx.RequestBodyStream())
	data, err := io.ReadAll(io.LimitReader(body, maxXMLBody+1))
	if err != nil {
		return err
	}
	if len(data) > maxXMLBody {
		return ErrMalformedXML // the rest is unread: the connection closes
	}
	op.r.bodyDone = true
	if err := xml.Unmarshal(data, v); err != nil {
		return ErrMalformedXML
	}
	return nil
}

// drainBody reads and verifies a body the operation ignores, up to limit.
func (op *operation) drainBody(limit int64) error {
	if op.r.fctx.Request.Header.ContentLength() == 0 {
		op.r.bodyDone = true
		return nil
	}
	body := op.auth.Body(op.r.fctx.RequestBodyStream())
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
