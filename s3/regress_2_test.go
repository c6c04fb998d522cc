package s3_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// The AWS SDK stores a CRC32 with every PUT; a ranged GET with checksum
// mode enabled gets the whole object's checksum and the SDK validates the
// range against it.
func TestRegressRangedGetChecksum(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("ckk")
	c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b})
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("0123456789"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("k"), Range: aws.String("bytes=2-4"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ranged GET checksum header: %v", aws.ToString(out.ChecksumCRC32))
	got, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("ranged GET with checksum mode: read %q, %v", got, err)
	}
}
