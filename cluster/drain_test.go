package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// drainStore is a store with nodes a (3 drives), b (3) and c (2).
func drainStore(t *testing.T) *Store {
	t.Helper()
	s := newStore(t)
	for _, n := range []struct {
		name   string
		drives int
	}{{"a", 3}, {"b", 3}, {"c", 2}} {
		var ds []MemberDrive
		for i := range n.drives {
			ds = append(ds, MemberDrive{ID: fmt.Sprintf("%s-d%d", n.name, i), Class: "local"})
		}
		if err := s.RegisterNode(t.Context(), NodeInfo{Name: n.name, Drives: ds}); err != nil {
			t.Fatal(err)
		}
	}
	if m := s.Map(); len(m.Drives) != 8 {
		t.Fatalf("map over %d drives, want 8", len(m.Drives))
	}
	return s
}

func mapHasNode(m *placement.Map, node string) bool {
	return slices.ContainsFunc(m.Drives, func(d placement.Drive) bool { return string(d.Node) == node })
}

// TestDrainAndRemove: draining a node plans a map without its drives;
// progress counts the PG slots older maps still have on them until the
// migrator drops those maps; a node is removed only once drained (or with
// force), after which it is in no map and does not come back by
// registering again.
func TestDrainAndRemove(t *testing.T) {
	s := drainStore(t)
	ctx := t.Context()
	if err := s.RemoveNode(ctx, "c", false); !errors.Is(err, ErrRefused) {
		t.Fatalf("remove of an undrained node: %v, want ErrRefused", err)
	}
	before := s.Map()
	ds, err := s.Drain(ctx, "c", "", false)
	if err != nil {
		t.Fatal(err)
	}
	cur := s.Map()
	if cur.Epoch != before.Epoch+1 || mapHasNode(cur, "c") || len(cur.Drives) != 6 {
		t.Fatalf("after drain: epoch %d over %d drives (c in it: %v), want epoch %d over 6 without c", cur.Epoch, len(cur.Drives), mapHasNode(cur, "c"), before.Epoch+1)
	}
	if !slices.Equal(ds.Drives, []string{"c-d0", "c-d1"}) || ds.PGsLeft == 0 {
		t.Fatalf("drain status %+v, want c's two drives with PGs left", ds)
	}
	if err := s.RemoveNode(ctx, "c", false); !errors.Is(err, ErrRefused) {
		t.Fatalf("remove before the drain finished: %v, want ErrRefused", err)
	}
	// The migrator drops the older maps once their data moved.
	for _, m := range s.OlderMaps() {
		if err := s.DropMap(ctx, m.Epoch); err != nil {
			t.Fatal(err)
		}
	}
	if ds := s.Drains(); ds.PGsLeft != 0 {
		t.Fatalf("after the older maps were dropped: %+v, want 0 PGs left", ds)
	}
	if err := s.RemoveNode(ctx, "c", false); err != nil {
		t.Fatalf("remove of a drained node: %v", err)
	}
	if _, ok := s.Node("c"); ok {
		t.Fatal("removed node still registered")
	}
	if ds := s.Drains(); len(ds.Drives) != 0 {
		t.Fatalf("drains after removal: %+v, want none", ds)
	}
	// Gossip still shows it until it stops: registering is ignored.
	epoch := s.Map().Epoch
	if err := s.RegisterNode(ctx, NodeInfo{Name: "c", Drives: []MemberDrive{{ID: "c-d0"}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Node("c"); ok || s.Map().Epoch != epoch || mapHasNode(s.Map(), "c") {
		t.Fatal("a removed node came back by registering")
	}
	// Force refuses a node gossip sees alive (its data is intact: drain
	// it), and removes one gossip reports dead though not drained; the
	// map leaves it.
	bState := MemberAlive
	members := func() []Member { return []Member{{Name: "a", State: MemberAlive}, {Name: "b", State: bState}} }
	s.gossip.Store(&members)
	if err := s.RemoveNode(ctx, "b", true); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "is alive") {
		t.Fatalf("forced removal of a node alive in gossip: %v, want ErrRefused saying it is alive", err)
	}
	if !mapHasNode(s.Map(), "b") {
		t.Fatal("a refused forced removal took the node out of the map")
	}
	bState = MemberDead
	if err := s.RemoveNode(ctx, "b", true); err != nil {
		t.Fatal(err)
	}
	if mapHasNode(s.Map(), "b") || len(s.Map().Drives) != 3 {
		t.Fatalf("after a forced removal: %d drives (b in the map: %v)", len(s.Map().Drives), mapHasNode(s.Map(), "b"))
	}
	// Its drives are only in the older map now, and lost for good: the
	// topology says so, so that migration stops waiting for them.
	topo := NewTopology(s, nil, []byte("secret"), nil)
	if _, err := topo.Drive("b-d0"); !errors.Is(err, driver.ErrRemoved) {
		t.Errorf("Drive(b-d0) of the removed node: %v, want driver.ErrRemoved", err)
	}
	if _, err := topo.Drive("a-d0"); errors.Is(err, driver.ErrRemoved) {
		t.Errorf("Drive(a-d0): %v", err)
	}
}

// TestDrainRefusals: a drain that would leave fewer drives than the
// operator's erasure set, or none, or names an unknown node or drive, is
// refused without a new map; undo plans drives back in.
func TestDrainRefusals(t *testing.T) {
	s := drainStore(t)
	ctx := t.Context()
	if _, err := s.SetErasure(ctx, placement.Policy{Data: 4, Parity: 3}, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ node, drive string }{
		{"b", ""},     // 5 drives left for 4+3
		{"x", ""},     // unknown node
		{"", "nope"},  // unknown drive
		{"a", "b-d0"}, // a drive of another node
	} {
		epoch := s.Map().Epoch
		if _, err := s.Drain(ctx, tc.node, tc.drive, false); !errors.Is(err, ErrRefused) {
			t.Errorf("Drain(%q, %q) = %v, want ErrRefused", tc.node, tc.drive, err)
		}
		if s.Map().Epoch != epoch || len(s.Drains().Drives) != 0 {
			t.Errorf("refused Drain(%q, %q) changed the map or the drains", tc.node, tc.drive)
		}
	}
	// One drive is fine (7 left for 4+3); a second is not.
	if _, err := s.Drain(ctx, "", "c-d1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Drain(ctx, "c", "c-d0", false); !errors.Is(err, ErrRefused) {
		t.Fatalf("second drive: %v, want ErrRefused", err)
	}
	if _, err := s.Drain(ctx, "", "c-d1", true); err != nil {
		t.Fatal(err)
	}
	if m := s.Map(); len(m.Drives) != 8 || len(s.Drains().Drives) != 0 {
		t.Fatalf("after undo: %d drives, drains %v; want 8 and none", len(m.Drives), s.Drains().Drives)
	}
	// A forced removal is held to the same rule: a (3 drives) out of
	// 4+3 over 8 would leave 5. Refused whole: a is still registered and
	// in the map (probe 16: the node was removed, the map not replanned,
	// its drives reported removed while the current map placed PGs on
	// them).
	epoch := s.Map().Epoch
	if err := s.RemoveNode(ctx, "a", true); !errors.Is(err, ErrRefused) {
		t.Fatalf("remove --force a, leaving 5 drives for 4+3: %v, want ErrRefused", err)
	}
	if _, ok := s.Node("a"); !ok || s.Map().Epoch != epoch || !mapHasNode(s.Map(), "a") {
		t.Fatalf("a refused forced removal changed the cluster: a registered %v, epoch %d (was %d)", ok, s.Map().Epoch, epoch)
	}
	if _, err := s.SetErasure(ctx, placement.Policy{Data: 4, Parity: 2}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveNode(ctx, "c", true); err != nil || len(s.Map().Drives) != 6 {
		t.Fatalf("remove --force c, leaving 6 drives for 4+2: %v, %d drives in the map", err, len(s.Map().Drives))
	}
}

// TestDrainRaceThroughTwoNodes: with policy 2+2 over three nodes of two
// drives, draining one node is allowed and draining two is not. Two
// drains sent at once through two nodes: exactly one is recorded, the
// other is refused with ErrRefused (across the forwarding wire), and the
// map is planned over the four drives left. A drain command whose node
// checked before the other drain was applied is refused by the FSM
// itself (probe M3: both were recorded and the map could not be
// planned).
func TestDrainRaceThroughTwoNodes(t *testing.T) {
	nodes, _ := startStores(t, 3)
	ctx := t.Context()
	if _, err := nodes[0].store.SetErasure(ctx, placement.Policy{Data: 2, Parity: 2}, 0); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			nd := nodes[i+1]
			_, errs[i] = nd.store.Drain(ctx, nd.member.Name, "", false)
		})
	}
	wg.Wait()
	won := slices.IndexFunc(errs, func(err error) bool { return err == nil })
	if won < 0 || !errors.Is(errs[1-won], ErrRefused) {
		t.Fatalf("concurrent drains of n2 and n3: %v, want one success and one ErrRefused", errs)
	}
	winner, loser := nodes[won+1], nodes[2-won]
	for _, nd := range nodes {
		st := nd.store
		deadline := time.Now().Add(10 * time.Second)
		for len(st.Drains().Drives) != 2 || len(st.Map().Drives) != 4 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: drains %v, map over %d drives; want %s's 2 drives draining and a map over 4", nd.member.Name, st.Drains().Drives, len(st.Map().Drives), winner.member.Name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if mapHasNode(st.Map(), winner.member.Name) {
			t.Fatalf("%s: the map still places on the drained %s", nd.member.Name, winner.member.Name)
		}
	}
	// The loser's command, as a node sends it whose check ran before the
	// winner's drain was applied.
	var ids []string
	for _, d := range loser.member.Drives {
		ids = append(ids, d.ID)
	}
	if err := loser.store.applyCmd(ctx, cmdDrain, drainCmd{Drives: ids}); !errors.Is(err, ErrRefused) {
		t.Fatalf("a second drain applied after the first: %v, want ErrRefused", err)
	}
	if d := nodes[0].store.Drains().Drives; len(d) != 2 {
		t.Fatalf("drains after the refused command: %v, want only %s's", d, winner.member.Name)
	}
}

// TestDrainProgressShowsDrives: during a drain the status lists the
// draining drives (the current map no longer has them), marked; progress
// counts the kept maps that still place data on them; a draining drive
// that does not answer is listed as unreachable with its node, instead of
// counting 0 bytes (probe F5 of session 17).
func TestDrainProgressShowsDrives(t *testing.T) {
	s := drainStore(t)
	ctx := t.Context()
	// c-d0 is this node's; c-d1 is a peer's that cannot be reached.
	mem := &drivertest.Mem{MemID: "c-d0"}
	topo := NewTopology(s, map[placement.DriveID]driver.Driver{"c-d0": mem}, []byte("secret-0123456789abcdef"), nil)
	if _, err := s.Drain(ctx, "c", "", false); err != nil {
		t.Fatal(err)
	}
	ds := topo.DrainProgress(ctx)
	if ds == nil || ds.MapsLeft != 1 || ds.PGsLeft == 0 {
		t.Fatalf("drain of c: %+v, want one kept map with PG slots on c", ds)
	}
	if !slices.Equal(ds.Unreachable, []string{"c-d1"}) || !slices.Equal(ds.UnreachableNodes, []string{"c"}) || ds.BytesPerSecond != -1 {
		t.Fatalf("drain of c: unreachable %v of nodes %v, rate %v; want c-d1 of c, no rate", ds.Unreachable, ds.UnreachableNodes, ds.BytesPerSecond)
	}
	st := topo.Status(ctx, nil)
	got := map[string]DriveStatus{}
	for _, d := range st.Drives {
		got[d.ID] = d
	}
	if len(st.Drives) != 8 || !got["c-d0"].Draining || !got["c-d1"].Draining || got["a-d0"].Draining || got["c-d0"].State != "ok" || got["c-d1"].State != "offline" || got["c-d0"].Node != "c" {
		t.Fatalf("status drives %+v; want all 8, c-d0 (ok) and c-d1 (offline) marked draining", st.Drives)
	}
	if !slices.IsSortedFunc(st.Drives, func(a, b DriveStatus) int { return strings.Compare(a.ID, b.ID) }) {
		t.Errorf("status drives not sorted: %+v", st.Drives)
	}
}
