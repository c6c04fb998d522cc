package cluster

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vaultaire/vaultaire/placement"
)

// TestSetErasure: the operator's policy and width make a new map epoch
// over the same drives, survive a node joining (not replaced by the
// default for the new drive count), and a policy the drives cannot hold
// or a width out of range is refused without a new map.
func TestSetErasure(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	var ds []MemberDrive
	for i := range 6 {
		ds = append(ds, MemberDrive{ID: fmt.Sprintf("d%d", i), Class: "local"})
	}
	if err := s.RegisterNode(ctx, NodeInfo{Name: "a", Drives: ds}); err != nil {
		t.Fatal(err)
	}
	if m := s.Map(); m.Policy != (placement.Policy{Data: 4, Parity: 2}) || m.Chosen || m.Width != 0 {
		t.Fatalf("default map: %s chosen %v width %d, want 4+2 by default, width 0", m.Policy, m.Chosen, m.Width)
	}
	m, err := s.SetErasure(ctx, placement.Policy{Data: 2, Parity: 1}, 8)
	if err != nil {
		t.Fatal(err)
	}
	if m.Epoch != 2 || m.Policy != (placement.Policy{Data: 2, Parity: 1}) || !m.Chosen || m.Width != 8 || len(m.Drives) != 6 {
		t.Fatalf("after set-erasure 2+1 --width 8: epoch %d %s chosen %v width %d over %d drives", m.Epoch, m.Policy, m.Chosen, m.Width, len(m.Drives))
	}
	if st := MapStatusOf(s.Map()); st.Policy != "2+1" || !st.PolicySet || st.Width != 8 {
		t.Fatalf("status %+v, want 2+1 set by the operator, width 8", st)
	}
	// Setting it again is no new epoch; width 0 keeps the width.
	if m, err = s.SetErasure(ctx, placement.Policy{Data: 2, Parity: 1}, 0); err != nil || m.Epoch != 2 || m.Width != 8 {
		t.Fatalf("same policy again: epoch %d width %d, %v; want epoch 2 width 8", m.Epoch, m.Width, err)
	}
	// A node joins: the operator's policy stays.
	if err := s.RegisterNode(ctx, NodeInfo{Name: "b", Drives: []MemberDrive{{ID: "d6", Class: "local"}}}); err != nil {
		t.Fatal(err)
	}
	if m := s.Map(); m.Epoch != 3 || m.Policy != (placement.Policy{Data: 2, Parity: 1}) || !m.Chosen || m.Width != 8 || len(m.Drives) != 7 {
		t.Fatalf("after a join: epoch %d %s chosen %v width %d over %d drives; want epoch 3, 2+1, width 8, 7 drives", m.Epoch, m.Policy, m.Chosen, m.Width, len(m.Drives))
	}
	for _, tc := range []struct {
		name  string
		pol   placement.Policy
		width int
	}{
		{"more shards than drives", placement.Policy{Data: 6, Parity: 2}, 0},
		{"no data shards", placement.Policy{Data: 0, Parity: 2}, 0},
		{"width too large", placement.Policy{Data: 2, Parity: 1}, placement.MaxWidth + 1},
		{"negative width", placement.Policy{Data: 2, Parity: 1}, -1},
		{"no parity over several drives", placement.Policy{Data: 6, Parity: 0}, 0},
		{"more shards on one node than parity", placement.Policy{Data: 3, Parity: 1}, 0}, // 2 nodes: 2 shards on one
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Map()
			_, err := s.SetErasure(ctx, tc.pol, tc.width)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("SetErasure(%s, %d) = %v, want ErrRefused", tc.pol, tc.width, err)
			}
			if s.Map() != before {
				t.Fatalf("a refused set-erasure made map epoch %d", s.Map().Epoch)
			}
		})
	}
}

// TestJoinMovesLittle: under a fixed policy a joining drive takes about
// its fair share of (PG, slot) entries (placement.Plan), and only those
// move; the ideal is entries/N for N drives after the join.
func TestJoinMovesLittle(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	var ds []MemberDrive
	for i := range 8 {
		ds = append(ds, MemberDrive{ID: fmt.Sprintf("d%d", i), Class: "local"})
	}
	if err := s.RegisterNode(ctx, NodeInfo{Name: "a", Drives: ds}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetErasure(ctx, placement.Policy{Data: 4, Parity: 2}, 0); err != nil {
		t.Fatal(err)
	}
	before := s.Map()
	if err := s.RegisterNode(ctx, NodeInfo{Name: "b", Drives: []MemberDrive{{ID: "d8", Class: "local"}}}); err != nil {
		t.Fatal(err)
	}
	after := s.Map()
	diff := func(next *placement.Map) (moved, pgs int) {
		for pg := range uint32(next.PGCount()) {
			changed := false
			for i, id := range next.Set(pg) {
				if before.Set(pg)[i] != id {
					moved++
					changed = true
				}
			}
			if changed {
				pgs++
			}
		}
		return moved, pgs
	}
	moved, pgsChanged := diff(after)
	reshuffle, err := placement.NewMap(after.Drives, after.Policy, after.PGCount(), after.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	movedNew, _ := diff(reshuffle)
	entries := after.PGCount() * after.Policy.SetSize()
	ideal := float64(entries) / float64(len(after.Drives))
	t.Logf("join of a 9th drive under 4+2: %d of %d entries moved (ideal %.1f, %.2fx; a reshuffle by NewMap: %d), %d of %d PGs changed",
		moved, entries, ideal, float64(moved)/ideal, movedNew, pgsChanged, after.PGCount())
	// The first Plan after a NewMap map also evens out NewMap's loads,
	// which costs more than the ideal here (the simulation of 1,000
	// nodes, where maps are Plan's throughout, moves 0.96x to 1.01x).
	if float64(moved) > 1.6*ideal || moved*2 > movedNew {
		t.Fatalf("%d entries moved, want at most 1.6x the ideal %.1f and under half of a reshuffle (%d)", moved, ideal, movedNew)
	}
}

// TestDefaultWidthFollowsDrives: without an operator's choice the stripe
// width follows the drive count (placement.DefaultWidth): none while one
// set spans the drives, then as many PGs as disjoint sets fit: 36 drives
// at the default 12+4 stripe over 2 PGs, 48 over 3.
func TestDefaultWidthFollowsDrives(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for i, want := range []int{0, 0, 2, 3} { // after 12, 24, 36, 48 drives
		var ds []MemberDrive
		for j := range 12 {
			ds = append(ds, MemberDrive{ID: fmt.Sprintf("n%d-d%d", i, j), Class: "local"})
		}
		if err := s.RegisterNode(ctx, NodeInfo{Name: fmt.Sprintf("n%d", i), Drives: ds}); err != nil {
			t.Fatal(err)
		}
		if m := s.Map(); len(m.Drives) != 12*(i+1) || m.Chosen || m.Width != want {
			t.Fatalf("%d drives: width %d (chosen %v), want %d", len(m.Drives), m.Width, m.Chosen, want)
		}
	}
}

// TestSetWidthAlone: `set-erasure --width W` without K+M (probe F8 of
// session 17: refused) keeps the policy, the default one included, and
// makes a new map epoch whose width survives joins; width 0 returns to
// placement.DefaultWidth, which then follows the drive count; a width
// out of range, or no change at all, is refused without a new map.
func TestSetWidthAlone(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	join := func(name string, drives int) {
		t.Helper()
		var ds []MemberDrive
		for i := range drives {
			ds = append(ds, MemberDrive{ID: fmt.Sprintf("%s-d%d", name, i), Class: "local"})
		}
		if err := s.RegisterNode(ctx, NodeInfo{Name: name, Drives: ds}); err != nil {
			t.Fatal(err)
		}
	}
	join("a", 6)
	before := s.Map()
	m, err := s.SetWidth(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	if m.Epoch != before.Epoch+1 || m.Policy != before.Policy || m.Chosen || m.Width != 8 || !m.WidthSet() {
		t.Fatalf("after --width 8: epoch %d %s chosen %v width %d set %v; want epoch %d, %s still by default, width 8 set",
			m.Epoch, m.Policy, m.Chosen, m.Width, m.WidthSet(), before.Epoch+1, before.Policy)
	}
	if st := MapStatusOf(m); st.PolicySet || !st.WidthSet || st.Width != 8 {
		t.Fatalf("status %+v, want the default policy and width 8 set by the operator", st)
	}
	if again, err := s.SetWidth(ctx, 8); err != nil || again.Epoch != m.Epoch {
		t.Fatalf("--width 8 again: epoch %d, %v; want no new epoch", again.Epoch, err)
	}
	// A join: the default policy follows the drive count, the width stays.
	join("b", 2)
	want, _ := placement.DefaultPolicy(8)
	if m := s.Map(); m.Policy != want || m.Chosen || m.Width != 8 || !m.WidthSet() {
		t.Fatalf("after a join to 8 drives: %s chosen %v width %d set %v; want %s by default, width 8 set", m.Policy, m.Chosen, m.Width, m.WidthSet(), want)
	}
	// A policy without a width keeps the operator's width.
	join("c", 1)
	if m, err := s.SetErasure(ctx, placement.Policy{Data: 2, Parity: 1}, 0); err != nil || m.Width != 8 || !m.Chosen {
		t.Fatalf("set-erasure 2+1 after --width 8: %v, %v; want width 8 kept", m, err)
	}
	// Width 0: back to the default (9 drives / 3 = 3), which follows joins.
	prev := s.Map().Epoch
	if m, err := s.SetWidth(ctx, 0); err != nil || m.Epoch != prev+1 || m.Width != 3 || m.WidthSet() || m.Policy != (placement.Policy{Data: 2, Parity: 1}) {
		t.Fatalf("--width auto: %+v, %v; want epoch %d, 2+1 kept, width 3 by default", m, err, prev+1)
	}
	join("d", 3)
	if m := s.Map(); m.Width != 4 || m.WidthSet() {
		t.Fatalf("after a join to 12 drives: width %d set %v, want 4 by default", m.Width, m.WidthSet())
	}
	for _, c := range []ErasureChange{{Width: placement.MaxWidth + 1}, {Width: -1}, {}, {Width: 4, DefaultWidth: true}} {
		before := s.Map()
		if _, err := s.ChangeErasure(ctx, c); !errors.Is(err, ErrRefused) {
			t.Errorf("ChangeErasure(%+v) = %v, want ErrRefused", c, err)
		}
		if s.Map() != before {
			t.Errorf("a refused ChangeErasure(%+v) made map epoch %d", c, s.Map().Epoch)
		}
	}
}

// TestLegacyMapWidth: a map written before Map.WidthBy keeps its meaning:
// the width an operator chose with a policy is kept, a default map's
// follows the drive count, and neither makes a new epoch for the field.
func TestLegacyMapWidth(t *testing.T) {
	for _, tc := range []struct {
		chosen bool
		want   bool
	}{{true, true}, {false, false}} {
		m := &placement.Map{Chosen: tc.chosen, Width: 4}
		if got := m.WidthSet(); got != tc.want {
			t.Errorf("legacy map chosen %v: WidthSet %v, want %v", tc.chosen, got, tc.want)
		}
	}
	s := newStore(t)
	ctx := t.Context()
	var ds []MemberDrive
	for i := range 6 {
		ds = append(ds, MemberDrive{ID: fmt.Sprintf("d%d", i), Class: "local"})
	}
	if err := s.RegisterNode(ctx, NodeInfo{Name: "a", Drives: ds}); err != nil {
		t.Fatal(err)
	}
	// Make the current map look like an older version's.
	cur := *s.Map()
	cur.WidthBy = placement.WidthLegacy
	cur.Epoch++
	if err := s.applyCmd(ctx, cmdSetMap, setMapCmd{Map: &cur}); err != nil {
		t.Fatal(err)
	}
	if err := s.updateMap(ctx); err != nil {
		t.Fatal(err)
	}
	if m := s.Map(); m.Epoch != cur.Epoch {
		t.Fatalf("a legacy default map was replanned to epoch %d (width_by %q) with nothing changed", m.Epoch, m.WidthBy)
	}
}
