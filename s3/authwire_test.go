package s3_test

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/vaultaire/vaultaire/s3"
)

// Tests of what the SigV4 layer sees of requests sent over a raw socket:
// repeated and empty headers, presign validation, malformed bodies.

var aliceCreds = aws.Credentials{AccessKeyID: "ALICEKEY", SecretAccessKey: "alicesecret"}

// wireRequest is a request as written on the socket: header lines in
// order (repeats allowed) and a body already framed as the headers say.
type wireRequest struct {
	method, target, host string
	header               [][2]string
	body                 string
}

// bytes returns the request's wire form.
func (w wireRequest) bytes() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", w.method, w.target, w.host)
	for _, h := range w.header {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n")
	b.WriteString(w.body)
	return b.String()
}

// headerLines returns the headers of h as wire lines, sorted by name,
// each value on its own line.
func headerLines(h http.Header) [][2]string {
	var out [][2]string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range h {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, v := range h[k] {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

// sdkSigned signs method endpoint+path with the AWS SDK's SigV4 header
// signer (all of hdr's values signed, repeated values joined as the SDK
// does) and returns its wire form without a body or framing headers.
func sdkSigned(t *testing.T, endpoint, method, path, payloadHash string, hdr http.Header) wireRequest {
	t.Helper()
	req, err := http.NewRequest(method, endpoint+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = slices.Clone(vs)
	}
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	if err := v4.NewSigner().SignHTTP(t.Context(), aliceCreds, req, payloadHash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return wireRequest{method: method, target: req.URL.RequestURI(), host: req.URL.Host, header: headerLines(req.Header)}
}

// sdkPresigned presigns method endpoint+path with the AWS SDK, signing the
// headers in hdr, with the given X-Amz-Expires, dated at.
func sdkPresigned(t *testing.T, endpoint, method, path string, hdr http.Header, expires string, at time.Time) wireRequest {
	t.Helper()
	req, err := http.NewRequest(method, endpoint+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = slices.Clone(vs)
	}
	q := req.URL.Query()
	q.Set("X-Amz-Expires", expires)
	req.URL.RawQuery = q.Encode()
	signed, sh, err := v4.NewSigner().PresignHTTP(t.Context(), aliceCreds, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", at)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	sh.Del("Host")
	return wireRequest{method: method, target: u.RequestURI(), host: u.Host, header: headerLines(sh)}
}

// roundTrip sends raw on a new connection and returns the status and body
// of the answer.
func roundTrip(t *testing.T, endpoint, raw string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Write concurrently: the server may answer before reading the body.
	go io.WriteString(conn, raw)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: strings.Fields(raw)[0]})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return resp.StatusCode, string(body)
}

// withBody appends framing and body to w: Content-Length framing.
func (w wireRequest) withBody(body string, extra ...[2]string) wireRequest {
	w.header = append(slices.Clone(w.header), extra...)
	w.header = append(w.header, [2]string{"Content-Length", fmt.Sprint(len(body))})
	w.body = body
	return w
}

func createBucket(t *testing.T, e *env, name string) *awss3.Client {
	t.Helper()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	return c
}

// headMeta returns the metadata of bucket/key, or nil if it is absent.
func headMeta(t *testing.T, c *awss3.Client, bucket, key string) map[string]string {
	t.Helper()
	out, err := c.HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if apiCode(err) == "NotFound" {
			return nil
		}
		t.Fatalf("head %s/%s: %v", bucket, key, err)
	}
	if out.Metadata == nil {
		return map[string]string{}
	}
	return out.Metadata
}

// TestRepeatedSignedHeader sends a signed x-amz-meta header twice. The
// signature covers all values joined with commas, as SigV4 specifies, and
// the object stores that joined value; a value added to a signed header is
// refused, never stored.
func TestRepeatedSignedHeader(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "dup")
	alice := http.Header{"X-Amz-Meta-Owner": {"alice"}}
	both := http.Header{"X-Amz-Meta-Owner": {"alice", "mallory"}}
	for _, tc := range []struct {
		name   string
		req    wireRequest
		extra  [][2]string // header lines added after signing
		status int
		code   string
		stored string // x-amz-meta-owner afterwards, "" for no object
	}{
		{"header-signed alice, mallory added", sdkSigned(t, e.endpoint, "PUT", "/dup/h1", "UNSIGNED-PAYLOAD", alice),
			[][2]string{{"X-Amz-Meta-Owner", "mallory"}}, 403, "SignatureDoesNotMatch", ""},
		{"header-signed alice, mallory added first", sdkSigned(t, e.endpoint, "PUT", "/dup/h2", "UNSIGNED-PAYLOAD", alice),
			nil, 403, "SignatureDoesNotMatch", ""},
		{"header-signed both", sdkSigned(t, e.endpoint, "PUT", "/dup/h3", "UNSIGNED-PAYLOAD", both),
			nil, 200, "", "alice,mallory"},
		{"presigned alice, mallory added", sdkPresigned(t, e.endpoint, "PUT", "/dup/p1", alice, "300", time.Now()),
			[][2]string{{"X-Amz-Meta-Owner", "mallory"}}, 403, "SignatureDoesNotMatch", ""},
		{"presigned both", sdkPresigned(t, e.endpoint, "PUT", "/dup/p2", both, "300", time.Now()),
			nil, 200, "", "alice,mallory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			if strings.HasSuffix(tc.name, "added first") {
				req.header = append([][2]string{{"x-amz-meta-owner", "mallory"}}, req.header...)
			}
			req = req.withBody("payload", tc.extra...)
			status, body := roundTrip(t, e.endpoint, req.bytes())
			if status != tc.status || tc.code != "" && !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.code)
			}
			key := strings.TrimPrefix(strings.SplitN(req.target, "?", 2)[0], "/dup/")
			meta := headMeta(t, c, "dup", key)
			if tc.stored == "" {
				if meta != nil {
					t.Fatalf("refused PUT stored an object with metadata %v", meta)
				}
				return
			}
			if got := meta["owner"]; got != tc.stored {
				t.Fatalf("stored x-amz-meta-owner %q, want %q (metadata %v)", got, tc.stored, meta)
			}
		})
	}
}

// TestEmptyContentTypeSigned signs a PUT carrying "Content-Type:" with an
// empty value: the header is part of the canonical request (content-type:
// with nothing after the colon), as AWS accepts.
func TestEmptyContentTypeSigned(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "ctype")
	const data = "empty content type"
	sum := sha256.Sum256([]byte(data))
	hash := hex.EncodeToString(sum[:])

	// net/http with the SDK signer.
	req, err := http.NewRequestWithContext(t.Context(), "PUT", e.endpoint+"/ctype/nethttp", strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header["Content-Type"] = []string{""}
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := v4.NewSigner().SignHTTP(t.Context(), aliceCreds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if auth := req.Header.Get("Authorization"); !strings.Contains(auth, "content-type") {
		t.Fatalf("the signer did not sign Content-Type: %s", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("net/http PUT with empty Content-Type: %d %s", resp.StatusCode, body)
	}

	// The same over a raw socket, with and without a space after the colon.
	w := sdkSigned(t, e.endpoint, "PUT", "/ctype/raw", hash, http.Header{"Content-Type": {""}})
	for i, h := range w.header {
		if h[0] == "Content-Type" {
			w.header[i][1] = ""
		}
	}
	raw := strings.Replace(w.withBody(data).bytes(), "Content-Type: \r\n", "Content-Type:\r\n", 1)
	if !strings.Contains(raw, "Content-Type:\r\n") {
		t.Fatalf("request has no empty Content-Type line:\n%s", raw)
	}
	if status, body := roundTrip(t, e.endpoint, raw); status != 200 {
		t.Fatalf("raw PUT with empty Content-Type: %d %s", status, body)
	}

	for _, key := range []string{"nethttp", "raw"} {
		out, err := c.GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String("ctype"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || string(got) != data {
			t.Fatalf("get %s: %q, %v; want %q", key, got, err, data)
		}
	}
}

// TestPresignExpiresValidation checks the answers to presigned URLs by
// their X-Amz-Expires, as AWS gives them.
func TestPresignExpiresValidation(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "exp")
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("exp"), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name    string
		expires string
		at      time.Time
		status  int
		code    string
	}{
		{"valid", "300", now, 200, ""},
		{"zero", "0", now, 403, "AccessDenied"},
		{"expired", "60", now.Add(-time.Hour), 403, "AccessDenied"},
		{"over a week", "604801", now, 400, "AuthorizationQueryParametersError"},
		{"not a number", "soon", now, 400, "AuthorizationQueryParametersError"},
		{"negative", "-1", now, 400, "AuthorizationQueryParametersError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := sdkPresigned(t, e.endpoint, "GET", "/exp/k", nil, tc.expires, tc.at)
			status, body := roundTrip(t, e.endpoint, w.bytes())
			if status != tc.status || tc.code != "" && !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
				t.Fatalf("X-Amz-Expires=%s: %d %s, want %d %s", tc.expires, status, body, tc.status, tc.code)
			}
			if status == 200 && body != "v" {
				t.Fatalf("body %q, want %q", body, "v")
			}
		})
	}
}

// malformedBody is a request with a malformed body, for
// TestMalformedBodies and the fuzz corpus replay.
type malformedBody struct {
	name   string
	raw    string
	status int
	code   string
}

// malformedBodies returns PUTs of bucket/key (and a part of its multipart
// upload uploadID, and a DeleteObjects) whose bodies are broken in their
// HTTP chunked framing, their aws-chunked framing, or both.
func malformedBodies(t *testing.T, endpoint, bucket, key, uploadID string) []malformedBody {
	t.Helper()
	path := "/" + bucket + "/" + key
	sig := "chunk-signature=" + strings.Repeat("0", 64)
	httpChunked := func(method, target, payloadHash, body string) string {
		var h http.Header
		if method == "POST" {
			// DeleteObjects needs a digest header before its body is read.
			h = http.Header{"Content-Md5": {"1B2M2Y8AsgTpgAmY7PhCfg=="}}
		}
		w := sdkSigned(t, endpoint, method, target, payloadHash, h)
		w.header = append(w.header, [2]string{"Transfer-Encoding", "chunked"})
		w.body = body
		return w.bytes()
	}
	awsChunked := func(mode, body string, te bool) string {
		w := sdkSigned(t, endpoint, "PUT", path, mode, http.Header{"X-Amz-Decoded-Content-Length": {"3"}, "Content-Encoding": {"aws-chunked"}})
		if te {
			w.header = append(w.header, [2]string{"Transfer-Encoding", "chunked"})
			w.body = body
			return w.bytes()
		}
		return w.withBody(body).bytes()
	}
	const (
		unsigned = "UNSIGNED-PAYLOAD"
		ut       = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
		ss       = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	)
	sum := sha256.Sum256([]byte("abc"))
	abcHash := hex.EncodeToString(sum[:])
	return []malformedBody{
		{"http: bad hex size", httpChunked("PUT", path, unsigned, "zz\r\nabc\r\n0\r\n\r\n"), 400, "IncompleteBody"},
		{"http: negative size", httpChunked("PUT", path, unsigned, "-3\r\nabc\r\n0\r\n\r\n"), 400, "IncompleteBody"},
		{"http: missing CRLF", httpChunked("PUT", path, unsigned, "3\r\nabcXX0\r\n\r\n"), 400, "IncompleteBody"},
		{"http: size overflows", httpChunked("PUT", path, unsigned, "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), 400, "IncompleteBody"},
		{"http: size larger than body", httpChunked("PUT", path, unsigned, "7fffffffffffffff\r\nabc\r\n0\r\n\r\n"), 400, "IncompleteBody"},
		{"http: bad trailer", httpChunked("PUT", path, unsigned, "3\r\nabc\r\n0\r\nbad trailer\r\n\r\n"), 400, "IncompleteBody"},
		{"http: signed payload, bad framing", httpChunked("PUT", path, abcHash, "3\r\nabcXX0\r\n\r\n"), 400, "IncompleteBody"},
		{"http: upload part", httpChunked("PUT", path+"?partNumber=1&uploadId="+uploadID, unsigned, "zz\r\n"), 400, "IncompleteBody"},
		{"http: delete objects", httpChunked("POST", "/"+bucket+"?delete", unsigned, "zz\r\n"), 400, "IncompleteBody"},
		{"aws: bad hex size", awsChunked(ut, "zz\r\nabc\r\n0\r\n\r\n", false), 400, "IncompleteBody"},
		{"aws: missing CRLF", awsChunked(ut, "3\r\nabcXX0\r\n\r\n", false), 400, "IncompleteBody"},
		{"aws: chunk header too long", awsChunked(ut, strings.Repeat("3", 5000), false), 400, "IncompleteBody"},
		{"aws: bad trailer line", awsChunked(ut, "3\r\nabc\r\n0\r\nbad\r\n\r\n", false), 400, "IncompleteBody"},
		{"aws: shorter than decoded length", awsChunked(ut, "2\r\nab\r\n0\r\n\r\n", false), 400, "IncompleteBody"},
		{"aws: truncated", awsChunked(ut, "3\r\nab", false), 400, "IncompleteBody"},
		{"aws: missing chunk signature", awsChunked(ss, "3\r\nabc\r\n0\r\n\r\n", false), 400, "IncompleteBody"},
		{"aws: bad chunk signature", awsChunked(ss, "3;"+sig+"\r\nabc\r\n0;"+sig+"\r\n\r\n", false), 403, "SignatureDoesNotMatch"},
		{"aws in http: bad aws framing", awsChunked(ut, "5\r\nzz\r\na\r\n0\r\n\r\n", true), 400, "IncompleteBody"},
		{"aws in http: bad http framing", awsChunked(ut, "5\r\n3\r\nabcXX\r\n0\r\n\r\n", true), 400, "IncompleteBody"},
	}
}

// TestMalformedBodies sends PUTs with broken HTTP chunked and aws-chunked
// bodies over a raw socket: each is a client error, never a 500, and
// stores nothing.
func TestMalformedBodies(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "mal")
	up, err := c.CreateMultipartUpload(t.Context(), &awss3.CreateMultipartUploadInput{Bucket: aws.String("mal"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range malformedBodies(t, e.endpoint, "mal", "k", *up.UploadId) {
		t.Run(tc.name, func(t *testing.T) {
			status, body := roundTrip(t, e.endpoint, tc.raw)
			if status != tc.status || !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.code)
			}
			if meta := headMeta(t, c, "mal", "k"); meta != nil {
				t.Fatalf("a malformed body stored an object")
			}
		})
	}
	parts, err := c.ListParts(t.Context(), &awss3.ListPartsInput{Bucket: aws.String("mal"), Key: aws.String("k"), UploadId: up.UploadId})
	if err != nil {
		t.Fatal(err)
	}
	if len(parts.Parts) != 0 {
		t.Fatalf("a malformed body stored %d parts", len(parts.Parts))
	}
}

// fuzzCorpus reads the entries of a go fuzz corpus directory of s3/sigv4:
// each entry's values, as their Go literals decode.
func fuzzCorpus(t *testing.T, target string) map[string][]any {
	t.Helper()
	dir := filepath.Join("sigv4", "testdata", "fuzz", target)
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]any{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) == 0 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a fuzz corpus entry", f.Name())
		}
		var vals []any
		for _, l := range lines[1:] {
			typ, lit, ok := strings.Cut(strings.TrimSuffix(l, ")"), "(")
			if !ok {
				t.Fatalf("%s: bad line %q", f.Name(), l)
			}
			switch typ {
			case "uint8":
				n, err := strconv.ParseUint(lit, 0, 8)
				if err != nil {
					t.Fatalf("%s: %v", f.Name(), err)
				}
				vals = append(vals, uint8(n))
			case "string", "[]byte":
				s, err := strconv.Unquote(lit)
				if err != nil {
					t.Fatalf("%s: %v", f.Name(), err)
				}
				vals = append(vals, s)
			default:
				t.Fatalf("%s: unsupported type %s", f.Name(), typ)
			}
		}
		out[f.Name()] = vals
	}
	if len(out) == 0 {
		t.Fatalf("empty corpus %s", dir)
	}
	return out
}

// roundTripHalfClose is roundTrip that closes the sending side after the
// request, so that a server waiting for more body sees its end.
func roundTripHalfClose(t *testing.T, endpoint, raw string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		io.WriteString(conn, raw) // the server may answer and close first
		conn.(*net.TCPConn).CloseWrite()
	}()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: strings.Fields(raw)[0]})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// escapeTarget percent-encodes what may not appear in a request target.
func escapeTarget(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '#' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// TestFuzzCorpusNo5xx replays the fuzz corpora of s3/sigv4 against a
// server: malformed aws-chunked bodies (in each payload mode, and as HTTP
// chunked bodies), Authorization headers and presigned queries. No answer
// may be a server error, and nothing is stored.
func TestFuzzCorpusNo5xx(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "fuzz")
	check := func(t *testing.T, what string, status int, body string) {
		t.Helper()
		if status >= 500 || status < 400 {
			t.Errorf("%s: %d %.300s, want a 4xx", what, status, body)
		}
	}
	modes := []struct {
		content string
		decoded int
		trailer bool
	}{
		{"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 0, false}, {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 100, false},
		{"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 65537, false}, {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", 100, true},
		{"STREAMING-UNSIGNED-PAYLOAD-TRAILER", 0, true}, {"STREAMING-UNSIGNED-PAYLOAD-TRAILER", 100, true},
	}
	for name, vals := range fuzzCorpus(t, "FuzzBodyChunked") {
		m := modes[int(vals[0].(uint8))%len(modes)]
		enc := vals[1].(string)
		hdr := http.Header{"X-Amz-Decoded-Content-Length": {fmt.Sprint(m.decoded)}, "Content-Encoding": {"aws-chunked"}}
		if m.trailer {
			hdr.Set("X-Amz-Trailer", "x-amz-checksum-crc32c")
		}
		w := sdkSigned(t, e.endpoint, "PUT", "/fuzz/k", m.content, hdr).withBody(enc)
		status, body := roundTripHalfClose(t, e.endpoint, w.bytes())
		check(t, name+" as aws-chunked", status, body)
		w = sdkSigned(t, e.endpoint, "PUT", "/fuzz/k", "UNSIGNED-PAYLOAD", nil)
		w.header = append(w.header, [2]string{"Transfer-Encoding", "chunked"})
		w.body = enc
		status, body = roundTripHalfClose(t, e.endpoint, w.bytes())
		// A body that happens to be well-formed HTTP chunking is stored.
		if status != 200 {
			check(t, name+" as HTTP chunked", status, body)
		}
		if _, err := c.DeleteObject(t.Context(), &awss3.DeleteObjectInput{Bucket: aws.String("fuzz"), Key: aws.String("k")}); err != nil {
			t.Fatalf("%s: delete k: %v", name, err)
		}
	}
	oneLine := strings.NewReplacer("\r", " ", "\n", " ")
	for name, vals := range fuzzCorpus(t, "FuzzVerifyHeader") {
		w := wireRequest{method: "GET", target: "/fuzz/k", host: strings.TrimPrefix(e.endpoint, "http://")}
		for i, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Content-Sha256"} {
			if v := vals[i].(string); v != "" {
				w.header = append(w.header, [2]string{h, oneLine.Replace(v)})
			}
		}
		status, body := roundTripHalfClose(t, e.endpoint, w.bytes())
		check(t, name, status, body)
	}
	for name, vals := range fuzzCorpus(t, "FuzzVerifyPresigned") {
		for _, method := range []string{"GET", "PUT"} {
			w := wireRequest{method: method, target: "/fuzz/k?" + escapeTarget(vals[0].(string)), host: strings.TrimPrefix(e.endpoint, "http://")}
			status, body := roundTripHalfClose(t, e.endpoint, w.withBody("data").bytes())
			check(t, name+" "+method, status, body)
		}
	}
	if meta := headMeta(t, c, "fuzz", "k"); meta != nil {
		t.Fatalf("the corpus stored an object")
	}
}

// presignV2 returns the query of a Signature Version 2 presigned GET
// (as the aws cli v1 `s3 presign` makes) signing resource, expiring at
// expires, with alice's access key and secret.
func presignV2(resource, secret string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte("GET\n\n\n" + exp + "\n" + resource))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return "AWSAccessKeyId=ALICEKEY&Expires=" + exp + "&Signature=" + url.QueryEscape(sig)
}

// TestPresignV2 reads objects through Signature Version 2 presigned URLs.
// V2 signs the resource /bucket/key, so in virtual-host style (bucket in
// the Host header, which V2 does not sign) a URL shared for one bucket
// must not read the same key of another bucket of the tenant: the server
// verifies the signature over the bucket it serves, never over the path
// alone.
func TestPresignV2(t *testing.T) {
	e := startServerWith(t, func(c *s3.Config) { c.Domain = "s3.test" })
	c := createBucket(t, e, "public")
	if _, err := c.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String("private")}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"public", "private"} {
		if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("report.pdf"), Body: strings.NewReader(b + " contents")}); err != nil {
			t.Fatal(err)
		}
	}
	pathHost := strings.TrimPrefix(e.endpoint, "http://")
	hour := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name, host, path, query string
		status                  int
		want                    string // body, or the S3 error code
	}{
		{"path style", pathHost, "/public/report.pdf", presignV2("/public/report.pdf", "alicesecret", hour), 200, "public contents"},
		{"virtual host", "public.s3.test", "/report.pdf", presignV2("/public/report.pdf", "alicesecret", hour), 200, "public contents"},
		{"virtual host, other bucket", "private.s3.test", "/report.pdf", presignV2("/public/report.pdf", "alicesecret", hour), 403, "SignatureDoesNotMatch"},
		{"virtual host, path alone signed", "public.s3.test", "/report.pdf", presignV2("/report.pdf", "alicesecret", hour), 403, "SignatureDoesNotMatch"},
		{"path style, other bucket", pathHost, "/private/report.pdf", presignV2("/public/report.pdf", "alicesecret", hour), 403, "SignatureDoesNotMatch"},
		{"wrong secret", pathHost, "/public/report.pdf", presignV2("/public/report.pdf", "bobsecret", hour), 403, "SignatureDoesNotMatch"},
		{"expired", pathHost, "/public/report.pdf", presignV2("/public/report.pdf", "alicesecret", time.Now().Add(-time.Minute)), 403, "AccessDenied"},
		{"beyond seven days", pathHost, "/public/report.pdf", presignV2("/public/report.pdf", "alicesecret", time.Now().Add(8*24*time.Hour)), 400, "AuthorizationQueryParametersError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := wireRequest{method: "GET", target: tc.path + "?" + tc.query, host: tc.host}
			status, body := roundTrip(t, e.endpoint, w.bytes())
			if status != tc.status {
				t.Fatalf("status %d %s, want %d", status, body, tc.status)
			}
			if status == 200 && body != tc.want || status != 200 && !strings.Contains(body, "<Code>"+tc.want+"</Code>") {
				t.Fatalf("body %q, want %q", body, tc.want)
			}
		})
	}
}
