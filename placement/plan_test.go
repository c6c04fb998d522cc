package placement

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
)

// loads returns the number of (PG, slot) entries of every drive of m.
func loads(m *Map) map[DriveID]int {
	l := make(map[DriveID]int, len(m.Drives))
	for _, d := range m.Drives {
		l[d.ID] = 0
	}
	for _, set := range m.PGs {
		for _, id := range set {
			l[id]++
		}
	}
	return l
}

// spread returns the smallest and largest drive load of m and the largest
// relative deviation from the mean, max |load - mean| / mean.
func spread(m *Map) (lo, hi int, dev float64) {
	mean := float64(m.PGCount()*m.Policy.SetSize()) / float64(len(m.Drives))
	lo = math.MaxInt
	for _, l := range loads(m) {
		lo, hi = min(lo, l), max(hi, l)
		dev = max(dev, math.Abs(float64(l)-mean)/mean)
	}
	return lo, hi, dev
}

// capViolations counts the sets of m with more drives on one node, or in
// one zone, than the unrelaxed caps of m's drives allow.
func capViolations(m *Map) int {
	s := newSelector(m.Drives, m.Policy.SetSize())
	index := make(map[DriveID]int, len(m.Drives))
	for i, d := range m.Drives {
		index[d.ID] = i
	}
	bad := 0
	for _, set := range m.PGs {
		perNode, perZone := map[int]int{}, map[int]int{}
		over := false
		for _, id := range set {
			i := index[id]
			perNode[s.node[i]]++
			over = over || perNode[s.node[i]] > s.nodeCap
			if z := s.zone[i]; z >= 0 {
				perZone[z]++
				over = over || perZone[z] > s.zoneCap
			}
		}
		if over {
			bad++
		}
	}
	return bad
}

// checkBalanced fails t unless every drive of m holds floor or ceil of the
// mean number of entries, every set meets the caps and m is valid.
func checkBalanced(t *testing.T, m *Map) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	total := m.PGCount() * m.Policy.SetSize()
	lo, hi, dev := spread(m)
	if lo < total/len(m.Drives) || hi > ceilDiv(total, len(m.Drives)) {
		t.Errorf("drive loads %d..%d (max deviation %.1f%%), want %d..%d", lo, hi, 100*dev, total/len(m.Drives), ceilDiv(total, len(m.Drives)))
	}
	if n := capViolations(m); n > 0 {
		t.Errorf("%d sets break the failure-domain caps", n)
	}
}

// movedFraction returns the share of (PG, slot) entries that changed drive
// from old to next. The moves that the change forces are those for which
// forced is true (to a joining drive, from a leaving one); the others only
// even out the loads, and movedFraction fails t if they are more than 10%
// of all moves.
func movedFraction(t *testing.T, old, next *Map, forced func(Move) bool) float64 {
	t.Helper()
	moves, err := Diff(old, next)
	if err != nil {
		t.Fatal(err)
	}
	other := 0
	for _, mv := range moves {
		if !forced(mv) {
			other++
		}
	}
	if other*10 > len(moves) {
		t.Errorf("%d of %d moves were not forced by the change", other, len(moves))
	}
	return float64(len(moves)) / float64(next.PGCount()*next.Policy.SetSize())
}

func mustPlan(t *testing.T, cur *Map, drives []Drive, epoch Epoch) *Map {
	t.Helper()
	m, err := Plan(cur, drives, epoch)
	if err != nil {
		t.Fatalf("Plan(epoch %d → %d, %d drives): %v", cur.Epoch, epoch, len(drives), err)
	}
	return m
}

func nodeDrives(zone string, node NodeID, n int) []Drive {
	ds := make([]Drive, n)
	for i := range ds {
		ds[i] = Drive{ID: DriveID(fmt.Sprintf("%s-d%d", node, i)), Node: node, Zone: zone}
	}
	return ds
}

// TestPlanScenarios is the small-scale version of the placement
// simulation (BenchmarkPlacementSim runs 1,000 nodes × 12 drives): a
// balanced map, then one node joining, one leaving and one zone failing,
// each moving at most 1.1x the ideal share of entries, only to or from the
// drives concerned, and leaving the map balanced within the caps.
func TestPlanScenarios(t *testing.T) {
	tests := []struct {
		name                       string
		zones, nodes, drivesOfNode int
		p                          Policy
	}{
		{"5 zones x 8 nodes x 4, 12+4", 5, 8, 4, Policy{12, 4}},
		{"4 zones x 6 nodes x 2, 4+2", 4, 6, 2, Policy{4, 2}},
		{"no zones, 24 nodes x 3, 8+4", 0, 24, 3, Policy{8, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drives := cluster(tt.zones, tt.nodes, tt.drivesOfNode)
			pgs := PGCountFor(len(drives), tt.p.SetSize())
			base := mustPlan(t, mustNewMap(t, drives, tt.p, pgs), drives, 2)
			checkBalanced(t, base)
			if again := mustPlan(t, base, drives, 3); !slices.EqualFunc(again.PGs, base.PGs, slices.Equal) {
				t.Errorf("Plan of a balanced map over the same drives moved entries")
			}

			zone := ""
			if tt.zones > 0 {
				zone = "z1"
			}
			joined := nodeDrives(zone, "new", tt.drivesOfNode)
			join := mustPlan(t, base, append(slices.Clone(drives), joined...), 3)
			checkBalanced(t, join)
			got := movedFraction(t, base, join, func(mv Move) bool { return join.drive(mv.To).Node == "new" })
			ideal := float64(len(joined)) / float64(len(drives)+len(joined))
			t.Logf("join: moved %.4f of entries, ideal %.4f (%.2fx)", got, ideal, got/ideal)
			if got > 1.1*ideal || got < 0.8*ideal {
				t.Errorf("join moved %.4f of entries, want within [0.8, 1.1] x ideal %.4f", got, ideal)
			}

			gone := drives[0].Node
			left := slices.DeleteFunc(slices.Clone(drives), func(d Drive) bool { return d.Node == gone })
			leave := mustPlan(t, base, left, 3)
			checkBalanced(t, leave)
			got = movedFraction(t, base, leave, func(mv Move) bool { return base.drive(mv.From).Node == gone })
			ideal = float64(tt.drivesOfNode) / float64(len(drives))
			t.Logf("leave: moved %.4f of entries, ideal %.4f (%.2fx)", got, ideal, got/ideal)
			if got > 1.1*ideal {
				t.Errorf("leave moved %.4f of entries, want <= 1.1 x ideal %.4f", got, ideal)
			}

			if tt.zones == 0 {
				return
			}
			alive := slices.DeleteFunc(slices.Clone(drives), func(d Drive) bool { return d.Zone == "z0" })
			fail := mustPlan(t, base, alive, 3)
			checkBalanced(t, fail)
			got = movedFraction(t, base, fail, func(mv Move) bool { return base.drive(mv.From).Zone == "z0" })
			ideal = 1 / float64(tt.zones)
			t.Logf("zone failure: moved %.4f of entries, ideal %.4f (%.2fx)", got, ideal, got/ideal)
			if got > 1.1*ideal {
				t.Errorf("zone failure moved %.4f of entries, want <= 1.1 x ideal %.4f", got, ideal)
			}
		})
	}
}

// drive returns the drive id of m, for tests.
func (m *Map) drive(id DriveID) Drive {
	d, _ := m.Drive(id)
	return d
}

func TestPlanRepairsCaps(t *testing.T) {
	// 8 nodes without zones, then the same nodes split over 4 zones: every
	// set of 4+2 must drop to at most 2 drives per zone, moving only what
	// breaks the new cap.
	p := Policy{4, 2}
	flat := cluster(0, 8, 2)
	base := mustPlan(t, mustNewMap(t, flat, p, DefaultPGCount), flat, 2)
	zoned := slices.Clone(flat)
	for i := range zoned {
		zoned[i].Zone = fmt.Sprintf("z%d", i/8)
	}
	m := mustPlan(t, base, zoned, 3)
	checkBalanced(t, m)
	moves, err := Diff(base, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) == 0 || len(moves) > base.PGCount()*p.SetSize()/2 {
		t.Errorf("%d moves, want some and at most half the entries", len(moves))
	}
}

func TestPlanErrors(t *testing.T) {
	drives := cluster(0, 4, 2)
	base := mustNewMap(t, drives, Policy{4, 2}, DefaultPGCount)
	if _, err := Plan(base, drives[:5], 2); !errors.Is(err, ErrTooFewDrives) {
		t.Errorf("Plan with 5 drives for 4+2: %v, want ErrTooFewDrives", err)
	}
	if _, err := Plan(base, append(slices.Clone(drives), drives[0]), 2); !errors.Is(err, ErrInvalidMap) {
		t.Errorf("Plan with a duplicate drive: %v, want ErrInvalidMap", err)
	}
	if _, err := Plan(&Map{Policy: Policy{4, 2}}, drives, 2); !errors.Is(err, ErrInvalidMap) {
		t.Errorf("Plan from an empty map: %v, want ErrInvalidMap", err)
	}
}

func TestPGCountFor(t *testing.T) {
	tests := []struct{ drives, size, want int }{
		{1, 1, DefaultPGCount},
		{6, 6, DefaultPGCount},
		{16, 16, DefaultPGCount},
		{204, 16, DefaultPGCount},
		{205, 16, 512},
		{12000, 16, 16384},
		{1 << 30, 16, MaxPGCount},
	}
	for _, tt := range tests {
		if got := PGCountFor(tt.drives, tt.size); got != tt.want {
			t.Errorf("PGCountFor(%d, %d) = %d, want %d", tt.drives, tt.size, got, tt.want)
		}
	}
}

// TestSplit checks that a split keeps every key on the drives that held
// it (no entry moves), and that a later Plan moves children one entry at a
// time rather than reshuffling.
func TestSplit(t *testing.T) {
	drives := cluster(4, 3, 2)
	p := Policy{4, 2}
	m := mustPlan(t, mustNewMap(t, drives, p, 64), drives, 2)
	s, err := m.Split(256, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		key := fmt.Sprintf("key-%d", i)
		if a, b := m.Set(m.PGOf("t", "c", key)), s.Set(s.PGOf("t", "c", key)); !slices.Equal(a, b) {
			t.Fatalf("%s: set %v before the split, %v after", key, a, b)
		}
	}
	if moves, err := Diff(m, s); err != nil || len(moves) != 0 {
		t.Fatalf("Diff across the split = %d moves, %v; want none", len(moves), err)
	}
	checkBalanced(t, s)

	// A join after the split moves about the ideal share, now in units of
	// the smaller child PGs.
	joined := append(slices.Clone(drives), nodeDrives("z0", "new", 2)...)
	j := mustPlan(t, s, joined, 4)
	checkBalanced(t, j)
	got := movedFraction(t, s, j, func(mv Move) bool { return j.drive(mv.To).Node == "new" })
	if ideal := 2.0 / float64(len(joined)); got > 1.1*ideal {
		t.Errorf("join after split moved %.4f, want <= 1.1 x %.4f", got, ideal)
	}

	for _, n := range []int{32, 100, 2 * MaxPGCount} {
		if _, err := m.Split(n, 3); !errors.Is(err, ErrInvalidMap) {
			t.Errorf("Split(%d) of a 64-PG map: %v, want ErrInvalidMap", n, err)
		}
	}
	if _, err := Diff(s, m); !errors.Is(err, ErrInvalidMap) {
		t.Errorf("Diff from more PGs to fewer: %v, want ErrInvalidMap", err)
	}
}

// TestNewMapPrefixWalk checks that the prefix walk NewMap uses for many
// drives gives the same sets as scoring and sorting every drive.
func TestNewMapPrefixWalk(t *testing.T) {
	// One node holding most drives forces the relaxed fallback.
	lopsided := cluster(0, 1, 120)
	for i := range 3 {
		lopsided = append(lopsided, Drive{ID: DriveID(fmt.Sprintf("small-%d", i)), Node: NodeID(fmt.Sprintf("small-%d", i))})
	}
	tests := []struct {
		name   string
		drives []Drive
		p      Policy
	}{
		{"4 zones x 12 nodes x 3, 12+4", cluster(4, 12, 3), Policy{12, 4}},
		{"no zones, 60 nodes x 2, 4+2", cluster(0, 60, 2), Policy{4, 2}},
		{"3 zones x 40 nodes, 6+3", cluster(3, 40, 1), Policy{6, 3}},
		{"one node with 120 drives, 3 with one, 8+4", lopsided, Policy{8, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustNewMap(t, tt.drives, tt.p, DefaultPGCount)
			s := newSelector(m.Drives, tt.p.SetSize())
			if len(m.Drives) <= 2*topFactor*tt.p.SetSize() {
				t.Fatalf("%d drives do not take the prefix walk", len(m.Drives))
			}
			for pg := range m.PGCount() {
				if want := s.pickAll(uint32(pg), nil); !slices.Equal(m.Set(uint32(pg)), want) {
					t.Fatalf("pg %d: %v, full walk %v", pg, m.Set(uint32(pg)), want)
				}
			}
		})
	}
}

// TestPlanTightZones covers caps that forbid a global balance: with 4
// zones and 12+4 sets every set holds exactly 4 drives of each zone, so a
// zone's drives share a quarter of the entries however many there are. A
// node joining one zone takes entries only from that zone, leaves every
// zone balanced within itself, and moves no more than the ideal share.
func TestPlanTightZones(t *testing.T) {
	drives := cluster(4, 4, 2)
	base := mustPlan(t, mustNewMap(t, drives, Policy{12, 4}, DefaultPGCount), drives, 2)
	checkBalanced(t, base)
	joined := append(slices.Clone(drives), nodeDrives("z1", "new", 2)...)
	m := mustPlan(t, base, joined, 3)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if n := capViolations(m); n > 0 {
		t.Errorf("%d sets break the caps", n)
	}
	got := movedFraction(t, base, m, func(mv Move) bool { return m.drive(mv.To).Node == "new" })
	if ideal := 2.0 / float64(len(joined)); got > 1.1*ideal || got == 0 {
		t.Errorf("join moved %.4f of entries, want (0, 1.1 x %.4f]", got, ideal)
	}
	perZone := map[string][]int{}
	for id, l := range loads(m) {
		z := m.drive(id).Zone
		perZone[z] = append(perZone[z], l)
	}
	for z, ls := range perZone {
		if slices.Max(ls)-slices.Min(ls) > 1 {
			t.Errorf("zone %s: loads %v, want within one of each other", z, ls)
		}
	}
}
