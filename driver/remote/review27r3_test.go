package remote_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// holdListProxy is a reverse proxy that, once armed, holds the answer of
// the first LIST whose prefix ends with suffix: the backend has computed
// it, the client has not got it yet. listed is closed then; the answer
// goes on when release is closed.
type holdListProxy struct {
	*httptest.Server
	armed   atomic.Bool
	once    sync.Once
	listed  chan struct{}
	release chan struct{}
}

func newHoldListProxy(t *testing.T, target, suffix string) *holdListProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	h := &holdListProxy{listed: make(chan struct{}), release: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(r *http.Response) error {
		q := r.Request.URL.Query()
		if h.armed.Load() && r.Request.Method == http.MethodGet && q.Get("list-type") == "2" && strings.HasSuffix(q.Get("prefix"), suffix) {
			hit := false
			h.once.Do(func() { hit = true })
			if hit {
				close(h.listed)
				select {
				case <-h.release:
				case <-time.After(10 * time.Second):
				}
			}
		}
		return nil
	}
	h.Server = httptest.NewServer(rp)
	t.Cleanup(h.Close)
	return h
}

// TestReview27r3LostDeletesNewWrites: lost() lists log/ and obj/ with no
// lock held (writes and the flusher go on, as they must), then reads the
// index and calls every shard whose object the listing did not show
// "lost". A shard written, committed and acknowledged while the listing
// runs has its object created after the listing saw the prefix: its log
// object (small shard) or its own obj/ object (large shard) is not in the
// listing, so lost() deletes it through the log. An acknowledged write is
// gone, with no copy lost by the bucket: heal must rebuild it from peers
// (none for a 1+1 remote tier artifact whose other drive is the one
// written to next). On a big drive the listing takes seconds (N3's
// scale), so the window is wide, and it is the time right after an
// incident when the engine writes (heal, new objects) to this drive.
func TestReview27r3LostDeletesNewWrites(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := newHoldListProxy(t, s.endpoint, "/obj/")
	c := s.config(p.URL, b, "lostnew")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	if err := writeShard(ctx, d, shard(1), payload(4<<10, 1)); err != nil {
		t.Fatal(err)
	}
	deleteUnder(t, s, b, "lostnew/", func(k string) bool { return k != "lostnew/format.json" })
	p.armed.Store(true)
	probed := make(chan error, 1)
	go func() { probed <- d.Probe(ctx) }()
	select {
	case <-p.listed:
	case err := <-probed:
		t.Fatalf("Probe returned before listing obj/: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("lost() never listed obj/")
	}
	// While lost()'s listing is in flight: two acknowledged writes.
	small, big := payload(4<<10, 7), payload(64<<10, 8)
	if err := writeShard(ctx, d, shard(7), small); err != nil { // a new log object
		t.Fatal(err)
	}
	if err := writeShard(ctx, d, shard(8), big); err != nil { // its own obj/ object
		t.Fatal(err)
	}
	close(p.release)
	if err := <-probed; !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("Probe after the loss: %v, want driver.ErrOffline", err)
	}
	t.Logf("lost(): %v", err2str(d.Probe(ctx)))
	if got, err := readAll(ctx, d, shard(7)); err != nil || !bytes.Equal(got, small) {
		t.Errorf("small shard written and acknowledged during lost()'s listing: %d bytes, %v; lost() deleted it", len(got), err)
	}
	if got, err := readAll(ctx, d, shard(8)); err != nil || !bytes.Equal(got, big) {
		t.Errorf("large shard written and acknowledged during lost()'s listing: %d bytes, %v; lost() deleted it", len(got), err)
	}
}

func err2str(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestReview27r3LostDeletesMovedShard: the same window, hit by
// compaction instead of a write. reloadLost releases compactMu before
// missingShards lists the bucket, so a compaction (the background loop,
// or one whose TryLock raced) can move a live inline shard from a sparse
// log object, listed and intact, into a new log object the listing does
// not show. missingShards then reads the moved location and calls the
// shard lost: data the bucket never lost is deleted by the drive.
// (CompactRatio 1 makes the one-shard log object "sparse" so that the
// move is deterministic; at the default 0.5 any log object with half of
// its shards deleted is moved the same way.)
func TestReview27r3LostDeletesMovedShard(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := newHoldListProxy(t, s.endpoint, "/obj/")
	c := s.config(p.URL, b, "lostmv")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.CompactRatio = 1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	data := payload(4<<10, 3)
	if err := writeShard(ctx, d, shard(3), data); err != nil {
		t.Fatal(err)
	}
	deleteUnder(t, s, b, "lostmv/", func(k string) bool { return k != "lostmv/format.json" })
	p.armed.Store(true)
	probed := make(chan error, 1)
	go func() { probed <- d.Probe(ctx) }()
	select {
	case <-p.listed:
	case err := <-probed:
		t.Fatalf("Probe returned before listing obj/: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("lost() never listed obj/")
	}
	st, err := d.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compaction during lost()'s listing: %+v", st)
	close(p.release)
	if err := <-probed; !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("Probe after the loss: %v, want driver.ErrOffline", err)
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("second Probe: %v", err)
	}
	if got, err := readAll(ctx, d, shard(3)); err != nil || !bytes.Equal(got, data) {
		t.Errorf("shard intact in the bucket, moved by compaction during lost()'s listing: %d bytes, %v; lost() deleted it", len(got), err)
	}
}

// TestReview27r3LostSecondWaveUnseen: a lifecycle rule that expires the
// bucket's objects by age (a trigger lost()'s own comment names) takes
// format.json first — it is the oldest object — and the next-oldest
// objects (the log objects and large-shard objects of the drive's first
// days) a little later. lost() handles the first wave and writes
// format.json again, which makes the canary the *youngest* object: the
// second wave, real data, goes unnoticed. Probe reports the drive
// healthy for good while its index lists shards whose objects are gone,
// so the scanner sees nothing missing and nothing is healed (F1 again),
// until format.json itself ages out. Fixed by the periodic verification
// (verify.go): within a few VerifyEvery the probe finds the loss and the
// index no longer lists the shard.
func TestReview27r3LostSecondWaveUnseen(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "lostw2")
	c.ProbeQuiet = time.Nanosecond
	c.VerifyEvery = 200 * time.Millisecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	big := payload(64<<10, 5)
	if err := writeShard(ctx, d, shard(5), big); err != nil { // its own object
		t.Fatal(err)
	}
	// Wave 1: format.json.
	deleteUnder(t, s, b, "lostw2/", func(k string) bool { return k != "lostw2/format.json" })
	if err := d.Probe(ctx); !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("Probe after wave 1: %v, want driver.ErrOffline", err)
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("second Probe: %v", err)
	}
	// Wave 2: the next-oldest objects, the large shard's among them.
	gone := deleteUnder(t, s, b, "lostw2/obj/", nil)
	t.Logf("wave 2: %v", gone)
	// A few verification periods of probes, as the engine sends them.
	var probe, lerr error
	for deadline := time.Now().Add(10 * c.VerifyEvery); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		probe = d.Probe(ctx)
		var rc io.ReadCloser
		rc, lerr = d.ReadShard(ctx, shard(5), 0, 0) // no GET: what the index says
		if lerr == nil {
			rc.Close()
		}
		if probe != nil || lerr != nil {
			break
		}
	}
	if probe == nil && lerr == nil {
		t.Fatalf("after the second wave Probe reports the drive healthy and the index still lists shard 5, whose object is gone (read: %v)", err2str(func() error { _, err := readAll(ctx, d, shard(5)); return err }()))
	}
	t.Logf("probe after the second wave: %v", err2str(probe))
	if _, err := readAll(ctx, d, shard(5)); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("shard 5, lost in the second wave: %v, want driver.ErrNotFound (missing, for heal to refill)", err)
	}
	if err := d.Probe(ctx); err != nil {
		t.Errorf("Probe after the loss was handled: %v, want the drive back", err)
	}
}
