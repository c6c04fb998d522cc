package s3

import (
	"context"
	"encoding/xml"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// BucketConfigs stores bucket configuration documents (one per kind, such
// as "cors", per tenant and bucket), replicated across the cluster.
// cluster.Store implements it.
type BucketConfigs interface {
	// BucketConfig returns a bucket's document of a kind and whether it
	// has one, as of every write that returned on any node.
	BucketConfig(ctx context.Context, tenant, bucket, kind string) ([]byte, bool, error)
	// LocalBucketConfig is BucketConfig from this node's state alone
	// (no round trip: it serves unauthenticated requests).
	LocalBucketConfig(tenant, bucket, kind string) ([]byte, bool)
	// FreshBucketConfig is BucketConfig for a write acting on the
	// document: as of every change that returned on any node, also on a
	// node that was paused or cut off since (it syncs with the leader at
	// most once a second under load).
	FreshBucketConfig(ctx context.Context, tenant, bucket, kind string) ([]byte, bool, error)
	// PutBucketConfig sets a document; DeleteBucketConfig removes it.
	PutBucketConfig(ctx context.Context, tenant, bucket, kind string, doc []byte) error
	// PutBucketConfigIf is PutBucketConfig applied only if the bucket's
	// document of kind ifKind is then ifDoc (absent when nil); else it
	// fails with engine.ErrConfigChanged.
	PutBucketConfigIf(ctx context.Context, tenant, bucket, kind string, doc []byte, ifKind string, ifDoc []byte) error
	DeleteBucketConfig(ctx context.Context, tenant, bucket, kind string) error
	// ContainerTenants returns, from this node's state, the tenants that
	// own a bucket of the name.
	ContainerTenants(bucket string) []string
}

const corsKind = "cors"

// Limits of a CORS configuration, as AWS.
const (
	maxCORSRules = 100
	maxCORSBody  = 64 << 10
)

// corsConfiguration is the CORSConfiguration document.
type corsConfiguration struct {
	XMLName xml.Name   `xml:"CORSConfiguration"`
	Xmlns   string     `xml:"xmlns,attr,omitempty"`
	Rules   []corsRule `xml:"CORSRule"`
}

type corsRule struct {
	ID             string   `xml:"ID,omitempty"`
	AllowedHeaders []string `xml:"AllowedHeader"`
	AllowedMethods []string `xml:"AllowedMethod"`
	AllowedOrigins []string `xml:"AllowedOrigin"`
	ExposeHeaders  []string `xml:"ExposeHeader"`
	MaxAgeSeconds  *int     `xml:"MaxAgeSeconds"`
}

var corsMethods = []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodHead}

func invalidCORS(msg string) error { return withMessage(ErrInvalidRequest, msg) }

// validate checks c as AWS does.
func (c *corsConfiguration) validate() error {
	if len(c.Rules) == 0 {
		return ErrMalformedXML
	}
	if len(c.Rules) > maxCORSRules {
		return invalidCORS("The number of CORS rules should not exceed allowed limit of 100 rules.")
	}
	for _, r := range c.Rules {
		if len(r.AllowedMethods) == 0 || len(r.AllowedOrigins) == 0 {
			return ErrMalformedXML
		}
		for _, m := range r.AllowedMethods {
			if !slices.Contains(corsMethods, m) {
				return invalidCORS("Found unsupported HTTP method in CORS config. Unsupported method is " + m)
			}
		}
		for _, o := range r.AllowedOrigins {
			if strings.Count(o, "*") > 1 {
				return invalidCORS(`AllowedOrigin "` + o + `" can not have more than one wildcard.`)
			}
		}
		for _, h := range r.AllowedHeaders {
			if strings.Count(h, "*") > 1 {
				return invalidCORS(`AllowedHeader "` + h + `" can not have more than one wildcard.`)
			}
		}
		if r.MaxAgeSeconds != nil && *r.MaxAgeSeconds < 0 {
			return ErrMalformedXML
		}
		if len(r.ID) > 255 {
			return invalidCORS("The ID of a CORS rule is at most 255 characters.")
		}
	}
	return nil
}

// wildMatch matches s against a pattern with at most one '*'.
func wildMatch(pattern, s string) bool {
	pre, suf, ok := strings.Cut(pattern, "*")
	if !ok {
		return pattern == s
	}
	return len(s) >= len(pre)+len(suf) && strings.HasPrefix(s, pre) && strings.HasSuffix(s, suf)
}

// match returns the first rule allowing origin, method and every one of
// headers (lower case), or nil.
func (c *corsConfiguration) match(origin, method string, headers []string) *corsRule {
	for i := range c.Rules {
		r := &c.Rules[i]
		if !slices.Contains(r.AllowedMethods, method) {
			continue
		}
		if !slices.ContainsFunc(r.AllowedOrigins, func(o string) bool { return wildMatch(o, origin) }) {
			continue
		}
		if !allHeaders(r.AllowedHeaders, headers) {
			continue
		}
		return r
	}
	return nil
}

func allHeaders(allowed, headers []string) bool {
	for _, h := range headers {
		if !slices.ContainsFunc(allowed, func(a string) bool { return wildMatch(strings.ToLower(a), h) }) {
			return false
		}
	}
	return true
}

func (r *corsRule) anyOrigin() bool { return slices.Contains(r.AllowedOrigins, "*") }

func (op *operation) configs() (BucketConfigs, error) {
	if op.s.cfg.Configs == nil {
		return nil, errCORSNotSupported
	}
	return op.s.cfg.Configs, nil
}

// writeDoc answers 200 with a bucket configuration document as stored
// (the XML of a Put…, re-marshalled when it was checked).
func writeDoc(op *operation, doc []byte) {
	op.r.fctx.SetStatusCode(http.StatusOK)
	op.r.fctx.SetContentType("application/xml")
	op.r.fctx.Response.SetBodyRaw(append([]byte(xml.Header), doc...))
}

func (op *operation) putBucketCors() error {
	cs, err := op.configs()
	if err != nil {
		return err
	}
	var c corsConfiguration
	if err := op.readXMLBody(&c); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if _, err := op.s.cfg.Engine.Container(op.ctx, op.tenant, op.bucket); err != nil {
		return err
	}
	c.Xmlns = s3Namespace
	doc, err := xml.Marshal(c)
	if err != nil {
		return err
	}
	if len(doc) > maxCORSBody {
		return ErrMalformedXML
	}
	if err := cs.PutBucketConfig(op.ctx, op.tenant, op.bucket, corsKind, doc); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusOK)
	return nil
}

func (op *operation) getBucketCors() error {
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	doc, ok, err := cs.BucketConfig(op.ctx, op.tenant, op.bucket, corsKind)
	if err != nil {
		return err
	}
	if !ok {
		return errNoSuchCORS
	}
	writeDoc(op, doc)
	return nil
}

func (op *operation) deleteBucketCors() error {
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	if err := cs.DeleteBucketConfig(op.ctx, op.tenant, op.bucket, corsKind); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

// localCORS returns a bucket's CORS configuration from this node's state.
func (s *Server) localCORS(tenant, bucket string) *corsConfiguration {
	if s.cfg.Configs == nil {
		return nil
	}
	doc, ok := s.cfg.Configs.LocalBucketConfig(tenant, bucket, corsKind)
	if !ok {
		return nil
	}
	var c corsConfiguration
	if xml.Unmarshal(doc, &c) != nil {
		return nil
	}
	return &c
}

// preflightCors answers a CORS preflight (OPTIONS on a bucket or object),
// which browsers send without credentials. Bucket names are unique per
// tenant only: the preflight is answered from the rules of the one tenant
// that owns a bucket of the name, and refused (403) when several do.
func (op *operation) preflightCors() error {
	h := &op.r.fctx.Request.Header
	origin := string(h.Peek("Origin"))
	if origin == "" {
		return errCORSNoOrigin
	}
	method := string(h.Peek("Access-Control-Request-Method"))
	if method == "" {
		return errCORSNoMethod
	}
	if op.s.cfg.Configs == nil {
		return errCORSNotEnabled
	}
	var headers []string
	for f := range strings.SplitSeq(string(h.Peek("Access-Control-Request-Headers")), ",") {
		if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
			headers = append(headers, f)
		}
	}
	// A preflight names no tenant, and tenants name buckets each in their
	// own namespace: the rules of every tenant owning this name are
	// consulted, and the first that allows the request answers. So one
	// tenant's bucket of the same name can neither switch another's CORS
	// off nor read anything through it (the request itself is signed,
	// and its response carries its own tenant's CORS headers). A name
	// nobody owns answers as a bucket without CORS, so preflights are no
	// oracle of other tenants' bucket names.
	var r *corsRule
	enabled := false
	for _, owner := range op.s.cfg.Configs.ContainerTenants(op.bucket) {
		c := op.s.localCORS(owner, op.bucket)
		if c == nil {
			continue
		}
		enabled = true
		if r = c.match(origin, method, headers); r != nil {
			op.tenant = owner
			op.r.ev.Tenant = owner
			break
		}
	}
	switch {
	case !enabled:
		return errCORSNotEnabled
	case r == nil:
		return errCORSNotAllowed
	}
	rh := &op.r.fctx.Response.Header
	setCORSHeaders(rh, r, origin)
	if len(headers) > 0 {
		rh.Set("Access-Control-Allow-Headers", strings.Join(headers, ", "))
	}
	rh.Set("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method")
	op.r.fctx.SetStatusCode(http.StatusOK)
	return nil
}

func setCORSHeaders(rh interface{ Set(k, v string) }, r *corsRule, origin string) {
	if r.anyOrigin() {
		rh.Set("Access-Control-Allow-Origin", "*")
	} else {
		rh.Set("Access-Control-Allow-Origin", origin)
		rh.Set("Access-Control-Allow-Credentials", "true")
	}
	rh.Set("Access-Control-Allow-Methods", strings.Join(r.AllowedMethods, ", "))
	if len(r.ExposeHeaders) > 0 {
		rh.Set("Access-Control-Expose-Headers", strings.Join(r.ExposeHeaders, ", "))
	}
	if r.MaxAgeSeconds != nil {
		rh.Set("Access-Control-Max-Age", strconv.Itoa(*r.MaxAgeSeconds))
	}
}

// corsResponse adds the Access-Control-* headers of the bucket's first
// rule matching an authenticated request's Origin and method.
func (op *operation) corsResponse() {
	origin := string(op.r.fctx.Request.Header.Peek("Origin"))
	if origin == "" || op.bucket == "" || op.tenant == "" {
		return
	}
	c := op.s.localCORS(op.tenant, op.bucket)
	if c == nil {
		return
	}
	rh := &op.r.fctx.Response.Header
	rh.Set("Vary", "Origin")
	if r := c.match(origin, string(op.r.fctx.Method()), nil); r != nil {
		setCORSHeaders(rh, r, origin)
	}
}
