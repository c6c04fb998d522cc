package remote_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/vaultaire/vaultaire/driver"
)

// TestReview27r2LostDeletesIntactSnapshot: only format.json goes (a
// lifecycle rule expiring the bucket's oldest objects takes format.json,
// written when the drive was created, first; a mistaken delete of one
// key). Everything else is intact. lost() (11722a4) deletes every
// snapshot and reloads from the log objects alone, but compaction had
// already deleted the log objects the snapshot covered (records, and
// the commit entries of large shards): the drive itself destroys
// records that were safe in the bucket, and a later Open's orphan sweep
// deletes the large shard objects the dropped index no longer names.
// Where the drive held the only copy (a tier artifact's 1+1 remote
// layout whose other drive also lost its data, upload/marker records
// when every drive of a set shares a bucket and one lifecycle rule),
// heal has nothing to refill from.
func TestReview27r2LostDeletesIntactSnapshot(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "lostfj")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "before", Version: version(1), Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	big := payload(64<<10, 2)
	if err := writeShard(ctx, d, shard(2), big); err != nil { // its own object
		t.Fatal(err)
	}
	for range 2 { // snapshot, then the covered log objects are deleted
		if _, err := d.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: "pad", Version: version(1), Data: []byte("p")}); err != nil {
			t.Fatal(err)
		}
	}
	// The loss: format.json only.
	gone := deleteUnder(t, s, b, "lostfj/", func(k string) bool { return k != "lostfj/format.json" })
	t.Logf("lost %v", gone)
	if err := d.Probe(ctx); !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("Probe after the loss: %v, want driver.ErrOffline", err)
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("second Probe: %v", err)
	}
	if _, err := d.GetRecord(ctx, "before"); err != nil {
		t.Errorf("GetRecord(before) after only format.json was lost: %v; the bucket held it (in the snapshot lost() deleted)", err)
	}
	if got, err := readAll(ctx, d, shard(2)); err != nil || !bytes.Equal(got, big) {
		t.Errorf("large shard after only format.json was lost: %d bytes, %v", len(got), err)
	}
	d2 := open(t, c)
	if got, err := readAll(ctx, d2, shard(2)); err != nil || !bytes.Equal(got, big) {
		t.Errorf("large shard in a fresh Open: %d bytes, %v", len(got), err)
	}
	objs, err := s.client("").ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("lostfj/obj/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Contents) == 0 {
		t.Errorf("the large shard's object, intact in the bucket until then, was deleted by the fresh Open's orphan sweep")
	}
}
