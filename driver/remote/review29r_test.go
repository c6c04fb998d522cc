package remote_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
)

// TestReview29rCompactWaitsOutReload: lost()'s reload now holds compactMu
// for its whole run, in the background, for as long as it takes (minutes
// on a large drive over a slow link). An exported Compact(ctx) took
// compactMu with Lock(), so a caller's deadline meant nothing: it hung
// until the reload ended (here until the held LIST is released). Compact
// must give up with its ctx.
func TestReview29rCompactWaitsOutReload(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := newHoldListProxy(t, s.endpoint, "/log/")
	c := s.config(p.URL, b, "r29rc")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.VerifyEvery = -1
	d := open(t, c)
	ctx := t.Context()
	if err := writeShard(ctx, d, shard(1), payload(4<<10, 1)); err != nil {
		t.Fatal(err)
	}
	deleteUnder(t, s, b, "r29rc/", func(k string) bool { return k != "r29rc/format.json" && !strings.Contains(k, "/obj/") })
	p.armed.Store(true)
	probed := make(chan error, 1)
	go func() { probed <- d.Probe(ctx) }()
	select {
	case <-p.listed:
	case err := <-probed:
		t.Fatalf("Probe returned before the reload listed log/: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the reload never listed log/")
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := d.Compact(cctx); done <- err }()
	var took time.Duration
	var err error
	select {
	case err = <-done:
		took = time.Since(start)
	case <-time.After(3 * time.Second):
		took = time.Since(start)
	}
	close(p.release)
	if took >= 3*time.Second {
		<-done
		t.Errorf("Compact with a 300 ms ctx during the reload still waiting after %v (compactMu taken without its ctx)", took.Round(time.Millisecond))
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("Compact during the reload: %v after %v", err, took)
	}
	<-probed
	if !probeUntil(ctx, d, 10*time.Second, func() bool { return d.Losses() == 1 && d.Probe(ctx) == nil }) {
		t.Fatalf("the drive is not back: Losses %d, Probe %v", d.Losses(), d.Probe(ctx))
	}
	if _, err := d.Compact(ctx); err != nil {
		t.Errorf("Compact after the reload: %v", err)
	}
	if got, err := readAll(ctx, d, shard(1)); err != nil || len(got) != 4<<10 {
		t.Errorf("shard 1 after the reload: %d bytes, %v", len(got), err)
	}
	_ = driver.ErrOffline
}

// TestReview29rCloseDuringReload: Close while lost()'s reload is held in
// its LIST of log/ (and a write and a joined probe are under way) returns
// promptly: the reload runs on closeCtx. Then a reopen reads everything
// acknowledged (a sound check, passes on the branch).
func TestReview29rCloseDuringReload(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := newHoldListProxy(t, s.endpoint, "/log/")
	c := s.config(p.URL, b, "r29rx")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.VerifyEvery = -1
	d := open(t, c)
	ctx := t.Context()
	if err := writeShard(ctx, d, shard(1), payload(4<<10, 1)); err != nil {
		t.Fatal(err)
	}
	deleteUnder(t, s, b, "r29rx/", func(k string) bool { return k != "r29rx/format.json" && !strings.Contains(k, "/obj/") })
	p.armed.Store(true)
	probed := make(chan error, 1)
	go func() { probed <- d.Probe(context.Background()) }() // no deadline: joined until the run ends
	select {
	case <-p.listed:
	case err := <-probed:
		t.Fatalf("Probe returned before the reload listed log/: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the reload never listed log/")
	}
	if err := writeShard(ctx, d, shard(2), payload(4<<10, 2)); err != nil {
		t.Fatalf("write during the reload: %v", err)
	}
	closed := make(chan struct{})
	start := time.Now()
	go func() { d.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		close(p.release)
		t.Fatalf("Close during the reload still waiting after %v", time.Since(start))
	}
	select {
	case err := <-probed:
		if !errors.Is(err, driver.ErrOffline) {
			t.Errorf("joined probe: %v, want ErrOffline", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the joined probe did not return after Close")
	}
	close(p.release)
	c2 := s.config(s.endpoint, b, "r29rx")
	c2.CompactInterval = -1
	c2.VerifyEvery = -1
	c2.Reformat = true // format.json is still missing: the reload never finished
	d2 := open(t, c2)
	for i := 1; i <= 2; i++ {
		if got, err := readAll(ctx, d2, shard(i)); err != nil || len(got) != 4<<10 {
			t.Errorf("shard %d after reopen: %d bytes, %v", i, len(got), err)
		}
	}
}

// TestReview29rFencedNodeReloads: a node whose fence refuses (the drive
// was adopted by another node) must not handle a lost format.json: that
// is the owner's. verifyStep checks the fence first; lost() did not, so
// at every probe the deposed node started a background reload of the
// whole index (minutes of LIST and GET on a large drive, now no longer
// cut by the probe's deadline), swapped it in, and failed only at its
// first write (the lost-shard deletions or format.json), to start again
// at the next probe.
func TestReview29rFencedNodeReloads(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := newHoldListProxy(t, s.endpoint, "/log/")
	var owned atomic.Bool
	owned.Store(true)
	c := s.config(p.URL, b, "r29rf")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.VerifyEvery = -1
	c.Fence = remote.FenceFunc(func(context.Context) error {
		if owned.Load() {
			return nil
		}
		return errors.New("adopted by another node")
	})
	d := open(t, c)
	ctx := t.Context()
	if err := writeShard(ctx, d, shard(1), payload(4<<10, 1)); err != nil {
		t.Fatal(err)
	}
	owned.Store(false)
	deleteUnder(t, s, b, "r29rf/", func(k string) bool { return k != "r29rf/format.json" })
	p.armed.Store(true)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := d.Probe(pctx)
	if !errors.Is(err, driver.ErrOffline) {
		t.Errorf("fenced Probe with format.json lost: %v, want driver.ErrOffline", err)
	}
	select {
	case <-p.listed:
		close(p.release)
		t.Errorf("a fenced node began reloading the index after format.json was lost (Probe: %v)", err)
	case <-time.After(time.Second):
	}
}
