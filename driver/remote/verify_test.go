package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
)

// newKeys runs write and returns the keys it added under prefix.
func newKeys(t *testing.T, s server, b, prefix string, write func() error) []string {
	t.Helper()
	before := listKeys(t, s, b, prefix)
	if err := write(); err != nil {
		t.Fatal(err)
	}
	var added []string
	for _, k := range listKeys(t, s, b, prefix) {
		if !slices.Contains(before, k) {
			added = append(added, k)
		}
	}
	return added
}

// probeUntil probes d, as the engine does, until cond or deadline.
func probeUntil(ctx context.Context, d *remote.Driver, deadline time.Duration, cond func() bool) bool {
	for end := time.Now().Add(deadline); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		d.Probe(ctx)
		if cond() {
			return true
		}
	}
	return cond()
}

// TestVerifyFindsPartialLoss: objects under log/, obj/ or snap/ are
// deleted behind the drive's back, format.json kept (an operator's
// clean-up, a provider's incident, a second wave of an expiry). Within a
// few VerifyEvery of probes the drive reports the shards whose bytes were
// lost missing (for heal to refill), keeps every other shard and every
// record (their index entries, held in memory, are written to the bucket
// again, so a new Driver on the bucket sees them too), and is healthy
// again. A step lists one page of two keys here, so a pass is resumed
// over many probes.
func TestVerifyFindsPartialLoss(t *testing.T) {
	t.Cleanup(remote.SmallVerifySteps(1, 2)) // a pass resumes over many pages and probes
	s := startVaultd(t)
	b := s.bucket(t)
	for _, tc := range []struct {
		name string
		// lose returns the objects to delete, given the log objects
		// and shard objects each write created.
		snapshot   bool // compact before the loss: records live in the snapshot only
		lostShards []int
		lose       func(logOf map[string][]string, objOf map[int][]string, snaps []string) []string
	}{
		{name: "shard objects", lostShards: []int{101, 102}, lose: func(_ map[string][]string, objOf map[int][]string, _ []string) []string {
			return append(slices.Clone(objOf[101]), objOf[102]...)
		}},
		{name: "log objects", lostShards: []int{1}, lose: func(logOf map[string][]string, _ map[int][]string, _ []string) []string {
			// Small shard 1's bytes; record r1's and large shard 103's
			// index entries (their data is in memory or in obj/).
			return slices.Concat(logOf["s1"], logOf["r1"], logOf["l103"])
		}},
		{name: "log and shard objects", lostShards: []int{2, 101}, lose: func(logOf map[string][]string, objOf map[int][]string, _ []string) []string {
			return slices.Concat(logOf["s2"], logOf["r2"], objOf[101])
		}},
		{name: "snapshot", snapshot: true, lose: func(_ map[string][]string, _ map[int][]string, snaps []string) []string {
			return snaps
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := strings.ReplaceAll(tc.name, " ", "-")
			c := s.config("", b, prefix)
			c.ProbeQuiet = time.Nanosecond
			c.VerifyEvery = 200 * time.Millisecond
			c.CompactInterval = -1
			c.SmallShardMax = 16 << 10
			d := open(t, c)
			ctx := t.Context()
			logOf, objOf := map[string][]string{}, map[int][]string{}
			data := map[int][]byte{}
			for i := 1; i <= 3; i++ {
				r := fmt.Sprintf("r%d", i)
				logOf[r] = newKeys(t, s, b, prefix+"/log/", func() error {
					_, _, err := d.PutRecord(ctx, driver.Record{Key: r, Version: version(1), Data: []byte(r)})
					return err
				})
				data[i] = payload(4<<10, uint64(i))
				logOf[fmt.Sprintf("s%d", i)] = newKeys(t, s, b, prefix+"/log/", func() error { return writeShard(ctx, d, shard(i), data[i]) })
				data[100+i] = payload(64<<10, uint64(100+i))
				var logs []string
				objOf[100+i] = newKeys(t, s, b, prefix+"/obj/", func() error {
					logs = newKeys(t, s, b, prefix+"/log/", func() error { return writeShard(ctx, d, shard(100+i), data[100+i]) })
					return nil
				})
				logOf[fmt.Sprintf("l%d", 100+i)] = logs
			}
			if tc.snapshot {
				for range 2 { // the second run deletes the log objects the first one found dead
					if _, err := d.Compact(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			gone := tc.lose(logOf, objOf, listKeys(t, s, b, prefix+"/snap/"))
			if len(gone) == 0 {
				t.Fatal("nothing to delete")
			}
			for _, k := range gone {
				if _, err := s.client("").DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b, Key: aws.String(k)}); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("deleted %v", gone)
			_, lost0 := d.Verifications()
			if !probeUntil(ctx, d, 20*c.VerifyEvery, func() bool { _, n := d.Verifications(); return n-lost0 >= uint64(len(gone)) }) {
				_, n := d.Verifications()
				t.Fatalf("after %v of probes the drive found %d of the %d objects lost", 20*c.VerifyEvery, n-lost0, len(gone))
			}
			if !probeUntil(ctx, d, 5*c.VerifyEvery, func() bool { return d.Probe(ctx) == nil }) {
				t.Errorf("Probe after the loss was handled: %v, want the drive back", d.Probe(ctx))
			}
			d2 := open(t, s.config("", b, prefix)) // what the bucket holds now
			for name, dr := range map[string]*remote.Driver{"the drive": d, "a new Driver on the bucket": d2} {
				for i := 1; i <= 3; i++ {
					r := fmt.Sprintf("r%d", i)
					if got, err := dr.GetRecord(ctx, r); err != nil || string(got.Data) != r {
						t.Errorf("%s: record %s: %q, %v", name, r, got.Data, err)
					}
				}
				for i, want := range data {
					got, err := readAll(ctx, dr, shard(i))
					switch {
					case slices.Contains(tc.lostShards, i):
						if !errors.Is(err, driver.ErrNotFound) {
							t.Errorf("%s: shard %d, whose bytes were lost: %v, want driver.ErrNotFound (missing, for heal to refill)", name, i, err)
						}
					case err != nil || !bytes.Equal(got, want):
						t.Errorf("%s: shard %d, intact in the bucket: %d bytes, %v", name, i, len(got), err)
					}
				}
			}
		})
	}
}

// TestVerifyRacesWritesAndCompaction: verification passes run while
// small and large shards are written, replaced and deleted and while
// compaction moves shards out of sparse log objects and deletes them.
// Nothing is lost from the bucket, so nothing may be found lost: every
// acknowledged write is still readable afterwards, from the drive and
// from a new Driver on the bucket.
func TestVerifyRacesWritesAndCompaction(t *testing.T) {
	t.Cleanup(remote.SmallVerifySteps(2, 10)) // a pass spans many probes, writes and compactions
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "vrace")
	c.ProbeQuiet = time.Nanosecond
	c.VerifyEvery = 20 * time.Millisecond
	c.CompactInterval = -1
	c.CompactRatio = 1 // every log object with a dead shard is rewritten
	c.SmallShardMax = 16 << 10
	d := open(t, c)
	ctx := t.Context()

	var mu sync.Mutex
	want := map[int][]byte{} // acknowledged, not deleted
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := w*1000 + n%40
				size := 2 << 10
				if n%3 == 0 {
					size = 40 << 10 // its own object
				}
				if n%7 == 6 {
					if err := d.DeleteShard(ctx, shard(i)); err == nil || errors.Is(err, driver.ErrNotFound) {
						mu.Lock()
						delete(want, i)
						mu.Unlock()
					}
					continue
				}
				p := payload(size, uint64(n*10+w))
				if err := writeShard(ctx, d, shard(i), p); err != nil {
					t.Errorf("write shard %d: %v", i, err)
					return
				}
				mu.Lock()
				want[i] = p
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			if _, err := d.Compact(ctx); err != nil {
				t.Errorf("compact: %v", err)
				return
			}
		}
	})
	probeErrs := 0
	passes0, _ := d.Verifications()
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if err := d.Probe(ctx); err != nil {
			probeErrs++
			t.Logf("probe: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	passes, lost := d.Verifications()
	t.Logf("%d verification passes during the workload, %d objects found lost, %d shards acknowledged", passes-passes0, lost, len(want))
	if passes-passes0 < 3 {
		t.Fatalf("%d verification passes during the workload, want at least 3", passes-passes0)
	}
	if lost != 0 || probeErrs != 0 {
		t.Errorf("verification found %d objects lost (%d probes failed), want none: nothing was deleted behind the drive's back", lost, probeErrs)
	}
	d2 := open(t, s.config("", b, "vrace"))
	for name, dr := range map[string]*remote.Driver{"the drive": d, "a new Driver on the bucket": d2} {
		for i, p := range want {
			if got, err := readAll(ctx, dr, shard(i)); err != nil || !bytes.Equal(got, p) {
				t.Errorf("%s: shard %d, acknowledged: %d bytes, %v", name, i, len(got), err)
			}
		}
	}
}
