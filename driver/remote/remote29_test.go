package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/internal/faultproxy"
)

// TestRemote29LostReloadLetsWritesThrough: after format.json is lost,
// lost()'s reload lists and reads the bucket (minutes on a large drive);
// writes to the drive meanwhile must not wait for it (review 27r3 S2:
// the reload held flushMu throughout, so every flush waited). The
// reload's LIST of log/ is held here; meanwhile new shards, a record and
// a rewrite of a lost shard are acknowledged within 3 s each. Once the
// reload is done: each of those is in the index and in the bucket (a new
// reader sees them), the shard lost and not rewritten is missing (for
// heal to refill), what survived in the bucket is intact.
func TestRemote29LostReloadLetsWritesThrough(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := newHoldListProxy(t, s.endpoint, "/log/")
	c := s.config(p.URL, b, "lostw")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.VerifyEvery = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	want := map[int][]byte{1: payload(4<<10, 1), 2: payload(64<<10, 2), 3: payload(64<<10, 3)} // small; large, lost; large, lost and rewritten
	for i, data := range want {
		if err := writeShard(ctx, d, shard(i), data); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "r0", Version: version(1), Data: []byte("r0")}); err != nil {
		t.Fatal(err)
	}
	// The loss: format.json and the large shards' objects; the log
	// objects survive.
	deleteUnder(t, s, b, "lostw/", func(k string) bool { return k != "lostw/format.json" && !strings.Contains(k, "/obj/") })
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
	// While the reload's listing is in flight: acknowledged writes.
	during := map[int][]byte{3: payload(64<<10, 33), 7: payload(4<<10, 7), 8: payload(64<<10, 8)}
	write := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		if err := f(wctx); err != nil {
			t.Fatalf("%s during the reload: %v after %v (the write waited for the reload)", what, err, time.Since(start).Round(time.Millisecond))
		}
	}
	for i, data := range during {
		write(fmt.Sprintf("shard %d", i), func(ctx context.Context) error { return writeShard(ctx, d, shard(i), data) })
	}
	write("record r1", func(ctx context.Context) error {
		_, _, err := d.PutRecord(ctx, driver.Record{Key: "r1", Version: version(1), Data: []byte("r1")})
		return err
	})
	close(p.release)
	select {
	case err := <-probed:
		if !errors.Is(err, driver.ErrOffline) {
			t.Fatalf("Probe that found the loss: %v, want driver.ErrOffline", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Probe that found the loss did not return")
	}
	if !probeUntil(ctx, d, 10*time.Second, func() bool { return d.Losses() == 1 && d.Probe(ctx) == nil }) {
		t.Fatalf("the drive is not back 10 s after the reload was released: Losses %d, Probe %v", d.Losses(), d.Probe(ctx))
	}
	want[3] = during[3]
	want[7], want[8] = during[7], during[8]
	rcfg := s.config("", b, "lostw")
	rcfg.ReadOnly = true
	reader := open(t, rcfg) // what the bucket holds now
	for name, dr := range map[string]driver.Driver{"the drive": d, "a reader of the bucket": reader} {
		for _, k := range []string{"r0", "r1"} {
			if got, err := dr.GetRecord(ctx, k); err != nil || string(got.Data) != k {
				t.Errorf("%s: record %s: %q, %v", name, k, got.Data, err)
			}
		}
		for i, data := range want {
			got, err := readAll(ctx, dr, shard(i))
			switch {
			case i == 2:
				if !errors.Is(err, driver.ErrNotFound) {
					t.Errorf("%s: shard 2, lost with the bucket's obj/: %v, want driver.ErrNotFound (missing, for heal to refill)", name, err)
				}
			case err != nil || !bytes.Equal(got, data):
				t.Errorf("%s: shard %d: %d bytes, %v; want its %d acknowledged bytes", name, i, len(got), err, len(data))
			}
		}
	}
}

// TestRemote29LostReloadOutlastsProbes: the reload after format.json is
// lost reads every log object after the snapshot; on a large drive over a
// slow link it needs longer than one probe's context. It runs on past the
// probe (on the driver's close context), later probes join it, and the
// drive comes back (before, the reload ran within each probe's context
// and was cut at every one: the drive never came back). Here 50 log
// objects and no snapshot, 100 ms per request (a reload of 5 s or more)
// and probes of 1 s.
func TestRemote29LostReloadOutlastsProbes(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := proxy(t, s.endpoint)
	c := s.config(p.URL, b, "lostlong")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.VerifyEvery = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	const n = 50
	for i := range n {
		if err := writeShard(ctx, d, shard(i), payload(1<<10, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	deleteUnder(t, s, b, "lostlong/", func(k string) bool { return k != "lostlong/format.json" })
	p.Set(faultproxy.Faults{Latency: 100 * time.Millisecond})
	var errs []error
	start := time.Now()
	for probes := 0; ; probes++ {
		if probes == 30 || time.Since(start) > 60*time.Second {
			t.Fatalf("the drive never came back after losing format.json alone: %d probes of 1 s, %v; last errors %v", probes, time.Since(start).Round(time.Second), errs[max(0, len(errs)-3):])
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := d.Probe(pctx)
		cancel()
		if err == nil && d.Losses() == 1 {
			break
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	p.Set(faultproxy.Faults{})
	t.Logf("back after %d failed probes, %v", len(errs), time.Since(start).Round(time.Millisecond))
	if len(errs) < 2 {
		t.Errorf("the reload took %d probes: the test wants it to outlast one (slower latency?)", len(errs))
	}
	for i := range n {
		if got, err := readAll(ctx, d, shard(i)); err != nil || !bytes.Equal(got, payload(1<<10, uint64(i))) {
			t.Errorf("shard %d, intact in the bucket: %d bytes, %v", i, len(got), err)
		}
	}
}
