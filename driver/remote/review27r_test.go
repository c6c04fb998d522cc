package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
	"github.com/vaultaire/vaultaire/internal/faultproxy"
)

// deleteUnder deletes every object under prefix in bucket b for which
// keep returns false, and returns the keys it deleted.
func deleteUnder(t *testing.T, s server, b, prefix string, keep func(key string) bool) []string {
	t.Helper()
	ctx := t.Context()
	cl := s.client("")
	list, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, o := range list.Contents {
		if keep != nil && keep(*o.Key) {
			continue
		}
		if _, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: o.Key}); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, *o.Key)
	}
	return gone
}

// TestReview27rLostReloadFailureHidesLoss: Probe finds format.json gone
// and lost() writes it again before it reloads the index. If the reload
// fails (here a log object it cannot decode; equally a LIST or GET that
// times out under runProbes' 30 s context on a large drive, a 5xx burst,
// Close), format.json is back but the in-memory index still lists what the
// bucket lost. The next Probe's HEAD answers, so the drive is reported
// healthy and the loss is never looked at again: the F1 bug returns for
// good (until a restart), from one transient failure.
func TestReview27rLostReloadFailureHidesLoss(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "lostre")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	d := open(t, c)
	ctx := t.Context()
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "before", Version: version(1), Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("Probe of a healthy drive: %v", err)
	}
	deleteUnder(t, s, b, "lostre/", nil)
	// Something the reload trips over, for one probe only.
	junk := "lostre/log/00000000000000ff-deadbeef"
	cl := s.client("")
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &junk, Body: strings.NewReader("junk")}); err != nil {
		t.Fatal(err)
	}
	if err := d.Probe(ctx); !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("Probe after the loss, with the reload failing: %v, want driver.ErrOffline", err)
	}
	if _, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: &junk}); err != nil {
		t.Fatal(err)
	}
	// The transient failure is over. Either the drive still reports the
	// loss, or its index no longer lists the lost record.
	for range 3 {
		err := d.Probe(ctx)
		if err != nil {
			continue
		}
		if _, gerr := d.GetRecord(ctx, "before"); !errors.Is(gerr, driver.ErrNotFound) {
			t.Fatalf("Probe answers nil (drive healthy) and GetRecord(before) = %v: the index still lists a record the bucket lost; "+
				"a fresh Open sees it gone, so nothing will heal it (Losses %d)", gerr, d.Losses())
		}
		return
	}
	t.Fatalf("the drive never came back after the reload could be done")
}

// TestReview27rLostKeepsPendingDelete: a compaction moved the live
// shards of a sparse log object L into a new log object M and queued L
// for deletion at its next run (pendingDel). The bucket then loses
// format.json and M but keeps the snapshot and L (a partial loss: a
// clean-up, a lifecycle rule on some keys). lost() reloads the index from
// the snapshot, which places the shard in L, and leaves pendingDel as it
// was, so the next compaction deletes L: the driver itself destroys the
// only copy of a shard that its index lists (reads fail, nothing says
// it is missing, nothing heals it).
func TestReview27rLostKeepsPendingDelete(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "lostpd")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.CompactRatio = 0.999 // the log object holding one small shard is sparse
	d := open(t, c)
	ctx := t.Context()
	data := payload(4<<10, 1)
	if err := writeShard(ctx, d, shard(1), data); err != nil {
		t.Fatal(err)
	}
	cl := s.client("")
	list, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("lostpd/log/")})
	if err != nil || len(list.Contents) != 1 {
		t.Fatalf("log objects before compaction: %v, %v", list, err)
	}
	l := *list.Contents[0].Key
	st, err := d.Compact(ctx)
	if err != nil || st.Rewritten != 1 {
		t.Fatalf("Compact: %+v, %v; want the sparse log object rewritten", st, err)
	}
	// The loss: format.json and the log object the shard moved to.
	gone := deleteUnder(t, s, b, "lostpd/", func(k string) bool { return k == l || strings.HasPrefix(k, "lostpd/snap/") })
	t.Logf("lost %v; kept %s and the snapshot", gone, l)
	if err := d.Probe(ctx); !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("Probe after the loss: %v, want driver.ErrOffline", err)
	}
	if got, err := readAll(ctx, d, shard(1)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("shard after the reload: %d bytes, %v; want it read from %s, which the bucket kept", len(got), err, l)
	}
	if _, err := d.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(ctx, d, shard(1)); err != nil || !bytes.Equal(got, data) {
		t.Errorf("shard after the next compaction: %d bytes, %v: the compaction deleted %s (queued before the loss), which the reloaded index reads it from", len(got), err, l)
	}
	d2 := open(t, c)
	if got, err := readAll(ctx, d2, shard(1)); err != nil || !bytes.Equal(got, data) {
		t.Errorf("shard on a fresh Open: %d bytes, %v", len(got), err)
	}
}

var _ = remote.ProbeQuiet

// TestReview27rLostUnderLoad: the bucket loses everything; then writers
// (records, small shards, large single-PUT shards) and compactions run
// while probes find the loss and reload the index. Every write
// acknowledged after the loss must be in the index afterwards and in a
// fresh Open's.
func TestReview27rLostUnderLoad(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "lostld")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	for i := range 20 {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("old%02d", i), Version: version(1), Data: []byte("o")}); err != nil {
			t.Fatal(err)
		}
	}
	deleteUnder(t, s, b, "lostld/", nil)

	const writers, each = 6, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	shards := map[int][]byte{}
	stop := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k := fmt.Sprintf("w%d-%02d", w, i)
				if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: version(2), Data: []byte(k)}); err == nil {
					mu.Lock()
					acked[k] = true
					mu.Unlock()
				}
				n := 1000 + w*each + i
				size := 4 << 10
				if i%3 == 0 {
					size = 64 << 10 // its own object
				}
				data := payload(size, uint64(n))
				if err := writeShard(ctx, d, shard(n), data); err == nil {
					mu.Lock()
					shards[n] = data
					mu.Unlock()
				}
			}
		})
	}
	var bg sync.WaitGroup
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			d.Probe(ctx)
			time.Sleep(2 * time.Millisecond)
		}
	})
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			d.Compact(ctx)
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Wait()
	close(stop)
	bg.Wait()
	if d.Losses() == 0 {
		t.Fatalf("no loss found")
	}
	t.Logf("losses %d, %d records and %d shards acknowledged", d.Losses(), len(acked), len(shards))
	if _, err := d.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	d2 := open(t, c)
	for _, dr := range []*remote.Driver{d, d2} {
		for k := range acked {
			if r, err := dr.GetRecord(ctx, k); err != nil || string(r.Data) != k {
				t.Errorf("acknowledged record %s: %v", k, err)
			}
		}
		for n, data := range shards {
			if got, err := readAll(ctx, dr, shard(n)); err != nil || !bytes.Equal(got, data) {
				t.Errorf("acknowledged shard %d: %d bytes, %v", n, len(got), err)
			}
		}
		// The records written before the loss may come back: a compaction
		// that ran before the probe found the loss wrote them into a
		// snapshot (TestReview27rLostSnapshotListsLostShards).
	}
}

// TestReview27rLostSnapshotListsLostShards: the bucket loses the drive's
// objects; before a probe finds format.json gone, a compaction writes a
// snapshot of the in-memory index, which still lists every shard at its
// (lost) location. lost() then reloads from that snapshot: the index
// lists the lost shards again, their records are there, the scanner (it
// compares record indexes only) sees nothing missing and nothing heals
// them: the F1 bug again. The window is the time the loss takes to be
// found (up to ProbeQuiet plus a probe interval) and any compaction that
// writes a snapshot in it (SnapshotEvery log objects, or a forced one).
func TestReview27rLostSnapshotListsLostShards(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "lostsn")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()
	if err := writeShard(ctx, d, shard(1), payload(4<<10, 1)); err != nil { // inline
		t.Fatal(err)
	}
	if err := writeShard(ctx, d, shard(2), payload(64<<10, 2)); err != nil { // its own object
		t.Fatal(err)
	}
	before, err := d.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deleteUnder(t, s, b, "lostsn/", nil)
	_, cerr := d.Compact(ctx) // the snapshot is written whatever follows
	t.Logf("compaction after the loss: %v", cerr)
	if err := d.Probe(ctx); !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("Probe after the loss: %v, want driver.ErrOffline", err)
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("second Probe: %v", err)
	}
	after, err := d.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2} {
		_, rerr := readAll(ctx, d, shard(n))
		derr := d.DeleteShard(ctx, shard(n)) // nil: the index listed it
		if derr == nil {
			t.Errorf("shard %d after the reload: read %v, but the index lists it (DeleteShard nil): lost bytes reported present, never healed", n, rerr)
		}
	}
	if after.Usage.Used != 0 {
		t.Errorf("Used %d after the reload (%d before the loss), want 0: the bucket holds no shard", after.Usage.Used, before.Usage.Used)
	}
}

// TestReview27rProbeWaitsForCompaction: lost() takes compactMu with no
// regard for Probe's context, so a Probe that finds format.json gone
// while a compaction runs waits for the whole compaction (moves of tens
// of MiB on a slow backend; a compaction whose submitAll waits for room
// in a saturated queue, with closeCtx, waits as long as the saturation).
// vaultd's runProbes probes the node's drives one after another: every
// drive's health check stalls with it. Here a fence that holds the
// compaction's snapshot PUT stands in for a slow request.
func TestReview27rProbeWaitsForCompaction(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "lostcm")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	var hold atomic.Bool
	held, release := make(chan struct{}, 1), make(chan struct{})
	c.Fence = remote.FenceFunc(func(ctx context.Context) error {
		if hold.Load() {
			select {
			case held <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	d := open(t, c)
	ctx := t.Context()
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "before", Version: version(1), Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	hold.Store(true)
	compacted := make(chan error, 1)
	go func() { _, err := d.Compact(ctx); compacted <- err }()
	<-held // the compaction holds compactMu, its snapshot PUT in flight
	hold.Store(false)
	defer func() { close(release); <-compacted }()
	deleteUnder(t, s, b, "lostcm/", nil)

	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- d.Probe(pctx) }()
	select {
	case err := <-done:
		t.Logf("Probe returned after %v: %v", time.Since(start), err)
	case <-time.After(5 * time.Second):
		t.Fatalf("Probe with a 1 s context still blocked after 5 s behind a compaction (lost() waits on compactMu regardless of ctx)")
	}
}

// TestReview27rQueueStarvesLargeCall: enqueue admits a call only while
// it fits under MaxQueueBytes and wakes every waiter on each batch the
// flusher takes, with no order among them. While small writers keep the
// queue from running low (a backend slower than the writes: the case
// the cap is for), a call that fits only into a nearly empty queue (a
// large record, a small shard near SmallShardMax, compaction's batch of
// moves) is passed by every small one and waits until its context ends,
// though the drive keeps acknowledging writes all along. Compaction
// waits with closeCtx, holding compactMu (see
// TestReview27rProbeWaitsForCompaction).
func TestReview27rQueueStarvesLargeCall(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := proxy(t, s.endpoint)
	c := s.config(p.URL, b, "starve")
	c.MaxBatchBytes, c.MaxQueueBytes = 64<<10, 128<<10
	c.CompactInterval = -1
	d := open(t, c)
	ctx := t.Context()
	p.Set(faultproxy.Faults{Latency: 20 * time.Millisecond})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acked atomic.Int64
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("s%02d-%05d", w, i), Version: version(1), Data: payload(8<<10, uint64(i))}); err == nil {
					acked.Add(1)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start, before := time.Now(), acked.Load()
	_, _, err := d.PutRecord(cctx, driver.Record{Key: "large", Version: version(1), Data: payload(120<<10, 9)})
	took, passed := time.Since(start), acked.Load()-before
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("large PutRecord (120 KiB, cap 128 KiB): %v after %v, while %d small writes were acknowledged", err, took, passed)
	}
	t.Logf("large PutRecord took %v; %d small writes acknowledged meanwhile", took, passed)
}

// TestReview27rNestedUnderLog: 11c41f4 keeps the orphan sweep off
// objects under obj/ that are not named as shard objects, but loadIndex
// still takes every key under log/ (and snap/) whose name ends in
// -<16 hex>-<anything> for its own: a drive whose prefix lies under
// another's log/ (two nodes' --remote flags; vaultd's overlap check only
// compares one node's flags) has its log objects replayed by the outer
// drive as its own records, and deleted by the outer drive's compaction.
func TestReview27rNestedUnderLog(t *testing.T) {
	if os.Getenv("VAULT_KNOWN") == "" {
		// Known open (NOTE27): vaultd refuses overlapping --remote
		// prefixes on one node; two nodes configured onto overlapping
		// prefixes are not caught.
		t.Skip("known open: VAULT_KNOWN=1 runs it")
	}
	s := startVaultd(t)
	b := s.bucket(t)
	ctx := t.Context()
	ca := s.config("", b, "nest")
	ca.CompactInterval = -1
	a := open(t, ca)
	a.Close()
	cb := s.config("", b, "nest/log/b")
	cb.ID = "remote-test-b"
	cb.CompactInterval = -1
	db := open(t, cb)
	if _, _, err := db.PutRecord(ctx, driver.Record{Key: "b-only", Version: version(1), Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	a2 := open(t, ca)
	if _, err := a2.GetRecord(ctx, "b-only"); err == nil {
		t.Errorf("the outer drive lists the nested drive's record as its own")
	}
	for range 2 {
		if _, err := a2.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	db2 := open(t, cb)
	if _, err := db2.GetRecord(ctx, "b-only"); err != nil {
		t.Errorf("the nested drive's record after the outer drive compacted: %v (its log object deleted by the outer drive)", err)
	}
}

// TestReview27rLostFenced: a deposed owner (its fence refuses) that finds
// format.json gone writes nothing and reloads nothing.
func TestReview27rLostFenced(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "lostfc")
	c.ProbeQuiet = time.Nanosecond
	c.CompactInterval = -1
	var fenced atomic.Bool
	c.Fence = remote.FenceFunc(func(context.Context) error {
		if fenced.Load() {
			return errors.New("deposed")
		}
		return nil
	})
	d := open(t, c)
	ctx := t.Context()
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "before", Version: version(1), Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	fenced.Store(true)
	deleteUnder(t, s, b, "lostfc/", nil)
	if err := d.Probe(ctx); !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("Probe: %v, want driver.ErrOffline", err)
	}
	if n := d.Losses(); n != 0 {
		t.Errorf("Losses %d, want 0 (fenced: nothing reloaded)", n)
	}
	if gone := deleteUnder(t, s, b, "lostfc/", nil); len(gone) != 0 {
		t.Errorf("a fenced drive wrote %v", gone)
	}
}
