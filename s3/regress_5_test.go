package s3_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// A client that times out on CompleteMultipartUpload and aborts (what SDK
// upload managers do on failure) while the complete is still running.
func TestRegressCompleteAbortRace(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("race")
	c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b})
	data := randBytes(1, 300<<10) // not inline
	broken := 0
	for i := range 60 {
		key := aws.String("k")
		up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		pr, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var cerr, aerr error
		wg.Go(func() {
			_, cerr = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: pr.ETag}}}})
		})
		wg.Go(func() {
			_, aerr = c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId})
		})
		wg.Wait()
		if cerr != nil {
			continue
		}
		out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: key})
		if err != nil {
			t.Logf("iter %d: complete ok, abort %v, GET: %v", i, aerr, err)
			broken++
			continue
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Logf("iter %d: complete ok (abort err %v), GET read %d bytes, %v", i, aerr, len(got), err)
			broken++
		}
	}
	if broken > 0 {
		t.Fatalf("%d acknowledged multipart objects unreadable", broken)
	}
}
