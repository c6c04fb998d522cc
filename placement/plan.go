package placement

import (
	"cmp"
	"fmt"
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
//     within the caps (raised by one at a time only when no drive can),
//     ties broken by rendezvous score.
//  4. While some drive holds more than ceil(mean) entries, or less than
//     floor(mean), entries move one at a time from a fuller drive to an
//     emptier one (at least two entries apart) that keeps the set within
//     the caps.
//
// A joining drive therefore takes about its fair share of entries, all from
// the fullest drives, and a leaving drive's entries spread over the
// emptiest; nothing else moves. The load of a drive is its number of
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
	PG       uint32
	Slot     int
	From, To DriveID
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

// receiver returns the least-loaded drive with load below limit that fits
// (pg, slot) under relax, ties broken by the highest score(pg, drive), or
// -1 if there is none.
func (p *planner) receiver(pg, slot, limit, relax int) int {
	for l := 0; l < limit && l < len(p.byLoad); l++ {
		best, bestScore := -1, uint64(0)
		for _, d := range p.byLoad[l] {
			if !p.fits(pg, slot, d, relax) {
				continue
			}
			sc := score(uint32(pg), p.sel.drives[d].ID)
			if best < 0 || sc > bestScore || sc == bestScore && d < best {
				best, bestScore = d, sc
			}
		}
		if best >= 0 {
			return best
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
			if r := p.receiver(pg, slot, len(p.byLoad)+1, 0); r >= 0 {
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
				if r := p.receiver(pg, slot, len(p.byLoad)+1, relax); r >= 0 {
					p.put(pg, slot, r)
					break
				}
			}
		}
	}
}

// balance moves entries from drives above ceil(mean) load, and (while a
// drive is below floor(mean)) from drives above floor(mean), to emptier
// drives. When the caps keep that from reaching
// [floor(mean), ceil(mean)] (a zone with fewer drives than its share of
// every set needs, say), a second phase moves entries from any drive to
// one at least two entries emptier that the caps allow. PGs are visited in
// an order drawn from the epoch, so that the entries a joining drive takes
// come from PGs all over the map. Every move lowers the sum of squared
// loads, so the loops end; a bound on the sweeps keeps them short.
func (p *planner) balance(epoch Epoch) {
	total := 0
	for _, l := range p.load {
		total += l
	}
	lo, hi := total/len(p.load), ceilDiv(total, len(p.load))
	order := make([]int, len(p.sets))
	keys := make([]uint64, len(p.sets))
	for pg := range order {
		order[pg] = pg
		keys[pg] = mix64(uint64(pg) ^ uint64(epoch)<<32)
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
	balanced := func() bool { return p.maxLoad() <= hi && p.minLoad() >= lo }
	// Entries above ceil(mean) go first to drives below floor(mean) (a
	// joining drive), then to any drive two entries emptier; only then do
	// drives at ceil(mean) give to drives still below floor(mean). In that
	// order a drive's surplus fills a joining drive's deficit before
	// anything else moves, so the moves are about max(surplus, deficit).
	for _, limit := range []func(l int) int{
		func(l int) int { return cond(l > hi, min(l-1, lo), 0) },
		func(l int) int { return cond(l > hi, l-1, 0) },
		func(l int) int { return cond(l > lo && p.minLoad() < lo, lo, 0) },
	} {
		if balanced() {
			return
		}
		p.sweep(order, balanced, limit)
	}
	if balanced() {
		return
	}
	p.sweep(order, func() bool { return p.maxLoad()-p.minLoad() <= 1 }, func(l int) int { return l - 1 })
}

func cond(c bool, a, b int) int {
	if c {
		return a
	}
	return b
}

// sweep visits every entry in order and moves it to the least-loaded drive
// with a load below limit(its drive's load) that fits, until done or a
// sweep moves nothing.
func (p *planner) sweep(order []int, done func() bool, limit func(l int) int) {
	for range 64 {
		moved := 0
		for _, pg := range order {
			for slot, d := range p.sets[pg] {
				lim := limit(p.load[d])
				if lim <= p.minLoad() {
					continue
				}
				if r := p.receiver(pg, slot, lim, 0); r >= 0 {
					p.put(pg, slot, r)
					moved++
				}
			}
		}
		if moved == 0 || done() {
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

func (p *planner) maxLoad() int {
	for l := len(p.byLoad) - 1; l >= 0; l-- {
		if len(p.byLoad[l]) > 0 {
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
