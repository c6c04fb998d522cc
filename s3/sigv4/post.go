package sigv4

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"fmt"
	"strings"
)

// PostAlgorithm is the x-amz-algorithm of a SigV4 browser-upload form.
const PostAlgorithm = "AWS4-HMAC-SHA256"

// VerifyPolicy checks the signature of a browser-upload (POST Object)
// form: signature must be the hex HMAC-SHA256 of policy (the form's
// base64 policy field, as sent) under the signing key of credential's
// scope (access-key/date/region/s3/aws4_request). It returns the access
// key. Errors wrap ErrAuthQueryMalformed (a malformed credential or
// signature), ErrUnknownAccessKey or ErrSignatureDoesNotMatch. The
// policy's content (expiration, conditions) is the caller's to check.
func VerifyPolicy(ctx context.Context, credential, policy, signature string, creds Credentials) (accessKey string, err error) {
	p, err := parseAuthParts(credential, "host", signature, ErrAuthQueryMalformed)
	if err != nil {
		return "", err
	}
	secret, err := creds.Secret(ctx, p.accessKey)
	if err != nil {
		return "", err
	}
	want := hex.EncodeToString(hmacSHA256(signingKey(secret, p.date, p.region), []byte(policy)))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(signature))) {
		return "", fmt.Errorf("%w: policy signature", ErrSignatureDoesNotMatch)
	}
	return p.accessKey, nil
}

// CredentialDate returns the date (YYYYMMDD) of a credential scope, "" if
// it has none.
func CredentialDate(credential string) string {
	parts := strings.Split(credential, "/")
	if len(parts) < 5 {
		return ""
	}
	return parts[len(parts)-4]
}
