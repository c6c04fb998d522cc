package remote_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
)

// TestReview28r3bFailedBackgroundRewriteNotRetried: since e3fc2ef (V1)
// the rewrite of a lost snapshot runs in the background and outlives the
// probe step that began it. While it runs, resnapshot has set d.snapKey
// to "", so the next step's verifyConfirm sees d.snapKey != p.snap,
// clears p.snap and ends the pass without joining the rewrite. When the
// rewrite then fails (here: its PUT is slow, then refused), resnapshot
// puts the lost snapshot back as d.snapKey, but no pass is looking any
// more: the loss is asked about again only at the next pass, a whole
// VerifyEvery later (default 10 min), and the drive reports healthy
// meanwhile. Before V1, the failure was retried at the next step. For
// that whole window the bucket holds no snapshot, and record r1 (whose
// log objects compaction deleted) is only in memory: a restart loses it.
func TestReview28r3bFailedBackgroundRewriteNotRetried(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	var refuse atomic.Bool
	var refused atomic.Int32
	u, err := url.Parse(s.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/snap/") {
			// Slower than the probe's ctx, then refused.
			io.Copy(io.Discard, r.Body)
			select {
			case <-time.After(600 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			refused.Add(1)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := s.config(srv.URL, b, "bgfail")
	c.ProbeQuiet = time.Nanosecond
	c.VerifyEvery = 12 * time.Second // lag 3 s; the next pass 12 s after the first
	c.CompactInterval = -1
	c.MaxAttempts = 1
	c.BreakerThreshold = 1000 // not about the breaker
	d := open(t, c)
	ctx := t.Context()
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "r1", Version: version(1), Data: []byte("r1")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := d.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	snaps := listKeys(t, s, b, "bgfail/snap/")
	if len(snaps) != 1 {
		t.Fatalf("snapshots after compaction: %v, want one", snaps)
	}
	refuse.Store(true)
	if _, err := s.client("").DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: aws.String(snaps[0])}); err != nil {
		t.Fatal(err)
	}
	probe := func() error {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond) // the probe's ctx
		defer cancel()
		return d.Probe(pctx)
	}
	began := time.Now()
	for refused.Load() == 0 && time.Since(began) < 8*time.Second {
		probe()
		time.Sleep(50 * time.Millisecond)
	}
	if refused.Load() == 0 {
		t.Fatal("the lost snapshot's rewrite never reached the backend (test setup)")
	}
	refuse.Store(false) // the backend takes PUTs again
	passes, _ := d.Verifications()
	// Well within the pass (the next one begins 12 s after the first):
	// a step should see the rewrite failed and write the snapshot again.
	var lastErr error
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end) && len(listKeys(t, s, b, "bgfail/snap/")) == 0; {
		lastErr = probe()
		time.Sleep(50 * time.Millisecond)
	}
	if got := listKeys(t, s, b, "bgfail/snap/"); len(got) == 0 {
		p2, _ := d.Verifications()
		t.Errorf("3 s after the background rewrite of the lost snapshot failed (backend healthy again): no snapshot in the bucket; passes %d then %d (the pass ended while the rewrite ran), last probe %v: nothing retries until the next pass", passes, p2, lastErr)
	}
	d.Close()
	d2 := open(t, s.config("", b, "bgfail")) // a restart in that window
	if got, err := d2.GetRecord(ctx, "r1"); err != nil || string(got.Data) != "r1" {
		if errors.Is(err, driver.ErrNotFound) {
			t.Errorf("after a restart: record r1 lost (%v): it was only in the lost snapshot and in memory", err)
		} else {
			t.Errorf("after a restart: record r1: %q, %v", got.Data, err)
		}
	}
}
