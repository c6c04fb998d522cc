package s3

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Admin manages tenants for the admin API. Implementations must be safe for
// concurrent use and return ErrTenantExists, ErrNoSuchTenant and
// ErrTenantNotEmpty (possibly wrapped) where they apply.
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

// TenantLimits are a tenant's rate limit (0: the default) and quota (0:
// unlimited).
type TenantLimits struct {
	RPS          float64 `json:"rps"`
	Burst        int     `json:"burst"`
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
type LimitsAdmin interface {
	SetRate(ctx context.Context, name string, rps float64, burst int) error
	SetQuota(ctx context.Context, name string, maxBytes, maxArtifacts int64) error
}

// Admin API errors.
var (
	ErrTenantExists   = &Error{http.StatusConflict, "TenantAlreadyExists", "The tenant already exists."}
	ErrNoSuchTenant   = &Error{http.StatusNotFound, "NoSuchTenant", "The tenant does not exist."}
	ErrTenantNotEmpty = &Error{http.StatusConflict, "TenantNotEmpty", "The tenant still owns buckets."}
	ErrInvalidTenant  = &Error{http.StatusBadRequest, "InvalidTenantName", "Tenant names are 3 to 63 characters of a-z, 0-9 and '-'."}
	ErrNotClustered   = &Error{http.StatusNotFound, "NotFound", "This node is not in cluster mode."}
)

type health struct {
	Status string `json:"status"`
	Node   string `json:"node,omitempty"`
}

// vault serves the reserved /_vault/ paths.
func (s *Server) vault(ctx context.Context, r *request, path string) error {
	r.ev.Operation = "Admin"
	switch {
	case path == "/_vault/health":
		r.ev.Operation = "Health"
		return writeJSON(r, http.StatusOK, health{Status: "ok", Node: s.cfg.Node})
	case path == "/_vault/metrics" && s.cfg.Metrics != nil:
		r.ev.Operation = "Metrics"
		if m := string(r.fctx.Method()); m != http.MethodGet && m != http.MethodHead {
			return ErrMethodNotAllowed
		}
		if tok := s.cfg.MetricsToken; tok != "" {
			got := r.fctx.Request.Header.Peek("Authorization")
			if subtle.ConstantTimeCompare(got, []byte("Bearer "+tok)) != 1 {
				return ErrAccessDenied
			}
		}
		fasthttpadaptor.NewFastHTTPHandler(s.cfg.Metrics)(r.fctx)
		return nil
	case path == "/_vault/admin/tenants" || strings.HasPrefix(path, "/_vault/admin/tenants/"):
		return s.adminTenants(ctx, r, strings.TrimPrefix(strings.TrimPrefix(path, "/_vault/admin/tenants"), "/"))
	case path == "/_vault/admin/cluster":
		return s.adminCluster(ctx, r)
	}
	return &Error{http.StatusNotFound, "NotFound", "No such admin resource."}
}

func (s *Server) adminTenants(ctx context.Context, r *request, name string) error {
	// The tenant acted on is the event's key (its tenant is root's).
	r.ev.Key, _, _ = strings.Cut(name, "/")
	if err := s.authorizeRoot(ctx, r); err != nil {
		return err
	}
	if s.cfg.Admin == nil {
		return ErrNotImplemented
	}
	method := string(r.fctx.Method())
	switch {
	case name == "" && method == http.MethodGet:
		ts, err := s.cfg.Admin.Tenants(ctx)
		if err != nil {
			return err
		}
		if ts == nil {
			ts = []TenantInfo{}
		}
		return writeJSON(r, http.StatusOK, ts)
	case strings.HasSuffix(name, "/keys") && method == http.MethodPost:
		r.ev.Operation = "AdminAddKey"
		t, err := s.cfg.Admin.AddKey(ctx, strings.TrimSuffix(name, "/keys"))
		if err != nil {
			return err
		}
		return writeJSON(r, http.StatusOK, t)
	case (strings.HasSuffix(name, "/rate") || strings.HasSuffix(name, "/quota")) && method == http.MethodPut:
		return s.adminLimits(ctx, r, name)
	case strings.Contains(name, "/"):
		return ErrMethodNotAllowed
	case name != "" && method == http.MethodPut:
		r.ev.Operation = "AdminCreateTenant"
		t, err := s.cfg.Admin.CreateTenant(ctx, name)
		if err != nil {
			return err
		}
		return writeJSON(r, http.StatusOK, t)
	case name != "" && method == http.MethodDelete:
		r.ev.Operation = "AdminDeleteTenant"
		if err := s.cfg.Admin.DeleteTenant(ctx, name); err != nil {
			return err
		}
		r.fctx.SetStatusCode(http.StatusNoContent)
		return nil
	}
	return ErrMethodNotAllowed
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

// adminCluster serves GET /_vault/admin/cluster from the Admin's
// ClusterAdmin side, if it has one.
func (s *Server) adminCluster(ctx context.Context, r *request) error {
	if err := s.authorizeRoot(ctx, r); err != nil {
		return err
	}
	if string(r.fctx.Method()) != http.MethodGet {
		return ErrMethodNotAllowed
	}
	ca, ok := s.cfg.Admin.(ClusterAdmin)
	if !ok {
		return ErrNotClustered
	}
	st, err := ca.ClusterStatus(ctx)
	if err != nil {
		return err
	}
	return writeJSON(r, http.StatusOK, st)
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

// adminLimits serves PUT /_vault/admin/tenants/NAME/rate and /quota.
func (s *Server) adminLimits(ctx context.Context, r *request, path string) error {
	la, ok := s.cfg.Admin.(LimitsAdmin)
	if !ok {
		return ErrNotImplemented
	}
	name, what, _ := strings.Cut(path, "/")
	var l TenantLimits
	const maxBody = 4 << 10
	body, err := io.ReadAll(io.LimitReader(r.auth.Body(r.bodyStream(s)), maxBody+1))
	// A longer body is not read to its end: it is drained or the
	// connection closed, never parsed as the next request.
	r.bodyDone = err == nil && len(body) <= maxBody
	if !r.bodyDone || json.Unmarshal(body, &l) != nil || l.RPS < 0 || l.Burst < 0 || l.MaxBytes < 0 || l.MaxArtifacts < 0 {
		return &Error{http.StatusBadRequest, "InvalidArgument", "Want a JSON object of non-negative limits."}
	}
	if what == "rate" {
		r.ev.Operation = "AdminSetRate"
		err = la.SetRate(ctx, name, l.RPS, l.Burst)
	} else {
		r.ev.Operation = "AdminSetQuota"
		err = la.SetQuota(ctx, name, l.MaxBytes, l.MaxArtifacts)
	}
	if err != nil {
		return err
	}
	r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}
