package engine

import (
	"bytes"
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// Review 25e of 96e3c77 (writeBack skips only when olderSetHolds: a drive
// of an older map's set, outside the current set, holds the version).

// TestReview25eOlderHolderAway: olderSetHolds counts an outside drive that
// does not answer (offline, removed from the cluster, slower than the
// straggler grace) as not holding. 2+2, epoch 1 {A,B,C,D}, epoch 2
// {A,B,E,F}; X put under epoch 1 (acknowledged on all four). With C and D
// away, the current set holds X on A,B (placed in both sets: migration's
// copy), have 2 < m+1; the read writes X's record back to E,F, which have
// none of its shard files. Migration then finds the set whole: copyLacking
// skips E,F, completeSet has nothing to heal, Incomplete is false, and
// cleanOlder removes C,D's copies (those that answer). X is left with shard
// files on A,B only (R1 of review 25c, reached without any race). The
// "no read" control migrates the same state without a read first.
func TestReview25eOlderHolderAway(t *testing.T) {
	for _, tc := range []string{"no read (control)", "offline", "removed", "slow"} {
		t.Run(tc, func(t *testing.T) {
			ctx := t.Context()
			r := newHistRig(t)
			base, next := r25cMaps(t, r)
			x := bytes.Repeat([]byte("x"), 300<<10)
			r.topo.use(base)
			r.put(t, "k", x)
			r.topo.use(next, base)
			old := base.Set(pgOf(base, "t", "c", "k"))
			set := next.Set(pgOf(next, "t", "c", "k"))
			c, d := old[2], old[3]
			switch tc {
			case "offline", "no read (control)":
				r.topo.drives[c].SetOffline(true)
				r.topo.drives[d].SetOffline(true)
			case "removed":
				r.topo.remove(c)
				r.topo.remove(d)
			case "slow":
				slow := func(ctx context.Context, _ string) {
					select {
					case <-time.After(1500 * time.Millisecond):
					case <-ctx.Done():
					}
				}
				r.topo.drives[c].SetBeforeGetRecord(slow)
				r.topo.drives[d].SetBeforeGetRecord(slow)
			}
			if tc != "no read (control)" {
				start := time.Now()
				got, err := read(ctx, r.e, "k", 0, -1)
				if err != nil || !bytes.Equal(got, x) {
					t.Fatalf("read: %d bytes, %v; want X", len(got), err)
				}
				t.Logf("read took %v; write-backs %d", time.Since(start).Round(time.Millisecond), r.e.st.writeBacks.Load())
			}
			if tc == "slow" {
				r.topo.drives[c].SetBeforeGetRecord(nil)
				r.topo.drives[d].SetBeforeGetRecord(nil)
				r.e.WaitBackground()
			}
			res, err := r.e.Migrate(ctx, "t", "c", "k")
			t.Logf("Migrate: %+v, %v", res, err)
			// Lose slots 0 and 1 (2+2 must survive any two): X must read
			// from E and F.
			r.topo.drives[set[0]].SetOffline(true)
			r.topo.drives[set[1]].SetOffline(true)
			got, err := read(ctx, r.e, "k", 0, -1)
			r.topo.drives[set[0]].SetOffline(false)
			r.topo.drives[set[1]].SetOffline(false)
			if err != nil || !bytes.Equal(got, x) {
				t.Errorf("after Migrate, A and B offline: %d bytes, %v; want X from E and F (Migrate said Incomplete=%v)", len(got), err, res.Incomplete)
			}
		})
	}
}

// TestReview25eMirrorDriveReplaced: the default policy of 2 or 3 drives
// is 1+1. A drive dies and the map gives its slots to another drive: the
// surviving copy A is placed in both sets (held 1 = k), have 1 < m+1 = 2,
// and the dead drive B is the only outside holder. The read writes X's
// record back to the replacement C with no shard file; migration then
// neither copies nor heals C, and X has one copy (A) while both records
// say it has two.
func TestReview25eMirrorDriveReplaced(t *testing.T) {
	ctx := t.Context()
	r := newHistRig(t)
	base := r.newMap(t, 3, placement.Policy{Data: 1, Parity: 1}, 4, 1)
	next := r.remap(t, base, 3, 2, func(set []placement.DriveID) []placement.DriveID {
		for _, id := range r.ids[:3] {
			if !slices.Contains(set, id) {
				return []placement.DriveID{set[0], id}
			}
		}
		return set
	})
	x := bytes.Repeat([]byte("x"), 300<<10)
	r.topo.use(base)
	r.put(t, "k", x)
	old := base.Set(pgOf(base, "t", "c", "k"))
	set := next.Set(pgOf(next, "t", "c", "k"))
	r.topo.drives[old[1]].SetOffline(true) // B died
	r.topo.use(next, base)
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, x) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
	t.Logf("write-backs %d", r.e.st.writeBacks.Load())
	res, err := r.e.Migrate(ctx, "t", "c", "k")
	t.Logf("Migrate: %+v, %v", res, err)
	r.topo.drives[set[0]].SetOffline(true)
	got, err := read(ctx, r.e, "k", 0, -1)
	r.topo.drives[set[0]].SetOffline(false)
	if err != nil || !bytes.Equal(got, x) {
		t.Errorf("after Migrate, A offline: %d bytes, %v; want X from the replacement %s (Migrate said Incomplete=%v)", len(got), err, set[1], res.Incomplete)
	}
}

// TestReview25eRelayoutCopyWrittenBack: olderSetHolds reads olderMaps
// only, not otherLayouts. 6 drives (4 local, 2 remote), 2+2: the local
// and hybrid layouts are both 2+2 and share the data slots 0 and 1. X is
// put under local; the policy flips to hybrid. A read finds X in the
// hybrid set on slots 0,1 (placed for both layouts), have 2 < 3, no
// history: it writes X's record to the remote slots 2,3, which have no
// shard files. The walk then finds the set whole and removes the local
// layout's slots 2,3. Pre-existing (the skip always needed a history).
func TestReview25eRelayoutCopyWrittenBack(t *testing.T) {
	for _, readFirst := range []bool{false, true} {
		name := "no read (control)"
		if readFirst {
			name = "read before the walk"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 6, remote: 2, noSync: true, policy: placement.Policy{Data: 2, Parity: 2}})
			var policy atomic.Value
			policy.Store(PolicyLocal)
			r.e.cfg.StoragePolicy = func(string, string) string { return policy.Load().(string) }
			local := r.e.layoutMap(r.e.mapOf(), placement.LayoutLocal)
			hybrid := r.e.layoutMap(r.e.mapOf(), placement.LayoutHybrid)
			if local.Policy != hybrid.Policy {
				t.Skipf("local %v, hybrid %v: not one k+m", local.Policy, hybrid.Policy)
			}
			x := bytes.Repeat([]byte("x"), 300<<10)
			r.put(t, "k", x, int64(len(x)))
			ls, hs := local.Set(pgOf(local, "t", "c", "k")), hybrid.Set(pgOf(hybrid, "t", "c", "k"))
			if !slices.Equal(ls[:2], hs[:2]) {
				t.Skipf("local set %v, hybrid set %v: data slots not shared", ls, hs)
			}
			policy.Store(PolicyHybrid)
			if readFirst {
				if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, x) {
					t.Fatalf("read after the flip: %d bytes, %v", len(got), err)
				}
				t.Logf("write-backs %d", r.e.st.writeBacks.Load())
			}
			st := relayoutWalk(t, r.e, RelayoutOptions{})
			r.e.WaitBackground()
			t.Logf("walk: %+v", st)
			off := []int{slices.Index(r.ids, hs[0]), slices.Index(r.ids, hs[1])}
			for _, i := range off {
				r.faulty[i].SetOffline(true)
			}
			got, err := r.get("k", 0, -1)
			for _, i := range off {
				r.faulty[i].SetOffline(false)
			}
			if err != nil || !bytes.Equal(got, x) {
				t.Errorf("after the walk, hybrid slots 0 and 1 offline: %d bytes, %v; want X from the remote slots", len(got), err)
			}
		})
	}
}
