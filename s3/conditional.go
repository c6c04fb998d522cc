package s3

import (
	"strings"

	"github.com/vaultaire/vaultaire/engine"
)

// Conditional writes: If-None-Match: * and If-Match: ETAG on PutObject,
// CopyObject (the destination) and CompleteMultipartUpload, If-Match on
// DeleteObject. The engine checks the condition under a cluster-wide lock
// of the key once the body is stored, and writes under it, so of two
// conditional writes racing on one key through any nodes the second sees
// the first (two If-None-Match: * creates: exactly one wins, the other
// gets 412). As AWS: a mismatch is 412 PreconditionFailed; If-Match on a
// key without an object is 404 NoSuchKey for writes and succeeds (204) for
// DeleteObject; a write that could not take the key's lock because
// another conditional write of the key held it is 409
// ConditionalRequestConflict (retry).

// writeCondition returns the condition of a write's If-Match and
// If-None-Match headers, nil if it has neither. deleting is DeleteObject's
// (If-Match only; a missing object matches).
func (op *operation) writeCondition(deleting bool) (engine.Condition, error) {
	h := &op.r.fctx.Request.Header
	match := strings.TrimSpace(joinedHeader(h, "If-Match"))
	noneMatch := strings.TrimSpace(joinedHeader(h, "If-None-Match"))
	if noneMatch != "" && noneMatch != "*" {
		return nil, errIfNoneMatchValue
	}
	if match == "" && noneMatch == "" {
		return nil, nil
	}
	return func(cur *engine.ArtifactInfo) error {
		if match != "" {
			switch {
			case cur == nil && deleting:
			case cur == nil:
				return ErrNoSuchKey
			case !strongMatch(match, cur.ETag):
				return ErrPreconditionFailed
			}
		}
		if noneMatch != "" && cur != nil {
			return ErrPreconditionFailed
		}
		return nil
	}, nil
}

// strongMatch reports whether an If-Match list names etag (or is *),
// comparing strongly: a weak tag (W/"...") never matches (RFC 9110
// section 13.1.1).
func strongMatch(list, etag string) bool {
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || !strings.HasPrefix(t, "W/") && strings.Trim(t, `"`) == etag {
			return true
		}
	}
	return false
}
