package placement

import "fmt"

// SlotsPerDrive is the average number of (PG, slot) entries per drive that
// [PGCountFor] aims for: enough that [Plan], which keeps every drive's
// count within one of the mean, keeps each drive within 1/SlotsPerDrive
// (5%) of the mean load.
const SlotsPerDrive = 20

// PGCountFor returns the PG count for a cluster of drives drives and sets
// of setSize: the smallest power of two, at least DefaultPGCount and at
// most MaxPGCount, that gives every drive SlotsPerDrive entries on average.
// Up to DefaultPGCount*setSize/SlotsPerDrive drives (204 with 12+4 sets)
// that is DefaultPGCount.
func PGCountFor(drives, setSize int) int {
	n := DefaultPGCount
	for n < MaxPGCount && n*setSize < SlotsPerDrive*drives {
		n *= 2
	}
	return n
}

// AncestorPG returns the PG that pg of a map descends from in a map of
// count PGs (count a power of two no larger than pg's map's): the low
// log2(count) bits of pg, the PG that [PGOf] gave every key of pg when the
// map had count PGs.
func AncestorPG(pg uint32, count int) uint32 { return pg & uint32(count-1) }

// Split returns the map m with pgCount placement groups, a power of two no
// smaller than m's count, where PG c holds the set of m's PG
// AncestorPG(c, m.PGCount()). [PGOf] keeps the low bits of the key's hash,
// so every key of c was a key of that ancestor: a split moves no data. The
// children then move off their parent's drives one slot at a time, as
// [Plan] balances the map and drives join and leave.
//
// Split does not modify m; the result shares m's Drives and Policy.
func (m *Map) Split(pgCount int, epoch Epoch) (*Map, error) {
	if err := checkPGCount(pgCount); err != nil {
		return nil, err
	}
	old := m.PGCount()
	if pgCount < old {
		return nil, fmt.Errorf("%w: split to %d PGs: the map has %d", ErrInvalidMap, pgCount, old)
	}
	size := m.Policy.SetSize()
	pgs := make([][]DriveID, pgCount)
	slots := make([]DriveID, pgCount*size)
	for c := range pgs {
		set := slots[c*size : c*size : (c+1)*size]
		pgs[c] = append(set, m.PGs[AncestorPG(uint32(c), old)]...)
	}
	return &Map{Epoch: epoch, Policy: m.Policy, Drives: m.Drives, PGs: pgs}, nil
}
