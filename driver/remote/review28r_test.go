package remote_test

import (
	"bytes"
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

// refusingProxy forwards requests to target, except that it answers 503
// to those refuse matches: a backend that refuses some writes (a
// throttled or failing PUT) and answers everything else.
func refusingProxy(t *testing.T, target string, refuse func(*http.Request) bool) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u) // keeps the Host the client signed
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse(r) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestReview28rSnapshotLossForgottenAfterFailedRewrite: the snapshot is
// deleted behind the drive's back after compaction removed the log
// objects it covers, so it alone holds record r1's and large shard 101's
// index entries. Verification finds it lost, but the snapshot it writes
// again fails once (a PUT refused for a while). resnapshot has already
// set d.snapKey to "" by then, so the next step sees d.snapKey !=
// p.snap, takes the snapshot as replaced, and ends the pass: the loss is
// never counted, no snapshot is ever written again on an idle drive
// (compaction does nothing while nothing was written), and a new Driver
// on the bucket (a restart) has neither r1 nor shard 101, whose intact
// object its Open then sweeps as an orphan.
func TestReview28rSnapshotLossForgottenAfterFailedRewrite(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	var refuse atomic.Bool
	ep := refusingProxy(t, s.endpoint, func(r *http.Request) bool {
		return refuse.Load() && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/snap/")
	})
	c := s.config(ep, b, "snaplost")
	c.ProbeQuiet = time.Nanosecond
	c.VerifyEvery = 200 * time.Millisecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	c.MaxAttempts = 2
	c.MaxBackoff = 10 * time.Millisecond
	c.BreakerThreshold = 1000 // this test is not about the breaker
	d := open(t, c)
	ctx := t.Context()

	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "r1", Version: version(1), Data: []byte("r1")}); err != nil {
		t.Fatal(err)
	}
	small, large := payload(4<<10, 1), payload(64<<10, 101)
	if err := writeShard(ctx, d, shard(1), small); err != nil {
		t.Fatal(err)
	}
	if err := writeShard(ctx, d, shard(101), large); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second run deletes the log objects the first one found dead
		if _, err := d.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	snaps := listKeys(t, s, b, "snaplost/snap/")
	if len(snaps) != 1 {
		t.Fatalf("snapshots after compaction: %v, want one", snaps)
	}

	refuse.Store(true)
	if _, err := s.client("").DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: aws.String(snaps[0])}); err != nil {
		t.Fatal(err)
	}
	// Until the snapshot's rewrite has failed once.
	if !probeUntil(ctx, d, 20*c.VerifyEvery, func() bool { return d.Stats().Failures > 0 }) {
		passes, lost := d.Verifications()
		t.Fatalf("verification never tried to write the lost snapshot again (%d passes, %d objects found lost)", passes, lost)
	}
	refuse.Store(false) // the backend takes writes again

	probeUntil(ctx, d, 20*c.VerifyEvery, func() bool { return len(listKeys(t, s, b, "snaplost/snap/")) > 0 })
	passes, lost := d.Verifications()
	if got := listKeys(t, s, b, "snaplost/snap/"); len(got) == 0 {
		t.Errorf("%v after the backend took writes again (%d passes, %d objects found lost): no snapshot in the bucket, want the lost one written again", 20*c.VerifyEvery, passes, lost)
	}
	if lost == 0 {
		t.Errorf("the lost snapshot was never counted (%d passes)", passes)
	}
	d2 := open(t, s.config("", b, "snaplost")) // a restart
	if got, err := d2.GetRecord(ctx, "r1"); err != nil || string(got.Data) != "r1" {
		t.Errorf("a new Driver on the bucket: record r1: %q, %v", got.Data, err)
	}
	for name, dr := range map[string]*remote.Driver{"the drive": d, "a new Driver on the bucket": d2} {
		if got, err := readAll(ctx, dr, shard(101)); err != nil || !bytes.Equal(got, large) {
			t.Errorf("%s: large shard 101, intact when the snapshot was lost: %d bytes, %v", name, len(got), err)
		}
		if got, err := readAll(ctx, dr, shard(1)); err != nil || !bytes.Equal(got, small) {
			t.Errorf("%s: small shard 1, intact: %d bytes, %v", name, len(got), err)
		}
	}
}

// TestReview28rInlineShardOfUnlistedLogObject: a log object holding a
// small shard is deleted behind the drive's back while the drive is
// closed (a restart, an expiry's second wave during it), format.json
// kept. The new Driver's snapshot still points shard 1 into it, but the
// log object is not in d.segs (Open builds it from the listing), so the
// view never includes it: verification never finds the loss, and the
// index lists shard 1 (its bytes counted in Used) for good.
func TestReview28rInlineShardOfUnlistedLogObject(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "unlisted")
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	c.VerifyEvery = -1
	d1 := open(t, c)
	ctx := t.Context()
	if _, _, err := d1.PutRecord(ctx, driver.Record{Key: "r1", Version: version(1), Data: []byte("r1")}); err != nil {
		t.Fatal(err)
	}
	lostLog := newKeys(t, s, b, "unlisted/log/", func() error { return writeShard(ctx, d1, shard(1), payload(4<<10, 1)) })
	kept := payload(4<<10, 2)
	if err := writeShard(ctx, d1, shard(2), kept); err != nil {
		t.Fatal(err)
	}
	if _, err := d1.Compact(ctx); err != nil { // shard 1's location now lives in the snapshot
		t.Fatal(err)
	}
	d1.Close()
	if len(lostLog) != 1 {
		t.Fatalf("shard 1's write added log objects %v, want one", lostLog)
	}
	if _, err := s.client("").DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: aws.String(lostLog[0])}); err != nil {
		t.Fatal(err)
	}

	c.ProbeQuiet = time.Nanosecond
	c.VerifyEvery = 200 * time.Millisecond
	d := open(t, c)
	info0, err := d.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !probeUntil(ctx, d, 20*c.VerifyEvery, func() bool { _, n := d.Verifications(); return n > 0 }) {
		passes, n := d.Verifications()
		info, _ := d.Info(ctx)
		t.Errorf("after %d verification passes the drive found %d objects lost, want shard 1's log object %s; Used %d, was %d (shard 1 still in the index)",
			passes, n, lostLog[0], info.Usage.Used, info0.Usage.Used)
	}
	if _, err := readAll(ctx, d, shard(1)); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("shard 1, whose bytes were lost: %v, want driver.ErrNotFound", err)
	}
	if got, err := readAll(ctx, d, shard(2)); err != nil || !bytes.Equal(got, kept) {
		t.Errorf("shard 2, intact: %d bytes, %v", len(got), err)
	}
	if got, err := d.GetRecord(ctx, "r1"); err != nil || string(got.Data) != "r1" {
		t.Errorf("record r1: %q, %v", got.Data, err)
	}
}

// transientMiss opens a drive through a proxy that, for one moment,
// neither lists nor finds (HEAD 404) large shard 101's object, then shows
// it again (a provider's inconsistency: an erasure set below read quorum
// answers LIST and HEAD without it), and probes the drive until well
// after verification asked for it. It returns the drive, the object's key
// and the shard's bytes.
func transientMiss(t *testing.T, s server, b string) (*remote.Driver, string, []byte) {
	t.Helper()
	var hidden atomic.Pointer[string] // the key the backend does not show; nil: none
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
			hidden.Store(nil) // a moment: this one HEAD
			w.WriteHeader(http.StatusNotFound)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	c := s.config(srv.URL, b, "transient")
	c.ProbeQuiet = time.Nanosecond
	c.VerifyEvery = 200 * time.Millisecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	large := payload(64<<10, 101)
	objs := newKeys(t, s, b, "transient/obj/", func() error { return writeShard(ctx, d, shard(101), large) })
	if len(objs) != 1 {
		t.Fatalf("shard 101's write added objects %v, want one", objs)
	}
	hidden.Store(&objs[0])
	probeUntil(ctx, d, 20*c.VerifyEvery, func() bool { return hidden.Load() == nil })
	if hidden.Load() != nil {
		t.Fatal("verification never asked for the hidden object")
	}
	probeUntil(ctx, d, 10*c.VerifyEvery, func() bool { return false }) // let it act on what it saw
	return d, objs[0], large
}

// TestReview28rTransientMissDeletesIntactObject: after a moment's miss
// (see transientMiss), verification takes the single 404 as proof and
// deletes shard 101 from the index, and the deletion's orphan removal
// DELETEs the intact object: a moment's inconsistency becomes the loss of
// intact bytes. Whatever it concludes, the drive must not destroy bytes it
// only failed to see.
func TestReview28rTransientMissDeletesIntactObject(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	d, obj, _ := transientMiss(t, s, b)
	_, lost := d.Verifications()
	if _, err := s.client("").HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &b, Key: aws.String(obj)}); err != nil {
		t.Errorf("shard 101's intact object after a moment's miss (%d objects found lost): %v, want it kept", lost, err)
	}
}

// TestReview28rTransientMissDropsIntactShard: after a moment's miss (see
// transientMiss), the shard is dropped from the index on one 404 although
// its object is intact: a false loss (heal refills it, but until then the
// stripe has one redundancy less). lost() confirms its 404 of format.json
// with a second HEAD lostConfirm later; verification should too.
func TestReview28rTransientMissDropsIntactShard(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	d, _, large := transientMiss(t, s, b)
	_, lost := d.Verifications()
	if got, err := readAll(t.Context(), d, shard(101)); err != nil || !bytes.Equal(got, large) {
		t.Errorf("shard 101, intact, after a moment's miss (%d objects found lost): %d bytes, %v, want it kept", lost, len(got), err)
	}
}
