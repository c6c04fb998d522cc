package sigv4_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

const (
	testAccessKey = "AKIAVAULTAIRETEST"
	testSecret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testRegion    = "us-east-1"
)

// staticCreds is a fixed set of access keys.
type staticCreds map[string]string

func (c staticCreds) Secret(_ context.Context, accessKey string) (string, error) {
	s, ok := c[accessKey]
	if !ok {
		return "", sigv4.ErrUnknownAccessKey
	}
	return s, nil
}

var creds = staticCreds{testAccessKey: testSecret}

// wire sends req through its HTTP/1.1 wire form and back, as a server sees
// it, and adapts the result to a sigv4.Request. It returns the body bytes as
// received (still aws-chunked when the client used it).
func wire(t testing.TB, req *http.Request) (*sigv4.Request, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		t.Fatalf("write request: %v", err)
	}
	got, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatalf("read request: %v", err)
	}
	body, err := io.ReadAll(got.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return adapt(got), body
}

// adapt turns a server-side *http.Request into a sigv4.Request, the way
// the S3 front end adapts its own request type.
func adapt(r *http.Request) *sigv4.Request {
	rawPath, rawQuery, _ := strings.Cut(r.RequestURI, "?")
	h := r.Header.Clone()
	if r.ContentLength > 0 && h.Get("Content-Length") == "" {
		h.Set("Content-Length", fmt.Sprint(r.ContentLength))
	}
	names := []string{"host"}
	for k := range h {
		names = append(names, k)
	}
	return &sigv4.Request{
		Method:   r.Method,
		RawPath:  rawPath,
		RawQuery: rawQuery,
		Host:     r.Host,
		Header: func(name string) string {
			if strings.EqualFold(name, "host") {
				return r.Host
			}
			vs := h.Values(name)
			for i := range vs {
				vs[i] = strings.TrimSpace(vs[i])
			}
			return strings.Join(vs, ",")
		},
		HeaderNames: names,
	}
}

// s3Path encodes key segments the way S3 SDKs do: everything but
// unreserved characters and '/'.
func s3Path(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		c := path[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// newRequest builds a client request for http://host + rawPath (already
// encoded) + ?rawQuery.
func newRequest(t testing.TB, method, rawPath, rawQuery string, body []byte) *http.Request {
	t.Helper()
	u, err := url.Parse("http://s3.example.test:9000" + rawPath)
	if err != nil {
		t.Fatalf("parse %q: %v", rawPath, err)
	}
	u.RawQuery = rawQuery
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	return req
}

func awsCreds(secret string) aws.Credentials {
	return aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: secret}
}

func awsSigner() *v4.Signer {
	return v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
}

// awsSign signs req with the AWS SDK v2 header signer, setting
// X-Amz-Content-Sha256 to payloadHash as the S3 client does.
func awsSign(t testing.TB, req *http.Request, secret, payloadHash string, at time.Time) {
	t.Helper()
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	if err := awsSigner().SignHTTP(context.Background(), awsCreds(secret), req, payloadHash, "s3", testRegion, at); err != nil {
		t.Fatalf("sign: %v", err)
	}
}

// awsPresign presigns req with the AWS SDK v2 and returns the request a
// client would send with the URL.
func awsPresign(t testing.TB, req *http.Request, expires int, at time.Time) *http.Request {
	t.Helper()
	q := req.URL.Query()
	q.Set("X-Amz-Expires", fmt.Sprint(expires))
	req.URL.RawQuery = q.Encode()
	signed, hdr, err := awsSigner().PresignHTTP(context.Background(), awsCreds(testSecret), req, "UNSIGNED-PAYLOAD", "s3", testRegion, at)
	if err != nil {
		t.Fatalf("presign: %v", err)
	}
	out, err := http.NewRequest(req.Method, signed, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if !strings.EqualFold(k, "host") {
			out.Header[k] = v
		}
	}
	return out
}
