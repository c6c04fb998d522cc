package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// TestRunHealer: a read that meets a drive which missed an overwrite
// queues the artifact, and the healer loop repairs it without anyone
// calling Heal.
func TestRunHealer(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	r.e.cfg.HealInterval = 20 * time.Millisecond
	data := randBytes(9, 300_000)
	r.put(t, "k", data, -1)
	r.faultyOf("k", 0).SetOffline(true)
	r.put(t, "k", append([]byte("v2"), data...), -1)
	r.faultyOf("k", 0).SetOffline(false)
	if got, err := r.get("k", 0, 2); err != nil || string(got) != "v2" {
		t.Fatalf("degraded read: %q, %v", got, err)
	}
	if len(r.e.Degraded()) != 1 {
		t.Fatalf("heal queue %v, want the artifact", r.e.Degraded())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.e.RunHealer(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.e.Degraded()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if len(r.e.Degraded()) > 0 || r.e.Stats().Repairs == 0 {
		t.Fatalf("healer left %v queued, %d repairs", r.e.Degraded(), r.e.Stats().Repairs)
	}
	// The repaired drive now serves with two others offline.
	r.faultyOf("k", 1).SetOffline(true)
	r.faultyOf("k", 2).SetOffline(true)
	if got, err := r.get("k", 0, 2); err != nil || string(got) != "v2" {
		t.Fatalf("read through the healed drive: %q, %v", got, err)
	}
}

// TestHealerKeepsUnwritableWork: an artifact whose repair target cannot be
// written stays queued, retried with a growing delay, and is repaired once
// the drive is back. (The healer used to drop it as if healed.)
func TestHealerKeepsUnwritableWork(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	r.e.cfg.HealInterval = 20 * time.Millisecond
	r.e.cfg.HealBackoffMax = 200 * time.Millisecond
	data := randBytes(11, 300_000)
	r.put(t, "k", data, -1)
	files := shardFiles(t, r.dirOf("k", 1))
	if len(files) != 1 {
		t.Fatalf("shard files of shard 1: %v", files)
	}
	want, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("degraded read: %d bytes, %v", len(got), err)
	}
	r.faultyOf("k", 1).SetOffline(true) // the drive fails before the healer gets to it
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.e.RunHealer(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(1500 * time.Millisecond)
	st := r.e.Stats()
	if q := r.e.Degraded(); len(q) != 1 || st.Repairs != 0 {
		t.Fatalf("with the target unwritable: queue %v, %d repairs; want the artifact still queued, none repaired", q, st.Repairs)
	}
	// Retried, but backing off: at a fixed 20 ms there would be ~75 tries.
	if st.HealFailures < 2 || st.HealFailures > 30 {
		t.Fatalf("%d failed heal attempts in 1.5 s, want a few (retried with backoff)", st.HealFailures)
	}

	r.faultyOf("k", 1).SetOffline(false)
	deadline := time.Now().Add(20 * time.Second)
	for len(r.e.Degraded()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if q, st := r.e.Degraded(), r.e.Stats(); len(q) != 0 || st.Repairs != 1 {
		t.Fatalf("after the drive recovered: queue %v, %d repairs; want it healed once", q, st.Repairs)
	}
	if got, err := os.ReadFile(files[0]); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("rebuilt shard file: %d bytes, %v; want the original %d bytes", len(got), err, len(want))
	}
}

func TestHealBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second}, {7, time.Minute}, {1000, time.Minute}} {
		if got := healBackoff(time.Second, time.Minute, tc.n); got != tc.want {
			t.Errorf("healBackoff(1s, 1m, %d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

// TestHealerRetriesAllWhenADriveReturns: artifacts put while a drive was
// offline are queued at once and fail to heal, their retry delays growing
// towards HealBackoffMax. Once one heal that had failed goes through (the
// drive is back), the others are retried at the next round, not after
// their backoff.
func TestHealerRetriesAllWhenADriveReturns(t *testing.T) {
	r, items := putWithDriveOffline(t, 3)
	now := time.Now()
	for i, it := range items {
		if _, err := r.e.Heal(t.Context(), it.Tenant, it.Container, it.Key); err == nil {
			t.Fatalf("heal %s with its drive offline succeeded", it.Key)
		}
		if !slices.Contains(r.e.Degraded(), it) {
			t.Fatalf("%s not queued after its put and a failed heal", it.Key)
		}
		// The first is due again soon; the others have failed long
		// enough to wait the full hour.
		for range 1 + 30*min(i, 1) {
			r.e.healFailed(it, now)
		}
	}
	r.faulty[0].SetOffline(false)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.e.RunHealer(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.e.Degraded()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if q := r.e.Degraded(); len(q) > 0 {
		t.Fatalf("healer left %v queued after the drive returned", q)
	}
}

// TestRetryHealsForgetsFailures: after a drive is back (RetryHeals), an
// artifact that had failed 30 times during the outage and fails once
// more (the drive still warming up) is retried after the base interval,
// not after the backoff the outage reached (HealBackoffMax, an hour here).
func TestRetryHealsForgetsFailures(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	r.e.cfg.HealInterval = time.Second
	r.e.cfg.HealBackoffMax = time.Hour
	it := HealItem{"t", "c", "k"}
	r.e.enqueueHeal(it)
	now := time.Now()
	for range 30 {
		r.e.healFailed(it, now)
	}
	if due := r.e.dueHeals(now.Add(time.Minute)); slices.Contains(due, it) {
		t.Fatal("after 30 failures the artifact is due within a minute: the backoff did not grow")
	}
	r.e.RetryHeals()
	if due := r.e.dueHeals(now); !slices.Contains(due, it) {
		t.Fatal("RetryHeals: the artifact is not due at once")
	}
	r.e.healFailed(it, now)
	if due := r.e.dueHeals(now.Add(2 * time.Second)); !slices.Contains(due, it) {
		t.Fatalf("one failure after RetryHeals: not due 2 s later (failures %d)", r.e.healFailures(it))
	}
}

// TestHealerWakesWhatADriveBlocked: artifacts whose heals failed while a
// drive was offline wait out a long backoff; once the drive is back and
// the healer writes to it for another artifact (queued by its put, never
// failed: so not the "a failed heal went through" signal of
// TestHealerRetriesAllWhenADriveReturns, nor a probe's RetryHeals), the
// ones it blocked are retried at the next round, not an hour later.
func TestHealerWakesWhatADriveBlocked(t *testing.T) {
	r, items := putWithDriveOffline(t, 4)
	fresh, blocked := items[0], items[1:]
	now := time.Now()
	for _, it := range blocked {
		if _, err := r.e.Heal(t.Context(), it.Tenant, it.Container, it.Key); err == nil {
			t.Fatalf("heal %s with its drive offline succeeded", it.Key)
		}
		for range 30 {
			r.e.healFailed(it, now)
		}
	}
	if !slices.Contains(r.e.dueHeals(now), fresh) {
		t.Fatalf("%s, put with a drive offline, is not due", fresh.Key)
	}
	r.faulty[0].SetOffline(false)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.e.RunHealer(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.e.Degraded()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if q := r.e.Degraded(); len(q) > 0 {
		t.Fatalf("healer left %v queued after the drive returned and took %s's repair", q, fresh.Key)
	}
}

// TestHealWakesBounded: a drive that takes other artifacts' repairs but
// keeps refusing one artifact's makes it due early at most maxHealWakes
// times; after that its backoff decides.
func TestHealWakesBounded(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	r.e.cfg.HealInterval = time.Second
	r.e.cfg.HealBackoffMax = time.Hour
	it := HealItem{"t", "c", "k"}
	id := r.ids[0]
	r.e.enqueueHeal(it)
	now := time.Now()
	for i := range maxHealWakes + 2 {
		r.e.blockHeal(it, []placement.DriveID{id})
		for range 30 {
			r.e.healFailed(it, now)
		}
		r.e.drivesBack([]placement.DriveID{r.ids[1]})
		if slices.Contains(r.e.dueHeals(now), it) {
			t.Fatalf("round %d: another drive's return made it due", i)
		}
		r.e.drivesBack([]placement.DriveID{id})
		if due := slices.Contains(r.e.dueHeals(now), it); due != (i < maxHealWakes) {
			t.Fatalf("round %d: due after its drive came back = %v, want %v", i, due, i < maxHealWakes)
		}
	}
	r.e.unqueueHeal(it)
	if len(r.e.blocked) != 0 {
		t.Fatalf("index keeps %v after the artifact left the queue", r.e.blocked)
	}
}

// TestHealKeepsWhatWasQueuedMeanwhile: an artifact queued again while its
// heal ran (a newer PUT left short after the heal had located the version
// before, a read or scan meeting it degraded) is not unqueued by that
// heal: it stays, due at once.
func TestHealKeepsWhatWasQueuedMeanwhile(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	key := "k"
	r.put(t, key, randBytes(3, 100_000), -1)
	it := HealItem{"t", "c", key}
	f := r.faultyOf(key, 0)
	var requeued atomic.Bool
	f.SetBeforeGetRecord(func(ctx context.Context, k string) {
		if requeued.CompareAndSwap(false, true) {
			r.e.queueHealWritten(it) // as a newer PUT left short meanwhile
		}
	})
	r.e.queueHealWritten(it)
	if _, err := r.e.healItem(t.Context(), it, true); err != nil {
		t.Fatal(err)
	}
	f.SetBeforeGetRecord(nil)
	if !requeued.Load() {
		t.Fatal("the heal read no record of drive 0")
	}
	if !slices.Contains(r.e.dueHeals(time.Now()), it) {
		t.Fatal("queued again while its heal ran: unqueued by that heal")
	}
	if _, err := r.e.healItem(t.Context(), it, true); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(r.e.Degraded(), it) {
		t.Fatal("still queued after a heal with nothing queued meanwhile")
	}
}

// putWithDriveOffline makes a rig whose healer works every 20 ms with an
// hour's backoff cap, and puts artifacts with its first drive offline
// (left offline) until n of them have that drive in their set: each is
// queued for healing by its put.
func putWithDriveOffline(t *testing.T, n int) (*rig, []HealItem) {
	t.Helper()
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	r.e.cfg.HealInterval = 20 * time.Millisecond
	r.e.cfg.HealBackoffMax = time.Hour
	r.faulty[0].SetOffline(true)
	var items []HealItem
	for i := 0; len(items) < n && i < 100; i++ {
		key := fmt.Sprintf("k%02d", i)
		r.put(t, key, randBytes(uint64(i), 100_000), -1)
		if slices.Contains(r.e.mapOf().Set(r.e.mapOf().PGOf("t", "c", key)), r.ids[0]) {
			items = append(items, HealItem{"t", "c", key})
		}
	}
	if len(items) < n {
		t.Fatalf("fewer than %d keys on the offline drive", n)
	}
	return r, items
}
