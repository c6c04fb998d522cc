package s3

import (
	"net/url"
	"testing"
)

// TestHasQueryKey checks hasQueryKey against url.ParseQuery, the oracle
// the V2 presign check used on every request before.
func TestHasQueryKey(t *testing.T) {
	for _, raw := range []string{
		"", "AWSAccessKeyId=AK&Signature=x&Expires=1", "a=1&AWSAccessKeyId", "AWSAccessKeyIdX=1",
		"AWS%41ccessKeyId=AK", "AWSAccessKeyId%3D=1", "x=AWSAccessKeyId", "AWSAccess+KeyId=1",
		"X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=abc",
		"&&AWSAccessKeyId=&", "%zz=1&AWSAccessKeyId=1",
	} {
		q, _ := url.ParseQuery(raw) // keeps what it parsed before an error
		if got, want := hasQueryKey(raw, "AWSAccessKeyId"), q.Has("AWSAccessKeyId"); got != want {
			t.Errorf("hasQueryKey(%q) = %v, want %v", raw, got, want)
		}
	}
}
