package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// TestReview29pScrubRepairsPackedRecordRot: a record whose data a pack
// file holds (an inline object's record of at least 4 KiB) rots on one
// drive while its record cache still holds the good copy (a hot key).
// The scrubber's uncached read (driver.Uncached, 322a0f8) now meets the
// rot (GetRecord: driver.ErrCorrupt, the pack's CRC), but scrubRecord
// took any GetRecord error for "offline or failing" and skipped the
// record: the rot was neither counted nor repaired, pass after pass.
func TestReview29pScrubRepairsPackedRecordRot(t *testing.T) {
	r, d1, ikey := rotPackedRecord(t)

	drives := map[placement.DriveID]driver.Driver{}
	for i, id := range r.ids {
		drives[id] = r.faulty[i]
	}
	s, err := r.e.NewScrubber(ScrubConfig{Drives: drives, Period: time.Second, Rate: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		passes := 0
		for _, st := range s.Status() {
			passes += int(min(st.Passes, 2))
		}
		if passes >= 8 { // two full passes of every drive
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	var corrupt, repaired uint64
	for _, st := range s.Status() {
		corrupt += st.Corrupt
		repaired += st.Repaired
	}
	if corrupt == 0 || repaired == 0 {
		t.Errorf("scrubber status %+v: %d corrupt, %d repaired; want the rotten record found and repaired", s.Status(), corrupt, repaired)
	}
	if _, err := d1.GetRecord(driver.Uncached(t.Context()), ikey); err != nil {
		t.Errorf("uncached read after the scrub: %v, want the record repaired on the disk", err)
	}
}

// rotPackedRecord puts "k", an inline object whose records a pack holds
// (at least 4 KiB each), flushes its drives, warms their record caches
// with a GET, and flips a byte of drive 1's pack: its record read from
// the disk fails (driver.ErrCorrupt) while the cache serves the good copy.
func rotPackedRecord(t *testing.T) (*rig, driver.Driver, string) {
	t.Helper()
	r := newRig(t, rigOptions{drives: 4, noSync: true})
	body := randBytes(7, 40<<10) // inline; each drive's record holds ~20 KiB: packed
	r.put(t, "k", body, int64(len(body)))
	m := r.e.mapOf()
	ikey := indexPrefix("t", "c") + "k"
	ds, _ := r.e.pgDrives(m, pgOf(m, "t", "c", "k"))
	for _, d := range ds {
		flushDrive(t, d, ikey) // in index.db, its data in a pack
	}
	// Warm the caches: a GET reads each drive's record (index.db, the pack).
	if b, err := r.get("k", 0, -1); err != nil || len(b) != len(body) {
		t.Fatalf("get: %d bytes, %v", len(b), err)
	}
	// Rot in drive 1's pack: flip a byte in the middle of every pack file.
	dir := r.dirOf("k", 1)
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "pack-*.dat"))
	if len(packs) == 0 {
		t.Fatal("no pack file: the record is not packed")
	}
	for _, p := range packs {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		b := make([]byte, 1)
		off := st.Size() / 2
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x40
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	d1 := ds[1]
	if _, err := d1.GetRecord(driver.Uncached(t.Context()), ikey); !errors.Is(err, driver.ErrCorrupt) {
		t.Fatalf("uncached read of the rotten record: %v, want ErrCorrupt", err)
	}
	if _, err := d1.GetRecord(t.Context(), ikey); err != nil {
		t.Fatalf("cached read: %v (the cache should still hold the good copy)", err)
	}

	return r, d1, ikey
}

// TestReview29pHealerRepairsPackedRecordRot: the scrubber queues for the
// healer what its own Heal could not repair (or repaired only in part:
// ErrHealIncomplete); the healer's Heal then ran without driver.Uncached
// and read drive 1's record from its cache (peek or GetRecord), found it
// whole, and took the artifact off the queue with the rot still on the
// disk (until the next scrub pass, a Period later).
func TestReview29pHealerRepairsPackedRecordRot(t *testing.T) {
	r, d1, ikey := rotPackedRecord(t)
	r.e.cfg.HealInterval = 20 * time.Millisecond
	r.e.enqueueHeal(HealItem{"t", "c", "k"}) // as found() does when Heal fails
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.e.RunHealer(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(5 * time.Second); len(r.e.Degraded()) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if q := r.e.Degraded(); len(q) > 0 {
		t.Fatalf("heal queue %v: the healer did not finish", q)
	}
	if _, err := d1.GetRecord(driver.Uncached(t.Context()), ikey); err != nil {
		t.Errorf("the healer took the artifact off its queue; drive 1's record on the disk: %v", err)
	}
}
