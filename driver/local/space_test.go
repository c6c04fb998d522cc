package local

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// setReserve sets the space drives keep for the test, looking again at
// once; a reserve of 1<<62 makes them short of space on any file system.
func setReserve(t *testing.T, d *Driver, reserve int64) {
	old, oldShare := spaceReserve, spaceReserveShare
	spaceReserve = reserve
	if reserve == 1<<62 {
		spaceReserveShare = 1 // all of it
	}
	d.spaceAt.Store(0)
	t.Cleanup(func() { spaceReserve, spaceReserveShare = old, oldShare })
}

// TestShortOfSpaceTakesDeletes: a drive with less than spaceReserve free
// refuses new shards, shard writes and records that grow the index, with
// driver.ErrNoSpace, and still takes what frees space: tombstones over
// larger records, small records, record and shard deletes. Without the
// reserve a full drive refused deletes as well (its record log needs fresh
// blocks), so a full store could not be emptied through S3.
func TestShortOfSpaceTakesDeletes(t *testing.T) {
	ctx := t.Context()
	d := open(t, testConfig(t, false))
	big := driver.Record{Key: "t/c/big", Version: stamp(), Data: bytes.Repeat([]byte("b"), 8<<10)}
	if _, _, err := d.PutRecord(ctx, big); err != nil {
		t.Fatal(err)
	}
	s := driver.Shard{PG: 7, Name: "0123456789abcdef"}
	writeShard(t, d, s, bytes.Repeat([]byte("s"), 1<<20))
	open, err := d.CreateShard(ctx, driver.Shard{PG: 7, Name: "00000000000000ff"})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Abort()

	setReserve(t, d, 1<<62)
	noSpace := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, driver.ErrNoSpace) {
			t.Errorf("%s on a drive short of space: %v, want driver.ErrNoSpace", what, err)
		}
	}
	_, err = d.CreateShard(ctx, driver.Shard{PG: 7, Name: "fedcba9876543210"})
	noSpace("CreateShard", err)
	_, err = open.Write(make([]byte, 4096))
	noSpace("Write to a shard created before", err)
	_, _, err = d.PutRecord(ctx, driver.Record{Key: "t/c/new", Version: stamp(), Data: make([]byte, 4<<10)})
	noSpace("PutRecord of a new 4 KiB record", err)
	_, _, err = d.PutRecord(ctx, driver.Record{Key: "t/c/big", Version: stamp(), Data: make([]byte, 16<<10)})
	noSpace("PutRecord growing a record", err)

	tomb := driver.Record{Key: "t/c/big", Version: stamp(), Data: []byte("tombstone")}
	prev, replaced, err := d.PutRecord(ctx, tomb)
	if err != nil || !replaced || !bytes.Equal(prev.Data, big.Data) {
		t.Fatalf("PutRecord of a tombstone over a larger record: replaced %v, %v", replaced, err)
	}
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "t/c/marker", Version: stamp(), Data: []byte("delete marker")}); err != nil {
		t.Fatalf("PutRecord of a small new record: %v", err)
	}
	if err := d.DeleteRecord(ctx, "t/c/marker", driver.Version{}); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	if err := d.DeleteShard(ctx, s); err != nil {
		t.Fatalf("DeleteShard: %v", err)
	}

	setReserve(t, d, 0)
	writeShard(t, d, driver.Shard{PG: 7, Name: "fedcba9876543210"}, make([]byte, 4096))
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "t/c/new", Version: stamp(), Data: make([]byte, 4<<10)}); err != nil {
		t.Fatalf("PutRecord once space is back: %v", err)
	}
}
