package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// pgRig is an Engine over in-memory drives d00, d01, ... on nodes of
// perNode drives each (n0 holds d00..d02 when perNode is 3), each drive
// wrapped in a fault injector.
type pgRig struct {
	e      *Engine
	m      *placement.Map
	faulty map[placement.DriveID]*drivertest.Faulty
}

func newPGRig(t *testing.T, drives, perNode int, p placement.Policy) *pgRig {
	t.Helper()
	r := &pgRig{faulty: map[placement.DriveID]*drivertest.Faulty{}}
	pdrives := make([]placement.Drive, drives)
	ds := map[placement.DriveID]driver.Driver{}
	for i := range drives {
		id := placement.DriveID(fmt.Sprintf("d%02d", i))
		f := drivertest.NewFaulty(&drivertest.Mem{MemID: id, ClusterID: "test"})
		r.faulty[id], ds[id] = f, f
		pdrives[i] = placement.Drive{ID: id, Node: placement.NodeID(fmt.Sprintf("n%d", i/perNode)), Class: driver.ClassLocal}
	}
	m, err := placement.NewMap(pdrives, p, placement.DefaultPGCount, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	topo, err := NewStatic(m, ds)
	if err != nil {
		t.Fatal(err)
	}
	if r.e, err = New(Config{Topology: topo, Containers: &MemContainers{}, StripeSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, f := range r.faulty {
			f.SetHang(false)
		}
		r.e.WaitBackground()
	})
	if err := r.e.CreateContainer(t.Context(), "t", "c"); err != nil {
		t.Fatal(err)
	}
	return r
}

// nodeDrives returns the drives of node n, in ID order.
func (r *pgRig) nodeDrives(n placement.NodeID) []placement.DriveID {
	var ids []placement.DriveID
	for _, d := range r.m.Drives {
		if d.Node == n {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

func (r *pgRig) setOffline(on bool, ids ...placement.DriveID) {
	for _, id := range ids {
		r.faulty[id].SetOffline(on)
	}
}

func (r *pgRig) setHang(on bool, ids ...placement.DriveID) {
	for _, id := range ids {
		r.faulty[id].SetHang(on)
	}
}

// minLeft returns the fewest drives of any PG's set outside down.
func (r *pgRig) minLeft(down []placement.DriveID) int {
	least := r.m.Policy.SetSize()
	for _, set := range r.m.PGs {
		left := 0
		for _, id := range set {
			if !slices.Contains(down, id) {
				left++
			}
		}
		least = min(least, left)
	}
	return least
}

// listState writes what the per-PG listing tests list: keys k00..k23, of
// which k05 is then overwritten and k07 deleted while node n1 is offline
// (so n1's drives keep the older versions), and uploads u0..u3, of which
// u2 is aborted. It returns the artifacts' sizes by key and
// the uploads expected in progress.
func (r *pgRig) listState(t *testing.T) (map[string]int64, []string) {
	t.Helper()
	ctx := t.Context()
	put := func(key string, n int) {
		t.Helper()
		data := bytes.Repeat([]byte{'x'}, n)
		if _, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(n)}); err != nil {
			t.Fatalf("Put(%s): %v", key, err)
		}
	}
	want := map[string]int64{}
	for i := range 24 {
		key := fmt.Sprintf("k%02d", i)
		put(key, 10+i)
		want[key] = int64(10 + i)
	}
	ids := map[string]string{}
	for i := range 4 {
		key := fmt.Sprintf("u%d", i)
		id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
		if err != nil {
			t.Fatalf("CreateUpload(%s): %v", key, err)
		}
		ids[key] = id
	}
	n1 := r.nodeDrives("n1")
	r.setOffline(true, n1...)
	put("k05", 500)
	want["k05"] = 500
	if err := r.e.Delete(ctx, "t", "c", "k07"); err != nil {
		t.Fatalf("Delete(k07) with n1 offline: %v", err)
	}
	delete(want, "k07")
	r.setOffline(false, n1...)
	// An aborted upload's record is deleted, not hidden by a tombstone: a
	// drive that missed the delete would list it again, so every drive is
	// up here.
	if err := r.e.AbortUpload(ctx, "t", "c", "u2", ids["u2"]); err != nil {
		t.Fatalf("AbortUpload(u2): %v", err)
	}
	r.e.WaitBackground()
	return want, []string{"u0/" + ids["u0"], "u1/" + ids["u1"], "u3/" + ids["u3"]}
}

// checkList lists the container a page of limit at a time and compares
// it with want (key → size); a listing error is returned.
func (r *pgRig) checkList(t *testing.T, ctx context.Context, limit int, want map[string]int64) error {
	t.Helper()
	got := map[string]int64{}
	var keys []string
	after := ""
	for {
		res, err := r.e.List(ctx, "t", "c", ListOptions{After: after, Limit: limit})
		if err != nil {
			return err
		}
		for _, a := range res.Artifacts {
			got[a.Key] = a.Size
			keys = append(keys, a.Key)
		}
		if !res.Truncated {
			break
		}
		after = res.Next
	}
	if !slices.IsSorted(keys) || len(keys) != len(got) {
		t.Errorf("List keys %q: want each once, in order", keys)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List = %v\nwant %v", got, want)
	}
	return nil
}

// checkUploads lists the uploads in progress a page of limit at a time
// and compares them with want (key/id); a listing error is returned.
func (r *pgRig) checkUploads(t *testing.T, ctx context.Context, limit int, want []string) error {
	t.Helper()
	var got []string
	after, afterID := "", ""
	for {
		ups, truncated, err := r.e.ListUploads(ctx, "t", "c", "", after, afterID, limit)
		if err != nil {
			return err
		}
		for _, u := range ups {
			got = append(got, u.Key+"/"+u.ID)
			after, afterID = u.Key, u.ID
		}
		if !truncated {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListUploads = %q, want %q", got, want)
	}
	return nil
}

// TestListPerPGQuorum checks that List, ListUploads, SweepUploads and
// CollectStripeOrphans answer completely once every PG has k drives of its
// set answering, however many drives of the whole map are missing (a wide
// map with a node down or hung), and fail with ErrReadQuorum (or, waiting
// for hung drives, at their deadline), never with a partial answer, once
// a PG has fewer; a map whose sets span all its drives keeps the rule of
// at most Parity drives missing.
func TestListPerPGQuorum(t *testing.T) {
	type fault int
	const (
		offline fault = iota
		hang
	)
	tests := []struct {
		name            string
		drives, perNode int
		policy          placement.Policy
		down            func(r *pgRig) []placement.DriveID
		how             fault
		ok              bool // the listings answer (else ErrReadQuorum)
	}{
		{
			name: "wide map 12 drives 4+2, node n0 offline", drives: 12, perNode: 3, policy: placement.Policy{Data: 4, Parity: 2},
			down: func(r *pgRig) []placement.DriveID { return r.nodeDrives("n0") }, ok: true,
		},
		{
			name: "wide map 12 drives 4+2, node n2 hung", drives: 12, perNode: 3, policy: placement.Policy{Data: 4, Parity: 2},
			down: func(r *pgRig) []placement.DriveID { return r.nodeDrives("n2") }, how: hang, ok: true,
		},
		{
			name: "wide map 12 drives 4+2, 3 drives of one set offline", drives: 12, perNode: 3, policy: placement.Policy{Data: 4, Parity: 2},
			down: func(r *pgRig) []placement.DriveID { return slices.Clone(r.m.Set(5)[:3]) }, ok: false,
		},
		{
			// A straggler is dropped only while every set keeps k
			// drives: here the listings wait, and fail, rather than
			// answer without the set.
			name: "wide map 12 drives 4+2, 3 drives of one set hung", drives: 12, perNode: 3, policy: placement.Policy{Data: 4, Parity: 2},
			down: func(r *pgRig) []placement.DriveID { return slices.Clone(r.m.Set(9)[1:4]) }, how: hang, ok: false,
		},
		{
			name: "wide map 12 drives 4+2, node n0 and a drive of n3 offline, one set short", drives: 12, perNode: 3, policy: placement.Policy{Data: 4, Parity: 2},
			down: func(r *pgRig) []placement.DriveID {
				// n0's drives and a drive of n3 sharing a set with two of them.
				n0 := r.nodeDrives("n0")
				for _, set := range r.m.PGs {
					in := 0
					for _, id := range set {
						if slices.Contains(n0, id) {
							in++
						}
					}
					if in < 2 {
						continue
					}
					for _, id := range set {
						if d, _ := r.m.Drive(id); d.Node == "n3" {
							return append(slices.Clone(n0), id)
						}
					}
				}
				return nil
			},
			ok: false,
		},
		{
			name: "small map 4 drives 2+2, 2 offline", drives: 4, perNode: 1, policy: placement.Policy{Data: 2, Parity: 2},
			down: func(r *pgRig) []placement.DriveID { return []placement.DriveID{"d00", "d03"} }, ok: true,
		},
		{
			name: "small map 4 drives 2+2, 3 offline", drives: 4, perNode: 1, policy: placement.Policy{Data: 2, Parity: 2},
			down: func(r *pgRig) []placement.DriveID { return []placement.DriveID{"d00", "d01", "d03"} }, ok: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newPGRig(t, tt.drives, tt.perNode, tt.policy)
			want, wantUps := r.listState(t)
			down := tt.down(r)
			if len(down) == 0 {
				t.Fatal("no drives to take down: the map has no set the case needs")
			}
			k := r.m.Policy.ReadQuorum()
			if left := r.minLeft(down); (left >= k) != tt.ok {
				t.Fatalf("with %v down a set keeps %d drives, k is %d: the case needs ok=%v", down, left, k, tt.ok)
			}
			if tt.how == hang {
				r.setHang(true, down...)
			} else {
				r.setOffline(true, down...)
			}
			timeout := 20 * time.Second
			if tt.how == hang && !tt.ok {
				timeout = 3 * time.Second // the listings wait for the hung drives
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			check := func(what string, err error) {
				t.Helper()
				switch {
				case tt.ok && err != nil:
					t.Errorf("%s with %v down: %v; want the complete listing", what, down, err)
				case tt.ok:
				case tt.how == hang && errors.Is(err, context.DeadlineExceeded):
				case !errors.Is(err, ErrReadQuorum):
					t.Errorf("%s with %v down: %v; want ErrReadQuorum", what, down, err)
				}
			}
			for _, limit := range []int{1000, 5} {
				start := time.Now()
				check(fmt.Sprintf("List (limit %d)", limit), r.checkList(t, ctx, limit, want))
				check(fmt.Sprintf("ListUploads (limit %d)", limit), r.checkUploads(t, ctx, limit, wantUps))
				if took := time.Since(start); tt.ok && took > 10*time.Second {
					t.Errorf("listings with limit %d took %v: they waited for the drives down", limit, took)
				}
			}
			_, err := r.e.SweepUploads(ctx)
			check("SweepUploads", err)
			_, err = r.e.CollectStripeOrphans(ctx)
			check("CollectStripeOrphans", err)
		})
	}
}

// TestPGsCovered checks pgsCovered against a naive oracle (every set has
// k drives that answered) on random maps and answer sets.
func TestPGsCovered(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		drives, perNode int
		p               placement.Policy
	}{
		{4, 1, placement.Policy{Data: 2, Parity: 2}},
		{6, 2, placement.Policy{Data: 4, Parity: 2}},
		{12, 3, placement.Policy{Data: 4, Parity: 2}},
		{16, 4, placement.Policy{Data: 8, Parity: 4}},
		{9, 3, placement.Policy{Data: 1, Parity: 2}},
	} {
		pdrives := make([]placement.Drive, c.drives)
		for i := range pdrives {
			pdrives[i] = placement.Drive{ID: placement.DriveID(fmt.Sprintf("d%02d", i)), Node: placement.NodeID(fmt.Sprintf("n%d", i/c.perNode))}
		}
		m, err := placement.NewMap(pdrives, c.p, 64, 1)
		if err != nil {
			t.Fatal(err)
		}
		for range 500 {
			answered := map[placement.DriveID]bool{}
			for _, d := range m.Drives {
				if rng.IntN(4) != 0 {
					answered[d.ID] = true
				}
			}
			want := true
			for _, set := range m.PGs {
				n := 0
				for _, id := range set {
					if answered[id] {
						n++
					}
				}
				want = want && n >= c.p.ReadQuorum()
			}
			if got := pgsCovered(m, answered); got != want {
				t.Fatalf("%d drives %s, answered %v: pgsCovered = %v, want %v", c.drives, c.p, answered, got, want)
			}
		}
	}
}

// TestListTieredNeedsRemote: a tier container's tiered artifacts keep
// their records on the remote layout's sets, whose drives are in none of
// the local map's PGs. A listing must cover those sets too: with one
// remote drive of two offline (the remote layout is 1+1) it is complete;
// with both offline it fails with ErrReadQuorum instead of answering
// without the tiered artifacts, which no read could serve either.
func TestListTieredNeedsRemote(t *testing.T) {
	r := newRig(t, rigOptions{drives: 6, remote: 2, noSync: true})
	r.e.cfg.StoragePolicy = func(string, string) string { return PolicyTier }
	ctx := t.Context()
	var want []string
	for i := range 6 {
		k := fmt.Sprintf("k%d", i)
		r.put(t, k, randBytes(uint64(i), 3000), 3000)
		want = append(want, k)
		if i%2 == 0 {
			if _, err := r.e.TierArtifact(ctx, "t", "c", k); err != nil {
				t.Fatalf("TierArtifact(%s): %v", k, err)
			}
		}
	}
	list := func() ([]string, error) {
		res, err := r.e.List(ctx, "t", "c", ListOptions{})
		var keys []string
		for _, a := range res.Artifacts {
			keys = append(keys, a.Key)
		}
		return keys, err
	}
	remotes := r.faulty[len(r.faulty)-2:]
	for _, tt := range []struct {
		name    string
		offline int // remote drives offline
		ok      bool
	}{{"remotes up", 0, true}, {"one remote offline", 1, true}, {"both remotes offline", 2, false}} {
		for i, f := range remotes {
			f.SetOffline(i < tt.offline)
		}
		keys, err := list()
		switch {
		case tt.ok && (err != nil || !slices.Equal(keys, want)):
			t.Errorf("%s: listed %v, %v; want %v", tt.name, keys, err, want)
		case !tt.ok && !errors.Is(err, ErrReadQuorum):
			t.Errorf("%s: listed %v, %v; want ErrReadQuorum", tt.name, keys, err)
		}
	}
}

// TestScanFindsTieredMissing: a tier container's tiered artifacts have
// their records on the remote layout's sets only. A remote drive that
// lost one (its bucket emptied: attack 27 F1, a tier bucket lost 3 of 6
// artifacts once the second remote lost its copy too) was never found by
// the scanner, which compared the local layout's sets only; it is now
// queued, healed, and reads with the other remote drive offline.
func TestScanFindsTieredMissing(t *testing.T) {
	r := newRig(t, rigOptions{drives: 6, remote: 2, noSync: true})
	r.e.cfg.StoragePolicy = func(string, string) string { return PolicyTier }
	ctx := t.Context()
	body := randBytes(7, 3000)
	for _, k := range []string{"local", "tiered"} {
		r.put(t, k, body, 3000)
	}
	if _, err := r.e.TierArtifact(ctx, "t", "c", "tiered"); err != nil {
		t.Fatalf("TierArtifact: %v", err)
	}
	if st, err := r.e.Scan(ctx, "t", "c", "", 0); err != nil || st.Queued != 0 {
		t.Fatalf("Scan before the loss: %+v, %v; want nothing queued", st, err)
	}
	lost := r.faulty[len(r.faulty)-2]
	ikey := indexPrefix("t", "c") + "tiered"
	rec, err := lost.GetRecord(ctx, ikey)
	if err != nil {
		t.Fatalf("the tiered artifact's record on the first remote drive: %v", err)
	}
	if err := lost.DeleteRecord(ctx, ikey, rec.Version); err != nil {
		t.Fatal(err)
	}
	st, err := r.e.Scan(ctx, "t", "c", "", 0)
	if err != nil || st.Queued != 1 {
		t.Fatalf("Scan after a remote drive lost the tiered artifact's record: %+v, %v; want it queued", st, err)
	}
	if _, err := r.e.Heal(ctx, "t", "c", "tiered"); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	r.faulty[len(r.faulty)-1].SetOffline(true)
	defer r.faulty[len(r.faulty)-1].SetOffline(false)
	a, err := r.e.Open(ctx, "t", "c", "tiered")
	if err != nil {
		t.Fatalf("Open with the other remote drive offline after the heal: %v", err)
	}
	rc := a.Reader(ctx, 0, a.Info.Size)
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read with the other remote drive offline: %v", err)
	}
}
