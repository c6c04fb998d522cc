package s3_test

import (
	"bytes"
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/s3"
	"github.com/vaultaire/vaultaire/tenant"
)

// TestBandwidthShapesBodies: with a Limiter that shapes bandwidth, an
// upload and a download are slowed to it, not failed, even when that
// takes longer than the request timeout (the wait is the server's, under
// the body timeout), and the bytes arrive intact.
func TestBandwidthShapesBodies(t *testing.T) {
	lim := tenant.NewRateLimiter(nil, 0)
	lim.Bytes = func(string) (int64, int64) { return 256 << 10, 512 << 10 }
	e := startServerWith(t, func(c *s3.Config) {
		c.Limiter = lim
		c.RequestTimeout = 500 * time.Millisecond
	})
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("shaped")}); err != nil {
		t.Fatal(err)
	}
	data := randBytes(17, 512<<10)
	start := time.Now()
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("shaped"), Key: aws.String("k"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("shaped upload: %v", err)
	}
	// 512 KiB at 256 KiB/s with 64 KiB ahead: 1.75 s.
	if took := time.Since(start); took < 1200*time.Millisecond || took > 20*time.Second {
		t.Errorf("upload took %v, want about 1.75 s", took)
	}
	start = time.Now()
	out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("shaped"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes, %v; want the %d uploaded", len(got), err, len(data))
	}
	// 512 KiB at 512 KiB/s with 128 KiB ahead: 0.75 s.
	if took := time.Since(start); took < 500*time.Millisecond || took > 20*time.Second {
		t.Errorf("download took %v, want about 0.75 s", took)
	}
}

// TestBandwidthWaitsEndAtBodyTimeout: a shaped body is still bounded by
// the body timeout: an upload or download that the tenant's bandwidth
// would stretch far past it is cut off at it (the bandwidth waits'
// contexts carry the deadline, though their timers are made only when
// a wait needs one: deadline.go).
func TestBandwidthWaitsEndAtBodyTimeout(t *testing.T) {
	lim := tenant.NewRateLimiter(nil, 0)
	var shaped atomic.Bool
	lim.Bytes = func(string) (int64, int64) {
		if shaped.Load() {
			return 16 << 10, 16 << 10 // 512 KiB in about 30 s
		}
		return 0, 0
	}
	e := startServerWith(t, func(c *s3.Config) {
		c.Limiter = lim
		c.BodyTimeout = 700 * time.Millisecond
	})
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("capped")}); err != nil {
		t.Fatal(err)
	}
	data := randBytes(18, 512<<10)
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("capped"), Key: aws.String("k"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("unshaped upload: %v", err)
	}
	shaped.Store(true)

	start := time.Now()
	_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("capped"), Key: aws.String("k2"), Body: bytes.NewReader(data)})
	if took := time.Since(start); err == nil || took > 10*time.Second {
		t.Errorf("shaped upload past the body timeout: %v after %v, want an error within a few seconds", err, took)
	}

	start = time.Now()
	out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("capped"), Key: aws.String("k")})
	if err == nil {
		var got []byte
		got, err = io.ReadAll(out.Body)
		out.Body.Close()
		if err == nil && len(got) == len(data) {
			t.Errorf("shaped download read whole")
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("shaped download past the body timeout: ended after %v (%v), want within a few seconds", took, err)
	}
}
