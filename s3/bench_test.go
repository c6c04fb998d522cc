package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
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
