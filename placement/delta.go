package placement

import (
	"cmp"
	"fmt"
	"slices"
)

// Delta is what turns one map into the next of the same policy: the drives
// that join (or change node, zone or class) and leave, the new PG count
// (larger after a Split) and the entries that change drive. A join of one
// node to a 1,000-node map is a few KB, where the map is MBs, so a cluster
// can replicate deltas instead of whole maps.
type Delta struct {
	Epoch   Epoch     `json:"epoch"`
	PGCount int       `json:"pgs"`
	Added   []Drive   `json:"added,omitempty"`   // sorted by ID
	Removed []DriveID `json:"removed,omitempty"` // sorted
	Moves   []Move    `json:"moves,omitempty"`   // as Diff returns them
}

// Delta returns the delta from m to next. The maps must share the policy,
// and next must have at least m's PG count.
func (m *Map) Delta(next *Map) (Delta, error) {
	if m.Policy != next.Policy {
		return Delta{}, fmt.Errorf("%w: delta from policy %s to %s: ship the whole map", ErrInvalidMap, m.Policy, next.Policy)
	}
	moves, err := Diff(m, next)
	if err != nil {
		return Delta{}, err
	}
	d := Delta{Epoch: next.Epoch, PGCount: next.PGCount(), Moves: moves}
	for _, nd := range next.Drives {
		if od, ok := m.Drive(nd.ID); !ok || od != nd {
			d.Added = append(d.Added, nd)
		}
	}
	for _, od := range m.Drives {
		if _, ok := next.Drive(od.ID); !ok {
			d.Removed = append(d.Removed, od.ID)
		}
	}
	return d, nil
}

// Apply returns the map that d turns m into. It fails, leaving m as it
// is, if d was not computed from m: a move whose From is not the entry's
// drive in m, or an entry on a removed drive that no move takes away. The
// result is validated.
func (m *Map) Apply(d Delta) (*Map, error) {
	drop := make(map[DriveID]bool, len(d.Removed)+len(d.Added))
	for _, id := range d.Removed {
		drop[id] = true
	}
	for _, a := range d.Added {
		drop[a.ID] = true
	}
	drives := slices.DeleteFunc(slices.Clone(m.Drives), func(x Drive) bool { return drop[x.ID] })
	drives = append(drives, d.Added...)
	slices.SortFunc(drives, func(a, b Drive) int { return cmp.Compare(a.ID, b.ID) })
	next, err := m.Split(d.PGCount, d.Epoch)
	if err != nil {
		return nil, err
	}
	next.Drives = drives
	for _, mv := range d.Moves {
		if int(mv.PG) >= len(next.PGs) || mv.Slot < 0 || mv.Slot >= len(next.PGs[mv.PG]) {
			return nil, fmt.Errorf("%w: delta to epoch %d: move %+v out of range", ErrInvalidMap, d.Epoch, mv)
		}
		if got := next.PGs[mv.PG][mv.Slot]; got != mv.From {
			return nil, fmt.Errorf("%w: delta to epoch %d: pg %d slot %d holds %q, the delta moves it from %q", ErrInvalidMap, d.Epoch, mv.PG, mv.Slot, got, mv.From)
		}
		next.PGs[mv.PG][mv.Slot] = mv.To
	}
	if err := next.Validate(); err != nil {
		return nil, fmt.Errorf("delta to epoch %d: %w", d.Epoch, err)
	}
	return next, nil
}
