package placement

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
)

// Map is the cluster map: drives, the EC policy and the PG → ordered drive
// set table. A Map is a value to be replaced, not updated: once built or
// decoded it must not be modified, and then it is safe for concurrent use.
type Map struct {
	Epoch  Epoch
	Policy Policy
	Drives []Drive // sorted by ID
	// PGs has one entry per placement group (a power of two). PGs[pg][i]
	// holds shard i of every stripe in that PG: slots 0..k-1 data, k..k+m-1
	// parity.
	PGs [][]DriveID
	// Chosen says an operator set Policy (vaultd cluster set-erasure): a
	// map planned after this one keeps it instead of DefaultPolicy's for
	// the drive count. Absent (false) in maps of older versions.
	Chosen bool `json:",omitempty"`
	// Width is the stripe width an operator chose for new writes: the
	// number of PGs a large artifact's stripes are spread over (0 means
	// 1, unstriped); the engine keeps each artifact's width in its record.
	Width int `json:",omitempty"`
	// WidthBy says where Width comes from, and so whether a map planned
	// after this one keeps it (WidthSet).
	WidthBy WidthSource `json:",omitempty"`
	// Layout is set on the maps ForLayout derives for a container's
	// storage policy; empty on the cluster map itself.
	Layout Layout `json:",omitempty"`
}

// MaxWidth is the largest stripe width a Map may carry.
const MaxWidth = 16

// WidthSource is where a Map's Width comes from. Its values reach disk:
// append only.
type WidthSource string

const (
	// WidthLegacy is the source of maps written before WidthSource: the
	// width is the operator's, kept, when Policy is Chosen, else
	// DefaultWidth's.
	WidthLegacy WidthSource = ""
	// WidthOperator: an operator set the width (vaultd cluster
	// set-erasure --width W); maps planned after keep it.
	WidthOperator WidthSource = "operator"
	// WidthDefault: the width is DefaultWidth for the drive count and the
	// policy, and follows them in maps planned after.
	WidthDefault WidthSource = "default"
)

// WidthSet reports whether m's width was set by an operator, so that maps
// planned after m keep it.
func (m *Map) WidthSet() bool {
	return m.WidthBy == WidthOperator || m.WidthBy == WidthLegacy && m.Chosen
}

// NewMap builds a map with pgCount placement groups over drives, choosing
// each PG's drive set as described in the package comment. pgCount must be
// a power of two between 1 and MaxPGCount; drives must have unique non-empty
// IDs and there must be at least p.SetSize() of them. Drives with the same
// Node (including "") share a node. The result depends only on the set of
// drives, not their order; NewMap copies drives and does not retain it.
func NewMap(drives []Drive, p Policy, pgCount int, epoch Epoch) (*Map, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := checkPGCount(pgCount); err != nil {
		return nil, err
	}
	sorted := slices.Clone(drives)
	slices.SortFunc(sorted, func(a, b Drive) int { return cmp.Compare(a.ID, b.ID) })
	if err := checkDrives(sorted); err != nil {
		return nil, err
	}
	size := p.SetSize()
	if len(sorted) < size {
		return nil, fmt.Errorf("%w: policy %s needs %d drives, have %d", ErrTooFewDrives, p, size, len(sorted))
	}

	s := newSelector(sorted, size)
	pgs := make([][]DriveID, pgCount)
	slots := make([]DriveID, pgCount*size)
	for pg := range pgs {
		// Full slice expression: an append by a careless caller cannot
		// overwrite the next PG's set.
		set := slots[pg*size : pg*size : (pg+1)*size]
		pgs[pg] = s.pick(uint32(pg), set)
	}
	return &Map{Epoch: epoch, Policy: p, Drives: sorted, PGs: pgs}, nil
}

// Validate checks the map's structure: a valid policy, a power-of-two PG
// count no larger than MaxPGCount, drives with non-empty IDs sorted strictly
// by ID, and for every PG a set of exactly SetSize distinct drives of the
// map. It does not check failure-domain spread. Errors wrap ErrInvalidMap,
// ErrInvalidPolicy or ErrTooFewDrives.
func (m *Map) Validate() error {
	if err := m.Policy.Validate(); err != nil {
		return err
	}
	if err := checkPGCount(len(m.PGs)); err != nil {
		return err
	}
	if m.Width < 0 || m.Width > MaxWidth {
		return fmt.Errorf("%w: stripe width %d not in 0..%d", ErrInvalidMap, m.Width, MaxWidth)
	}
	if err := checkDrives(m.Drives); err != nil {
		return err
	}
	for i := 1; i < len(m.Drives); i++ {
		if m.Drives[i-1].ID > m.Drives[i].ID {
			return fmt.Errorf("%w: drives not sorted by ID: %q before %q", ErrInvalidMap, m.Drives[i-1].ID, m.Drives[i].ID)
		}
	}
	size := m.Policy.SetSize()
	if len(m.Drives) < size {
		return fmt.Errorf("%w: policy %s needs %d drives, map has %d", ErrTooFewDrives, m.Policy, size, len(m.Drives))
	}
	for pg, set := range m.PGs {
		if len(set) != size {
			return fmt.Errorf("%w: pg %d: %d drives, policy %s needs %d", ErrInvalidMap, pg, len(set), m.Policy, size)
		}
		for i, id := range set {
			if _, ok := m.Drive(id); !ok {
				return fmt.Errorf("%w: pg %d slot %d: unknown drive %q", ErrInvalidMap, pg, i, id)
			}
			if slices.Contains(set[:i], id) {
				return fmt.Errorf("%w: pg %d: drive %q appears twice", ErrInvalidMap, pg, id)
			}
		}
	}
	return nil
}

// PGCount returns the number of placement groups.
func (m *Map) PGCount() int { return len(m.PGs) }

// PGOf returns the placement group of (tenant, container, key) in this map:
// PGOf(tenant, container, key, m.PGCount()).
func (m *Map) PGOf(tenant, container, key string) uint32 {
	return PGOf(tenant, container, key, m.PGCount())
}

// Set returns the ordered drive set of pg: element i holds shard i. The
// slice belongs to the map; callers must not modify it. Set panics if pg is
// not less than PGCount.
func (m *Map) Set(pg uint32) []DriveID { return m.PGs[pg] }

// Drive returns the drive with the given ID and whether the map has it.
// It relies on Drives being sorted by ID, as NewMap and Validate ensure.
func (m *Map) Drive(id DriveID) (Drive, bool) {
	i, ok := slices.BinarySearchFunc(m.Drives, id, func(d Drive, id DriveID) int { return cmp.Compare(d.ID, id) })
	if !ok {
		return Drive{}, false
	}
	return m.Drives[i], true
}

func checkPGCount(n int) error {
	if n < 1 || n > MaxPGCount || bits.OnesCount(uint(n)) != 1 {
		return fmt.Errorf("%w: PG count %d is not a power of two in [1, %d]", ErrInvalidMap, n, MaxPGCount)
	}
	return nil
}

// checkDrives reports empty or duplicate IDs in drives sorted by ID.
func checkDrives(sorted []Drive) error {
	for i, d := range sorted {
		if d.ID == "" {
			return fmt.Errorf("%w: drive with empty ID on node %q", ErrInvalidMap, d.Node)
		}
		if i > 0 && sorted[i-1].ID == d.ID {
			return fmt.Errorf("%w: duplicate drive ID %q", ErrInvalidMap, d.ID)
		}
	}
	return nil
}

// selector picks drive sets by rendezvous hashing under failure-domain caps.
// It holds scratch space reused across PGs.
type selector struct {
	drives  []Drive // sorted by ID
	node    []int   // node index of each drive
	zone    []int   // zone index of each drive, -1 for none
	size    int     // drives per set
	nodeCap int     // most drives of a set on one node
	zoneCap int     // most drives of a set in one zone

	cand     []candidate
	chosen   []bool
	n        int // drives chosen so far
	top      []candidate
	nodeUsed []int
	zoneUsed []int
}

type candidate struct {
	score uint64
	i     int // index into drives
}

func newSelector(drives []Drive, size int) *selector {
	s := &selector{
		drives: drives,
		node:   make([]int, len(drives)),
		zone:   make([]int, len(drives)),
		size:   size,
		cand:   make([]candidate, len(drives)),
		chosen: make([]bool, len(drives)),
	}
	nodes := map[NodeID]int{}
	zones := map[string]int{}
	for i, d := range drives {
		n, ok := nodes[d.Node]
		if !ok {
			n = len(nodes)
			nodes[d.Node] = n
		}
		s.node[i] = n
		s.zone[i] = -1
		if d.Zone != "" {
			z, ok := zones[d.Zone]
			if !ok {
				z = len(zones)
				zones[d.Zone] = z
			}
			s.zone[i] = z
		}
	}
	s.nodeUsed = make([]int, len(nodes))
	s.zoneUsed = make([]int, len(zones))
	s.nodeCap = ceilDiv(size, len(nodes))
	s.zoneCap = size
	if len(zones) > 0 {
		s.zoneCap = ceilDiv(size, len(zones))
	}
	return s
}

// before orders candidates by descending score; on a tie the smaller ID
// (drives are sorted by ID) comes first.
func before(a, b candidate) int {
	if c := cmp.Compare(b.score, a.score); c != 0 {
		return c
	}
	return cmp.Compare(a.i, b.i)
}

// pick appends the drive set of pg to dst and returns it. It requires
// len(s.drives) >= s.size.
//
// With many drives it first walks only the best topFactor*size candidates
// (found without sorting the rest) under the unrelaxed caps. The walk is
// greedy in score order, so when that prefix fills the set the result is
// the one the full walk would give; otherwise it falls back to the full
// walk below.
func (s *selector) pick(pg uint32, dst []DriveID) []DriveID {
	if t := topFactor * s.size; len(s.drives) > 2*t {
		if s.pickTop(pg, t) {
			return s.emit(s.top, dst)
		}
	}
	return s.pickAll(pg, dst)
}

// pickAll is pick without the prefix: it scores and sorts every drive.
func (s *selector) pickAll(pg uint32, dst []DriveID) []DriveID {
	for i, d := range s.drives {
		s.cand[i] = candidate{score(pg, d.ID), i}
	}
	slices.SortFunc(s.cand, before)
	s.walk(s.cand)
	return s.emit(s.cand, dst)
}

// topFactor sizes the prefix pick walks first: topFactor candidates per slot.
const topFactor = 4

// pickTop collects the best t candidates of pg in s.top, sorted, and walks
// them under the unrelaxed caps. It reports whether that filled the set.
func (s *selector) pickTop(pg uint32, t int) bool {
	// s.top is a min-heap (worst candidate at the root) of at most t.
	h := s.top[:0]
	for i, d := range s.drives {
		c := candidate{score(pg, d.ID), i}
		if len(h) < t {
			h = append(h, c)
			for j := len(h) - 1; j > 0; {
				p := (j - 1) / 2
				if before(h[j], h[p]) <= 0 {
					break
				}
				h[j], h[p] = h[p], h[j]
				j = p
			}
			continue
		}
		if before(c, h[0]) >= 0 {
			continue
		}
		h[0] = c
		for j := 0; ; {
			w, l, r := j, 2*j+1, 2*j+2
			if l < len(h) && before(h[l], h[w]) > 0 {
				w = l
			}
			if r < len(h) && before(h[r], h[w]) > 0 {
				w = r
			}
			if w == j {
				break
			}
			h[j], h[w] = h[w], h[j]
			j = w
		}
	}
	slices.SortFunc(h, before)
	s.top = h
	s.reset()
	return s.pass(h, 0) == s.size
}

func (s *selector) reset() {
	s.n = 0
	clear(s.chosen)
	clear(s.nodeUsed)
	clear(s.zoneUsed)
}

// walk fills the set from cand, sorted by before, relaxing the caps when
// the drives cannot meet them.
func (s *selector) walk(cand []candidate) {
	s.reset()
	n := 0
	// The first pass (relax == 0) enforces the caps; later passes only run
	// when the drives cannot satisfy them, and loosen both by one each time.
	// Once both caps reach s.size every drive qualifies, so the loop ends.
	for relax := 0; n < s.size; relax++ {
		n = s.pass(cand, relax)
	}
}

// pass adds candidates in order while the set is not full and the caps,
// raised by relax, allow; it returns the set's size after.
func (s *selector) pass(cand []candidate, relax int) int {
	n := s.n
	for _, c := range cand {
		if n == s.size {
			break
		}
		if s.chosen[c.i] || s.nodeUsed[s.node[c.i]] >= s.nodeCap+relax {
			continue
		}
		z := s.zone[c.i]
		if z >= 0 && s.zoneUsed[z] >= s.zoneCap+relax {
			continue
		}
		s.chosen[c.i] = true
		s.nodeUsed[s.node[c.i]]++
		if z >= 0 {
			s.zoneUsed[z]++
		}
		n++
	}
	s.n = n
	return n
}

// emit appends the chosen drives to dst in cand's (score) order, whichever
// pass chose them.
func (s *selector) emit(cand []candidate, dst []DriveID) []DriveID {
	for _, c := range cand {
		if s.chosen[c.i] {
			dst = append(dst, s.drives[c.i].ID)
		}
	}
	return dst
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
