package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// TestReview28h2StripedHomeBlockerWokenByPartDrives: slotDrives (F2's
// fix) names, for a striped artifact's failed slot j, the home drive at
// j and every part set's drive at j, whichever of them failed. With only
// the home drive at slot j away, a heal of any other artifact that
// writes to a healthy part drive at slot j (drivesBack) wakes this one:
// a whole-artifact verify that fails again at the same drive, and after
// maxHealWakes such false wakes the real drive's return wakes nothing
// (blockHeal registers no blockers past the budget). (The heal fails
// with ErrHealIncomplete, or in its record write when the home PG holds
// no part: the stripe's seed is drawn at random.): the backoff the
// outage reached decides, which is what F2 set out to remove. The wider
// the stripe, the more healthy drives share the slot.
func TestReview28h2StripedHomeBlockerWokenByPartDrives(t *testing.T) {
	r := newStripeRig(t, 8)
	r.e.cfg.HealInterval = time.Second
	r.e.cfg.HealBackoffMax = time.Hour
	chunk := stripeChunkStripes * stripeTestStripe
	key := "k"
	data := randBytes(6, 10*chunk+1234)
	r.put(t, key, data, int64(len(data)))
	rec := r.homeRecord(t, key)
	if !rec.striped() {
		t.Fatal("not striped")
	}
	m := r.e.mapOf()
	home := m.Set(rec.PG)
	// z: the home drive at slot j, the only one away; y: a part set's
	// drive at slot j, another drive, healthy.
	var y, z placement.DriveID
	for j := range home {
		for p := range rec.Parts {
			if id := m.Set(rec.partPG(p))[j]; id != home[j] {
				y, z = id, home[j]
				break
			}
		}
		if y != "" {
			break
		}
	}
	if y == "" {
		t.Fatal("no slot whose part drive is not the home drive")
	}
	fz := r.faulty[slices.Index(r.ids, z)]
	fz.SetOffline(true)
	item := HealItem{"t", "c", key}
	r.e.enqueueHeal(item)
	falseWakes := 0
	for range maxHealWakes + 1 {
		if _, err := healerRound(t, r, item); err == nil {
			t.Fatalf("heal with home drive %s offline succeeded", z)
		}
		for range 30 {
			r.e.healFailed(item, time.Now())
		}
		// Another artifact's heal writes to y, which never left.
		r.e.drivesBack([]placement.DriveID{y})
		if slices.Contains(r.e.dueHeals(time.Now()), item) {
			falseWakes++
		}
	}
	if _, err := healerRound(t, r, item); err == nil {
		t.Fatalf("heal with home drive %s offline succeeded", z)
	}
	for range 30 {
		r.e.healFailed(item, time.Now())
	}
	fz.SetOffline(false)
	r.e.drivesBack([]placement.DriveID{z})
	realWake := slices.Contains(r.e.dueHeals(time.Now()), item)
	if falseWakes > 0 || !realWake {
		t.Fatalf("only home drive %s was away: healthy part drive %s woke %s %d times; %s's return then woke it: %v", z, y, key, falseWakes, z, realWake)
	}
}

// hangingRecords is a drive whose GetRecord hangs until release is
// closed, whatever its ctx says (a local disk stuck in the kernel).
type hangingRecords struct {
	driver.Driver
	release chan struct{}
}

func (h hangingRecords) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	<-h.release
	return driver.Record{}, driver.ErrNotFound
}

// TestReview28h2RecordsMissingWaitsForHungDrive: recordsMissing (F5's
// fix) promises to ask for at most maxStraggle, "a hung drive does not
// hold up the healer"; but it waits (wg.Wait) for every GetRecord to
// return, so a drive that does not honour ctx (the very drive whose
// record write just failed) holds Heal, and so the serial healer, for as
// long as it hangs. fanOut leaves such a straggler behind; this does not.
func TestReview28h2RecordsMissingWaitsForHungDrive(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	release := make(chan struct{})
	defer close(release)
	var drives []driver.Driver
	for _, f := range r.faulty {
		drives = append(drives, f)
	}
	drives[2] = hangingRecords{Driver: drives[2], release: release}
	done := make(chan []int, 1)
	go func() {
		done <- recordsMissing(t.Context(), drives, "t/c/k", driver.Version{}, []int{1, 2})
	}()
	select {
	case missing := <-done:
		if !slices.Contains(missing, 2) {
			t.Fatalf("hung drive 2 not counted missing: %v", missing)
		}
	case <-time.After(maxStraggle + 2*time.Second):
		t.Fatalf("recordsMissing still waiting for a hung drive 2s after maxStraggle (%v)", maxStraggle)
	}
}

// TestReview28h2RecordWriteFailureDropsOtherBlockers: when Heal's record
// write fails it returns before the failed-slots path, and registers as
// blockers only the drives that missed the record (recordsMissing): a
// drive that kept another slot from being repaired (away, so never
// asked for the record) is not named, and its return and repair by
// another heal (drivesBack) does not wake the artifact, which waits out
// its backoff with that slot still missing its shard.
func TestReview28h2RecordWriteFailureDropsOtherBlockers(t *testing.T) {
	var refusers []*recordRefuser
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10, wrap: func(d driver.Driver) driver.Driver {
		w := &recordRefuser{Driver: d}
		refusers = append(refusers, w)
		return w
	}})
	r.e.cfg.HealInterval = time.Second
	r.e.cfg.HealBackoffMax = time.Hour
	key := "records"
	r.put(t, key, randBytes(10, 200<<10), -1)
	ikey := indexPrefix("t", "c") + key
	set := r.e.mapOf().Set(r.e.mapOf().PGOf("t", "c", key))
	d2 := r.faultyOf(key, 2)
	got, err := d2.GetRecord(t.Context(), ikey)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.DeleteRecord(t.Context(), ikey, got.Version); err != nil {
		t.Fatal(err)
	}
	refusers[slices.Index(r.ids, set[2])].refuse.Store(true)
	f3 := r.faultyOf(key, 3)
	f3.SetOffline(true)
	item := HealItem{"t", "c", key}
	r.e.enqueueHeal(item)
	if _, err := healerRound(t, r, item); err == nil {
		t.Fatal("heal with a drive refusing records and one away succeeded")
	}
	for range 30 {
		r.e.healFailed(item, time.Now())
	}
	f3.SetOffline(false)
	r.e.drivesBack([]placement.DriveID{set[3]}) // another artifact healed onto it
	if !slices.Contains(r.e.dueHeals(time.Now()), item) {
		t.Fatalf("drive %s, away during the heal, is back and written to: %s not due (blockers %v)", set[3], key, r.e.blocked)
	}
}
