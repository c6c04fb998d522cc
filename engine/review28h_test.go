package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// healerRound heals it as one round of RunHealer does: light if its
// queue entry says so, healFailed on an error.
func healerRound(t *testing.T, r *rig, it HealItem) ([]int, error) {
	t.Helper()
	shards, err := r.e.healItem(t.Context(), it, r.e.healLight(it))
	if err != nil {
		r.e.healFailed(it, time.Now())
	}
	return shards, err
}

// TestReview28hLightHealSwallowsReadReport: an artifact its put left
// short is queued light (presence check). While the healer's light heal
// of it runs, a read meets a corrupt shard and queues it (queueHeal: a
// full verify wanted, addHeal clears light). The light heal finds every
// shard present, repairs nothing, and unqueueHeal drops the entry the
// read just asked a full heal of: the corrupt shard stays until the
// scrubber's next pass, one healthy shard fewer than a full heal leaves.
// Shown by reading with two other drives of the 2+2 set offline.
func TestReview28hLightHealSwallowsReadReport(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	const size = 300 << 10
	key := "rot"
	data := randBytes(28, size)
	r.put(t, key, data, size)
	item := HealItem{"t", "c", key}
	flipShardByte(t, r, key, 0) // a data shard: a read meets it
	r.e.queueHealWritten(item)  // as a put that missed a drive's straggler grace
	if !r.e.healLight(item) {
		t.Fatal("queued by its put: not light")
	}
	// A GET that runs while the heal locates the record.
	var fired atomic.Bool
	r.faultyOf(key, 3).SetBeforeGetRecord(func(ctx context.Context, k string) {
		if !fired.CompareAndSwap(false, true) {
			return
		}
		got, err := r.get(key, 0, -1)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("read during the heal: %v", err)
		}
		if r.e.healLight(item) {
			t.Error("a read met the corrupt shard: still light")
		}
	})
	if _, err := healerRound(t, r, item); err != nil {
		t.Fatalf("heal: %v", err)
	}
	r.faultyOf(key, 3).SetBeforeGetRecord(nil)
	if !fired.Load() {
		t.Fatal("no read ran during the heal")
	}
	// The healer's next rounds: whatever is still queued is healed.
	for i := 0; i < 3 && slices.Contains(r.e.Degraded(), item); i++ {
		if _, err := healerRound(t, r, item); err != nil {
			t.Fatalf("heal round %d: %v", i+2, err)
		}
	}
	queued := r.e.Degraded()
	r.faultyOf(key, 1).SetOffline(true)
	r.faultyOf(key, 2).SetOffline(true)
	if got, err := r.get(key, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the healer's rounds (queue then %v), a read with slots 1 and 2 offline: %v: the corrupt shard 0 the read reported was never repaired", queued, err)
	}
}

// TestReview28hStripedPartBlockerIsHomeSlot: a striped artifact's part
// lives on another PG's drives. When a part's drive (one outside the home
// set) keeps its heal from completing, blockHeal records slotIDs(loc,
// failed), the home set's drive at that slot, which was never away; the
// part's drive coming back (a heal writes to it: drivesBack) does not
// make the artifact due, and it waits out its backoff, what 8cf2020 set
// out to end. (The same slotIDs names the home drives, not the part's,
// in drivesBack after a repair of a part.)
func TestReview28hStripedPartBlockerIsHomeSlot(t *testing.T) {
	r := newStripeRig(t, 8)
	r.e.cfg.HealInterval = time.Second
	r.e.cfg.HealBackoffMax = time.Hour
	chunk := stripeChunkStripes * stripeTestStripe
	key := "k"
	data := randBytes(5, 10*chunk+1234)
	r.put(t, key, data, int64(len(data)))
	rec := r.homeRecord(t, key)
	if !rec.striped() {
		t.Fatal("not striped")
	}
	m := r.e.mapOf()
	home := m.Set(rec.PG)
	var x placement.DriveID
	slot := -1
	for p := range rec.Parts {
		set := m.Set(rec.partPG(p))
		for j, id := range set {
			if !slices.Contains(home, id) {
				x, slot = id, j
				break
			}
		}
		if slot >= 0 {
			break
		}
	}
	if slot < 0 {
		t.Fatal("no part drive outside the home set")
	}
	fx := r.faulty[slices.Index(r.ids, x)]
	fx.SetOffline(true)
	item := HealItem{"t", "c", key}
	r.e.enqueueHeal(item)
	if _, err := healerRound(t, r, item); !errors.Is(err, ErrHealIncomplete) {
		t.Fatalf("heal with part drive %s offline: %v, want ErrHealIncomplete", x, err)
	}
	for range 30 {
		r.e.healFailed(item, time.Now())
	}
	fx.SetOffline(false)
	now := time.Now()
	r.e.drivesBack([]placement.DriveID{x})
	back := slices.Contains(r.e.dueHeals(now), item)
	r.e.drivesBack([]placement.DriveID{home[slot]})
	woke := !back && slices.Contains(r.e.dueHeals(now), item)
	if !back {
		t.Fatalf("part drive %s (slot %d) is back and written to: %s not due; home drive %s, never away, wakes it: %v", x, slot, key, home[slot], woke)
	}
}

// TestReview28hWakeLostToHealFailed: RunHealer registers an artifact's
// blockers inside healItem and only then, back in its loop, pushes its
// retry out (healFailed). A heal run meanwhile by the scrubber or
// migration (Heal, not the healer) that writes to the blocking drive
// (drivesBack) makes it due and drops its blockers; healFailed then sets
// the backoff again and nothing is left to wake it: it waits out the
// backoff (HealBackoffMax after an outage) although its drive is back.
// The interleaving is replayed here call by call.
func TestReview28hWakeLostToHealFailed(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	r.e.cfg.HealInterval = time.Second
	r.e.cfg.HealBackoffMax = time.Hour
	it := HealItem{"t", "c", "k"}
	id := r.ids[0]
	r.e.enqueueHeal(it)
	for range 30 {
		r.e.healFailed(it, time.Now()) // an outage's worth of failures
	}
	// The healer's next attempt (drive still away, healItem failing).
	r.e.blockHeal(it, []placement.DriveID{id})
	// The drive is back; a scrub's Heal of another artifact writes to it.
	r.e.drivesBack([]placement.DriveID{id})
	// RunHealer, on healItem's error.
	r.e.healFailed(it, time.Now())
	if !slices.Contains(r.e.dueHeals(time.Now()), it) {
		t.Fatalf("its drive came back while its failed heal returned: not due for %v; blockers left %v", healBackoff(r.e.cfg.HealInterval, r.e.cfg.HealBackoffMax, r.e.healFailures(it)), r.e.blocked)
	}
}

// TestReview28hInFlightRecordDriveWakes: a drive holding a record newer
// than the version healed, younger than InFlightGrace (a write that may
// still be acknowledged), is left alone and counted unwritable; Heal's
// failure path records it as a blocker. That drive is not away: the next
// heal of any other artifact that writes to it (drivesBack) makes this
// one due at once, to fail the same way until InFlightGrace passes: a
// whole-artifact verify per wake, and the maxHealWakes budget burnt on a
// drive that never left.
func TestReview28hInFlightRecordDriveWakes(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	r.e.cfg.HealInterval = time.Second
	r.e.cfg.HealBackoffMax = time.Hour
	key := "inflight"
	r.put(t, key, randBytes(7, 200<<10), -1)
	ikey := indexPrefix("t", "c") + key
	d := r.faultyOf(key, 1)
	got, err := d.GetRecord(t.Context(), ikey)
	if err != nil {
		t.Fatal(err)
	}
	// A newer write of it, landed on this drive only so far.
	rec, err := unmarshalRecord(got.Data)
	if err != nil {
		t.Fatal(err)
	}
	rec.Version, _ = r.e.newVersion()
	got.Version, got.Data = rec.Version, rec.marshal()
	if _, _, err := d.PutRecord(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	item := HealItem{"t", "c", key}
	r.e.enqueueHeal(item)
	if _, err := healerRound(t, r, item); !errors.Is(err, ErrHealIncomplete) {
		t.Fatalf("heal beside a young newer record: %v, want ErrHealIncomplete", err)
	}
	for range 30 {
		r.e.healFailed(item, time.Now())
	}
	// The healer repairs another artifact on that drive.
	id := r.e.mapOf().Set(r.e.mapOf().PGOf("t", "c", key))[1]
	r.e.drivesBack([]placement.DriveID{id})
	if slices.Contains(r.e.dueHeals(time.Now()), item) {
		t.Fatalf("drive %s, never away, holding a write in flight, took another repair: %s due at once, to meet the same young record", id, key)
	}
}

// recordRefuser fails PutRecord while refuse is set.
type recordRefuser struct {
	driver.Driver
	refuse atomic.Bool
}

func (d *recordRefuser) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if d.refuse.Load() {
		return driver.Record{}, false, fmt.Errorf("review28h: put record: %w", drivertest.ErrInjected)
	}
	return d.Driver.PutRecord(ctx, r)
}

// TestReview28hRecordWriteBlocksDrivesThatTookIt: two drives of the set
// lost the artifact's record (their shards are intact); Heal writes it
// to both, one refuses. The record-write failure path registers every
// drive it wrote to as a blocker (slotIDs of trueAt(needRecord)), the
// one that took the record too: any later heal that writes to that
// healthy drive makes the artifact due at once, to fail again at the
// refusing drive, a whole verify per wake until maxHealWakes is spent on
// a drive that never kept it from anything.
func TestReview28hRecordWriteBlocksDrivesThatTookIt(t *testing.T) {
	var refusers []*recordRefuser
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10, wrap: func(d driver.Driver) driver.Driver {
		w := &recordRefuser{Driver: d}
		refusers = append(refusers, w)
		return w
	}})
	r.e.cfg.HealInterval = time.Second
	r.e.cfg.HealBackoffMax = time.Hour
	key := "records"
	r.put(t, key, randBytes(9, 200<<10), -1)
	ikey := indexPrefix("t", "c") + key
	set := r.e.mapOf().Set(r.e.mapOf().PGOf("t", "c", key))
	for _, j := range []int{2, 3} {
		d := r.faultyOf(key, j)
		got, err := d.GetRecord(t.Context(), ikey)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteRecord(t.Context(), ikey, got.Version); err != nil {
			t.Fatal(err)
		}
	}
	refusers[slices.Index(r.ids, set[3])].refuse.Store(true)
	item := HealItem{"t", "c", key}
	r.e.enqueueHeal(item)
	if _, err := healerRound(t, r, item); err == nil {
		t.Fatal("heal with a drive refusing records succeeded")
	}
	if _, err := r.faultyOf(key, 2).GetRecord(t.Context(), ikey); err != nil {
		t.Fatalf("drive of slot 2 did not take the record: %v", err)
	}
	for range 30 {
		r.e.healFailed(item, time.Now())
	}
	r.e.drivesBack([]placement.DriveID{set[2]}) // another artifact healed onto it
	if slices.Contains(r.e.dueHeals(time.Now()), item) {
		t.Fatalf("drive %s took the record and another repair: %s due at once, although only %s refuses it", set[2], key, set[3])
	}
}
