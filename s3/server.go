package s3

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vaultaire/vaultaire/engine"
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
	// Configs stores bucket configuration (CORS); nil makes the bucket
	// CORS calls answer NotImplemented and preflights 403.
	Configs BucketConfigs
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
	// but names tenants, so a scrape must authenticate: with
	// "Authorization: Bearer <MetricsToken>" (Prometheus'
	// authorization.credentials) when MetricsToken is set, or as any
	// request signed (SigV4, header or presigned) by Root. Other tenants
	// are refused (403 AccessDenied). MetricsOpen serves it to anyone,
	// unauthenticated: an operator's explicit choice.
	Metrics      http.Handler
	MetricsToken string
	MetricsOpen  bool

	// MaxConns caps the client connections open at once and MaxConnsPerIP
	// those from one source (an IPv4 address, or an IPv6 /64), over all
	// the listeners the Server serves; a connection over a cap is answered
	// 503 or 429 SlowDown and closed before anything of it is read
	// (conncap.go). A zero MaxConns is derived from the process's
	// RLIMIT_NOFILE: half of it for all clients (the other half stays for
	// drives, peers and logs). A zero MaxConnsPerIP is a quarter of
	// MaxConns (at least 1), or an eighth of RLIMIT_NOFILE when MaxConns
	// is unlimited. Negative means no cap. Clients behind one proxy or NAT
	// share a source: raise MaxConnsPerIP (or set it negative) when a load
	// balancer on one address fronts the node.
	MaxConns      int
	MaxConnsPerIP int
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
	all, perIP := connLimits()
	if c.MaxConns == 0 {
		c.MaxConns = all
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = perIP
		if c.MaxConns > 0 {
			c.MaxConnsPerIP = max(c.MaxConns/4, 1)
		}
	}
	return nil
}

// connLimits returns the default MaxConns and MaxConnsPerIP: half and an
// eighth of RLIMIT_NOFILE (at least 512 and 64), or unlimited when the
// limit cannot be read or is itself unlimited.
func connLimits() (all, perIP int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 { // RLIM_INFINITY included
		return -1, -1
	}
	return max(int(lim.Cur)/2, 512), max(int(lim.Cur)/8, 64)
}

// fasthttpConcurrency is fasthttp's Concurrency for MaxConns n: fasthttp
// answers 503 itself, in its accept loop and without a deadline, to a
// connection past it, so it is set well above n, which connCaps enforces
// (a connection is uncounted on Close, a moment before fasthttp frees its
// worker). Zero is fasthttp's default, 256 Ki.
func fasthttpConcurrency(n int) int {
	if n <= 0 || 2*n <= fasthttp.DefaultConcurrency {
		return 0
	}
	return 2 * n
}

// Server serves the S3 API.
type Server struct {
	cfg        Config
	log        *slog.Logger
	http       *fasthttp.Server
	preflights preflights
	caps       *connCaps // client connections, over all listeners
	lifecycles lifecycleCache
}

// New returns a Server for c.
func New(c Config) (*Server, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: c, log: c.Logger, caps: newConnCaps(c.MaxConns, c.MaxConnsPerIP, c.Logger)}
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
		Concurrency:           fasthttpConcurrency(c.MaxConns),
	}
	return s, nil
}

// ConnStats counts the client connections s holds and refused.
func (s *Server) ConnStats() ConnStats { return s.caps.stats() }

// Serve accepts connections on ln until Shutdown, within the connection
// caps (Config.MaxConns, MaxConnsPerIP), which count the connections of
// every listener s serves together.
func (s *Server) Serve(ln net.Listener) error {
	return s.http.Serve(&capListener{Listener: ln, caps: s.caps})
}

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
	_, headed := s.preflights.take(&fctx.Request.Header) // and forget it
	if nothingRead(headed, err) {
		// A connection that sent nothing (a client's spare connection,
		// dialled and never used) timed out: close it without an answer,
		// which its client would read as the answer to the request it may
		// be sending on it right now ("unsolicited response").
		fctx.Conn().Close()
		return
	}
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
	id := newRequestID()
	s.log.Debug("unreadable request", "id", id, "err", redact(err.Error()))
	fctx.Response.Header.DisableNormalizing()
	fctx.Response.Header.Set("x-amz-request-id", id)
	writeXML(fctx, e.Status, errorBody{Code: e.Code, Message: e.Message, RequestID: id})
}

// nothingRead reports whether err, from fasthttp reading a request, means
// that not a byte of one arrived before the header timeout: fasthttp
// passes the connection's timeout on bare then, and wraps it ("error when
// reading request headers") once some header bytes arrived. A body that
// stopped arriving before the handler also ends in a bare timeout, but
// after headerReceived (headed) kept the request's preflight.
// TestSilentConnClosedSilently, TestSlowHeadersCutOff and
// TestStalledBodyCutOff check this on every fasthttp upgrade.
func nothingRead(headed bool, err error) bool {
	if errors.As(err, new(fasthttp.ErrNothingRead)) {
		return true
	}
	ne, ok := err.(net.Error)
	return ok && ne.Timeout() && !headed
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
