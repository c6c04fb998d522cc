package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/placement"
)

// keepingCoordinator is a fakeCoordinator that keeps every older map
// (DropMap fails, as while an upload holds it) and settles the containers
// of tenant "t" in a MemContainers (Settler), counting the calls.
type keepingCoordinator struct {
	*fakeCoordinator
	mem     *MemContainers
	settles *atomic.Int64
}

func (keepingCoordinator) DropMap(context.Context, placement.Epoch) error {
	return errors.New("test: older maps are kept")
}

func (c keepingCoordinator) AllContainers(ctx context.Context) ([]ContainerInfo, error) {
	return c.mem.Containers(ctx, "t")
}

func (c keepingCoordinator) SettleContainers(ctx context.Context, epoch placement.Epoch, except []meta.ContainerRef) error {
	c.settles.Add(1)
	return c.mem.SettleContainers(ctx, epoch, except)
}

// TestRunMigratorSettlesContainers: a container created before a map
// change needs the older map's sets in its listings (its keys may be only
// there: probe F2 of session 14) until the leader's migrator has run a
// clean pass that began once the current map settled; then it is settled
// at the current epoch and its listings answer with the older map's
// drives offline, every key in them, though the older map is still kept.
// A follower settles nothing, nor does a pass that began before the map
// settled, one that could not list an older map's drive, or one that left
// keys with their older copies (a current drive offline).
func TestRunMigratorSettlesContainers(t *testing.T) {
	every, settle := migrateEvery, mapSettle
	migrateEvery, mapSettle = 20*time.Millisecond, 300*time.Millisecond
	t.Cleanup(func() { migrateEvery, mapSettle = every, settle })

	r := newMigRig(t)
	ctx := t.Context()
	old, cur := r.olderAndCurrent(t) // 1+1 on d00, d01; 2+2 on d02..d05
	r.useChain([]*placement.Map{old})
	s := newStored()
	var want []string
	for i := range 6 {
		key := fmt.Sprintf("old%d", i)
		s.put(t, r, key, randBytes(uint64(i), 1000))
		want = append(want, key)
	}
	r.useChain([]*placement.Map{old, cur})
	if err := r.e.CreateContainer(ctx, "t", "later"); err != nil {
		t.Fatal(err)
	}
	containers := r.e.cfg.Containers
	settled := func(name string) uint64 {
		t.Helper()
		c, err := containers.Container(ctx, "t", name)
		if err != nil {
			t.Fatal(err)
		}
		return c.Settled
	}
	if got := settled("later"); got != uint64(cur.Epoch) {
		t.Errorf("a container created under epoch %d settled at %d", cur.Epoch, got)
	}
	off := func(on bool, ids ...placement.DriveID) {
		for _, id := range ids {
			r.topo.drives[id].SetOffline(on)
		}
	}
	list := func(container string) ([]string, error) {
		res, err := r.e.List(ctx, "t", container, ListOptions{})
		var keys []string
		for _, a := range res.Artifacts {
			keys = append(keys, a.Key)
		}
		return keys, err
	}
	checkOldDown := func(wantC error) {
		t.Helper()
		off(true, "d00", "d01")
		defer off(false, "d00", "d01")
		if keys, err := list("c"); !errors.Is(err, wantC) || (wantC == nil && !slices.Equal(keys, want)) {
			t.Errorf("List(c) with the older map's drives offline = %v, %v; want %v, error %v", keys, err, want, wantC)
		}
		if keys, err := list("later"); err != nil || len(keys) != 0 {
			t.Errorf("List(later) with the older map's drives offline = %v, %v; want an empty answer", keys, err)
		}
	}
	checkOldDown(ErrReadQuorum)

	c := keepingCoordinator{&fakeCoordinator{topo: r.topo}, containers.(*MemContainers), new(atomic.Int64)}
	run := func(d time.Duration) {
		t.Helper()
		runFor(t, d, func(ctx context.Context) { r.e.RunMigrator(ctx, c, nil) })
	}
	// A follower: nothing moves, nothing is settled.
	run(2 * mapSettle)
	if got := settled("c"); got != 0 {
		t.Fatalf("a follower settled c at %d", got)
	}
	// The leader, before the map settled: its passes prove nothing (a
	// node may still write with the older map). A drive of the current
	// map is offline from its first pass on (see below).
	off(true, "d05")
	c.leader.Store(true)
	run(mapSettle / 2)
	if got := settled("c"); got != 0 {
		t.Fatalf("the leader settled c at %d before the map settled", got)
	}
	// With a drive of the current map offline: the keys move onto the
	// other three (a write quorum) but keep their older copies
	// (MigrateResult.Incomplete), so nothing is settled either.
	run(3 * mapSettle)
	off(false, "d05")
	if got := settled("c"); got != 0 {
		t.Fatalf("passes that left keys incomplete (d05 offline) settled c at %d", got)
	}
	// The leader, with a drive of the older map offline: every pass is
	// unclean (its keys cannot be listed), so nothing is settled.
	off(true, "d01")
	run(3 * mapSettle)
	off(false, "d01")
	if got := settled("c"); got != 0 {
		t.Fatalf("passes that could not list d01 settled c at %d", got)
	}
	// With every drive back, a clean pass settles every container.
	deadline := time.Now().Add(30 * time.Second)
	for settled("c") != uint64(cur.Epoch) && time.Now().Before(deadline) {
		run(3 * mapSettle)
	}
	if got := settled("c"); got != uint64(cur.Epoch) {
		t.Fatalf("after clean passes: c settled at %d, want %d", got, cur.Epoch)
	}
	if len(r.topo.OlderMaps()) != 1 {
		t.Fatalf("the older map was dropped; the test needs it kept")
	}
	checkOldDown(nil)
	// Later clean passes change nothing: no more Raft entries.
	n := c.settles.Load()
	run(3 * mapSettle)
	if got := c.settles.Load(); got != n {
		t.Errorf("clean passes with every container settled called SettleContainers %d more times, want 0", got-n)
	}
}

var _ Settler = keepingCoordinator{}

// TestMemContainersSettle: SettleContainers raises, never lowers, and
// leaves out the containers it is told to.
func TestMemContainersSettle(t *testing.T) {
	ctx := t.Context()
	var s MemContainers
	for _, c := range []ContainerInfo{{Tenant: "t", Name: "a"}, {Tenant: "t", Name: "b", Settled: 5}, {Tenant: "t", Name: "c"}} {
		if err := s.CreateContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SettleContainers(ctx, 3, []meta.ContainerRef{{Tenant: "t", Name: "c"}}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint64{"a": 3, "b": 5, "c": 0} {
		if c, err := s.Container(ctx, "t", name); err != nil || c.Settled != want {
			t.Errorf("Container(%s) = %+v, %v; want settled %d", name, c, err, want)
		}
	}
}

// TestRunMigratorSettlesAfterUploadsMoved: a container is settled (its
// listings, ListUploads too, stop covering the older maps' sets) only
// once no upload in progress is left only in an older map's set: a pass
// whose upload move failed (here, waiting to retry an earlier failure:
// moveRetries) settles nothing; once the move is let through, the
// upload moves and the container is settled at the current epoch.
func TestRunMigratorSettlesAfterUploadsMoved(t *testing.T) {
	r, old, cur := settleRig(t)
	ctx := t.Context()
	id, _ := olderUpload(t, r, old, cur, "mp/held", randBytes(22, 1000))
	r.e.moveRetries.Store(id, moveRetry{at: r.e.cfg.Now().Add(time.Hour), failures: 1})

	containers := r.e.cfg.Containers
	settled := func() uint64 {
		t.Helper()
		c, err := containers.Container(ctx, "t", "c")
		if err != nil {
			t.Fatal(err)
		}
		return c.Settled
	}
	c := keepingCoordinator{&fakeCoordinator{topo: r.topo}, containers.(*MemContainers), new(atomic.Int64)}
	c.leader.Store(true)
	run := func(d time.Duration) {
		t.Helper()
		runFor(t, d, func(ctx context.Context) { r.e.RunMigrator(ctx, c, nil) })
	}
	run(5 * mapSettle)
	if got := settled(); got != 0 {
		t.Fatalf("passes that left an upload only in the older map settled c at %d", got)
	}
	r.e.moveRetries.Delete(id)
	deadline := time.Now().Add(30 * time.Second)
	for settled() != uint64(cur.Epoch) && time.Now().Before(deadline) {
		run(5 * mapSettle)
	}
	if got := settled(); got != uint64(cur.Epoch) {
		t.Fatalf("after the upload could move: c settled at %d, want %d", got, cur.Epoch)
	}
	r.topo.drives["d00"].SetOffline(true)
	r.topo.drives["d01"].SetOffline(true)
	defer r.topo.drives["d00"].SetOffline(false)
	defer r.topo.drives["d01"].SetOffline(false)
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 1 || ups[0].ID != id {
		t.Errorf("ListUploads once settled, the older set offline: %+v, %v; want upload %s", ups, err, id)
	}
}

// TestRunMigratorSettlesAllButTheContainersOfStuckUploads: one upload
// that does not move (held back here as after a copy failure,
// moveRetries; an upload with a part that cannot be read fails on every
// pass, and nothing aborts an abandoned one) keeps its own container
// unsettled, and only it: a container created before the map change,
// with no upload, is settled and answers List with the older set short
// (review 21 F5: settled all or nothing, one stuck upload kept every
// container's listings answering 503 while a node of an older map was
// down, the availability loss settling was made to end).
func TestRunMigratorSettlesAllButTheContainersOfStuckUploads(t *testing.T) {
	r, old, cur := settleRig(t)
	ctx := t.Context()
	r.useChain([]*placement.Map{old})
	if err := r.e.CreateContainer(ctx, "t", "other"); err != nil {
		t.Fatal(err)
	}
	id, _ := olderUpload(t, r, old, cur, "mp/stuck", randBytes(23, 1000)) // in container "c"
	r.e.moveRetries.Store(id, moveRetry{at: r.e.cfg.Now().Add(time.Hour), failures: 1})

	containers := r.e.cfg.Containers
	c := keepingCoordinator{&fakeCoordinator{topo: r.topo}, containers.(*MemContainers), new(atomic.Int64)}
	c.leader.Store(true)
	runFor(t, 5*mapSettle, func(ctx context.Context) { r.e.RunMigrator(ctx, c, nil) })
	for name, settled := range map[string]bool{"other": true, "c": false} {
		ci, err := containers.Container(ctx, "t", name)
		if err != nil {
			t.Fatal(err)
		}
		if got := ci.Settled >= uint64(cur.Epoch); got != settled {
			t.Errorf("container %q settled at %d after the passes (current epoch %d); want settled %v", name, ci.Settled, cur.Epoch, settled)
		}
	}
	r.topo.drives["d00"].SetOffline(true)
	r.topo.drives["d01"].SetOffline(true)
	defer r.topo.drives["d00"].SetOffline(false)
	defer r.topo.drives["d01"].SetOffline(false)
	if _, err := r.e.List(ctx, "t", "other", ListOptions{Limit: 10}); err != nil {
		t.Errorf("List of container \"other\" with the older set short: %v; want an answer", err)
	}
	if _, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("ListUploads of container \"c\", whose upload is only in the older set, short: %v; want ErrReadQuorum", err)
	}
}

// settleRig is a migration rig with an older 1+1 and a current 2+2 map
// (olderAndCurrent) whose migrator runs every 20 ms and takes a map as
// settled after 100 ms.
func settleRig(t *testing.T) (r *migRig, old, cur *placement.Map) {
	t.Helper()
	every, settle := migrateEvery, mapSettle
	migrateEvery, mapSettle = 20*time.Millisecond, 100*time.Millisecond
	t.Cleanup(func() { migrateEvery, mapSettle = every, settle })
	r = newMigRig(t)
	old, cur = r.olderAndCurrent(t)
	return r, old, cur
}
