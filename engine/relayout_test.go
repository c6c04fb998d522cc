package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// relayoutWalk runs RelayoutContainer from the start until its Next is
// "", limit keys a call (so the walk is resumed many times), and sums it.
func relayoutWalk(t *testing.T, e *Engine, opts RelayoutOptions) RelayoutStats {
	t.Helper()
	var sum RelayoutStats
	for range 10000 {
		st, err := e.RelayoutContainer(t.Context(), "t", "c", opts)
		if err != nil {
			t.Fatalf("RelayoutContainer after %q: %+v, %v", opts.After, st, err)
		}
		sum.Keys += st.Keys
		sum.Misplaced += st.Misplaced
		sum.MisplacedBytes += st.MisplacedBytes
		sum.Moved += st.Moved
		sum.Bytes += st.Bytes
		sum.Failed += st.Failed
		if st.Next == "" {
			return sum
		}
		opts.After = st.Next
	}
	t.Fatal("the walk did not end")
	return sum
}

// TestRelayoutContainer: a container holding artifacts of every kind
// (inline, plain, striped, multipart-completed, versions of a versioned
// key, a delete marker) changes its storage policy from local to hybrid
// and back. The change is allowed (it was refused with
// ErrContainerNotEmpty), but not while an upload is in progress; reads
// keep answering the right bytes during the walk, which is resumed every
// 3 keys and overwrites a key half-way; afterwards every record is placed
// for the new layout: hybrid survives losing any two local drives (the
// parity is on the remote ones) and reads with the remote drives offline,
// and back on local the remote drives hold no record or shard file.
func TestRelayoutContainer(t *testing.T) {
	r := newRig(t, rigOptions{drives: 6, remote: 2, noSync: true, stripeSize: stripeTestStripe, width: 4})
	var policy atomic.Value
	policy.Store(PolicyLocal)
	r.e.cfg.StoragePolicy = func(string, string) string { return policy.Load().(string) }
	ctx := t.Context()

	bodies := map[string][]byte{
		"empty":   {},
		"inline":  randBytes(1, 1000),
		"plain":   randBytes(2, 200<<10),
		"striped": randBytes(3, 20*stripeChunkStripes*stripeTestStripe+17),
	}
	for k, b := range bodies {
		r.put(t, k, b, int64(len(b)))
	}
	// A multipart-completed artifact.
	mp := randBytes(4, MinPartSize+3000)
	id, err := r.e.CreateUpload(ctx, "t", "c", "mp", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cps []CompletePart
	for i, p := range [][]byte{mp[:MinPartSize], mp[MinPartSize:]} {
		pi, err := r.e.PutPart(ctx, "t", "c", "mp", id, i+1, bytes.NewReader(p), PutOptions{Size: int64(len(p))})
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, CompletePart{i + 1, pi.ETag})
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", "mp", id, cps, nil); err != nil {
		t.Fatal(err)
	}
	bodies["mp"] = mp
	// Two versions of a versioned key, and a versioned key whose newest
	// version is a delete marker.
	v1, v2 := randBytes(5, 70<<10), randBytes(6, 3000)
	i1 := r.vput(t, "ver", v1, VersioningEnabled)
	i2 := r.vput(t, "ver", v2, VersioningEnabled)
	gone := randBytes(7, 5000)
	ig := r.vput(t, "gone", gone, VersioningEnabled)
	if _, err := r.e.DeleteVersion(ctx, "t", "c", "gone", DeleteOptions{Versioning: VersioningEnabled}); err != nil {
		t.Fatal(err)
	}
	versions := map[[2]string][]byte{{"ver", i1.VersionID}: v1, {"ver", i2.VersionID}: v2, {"gone", ig.VersionID}: gone}

	// An upload in progress still blocks a change of layout; tier, which
	// writes like local, does not.
	up, err := r.e.CreateUpload(ctx, "t", "c", "open", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.e.CheckPolicyChange(ctx, "t", "c", PolicyHybrid); !errors.Is(err, ErrContainerNotEmpty) {
		t.Fatalf("CheckPolicyChange(hybrid) with an upload in progress: %v, want ErrContainerNotEmpty", err)
	}
	if err := r.e.CheckPolicyChange(ctx, "t", "c", PolicyTier); err != nil {
		t.Fatalf("CheckPolicyChange(tier): %v", err)
	}
	if err := r.e.AbortUpload(ctx, "t", "c", "open", up); err != nil {
		t.Fatal(err)
	}

	readAll := func(when string) error {
		var errs []error
		for k, want := range bodies {
			if got, err := r.get(k, 0, -1); err != nil || !bytes.Equal(got, want) {
				errs = append(errs, fmt.Errorf("%s: read %s: %d bytes (want %d), %v", when, k, len(got), len(want), err))
			}
		}
		for kv, want := range versions {
			if got, err := r.vget(t, kv[0], kv[1]); err != nil || !bytes.Equal(got, want) {
				errs = append(errs, fmt.Errorf("%s: read %s version %s: %d bytes, %v", when, kv[0], kv[1], len(got), err))
			}
		}
		if _, err := r.get("gone", 0, -1); !errors.Is(err, ErrNoSuchArtifact) {
			errs = append(errs, fmt.Errorf("%s: read gone: %v, want ErrNoSuchArtifact", when, err))
		}
		return errors.Join(errs...)
	}
	// keys is what the walk finds: the plain keys, the versions'
	// records, the versioned keys' pointers and the delete marker.
	const keys = 5 + 3 + 2 + 1

	relayout := func(to string) {
		t.Helper()
		if err := r.e.CheckPolicyChange(ctx, "t", "c", to); err != nil {
			t.Fatalf("CheckPolicyChange(%s) on a container holding artifacts: %v", to, err)
		}
		policy.Store(to)
		count := relayoutWalk(t, r.e, RelayoutOptions{Count: true})
		if count.Keys != keys || count.Misplaced != keys || count.Moved != 0 {
			t.Fatalf("count before the walk to %s: %+v, want %d keys, every one misplaced", to, count, keys)
		}
		if err := readAll("after the policy change to " + to); err != nil {
			t.Fatal(err)
		}
		// Readers run through the walk; half-way "plain" is overwritten.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var readErr atomic.Value
		var mu sync.Mutex // guards bodies against the overwrite
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				err := readAll("during the walk to " + to)
				mu.Unlock()
				if err != nil {
					readErr.Store(err)
					return
				}
			}
		})
		before := r.e.Stats()
		var sum RelayoutStats
		opts := RelayoutOptions{Limit: 3, Wait: func(context.Context, int64) error { time.Sleep(time.Millisecond); return nil }}
		for i := 0; ; i++ {
			st, err := r.e.RelayoutContainer(ctx, "t", "c", opts)
			if err != nil {
				t.Fatalf("RelayoutContainer: %v", err)
			}
			sum.Moved += st.Moved
			sum.Bytes += st.Bytes
			sum.Misplaced += st.Misplaced
			if i == 1 {
				mu.Lock()
				bodies["plain"] = randBytes(uint64(len(to)), 150<<10)
				r.put(t, "plain", bodies["plain"], int64(len(bodies["plain"])))
				mu.Unlock()
			}
			if st.Next == "" {
				break
			}
			opts.After = st.Next
		}
		close(stop)
		wg.Wait()
		if err, _ := readErr.Load().(error); err != nil {
			t.Fatal(err)
		}
		// 8 versions (the overwritten one was written in the new layout
		// at once, unless the walk had moved it already).
		if sum.Moved < 7 || sum.Moved > 8 || sum.Misplaced < keys-1 {
			t.Errorf("walk to %s: %+v, want the 8 versions (or all but the overwritten one) moved", to, sum)
		}
		after := r.e.Stats()
		if got := after.RelayoutMoved - before.RelayoutMoved; got != uint64(sum.Moved) || after.RelayoutBytes-before.RelayoutBytes != uint64(sum.Bytes) {
			t.Errorf("Stats: %d moved, %d bytes; the walk says %d, %d", got, after.RelayoutBytes-before.RelayoutBytes, sum.Moved, sum.Bytes)
		}
		if again := relayoutWalk(t, r.e, RelayoutOptions{}); again.Misplaced != 0 || again.Moved != 0 || again.Keys != keys {
			t.Errorf("a second walk to %s: %+v, want nothing left", to, again)
		}
		if err := readAll("after the walk to " + to); err != nil {
			t.Fatal(err)
		}
	}

	relayout(PolicyHybrid)
	cur := r.e.mapFor("t", "c")
	if cur.Layout != placement.LayoutHybrid || cur.Policy.Parity != 2 {
		t.Fatalf("hybrid layout %s %v", cur.Layout, cur.Policy)
	}
	// The data shards are local: every read works with both remote
	// drives offline. The parity is remote: any two local drives can go.
	for _, off := range [][]int{{4, 5}, {0, 1}, {2, 3}, {0, 3}} {
		for _, i := range off {
			r.faulty[i].SetOffline(true)
		}
		err := readAll(fmt.Sprintf("hybrid with drives %v offline", off))
		for _, i := range off {
			r.faulty[i].SetOffline(false)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	relayout(PolicyLocal)
	r.e.WaitBackground()
	files := r.shardFiles(t)
	for i := 4; i < 6; i++ {
		if len(files[i]) != 0 {
			t.Errorf("remote drive %s holds %d shard files after the walk back to local", r.ids[i], len(files[i]))
		}
		recs, err := r.faulty[i].ListRecords(ctx, indexPrefix("t", "c"), "", 1000)
		if err != nil || len(recs) != 0 {
			t.Errorf("remote drive %s holds %d records of the container after the walk back to local (%v)", r.ids[i], len(recs), err)
		}
	}
	if slices.ContainsFunc(files[:4], func(f []string) bool { return len(f) == 0 }) {
		t.Errorf("a local drive holds no shard file on local: %v", files)
	}
}

// TestReadFollowsRelayout: an artifact opened before a re-layout moved it
// (and removed the shard files it was opened on) reads its bytes from the
// set now serving it; one overwritten meanwhile fails rather than return
// the newer version's bytes.
func TestReadFollowsRelayout(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		overwrite bool
	}{
		{"moved", 3 << 20, false},
		{"moved, striped", 20*stripeChunkStripes*stripeTestStripe + 5, false},
		{"overwritten, then moved", 3 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 6, remote: 2, noSync: true, stripeSize: stripeTestStripe, width: 4})
			var policy atomic.Value
			policy.Store(PolicyLocal)
			r.e.cfg.StoragePolicy = func(string, string) string { return policy.Load().(string) }
			data := randBytes(41, tc.size)
			r.put(t, "k", data, int64(len(data)))
			a, err := r.e.Open(t.Context(), "t", "c", "k")
			if err != nil {
				t.Fatal(err)
			}
			policy.Store(PolicyHybrid)
			if tc.overwrite {
				r.put(t, "k", randBytes(42, tc.size), int64(tc.size))
			}
			// An overwrite replaces the old layout's records on the drives
			// of both sets itself, and the walk cleans what is left.
			if st := relayoutWalk(t, r.e, RelayoutOptions{}); st.Misplaced != 1 && !tc.overwrite {
				t.Fatalf("walk: %+v, want the key moved", st)
			}
			r.e.WaitBackground()
			var buf bytes.Buffer
			err = a.WriteRange(t.Context(), &buf, 0, int64(tc.size))
			switch {
			case tc.overwrite && !errors.Is(err, ErrReadQuorum):
				t.Fatalf("read of the replaced version: %v (%d bytes), want ErrReadQuorum", err, buf.Len())
			case tc.overwrite && bytes.Contains(buf.Bytes(), randBytes(42, tc.size)[:1<<10]):
				t.Fatal("the read of the replaced version returned the new version's bytes")
			case !tc.overwrite && (err != nil || !bytes.Equal(buf.Bytes(), data)):
				t.Fatalf("read of the moved version: %v, %d bytes (want %d), equal %v", err, buf.Len(), len(data), bytes.Equal(buf.Bytes(), data))
			}
		})
	}
}

// TestUploadAcrossPolicyChange: an upload created just before its
// container's storage policy changed (between set-policy's check for
// uploads in progress and the policy taking effect, or on a node that had
// not applied it yet) lives in the layout it started with. It takes more
// parts, completes (read back whole) or aborts (its shard files gone),
// and leaves nothing that refuses the next set-policy (probe F1 of
// session 10: every call on it answered NoSuchUpload while it stayed
// listed, and set-policy was refused for ever).
func TestUploadAcrossPolicyChange(t *testing.T) {
	for _, tc := range []struct {
		name        string
		walk, abort bool
	}{{"complete", false, false}, {"complete after a re-layout walk", true, false}, {"abort", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 6, remote: 2, noSync: true, stripeSize: stripeTestStripe, width: 4})
			var policy atomic.Value
			policy.Store(PolicyLocal)
			r.e.cfg.StoragePolicy = func(string, string) string { return policy.Load().(string) }
			ctx := t.Context()
			b := randBytes(77, MinPartSize+3000)
			id, err := r.e.CreateUpload(ctx, "t", "c", "mp", PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p1, err := r.e.PutPart(ctx, "t", "c", "mp", id, 1, bytes.NewReader(b[:MinPartSize]), PutOptions{Size: MinPartSize})
			if err != nil {
				t.Fatal(err)
			}
			policy.Store(PolicyHybrid)
			if tc.walk {
				relayoutWalk(t, r.e, RelayoutOptions{})
			}
			p2, err := r.e.PutPart(ctx, "t", "c", "mp", id, 2, bytes.NewReader(b[MinPartSize:]), PutOptions{Size: 3000})
			if err != nil {
				t.Fatalf("PutPart 2 after the policy change: %v", err)
			}
			if tc.abort {
				if err := r.e.AbortUpload(ctx, "t", "c", "mp", id); err != nil {
					t.Fatalf("AbortUpload after the policy change: %v", err)
				}
				r.e.WaitBackground()
				if _, total := drivesWithShards(r.shardFiles(t)); total != 0 {
					t.Errorf("%d shard files left after the abort", total)
				}
			} else {
				if _, err := r.e.CompleteUpload(ctx, "t", "c", "mp", id, []CompletePart{{1, p1.ETag}, {2, p2.ETag}}, nil); err != nil {
					t.Fatalf("CompleteUpload after the policy change: %v", err)
				}
				if got, err := r.get("mp", 0, -1); err != nil || !bytes.Equal(got, b) {
					t.Fatalf("read back %d bytes, %v; want the %d uploaded", len(got), err, len(b))
				}
			}
			if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
				t.Errorf("ListUploads afterwards: %d uploads, %v; want none", len(ups), err)
			}
			if err := r.e.CheckPolicyChange(ctx, "t", "c", PolicyLocal); err != nil {
				t.Errorf("set-policy local afterwards refused: %v", err)
			}
		})
	}
}

// TestRelayoutSharedSlots: on the README's example cluster (6 local
// drives, 2 remote) the local and hybrid layouts are both 4+2 and a key's
// sets share their data slots (the same local drives at the same slot
// indices); hybrid only puts the parity slots on the remote drives. A
// flip of the policy then moves each version's parity shards alone: the
// shared drives' records are placed for both layouts, so the new set
// serves the version at once and migration rebuilds its parity there
// (AtHome) rather than copying it (probe of session 14: the walk said
// Moved 0). The walk must count every live version it moved, leave the
// old parity drives holding nothing of the key, and the bytes must read
// back identical; a second walk finds nothing to move.
func TestRelayoutSharedSlots(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flips []string // the first is the policy the artifacts are written under
	}{
		{"local, hybrid, local", []string{PolicyLocal, PolicyHybrid, PolicyLocal}},
		{"hybrid, local, hybrid", []string{PolicyHybrid, PolicyLocal, PolicyHybrid}},
		{"hybrid, tier", []string{PolicyHybrid, PolicyTier}}, // then "plain" is tiered: it stays on the remote layout
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 8, remote: 2, noSync: true, stripeSize: stripeTestStripe, width: 4, policy: placement.Policy{Data: 4, Parity: 2}})
			var policy atomic.Value
			policy.Store(tc.flips[0])
			r.e.cfg.StoragePolicy = func(string, string) string { return policy.Load().(string) }
			ctx := t.Context()
			local := r.e.layoutMap(r.e.mapOf(), placement.LayoutLocal)
			hybrid := r.e.layoutMap(r.e.mapOf(), placement.LayoutHybrid)
			if local.Policy != hybrid.Policy {
				t.Fatalf("local %v, hybrid %v: want one k+m", local.Policy, hybrid.Policy)
			}
			bodies := map[string][]byte{
				"inline":  randBytes(11, 1000),
				"plain":   randBytes(12, 200<<10),
				"striped": randBytes(13, 20*stripeChunkStripes*stripeTestStripe+17),
			}
			var size int64
			for k, b := range bodies {
				r.put(t, k, b, int64(len(b)))
				size += int64(len(b))
				ls, hs := local.Set(pgOf(local, "t", "c", k)), hybrid.Set(pgOf(hybrid, "t", "c", k))
				if k != "striped" && !slices.Equal(ls[:4], hs[:4]) {
					t.Fatalf("%s: local set %v, hybrid set %v: want the data slots shared", k, ls, hs)
				}
			}
			for _, to := range tc.flips[1:] {
				policy.Store(to)
				cur := r.e.mapFor("t", "c")
				st := relayoutWalk(t, r.e, RelayoutOptions{})
				if st.Misplaced != len(bodies) || st.Moved != len(bodies) || st.Bytes != size || st.Failed != 0 {
					t.Errorf("walk to %s: %+v, want %d versions (%d bytes) misplaced and moved", to, st, len(bodies), size)
				}
				r.e.WaitBackground()
				for k, want := range bodies {
					pg := pgOf(cur, "t", "c", k)
					set := cur.Set(pg)
					for i, id := range r.ids {
						raw, err := r.faulty[i].GetRecord(ctx, indexPrefix("t", "c")+k)
						j := slices.Index(set, id)
						switch {
						case j < 0 && !errors.Is(err, driver.ErrNotFound):
							t.Errorf("walk to %s: %s: drive %s, not in its %s set %v, holds a record (%v)", to, k, id, to, set, err)
						case j >= 0 && err != nil:
							t.Errorf("walk to %s: %s: drive %s of its set: %v", to, k, id, err)
						case j >= 0:
							if rec, err := unmarshalRecord(raw.Data); err != nil || !placedIn(rec, cur, pg, j) {
								t.Errorf("walk to %s: %s: drive %s (slot %d) holds a record not placed for %s (%v)", to, k, id, j, to, err)
							}
						}
					}
					if got, err := r.get(k, 0, -1); err != nil || !bytes.Equal(got, want) {
						t.Errorf("walk to %s: read %s: %d bytes (want %d), equal %v, %v", to, k, len(got), len(want), bytes.Equal(got, want), err)
					}
				}
				if again := relayoutWalk(t, r.e, RelayoutOptions{}); again.Misplaced != 0 || again.Moved != 0 || again.Keys != len(bodies) {
					t.Errorf("a second walk to %s: %+v, want nothing left", to, again)
				}
			}
			if policy.Load() != PolicyTier {
				return
			}
			if _, err := r.e.TierArtifact(ctx, "t", "c", "plain"); err != nil {
				t.Fatalf("TierArtifact: %v", err)
			}
			if st := relayoutWalk(t, r.e, RelayoutOptions{}); st.Misplaced != 0 || st.Moved != 0 {
				t.Errorf("walk over a tiered artifact: %+v, want nothing moved", st)
			}
			rm := r.e.tierMap()
			pg := pgOf(rm, "t", "c", "plain")
			for j, id := range rm.Set(pg) {
				raw, err := r.faulty[slices.Index(r.ids, id)].GetRecord(ctx, indexPrefix("t", "c")+"plain")
				if err != nil {
					t.Fatalf("tiered plain: drive %s (slot %d) of the remote set: %v", id, j, err)
				}
				if rec, err := unmarshalRecord(raw.Data); err != nil || !placedIn(rec, rm, pg, j) {
					t.Errorf("tiered plain: drive %s (slot %d) holds a record not placed for the remote layout (%v)", id, j, err)
				}
			}
			if got, err := r.get("plain", 0, -1); err != nil || !bytes.Equal(got, bodies["plain"]) {
				t.Errorf("read the tiered plain: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestRelayoutKeepsOldCopiesUntilSetComplete: a flip from hybrid to local
// (both 4+2, the data slots shared) while the local layout's two parity
// drives are offline must not remove the remote parity: the new set holds
// each version on its 4 shared drives only, and removing the old parity
// would leave the version with no redundancy until the drives return
// (helper finding of session 12: migrate cleaned the other layout's
// copies before, and regardless of, completing the current set). Once
// the drives are back, the walk completes the set and then removes them.
func TestRelayoutKeepsOldCopiesUntilSetComplete(t *testing.T) {
	for _, tc := range []struct {
		key  string
		body []byte
	}{{"inline", randBytes(21, 900)}, {"plain", randBytes(22, 300<<10)}} {
		t.Run(tc.key, func(t *testing.T) { testRelayoutKeepsOldCopies(t, tc.key, tc.body) })
	}
}

func testRelayoutKeepsOldCopies(t *testing.T, k string, want []byte) {
	r := newRig(t, rigOptions{drives: 8, remote: 2, noSync: true, policy: placement.Policy{Data: 4, Parity: 2}})
	var policy atomic.Value
	policy.Store(PolicyHybrid)
	r.e.cfg.StoragePolicy = func(string, string) string { return policy.Load().(string) }
	ctx := t.Context()
	hybrid := r.e.layoutMap(r.e.mapOf(), placement.LayoutHybrid)
	local := r.e.layoutMap(r.e.mapOf(), placement.LayoutLocal)
	r.put(t, k, want, int64(len(want)))
	// holders returns how many drives of set hold a record of k.
	holders := func(set []placement.DriveID) (n int) {
		for _, id := range set {
			if _, err := r.faulty[slices.Index(r.ids, id)].GetRecord(ctx, indexPrefix("t", "c")+k); err == nil {
				n++
			}
		}
		return n
	}
	hs, ls := hybrid.Set(pgOf(hybrid, "t", "c", k)), local.Set(pgOf(local, "t", "c", k))
	var newParity []int // the local set's drives outside the hybrid set
	for _, id := range ls {
		if !slices.Contains(hs, id) {
			newParity = append(newParity, slices.Index(r.ids, id))
		}
	}
	if len(newParity) != 2 {
		t.Fatalf("local set %v, hybrid set %v: want 2 drives apart", ls, hs)
	}
	for _, i := range newParity {
		r.faulty[i].SetOffline(true)
	}
	policy.Store(PolicyLocal)
	for range 3 {
		r.e.RelayoutContainer(ctx, "t", "c", RelayoutOptions{}) // drives not listed: an error, the walk goes on
	}
	r.e.WaitBackground()
	if n := holders(hs); n != len(hs) {
		t.Errorf("with the local parity drives offline, %d of the hybrid set's %d drives hold a record after the flip; want the old parity kept", n, len(hs))
	}
	if got, err := r.get(k, 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Errorf("read with the local parity drives offline: %d bytes, %v", len(got), err)
	}
	for _, i := range newParity {
		r.faulty[i].SetOffline(false)
	}
	if st := relayoutWalk(t, r.e, RelayoutOptions{}); st.Moved != 1 {
		t.Errorf("walk with every drive back: %+v, want 1 moved", st)
	}
	r.e.WaitBackground()
	if n := holders(ls); n != len(ls) {
		t.Errorf("%d of the local set's %d drives hold a record", n, len(ls))
	}
	for _, id := range r.ids {
		if slices.Contains(ls, id) {
			continue
		}
		if _, err := r.faulty[slices.Index(r.ids, id)].GetRecord(ctx, indexPrefix("t", "c")+k); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("drive %s outside the local set still holds a record (%v)", id, err)
		}
	}
	if got, err := r.get(k, 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Errorf("read: %d bytes, %v", len(got), err)
	}
}
