package sigv4_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// sentinels are the errors every error of the package wraps.
var sentinels = []error{
	sigv4.ErrAccessDenied, sigv4.ErrSignatureDoesNotMatch, sigv4.ErrUnknownAccessKey,
	sigv4.ErrRequestTimeTooSkewed, sigv4.ErrExpiredPresign, sigv4.ErrAuthorizationMalformed,
	sigv4.ErrAuthQueryMalformed, sigv4.ErrInvalidContentSHA256, sigv4.ErrContentSHA256Mismatch,
	sigv4.ErrMalformedChunk, sigv4.ErrBadDigest, sigv4.ErrUnsupportedChecksum, sigv4.ErrIncompleteBody,
}

// checkSentinel fails t unless err wraps one of the package's sentinels and
// does not reveal the secret.
func checkSentinel(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	found := false
	for _, s := range sentinels {
		found = found || errors.Is(err, s)
	}
	if !found {
		t.Fatalf("error %q wraps none of the sentinels", err)
	}
	if strings.Contains(err.Error(), testSecret) {
		t.Fatalf("error %q contains the secret", err)
	}
}

// requestFromHeaderList adapts a client request to a sigv4.Request through
// a HeaderList built from hl, the header lines as the server receives them.
func requestFromHeaderList(req *http.Request, hl *sigv4.HeaderList) *sigv4.Request {
	return &sigv4.Request{Method: req.Method, RawPath: req.URL.EscapedPath(), RawQuery: req.URL.RawQuery,
		Host: req.URL.Host, Header: hl.Get, HeaderNames: hl.Names()}
}

// signatureOf returns the lowercase Signature= value of an Authorization
// header or the X-Amz-Signature of a query.
func signatureOf(s string) string {
	if i := strings.LastIndex(s, "Signature="); i >= 0 {
		s = s[i+len("Signature="):]
	}
	if i := strings.IndexAny(s, "&, "); i >= 0 {
		s = s[:i]
	}
	return strings.ToLower(s)
}

// FuzzVerifyHeader verifies a signed request whose Authorization,
// X-Amz-Date and X-Amz-Content-Sha256 headers are replaced by the fuzzer.
// Verify must not panic, must fail with one of the sentinels, and can only
// succeed with the signature that was computed for the request.
func FuzzVerifyHeader(f *testing.F) {
	req := newRequest(f, "PUT", "/bucket/key", "", nil)
	req.Header.Set("X-Amz-Meta-Color", "blue")
	awsSign(f, req, testSecret, sha256Hex(nil), signTime)
	good := req.Header.Get("Authorization")
	goodSig := signatureOf(good)
	date, hash := req.Header.Get("X-Amz-Date"), req.Header.Get("X-Amz-Content-Sha256")
	f.Add(good, date, hash)
	day := signTime.Format("20060102")
	for _, auth := range []string{
		"", "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 ", "AWS " + testAccessKey + ":c2lnbmF0dXJl",
		"AWS4-HMAC-SHA256 Credential=" + testAccessKey + "/" + day + "/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + goodSig,
		"AWS4-HMAC-SHA256 Credential=/" + day + "///, SignedHeaders=;;, Signature=",
		"AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f/g, SignedHeaders=host;host, Signature=" + strings.Repeat("g", 64),
		strings.Replace(good, "SignedHeaders=", "SignedHeaders=content-type;", 1),
		strings.Replace(good, "x-amz-meta-color;", "", 1),
		strings.ToUpper(good), good + ",", good + ", Foo=bar", strings.ReplaceAll(good, ", ", ","),
	} {
		f.Add(auth, date, hash)
	}
	f.Add(good, "", hash)
	f.Add(good, "20261122T123000", hash)
	f.Add(good, date, "")
	f.Add(good, date, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
	f.Add(good, date, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
	f.Add(good, date, strings.ToUpper(hash))
	f.Fuzz(func(t *testing.T, auth, amzDate, contentSHA string) {
		hl := &sigv4.HeaderList{}
		hl.Add("Host", req.URL.Host)
		for k, vs := range req.Header {
			v := vs[0]
			switch http.CanonicalHeaderKey(k) {
			case "Authorization":
				v = auth
			case "X-Amz-Date":
				v = amzDate
			case "X-Amz-Content-Sha256":
				v = contentSHA
			}
			if v != "" {
				hl.Add(k, v)
			}
		}
		res, err := sigv4.Verify(t.Context(), requestFromHeaderList(req, hl), creds, signTime)
		checkSentinel(t, err)
		if err == nil && signatureOf(auth) != goodSig {
			t.Fatalf("verified with Authorization %q, signature %q, want %q", auth, signatureOf(auth), goodSig)
		}
		if err == nil && res.AccessKey != testAccessKey {
			t.Fatalf("verified access key %q", res.AccessKey)
		}
	})
}

// FuzzVerifyPresigned verifies a presigned request whose query the fuzzer
// replaces. Verify must not panic, must fail with one of the sentinels,
// and can only succeed with the signature computed for the request.
func FuzzVerifyPresigned(f *testing.F) {
	req := awsPresign(f, newRequest(f, "GET", "/bucket/key", "versionId=1", nil), 900, signTime)
	q := req.URL.RawQuery
	goodSig := signatureOf(q)
	f.Add(q)
	for _, mut := range []string{
		"", "X-Amz-Algorithm=AWS4-HMAC-SHA256", strings.Replace(q, "X-Amz-Expires=900", "X-Amz-Expires=0", 1),
		strings.Replace(q, "X-Amz-Expires=900", "X-Amz-Expires=-1", 1), strings.Replace(q, "X-Amz-Expires=900", "X-Amz-Expires=", 1),
		strings.Replace(q, "X-Amz-Expires=900", "X-Amz-Expires=99999999999999999999", 1),
		strings.Replace(q, "X-Amz-Date=", "X-Amz-Date=x", 1), strings.Replace(q, "X-Amz-Credential=", "X-Amz-Credential=%2F", 1),
		strings.Replace(q, "X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=", 1),
		q + "&X-Amz-Signature=" + goodSig, q + "&%", q + "&a=%zz", q + "&X-Amz-Content-Sha256=" + sha256Hex(nil),
		q + "&X-Amz-Content-Sha256=STREAMING-AWS4-HMAC-SHA256-PAYLOAD", strings.ReplaceAll(q, "&", "&&"),
	} {
		f.Add(mut)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := &sigv4.Request{Method: "GET", RawPath: "/bucket/key", RawQuery: rawQuery, Host: req.URL.Host,
			Header: func(string) string { return "" }}
		res, err := sigv4.Verify(t.Context(), r, creds, signTime.Add(time.Minute))
		checkSentinel(t, err)
		if err == nil && (signatureOf(rawQuery) != goodSig || !res.Presigned) {
			t.Fatalf("verified query %q", rawQuery)
		}
	})
}

// FuzzCanonicalRequest signs requests with fuzzed method, path, query and
// header values with the AWS SDK signer: Verify must accept every one of
// them (both build the same canonical request), and refuse it once a
// value is added to the signed header.
func FuzzCanonicalRequest(f *testing.F) {
	f.Add(uint8(0), "/bucket/key", "prefix", "a b", "blue  and green ")
	f.Add(uint8(1), "/bucket/日本語/ключ", "list-type", "2", "")
	f.Add(uint8(2), "/bucket/a(b)!*'+,;=:@$&%2F", "x", "/~-_.", "\t a\t b \t")
	f.Add(uint8(3), "/bucket//a/../b/./", "", "", "x")
	f.Add(uint8(4), "/", "uploads", "", "%41")
	f.Fuzz(func(t *testing.T, m uint8, path, qk, qv, hval string) {
		method := [...]string{"GET", "PUT", "POST", "DELETE", "HEAD"}[int(m)%5]
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		// Header values are printable ASCII, spaces and tabs here: the SDK
		// also trims Unicode spaces, which HTTP does not know.
		for i := 0; i < len(hval); i++ {
			if c := hval[i]; c != '\t' && (c < ' ' || c > '~') {
				t.Skip()
			}
		}
		query := ""
		if qk != "" {
			query = url.Values{qk: {qv}}.Encode()
		}
		req := newRequest(t, method, s3Path(path), query, nil)
		req.Header.Set("X-Amz-Meta-Fuzz", hval)
		awsSign(t, req, testSecret, sha256Hex(nil), signTime)
		hl := headerList(req)
		if _, err := sigv4.Verify(t.Context(), requestFromHeaderList(req, hl), creds, signTime); err != nil {
			t.Fatalf("Verify of an SDK-signed %s %q ?%q meta %q: %v", method, req.URL.EscapedPath(), query, hval, err)
		}
		hl.Add("x-amz-meta-fuzz", "mallory")
		_, err := sigv4.Verify(t.Context(), requestFromHeaderList(req, hl), creds, signTime)
		if !errors.Is(err, sigv4.ErrSignatureDoesNotMatch) {
			t.Fatalf("a value added to a signed header: got %v, want ErrSignatureDoesNotMatch", err)
		}
	})
}

// chunkEncoder writes aws-chunked bodies the way the AWS documentation
// specifies them, independently of the decoder: an oracle for round trips.
type chunkEncoder struct {
	key     []byte // signing key
	date    string // X-Amz-Date
	scope   string
	prevSig string // hex
}

func hmacSum(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func newChunkEncoder(req *http.Request) *chunkEncoder {
	date := req.Header.Get("X-Amz-Date")
	k := hmacSum([]byte("AWS4"+testSecret), date[:8])
	k = hmacSum(k, testRegion)
	k = hmacSum(k, "s3")
	k = hmacSum(k, "aws4_request")
	return &chunkEncoder{key: k, date: date, scope: date[:8] + "/" + testRegion + "/s3/aws4_request",
		prevSig: signatureOf(req.Header.Get("Authorization"))}
}

func (e *chunkEncoder) sign(alg, extra string, sum []byte) string {
	sts := alg + "\n" + e.date + "\n" + e.scope + "\n" + e.prevSig + "\n"
	if extra != "" {
		sts += extra + "\n"
	}
	e.prevSig = hex.EncodeToString(hmacSum(e.key, sts+hex.EncodeToString(sum)))
	return e.prevSig
}

// encode frames data in chunks of the given sizes (cycled; the last chunk
// takes the rest), signed when e is not nil, with trailer lines if any.
func (e *chunkEncoder) encode(data []byte, sizes []int, trailer []string) []byte {
	var b bytes.Buffer
	emit := func(chunk []byte) {
		fmt.Fprintf(&b, "%x", len(chunk))
		if e != nil {
			sum := sha256.Sum256(chunk)
			fmt.Fprintf(&b, ";chunk-signature=%s", e.sign("AWS4-HMAC-SHA256-PAYLOAD", emptySHA256Hex, sum[:]))
		}
		b.WriteString("\r\n")
		b.Write(chunk)
		if len(chunk) > 0 || trailer == nil {
			b.WriteString("\r\n")
		}
	}
	for i := 0; len(data) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(data))
		emit(data[:n])
		data = data[n:]
	}
	emit(nil)
	if trailer == nil {
		return b.Bytes()
	}
	var canon string
	for _, l := range trailer {
		b.WriteString(l + "\r\n")
		canon += l + "\n"
	}
	if e != nil {
		sum := sha256.Sum256([]byte(canon))
		b.WriteString("x-amz-trailer-signature:" + e.sign("AWS4-HMAC-SHA256-TRAILER", "", sum[:]) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

const emptySHA256Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// FuzzChunkedRoundTrip encodes fuzzed payloads in fuzzed chunk sizes in
// each aws-chunked mode: decoding must give back the payload exactly.
func FuzzChunkedRoundTrip(f *testing.F) {
	f.Add(uint8(0), []byte("hello, vaultaire"), []byte{3})
	f.Add(uint8(1), []byte{}, []byte{0})
	f.Add(uint8(2), payload(5000), []byte{255, 1, 17})
	f.Add(uint8(3), payload(1000), []byte{7})
	f.Fuzz(func(t *testing.T, mode uint8, data, sizeBytes []byte) {
		if len(sizeBytes) == 0 || len(sizeBytes) > 64 {
			t.Skip()
		}
		sizes := make([]int, len(sizeBytes))
		for i, s := range sizeBytes {
			sizes[i] = (int(s) + 1) * 97 // 97 B .. 24 KiB
		}
		content := [...]string{"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
			"STREAMING-UNSIGNED-PAYLOAD-TRAILER"}[mode%3]
		req := newRequest(t, "PUT", "/bucket/key", "", nil)
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(len(data)))
		var trailer []string
		if strings.HasSuffix(content, "TRAILER") {
			req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32c")
			trailer = []string{"x-amz-checksum-crc32c:" + checksumB64(t, "crc32c", data)}
		}
		awsSign(t, req, testSecret, content, signTime)
		hl := headerList(req)
		res, err := sigv4.Verify(t.Context(), requestFromHeaderList(req, hl), creds, signTime)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		var enc *chunkEncoder
		if strings.HasPrefix(content, "STREAMING-AWS4") {
			enc = newChunkEncoder(req)
		}
		body := enc.encode(data, sizes, trailer)
		got, err := io.ReadAll(res.Body(bytes.NewReader(body)))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s, chunks of %v: decoded %d bytes, %v; want %d bytes", content, sizes, len(got), err, len(data))
		}
	})
}
