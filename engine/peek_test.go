package engine

import (
	"bytes"
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// hidePeek is a drive without PeekRecord: every record read of it goes
// through GetRecord, as before peekRecords.
type hidePeek struct{ driver.Driver }

// countGets counts the GetRecord calls made through it and forwards
// PeekRecord.
type countGets struct {
	driver.Driver
	gets *atomic.Int64
}

func (c countGets) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	c.gets.Add(1)
	return c.Driver.GetRecord(ctx, key)
}

func (c countGets) PeekRecord(key string) (driver.Record, bool, error) {
	return c.Driver.(recordPeeker).PeekRecord(key)
}

// TestPeekRecordsMatchesFanOut: what peekRecords answers from the drives'
// memory equals what the fan-out of GetRecords answers, drive by drive,
// for a record on every drive, one deleted on a drive, a drive missing
// from the set, a drive that never had the key (not in memory: the read
// fans out) and a record that does not decode (the fan-out decides).
func TestPeekRecordsMatchesFanOut(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name      string
		setup     func(t *testing.T, r *rig, drives []driver.Driver, ikey string) []driver.Driver
		wantPeeks bool // peekRecords answers without the fan-out
	}{
		{"on every drive", func(t *testing.T, r *rig, ds []driver.Driver, _ string) []driver.Driver { return ds }, true},
		{"deleted on one", func(t *testing.T, r *rig, ds []driver.Driver, ikey string) []driver.Driver {
			if err := ds[1].DeleteRecord(ctx, ikey, driver.Version{}); err != nil {
				t.Fatal(err)
			}
			return ds
		}, true},
		{"a drive missing", func(t *testing.T, r *rig, ds []driver.Driver, _ string) []driver.Driver {
			ds = slices.Clone(ds)
			ds[2] = nil
			return ds
		}, true},
		{"never on one", func(t *testing.T, r *rig, ds []driver.Driver, ikey string) []driver.Driver {
			if err := ds[3].DeleteRecord(ctx, ikey, driver.Version{}); err != nil {
				t.Fatal(err)
			}
			flushDrive(t, ds[3], ikey)
			return ds
		}, false},
		{"undecodable on one", func(t *testing.T, r *rig, ds []driver.Driver, ikey string) []driver.Driver {
			raw, err := ds[0].GetRecord(ctx, ikey)
			if err != nil {
				t.Fatal(err)
			}
			v := raw.Version
			v[15]++
			if _, _, err := ds[0].PutRecord(ctx, driver.Record{Key: ikey, Version: v, Data: []byte("not a record")}); err != nil {
				t.Fatal(err)
			}
			return ds
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 4, noSync: true})
			r.put(t, "k", []byte("hello, peek"), 11)
			m := r.e.mapOf()
			ikey := indexPrefix("t", "c") + "k"
			ds, _ := r.e.pgDrives(m, pgOf(m, "t", "c", "k"))
			ds = tc.setup(t, r, ds, ikey)
			plain := make([]driver.Driver, len(ds))
			for j, d := range ds {
				if d != nil {
					plain[j] = hidePeek{d}
				}
			}
			wait := untilWait(func(ok int, _ []bool) bool { return ok == len(ds) })
			want, wantEach := r.e.readRecordsWait(ctx, plain, ikey, wait)
			got, gotEach := r.e.readRecordsWait(ctx, ds, ikey, wait)
			if !slices.Equal(gotEach, wantEach) {
				t.Errorf("answered %v, the fan-out %v", gotEach, wantEach)
			}
			for j := range want {
				switch {
				case (got[j] == nil) != (want[j] == nil):
					t.Errorf("drive %d: record %v, the fan-out's %v", j, got[j] != nil, want[j] != nil)
				case got[j] != nil && (got[j].Version != want[j].Version || got[j].ETag != want[j].ETag || got[j].Size != want[j].Size):
					t.Errorf("drive %d: %+v, the fan-out's %+v", j, *got[j], *want[j])
				}
			}
			_, _, peeked := peekRecords(ds, ikey, make([]record, len(ds)))
			if peeked != tc.wantPeeks {
				t.Errorf("peekRecords answered: %v, want %v", peeked, tc.wantPeeks)
			}
		})
	}
}

// flushDrive waits until d (a drive of a rig: driver/local under a
// Faulty) no longer holds key's mutation in memory: PeekRecord no longer
// answers for it.
func flushDrive(t *testing.T, d driver.Driver, key string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ok, _ := d.(recordPeeker).PeekRecord(key); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the drive still holds the key in memory 10 s on (its idle flush runs after 1 s)")
		}
	}
}

// TestReadPeeksHotKey: a read of a key every drive holds in memory asks
// no GetRecord; one with a drive that cannot answer so (a fault on it)
// asks every drive, as before.
func TestReadPeeksHotKey(t *testing.T) {
	var gets atomic.Int64
	r := newRig(t, rigOptions{drives: 4, noSync: true, wrap: func(d driver.Driver) driver.Driver { return countGets{d, &gets} }})
	r.put(t, "hot", []byte("hot data"), 8)
	for range 3 {
		if b, err := r.get("hot", 0, -1); err != nil || string(b) != "hot data" {
			t.Fatalf("get: %q, %v", b, err)
		}
	}
	if n := gets.Load(); n != 0 {
		t.Errorf("reads of a key the drives hold in memory made %d GetRecord calls, want 0", n)
	}
	r.faultyOf("hot", 2).SetLatency(time.Millisecond)
	if b, err := r.get("hot", 0, -1); err != nil || string(b) != "hot data" {
		t.Fatalf("get with a slow drive: %q, %v", b, err)
	}
	if n := gets.Load(); n < 4 {
		t.Errorf("a read with a drive that cannot peek made %d GetRecord calls, want one per drive (4)", n)
	}
}

// TestUncachedReadDoesNotPeek: a record read whose ctx carries
// driver.Uncached (the scrubber's, and the heals it makes) asks every
// drive's GetRecord, never its memory.
func TestUncachedReadDoesNotPeek(t *testing.T) {
	var gets atomic.Int64
	r := newRig(t, rigOptions{drives: 4, noSync: true, wrap: func(d driver.Driver) driver.Driver { return countGets{d, &gets} }})
	r.put(t, "k", []byte("data"), 4)
	m := r.e.mapOf()
	ds, _ := r.e.pgDrives(m, pgOf(m, "t", "c", "k"))
	ikey := indexPrefix("t", "c") + "k"
	recs, _ := r.e.readRecordsUntil(driver.Uncached(t.Context()), ds, ikey, func(ok int, _ []bool) bool { return ok == len(ds) })
	if n := gets.Load(); n != int64(len(ds)) {
		t.Errorf("an uncached read made %d GetRecord calls, want %d", n, len(ds))
	}
	if slices.Contains(recs, nil) {
		t.Errorf("records %v: want one from each drive", recs)
	}
}

// TestPeekedRecordsStayUnwritten: the records peekRecords reads are the
// drives' own memory, not copies: GETs (whole and ranged), a copy and a
// heal of an inline artifact read through them leave those bytes as they
// were.
func TestPeekedRecordsStayUnwritten(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4, noSync: true})
	data := bytes.Repeat([]byte("inline artifact "), 100)
	r.put(t, "k", data, int64(len(data)))
	m := r.e.mapOf()
	ds, _ := r.e.pgDrives(m, pgOf(m, "t", "c", "k"))
	ikey := indexPrefix("t", "c") + "k"
	before := make([][]byte, len(ds))
	for j, d := range ds {
		rec, ok, err := d.(recordPeeker).PeekRecord(ikey)
		if !ok || err != nil {
			t.Fatalf("drive %d does not hold the fresh record in memory: %v, %v", j, ok, err)
		}
		before[j] = bytes.Clone(rec.Data)
	}
	for _, rg := range [][2]int64{{0, -1}, {5, 100}, {int64(len(data)) - 7, 7}} {
		if b, err := r.get("k", rg[0], rg[1]); err != nil || !bytes.Equal(b, data[rg[0]:rg[0]+int64(len(b))]) {
			t.Fatalf("get %v: %v", rg, err)
		}
	}
	if _, err := r.e.Copy(ctx, "t", "c", "k", "c", "k2", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.Heal(ctx, "t", "c", "k"); err != nil {
		t.Fatal(err)
	}
	for j, d := range ds {
		rec, ok, err := d.(recordPeeker).PeekRecord(ikey)
		if !ok || err != nil {
			t.Fatalf("drive %d: %v, %v", j, ok, err)
		}
		if !bytes.Equal(rec.Data, before[j]) {
			t.Errorf("drive %d: the record's bytes in the drive's memory changed under reads", j)
		}
	}
}

// TestServingReadFillsDriveCache: a GET of a key the drives no longer hold
// in memory (flushed) has them cache its record, so that the next is
// peeked; a heal's lookup of another key fills nothing, nor an Open
// marked driver.WithoutFill (the lifecycle scan's).
func TestServingReadFillsDriveCache(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, noSync: true})
	r.put(t, "k", []byte("data"), 4)
	r.put(t, "gone", []byte("data"), 4)
	r.put(t, "scanned", []byte("data"), 4)
	m := r.e.mapOf()
	peekable := func(key string) int {
		ds, _ := r.e.pgDrives(m, pgOf(m, "t", "c", key))
		n := 0
		for _, d := range ds {
			if _, ok, _ := d.(recordPeeker).PeekRecord(indexPrefix("t", "c") + key); ok {
				n++
			}
		}
		return n
	}
	for _, key := range []string{"k", "gone", "scanned"} {
		ds, _ := r.e.pgDrives(m, pgOf(m, "t", "c", key))
		for _, d := range ds {
			flushDrive(t, d, indexPrefix("t", "c")+key)
		}
	}
	if b, err := r.get("k", 0, -1); err != nil || string(b) != "data" {
		t.Fatalf("get: %q, %v", b, err)
	}
	if n := peekable("k"); n != 4 {
		t.Errorf("after a GET, %d of 4 drives hold the record in memory; want 4", n)
	}
	if _, err := r.e.Heal(t.Context(), "t", "c", "gone"); err != nil { // reads the records, writes nothing
		t.Fatal(err)
	}
	if n := peekable("gone"); n != 0 {
		t.Errorf("after a heal's lookup, %d drives hold the key in memory; want 0", n)
	}
	if _, err := r.e.Open(driver.WithoutFill(t.Context()), "t", "c", "scanned"); err != nil { // a lifecycle scan's
		t.Fatal(err)
	}
	if n := peekable("scanned"); n != 0 {
		t.Errorf("after an Open marked WithoutFill, %d drives hold the key in memory; want 0", n)
	}
}

// countPeeks counts the PeekRecord calls made through it.
type countPeeks struct {
	driver.Driver
	peeks *atomic.Int64
}

func (c countPeeks) PeekRecord(key string) (driver.Record, bool, error) {
	c.peeks.Add(1)
	return c.Driver.(recordPeeker).PeekRecord(key)
}

// TestPeekSkippedWithAPlainDrive: a set with a drive that cannot peek (a
// drive of another node) is not peeked at all: the fan-out asks every
// drive anyway (review 29p L2).
func TestPeekSkippedWithAPlainDrive(t *testing.T) {
	var peeks atomic.Int64
	r := newRig(t, rigOptions{drives: 4, noSync: true, wrap: func(d driver.Driver) driver.Driver { return countPeeks{d, &peeks} }})
	r.put(t, "k", []byte("data"), 4)
	m := r.e.mapOf()
	ds, _ := r.e.pgDrives(m, pgOf(m, "t", "c", "k"))
	ds = slices.Clone(ds)
	ds[len(ds)-1] = hidePeek{ds[len(ds)-1]}
	if _, _, ok := peekRecords(ds, indexPrefix("t", "c")+"k", make([]record, len(ds))); ok {
		t.Error("peekRecords answered for a set with a drive that cannot peek")
	}
	if n := peeks.Load(); n != 0 {
		t.Errorf("%d drives were peeked in a set that cannot be answered from memory", n)
	}
}
