package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// p14Rig is an Engine over in-memory fault-injecting drives: local
// drives l00.. (one node each) then remote drives r00.., with a storage
// policy the test switches.
type p14Rig struct {
	e      *Engine
	m      *placement.Map
	faulty map[placement.DriveID]*drivertest.Faulty
	policy atomic.Value // string
	skew   atomic.Int64 // nanoseconds added to the clock
}

func newP14Rig(t *testing.T, locals, remotes int, pol placement.Policy, width int) *p14Rig {
	t.Helper()
	r := &p14Rig{faulty: map[placement.DriveID]*drivertest.Faulty{}}
	r.policy.Store(PolicyLocal)
	var pdrives []placement.Drive
	ds := map[placement.DriveID]driver.Driver{}
	add := func(id placement.DriveID, node placement.NodeID, class driver.Class) {
		f := drivertest.NewFaulty(&drivertest.Mem{MemID: id, ClusterID: "test"})
		r.faulty[id], ds[id] = f, f
		pdrives = append(pdrives, placement.Drive{ID: id, Node: node, Class: class})
	}
	for i := range locals {
		add(placement.DriveID(fmt.Sprintf("l%02d", i)), placement.NodeID(fmt.Sprintf("n%d", i)), driver.ClassLocal)
	}
	for i := range remotes {
		add(placement.DriveID(fmt.Sprintf("r%02d", i)), placement.NodeID(fmt.Sprintf("rn%d", i)), driver.ClassRemote)
	}
	if pol.Data == 0 {
		var err error
		if pol, err = placement.DefaultPolicy(len(pdrives)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := placement.NewMap(pdrives, pol, placement.DefaultPGCount, 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Width = width
	r.m = m
	topo, err := NewStatic(m, ds)
	if err != nil {
		t.Fatal(err)
	}
	r.e, err = New(Config{Topology: topo, Containers: &MemContainers{}, StripeSize: 64 << 10,
		StoragePolicy: func(string, string) string { return r.policy.Load().(string) },
		Now:           func() time.Time { return time.Now().Add(time.Duration(r.skew.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, f := range r.faulty {
			f.SetHang(false)
			f.SetOffline(false)
		}
		r.e.WaitBackground()
	})
	if err := r.e.CreateContainer(t.Context(), "t", "c"); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *p14Rig) offline(on bool, ids ...placement.DriveID) {
	for _, id := range ids {
		r.faulty[id].SetOffline(on)
	}
}

func (r *p14Rig) listKeys(t *testing.T, limit int) ([]string, error) {
	t.Helper()
	var keys []string
	after := ""
	for {
		res, err := r.e.List(t.Context(), "t", "c", ListOptions{After: after, Limit: limit})
		if err != nil {
			return keys, err
		}
		for _, a := range res.Artifacts {
			keys = append(keys, a.Key)
		}
		if !res.Truncated {
			return keys, nil
		}
		after = res.Next
	}
}

func probeGate(t *testing.T) {
	t.Helper()
	if os.Getenv("VAULT_PROBE") != "1" {
		t.Skip("probe: VAULT_PROBE=1")
	}
}

// TestProbe14bListHybridToLocalFlip: a container written under the hybrid
// policy (sets of 4 local + 2 remote drives, write quorum 4) switches to
// the local policy (CheckPolicyChange allows it; the artifacts stay in
// their hybrid sets until RelayoutContainer). Its listing now walks the
// local layout's map, whose PGs name only local drives: pgsCovered never
// asks whether the hybrid sets the artifacts still live in have k drives
// answering. With a key's four record holders down (its two remote drives,
// a remote backend outage, and the two local drives that took its write)
// the local sets still have 4 of 6, so List answers without an error and
// without the key. Before the per-PG rule (whole map less parity: 4
// drives missing > 2) it failed with ErrReadQuorum.
func TestProbe14bListHybridToLocalFlip(t *testing.T) {
	// (fixed after the probe of session 14: a regression test now)
	for _, cfg := range []struct{ locals, remotes int }{{6, 2}, {8, 4}} {
		t.Run(fmt.Sprintf("%dlocal+%dremote", cfg.locals, cfg.remotes), func(t *testing.T) {
			probeHybridToLocal(t, cfg.locals, cfg.remotes)
		})
	}
}

func probeHybridToLocal(t *testing.T, nlocal, nremote int) {
	r := newP14Rig(t, nlocal, nremote, placement.Policy{}, 0)
	ctx := t.Context()
	r.policy.Store(PolicyHybrid)
	hm := r.e.mapFor("t", "c")
	if hm.Layout != placement.LayoutHybrid {
		t.Fatalf("hybrid layout map: %s", hm.Layout)
	}
	for i := range 8 {
		key := fmt.Sprintf("a%02d", i)
		if _, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader([]byte(key)), PutOptions{Size: int64(len(key))}); err != nil {
			t.Fatal(err)
		}
	}
	const key = "victim"
	set := hm.Set(hm.PGOf("t", "c", key))
	var locals, remotes []placement.DriveID
	for _, id := range set {
		if id[0] == 'r' {
			remotes = append(remotes, id)
		} else {
			locals = append(locals, id)
		}
	}
	wq := hm.Policy.WriteQuorum()
	skip := len(set) - wq // local drives of the set down during the write
	t.Logf("hybrid policy %s set %v (locals %v remotes %v), write quorum %d", hm.Policy, set, locals, remotes, wq)
	// Some local drives of the set are down during the write: it commits
	// on its write quorum, the other local drives and the remotes.
	r.offline(true, locals[:skip]...)
	data := []byte("acknowledged hybrid artifact")
	if _, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(len(data))}); err != nil {
		t.Fatalf("Put(%s) with %d of its set down: %v", key, skip, err)
	}
	r.offline(false, locals[:skip]...)
	r.e.WaitBackground()

	if err := r.e.CheckPolicyChange(ctx, "t", "c", PolicyLocal); err != nil {
		t.Fatalf("CheckPolicyChange: %v", err)
	}
	r.policy.Store(PolicyLocal)
	lm := r.e.mapFor("t", "c")
	t.Logf("local layout policy %s", lm.Policy)

	keys, err := r.listKeys(t, 1000)
	if err != nil || !slices.Contains(keys, key) {
		t.Fatalf("all drives up: List = %v, %v; want %s listed", keys, err, key)
	}

	// The holders go down: the remotes (a backend outage) and the local
	// drives that took the write.
	down := append(slices.Clone(locals[skip:]), remotes...)
	r.offline(true, down...)
	keys, err = r.listKeys(t, 1000)
	_, herr := r.e.Head(ctx, "t", "c", key)
	t.Logf("holders %v down: List = %v, err %v; Head(%s) err %v", down, keys, err, key, herr)
	if err == nil && !slices.Contains(keys, key) {
		t.Errorf("List answered without error but omits %s, an acknowledged artifact (Head: %v): the listing's coverage ignores the other layout's sets", key, herr)
	}
	vres, verr := r.e.ListVersions(ctx, "t", "c", VersionListOptions{})
	found := false
	for _, v := range vres.Versions {
		found = found || v.Key == key
	}
	if verr == nil && !found {
		t.Errorf("ListVersions answered without error but omits %s", key)
	}
	r.offline(false, down...)
	if _, err := r.e.Head(ctx, "t", "c", key); err != nil {
		t.Errorf("Head(%s) with every drive back: %v", key, err)
	}
}

// TestProbe14bListPolicyGrowthHistory: a cluster of six drives (4+2,
// every set all six) grows to eight; the new default policy 4+4 is a new
// map (NewMap, not Plan), the old one history until the migrator has
// moved everything. A key written under the old map while two of its
// drives were down has its record on four drives only. With those four
// down, every PG of the new map still has 4 of its 8 (and the old
// whole-map rule, at most Parity = 4 missing, agreed), so List answers
// without the key; Head says ErrReadQuorum. The List doc's quorum
// argument holds for the current map's sets only: an older map's sets
// have their own, smaller parity. (Fixed: a listing covers the older
// maps' sets from the container's settled epoch on, List; a regression
// test now.)
func TestProbe14bListPolicyGrowthHistory(t *testing.T) {
	ctx := t.Context()
	e, topo, old, cur := growthRig(t)
	const key = "victim"
	set := old.Set(old.PGOf("t", "c", key))
	off := func(on bool, ids ...placement.DriveID) {
		for _, id := range ids {
			topo.drives[id].SetOffline(on)
		}
	}
	off(true, set[:2]...)
	data := []byte("acknowledged under the old map")
	if _, err := e.Put(ctx, "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(len(data))}); err != nil {
		t.Fatalf("Put with 2 of 6 down: %v", err)
	}
	off(false, set[:2]...)
	for i := range 5 {
		k := fmt.Sprintf("a%02d", i)
		if _, err := e.Put(ctx, "t", "c", k, bytes.NewReader([]byte(k)), PutOptions{Size: int64(len(k))}); err != nil {
			t.Fatal(err)
		}
	}
	e.WaitBackground()
	topo.use(cur, old)
	if got := listed(t, e); got[key].Key != key {
		t.Fatalf("all drives up after growth: %s not listed", key)
	}
	holders := set[2:]
	off(true, holders...)
	res, lerr := e.List(ctx, "t", "c", ListOptions{})
	_, herr := e.Head(ctx, "t", "c", key)
	var keys []string
	for _, a := range res.Artifacts {
		keys = append(keys, a.Key)
	}
	t.Logf("holders %v down: List = %v, %v; Head: %v", holders, keys, lerr, herr)
	if lerr == nil && !slices.Contains(keys, key) {
		t.Errorf("List answered without error but omits %s (Head: %v): an older map's set lost more than its parity", key, herr)
	}
	if !errors.Is(lerr, ErrReadQuorum) {
		t.Errorf("List with the key's older set short: %v, want ErrReadQuorum", lerr)
	}
	vres, verr := e.ListVersions(ctx, "t", "c", VersionListOptions{})
	if !errors.Is(verr, ErrReadQuorum) {
		t.Errorf("ListVersions with the key's older set short: %d versions, %v; want ErrReadQuorum", len(vres.Versions), verr)
	}
	// A sweep of a container that does not exist (CreateContainer's)
	// does not need the older sets.
	if err := e.CreateContainer(ctx, "t", "fresh"); err != nil {
		t.Errorf("CreateContainer with an older set short: %v", err)
	}
	// The new container was created under the current map: its
	// listings need no older map.
	if _, err := e.List(ctx, "t", "fresh", ListOptions{}); err != nil {
		t.Errorf("List of a container created under the current map, an older set short: %v", err)
	}
	off(false, holders...)
	if got := listed(t, e); got[key].Key != key {
		t.Errorf("holders back: %s not listed", key)
	}
}

// growthRig is an engine on 8 drives whose map is about to grow from 6
// drives at 4+2 (old, in use) to all 8 at 4+4 (cur), with container c of
// tenant t created under old.
func growthRig(t *testing.T) (*Engine, *histTopo, *placement.Map, *placement.Map) {
	t.Helper()
	topo := &histTopo{drives: map[placement.DriveID]*drivertest.Faulty{}}
	var pdrives []placement.Drive
	for i := range 8 {
		id := placement.DriveID(fmt.Sprintf("d%02d", i))
		pdrives = append(pdrives, placement.Drive{ID: id, Node: placement.NodeID(fmt.Sprintf("n%d", i)), Class: driver.ClassLocal})
		topo.drives[id] = drivertest.NewFaulty(&drivertest.Mem{MemID: id, ClusterID: "test"})
	}
	old, err := placement.NewMap(pdrives[:6], placement.Policy{Data: 4, Parity: 2}, placement.DefaultPGCount, 1)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := placement.NewMap(pdrives, placement.Policy{Data: 4, Parity: 4}, placement.DefaultPGCount, 2)
	if err != nil {
		t.Fatal(err)
	}
	topo.use(old)
	e, err := New(Config{Topology: topo, Containers: &MemContainers{}, StripeSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, f := range topo.drives {
			f.SetOffline(false)
		}
		e.WaitBackground()
	})
	if err := e.CreateContainer(t.Context(), "t", "c"); err != nil {
		t.Fatal(err)
	}
	return e, topo, old, cur
}

// TestDeleteVersionRefusedBeforeItDeletes: deleting a key's current
// version must find the version to make current next, which needs the
// older map's set of a container not settled yet (F2 of session 14).
// With that set short, DeleteVersion answered 503 after deleting the
// version, leaving the key's pointer on it (review 20 M2); it now answers
// 503 before it changes anything, and works once the set is back.
func TestDeleteVersionRefusedBeforeItDeletes(t *testing.T) {
	ctx := t.Context()
	e, topo, old, cur := growthRig(t)
	const key = "k"
	var vids []string
	put := func() {
		t.Helper()
		data := []byte(fmt.Sprintf("version %d", len(vids)))
		info, err := e.Put(ctx, "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(len(data)), Versioning: VersioningEnabled})
		if err != nil {
			t.Fatal(err)
		}
		vids = append(vids, info.VersionID)
		e.WaitBackground()
	}
	put() // under the old map: only its set holds it
	topo.use(cur, old)
	put() // under the current map: readable with the old set short
	set := old.Set(old.PGOf("t", "c", key))
	for _, id := range set[:3] { // more than the old set's parity
		topo.drives[id].SetOffline(true)
	}
	opts := DeleteOptions{Versioning: VersioningEnabled, VersionID: vids[1]}
	if _, err := e.DeleteVersion(ctx, "t", "c", key, opts); !errors.Is(err, ErrReadQuorum) {
		t.Fatalf("DeleteVersion of the current version, the older set short: %v, want ErrReadQuorum", err)
	}
	for _, id := range set[:3] {
		topo.drives[id].SetOffline(false)
	}
	if _, err := e.OpenVersion(ctx, "t", "c", key, vids[1]); err != nil {
		t.Fatalf("the version refused deletion is gone: %v", err)
	}
	if _, err := e.DeleteVersion(ctx, "t", "c", key, opts); err != nil {
		t.Fatalf("DeleteVersion once the set is back: %v", err)
	}
	info, err := e.Head(ctx, "t", "c", key)
	if err != nil || info.VersionID != vids[0] {
		t.Fatalf("after deleting the current version: %s, %v; want version %s current", info.VersionID, err, vids[0])
	}
}

// TestProbe14bListResurrectsAfterFlip: a key written under the local
// layout (every local drive holds v1) is deleted after the container went
// hybrid, while two local drives of its hybrid set are down: the
// tombstone is on its write quorum, 2 local + 2 remote drives. With a
// remote drive not answering (well within the per-PG rule and the
// whole-map one), the merger saw 3 tombstones and 4 records of v1 (the
// local layout's copies, on drives outside the key's hybrid set or that
// missed the delete), and chooseVersion (k = 4) picked v1, "held by k",
// over the newer tombstone: List showed the key, Head said
// ErrNoSuchArtifact. A listing now chooses as a read does
// (merger.choose): by the set each record is placed for, the current
// set's first. (Fixed after probe F3: a regression test now.) A key
// overwritten the same way stays listed with its new version. A body
// large enough that the listing cuts its inline records
// (driver.ListDataMax) has them read whole; ListVersions agrees.
func TestProbe14bListResurrectsAfterFlip(t *testing.T) {
	for _, size := range []int{
		41,
		16 << 10, // inline records over ListDataMax: the listing cuts them
	} {
		t.Run(fmt.Sprintf("%dB", size), func(t *testing.T) {
			r := newP14Rig(t, 6, 2, placement.Policy{}, 0)
			ctx := t.Context()
			const gone, kept = "ghost", "kept"
			put := func(key string, size int) {
				t.Helper()
				data := bytes.Repeat([]byte("g"), size)
				if _, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(len(data))}); err != nil {
					t.Fatalf("Put(%s): %v", key, err)
				}
			}
			put(gone, size)
			put(kept, size)
			if err := r.e.CheckPolicyChange(ctx, "t", "c", PolicyHybrid); err != nil {
				t.Fatal(err)
			}
			r.policy.Store(PolicyHybrid)
			hm := r.e.mapFor("t", "c")
			if hm.Layout != placement.LayoutHybrid {
				t.Fatalf("hybrid layout map: %s", hm.Layout)
			}
			// downFor returns some local drives of key's hybrid set (as
			// many as a write may miss) and one of its remote drives.
			downFor := func(key string) (locals []placement.DriveID, remote placement.DriveID) {
				set := hm.Set(hm.PGOf("t", "c", key))
				for _, id := range set {
					if id[0] == 'r' {
						remote = id
					} else if len(locals) < len(set)-hm.Policy.WriteQuorum() {
						locals = append(locals, id)
					}
				}
				return locals, remote
			}
			locals, remote := downFor(gone)
			r.offline(true, locals...)
			if err := r.e.Delete(ctx, "t", "c", gone); err != nil {
				t.Fatalf("Delete(%s) with %v of its hybrid set down: %v", gone, locals, err)
			}
			r.offline(false, locals...)
			keptLocals, _ := downFor(kept)
			r.offline(true, keptLocals...)
			put(kept, size+1)
			r.offline(false, keptLocals...)
			r.e.WaitBackground()
			for _, down := range [][]placement.DriveID{nil, {remote}} {
				r.offline(true, down...)
				if _, err := r.e.Head(ctx, "t", "c", gone); !errors.Is(err, ErrNoSuchArtifact) {
					t.Errorf("%v offline: Head(%s) = %v, want ErrNoSuchArtifact", down, gone, err)
				}
				res, err := r.e.List(ctx, "t", "c", ListOptions{})
				var got []string
				for _, a := range res.Artifacts {
					got = append(got, fmt.Sprintf("%s:%d", a.Key, a.Size))
				}
				if want := []string{fmt.Sprintf("%s:%d", kept, size+1)}; err != nil || !slices.Equal(got, want) {
					t.Errorf("%v offline: List = %v, %v; want %v", down, got, err, want)
				}
				vres, err := r.e.ListVersions(ctx, "t", "c", VersionListOptions{})
				got = got[:0]
				for _, v := range vres.Versions {
					got = append(got, fmt.Sprintf("%s:%d", v.Key, v.Size))
				}
				if want := []string{fmt.Sprintf("%s:%d", kept, size+1)}; err != nil || !slices.Equal(got, want) {
					t.Errorf("%v offline: ListVersions = %v, %v; want %v", down, got, err, want)
				}
				r.offline(false, down...)
			}
		})
	}
}
