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
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
)

// TestReview28r2ReformatOverwritesForeignFormat: --remote-reformat is
// left on (it is a command-line flag: it stays in the unit file after the
// one start it was meant for), and the drive's URL now points at another
// drive's prefix (a typo, a swapped bucket). Without the flag Open
// refuses it: format.json names another drive. With it, a single HEAD
// of format.json that answers 404 (a flaky provider; lost() and, since
// review 28r L1, verification both confirm a 404 before acting) is taken
// as proof that the prefix lost it: Open writes this drive's format.json
// over the other drive's and adopts its log as its own index, so two
// drives now write one prefix and the other drive's owner is refused at
// its next start. The operator asked to rewrite a *missing* format.json,
// not to replace one that names another drive.
func TestReview28r2ReformatOverwritesForeignFormat(t *testing.T) {
	// 1: one HEAD misses it; 2: two do (a second look is not proof
	// either: the write must not replace a format.json that is there).
	for _, misses := range []int32{1, 2} {
		t.Run(strconv.Itoa(int(misses)), func(t *testing.T) { reformatOverForeign(t, misses) })
	}
}

func reformatOverForeign(t *testing.T, misses int32) {
	s := startVaultd(t)
	b := s.bucket(t)
	ctx := t.Context()
	other := s.config("", b, "shared")
	other.ID = "drive-b"
	db := open(t, other)
	if _, _, err := db.PutRecord(ctx, driver.Record{Key: "b1", Version: version(1), Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	var miss atomic.Int32 // HEADs of format.json still to answer 404
	miss.Store(misses)
	u, err := url.Parse(s.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, "/shared/format.json") && miss.Add(-1) >= 0 {
			w.WriteHeader(http.StatusNotFound) // a moment's miss
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	c := s.config(srv.URL, b, "shared")
	c.ID = "drive-a"
	c.Existing, c.Reformat = true, true
	d, err := remote.Open(ctx, c)
	if err == nil {
		d.Close()
		t.Errorf("Open of drive-a with Reformat over drive-b's prefix after %d HEAD 404s of its format.json: succeeded, want a refusal (format.json is there and names drive-b)", misses)
	}
	out, err := s.client("").GetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: aws.String("shared/format.json")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"drive-b"`) {
		t.Errorf("drive-b's format.json after drive-a's Open with Reformat: %s, want it untouched", body)
	}
	// The other drive's owner restarts.
	other.Existing = true
	if d2, err := remote.Open(ctx, other); err != nil {
		t.Errorf("drive-b's own Open after drive-a's: %v", err)
	} else {
		d2.Close()
	}
}

// TestReview28r2SnapshotRewriteOutlastsProbe: the H1 fix (f0fc8c2)
// retries a failed rewrite of a lost snapshot at every step, but always
// within the probe's ctx (vaultd: max(interval, 30 s)). A rewrite that
// needs longer than that (a large index over a slow link; here snapshot
// PUTs take 1.5 s and the probe gives 1 s) fails at every step, for
// ever on a drive with no new writes (compaction writes no snapshot
// while nothing was written): the drive reports offline at every probe,
// and the snapshot is never in the bucket again, so a restart still
// loses what only the lost snapshot held (record r1, large shard 101,
// whose intact object the new Driver's Open sweeps): H1's consequence,
// only on a slower path. The records are in memory: the rewrite should
// go on past the probe (on closeCtx), and the drive not flap offline.
func TestReview28r2SnapshotRewriteOutlastsProbe(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	var slow atomic.Bool
	u, err := url.Parse(s.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/snap/") {
			// A slow upload: the object is stored 1.5 s after the
			// request, if the client still waits for it (the body is
			// read first, so that the server sees the client leave).
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			select {
			case <-time.After(1500 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := s.config(srv.URL, b, "slowsnap")
	c.ProbeQuiet = time.Nanosecond
	c.VerifyEvery = 200 * time.Millisecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	c.BreakerThreshold = 1000 // not about the breaker
	d := open(t, c)
	ctx := t.Context()
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "r1", Version: version(1), Data: []byte("r1")}); err != nil {
		t.Fatal(err)
	}
	large := payload(64<<10, 101)
	if err := writeShard(ctx, d, shard(101), large); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := d.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	snaps := listKeys(t, s, b, "slowsnap/snap/")
	if len(snaps) != 1 {
		t.Fatalf("snapshots after compaction: %v, want one", snaps)
	}
	slow.Store(true)
	if _, err := s.client("").DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: aws.String(snaps[0])}); err != nil {
		t.Fatal(err)
	}
	offline, probes := 0, 0
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		pctx, cancel := context.WithTimeout(ctx, time.Second) // the probe's ctx
		err := d.Probe(pctx)
		cancel()
		probes++
		if errors.Is(err, driver.ErrOffline) {
			offline++
		}
		if len(listKeys(t, s, b, "slowsnap/snap/")) > 0 && err == nil {
			break
		}
	}
	if len(listKeys(t, s, b, "slowsnap/snap/")) == 0 {
		t.Errorf("no snapshot in the bucket 8 s after the loss (%d of %d probes offline): the rewrite never outlives a probe", offline, probes)
	}
	if err := d.Probe(ctx); err != nil {
		t.Errorf("the drive's probe after that: %v, want healthy", err)
	}
	d.Close()
	slow.Store(false)
	d2 := open(t, s.config("", b, "slowsnap")) // a restart
	if got, err := d2.GetRecord(ctx, "r1"); err != nil || string(got.Data) != "r1" {
		t.Errorf("after a restart: record r1: %q, %v", got.Data, err)
	}
	if _, err := readAll(ctx, d2, shard(101)); err != nil {
		t.Errorf("after a restart: large shard 101, intact: %v", err)
	}
}

// TestReview28r2FalseLossLeaksObject: since the review 28r M2 fix
// (dad17e9), a shard dropped as lost leaves its object for the next
// Open. When the loss was false (the provider failed to list the object
// and answered two HEADs 404, lostConfirm apart, then showed it again),
// the intact, now unreferenced object stays in the bucket for as long as
// the drive runs: a running drive is reopened only by a restart, so
// every false loss is paid for in storage until then. Verification lists
// obj/ at every pass: an object it dropped as lost and lists again later
// is unreferenced by construction (names are never reused) and can go.
func TestReview28r2FalseLossLeaksObject(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	var hidden atomic.Pointer[string]
	var heads atomic.Int32 // HEADs of the hidden object still to answer 404
	u, err := url.Parse(s.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		k := hidden.Load()
		if k == nil || resp.Request.Method != http.MethodGet || resp.Request.URL.Query().Get("list-type") != "2" {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		re := regexp.MustCompile(`<Contents><Key>` + regexp.QuoteMeta(*k) + `</Key>.*?</Contents>`)
		body = re.ReplaceAll(body, nil)
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if k := hidden.Load(); k != nil && r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, "/"+*k) {
			if heads.Add(-1) <= 0 {
				hidden.Store(nil) // shown again after this one
			}
			w.WriteHeader(http.StatusNotFound)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	c := s.config(srv.URL, b, "falseloss")
	c.ProbeQuiet = time.Nanosecond
	c.VerifyEvery = 200 * time.Millisecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	objs := newKeys(t, s, b, "falseloss/obj/", func() error { return writeShard(ctx, d, shard(101), payload(64<<10, 101)) })
	if len(objs) != 1 {
		t.Fatalf("shard 101's write added objects %v, want one", objs)
	}
	heads.Store(2)
	hidden.Store(&objs[0])
	if !probeUntil(ctx, d, 40*c.VerifyEvery, func() bool { _, n := d.Verifications(); return n > 0 }) {
		t.Fatal("the false loss was never taken (test setup)")
	}
	if _, err := readAll(ctx, d, shard(101)); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("shard 101 after its false loss: %v, want dropped (test setup)", err)
	}
	probeUntil(ctx, d, 20*c.VerifyEvery, func() bool { return len(listKeys(t, s, b, "falseloss/obj/")) == 0 })
	if got := listKeys(t, s, b, "falseloss/obj/"); len(got) != 0 {
		passes, _ := d.Verifications()
		t.Errorf("%d passes after shard 101 was dropped as lost, its intact object, referenced by nothing, is still in the bucket: %v (removed only at the next Open)", passes, got)
	}
}
