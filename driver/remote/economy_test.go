package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
	"github.com/vaultaire/vaultaire/internal/faultproxy"
)

// TestReopen: a new Driver on an existing bucket prefix (another node
// adopting the drive) sees every committed record and shard, small and
// large, replaced and deleted ones as they ended; shard objects nothing
// references are removed; another cluster's Open is refused.
func TestReopen(t *testing.T) { reopen(t, startVaultd(t)) }

func TestReopenMinIO(t *testing.T) { reopen(t, startMinIO(t)) }

func reopen(t *testing.T, s server) {
	b := s.bucket(t)
	c := s.config("", b, "adopt/me")
	c.PartSize = remote.MinPartSize
	ctx := t.Context()
	d := open(t, c)
	big := payload(11<<20+3, 1) // multipart: 3 parts
	mid := payload(2<<20, 2)    // one PUT
	small := payload(3000, 3)   // inline in a log object
	steps := []func() error{
		func() error { return writeShard(ctx, d, shard(1), big) },
		func() error { return writeShard(ctx, d, shard(2), mid) },
		func() error { return writeShard(ctx, d, shard(3), small) },
		func() error { return writeShard(ctx, d, shard(4), big[:2<<20]) },
		func() error { return d.DeleteShard(ctx, shard(4)) },        // large, deleted
		func() error { return writeShard(ctx, d, shard(2), small) }, // large replaced by small
		func() error { return writeShard(ctx, d, shard(3), mid) },   // small replaced by large
		func() error {
			_, _, err := d.PutRecord(ctx, driver.Record{Key: "a", Version: version(1), Data: []byte("one")})
			return err
		},
		func() error {
			_, _, err := d.PutRecord(ctx, driver.Record{Key: "a", Version: version(3), Data: []byte("three")})
			return err
		},
		func() error {
			_, _, err := d.PutRecord(ctx, driver.Record{Key: "b", Version: version(1), Data: []byte("bee")})
			return err
		},
		func() error { return d.DeleteRecord(ctx, "b", version(1)) },
		func() error {
			_, _, err := d.PutRecord(ctx, driver.Record{Key: "c", Version: version(9), Data: []byte("sea")})
			return err
		},
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	before, err := d.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	// An orphan: a shard object uploaded by a writer that crashed before
	// its commit.
	orphan := "adopt/me/obj/0001/" + shard(9).Name + "-00000000000000ff-deadbeef"
	if _, err := s.client("").PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &orphan, Body: bytes.NewReader([]byte("junk"))}); err != nil {
		t.Fatal(err)
	}

	d2 := open(t, c)
	after, err := d2.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Usage.Used != before.Usage.Used || after.ID != before.ID {
		t.Errorf("Info after reopen %+v, before %+v", after, before)
	}
	wantShards := map[driver.Shard][]byte{shard(1): big, shard(2): small, shard(3): mid, shard(4): nil}
	for sh, want := range wantShards {
		got, err := readAll(ctx, d2, sh)
		if want == nil {
			if !errors.Is(err, driver.ErrNotFound) {
				t.Errorf("deleted shard %v after reopen: %v", sh, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("shard %v after reopen: %v, %d bytes, want %d", sh, err, len(got), len(want))
		}
	}
	recs, err := d2.ListRecords(ctx, "", "", 10)
	if err != nil || len(recs) != 2 || recs[0].Key != "a" || string(recs[0].Data) != "three" || recs[0].Version != version(3) ||
		recs[1].Key != "c" || string(recs[1].Data) != "sea" {
		t.Errorf("records after reopen: %+v, %v", recs, err)
	}
	if _, err := s.client("").HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b, Key: &orphan}); err == nil {
		t.Errorf("orphan shard object %s survived Open", orphan)
	}
	// The deleted and replaced large shards' objects are gone: only the
	// two live large shards have objects.
	out, err := s.client("").ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: strp("adopt/me/obj/")})
	if err != nil || len(out.Contents) != 2 {
		t.Errorf("shard objects left: %d, %v", len(out.Contents), err)
	}

	// Another cluster, or another drive id, on the same prefix.
	foreign := c
	foreign.ClusterID = "other"
	if _, err := remote.Open(ctx, foreign); !errors.Is(err, driver.ErrForeignDrive) {
		t.Errorf("Open by another cluster: %v, want driver.ErrForeignDrive", err)
	}
	other := c
	other.ID = "other-drive"
	if _, err := remote.Open(ctx, other); err == nil {
		t.Errorf("Open with another drive id succeeded")
	}
	// A prefix holding someone else's objects is not formatted over.
	if _, err := s.client("").PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: strp("theirs/file"), Body: bytes.NewReader(nil)}); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Open(ctx, s.config("", b, "theirs")); err == nil {
		t.Errorf("Open formatted a prefix holding other objects")
	}
}

func strp(s string) *string { return &s }

// TestGroupCommit: concurrent record writes share log objects: 64
// PutRecords against a backend 50ms away cost a handful of PUTs.
func TestGroupCommit(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	p := proxy(t, s.endpoint)
	d := open(t, s.config(p.URL, b, "gc"))
	p.Set(faultproxy.Faults{Latency: 50 * time.Millisecond})
	before := d.Stats()
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range 64 {
		wg.Go(func() {
			_, _, errs[i] = d.PutRecord(t.Context(), driver.Record{Key: fmt.Sprint(i), Version: version(1), Data: []byte("x")})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("PutRecord %d: %v", i, err)
		}
	}
	if puts := d.Stats().Sub(before).Puts; puts > 8 {
		t.Errorf("64 concurrent PutRecords cost %d PUTs, want at most 8 (group commit)", puts)
	}
}

// TestRequestEconomy measures requests and bytes sent to the backend per
// GiB of large shards and per 1,000 small shards (written one after
// another, and 16 at a time), and checks them against bounds derived from
// the design: a large shard costs one request per 8 MiB part plus three
// (create, complete, its share of a log object), a
// small one at most one shared PUT.
func TestRequestEconomy(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 128 MiB and 2,000 small shards")
	}
	s := startVaultd(t)
	b := s.bucket(t)
	ctx := t.Context()
	d := open(t, s.config("", b, "economy"))
	measure := func(f func() error) remote.Stats {
		t.Helper()
		before := d.Stats()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		return d.Stats().Sub(before)
	}
	// Large: shards of 64 MiB (a 256 MiB artifact under 4+2 would give
	// this); 2 of them, scaled to a GiB.
	const largeShard, nLarge = 64 << 20, 2
	large := measure(func() error {
		data := payload(largeShard, 1)
		for i := range nLarge {
			if err := writeShard(ctx, d, shard(100+i), data); err != nil {
				return err
			}
		}
		return nil
	})
	perGiB := float64(1<<30) / float64(largeShard*nLarge)
	// Small: 1,000 shards of 4 KiB, each with its record (what the engine
	// writes per artifact and drive), sequentially and 16 at a time.
	small := func(conc int) remote.Stats {
		return measure(func() error {
			var wg sync.WaitGroup
			errs := make(chan error, conc)
			for w := range conc {
				wg.Go(func() {
					for i := w; i < 1000; i += conc {
						if err := writeShard(ctx, d, shard(1000*conc+i), payload(4096, uint64(i))); err != nil {
							errs <- err
							return
						}
						if _, _, err := d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("s%d/%d", conc, i), Version: version(1), Data: make([]byte, 200)}); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			return <-errs
		})
	}
	seq, conc := small(1), small(16)
	t.Logf("large shards (64 MiB), per GiB stored: %.0f requests (%.0f PUT, %.0f POST), %.3f GiB sent",
		float64(large.Requests())*perGiB, float64(large.Puts)*perGiB, float64(large.Posts)*perGiB, float64(large.BytesSent)*perGiB/(1<<30))
	for _, m := range []struct {
		name string
		st   remote.Stats
	}{{"sequential", seq}, {"16 concurrent writers", conc}} {
		t.Logf("1,000 small shards of 4 KiB + 1,000 records of 200 B, %s: %d requests (%d PUT), %.2f MiB sent (payload %.2f MiB)",
			m.name, m.st.Requests(), m.st.Puts, float64(m.st.BytesSent)/(1<<20), float64(1000*(4096+200))/(1<<20))
	}
	if max := (1<<30/(8<<20) + 3*int(perGiB*nLarge)) + 4; float64(large.Requests())*perGiB > float64(max) {
		t.Errorf("large shards: %.0f requests per GiB, want at most %d", float64(large.Requests())*perGiB, max)
	}
	if float64(large.BytesSent) > 1.01*float64(largeShard*nLarge) {
		t.Errorf("large shards: sent %d bytes for %d stored", large.BytesSent, largeShard*nLarge)
	}
	if seq.Requests() > 2000 || conc.Requests() > 700 {
		t.Errorf("1,000 small shards + records: %d requests sequentially (want at most 2,000), %d with 16 writers (want at most 700)", seq.Requests(), conc.Requests())
	}
	if seq.Gets+seq.Lists+seq.Heads+conc.Gets+conc.Lists+conc.Heads != 0 {
		t.Errorf("writes read from the backend: %+v %+v", seq, conc)
	}
}
