package s3_test

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestConcurrentGetsPooledReaders reads objects of sizes on both sides of
// the pooled body readers' classes concurrently and checks every byte: a
// reader given back to its pool while its body still streams would mix
// bodies up.
func TestConcurrentGetsPooledReaders(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("pool")}); err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, 4095, 4096, 4097, 65536, 200_000}
	objects := map[string][]byte{}
	for i, n := range sizes {
		key := fmt.Sprintf("obj-%d", n)
		objects[key] = randBytes(uint64(100+i), n)
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("pool"), Key: aws.String(key), Body: bytes.NewReader(objects[key])}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 30 {
				key := fmt.Sprintf("obj-%d", sizes[(g+i)%len(sizes)])
				out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("pool"), Key: aws.String(key)})
				if err != nil {
					t.Errorf("get %s: %v", key, err)
					return
				}
				got, err := io.ReadAll(out.Body)
				out.Body.Close()
				if err != nil || !bytes.Equal(got, objects[key]) {
					t.Errorf("get %s: %v, %d bytes, equal %v", key, err, len(got), bytes.Equal(got, objects[key]))
					return
				}
			}
		})
	}
	wg.Wait()
}
