package sigv4_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

var signTime = time.Date(2026, 11, 22, 12, 30, 0, 0, time.UTC)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestVerifyHeaderAWS signs requests with the AWS SDK v2 signer and checks
// Verify's verdict on them, untouched and tampered.
func TestVerifyHeaderAWS(t *testing.T) {
	body := []byte("hello, vaultaire")
	tests := []struct {
		name    string
		method  string
		path    string // encoded as the S3 SDK does
		query   string
		secret  string
		payload string // x-amz-content-sha256; "" means sha256 of body
		now     time.Time
		mutate  func(r *sigv4.Request)
		wantErr error
	}{
		{name: "valid", path: "/bucket/key"},
		{name: "valid unsigned payload", path: "/bucket/key", payload: "UNSIGNED-PAYLOAD"},
		{name: "root path", method: "GET", path: "/"},
		{name: "query", method: "GET", path: "/bucket", query: "list-type=2&prefix=a%20b&delimiter=%2F&max-keys=10"},
		{name: "query without value", method: "GET", path: "/bucket/key", query: "acl"},
		{name: "space", path: s3Path("/bucket/a b/c")},
		{name: "unicode", path: s3Path("/bucket/日本語/ключ")},
		{name: "reserved characters", path: s3Path("/bucket/a(b)!*'+,;=:@$&")},
		{name: "encoded slash", path: "/bucket/a%2Fb"},
		{name: "dot dot", path: "/bucket/a/../b"},
		{name: "dot", path: "/bucket/./b"},
		{name: "double slash", path: "/bucket//b//"},
		{name: "wrong secret", path: "/bucket/key", secret: "not-the-secret", wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "skew +14m", path: "/bucket/key", now: signTime.Add(14 * time.Minute)},
		{name: "skew -14m", path: "/bucket/key", now: signTime.Add(-14 * time.Minute)},
		{name: "skew +16m", path: "/bucket/key", now: signTime.Add(16 * time.Minute), wantErr: sigv4.ErrRequestTimeTooSkewed},
		{name: "skew -16m", path: "/bucket/key", now: signTime.Add(-16 * time.Minute), wantErr: sigv4.ErrRequestTimeTooSkewed},
		{name: "tampered method", path: "/bucket/key", mutate: func(r *sigv4.Request) { r.Method = "DELETE" }, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "tampered path", path: "/bucket/key", mutate: func(r *sigv4.Request) { r.RawPath = "/bucket/kez" }, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "cleaned path", path: "/bucket/a/../b", mutate: func(r *sigv4.Request) { r.RawPath = "/bucket/b" }, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "decoded slash", path: "/bucket/a%2Fb", mutate: func(r *sigv4.Request) { r.RawPath = "/bucket/a/b" }, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "tampered query", method: "GET", path: "/bucket", query: "prefix=a", mutate: func(r *sigv4.Request) { r.RawQuery = "prefix=b" }, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "added query", method: "GET", path: "/bucket", query: "prefix=a", mutate: func(r *sigv4.Request) { r.RawQuery += "&versionId=1" }, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "tampered host", path: "/bucket/key", mutate: func(r *sigv4.Request) { r.Host = "evil.test" }, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "tampered header", path: "/bucket/key", mutate: setHeader("X-Amz-Meta-Color", "red"), wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "unsigned x-amz header", path: "/bucket/key", mutate: setHeader("X-Amz-Acl", "public-read"), wantErr: sigv4.ErrAccessDenied},
		{name: "signed header absent", path: "/bucket/key", mutate: delHeader("X-Amz-Meta-Color"), wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "missing content sha256", path: "/bucket/key", mutate: delHeader("X-Amz-Content-Sha256"), wantErr: sigv4.ErrInvalidContentSHA256},
		{name: "tampered content sha256", path: "/bucket/key", mutate: setHeader("X-Amz-Content-Sha256", sha256Hex([]byte("other"))), wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "anonymous", path: "/bucket/key", mutate: delHeader("Authorization"), wantErr: sigv4.ErrAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := cmpOr(tt.method, "PUT")
			var b []byte
			if method == "PUT" {
				b = body
			}
			req := newRequest(t, method, tt.path, tt.query, b)
			req.Header.Set("X-Amz-Meta-Color", "  blue   and  green ")
			awsSign(t, req, cmpOr(tt.secret, testSecret), cmpOr(tt.payload, sha256Hex(b)), signTime)
			r, _ := wire(t, req)
			if tt.mutate != nil {
				tt.mutate(r)
			}
			now := tt.now
			if now.IsZero() {
				now = signTime
			}
			res, err := sigv4.Verify(t.Context(), r, creds, now)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify: got %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), testSecret) {
					t.Errorf("error %q contains the secret", err)
				}
				return
			}
			if res.AccessKey != testAccessKey || res.Region != testRegion || res.Presigned {
				t.Errorf("got %v, want access key %s region %s, not presigned", res, testAccessKey, testRegion)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// setHeader changes or adds a header on the adapted request.
func setHeader(name, value string) func(*sigv4.Request) {
	return func(r *sigv4.Request) {
		old := r.Header
		r.Header = func(n string) string {
			if strings.EqualFold(n, name) {
				return value
			}
			return old(n)
		}
		r.HeaderNames = append(r.HeaderNames, name)
	}
}

// delHeader removes a header from the adapted request.
func delHeader(name string) func(*sigv4.Request) {
	return func(r *sigv4.Request) {
		old := r.Header
		r.Header = func(n string) string {
			if strings.EqualFold(n, name) {
				return ""
			}
			return old(n)
		}
		var names []string
		for _, n := range r.HeaderNames {
			if !strings.EqualFold(n, name) {
				names = append(names, n)
			}
		}
		r.HeaderNames = names
	}
}

func TestVerifyUnknownAccessKey(t *testing.T) {
	req := newRequest(t, "GET", "/bucket/key", "", nil)
	awsSign(t, req, testSecret, sha256Hex(nil), signTime)
	r, _ := wire(t, req)
	_, err := sigv4.Verify(t.Context(), r, staticCreds{}, signTime)
	if !errors.Is(err, sigv4.ErrUnknownAccessKey) {
		t.Fatalf("got %v, want ErrUnknownAccessKey", err)
	}
}

// TestVerifyHeaderMinio signs with minio-go's SignV4 (which uses the
// current time).
func TestVerifyHeaderMinio(t *testing.T) {
	for _, path := range []string{"/bucket/key", s3Path("/bucket/a b/日本/(x)"), "/bucket/(x)!~*", "/bucket/a/../b"} {
		t.Run(path, func(t *testing.T) {
			body := []byte("minio body")
			req := newRequest(t, "PUT", path, "uploads=&x-id=PutObject", body)
			req.Header.Set("X-Amz-Content-Sha256", sha256Hex(body))
			req.Header.Set("Content-Type", "text/plain")
			req = signer.SignV4(*req, testAccessKey, testSecret, "", "eu-west-3")
			r, wbody := wire(t, req)
			res, err := sigv4.Verify(t.Context(), r, creds, time.Now())
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.Mode != sigv4.PayloadSignedHash || res.Region != "eu-west-3" {
				t.Errorf("got mode %v region %s, want signed hash, eu-west-3", res.Mode, res.Region)
			}
			got, err := io.ReadAll(res.Body(strings.NewReader(string(wbody))))
			if err != nil || string(got) != string(body) {
				t.Errorf("Body: got %q, %v; want %q", got, err, body)
			}
			_, err = io.ReadAll(res.Body(strings.NewReader("minio bodz")))
			if !errors.Is(err, sigv4.ErrContentSHA256Mismatch) {
				t.Errorf("tampered body: got %v, want ErrContentSHA256Mismatch", err)
			}
		})
	}
}

func TestVerifyMalformedAuthorization(t *testing.T) {
	req := newRequest(t, "GET", "/bucket/key", "", nil)
	awsSign(t, req, testSecret, sha256Hex(nil), signTime)
	good := req.Header.Get("Authorization")
	date := signTime.Format("20060102")
	sig := good[strings.LastIndex(good, "=")+1:]
	tests := []struct {
		name, auth string
		wantErr    error
	}{
		{"sigv2", "AWS " + testAccessKey + ":c2lnbmF0dXJl", sigv4.ErrAuthorizationMalformed},
		{"no components", "AWS4-HMAC-SHA256", sigv4.ErrAuthorizationMalformed},
		{"missing signature", "AWS4-HMAC-SHA256 Credential=" + testAccessKey + "/" + date + "/us-east-1/s3/aws4_request, SignedHeaders=host", sigv4.ErrAuthorizationMalformed},
		{"short credential", "AWS4-HMAC-SHA256 Credential=" + testAccessKey + "/" + date + "/s3/aws4_request, SignedHeaders=host, Signature=" + sig, sigv4.ErrAuthorizationMalformed},
		{"wrong service", strings.Replace(good, "/s3/", "/iam/", 1), sigv4.ErrAuthorizationMalformed},
		{"wrong terminator", strings.Replace(good, "aws4_request", "aws5_request", 1), sigv4.ErrAuthorizationMalformed},
		{"scope date differs", strings.Replace(good, "/"+date+"/", "/20200101/", 1), sigv4.ErrAuthorizationMalformed},
		{"host not signed", strings.Replace(good, "SignedHeaders=host;", "SignedHeaders=", 1), sigv4.ErrAuthorizationMalformed},
		{"short signature", good[:len(good)-2], sigv4.ErrAuthorizationMalformed},
		{"repeated component", good + ", Signature=" + sig, sigv4.ErrAuthorizationMalformed},
		{"other region accepted but signature differs", strings.Replace(good, "/us-east-1/", "/eu-west-1/", 1), sigv4.ErrSignatureDoesNotMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := wire(t, req)
			setHeader("Authorization", tt.auth)(r)
			_, err := sigv4.Verify(t.Context(), r, creds, signTime)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyDateHeader(t *testing.T) {
	// The SDKs always send X-Amz-Date; check the Date fallback's refusals.
	req := newRequest(t, "GET", "/bucket/key", "", nil)
	awsSign(t, req, testSecret, sha256Hex(nil), signTime)
	r, _ := wire(t, req)
	delHeader("X-Amz-Date")(r)
	if _, err := sigv4.Verify(t.Context(), r, creds, signTime); !errors.Is(err, sigv4.ErrAccessDenied) {
		t.Fatalf("no date: got %v, want ErrAccessDenied", err)
	}
	setHeader("Date", signTime.Format(http.TimeFormat))(r)
	if _, err := sigv4.Verify(t.Context(), r, creds, signTime); !errors.Is(err, sigv4.ErrAuthorizationMalformed) {
		t.Fatalf("unsigned Date: got %v, want ErrAuthorizationMalformed", err)
	}
}

func TestVerifyPresigned(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		expires int
		now     time.Time
		mutate  func(r *sigv4.Request)
		wantErr error
	}{
		{name: "valid", path: "/bucket/key", expires: 900, now: signTime.Add(time.Minute)},
		{name: "valid unicode path", path: s3Path("/bucket/ä ö/ü+&"), expires: 900, now: signTime},
		{name: "valid at expiry", path: "/bucket/key", expires: 900, now: signTime.Add(900 * time.Second)},
		{name: "expired", path: "/bucket/key", expires: 900, now: signTime.Add(901 * time.Second), wantErr: sigv4.ErrExpiredPresign},
		{name: "valid 7 days", path: "/bucket/key", expires: 604800, now: signTime.Add(6 * 24 * time.Hour)},
		{name: "expires too long", path: "/bucket/key", expires: 604801, now: signTime, wantErr: sigv4.ErrAuthQueryMalformed},
		{name: "expires zero", path: "/bucket/key", expires: 0, now: signTime, wantErr: sigv4.ErrExpiredPresign},
		{name: "expires negative", path: "/bucket/key", expires: -1, now: signTime, wantErr: sigv4.ErrAuthQueryMalformed},
		{name: "expires not a number", path: "/bucket/key", expires: 900, now: signTime, mutate: func(r *sigv4.Request) {
			r.RawQuery = strings.Replace(r.RawQuery, "X-Amz-Expires=900", "X-Amz-Expires=9x", 1)
		}, wantErr: sigv4.ErrAuthQueryMalformed},
		{name: "expires empty", path: "/bucket/key", expires: 900, now: signTime, mutate: func(r *sigv4.Request) {
			r.RawQuery = strings.Replace(r.RawQuery, "X-Amz-Expires=900", "X-Amz-Expires=", 1)
		}, wantErr: sigv4.ErrAuthQueryMalformed},
		{name: "future 14m", path: "/bucket/key", expires: 900, now: signTime.Add(-14 * time.Minute)},
		{name: "future 16m", path: "/bucket/key", expires: 900, now: signTime.Add(-16 * time.Minute), wantErr: sigv4.ErrRequestTimeTooSkewed},
		{name: "tampered path", path: "/bucket/key", expires: 900, now: signTime, mutate: func(r *sigv4.Request) { r.RawPath = "/bucket/other" }, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "tampered expires", path: "/bucket/key", expires: 900, now: signTime, mutate: func(r *sigv4.Request) {
			r.RawQuery = strings.Replace(r.RawQuery, "X-Amz-Expires=900", "X-Amz-Expires=901", 1)
		}, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "added query", path: "/bucket/key", expires: 900, now: signTime, mutate: func(r *sigv4.Request) { r.RawQuery += "&response-content-type=text%2Fhtml" }, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "missing signature", path: "/bucket/key", expires: 900, now: signTime, mutate: func(r *sigv4.Request) {
			r.RawQuery = r.RawQuery[:strings.Index(r.RawQuery, "&X-Amz-Signature")]
		}, wantErr: sigv4.ErrAuthQueryMalformed},
		{name: "with Authorization too", path: "/bucket/key", expires: 900, now: signTime, mutate: setHeader("Authorization", "AWS4-HMAC-SHA256 x"), wantErr: sigv4.ErrAuthorizationMalformed},
		{name: "unsigned x-amz header", path: "/bucket/key", expires: 900, now: signTime, mutate: setHeader("X-Amz-Acl", "public-read"), wantErr: sigv4.ErrAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := awsPresign(t, newRequest(t, "GET", tt.path, "response-content-disposition=attachment", nil), tt.expires, signTime)
			r, _ := wire(t, req)
			if tt.mutate != nil {
				tt.mutate(r)
			}
			res, err := sigv4.Verify(t.Context(), r, creds, tt.now)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify: got %v, want %v", err, tt.wantErr)
			}
			if err == nil && (!res.Presigned || res.Mode != sigv4.PayloadUnsigned) {
				t.Errorf("got %v mode %v, want presigned, unsigned payload", res, res.Mode)
			}
		})
	}
}

func TestVerifyPresignedMinio(t *testing.T) {
	req := newRequest(t, "GET", s3Path("/bucket/a b/c"), "versionId=3", nil)
	req = signer.PreSignV4(*req, testAccessKey, testSecret, "", "us-west-2", 60)
	r, _ := wire(t, req)
	if _, err := sigv4.Verify(t.Context(), r, creds, time.Now()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if _, err := sigv4.Verify(t.Context(), r, creds, time.Now().Add(2*time.Minute)); !errors.Is(err, sigv4.ErrExpiredPresign) {
		t.Fatalf("after expiry: got %v, want ErrExpiredPresign", err)
	}
}

func TestResultRedacts(t *testing.T) {
	req := newRequest(t, "GET", "/bucket/key", "", nil)
	awsSign(t, req, testSecret, sha256Hex(nil), signTime)
	r, _ := wire(t, req)
	res, err := sigv4.Verify(context.Background(), r, creds, signTime)
	if err != nil {
		t.Fatal(err)
	}
	if s := res.String(); strings.Contains(s, testSecret) || !strings.Contains(s, testAccessKey) {
		t.Errorf("String() = %q", s)
	}
}

func BenchmarkVerify(b *testing.B) {
	req := newRequest(b, "PUT", s3Path("/bucket/photos/2026/a b.jpg"), "", []byte("x"))
	req.Header.Set("Content-Type", "image/jpeg")
	req.Header.Set("X-Amz-Meta-Owner", "alice")
	awsSign(b, req, testSecret, "UNSIGNED-PAYLOAD", signTime)
	r, _ := wire(b, req)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sigv4.Verify(ctx, r, creds, signTime); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyPresigned(b *testing.B) {
	req := awsPresign(b, newRequest(b, "GET", s3Path("/bucket/photos/2026/a.jpg"), "", nil), 3600, signTime)
	r, _ := wire(b, req)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sigv4.Verify(ctx, r, creds, signTime); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLongSecret checks the package's HMAC against the SDK's with a
// secret longer than a SHA-256 block, which HMAC hashes before use.
func TestLongSecret(t *testing.T) {
	long := strings.Repeat("s", 100)
	req := newRequest(t, "GET", "/bucket/key", "", nil)
	awsSign(t, req, long, sha256Hex(nil), signTime)
	r, _ := wire(t, req)
	if _, err := sigv4.Verify(t.Context(), r, staticCreds{testAccessKey: long}, signTime); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

type failingCreds struct{ err error }

func (c failingCreds) Secret(context.Context, string) (string, error) { return "", c.err }

func TestVerifyCredentialsError(t *testing.T) {
	req := newRequest(t, "GET", "/bucket/key", "", nil)
	awsSign(t, req, testSecret, sha256Hex(nil), signTime)
	r, _ := wire(t, req)
	backend := errors.New("backend down")
	_, err := sigv4.Verify(t.Context(), r, failingCreds{backend}, signTime)
	if !errors.Is(err, backend) || errors.Is(err, sigv4.ErrSignatureDoesNotMatch) {
		t.Fatalf("got %v, want the backend error", err)
	}
}

// TestVerifyRotatedSecret checks that a signing key cached for one secret
// never verifies a request for another: once a request has verified (its
// key is cached), the same access key with a new secret refuses it, and
// accepts only requests signed with the new secret, and the reverse.
func TestVerifyRotatedSecret(t *testing.T) {
	const newSecret = "rotated/K7MDENG/bPxRfiCYEXAMPLEKEY"
	signed := func(secret string) *sigv4.Request {
		req := newRequest(t, "GET", "/bucket/key", "", nil)
		awsSign(t, req, secret, sha256Hex(nil), signTime)
		r, _ := wire(t, req)
		return r
	}
	old, rotated := signed(testSecret), signed(newSecret)
	for i, tc := range []struct {
		req    *sigv4.Request
		secret string
		ok     bool
	}{
		{old, testSecret, true}, // caches the old secret's key
		{old, newSecret, false},
		{rotated, newSecret, true}, // caches the new one's
		{rotated, testSecret, false},
		{old, testSecret, true},
		{old, newSecret, false},
	} {
		_, err := sigv4.Verify(t.Context(), tc.req, staticCreds{testAccessKey: tc.secret}, signTime)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, sigv4.ErrSignatureDoesNotMatch) {
			t.Errorf("step %d: Verify = %v, want ok %v (else SignatureDoesNotMatch)", i, err, tc.ok)
		}
	}
}
