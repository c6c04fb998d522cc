package s3

import (
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// Anonymous reads of public buckets.
//
// Bucket names are per tenant, so an unsigned request names a bucket
// without saying whose: it reaches the one tenant whose bucket of that
// name is public (public-read ACL; names of public buckets are claimed
// across tenants in the replicated state, so there is at most one). Such a
// request is served as that tenant, counted and rate-limited to it.
//
// Only a plain GetObject or HeadObject qualifies: no Authorization header,
// no security token, no body, and no query parameter but x-id (which SDKs
// add); ranges and conditional headers are fine. Anything else unsigned,
// including ?versionId, ?acl, response-* overrides, listings and every
// write, is authenticated as before and so refused as before; a request
// with any credential, good or bad, is never anonymous.

// PublicBuckets finds the owner of a public bucket from a node's own
// state (no round trip). cluster.Store implements it, next to
// BucketConfigs.
type PublicBuckets interface {
	PublicBucketOwner(bucket string) (tenant string, ok bool)
}

// anonymousTenant returns the tenant an unsigned request reads as, if it
// is an anonymous read of a public bucket.
func (s *Server) anonymousTenant(h *fasthttp.RequestHeader, pf *preflight, query string) (string, bool) {
	if pf.route == nil || (pf.route.name != "GetObject" && pf.route.name != "HeadObject") || pf.key == "" {
		return "", false
	}
	if hasHeader(h, "Authorization") || hasHeader(h, "x-amz-security-token") || hasBody(h) {
		return "", false
	}
	for part := range strings.SplitSeq(query, "&") {
		if k, _, _ := strings.Cut(part, "="); part != "" && k != "x-id" {
			return "", false
		}
	}
	pb, ok := s.cfg.Configs.(PublicBuckets)
	if !ok {
		return "", false
	}
	return pb.PublicBucketOwner(pf.bucket)
}

// anonymousAuth is the verification result of an anonymous read: no body.
var anonymousAuth = sigv4.Result{DecodedLength: -1}
