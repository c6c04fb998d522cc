package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Payload is how the harness signs the bodies it uploads (PutObject and
// UploadPart). The server's work per upload differs with it, so a
// comparison with another client means the same mode on both.
type Payload string

// The payload modes.
const (
	// PayloadSigned sends the body's SHA-256 in x-amz-content-sha256,
	// covered by the request's signature: what the AWS SDKs send over
	// plain http. The default.
	PayloadSigned Payload = "signed"
	// PayloadUnsigned sends UNSIGNED-PAYLOAD: what the AWS SDKs send over
	// https, and minio-go (so warp) with --disable-sha256-payload.
	PayloadUnsigned Payload = "unsigned"
	// PayloadStreaming sends STREAMING-AWS4-HMAC-SHA256-PAYLOAD: the body
	// in aws-chunked chunks of 64 KiB, each with a signature chained from
	// the request's: what minio-go (so warp) sends over plain http.
	PayloadStreaming Payload = "streaming"
)

// Payloads lists the payload modes, in the order the CLI documents them.
var Payloads = []Payload{PayloadSigned, PayloadUnsigned, PayloadStreaming}

const (
	streamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	// streamChunk is the size of a streamed body's chunks (minio-go's).
	streamChunk = 64 << 10
	// emptySHA256 is the hex SHA-256 of no bytes.
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	// chunkSigLen is the length of ";chunk-signature=" and a hex signature.
	chunkSigLen = len(";chunk-signature=") + 64
)

// streamedLength returns the length on the wire of a body of n bytes sent
// aws-chunked in chunks of streamChunk, the final empty chunk included.
func streamedLength(n int64) int64 {
	frame := func(size int64) int64 {
		return int64(len(strconv.FormatInt(size, 16))+chunkSigLen+2) + size + 2
	}
	full, rest := n/streamChunk, n%streamChunk
	total := full*frame(streamChunk) + frame(0)
	if rest > 0 {
		total += frame(rest)
	}
	return total
}

// streamer sends uploads with PayloadStreaming. The AWS SDK for Go v2 does
// not sign aws-chunked bodies, so the request is built here and signed
// with its signer (the seed signature), and each chunk is signed as the
// SigV4 streaming specification says.
type streamer struct {
	hc       s3.HTTPClient
	endpoint string // without a trailing slash
	region   string
	creds    aws.Credentials
	signer   *v4.Signer
}

func newStreamer(cfg Config, hc s3.HTTPClient) *streamer {
	return &streamer{
		hc:       hc,
		endpoint: strings.TrimSuffix(cfg.Endpoint, "/"),
		region:   cfg.Region,
		creds:    aws.Credentials{AccessKeyID: cfg.AccessKey, SecretAccessKey: cfg.SecretKey},
		signer:   v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
	}
}

// put uploads size bytes of body to bucket/key (query: the part's number
// and upload ID for UploadPart) and returns the ETag the server answered.
func (s *streamer) put(ctx context.Context, bucket, key string, query url.Values, body io.Reader, size int64) (string, error) {
	u := s.endpoint + "/" + bucket + "/" + escapeKey(key)
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, nil)
	if err != nil {
		return "", err
	}
	req.ContentLength = streamedLength(size)
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", strconv.FormatInt(size, 10))
	req.Header.Set("X-Amz-Content-Sha256", streamingPayload)
	now := time.Now().UTC()
	if err := s.signer.SignHTTP(ctx, s.creds, req, streamingPayload, "s3", s.region, now); err != nil {
		return "", fmt.Errorf("bench: sign: %w", err)
	}
	_, seed, ok := strings.Cut(req.Header.Get("Authorization"), "Signature=")
	if !ok || len(seed) != 64 {
		return "", fmt.Errorf("bench: sign: no seed signature in %q", req.Header.Get("Authorization"))
	}
	date := now.Format("20060102")
	cr := &chunkReader{
		src:     body,
		left:    size,
		key:     signingKey(s.creds.SecretAccessKey, date, s.region),
		prefix:  "AWS4-HMAC-SHA256-PAYLOAD\n" + now.Format("20060102T150405Z") + "\n" + date + "/" + s.region + "/s3/aws4_request\n",
		prevSig: seed,
		buf:     make([]byte, streamChunk),
	}
	req.Body = io.NopCloser(cr)
	resp, err := s.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", responseError(resp)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.Header.Get("ETag"), nil
}

// escapeKey escapes key for a URL path, keeping its slashes.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// responseError returns the S3 error resp carries, as the SDK would report
// it (errorCode reads its code).
func responseError(resp *http.Response) error {
	var e struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if xml.Unmarshal(b, &e) != nil || e.Code == "" {
		e.Code = fmt.Sprintf("HTTP%d", resp.StatusCode)
	}
	return &smithy.GenericAPIError{Code: e.Code, Message: e.Message}
}

// signingKey derives SigV4's signing key for s3 on date in region.
func signingKey(secret, date, region string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, "s3")
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// chunkReader frames left bytes of src as aws-chunked chunks of
// streamChunk, each signed with key, chained from prevSig, ending with the
// signed empty chunk.
type chunkReader struct {
	src     io.Reader
	left    int64
	key     []byte
	prefix  string // the string to sign's first three lines
	prevSig string
	buf     []byte
	out     bytes.Buffer // the framed chunk not yet read
	done    bool         // the final chunk is framed
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.out.Len() == 0 {
		if c.done {
			return 0, io.EOF
		}
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	return c.out.Read(p)
}

// next frames the next chunk into c.out.
func (c *chunkReader) next() error {
	n := min(int64(len(c.buf)), c.left)
	data := c.buf[:n]
	if _, err := io.ReadFull(c.src, data); err != nil {
		return fmt.Errorf("bench: read body: %w", err)
	}
	c.left -= n
	c.done = n == 0
	sum := sha256.Sum256(data)
	sig := hex.EncodeToString(hmacSHA256(c.key, c.prefix+c.prevSig+"\n"+emptySHA256+"\n"+hex.EncodeToString(sum[:])))
	c.prevSig = sig
	c.out.Reset()
	fmt.Fprintf(&c.out, "%x;chunk-signature=%s\r\n", n, sig)
	c.out.Write(data)
	c.out.WriteString("\r\n")
	return nil
}
