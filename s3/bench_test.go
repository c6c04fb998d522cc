package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/valyala/fasthttp"

	"github.com/vaultaire/vaultaire/s3"
	"github.com/vaultaire/vaultaire/tenant"
)

// BenchmarkS3 drives an in-process node (4 durable local drives, 2+2)
// through the S3 API with the AWS SDK for Go v2, 16 requests in flight.
// Client and server share the machine's cores.
func BenchmarkS3(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		e := startServer(b)
		ctx := context.Background()
		c := e.client("ALICEKEY", "alicesecret")
		if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
			b.Fatal(err)
		}
		data := randBytes(1, size)
		var n atomic.Int64
		b.Run(fmt.Sprintf("PUT/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprint("k", n.Add(1)%1000)
					if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		keys := min(n.Load(), 1000)
		var g atomic.Int64
		b.Run(fmt.Sprintf("GET/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprint("k", 1+g.Add(1)%(keys-1))
					out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("bench"), Key: aws.String(key)})
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, out.Body)
					out.Body.Close()
				}
			})
		})
	}
}

// BenchmarkPresigned drives an in-process node (4 durable local drives,
// 2+2) over presigned URLs with fasthttp's client, which allocates almost
// nothing per request: allocs/op and B/op are the server's (the benchmark
// counts every goroutine of the process). 16 requests in flight on 2 cores.
// GET reads one 4 KiB object; PUT overwrites one key, as bench/limit.sh
// does with wrk. The server has a bandwidth-shaping Limiter without limits,
// as vaultd has. cpu-µs/op is the process's CPU time (user and system,
// client included) per request: unlike ns/op it hardly moves when other
// work shares the machine.
func BenchmarkPresigned(b *testing.B) {
	// A Limiter that shapes bandwidth, as vaultd wires one, for which the
	// benchmark's tenant is exempt as bench/limit.sh's root is: its
	// per-request work is counted, and it never waits.
	lim := tenant.NewRateLimiter(nil, 0, "alice")
	lim.Bytes = func(string) (int64, int64) { return 0, 0 }
	e := startServerWith(b, func(c *s3.Config) { c.Limiter = lim })
	ctx := b.Context()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	const size = 4 << 10
	data := randBytes(1, size)
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String("obj"), Body: bytes.NewReader(data)}); err != nil {
		b.Fatal(err)
	}
	p := awss3.NewPresignClient(c)
	get, err := p.PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("bench"), Key: aws.String("obj")})
	if err != nil {
		b.Fatal(err)
	}
	put, err := p.PresignPutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String("obj")})
	if err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(e.endpoint)
	if err != nil {
		b.Fatal(err)
	}
	hc := &fasthttp.HostClient{Addr: u.Host, MaxConns: 64}
	for _, tc := range []struct{ method, url string }{{"GET", get.URL}, {"PUT", put.URL}} {
		b.Run(tc.method+"/4KiB", func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			b.SetParallelism(8)
			cpu0 := processCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(tc.url)
				req.Header.SetMethod(tc.method)
				if tc.method == "PUT" {
					req.SetBody(data)
				}
				for pb.Next() {
					if err := hc.Do(req, resp); err != nil {
						b.Error(err)
						return
					}
					if resp.StatusCode() != fasthttp.StatusOK || tc.method == "GET" && len(resp.Body()) != size {
						b.Errorf("%s: status %d, %d bytes", tc.method, resp.StatusCode(), len(resp.Body()))
						return
					}
				}
			})
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU returns the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
