package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/internal/faultproxy"
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

// TestReview27r2LostResurrects: reloading from the log objects alone
// (no snapshot) replays a log object that compaction kept (it still
// holds a live shard) without the later ones that compaction deleted
// because the snapshot covered them and they held no shard bytes. What
// those later log objects said — a record overwritten, a record deleted,
// a shard deleted — is undone: the drive serves the old version of k,
// the deleted record j and the deleted shard B again. That is not
// "missing for heal to refill": the scanner sees records present (an old
// version, or one its peers deleted) and a shard listed.
func TestReview27r2LostResurrects(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := proxy(t, s.endpoint)
	c := s.config(p.URL, b, "lostrz")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.CompactRatio = 0.01 // keep L1 as it is (no move)
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()

	// L1 = {record k v1, record j, shard A, shard B}: queued together
	// while the PUT of another log object is in flight.
	p.Set(faultproxy.Faults{Latency: 300 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Go(func() {
		_, _, err := d.PutRecord(ctx, driver.Record{Key: "x", Version: version(1), Data: []byte("x")})
		errs <- err
	})
	time.Sleep(100 * time.Millisecond)
	wg.Go(func() {
		_, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: version(1), Data: []byte("k1")})
		errs <- err
	})
	wg.Go(func() {
		_, _, err := d.PutRecord(ctx, driver.Record{Key: "j", Version: version(1), Data: []byte("j1")})
		errs <- err
	})
	wg.Go(func() { errs <- writeShard(ctx, d, shard(1), payload(8<<10, 1)) })
	wg.Go(func() { errs <- writeShard(ctx, d, shard(2), payload(8<<10, 2)) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	p.Set(faultproxy.Faults{})
	cl := s.client("")
	list, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("lostrz/log/")})
	if err != nil || len(list.Contents) != 2 {
		t.Fatalf("want 2 log objects (x alone, then the four together): %v, %v", list, err)
	}
	// Later log objects: k overwritten, j deleted, shard B deleted.
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: version(2), Data: []byte("k2")}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteRecord(ctx, "j", driver.Version{}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteShard(ctx, shard(2)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // snapshot; then the covered log objects without shard bytes are deleted
		if _, err := d.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The loss: format.json only (the rest is intact).
	deleteUnder(t, s, b, "lostrz/", func(k string) bool { return k != "lostrz/format.json" })
	if err := d.Probe(ctx); !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("Probe after the loss: %v, want driver.ErrOffline", err)
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("second Probe: %v", err)
	}
	if r, err := d.GetRecord(ctx, "k"); err == nil && r.Version != version(2) {
		t.Errorf("GetRecord(k) after the reload: version %s %q: the overwritten version is back", r.Version, r.Data)
	}
	if r, err := d.GetRecord(ctx, "j"); err == nil {
		t.Errorf("GetRecord(j) after the reload: %q: the deleted record is back", r.Data)
	}
	if _, err := readAll(ctx, d, shard(2)); err == nil {
		t.Errorf("shard B, deleted, reads again after the reload")
	}
}

// TestReview27r2QueueTicketsStress: writers of mixed sizes (some larger
// than the cap) with short, random deadlines against a slow backend, so
// that callers give up at every point of the line, including at their
// turn; then Close while others still wait. Afterwards no ticket is
// stuck: a new call is admitted at once and the queue drains to 0.
// (Passes: the line holds.)
func TestReview27r2QueueTicketsStress(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := proxy(t, s.endpoint)
	c := s.config(p.URL, b, "tickets")
	c.MaxBatchBytes, c.MaxQueueBytes = 32<<10, 64<<10
	c.CompactInterval = -1
	d := open(t, c)
	ctx := t.Context()
	p.Set(faultproxy.Faults{Latency: 15 * time.Millisecond})
	var wg sync.WaitGroup
	var ok, gaveUp atomic.Int64
	for w := range 24 {
		wg.Go(func() {
			for i := range 40 {
				size := []int{1 << 10, 8 << 10, 30 << 10, 70 << 10}[(w+i)%4]
				cctx, cancel := context.WithTimeout(ctx, time.Duration(5+(w*7+i*13)%250)*time.Millisecond)
				_, _, err := d.PutRecord(cctx, driver.Record{Key: fmt.Sprintf("t%02d-%03d", w, i), Version: version(1), Data: payload(size, uint64(i))})
				cancel()
				if err == nil {
					ok.Add(1)
				} else {
					gaveUp.Add(1)
				}
			}
		})
	}
	wg.Wait()
	p.Set(faultproxy.Faults{})
	t.Logf("acknowledged %d, gave up %d", ok.Load(), gaveUp.Load())
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, _, err := d.PutRecord(cctx, driver.Record{Key: "after", Version: version(1), Data: payload(100<<10, 1)}); err != nil {
		t.Fatalf("a call after the storm: %v (a ticket is stuck)", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for d.QueuedBytes() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if q := d.QueuedBytes(); q != 0 {
		t.Fatalf("QueuedBytes %d after the storm", q)
	}
	// Close while callers wait for room: all return.
	p.Set(faultproxy.Faults{Latency: 200 * time.Millisecond})
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("c%02d", w), Version: version(1), Data: payload(30<<10, 1)})
			})
		}
		wg.Wait()
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	d.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("callers waiting for room did not return after Close")
	}
}

// TestReview27r2LostReloadNeverFinishes: with the snapshots deleted,
// lost() replays every log object that holds a live shard, one GET
// after another, instead of one snapshot plus the few log objects after
// it. On a drive with many such log objects and a slow backend the
// reload outlasts the probe's context (runProbes gives 30 s) every time:
// each probe fails the same way and the drive never comes back until a
// restart, though only format.json was gone. Here 80 small shards (one
// log object each, all live, covered by a snapshot), 60 ms per request,
// a 2 s probe context.
func TestReview27r2LostReloadNeverFinishes(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := proxy(t, s.endpoint)
	c := s.config(p.URL, b, "lostslow")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	for i := range 80 {
		if err := writeShard(ctx, d, shard(i), payload(4<<10, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	deleteUnder(t, s, b, "lostslow/", func(k string) bool { return k != "lostslow/format.json" })
	p.Set(faultproxy.Faults{Latency: 60 * time.Millisecond})
	var errs []error
	for range 4 {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := d.Probe(pctx)
		cancel()
		if err == nil {
			return
		}
		errs = append(errs, err)
	}
	t.Fatalf("the drive never came back after losing format.json alone: %v", errs)
}
