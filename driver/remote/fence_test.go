package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
)

// TestFenceStopsWrites: once Config.Fence refuses, no write of the fenced
// driver reaches the bucket (no PUT, POST or DELETE is sent) and every
// mutation fails with ErrFenced and driver.ErrOffline; a driver opened on
// the same prefix afterwards (the adopter) sees exactly what the fenced
// one acknowledged.
func TestFenceStopsWrites(t *testing.T) {
	s := startMinIO(t)
	b := s.bucket(t)
	var owned atomic.Bool
	owned.Store(true)
	cfg := s.config("", b, "drive")
	cfg.SmallShardMax = 1 << 10 // the 8 KiB shard below gets an object of its own
	cfg.CompactInterval = -1
	cfg.Fence = remote.FenceFunc(func(context.Context) error {
		if owned.Load() {
			return nil
		}
		return errors.New("adopted by another node")
	})
	a := open(t, cfg)
	ctx := t.Context()
	ver := func(n byte) driver.Version { var v driver.Version; v[len(v)-1] = n; return v }
	small, large := bytes.Repeat([]byte("s"), 100), bytes.Repeat([]byte("L"), 8<<10)
	shard := func(i int) driver.Shard { return driver.Shard{PG: 1, Name: fmt.Sprintf("%032x", i)} }
	writeShard := func(d *remote.Driver, s driver.Shard, p []byte) error {
		w, err := d.CreateShard(ctx, s)
		if err != nil {
			return err
		}
		if _, err := w.Write(p); err != nil {
			w.Abort()
			return err
		}
		return w.Commit(ctx)
	}
	if _, _, err := a.PutRecord(ctx, driver.Record{Key: "k1", Version: ver(1), Data: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	if err := writeShard(a, shard(1), small); err != nil {
		t.Fatal(err)
	}
	if err := writeShard(a, shard(2), large); err != nil {
		t.Fatal(err)
	}

	owned.Store(false)
	before := a.Stats()
	fenced := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, remote.ErrFenced) || !errors.Is(err, driver.ErrOffline) {
			t.Errorf("%s while fenced: %v, want ErrFenced and driver.ErrOffline", what, err)
		}
	}
	_, _, err := a.PutRecord(ctx, driver.Record{Key: "k2", Version: ver(2), Data: []byte("two")})
	fenced("PutRecord", err)
	fenced("DeleteRecord", a.DeleteRecord(ctx, "k1", ver(1)))
	fenced("small shard", writeShard(a, shard(3), small))
	fenced("large shard", writeShard(a, shard(4), large))
	fenced("DeleteShard", a.DeleteShard(ctx, shard(1)))
	_, err = a.Info(ctx)
	fenced("Info", err)
	after := a.Stats()
	if after.Puts != before.Puts || after.Posts != before.Posts || after.Deletes != before.Deletes {
		t.Errorf("requests while fenced: %d PUT, %d POST, %d DELETE; want none", after.Puts-before.Puts, after.Posts-before.Posts, after.Deletes-before.Deletes)
	}

	bcfg := cfg
	bcfg.Fence = nil
	nb := open(t, bcfg)
	if r, err := nb.GetRecord(ctx, "k1"); err != nil || string(r.Data) != "one" {
		t.Errorf("adopter: k1 = %q, %v; want one", r.Data, err)
	}
	if _, err := nb.GetRecord(ctx, "k2"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("adopter: k2 (refused write): %v, want ErrNotFound", err)
	}
	for i, want := range map[int][]byte{1: small, 2: large} {
		rc, err := nb.ReadShard(ctx, shard(i), 0, -1)
		if err != nil {
			t.Errorf("adopter: shard %d: %v", i, err)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("adopter: shard %d: %d bytes, %v; want the %d acknowledged", i, len(got), err, len(want))
		}
	}
	for _, i := range []int{3, 4} {
		if _, err := nb.ReadShard(ctx, shard(i), 0, -1); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("adopter: shard %d (refused write): %v, want ErrNotFound", i, err)
		}
	}
	objs, err := s.client("").ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("drive/obj/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs.Contents {
		if strings.Contains(*o.Key, fmt.Sprintf("%032x", 4)) {
			t.Errorf("fenced large shard reached the bucket: %s", *o.Key)
		}
	}
}

// TestFenceAskedAtSend: the fence is asked again right before a write
// request is sent (after the wait for a request slot and between retries),
// so a permission that expires after the driver's first check stops the
// request: nothing is sent, the call fails with ErrFenced and
// driver.ErrOffline at once (no retries), and the breaker stays closed.
func TestFenceAskedAtSend(t *testing.T) {
	s := startMinIO(t)
	b := s.bucket(t)
	var asks, refuseAfter atomic.Int64 // refuse every ask past refuseAfter (0: none)
	cfg := s.config("", b, "drive")
	cfg.CompactInterval = -1
	cfg.BreakerThreshold = 1
	cfg.Fence = remote.FenceFunc(func(context.Context) error {
		n := asks.Add(1)
		if r := refuseAfter.Load(); r > 0 && n > r {
			return errors.New("permission expired")
		}
		return nil
	})
	a := open(t, cfg)
	ctx := t.Context()
	ver := func(n byte) driver.Version { var v driver.Version; v[len(v)-1] = n; return v }
	if _, _, err := a.PutRecord(ctx, driver.Record{Key: "k1", Version: ver(1), Data: []byte("one")}); err != nil {
		t.Fatal(err)
	}

	before := a.Stats()
	first := asks.Load()
	refuseAfter.Store(first + 1) // the driver's own check passes, the one at send does not
	_, _, err := a.PutRecord(ctx, driver.Record{Key: "k2", Version: ver(2), Data: []byte("two")})
	if !errors.Is(err, remote.ErrFenced) || !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("PutRecord refused at send: %v, want ErrFenced and driver.ErrOffline", err)
	}
	if n := asks.Load() - first; n != 2 {
		t.Errorf("fence asked %d times for one refused write, want 2 (the driver's check, the send; no retry)", n)
	}
	if after := a.Stats(); after.Puts != before.Puts || after.Retries != before.Retries {
		t.Errorf("refused at send, yet %d PUT and %d retries were counted", after.Puts-before.Puts, after.Retries-before.Retries)
	}
	refuseAfter.Store(0)
	if err := a.Err(); err != nil {
		t.Fatalf("drive offline after a fenced send (breaker fed?): %v", err)
	}
	if _, _, err := a.PutRecord(ctx, driver.Record{Key: "k3", Version: ver(3), Data: []byte("three")}); err != nil {
		t.Fatalf("PutRecord once permitted again: %v", err)
	}
	bcfg := cfg
	bcfg.Fence = nil
	nb := open(t, bcfg)
	if _, err := nb.GetRecord(ctx, "k2"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("the write refused at send: k2 %v, want ErrNotFound", err)
	}
	if r, err := nb.GetRecord(ctx, "k3"); err != nil || string(r.Data) != "three" {
		t.Errorf("k3 = %q, %v; want three", r.Data, err)
	}
}

// TestExistingRefusesToFormat: an adopter (Config.Existing) on a prefix
// without format.json fails and writes nothing, rather than formatting an
// empty drive in place of the one it was told to adopt.
func TestExistingRefusesToFormat(t *testing.T) {
	s := startMinIO(t)
	b := s.bucket(t)
	cfg := s.config("", b, "adopted")
	cfg.Existing = true
	if d, err := remote.Open(t.Context(), cfg); err == nil {
		d.Close()
		t.Fatal("Open with Existing on an empty prefix succeeded")
	} else if !strings.Contains(err.Error(), "refusing to format") {
		t.Errorf("Open with Existing on an empty prefix: %v, want a refusal to format", err)
	}
	out, err := s.client("").ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &b})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(out.Contents); n != 0 {
		t.Errorf("the refused Open left %d objects (%s ...)", n, aws.ToString(out.Contents[0].Key))
	}
	cfg.Existing = false
	open(t, cfg).Close()
	cfg.Existing = true
	open(t, cfg) // formatted now: adoptable
}
