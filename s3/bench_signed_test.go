package s3_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"hash"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7/pkg/signer"
	"github.com/valyala/fasthttp"
)

// sha256Hasher adapts crypto/sha256 to minio-go's md5simd.Hasher.
type sha256Hasher struct{ hash.Hash }

func (sha256Hasher) Close() {}

// BenchmarkPut4KiBSigned overwrites one 4 KiB object with one request
// signed once and sent again and again by fasthttp's client, which
// allocates almost nothing per request, so that cpu-µs/op (the process's
// CPU time per request, client included), allocs/op and B/op are nearly
// all the server's, unlike BenchmarkMinioPut4KiB where the client's
// signing dominates the difference. 16 in flight on 2 cores. The modes
// are how the payload is signed: "presigned" (a presigned URL, no
// Authorization header), "unsigned" (Authorization header with
// UNSIGNED-PAYLOAD) and "streaming" (minio-go's signer:
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD, one 4 KiB chunk and the final
// empty one, each signature checked by the server). A replayed request
// is valid for SigV4's 15 minutes.
func BenchmarkPut4KiBSigned(b *testing.B) {
	e := startServer(b)
	ctx := b.Context()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	const size = 4 << 10
	data := randBytes(1, size)
	host := strings.TrimPrefix(e.endpoint, "http://")
	hc := &fasthttp.HostClient{Addr: host, MaxConns: 64}
	for _, mode := range []string{"presigned", "unsigned", "streaming"} {
		b.Run(mode, func(b *testing.B) {
			req := signedPut(b, e, mode, data)
			b.SetBytes(size)
			b.ReportAllocs()
			b.SetParallelism(8)
			cpu0 := processCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				r, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(r)
				defer fasthttp.ReleaseResponse(resp)
				req.CopyTo(r)
				for pb.Next() {
					if err := hc.Do(r, resp); err != nil {
						b.Error(err)
						return
					}
					if resp.StatusCode() != fasthttp.StatusOK {
						b.Errorf("%s: status %d: %s", mode, resp.StatusCode(), resp.Body())
						return
					}
				}
			})
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// signedPut returns a PUT of data to bench/obj signed as mode says, in
// fasthttp's form, ready to be sent again and again.
func signedPut(b testing.TB, e *env, mode string, data []byte) *fasthttp.Request {
	b.Helper()
	url := e.endpoint + "/bench/obj"
	if mode == "presigned" {
		p, err := awss3.NewPresignClient(e.client("ALICEKEY", "alicesecret")).PresignPutObject(b.Context(), &awss3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String("obj")})
		if err != nil {
			b.Fatal(err)
		}
		url = p.URL
	}
	hr, err := http.NewRequest("PUT", url, bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/octet-stream")
	switch mode {
	case "unsigned":
		hr.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		hr = signer.SignV4(*hr, "ALICEKEY", "alicesecret", "", "us-east-1")
	case "streaming":
		hr = signer.StreamingSignV4(hr, "ALICEKEY", "alicesecret", "", "us-east-1", int64(len(data)), time.Now().UTC(), sha256Hasher{sha256.New()})
	}
	var wire bytes.Buffer
	if err := hr.Write(&wire); err != nil {
		b.Fatal(err)
	}
	req := new(fasthttp.Request)
	if err := req.Read(bufio.NewReader(&wire)); err != nil {
		b.Fatal(err)
	}
	return req
}

// TestChunkSignedPutTampered sends a 4 KiB PUT signed as minio-go signs
// it (the chunk is read straight into the engine's buffer) with one byte
// of its data, or of its chunk signature, changed: 403
// SignatureDoesNotMatch, and the key keeps what it held. The same request
// untouched is stored.
func TestChunkSignedPutTampered(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		t.Fatal(err)
	}
	hc := &fasthttp.HostClient{Addr: strings.TrimPrefix(e.endpoint, "http://")}
	get := func() []byte {
		t.Helper()
		out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("bench"), Key: aws.String("obj")})
		if err != nil {
			if apiCode(err) == "NoSuchKey" {
				return nil
			}
			t.Fatal(err)
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var stored []byte
	for i, data := range [][]byte{randBytes(5, 4<<10), randBytes(6, 4<<10)} {
		req := signedPut(t, e, "streaming", data)
		enc := req.Body()
		sigAt := bytes.Index(enc, []byte("chunk-signature=")) + len("chunk-signature=")
		dataAt := bytes.Index(enc, []byte("\r\n")) + 2
		for _, tc := range []struct {
			name string
			at   int
		}{{"data", dataAt + 100}, {"last data byte", dataAt + len(data) - 1}, {"chunk signature", sigAt + 5}} {
			bad := fasthttp.AcquireRequest()
			req.CopyTo(bad)
			body := bytes.Clone(enc)
			body[tc.at] ^= 1
			if tc.at >= sigAt && tc.at < sigAt+64 {
				body[tc.at] = "10"[min(1, int(enc[tc.at]-'0'))] // another hex digit: well-formed, wrong
			}
			bad.SetBody(body)
			resp := fasthttp.AcquireResponse()
			if err := hc.Do(bad, resp); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != 403 || !bytes.Contains(resp.Body(), []byte("<Code>SignatureDoesNotMatch</Code>")) {
				t.Errorf("put %d, %s changed: %d %s; want 403 SignatureDoesNotMatch", i, tc.name, resp.StatusCode(), resp.Body())
			}
			fasthttp.ReleaseRequest(bad)
			fasthttp.ReleaseResponse(resp)
			if got := get(); !bytes.Equal(got, stored) {
				t.Errorf("put %d, %s changed: key holds %d bytes, want the %d stored before", i, tc.name, len(got), len(stored))
			}
		}
		resp := fasthttp.AcquireResponse()
		if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("put %d untouched: %v, %d %s", i, err, resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseResponse(resp)
		if stored = data; !bytes.Equal(get(), data) {
			t.Fatalf("put %d: stored bytes differ", i)
		}
	}
}
