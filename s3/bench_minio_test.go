package s3_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// BenchmarkMinioPut4KiB overwrites one 4 KiB object with minio-go, the
// client warp is built on, 16 in flight: "streaming" signs the body in
// chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD, minio-go's default over
// plain HTTP), "unsigned" sends UNSIGNED-PAYLOAD. cpu-µs/op counts the
// client's signing too; the difference between the two is the cost of
// the chunk signatures on both sides.
func BenchmarkMinioPut4KiB(b *testing.B) {
	e := startServer(b)
	if _, err := e.client("ALICEKEY", "alicesecret").CreateBucket(b.Context(), &awss3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	data := randBytes(2, 4<<10)
	for _, mode := range []string{"streaming", "unsigned"} {
		b.Run(mode, func(b *testing.B) {
			mc, err := minio.New(strings.TrimPrefix(e.endpoint, "http://"), &minio.Options{Creds: miniocreds.NewStaticV4("ALICEKEY", "alicesecret", ""), Region: "us-east-1"})
			if err != nil {
				b.Fatal(err)
			}
			opts := minio.PutObjectOptions{DisableContentSha256: mode == "unsigned"}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.SetParallelism(8)
			cpu0 := processCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := mc.PutObject(b.Context(), "bench", "obj", bytes.NewReader(data), int64(len(data)), opts); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
