package s3_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"hash"
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
func signedPut(b *testing.B, e *env, mode string, data []byte) *fasthttp.Request {
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
