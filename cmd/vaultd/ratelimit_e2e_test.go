package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/s3"
)

// rateRun is what a load loop saw in its measured window.
type rateRun struct {
	ok, slowDown int64
	window       time.Duration
}

func (r rateRun) rate() float64 { return float64(r.ok) / r.window.Seconds() }

// hammer sends HeadBucket requests from workers goroutines, each to the
// next of nodes in turn (round robin), for warm+measure, and counts the
// answers that arrive during measure. An answer other than 200 or 503
// SlowDown fails the test.
func hammer(t *testing.T, clients []*awss3.Client, bucket string, workers int, warm, measure time.Duration) rateRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), warm+measure+10*time.Second)
	defer cancel()
	start := time.Now()
	from, until := start.Add(warm), start.Add(warm+measure)
	var (
		next         atomic.Int64
		ok, slowDown atomic.Int64
		errMu        sync.Mutex
		firstErr     error
		wg           sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(until) && ctx.Err() == nil {
				cl := clients[int(next.Add(1))%len(clients)]
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := cl.HeadBucket(rctx, &awss3.HeadBucketInput{Bucket: aws.String(bucket)})
				rcancel()
				now := time.Now()
				counted := !now.Before(from) && now.Before(until)
				switch {
				case err == nil:
					if counted {
						ok.Add(1)
					}
				case httpStatus(err) == http.StatusServiceUnavailable:
					if counted {
						slowDown.Add(1)
					}
					time.Sleep(10 * time.Millisecond) // a refused client backs off a little
				default:
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("HeadBucket: %v", firstErr)
	}
	return rateRun{ok: ok.Load(), slowDown: slowDown.Load(), window: measure}
}

// TestClusterRateLimit: a tenant's rate holds cluster-wide. Sending
// round robin to three nodes, its accepted rate is within 20% of its
// configured rate (not three times it); sending to one node, it still
// gets about its rate there.
func TestClusterRateLimit(t *testing.T) {
	c := startCluster(t, 3)
	c.waitMembers(t, 30*time.Second)
	ctx := t.Context()
	var tn s3.NewTenant
	if err := c.admin(0).do(ctx, http.MethodPut, "/_vault/admin/tenants/rate-tenant", &tn); err != nil {
		t.Fatal(err)
	}
	const rps = 40
	if err := c.admin(1).send(ctx, http.MethodPut, "/_vault/admin/tenants/rate-tenant/rate", fmt.Appendf(nil, `{"rps":%d,"burst":10}`, rps), nil); err != nil {
		t.Fatal(err)
	}
	var clients []*awss3.Client
	for i := range c.nodes {
		clients = append(clients, c.s3Client(i, tn))
	}
	if _, err := clients[0].CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("rated")}); err != nil {
		t.Fatal(err)
	}
	// Every node knows the new rate (replicated by Raft) before the load.
	time.Sleep(time.Second)

	check := func(t *testing.T, what string, r rateRun) {
		t.Helper()
		t.Logf("%s: %d accepted (%.1f/s), %d SlowDown in %v; configured %d/s", what, r.ok, r.rate(), r.slowDown, r.window, rps)
		if got := r.rate(); got < 0.8*rps || got > 1.2*rps {
			t.Errorf("%s: accepted %.1f requests/s, want %d/s ± 20%%", what, got, rps)
		}
	}
	check(t, "round robin over 3 nodes", hammer(t, clients, "rated", 12, 3*time.Second, 8*time.Second))
	// The same tenant now talks to one node only: within two windows
	// that node's share is all of it.
	check(t, "one node", hammer(t, clients[:1], "rated", 12, 3*time.Second, 6*time.Second))

	// Raft's and gossip's start-up chatter is at debug level (issue 17.3).
	for _, n := range c.nodes {
		for line := range strings.Lines(n.stderr.String()) {
			if strings.Contains(line, "level=INFO") && (strings.Contains(line, "component=raft") || strings.Contains(line, "gossip member alive")) {
				t.Errorf("%s: chatter at info level: %s", n.name, line)
			}
		}
	}
}
