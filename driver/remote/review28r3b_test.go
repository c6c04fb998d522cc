package remote_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
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

// TestReview28r3bSweepKeepsReloadedReference: the M2b sweep (10f77ec)
// deletes an object dropped as lost that a later listing shows. Here
// shard 101's object X is dropped on a false loss, then format.json goes
// missing for a moment and lost() reloads the index from the bucket with
// the log object holding the drop (L_del) unlisted: the reload replays
// the older entry pointing shard 101 at X (listed, so kept). X is
// referenced again; the sweeps of the passes after must leave it, and
// shard 101 must stay readable. (Passes: the sweep's check under d.mu
// sees the reference; lost() and the sweep exclude each other.)
func TestReview28r3bSweepKeepsReloadedReference(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	var unlisted atomic.Pointer[[]string] // keys LIST responses leave out
	var objMiss, fmtMiss atomic.Int32     // HEADs still to answer 404
	var obj atomic.Pointer[string]
	u, err := url.Parse(s.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		ks := unlisted.Load()
		if ks == nil || resp.Request.Method != http.MethodGet || resp.Request.URL.Query().Get("list-type") != "2" {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		for _, k := range *ks {
			re := regexp.MustCompile(`<Contents><Key>` + regexp.QuoteMeta(k) + `</Key>.*?</Contents>`)
			body = re.ReplaceAll(body, nil)
		}
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			if k := obj.Load(); k != nil && strings.HasSuffix(r.URL.Path, "/"+*k) && objMiss.Add(-1) >= 0 {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			if strings.HasSuffix(r.URL.Path, "/reload/format.json") && fmtMiss.Add(-1) >= 0 {
				w.WriteHeader(http.StatusNotFound)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	c := s.config(srv.URL, b, "reload")
	c.ProbeQuiet = time.Nanosecond
	c.VerifyEvery = 200 * time.Millisecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	large := payload(64<<10, 101)
	objs := newKeys(t, s, b, "reload/obj/", func() error { return writeShard(ctx, d, shard(101), large) })
	if len(objs) != 1 {
		t.Fatalf("shard 101's write added objects %v, want one", objs)
	}
	x := objs[0]
	logsBefore := listKeys(t, s, b, "reload/log/")
	objMiss.Store(2)
	unlisted.Store(&[]string{x})
	obj.Store(&x)
	if !probeUntil(ctx, d, 40*c.VerifyEvery, func() bool { _, n := d.Verifications(); return n > 0 }) {
		t.Fatal("the false loss was never taken (test setup)")
	}
	var ldel []string
	for _, k := range listKeys(t, s, b, "reload/log/") {
		if !slices.Contains(logsBefore, k) {
			ldel = append(ldel, k)
		}
	}
	if len(ldel) != 1 {
		t.Fatalf("log objects written by the drop: %v, want one (test setup)", ldel)
	}
	// X listed again; the drop's log object not, while lost() reloads.
	unlisted.Store(&ldel)
	fmtMiss.Store(2)
	losses := d.Losses()
	probeUntil(ctx, d, 5*time.Second, func() bool { return d.Losses() > losses })
	if d.Losses() == losses {
		t.Fatal("lost() never reloaded the index (test setup)")
	}
	unlisted.Store(nil)
	if _, err := readAll(ctx, d, shard(101)); err != nil {
		t.Fatalf("shard 101 after the reload: %v, want X referenced again (test setup)", err)
	}
	passes, _ := d.Verifications()
	probeUntil(ctx, d, 40*c.VerifyEvery, func() bool { p, _ := d.Verifications(); return p >= passes+3 })
	if _, err := s.client("").HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b, Key: aws.String(x)}); err != nil {
		t.Errorf("object X, referenced again by the reload, after 3 passes: %v, want kept", err)
	}
	if got, err := readAll(ctx, d, shard(101)); err != nil || !bytes.Equal(got, large) {
		t.Errorf("shard 101 after 3 passes: %d bytes, %v", len(got), err)
	}
}
