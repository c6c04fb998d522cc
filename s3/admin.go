package s3

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Admin manages tenants for the admin API. Implementations must be safe for
// concurrent use and fail with errors the error table maps (errors.go):
// package tenant's errors, possibly wrapped, or this package's *Error
// values such as ErrTenantExists.
type Admin interface {
	CreateTenant(ctx context.Context, name string) (NewTenant, error)
	// AddKey gives an existing tenant another key pair.
	AddKey(ctx context.Context, name string) (NewTenant, error)
	DeleteTenant(ctx context.Context, name string) error
	Tenants(ctx context.Context) ([]TenantInfo, error)
}

// ClusterAdmin is an optional interface of an Admin whose node runs in a
// cluster: GET /_vault/admin/cluster answers with ClusterStatus as JSON.
// Implementations must be safe for concurrent use; the value returned must
// marshal to JSON (cmd/vaultd returns a cluster.Status).
type ClusterAdmin interface {
	ClusterStatus(ctx context.Context) (any, error)
}

// ClusterControl is an optional interface of an Admin whose node runs in
// a cluster: POST /_vault/admin/cluster/OP (root only, a JSON body of at
// most 4 KiB) calls ClusterControl with OP and the body and answers with
// its result as JSON. It must fail with this package's *Error values for
// requests it refuses (an unknown OP, a bad body, a change the cluster
// cannot make), or errors the error table maps.
type ClusterControl interface {
	ClusterControl(ctx context.Context, op string, body []byte) (any, error)
}

// NewTenant is a created tenant with its first key pair. It is the JSON
// that `vaultd tenant create --json` prints.
type NewTenant struct {
	Name      string `json:"name"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// TenantInfo describes a tenant without its secrets.
type TenantInfo struct {
	Name       string       `json:"name"`
	Created    time.Time    `json:"created"`
	AccessKeys []string     `json:"access_keys"`
	Limits     TenantLimits `json:"limits"`
	Usage      TenantUsage  `json:"usage"`
}

// TenantLimits are a tenant's rate limit (0: the default), bandwidth and
// quota (0: unlimited).
type TenantLimits struct {
	RPS          float64 `json:"rps"`
	Burst        int     `json:"burst"`
	BytesIn      int64   `json:"bytes_in"`  // request body bytes per second, per node (0: unlimited)
	BytesOut     int64   `json:"bytes_out"` // response body bytes per second, per node (0: unlimited)
	MaxBytes     int64   `json:"max_bytes"`
	MaxArtifacts int64   `json:"max_artifacts"`
}

// TenantUsage is what a tenant stores, as committed cluster-wide.
type TenantUsage struct {
	Bytes     int64 `json:"bytes"`
	Artifacts int64 `json:"artifacts"`
}

// LimitsAdmin is implemented by an Admin that can set tenants' limits:
// PUT /_vault/admin/tenants/NAME/rate {"rps","burst"} and
// PUT /_vault/admin/tenants/NAME/quota {"max_bytes","max_artifacts"}.
// A rate for the root tenant, which is never rate-limited, is refused
// (400 InvalidArgument) before it reaches SetRate.
type LimitsAdmin interface {
	SetRate(ctx context.Context, name string, rps float64, burst int) error
	SetQuota(ctx context.Context, name string, maxBytes, maxArtifacts int64) error
}

// BandwidthAdmin is implemented by a LimitsAdmin that can also set
// tenants' bandwidth: PUT /_vault/admin/tenants/NAME/rate sets
// {"bytes_in","bytes_out"} (bytes per second; absent or 0: unlimited)
// with the rate. Without it, a bandwidth is refused (501).
type BandwidthAdmin interface {
	SetBandwidth(ctx context.Context, name string, bytesIn, bytesOut int64) error
}

type health struct {
	Status string `json:"status"`
	Node   string `json:"node,omitempty"`
}

func (op *operation) health() error {
	return writeJSON(op.r, http.StatusOK, health{Status: "ok", Node: op.s.cfg.Node})
}

func (op *operation) metrics() error {
	s, r := op.s, op.r
	if s.cfg.Metrics == nil {
		return errNoAdminResource
	}
	if m := string(r.fctx.Method()); m != http.MethodGet && m != http.MethodHead {
		return ErrMethodNotAllowed
	}
	if err := s.authorizeMetrics(op); err != nil {
		return err
	}
	fasthttpadaptor.NewFastHTTPHandler(s.cfg.Metrics)(r.fctx)
	return nil
}

// authorizeMetrics admits a scrape of /_vault/metrics (Config.Metrics):
// any when MetricsOpen; with a Bearer token, only MetricsToken's; else
// only a request signed by root.
func (s *Server) authorizeMetrics(op *operation) error {
	if s.cfg.MetricsOpen {
		return nil
	}
	got := op.r.fctx.Request.Header.Peek("Authorization")
	if token, ok := bytes.CutPrefix(got, []byte("Bearer ")); ok {
		want := s.cfg.MetricsToken
		if want == "" || subtle.ConstantTimeCompare(token, []byte(want)) != 1 {
			return ErrAccessDenied
		}
		return nil
	}
	return s.authorizeRoot(op.ctx, op.r)
}

// asRoot serves a request of the tenants API for root only, with the
// path after /_vault/admin/tenants/; the tenant acted on is the event's
// key (its tenant is root's).
func asRoot(serve func(op *operation, name string) error) func(*operation) error {
	return func(op *operation) error {
		name, _ := tenantName(op.path)
		op.r.ev.Key, _, _ = strings.Cut(name, "/")
		if err := op.s.authorizeRoot(op.ctx, op.r); err != nil {
			return err
		}
		if op.s.cfg.Admin == nil {
			return ErrNotImplemented
		}
		return serve(op, name)
	}
}

func listTenants(op *operation, _ string) error {
	ts, err := op.s.cfg.Admin.Tenants(op.ctx)
	if err != nil {
		return err
	}
	return writeJSON(op.r, http.StatusOK, append([]TenantInfo{}, ts...))
}

// sendTenant answers with a created tenant or key.
func (op *operation) sendTenant(t NewTenant, err error) error {
	if err != nil {
		return err
	}
	return writeJSON(op.r, http.StatusOK, t)
}

func deleteTenant(op *operation, name string) error {
	if err := op.s.cfg.Admin.DeleteTenant(op.ctx, name); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

// authorizeRoot verifies r's signature and refuses any caller but root.
func (s *Server) authorizeRoot(ctx context.Context, r *request) error {
	h := &r.fctx.Request.Header
	host, path, query := requestTarget(h)
	auth, tenant, err := s.authenticate(ctx, h, host, path, query, path)
	if err != nil {
		return err
	}
	r.ev.Tenant = tenant
	r.auth = auth
	if auth.AccessKey != s.cfg.Root.AccessKey || tenant != s.cfg.RootTenant {
		return ErrAccessDenied
	}
	return nil
}

// clusterStatus serves GET /_vault/admin/cluster from the Admin's
// ClusterAdmin side, if it has one.
func (op *operation) clusterStatus() error {
	if err := op.s.authorizeRoot(op.ctx, op.r); err != nil {
		return err
	}
	if string(op.r.fctx.Method()) != http.MethodGet {
		return ErrMethodNotAllowed
	}
	ca, ok := op.s.cfg.Admin.(ClusterAdmin)
	if !ok {
		return ErrNotClustered
	}
	st, err := ca.ClusterStatus(op.ctx)
	if err != nil {
		return err
	}
	return writeJSON(op.r, http.StatusOK, st)
}

// clusterControl serves POST /_vault/admin/cluster/OP.
func (op *operation) clusterControl() error {
	if err := op.s.authorizeRoot(op.ctx, op.r); err != nil {
		return err
	}
	cc, ok := op.s.cfg.Admin.(ClusterControl)
	if !ok {
		return ErrNotClustered
	}
	r := op.r
	const maxBody = 4 << 10
	body, err := io.ReadAll(io.LimitReader(r.auth.Body(r.bodyStream(op.s)), maxBody+1))
	r.bodyDone = err == nil && len(body) <= maxBody
	if !r.bodyDone {
		return ErrInvalidRequest
	}
	out, err := cc.ClusterControl(op.ctx, strings.TrimPrefix(op.path, "/_vault/admin/cluster/"), body)
	if err != nil {
		return err
	}
	return writeJSON(r, http.StatusOK, out)
}

func writeJSON(r *request, status int, v any) error {
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	r.fctx.SetStatusCode(status)
	r.fctx.SetContentType("application/json")
	r.fctx.Response.SetBodyRaw(append(out, '\n'))
	return nil
}

// setLimits serves PUT /_vault/admin/tenants/NAME/rate and /quota.
func setLimits(op *operation, path string) error {
	la, ok := op.s.cfg.Admin.(LimitsAdmin)
	if !ok {
		return ErrNotImplemented
	}
	r := op.r
	name, what, _ := strings.Cut(path, "/")
	var l TenantLimits
	const maxBody = 4 << 10
	body, err := io.ReadAll(io.LimitReader(r.auth.Body(r.bodyStream(op.s)), maxBody+1))
	// A longer body is not read to its end: it is drained or the
	// connection closed, never parsed as the next request.
	r.bodyDone = err == nil && len(body) <= maxBody
	// Strict: a misspelt field ({"bytes": -1}), the other route's field
	// ({"rps": 5} sent to /quota) or an empty object must not read as
	// "no limit"; a field named twice is refused, not "last one wins".
	var named map[string]bool
	if !r.bodyDone {
		return errInvalidLimits
	}
	if named, err = decodeLimits(body, what, &l); err != nil || l.RPS < 0 || l.Burst < 0 || l.BytesIn < 0 || l.BytesOut < 0 || l.MaxBytes < 0 || l.MaxArtifacts < 0 {
		return errInvalidLimits
	}
	if what == "rate" {
		// Root is exempt from rate limits (an operator must not be
		// able to throttle the API that lifts them), so a rate for it
		// would be stored and ignored: refused instead.
		if name == op.s.cfg.RootTenant && (l.RPS != 0 || l.Burst != 0 || l.BytesIn != 0 || l.BytesOut != 0) {
			return errRootRate
		}
		// A PUT sets the limits it names, in pairs: rps with burst,
		// bytes_in with bytes_out (the other of a pair left out is 0,
		// the default); a pair it does not name is left as it is.
		ba, ok := la.(BandwidthAdmin)
		bandwidth := named["bytes_in"] || named["bytes_out"]
		if !ok && bandwidth {
			return ErrNotImplemented
		}
		if named["rps"] || named["burst"] {
			err = la.SetRate(op.ctx, name, l.RPS, l.Burst)
		}
		if err == nil && bandwidth {
			err = ba.SetBandwidth(op.ctx, name, l.BytesIn, l.BytesOut)
		}
	} else {
		err = la.SetQuota(op.ctx, name, l.MaxBytes, l.MaxArtifacts)
	}
	if err != nil {
		return err
	}
	r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

// limitFields are the JSON fields each limits route takes; a PUT must
// name at least one of them (see setLimits for which limits it sets).
var limitFields = map[string][]string{
	"rate":  {"rps", "burst", "bytes_in", "bytes_out"},
	"quota": {"max_bytes", "max_artifacts"},
}

// decodeLimits decodes body, one JSON object of route what's fields, into
// l, and returns the fields it names.
func decodeLimits(body []byte, what string, l *TenantLimits) (map[string]bool, error) {
	allowed := limitFields[what]
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errInvalidLimits
	}
	named := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		name, ok := tok.(string)
		if err != nil || !ok || !slices.Contains(allowed, name) || named[name] {
			return nil, errInvalidLimits
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil || string(v) == "null" {
			return nil, errInvalidLimits
		}
		named[name] = true
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') || len(named) == 0 {
		return nil, errInvalidLimits
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errInvalidLimits // trailing data after the object
	}
	strict := json.NewDecoder(bytes.NewReader(body))
	strict.DisallowUnknownFields()
	return named, strict.Decode(l)
}
