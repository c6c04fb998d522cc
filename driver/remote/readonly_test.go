package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
)

// TestReadOnlyFollowsOwner: a read-only Driver on the prefix an owner
// writes answers every read as the owner's index stands when the read
// begins: records replaced and deleted, small and large shards written,
// replaced under the same name and deleted, after compactions that
// snapshot the index, move shards and delete log objects. It never writes
// (no PUT, POST or DELETE), every write it is asked for fails with
// ErrReadOnly and driver.ErrOffline, and it refuses a prefix without
// format.json instead of formatting it.
func TestReadOnlyFollowsOwner(t *testing.T) {
	s := startMinIO(t)
	b := s.bucket(t)
	cfg := s.config("", b, "drive")
	cfg.SmallShardMax = 1 << 10 // 8 KiB shards get objects of their own
	cfg.CompactInterval = -1
	cfg.CompactRatio = 0.99 // every log object with a dead byte is rewritten
	owner := open(t, cfg)
	ctx := t.Context()
	ver := func(n byte) driver.Version { var v driver.Version; v[len(v)-1] = n; return v }
	shard := func(i int) driver.Shard { return driver.Shard{PG: 3, Name: fmt.Sprintf("%032x", i)} }
	writeShard := func(sh driver.Shard, p []byte) {
		t.Helper()
		w, err := owner.CreateShard(ctx, sh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	putRecord := func(key string, v byte, data string) {
		t.Helper()
		if _, _, err := owner.PutRecord(ctx, driver.Record{Key: key, Version: ver(v), Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	body := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

	// want is what the owner holds: records by key, shards by index (nil:
	// deleted).
	wantRec := map[string]string{}
	wantShard := map[int][]byte{}
	putRecord("k1", 1, "one")
	putRecord("k2", 1, "two")
	wantRec["k1"], wantRec["k2"] = "one", "two"
	for i, p := range [][]byte{body('a', 100), body('B', 8<<10), body('c', 300)} {
		writeShard(shard(i), p)
		wantShard[i] = p
	}

	rcfg := cfg
	rcfg.ReadOnly = true
	reader := open(t, rcfg)
	check := func(step string) {
		t.Helper()
		for k, want := range wantRec {
			r, err := reader.GetRecord(ctx, k)
			switch {
			case want == "" && !errors.Is(err, driver.ErrNotFound):
				t.Errorf("%s: record %s: %v %q, want driver.ErrNotFound", step, k, err, r.Data)
			case want != "" && (err != nil || string(r.Data) != want):
				t.Errorf("%s: record %s: %v %q, want %q", step, k, err, r.Data, want)
			}
		}
		var listed int
		recs, err := reader.ListRecords(ctx, "k", "", 100)
		if err != nil {
			t.Fatalf("%s: list records: %v", step, err)
		}
		for _, r := range recs {
			if want := wantRec[r.Key]; want == "" {
				t.Errorf("%s: listed record %s, deleted", step, r.Key)
			}
			listed++
		}
		for _, want := range wantRec {
			if want != "" {
				listed--
			}
		}
		if listed != 0 {
			t.Errorf("%s: listed %d records, %d more than the owner holds", step, len(recs), listed)
		}
		for i, want := range wantShard {
			rc, err := reader.ReadShard(ctx, shard(i), 0, -1)
			if want == nil {
				if !errors.Is(err, driver.ErrNotFound) {
					t.Errorf("%s: shard %d: %v, want driver.ErrNotFound (deleted)", step, i, err)
				}
				if err == nil {
					rc.Close()
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: shard %d: %v", step, i, err)
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: shard %d: %v, %d bytes starting %q; want %d bytes of %q", step, i, err, len(got), got[:min(len(got), 1)], len(want), want[:1])
			}
		}
	}
	check("opened")

	// Replaced and deleted under the same names, read at once.
	putRecord("k1", 2, "one again")
	if err := owner.DeleteRecord(ctx, "k2", ver(1)); err != nil {
		t.Fatal(err)
	}
	wantRec["k1"], wantRec["k2"] = "one again", ""
	writeShard(shard(0), body('A', 120))
	writeShard(shard(1), body('b', 9<<10))
	if err := owner.DeleteShard(ctx, shard(2)); err != nil {
		t.Fatal(err)
	}
	writeShard(shard(3), body('d', 10<<10))
	wantShard[0], wantShard[1], wantShard[2], wantShard[3] = body('A', 120), body('b', 9<<10), nil, body('d', 10<<10)
	check("after replacing")

	// Compactions: a snapshot the reader has not seen (it reloads whole),
	// shards moved out of sparse log objects, and those deleted by the
	// second run.
	putRecord("k3", 1, "three")
	writeShard(shard(4), body('e', 200))
	wantRec["k3"], wantShard[4] = "three", body('e', 200)
	for i := range 2 {
		st, err := owner.Compact(ctx)
		if err != nil {
			t.Fatalf("compact %d: %v", i, err)
		}
		t.Logf("compact %d: %+v", i, st)
	}
	writeShard(shard(0), body('Z', 130))
	wantShard[0] = body('Z', 130)
	check("after compacting")
	if _, reloads := reader.Refreshes(); reloads == 0 {
		t.Errorf("the reader never reloaded its index whole, though the owner wrote a snapshot it had not seen")
	}

	// Writes through the reader are refused before any request.
	before := reader.Stats()
	if _, _, err := reader.PutRecord(ctx, driver.Record{Key: "k9", Version: ver(9), Data: []byte("x")}); !errors.Is(err, remote.ErrReadOnly) || !errors.Is(err, driver.ErrOffline) {
		t.Errorf("reader PutRecord: %v, want ErrReadOnly and driver.ErrOffline", err)
	}
	if err := reader.DeleteRecord(ctx, "k1", driver.Version{}); !errors.Is(err, remote.ErrReadOnly) {
		t.Errorf("reader DeleteRecord: %v, want ErrReadOnly", err)
	}
	if _, err := reader.CreateShard(ctx, shard(9)); !errors.Is(err, remote.ErrReadOnly) || !errors.Is(err, driver.ErrOffline) {
		t.Errorf("reader CreateShard: %v, want ErrReadOnly and driver.ErrOffline", err)
	}
	if err := reader.DeleteShard(ctx, shard(0)); !errors.Is(err, remote.ErrReadOnly) {
		t.Errorf("reader DeleteShard: %v, want ErrReadOnly", err)
	}
	if _, err := reader.Compact(ctx); !errors.Is(err, remote.ErrReadOnly) {
		t.Errorf("reader Compact: %v, want ErrReadOnly", err)
	}
	if _, err := reader.Info(ctx); !errors.Is(err, driver.ErrOffline) {
		t.Errorf("reader Info: %v, want driver.ErrOffline (it takes no writes)", err)
	}
	if st := reader.Stats(); st.Puts+st.Posts+st.Deletes != 0 {
		t.Errorf("the reader sent %d PUT, %d POST, %d DELETE requests; want none", st.Puts, st.Posts, st.Deletes)
	} else if d := st.Sub(before); d.Requests() != 0 {
		t.Errorf("refused writes cost %d requests", d.Requests())
	}
	check("after refused writes")

	// A reader never formats: a prefix without format.json is refused.
	ecfg := rcfg
	ecfg.Prefix = "empty"
	if d, err := remote.Open(ctx, ecfg); err == nil {
		d.Close()
		t.Errorf("a read-only Open of an empty prefix succeeded")
	}
	if objs := listKeys(t, s, b, "empty"); len(objs) != 0 {
		t.Errorf("a read-only Open wrote %v", objs)
	}
}

// listKeys returns the keys under prefix in bucket b of s.
func listKeys(t *testing.T, s server, b, prefix string) []string {
	t.Helper()
	out, err := s.client("").ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &b, Prefix: &prefix})
	if err != nil {
		t.Fatalf("list %s/%s: %v", b, prefix, err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, *o.Key)
	}
	return keys
}

// TestReadOnlyRefreshesShared: concurrent reads of a read-only Driver
// share their refreshes of the index: 64 reads at once cost a handful of
// LIST requests, not two each, and every one sees a record the owner
// acknowledged before the reads began.
func TestReadOnlyRefreshesShared(t *testing.T) {
	s := startMinIO(t)
	b := s.bucket(t)
	cfg := s.config("", b, "drive")
	cfg.CompactInterval = -1
	owner := open(t, cfg)
	ctx := t.Context()
	rcfg := cfg
	rcfg.ReadOnly = true
	reader := open(t, rcfg)
	if _, _, err := owner.PutRecord(ctx, driver.Record{Key: "k", Version: driver.Version{15: 2}, Data: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	before := reader.Stats()
	const reads = 64
	errs := make(chan error, reads)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range reads {
		wg.Go(func() {
			<-start
			r, err := reader.GetRecord(ctx, "k")
			if err == nil && string(r.Data) != "new" {
				err = fmt.Errorf("record %q, want new", r.Data)
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := reader.Stats().Sub(before)
	t.Logf("%d concurrent reads: %d LIST, %d GET requests", reads, st.Lists, st.Gets)
	if st.Lists > 8 {
		t.Errorf("%d concurrent reads sent %d LIST requests; want refreshes shared (at most 8)", reads, st.Lists)
	}
}

// TestReadOnlyDropsIdleIndex: a reader that got no read for ReaderIdle
// (a standby whose owner is back) drops its in-memory index, and the next
// read, finding nothing applied, reads it again from the bucket: what the
// owner wrote before and after the drop (a snapshot and the log objects
// after it) reads back exactly.
func TestReadOnlyDropsIdleIndex(t *testing.T) {
	s := startMinIO(t)
	cfg := s.config("", s.bucket(t), "drive")
	cfg.CompactInterval = -1
	owner := open(t, cfg)
	ctx := t.Context()
	ver := func(n byte) driver.Version { var v driver.Version; v[len(v)-1] = n; return v }
	put := func(key string, v byte) {
		t.Helper()
		if _, _, err := owner.PutRecord(ctx, driver.Record{Key: key, Version: ver(v), Data: []byte(fmt.Sprint(key, v))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		put(fmt.Sprintf("k%02d", i), 1)
	}
	if _, err := owner.Compact(ctx); err != nil { // a snapshot
		t.Fatal(err)
	}
	put("k00", 2)
	rcfg := cfg
	rcfg.ReadOnly = true
	rcfg.ReaderIdle = 300 * time.Millisecond
	reader := open(t, rcfg)
	check := func(step string, want map[string]byte) {
		t.Helper()
		recs, err := reader.ListRecords(ctx, "k", "", 100)
		if err != nil || len(recs) != len(want) {
			t.Fatalf("%s: listed %d records, %v; want %d", step, len(recs), err, len(want))
		}
		for _, r := range recs {
			if v := want[r.Key]; r.Version != ver(v) || string(r.Data) != fmt.Sprint(r.Key, v) {
				t.Fatalf("%s: record %s version %x %q; want version %d", step, r.Key, r.Version, r.Data, v)
			}
		}
	}
	want := map[string]byte{}
	for i := range 20 {
		want[fmt.Sprintf("k%02d", i)] = 1
	}
	want["k00"] = 2
	check("opened", want)
	// Reads keep it; idle, it goes.
	for range 4 {
		time.Sleep(100 * time.Millisecond)
		check("read within the idle time", want)
	}
	if n := reader.Drops(); n != 0 {
		t.Fatalf("the index was dropped %d times while reads came every 100 ms", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for reader.Drops() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reader kept its index 10 s without a read, ReaderIdle 300 ms")
		}
		time.Sleep(50 * time.Millisecond)
	}
	put("k01", 3)
	put("k20", 1)
	if err := owner.DeleteRecord(ctx, "k02", ver(1)); err != nil {
		t.Fatal(err)
	}
	want["k01"], want["k20"] = 3, 1
	delete(want, "k02")
	_, reloads := reader.Refreshes()
	check("after the drop", want)
	if _, r := reader.Refreshes(); r != reloads+1 {
		t.Fatalf("reloads %d after the drop, want %d (the first read reloads from the snapshot)", r, reloads+1)
	}
	if got, err := reader.GetRecord(ctx, "k00"); err != nil || got.Version != ver(2) {
		t.Fatalf("k00 after the drop: %x, %v; want version 2", got.Version, err)
	}
}
