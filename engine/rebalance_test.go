package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// fakeCoordinator is a Coordinator over a histTopo: DropMap removes the
// map from the topology's history, as the cluster's would.
type fakeCoordinator struct {
	topo       *histTopo
	leader     atomic.Bool
	containers []ContainerInfo

	mu      sync.Mutex        // guards dropped
	dropped []placement.Epoch // in DropMap order
	at      []time.Time       // when each was dropped
}

func (c *fakeCoordinator) IsLeader() bool              { return c.leader.Load() }
func (c *fakeCoordinator) Map() *placement.Map         { return c.topo.Map() }
func (c *fakeCoordinator) OlderMaps() []*placement.Map { return c.topo.OlderMaps() }

func (c *fakeCoordinator) AllContainers(context.Context) ([]ContainerInfo, error) {
	return slices.Clone(c.containers), nil
}

func (c *fakeCoordinator) DropMap(_ context.Context, epoch placement.Epoch) error {
	c.topo.mu.Lock()
	c.topo.maps = slices.DeleteFunc(c.topo.maps, func(m *placement.Map) bool { return m.Epoch == epoch })
	c.topo.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropped = append(c.dropped, epoch)
	c.at = append(c.at, time.Now())
	return nil
}

func (c *fakeCoordinator) drops() ([]placement.Epoch, []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.dropped), slices.Clone(c.at)
}

var _ Coordinator = (*fakeCoordinator)(nil)

// runFor runs loop until d has passed, then stops it and waits for it.
func runFor(t *testing.T, d time.Duration, loop func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { loop(ctx) })
	wg.Wait()
}

// TestRunMigrator: the migrator does nothing on a follower; on the leader
// it moves everything written under the older map into the current one
// and drops the older map, but not before the current map has settled.
func TestRunMigrator(t *testing.T) {
	every, settle := migrateEvery, mapSettle
	migrateEvery, mapSettle = 20*time.Millisecond, 700*time.Millisecond
	t.Cleanup(func() { migrateEvery, mapSettle = every, settle })

	r := newMigRig(t)
	ms := []*placement.Map{
		r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 8, 1),
		r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 32, 2),
	}
	s := newStored()
	r.useChain(ms[:1])
	for i := range 6 {
		s.put(t, r, fmt.Sprintf("old%d", i), randBytes(uint64(i), 100<<10))
	}
	r.useChain(ms)
	s.put(t, r, "new", randBytes(99, 100<<10))
	infos := s.heads(t, r.e)
	c := &fakeCoordinator{topo: r.topo}

	// A follower leaves the older map alone.
	runFor(t, 300*time.Millisecond, func(ctx context.Context) { r.e.RunMigrator(ctx, c, nil) })
	if n, err := r.e.Residue(t.Context(), ms[0]); err != nil || n == 0 {
		t.Fatalf("after running as a follower: Residue(old map) = %d, %v; want its keys still there", n, err)
	}
	if d, _ := c.drops(); len(d) != 0 {
		t.Fatalf("a follower dropped maps %v", d)
	}

	// The leader migrates, then drops the older map once the current
	// one has been current for mapSettle.
	c.leader.Store(true)
	start := time.Now()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { r.e.RunMigrator(ctx, c, nil) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if d, _ := c.drops(); len(d) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	dropped, at := c.drops()
	if !slices.Equal(dropped, []placement.Epoch{ms[0].Epoch}) {
		t.Fatalf("dropped %v, want the older map %d once", dropped, ms[0].Epoch)
	}
	if waited := at[0].Sub(start); waited < mapSettle {
		t.Errorf("older map dropped %v after the migrator saw the current map, want at least %v", waited, mapSettle)
	}
	checkResidue(t, r.e, ms[:1])
	if got := r.topo.OlderMaps(); len(got) != 0 {
		t.Errorf("history after the drop: %d maps, want none", len(got))
	}
	s.check(t, r.e, infos)
	s.check(t, r.plain, infos) // without history: everything is in the current map
}

// TestRunScanner: the scanner queues for healing the artifacts a drive
// missed while it was offline, in every container the coordinator lists,
// and only on the leader.
func TestRunScanner(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	ctx := t.Context()
	if err := r.e.CreateContainer(ctx, "t", "d"); err != nil {
		t.Fatal(err)
	}
	r.faulty[0].SetOffline(true)
	missed := 0
	for i := range 20 {
		key := fmt.Sprintf("during-%02d", i)
		r.put(t, key, randBytes(uint64(i), 200_000), -1)
		if slices.Contains(r.e.mapOf().Set(r.e.mapOf().PGOf("t", "c", key)), r.ids[0]) {
			missed++
		}
	}
	r.faulty[0].SetOffline(false)
	if missed == 0 {
		t.Fatal("no key has the offline drive in its set")
	}
	// The puts queued what they left behind (put.go); emptied here, the
	// queue must be refilled by the scanner alone.
	if n := len(r.e.Degraded()); n != missed {
		t.Fatalf("the puts queued %d artifacts for healing, want the %d that missed a drive", n, missed)
	}
	for _, it := range r.e.Degraded() {
		r.e.unqueueHeal(it)
	}
	c := &fakeCoordinator{containers: []ContainerInfo{{Tenant: "t", Name: "c"}, {Tenant: "t", Name: "d"}}}

	runFor(t, 300*time.Millisecond, func(ctx context.Context) { r.e.RunScanner(ctx, c, 20*time.Millisecond, nil) })
	if n := len(r.e.Degraded()); n != 0 {
		t.Fatalf("a follower's scanner queued %d artifacts, want none", n)
	}

	c.leader.Store(true)
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.e.RunScanner(sctx, c, 20*time.Millisecond, nil) })
	deadline := time.Now().Add(20 * time.Second)
	for len(r.e.Degraded()) < missed && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if n := len(r.e.Degraded()); n != missed {
		t.Fatalf("the leader's scanner queued %d artifacts, want the %d the drive missed", n, missed)
	}
}
