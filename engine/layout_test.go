package engine

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/vaultaire/vaultaire/placement"
)

// TestPolicyChangeRacingPut: a Put that picked its map under one storage
// policy and commits after the container's policy changed (the probe's
// F2 of session 7: set-policy racing the first PUT) is readable, listed,
// migrated into the new layout, then overwritten and deleted with nothing
// left behind. Before, every read answered ErrReadQuorum ("the map moved
// this artifact") for ever.
func TestPolicyChangeRacingPut(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to string
		size     int
	}{
		{"local to hybrid", PolicyLocal, PolicyHybrid, 3 << 20},
		{"hybrid to local", PolicyHybrid, PolicyLocal, 3 << 20},
		{"local to hybrid, inline", PolicyLocal, PolicyHybrid, 1000},
		{"local to hybrid, striped", PolicyLocal, PolicyHybrid, 20 * stripeChunkStripes * stripeTestStripe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := rigOptions{drives: 6, remote: 2, noSync: true}
			if tc.size > 4<<20 {
				o.stripeSize, o.width = stripeTestStripe, 4
			}
			r := newRig(t, o)
			var policy atomic.Value
			policy.Store(tc.from)
			r.e.cfg.StoragePolicy = func(string, string) string { return policy.Load().(string) }
			layout := func(p string) placement.Layout { return layoutOfPolicy(p) }
			if got := r.e.mapFor("t", "c").Layout; got != layout(tc.from) {
				t.Fatalf("layout %q, want %q", got, layout(tc.from))
			}
			data := randBytes(31, tc.size)
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				_, err := r.e.Put(t.Context(), "t", "c", "k", pr, PutOptions{Size: int64(len(data))})
				pr.CloseWithError(err)
				done <- err
			}()
			half := len(data) / 2
			if _, err := pw.Write(data[:half]); err != nil { // the Put is reading: its map is chosen
				t.Fatal(err)
			}
			policy.Store(tc.to)
			if _, err := pw.Write(data[half:]); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			if err := <-done; err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got := r.e.mapFor("t", "c").Layout; got != layout(tc.to) {
				t.Fatalf("layout %q after the change, want %q", got, layout(tc.to))
			}
			if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read after the policy change: %v (equal %v)", err, bytes.Equal(got, data))
			}
			if res, err := r.e.List(t.Context(), "t", "c", ListOptions{}); err != nil || len(res.Artifacts) != 1 {
				t.Fatalf("list: %+v, %v; want the artifact", res.Artifacts, err)
			}
			mres, err := r.e.Migrate(t.Context(), "t", "c", "k")
			if err != nil || !mres.Moved {
				t.Fatalf("Migrate: %+v, %v; want it moved into the new layout", mres, err)
			}
			cur := r.e.mapFor("t", "c")
			if loc, rec, err := r.e.locate(t.Context(), "t", "c", "k"); err != nil || rec == nil || !loc.sameSet(cur, pgOf(cur, "t", "c", "k")) {
				t.Fatalf("after migration the artifact is served by %v (%v); want the new layout's set", loc.m, err)
			}
			if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read after migration: %v", err)
			}
			files := func() int {
				_, n := drivesWithShards(r.shardFiles(t))
				return n
			}
			if n := files(); tc.size > 1000 && n == 0 {
				t.Fatal("no shard files after migration")
			}
			other := randBytes(32, tc.size/2+1)
			r.put(t, "k", other, int64(len(other)))
			if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, other) {
				t.Fatalf("read after overwrite: %v", err)
			}
			if err := r.e.Delete(t.Context(), "t", "c", "k"); err != nil {
				t.Fatal(err)
			}
			r.e.WaitBackground()
			if _, err := r.get("k", 0, -1); !errors.Is(err, ErrNoSuchArtifact) {
				t.Fatalf("read after delete: %v, want ErrNoSuchArtifact", err)
			}
			if n := files(); n != 0 {
				t.Fatalf("%d shard files left after the delete", n)
			}
		})
	}
}

// TestOverwriteUnderOtherLayout: a key written under one storage layout,
// overwritten while its container's policy was the other (the write
// replaces the records on the drives both layouts share, not on the
// drives only the first uses), and read after the policy flipped back:
// the read serves the overwrite, not the first version's remains on the
// unshared drives, whose shard files the overwrite removed. Before, the
// read answered ErrReadQuorum (probe F4 of session 10: GETs and copies
// failing while set-policy flipped).
func TestOverwriteUnderOtherLayout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		deleted bool // the first version deleted before the overwrite
	}{
		{"plain", 100 << 10, false},
		{"inline", 700, false},
		{"striped", 20*stripeChunkStripes*stripeTestStripe + 17, false},
		{"plain after a delete", 100 << 10, true},
		{"striped after a delete", 20*stripeChunkStripes*stripeTestStripe + 17, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 6, remote: 2, noSync: true, stripeSize: stripeTestStripe, width: 4})
			var policy atomic.Value
			policy.Store(PolicyHybrid)
			r.e.cfg.StoragePolicy = func(string, string) string { return policy.Load().(string) }
			first, second := randBytes(41, tc.size), randBytes(42, tc.size)
			r.put(t, "k", first, int64(len(first)))
			if tc.deleted {
				if err := r.e.Delete(t.Context(), "t", "c", "k"); err != nil {
					t.Fatal(err)
				}
			}
			policy.Store(PolicyLocal)
			r.put(t, "k", second, int64(len(second)))
			r.e.WaitBackground()
			policy.Store(PolicyHybrid)
			if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, second) {
				t.Fatalf("read after the policy flipped back: %d bytes, %v; want the overwrite's %d (first's: %v)", len(got), err, len(second), bytes.Equal(got, first))
			}
			if res, err := r.e.List(t.Context(), "t", "c", ListOptions{}); err != nil || len(res.Artifacts) != 1 || res.Artifacts[0].Size != int64(len(second)) {
				t.Fatalf("list after the policy flipped back: %+v, %v; want k with %d bytes", res.Artifacts, err, len(second))
			}
			if _, err := r.e.Migrate(t.Context(), "t", "c", "k"); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, second) {
				t.Fatalf("read after migration: %d bytes, %v", len(got), err)
			}
			if err := r.e.Delete(t.Context(), "t", "c", "k"); err != nil {
				t.Fatal(err)
			}
			r.e.WaitBackground()
			if _, err := r.get("k", 0, -1); !errors.Is(err, ErrNoSuchArtifact) {
				t.Fatalf("read after delete: %v, want ErrNoSuchArtifact", err)
			}
			if _, n := drivesWithShards(r.shardFiles(t)); n != 0 {
				t.Fatalf("%d shard files left after the delete", n)
			}
		})
	}
}
