package s3

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// Presigned URLs with Signature Version 2 (AWSAccessKeyId, Expires and
// Signature in the query) are what the aws cli v1 `s3 presign` produces, so
// they are accepted for query authentication. Header authentication must
// be Signature Version 4.

// v2Subresources are the query parameters that are part of a V2
// canonicalized resource: those botocore signs (HmacV1Auth's
// QSAOfInterest, what the aws cli v1 presigns) and every other parameter
// that selects an operation in the route table (routes.go), so that a
// URL signed without one cannot be turned into that operation by adding
// it: the signature then does not match.
var v2Subresources = []string{
	"accelerate", "acl", "analytics", "attributes", "cors", "defaultObjectAcl", "delete", "encryption",
	"intelligent-tiering", "inventory", "legal-hold", "lifecycle", "location", "logging", "metrics",
	"notification", "object-lock", "ownershipControls", "partNumber", "policy", "policyStatus",
	"publicAccessBlock", "replication", "requestPayment", "response-cache-control",
	"response-content-disposition", "response-content-encoding", "response-content-language",
	"response-content-type", "response-expires", "restore", "retention", "select", "select-type",
	"storageClass", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning", "versions",
	"website",
}

// v2Unsigned are the query parameters a V2 presigned request may carry
// outside its signature: its own, and those that only narrow or page what
// the signed operation returns (listings). Any other is refused: the route
// table may read a parameter the signature does not cover.
var v2Unsigned = []string{
	"AWSAccessKeyId", "Expires", "Signature",
	"continuation-token", "delimiter", "encoding-type", "fetch-owner", "key-marker", "list-type",
	"marker", "max-keys", "max-parts", "max-uploads", "part-number-marker", "prefix", "start-after",
	"upload-id-marker", "version-id-marker",
}

func isPresignV2(q url.Values) bool {
	return q.Has("AWSAccessKeyId") && q.Has("Signature") && q.Has("Expires")
}

// verifyPresignV2 checks a V2 presigned request; resource is its /bucket/key
// path (the bucket taken from the Host header in virtual-host style) and
// lookup returns the secret.
func verifyPresignV2(ctx context.Context, h *fasthttp.RequestHeader, resource string, q url.Values, lookup credentials, now time.Time) (*sigv4.Result, error) {
	expires, err := strconv.ParseInt(q.Get("Expires"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: Expires", sigv4.ErrAuthQueryMalformed)
	}
	if now.Unix() > expires {
		return nil, sigv4.ErrExpiredPresign
	}
	if time.Unix(expires, 0).Sub(now) > sigv4.MaxPresignExpiry {
		return nil, fmt.Errorf("%w: Expires too far ahead", sigv4.ErrAuthQueryMalformed)
	}
	for name := range q {
		if !slices.Contains(v2Subresources, name) && !slices.Contains(v2Unsigned, name) {
			return nil, fmt.Errorf("%w: query parameter %q is not covered by a Signature Version 2 signature", sigv4.ErrAccessDenied, name)
		}
	}
	access := q.Get("AWSAccessKeyId")
	secret, err := lookup(ctx, access)
	if err != nil {
		return nil, err
	}
	var amz []string
	for k, v := range h.All() {
		if name := strings.ToLower(string(k)); strings.HasPrefix(name, "x-amz-") {
			amz = append(amz, name+":"+strings.TrimSpace(string(v)))
		}
	}
	slices.Sort(amz)
	var sb strings.Builder
	sb.WriteString(string(h.Method()) + "\n")
	sb.WriteString(string(h.Peek("Content-MD5")) + "\n")
	sb.WriteString(string(h.Peek("Content-Type")) + "\n")
	sb.WriteString(q.Get("Expires") + "\n")
	for _, a := range amz {
		sb.WriteString(a + "\n")
	}
	sb.WriteString(resource)
	var subs []string
	for _, name := range v2Subresources {
		if q.Has(name) {
			if v := q.Get(name); v != "" {
				subs = append(subs, name+"="+v)
			} else {
				subs = append(subs, name)
			}
		}
	}
	slices.Sort(subs)
	if len(subs) > 0 {
		sb.WriteString("?" + strings.Join(subs, "&"))
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(sb.String()))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(q.Get("Signature"))) {
		return nil, sigv4.ErrSignatureDoesNotMatch
	}
	return &sigv4.Result{AccessKey: access, Mode: sigv4.PayloadUnsigned, Presigned: true, DecodedLength: -1, Time: now}, nil
}
