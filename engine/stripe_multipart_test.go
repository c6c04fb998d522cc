package engine

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// TestStripedMultipart: with a stripe width over 1, an upload's parts are
// striped over the map's PGs like a Put's (part n in the ((n-1) mod W)'th
// of the upload's PGs), so the completed artifact's shard files are on
// more drives than one PG has; it reads back identical, whole and across
// part boundaries; Heal rebuilds a drive's slots of every part; parts completed at another index than their number's
// are copied to where the artifact's record places them, and the parts
// left out are dropped; deleting it removes every shard file.
func TestStripedMultipart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		width int
		use   []int // part numbers completed, of 1-4
	}{
		{"width 8, parts in order", 8, []int{1, 2, 3, 4}},
		{"width 8, part 2 left out", 8, []int{1, 3, 4}},
		{"width 1", 1, []int{1, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newStripeRig(t, tc.width)
			ctx := t.Context()
			const key = "striped/mp"
			id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			bodies := map[int][]byte{1: randBytes(11, MinPartSize), 2: randBytes(12, MinPartSize), 3: randBytes(13, MinPartSize+12345), 4: randBytes(14, 70_000)}
			etags := map[int]string{}
			for n := 1; n <= 4; n++ {
				pi, err := r.e.PutPart(ctx, "t", "c", key, id, n, bytes.NewReader(bodies[n]), PutOptions{Size: int64(len(bodies[n]))})
				if err != nil {
					t.Fatalf("PutPart(%d): %v", n, err)
				}
				etags[n] = pi.ETag
			}
			for _, f := range r.faulty { // a part's stripe intent goes once its record is written
				if recs, err := f.ListRecords(ctx, intentKeys, "", 10); err != nil || len(recs) != 0 {
					t.Fatalf("%d stripe intents left after the parts, %v", len(recs), err)
				}
			}
			var cps []CompletePart
			var want []byte
			for _, n := range tc.use {
				cps = append(cps, CompletePart{Number: n, ETag: etags[n]})
				want = append(want, bodies[n]...)
			}
			if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil); err != nil {
				t.Fatalf("CompleteUpload: %v", err)
			}
			got, err := r.get(key, 0, int64(len(want)))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, %v; want the %d bytes of parts %v", len(got), err, len(want), tc.use)
			}
			// A range across the first part boundary.
			off := int64(MinPartSize - 1000)
			if got, err := r.get(key, off, 5000); err != nil || !bytes.Equal(got, want[off:off+5000]) {
				t.Fatalf("range across parts: %d bytes, %v", len(got), err)
			}
			// A part larger than a Put's is read in pieces of one: the
			// window's buffers stay a few of those, not a few parts.
			a, err := r.e.Open(ctx, "t", "c", key)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := a.WriteRange(ctx, io.Discard, 0, a.Info.Size); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			// A lone read's window is its burst; decoding costs about as
			// much again (4.3 MB for a window of 8 under the race
			// detector). Whole parts would be the artifact's 10 MB.
			window := uint64(stripeReadBurst * stripeChunkStripes * stripeTestStripe)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*window {
				t.Fatalf("reading %d bytes allocated %d bytes, want at most %d (a window of %d pieces of %d bytes, three times)", a.Info.Size, alloc, 3*window, stripeReadBurst, stripeChunkStripes*stripeTestStripe)
			}
			rec := r.homeRecord(t, key)
			pgs := map[uint32]bool{}
			for i := range rec.Parts {
				pgs[rec.partPG(i)] = true
			}
			wantFiles := len(tc.use) * 3 // 2+1
			waitShardFiles(t, r, wantFiles, "after Complete (parts left out dropped)")
			drives, _ := drivesWithShards(r.shardFiles(t))
			// The parts' files are on the drives of their PGs' sets: all
			// of them (the first parts' PGs are spread over the drives;
			// which sets the PGs of parts left out would have added
			// depends on the upload's seed, so only the union is checked).
			m := r.e.mapOf()
			union := map[placement.DriveID]bool{}
			for pg := range pgs {
				for _, id := range m.Set(pg) {
					union[id] = true
				}
			}
			if tc.width > 1 {
				if !rec.striped() || len(pgs) != len(tc.use) || drives != len(union) || len(tc.use) == 4 && drives < 5 {
					t.Fatalf("striped %v over %d PGs, shard files on %d drives, the PGs' sets span %d; want %d PGs, files on every drive of their sets (at least 5 of 6 with 4 parts)", rec.striped(), len(pgs), drives, len(union), len(tc.use))
				}
			} else if rec.striped() || len(pgs) != 1 || drives != 3 {
				t.Fatalf("striped %v over %d PGs, shard files on %d drives; want 1 PG on 3 drives", rec.striped(), len(pgs), drives)
			}
			// Heal follows the parts to their PGs: a drive that lost
			// every shard file gets its slots of each part back.
			files := r.shardFiles(t)
			lost := slices.IndexFunc(files, func(f []string) bool { return len(f) > 0 })
			for _, f := range files[lost] {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := r.e.Heal(ctx, "t", "c", key); err != nil {
				t.Fatalf("Heal: %v", err)
			}
			if got := len(r.shardFiles(t)[lost]); got != len(files[lost]) {
				t.Fatalf("after Heal drive %d holds %d shard files, want %d", lost, got, len(files[lost]))
			}
			if err := r.e.Delete(ctx, "t", "c", key); err != nil {
				t.Fatal(err)
			}
			waitShardFiles(t, r, 0, "after Delete")
		})
	}
}

// waitShardFiles waits for r's drives to hold want shard files in all.
func waitShardFiles(t *testing.T, r *rig, want int, when string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		files := r.shardFiles(t)
		_, total := drivesWithShards(files)
		if total == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d shard files on the drives, want %d: %v", when, total, want, slices.Concat(files...))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStripedPartMissedDriveQueuesHeal: a striped upload's part whose
// shard files missed a drive of their PG (a write quorum took them) is
// marked so, and completing the upload queues the artifact for Heal, which
// restores the missing files (no record says which slot missed them, so a
// read would not notice); an upload that missed nothing queues nothing.
func TestStripedPartMissedDriveQueuesHeal(t *testing.T) {
	r := newStripeRig(t, 8)
	ctx := t.Context()
	bodies := [][]byte{randBytes(21, MinPartSize), randBytes(22, MinPartSize), randBytes(23, MinPartSize), randBytes(24, 90_000)}
	upload := func(key string) {
		t.Helper()
		id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var cps []CompletePart
		for i, b := range bodies {
			pi, err := r.e.PutPart(ctx, "t", "c", key, id, i+1, bytes.NewReader(b), PutOptions{Size: int64(len(b))})
			if err != nil {
				t.Fatalf("PutPart(%d): %v", i+1, err)
			}
			if len(pi.Metadata) != 0 {
				t.Fatalf("part %d answers metadata %q", i+1, pi.Metadata)
			}
			cps = append(cps, CompletePart{Number: i + 1, ETag: pi.ETag})
		}
		if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil); err != nil {
			t.Fatalf("CompleteUpload: %v", err)
		}
	}
	upload("whole")
	if due := r.e.dueHeals(time.Now().Add(time.Hour)); len(due) != 0 {
		t.Fatalf("an upload that missed nothing queued %v", due)
	}
	full := len(bodies) * 3 // 2+1
	want := slices.Concat(bodies...)
	m := r.e.mapOf()
	// A drive outside the key's own PG (its records) fails every write
	// while the parts go in: the first that costs a part a shard file.
	for i, id := range r.ids {
		key := fmt.Sprintf("k%d", i)
		if slices.Contains(m.Set(m.PGOf("t", "c", key)), id) {
			continue
		}
		before := countFiles(r.shardFiles(t))
		r.faulty[i].SetFailWritesAfter(0)
		upload(key)
		r.faulty[i].SetFailWritesAfter(-1)
		r.e.WaitBackground()
		if got := countFiles(r.shardFiles(t)) - before; got >= full {
			continue // this drive held no slot of the parts' PGs
		}
		due := r.e.dueHeals(time.Now().Add(time.Hour))
		if !slices.Contains(due, HealItem{"t", "c", key}) {
			t.Fatalf("heal queue %v, want %s queued: a part missed drive %s", due, key, id)
		}
		if _, err := r.e.Heal(ctx, "t", "c", key); err != nil {
			t.Fatal(err)
		}
		if got := countFiles(r.shardFiles(t)) - before; got != full {
			t.Fatalf("%d shard files of %s after the heal, want %d", got, key, full)
		}
		if got, err := r.get(key, 0, -1); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read after heal: %d bytes, %v", len(got), err)
		}
		return
	}
	t.Fatal("no drive outside the key's PG held a slot of its parts' PGs")
}

func countFiles(files [][]string) int {
	_, total := drivesWithShards(files)
	return total
}
