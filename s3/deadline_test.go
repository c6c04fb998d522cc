package s3_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/s3"
)

// stallLimiter is a Limiter that, once stalling, holds every request
// until its context ends, then refuses it: how long a request took shows
// whether the server's deadline reached the work.
type stallLimiter struct{ stall atomic.Bool }

func (l *stallLimiter) Allow(ctx context.Context, _ string) (time.Duration, bool) {
	if !l.stall.Load() {
		return 0, true
	}
	<-ctx.Done()
	return time.Second, false
}

// TestRequestTimeoutEndsWork: a request's work (here the Limiter's Allow,
// which waits on ctx.Done as the engine's fan-outs do) ends at
// RequestTimeout, for a request without a body (a GET: the handler's
// context) and one with a body (a PUT: authenticated when its headers
// arrive). The request contexts make their timers only when waited on
// (deadline.go); this fails if they lose the deadline.
func TestRequestTimeoutEndsWork(t *testing.T) {
	lim := &stallLimiter{}
	e := startServerWith(t, func(c *s3.Config) {
		c.Limiter = lim
		c.RequestTimeout = 300 * time.Millisecond
	})
	c := e.client("ALICEKEY", "alicesecret")
	ctx := t.Context()
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("stall")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("stall"), Key: aws.String("k"), Body: bytes.NewReader([]byte("x"))}); err != nil {
		t.Fatal(err)
	}
	lim.stall.Store(true)
	for _, tc := range []struct {
		name string
		do   func(context.Context) error
	}{
		{"GET", func(ctx context.Context) error {
			_, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("stall"), Key: aws.String("k")})
			return err
		}},
		{"PUT", func(ctx context.Context) error {
			_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("stall"), Key: aws.String("k"), Body: bytes.NewReader([]byte("y"))})
			return err
		}},
	} {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		err := tc.do(ctx)
		took := time.Since(start)
		cancel()
		if got, want := apiCode(err), "SlowDown"; got != want || took > 5*time.Second {
			t.Errorf("%s held by the Limiter: %q (%v) after %v, want %s at the 300 ms request timeout", tc.name, got, err, took, want)
		}
	}
}
