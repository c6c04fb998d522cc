package placement

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Plan returns the map that follows cur when the cluster's drives become
// drives: same policy and PG count, the given epoch, and as few (PG, slot)
// entries changed as keep the map valid and balanced. Unlike [NewMap], the
// result depends on cur (the map's history), so it is computed once (by
// the Raft leader) and shipped, not recomputed by every node.
//
// Plan works in four steps, each keeping every surviving drive in its slot:
//
//  1. Entries of drives no longer in drives become holes.
//  2. Where a set breaks the failure-domain caps of the new drive set (as
//     in the package comment: a zone or node added, say), the excess
//     entries move to another drive if one meets the caps.
//  3. Each hole is filled with the least-loaded drive that keeps the set
//     within the caps (raised by one at a time only when no drive can).
//  4. Every drive gets a target load: the mean, or where the zone caps
//     fix a zone's share of every set (4 zones under 12+4 hold exactly 4
//     entries of each set), the zone's share over its drives. Entries then
//     move one at a time, within the caps, from drives above the ceiling of
//     their target to drives below its floor (surplus first, so that it
//     fills a joining drive's deficit), and, if the node caps still keep a
//     drive out of range, from any drive to one at least two entries
//     emptier relative to its target.
//
// A joining drive therefore takes about its fair share of entries, from
// the fullest drives, and a leaving drive's entries spread over the
// emptiest; little else moves (BenchmarkPlacementSim: 0.96x to 1.01x the
// ideal at 1,000 nodes, every drive within 4% of the mean). The load of a drive is its number of
// entries: every entry of a PG holds the same bytes, and PGs hold about the
// same bytes once they hold many artifacts. Drives of different capacity
// are not weighted yet.
//
// cur must be valid; drives must have unique non-empty IDs and at least
// cur.Policy.SetSize() of them. To change the policy build a new map with
// NewMap (that re-encodes everything anyway); to change the PG count, Split
// first.
func Plan(cur *Map, drives []Drive, epoch Epoch) (*Map, error) {
	if err := cur.Validate(); err != nil {
		return nil, fmt.Errorf("plan from epoch %d: %w", cur.Epoch, err)
	}
	sorted := slices.Clone(drives)
	slices.SortFunc(sorted, func(a, b Drive) int { return cmp.Compare(a.ID, b.ID) })
	if err := checkDrives(sorted); err != nil {
		return nil, err
	}
	size := cur.Policy.SetSize()
	if len(sorted) < size {
		return nil, fmt.Errorf("%w: policy %s needs %d drives, have %d", ErrTooFewDrives, cur.Policy, size, len(sorted))
	}
	p := newPlanner(cur, sorted)
	p.repairCaps()
	p.fillHoles()
	p.balance(epoch)

	pgs := make([][]DriveID, len(p.sets))
	slots := make([]DriveID, len(p.sets)*size)
	for pg, set := range p.sets {
		ids := slots[pg*size : pg*size : (pg+1)*size]
		for _, d := range set {
			ids = append(ids, sorted[d].ID)
		}
		pgs[pg] = ids
	}
	return &Map{Epoch: epoch, Policy: cur.Policy, Drives: sorted, PGs: pgs}, nil
}

// Move is one (PG, slot) entry that changed drive between two maps.
type Move struct {
	PG   uint32  `json:"pg"`
	Slot int     `json:"slot"`
	From DriveID `json:"from"`
	To   DriveID `json:"to"`
}

// Diff returns the entries of next whose drive differs from old's, in PG
// and slot order. next may have more PGs than old (after a Split): PG c of
// next is compared with its ancestor in old. The maps must share the
// policy's set size and old's PG count must not exceed next's.
func Diff(old, next *Map) ([]Move, error) {
	n := old.PGCount()
	if next.PGCount() < n || old.Policy.SetSize() != next.Policy.SetSize() {
		return nil, fmt.Errorf("%w: diff of %d PGs of %s against %d PGs of %s", ErrInvalidMap, n, old.Policy, next.PGCount(), next.Policy)
	}
	var moves []Move
	for c, set := range next.PGs {
		was := old.PGs[AncestorPG(uint32(c), n)]
		for i, id := range set {
			if was[i] != id {
				moves = append(moves, Move{PG: uint32(c), Slot: i, From: was[i], To: id})
			}
		}
	}
	return moves, nil
}

// planner holds Plan's working state: the sets as drive indices (-1 for a
// hole) and each drive's load, with the drives bucketed by load so that the
// least-loaded drives are found without a scan of all of them.
type planner struct {
	sel  *selector // node and zone of each drive, the caps
	sets [][]int   // per PG, drive index per slot, -1 = hole
	load []int     // entries per drive
	// byLoad[l] lists the drives with load l; at[d] is d's index in it.
	byLoad [][]int
	at     []int
	// Each drive's target load and the range around it balance aims for.
	target []float64
	lo, hi []int
}

func newPlanner(cur *Map, drives []Drive) *planner {
	size := cur.Policy.SetSize()
	p := &planner{
		sel:  newSelector(drives, size),
		sets: make([][]int, cur.PGCount()),
		load: make([]int, len(drives)),
		at:   make([]int, len(drives)),
	}
	index := make(map[DriveID]int, len(drives))
	for i, d := range drives {
		index[d.ID] = i
	}
	flat := make([]int, cur.PGCount()*size)
	for pg, ids := range cur.PGs {
		set := flat[pg*size : (pg+1)*size]
		for i, id := range ids {
			d, ok := index[id]
			if !ok {
				d = -1
			} else {
				p.load[d]++
			}
			set[i] = d
		}
		p.sets[pg] = set
	}
	for d, l := range p.load {
		p.push(d, l)
	}
	return p
}

func (p *planner) push(d, l int) {
	for len(p.byLoad) <= l {
		p.byLoad = append(p.byLoad, nil)
	}
	p.at[d] = len(p.byLoad[l])
	p.byLoad[l] = append(p.byLoad[l], d)
}

func (p *planner) setLoad(d, l int) {
	b := p.byLoad[p.load[d]]
	i, last := p.at[d], b[len(b)-1]
	b[i], p.at[last] = last, i
	p.byLoad[p.load[d]] = b[:len(b)-1]
	p.load[d] = l
	p.push(d, l)
}

// put makes d the drive of (pg, slot).
func (p *planner) put(pg, slot, d int) {
	if old := p.sets[pg][slot]; old >= 0 {
		p.setLoad(old, p.load[old]-1)
	}
	p.sets[pg][slot] = d
	p.setLoad(d, p.load[d]+1)
}

// fits reports whether drive d may take (pg, slot): it is not elsewhere in
// the set and its node and zone stay within the caps raised by relax,
// counting the set without the slot's current drive.
func (p *planner) fits(pg, slot, d, relax int) bool {
	s := p.sel
	node, zone := s.node[d], s.zone[d]
	onNode, inZone := 0, 0
	for i, e := range p.sets[pg] {
		if e < 0 || i == slot {
			continue
		}
		if e == d {
			return false
		}
		if s.node[e] == node {
			onNode++
		}
		if zone >= 0 && s.zone[e] == zone {
			inZone++
		}
	}
	return onNode < s.nodeCap+relax && (zone < 0 || inZone < s.zoneCap+relax)
}

// receiver returns a least-loaded drive with load below limit that fits
// (pg, slot) under relax and that want accepts (nil: any), or -1 if there
// is none. Among drives of equal load it takes the first that fits from a
// position in the load's list drawn from (pg, slot), so that equal drives
// share the entries without the cost of scoring them all.
func (p *planner) receiver(pg, slot, limit, relax int, want func(r int) bool) int {
	h := mix64(uint64(pg)<<16 | uint64(slot))
	for l := 0; l < limit && l < len(p.byLoad); l++ {
		b := p.byLoad[l]
		if len(b) == 0 {
			continue
		}
		off := int(h % uint64(len(b)))
		for i := range b {
			d := b[(off+i)%len(b)]
			if (want == nil || want(d)) && p.fits(pg, slot, d, relax) {
				return d
			}
		}
	}
	return -1
}

// overCap reports whether the drive in (pg, slot) puts its node or zone
// over the unrelaxed caps.
func (p *planner) overCap(pg, slot int) bool {
	s := p.sel
	d := p.sets[pg][slot]
	onNode, inZone := 0, 0
	for _, e := range p.sets[pg] {
		if e < 0 {
			continue
		}
		if s.node[e] == s.node[d] {
			onNode++
		}
		if s.zone[d] >= 0 && s.zone[e] == s.zone[d] {
			inZone++
		}
	}
	return onNode > s.nodeCap || (s.zone[d] >= 0 && inZone > s.zoneCap)
}

func (p *planner) repairCaps() {
	for pg, set := range p.sets {
		for slot := len(set) - 1; slot >= 0; slot-- {
			if set[slot] < 0 || !p.overCap(pg, slot) {
				continue
			}
			if r := p.receiver(pg, slot, len(p.byLoad)+1, 0, nil); r >= 0 {
				p.put(pg, slot, r)
			}
		}
	}
}

func (p *planner) fillHoles() {
	for pg, set := range p.sets {
		for slot, d := range set {
			if d >= 0 {
				continue
			}
			// Once relax reaches the set size every drive outside the set
			// fits, and there are at least set size drives.
			for relax := 0; ; relax++ {
				if r := p.receiver(pg, slot, len(p.byLoad)+1, relax, nil); r >= 0 {
					p.put(pg, slot, r)
					break
				}
			}
		}
	}
}

// targets sets each drive's target load: the entries of its zone spread
// evenly over the zone's drives. A zone's entries are in proportion to its
// drives, except that the caps bound them: a zone holds at most zoneCap
// and at least setSize - (zones-1)*zoneCap entries of every set (with 4
// zones and 12+4 sets exactly 4, however many drives each zone has).
// Drives without a zone form one group without bounds.
func (p *planner) targets() {
	s := p.sel
	total := float64(len(p.sets) * s.size)
	type group struct {
		drives  int
		lo, hi  float64 // bounds on the group's entries
		entries float64
		bounded bool
	}
	zones := len(s.zoneUsed)
	groups := make([]group, zones+1) // the last: drives without a zone
	for d := range p.load {
		g := s.zone[d]
		if g < 0 {
			g = zones
		}
		groups[g].drives++
	}
	zmin := 0
	if groups[zones].drives == 0 {
		zmin = max(0, s.size-(zones-1)*s.zoneCap)
	}
	for g := range groups {
		groups[g].lo, groups[g].hi = float64(len(p.sets)*zmin), float64(len(p.sets)*s.zoneCap)
		if g == zones {
			groups[g].lo, groups[g].hi = 0, total
		}
	}
	// Water-fill: share the entries in proportion to drives, fix the
	// groups that leave their bounds at the bound, and share the rest again.
	for {
		rest, weight := total, 0
		for _, g := range groups {
			if g.bounded {
				rest -= g.entries
			} else {
				weight += g.drives
			}
		}
		changed := false
		for i := range groups {
			g := &groups[i]
			if g.bounded || g.drives == 0 {
				continue
			}
			g.entries = rest * float64(g.drives) / float64(weight)
			if g.entries > g.hi || g.entries < g.lo {
				g.entries, g.bounded, changed = min(max(g.entries, g.lo), g.hi), true, true
			}
		}
		if !changed {
			break
		}
	}
	p.lo, p.hi = make([]int, len(p.load)), make([]int, len(p.load))
	p.target = make([]float64, len(p.load))
	for d := range p.load {
		g := s.zone[d]
		if g < 0 {
			g = zones
		}
		t := groups[g].entries / float64(groups[g].drives)
		p.target[d], p.lo[d], p.hi[d] = t, int(t), int(t)
		if float64(int(t)) < t {
			p.hi[d]++
		}
	}
}

// balance moves entries from drives above their target range (see
// targets) to drives below it, then from drives above their target's floor
// to drives still below theirs. PGs are visited in an order drawn from the
// epoch, so that the entries a joining drive takes come from PGs all over
// the map. When the node caps keep that from balancing (fewer nodes than a
// set needs, say), a last phase moves entries from any drive to one at
// least two entries emptier relative to its target that the caps allow.
// Every move lowers the drives' total distance from their targets, so the
// loops end; a bound on the sweeps keeps them short.
func (p *planner) balance(epoch Epoch) {
	p.targets()
	order := make([]int, len(p.sets))
	keys := make([]uint64, len(p.sets))
	for pg := range order {
		order[pg] = pg
		keys[pg] = mix64(uint64(pg) ^ uint64(epoch)<<32)
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
	maxLo, maxHi, maxTarget := 0, 0, 0.0
	for d := range p.load {
		maxLo, maxHi, maxTarget = max(maxLo, p.lo[d]), max(maxHi, p.hi[d]), max(maxTarget, p.target[d])
	}
	below := func(r int) bool { return p.load[r] < p.lo[r] }
	room := func(r int) bool { return p.load[r] < p.hi[r] }
	balanced := func() bool {
		for d, l := range p.load {
			if l < p.lo[d] || l > p.hi[d] {
				return false
			}
		}
		return true
	}
	// Surplus entries go first to drives below their range (a joining
	// drive), then to any drive with room; only then do drives within
	// their range give to drives still below theirs. In that order a
	// drive's surplus fills a joining drive's deficit before anything else
	// moves, so the moves are about max(surplus, deficit).
	p.sweep(order, func(d int) (func(int) bool, int) { return cond(p.load[d] > p.hi[d], below), maxLo })
	p.sweep(order, func(d int) (func(int) bool, int) { return cond(p.load[d] > p.hi[d], room), maxHi })
	p.sweep(order, func(d int) (func(int) bool, int) { return cond(p.load[d] > p.lo[d], below), maxLo })
	if balanced() {
		return
	}
	minExcess := math.Inf(1)
	for d, l := range p.load {
		minExcess = min(minExcess, float64(l)-p.target[d])
	}
	// minExcess only grows: receivers gain, and a donor stays above it.
	p.sweep(order, func(d int) (func(int) bool, int) {
		excess := float64(p.load[d]) - p.target[d]
		if excess < minExcess+2 {
			return nil, 0
		}
		return func(r int) bool { return float64(p.load[r])-p.target[r] <= excess-2 }, int(excess+maxTarget) - 1
	})
}

// cond returns f if c holds, else nil.
func cond(c bool, f func(int) bool) func(int) bool {
	if c {
		return f
	}
	return nil
}

// sweep visits every entry in order and moves it to the least-loaded drive
// with a load below limit that fits and that accept accepts, where accept
// and limit are want(the entry's drive), until a sweep moves nothing. A nil
// accept leaves the entry where it is; so does a limit no larger than the
// smallest load.
func (p *planner) sweep(order []int, want func(d int) (accept func(r int) bool, limit int)) {
	for range 64 {
		moved := 0
		for _, pg := range order {
			for slot, d := range p.sets[pg] {
				accept, limit := want(d)
				if accept == nil || limit <= p.minLoad() {
					continue
				}
				if r := p.receiver(pg, slot, limit, 0, accept); r >= 0 {
					p.put(pg, slot, r)
					moved++
				}
			}
		}
		if moved == 0 {
			return
		}
	}
}

func (p *planner) minLoad() int {
	for l, b := range p.byLoad {
		if len(b) > 0 {
			return l
		}
	}
	return 0
}

// mix64 is the SplitMix64 finalizer, a bijective 64-bit mixer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
