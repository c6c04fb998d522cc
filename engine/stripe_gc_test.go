package engine

import (
	"bytes"
	"encoding/hex"
	"sync/atomic"
	"testing"
	"time"
)

// TestStripeOrphansCollected: a striped Put leaves no stripe intent; one
// that crashed after writing its parts but before its record leaves
// shard files in other PGs that CollectStripeOrphans deletes once the
// intent is older than InFlightGrace (not before); one that crashed after
// its record, before removing its intent, keeps its data and loses only
// the intent.
func TestStripeOrphansCollected(t *testing.T) {
	r := newStripeRig(t, 8)
	var skew atomic.Int64
	r.e.cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	ctx := t.Context()
	intents := func() int {
		t.Helper()
		n := 0
		for _, f := range r.faulty {
			recs, err := f.ListRecords(ctx, intentKeys, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			n += len(recs)
		}
		return n
	}
	files := func() int {
		t.Helper()
		_, total := drivesWithShards(r.shardFiles(t))
		return total
	}
	done := randBytes(21, 1_000_000)
	r.put(t, "done", done, int64(len(done)))
	if n := intents(); n != 0 {
		t.Fatalf("a striped Put left %d intent records", n)
	}

	// crash writes key's parts as a striped Put does and, if commit, its
	// record, then stops as a crash would: neither drop nor done.
	crash := func(key string, data []byte, commit bool) {
		t.Helper()
		m := r.e.mapOf()
		pol := m.Policy
		drives, _ := r.e.pgDrives(m, pgOf(m, "t", "c", key))
		rec := record{Data: pol.Data, Parity: pol.Parity, StripeSize: r.e.cfg.StripeSize, PG: pgOf(m, "t", "c", key)}
		r.e.setStriping(&rec, m, stripeWidth(m))
		codec, err := r.e.codec(pol.Data, pol.Parity, rec.StripeSize)
		if err != nil {
			t.Fatal(err)
		}
		digest, release := newETagHash(true)
		defer release()
		parts, _, _, err := r.e.putStriped(ctx, codec, m, &rec, "t", "c", key, bytes.NewReader(data), int64(len(data)), MaxArtifactSize, pol.WriteQuorum(), digest)
		if err != nil {
			t.Fatal(err)
		}
		if !commit {
			return
		}
		rec.Parts, rec.Size, rec.ETag = parts, int64(len(data)), hex.EncodeToString(digest.Sum(nil))
		rec.Version, _ = r.e.newVersion()
		if _, err := r.e.artifactWrite("t", "c", key, drives, pol.WriteQuorum()).latest(ctx, &rec, nil, present(drives)); err != nil {
			t.Fatal(err)
		}
	}
	committed := randBytes(22, 900_000)
	crash("committed", committed, true)
	afterCommitted := files()
	crash("orphan", randBytes(23, 1_200_000), false)
	afterOrphan := files()
	if afterOrphan <= afterCommitted || intents() == 0 {
		t.Fatalf("the crashed put left %d shard files and %d intent records; want some of both", afterOrphan-afterCommitted, intents())
	}

	st, err := r.e.CollectStripeOrphans(ctx)
	if err != nil || st.Intents != 0 || files() != afterOrphan {
		t.Fatalf("CollectStripeOrphans within the grace = %+v, %v, %d shard files; want nothing done, %d files", st, err, files(), afterOrphan)
	}
	skew.Store(int64(InFlightGrace + time.Minute))
	st, err = r.e.CollectStripeOrphans(ctx)
	if err != nil || st.Intents != 2 || st.Collected != 1 || st.Completed != 1 || st.Shards != afterOrphan-afterCommitted {
		t.Fatalf("CollectStripeOrphans after the grace = %+v, %v; want 2 intents, 1 collected (%d shards), 1 completed", st, err, afterOrphan-afterCommitted)
	}
	if got := files(); got != afterCommitted {
		t.Fatalf("%d shard files after collecting, want %d", got, afterCommitted)
	}
	if n := intents(); n != 0 {
		t.Fatalf("%d intent records left after collecting", n)
	}
	for key, want := range map[string][]byte{"done": done, "committed": committed} {
		if got, err := r.get(key, 0, int64(len(want))); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after collecting: %d bytes, %v", key, len(got), err)
		}
	}
}
