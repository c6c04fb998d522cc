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
