package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vaultaire/vaultaire/placement"
)

// Drain and removal (issue 14.3).
//
// Draining a drive (or every drive of a node) takes it out of every map
// planned from then on: the leader plans a new epoch over the other
// drives, and the engine's migrator moves everything the drained drives
// hold into the new map's sets, as after growth, and drops the older maps
// once nothing lives only there. A drain is done when no kept map places
// a PG on a drained drive (DrainStatus.PGsLeft is 0). It is refused
// (ErrRefused) when the remaining drives cannot hold the erasure set: an
// operator's policy (set-erasure) needs k+m drives; the default policy
// shrinks with the drive count, down to one drive. A drain survives
// restarts and leader changes (it is replicated state), and the migrator
// resumes where it stopped. Undo (undrain) plans the drives back in.
//
// Removing a node takes it out of the registered nodes and so out of
// every map planned after, and the leader removes it from the Raft
// configuration (Reconcile); its name is remembered so that gossip, where
// it stays until it is stopped, does not bring it back. Without force, a
// node is removed only when drained: none of its drives is in a kept
// map. Force removes a dead node whose data the migrator has rebuilt
// elsewhere from the other shards.

// drainCmd marks drives draining (or, with Undo, no longer).
type drainCmd struct {
	Drives []string `json:"drives"`
	Undo   bool     `json:"undo,omitempty"`
}

// removeNodeCmd removes a node.
type removeNodeCmd struct {
	Name  string `json:"name"`
	Force bool   `json:"force,omitempty"`
}

// driveNode returns the name of the node that registered drive id.
func (f *fsm) driveNode(id string) (string, bool) {
	for _, n := range f.nodes {
		if slices.ContainsFunc(n.Drives, func(d MemberDrive) bool { return d.ID == id }) {
			return n.Name, true
		}
	}
	return "", false
}

func (f *fsm) drain(c drainCmd) error {
	if len(c.Drives) == 0 {
		return errors.New("cluster: drain without drives")
	}
	for _, id := range c.Drives {
		if _, ok := f.driveNode(id); !ok {
			return fmt.Errorf("%w: drive %s is not registered", ErrRefused, id)
		}
	}
	if !c.Undo {
		if err := f.drainHolds("draining", c.Drives); err != nil {
			return err
		}
	}
	for _, id := range c.Drives {
		if c.Undo {
			delete(f.draining, id)
			continue
		}
		if f.draining == nil {
			f.draining = make(map[string]bool)
		}
		f.draining[id] = true
	}
	return nil
}

// drainHolds checks that the drives left once ids drain too (registered,
// not draining) can hold the erasure set: the operator's policy needs
// its k+m drives, the default one shrinks down to one drive. It runs in
// the FSM, so that of two drains proposed at once through two nodes,
// each allowed alone, the second applied is refused (probe M3: both were
// recorded and no map could be planned). Called with f.mu held.
func (f *fsm) drainHolds(verb string, ids []string) error {
	rest := 0
	for _, n := range f.nodes {
		for _, d := range n.Drives {
			if !f.draining[d.ID] && !slices.Contains(ids, d.ID) {
				rest++
			}
		}
	}
	var cur *placement.Map
	if len(f.maps) > 0 {
		cur = f.maps[len(f.maps)-1]
	}
	switch {
	case rest == 0:
		return fmt.Errorf("%w: %s %s would leave no drive", ErrRefused, verb, strings.Join(ids, ", "))
	case cur != nil && cur.Chosen && rest < cur.Policy.SetSize():
		return fmt.Errorf("%w: %s %s would leave %d drives; the erasure policy %s needs %d (set-erasure a smaller one first)",
			ErrRefused, verb, strings.Join(ids, ", "), rest, cur.Policy, cur.Policy.SetSize())
	}
	return nil
}

// inKeptMap reports whether any kept map places a PG on drive id. Called
// with f.mu held.
func (f *fsm) inKeptMap(id string) bool {
	for _, m := range f.maps {
		if _, ok := m.Drive(placement.DriveID(id)); ok {
			return true
		}
	}
	return false
}

func (f *fsm) removeNode(c removeNodeCmd) error {
	n, ok := f.nodes[c.Name]
	if !ok {
		return fmt.Errorf("%w: node %s is not registered", ErrRefused, c.Name)
	}
	if c.Force {
		// A drained node's drives are out of the map already; a forced
		// removal takes the rest out now, so the drives left must hold
		// the erasure set, as for a drain.
		ids := make([]string, 0, len(n.Drives))
		for _, d := range n.Drives {
			ids = append(ids, d.ID)
		}
		if err := f.drainHolds("removing node "+c.Name+" with", ids); err != nil {
			return err
		}
	}
	if !c.Force {
		for _, d := range n.Drives {
			if !f.draining[d.ID] {
				return fmt.Errorf("%w: node %s: drive %s is not drained (vaultd cluster drain %s first, or --force for a dead node)", ErrRefused, c.Name, d.ID, c.Name)
			}
			if f.inKeptMap(d.ID) {
				return fmt.Errorf("%w: node %s: drive %s still holds data of a kept map (the drain is not finished)", ErrRefused, c.Name, d.ID)
			}
		}
	}
	delete(f.nodes, c.Name)
	for _, d := range n.Drives {
		delete(f.draining, d.ID)
	}
	if f.removed == nil {
		f.removed = make(map[string]bool)
	}
	f.removed[c.Name] = true
	return nil
}

// isRemoved reports whether node name was removed.
func (f *fsm) isRemoved(name string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.removed[name]
}

// drainingDrives returns the draining drives, sorted.
func (f *fsm) drainingDrives() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]string, 0, len(f.draining))
	for id := range f.draining {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// setList returns the keys of a set, sorted, for a snapshot.
func setList(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// setOf is setList's inverse.
func setOf(l []string) map[string]bool {
	m := make(map[string]bool, len(l))
	for _, k := range l {
		m[k] = true
	}
	return m
}

// DrainStatus is the progress of the drains in progress.
type DrainStatus struct {
	Drives []string `json:"drives"` // draining, sorted
	// PGsLeft counts the PG slots of kept maps (current and older) on
	// draining drives. 0 means done. It is no measure of progress: it
	// falls only when the migrator drops a whole older map, at the end
	// (BytesLeft falls as data moves).
	PGsLeft int `json:"pgs_left"`
	// MapsLeft counts the kept maps with a PG slot on a draining drive:
	// the drain is done when the migrator has dropped them all.
	MapsLeft int `json:"maps_left"`
	// BytesLeft is what the reachable draining drives still hold, as
	// they report it (status only; 0 in Store.Drains). It never reaches
	// 0 before the end: a drive's index stays until its maps are dropped.
	BytesLeft uint64 `json:"bytes_left"`
	// Unreachable lists the draining drives that did not answer (their
	// node down?), and UnreachableNodes their nodes, sorted: BytesLeft
	// leaves them out and no rate is given. A drive that stays
	// unreachable holds the drain until its node is removed with force.
	Unreachable      []string `json:"unreachable,omitempty"`
	UnreachableNodes []string `json:"unreachable_nodes,omitempty"`
	// BytesPerSecond is the rate BytesLeft fell at over the last minutes
	// and ETASeconds the time left at that rate (Topology.DrainProgress);
	// -1 when unknown, ETASeconds 0 when no PG slot is left.
	BytesPerSecond float64 `json:"bytes_per_second"`
	ETASeconds     float64 `json:"eta_seconds"`
	// Finishing says the data has all but moved (ETASeconds under
	// finishingETA) while kept maps still place PGs on the drives: the
	// last artifacts move, then the older maps are released.
	Finishing bool `json:"finishing,omitempty"`
}

// Drains returns the progress of the drains in progress (BytesLeft, the
// rate and ETA aside: see Topology.DrainProgress).
func (s *Store) Drains() DrainStatus {
	ds := DrainStatus{Drives: s.fsm.drainingDrives()}
	if len(ds.Drives) == 0 {
		return ds
	}
	maps := append(s.fsm.olderMaps(), s.fsm.currentMap())
	for _, m := range maps {
		if m == nil {
			continue
		}
		slots := 0
		for pg := range uint32(m.PGCount()) {
			for _, id := range m.Set(pg) {
				if slices.Contains(ds.Drives, string(id)) {
					slots++
				}
			}
		}
		if slots > 0 {
			ds.PGsLeft += slots
			ds.MapsLeft++
		}
	}
	return ds
}

// registeredDrive returns drive id as its node registered it.
func (s *Store) registeredDrive(id string) (placement.Drive, bool) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	for _, n := range s.fsm.nodes {
		for _, d := range n.Drives {
			if d.ID == id {
				return placement.Drive{ID: placement.DriveID(id), Node: placement.NodeID(n.Name), Zone: d.Zone, Class: driveClass(d.Class)}, true
			}
		}
	}
	return placement.Drive{}, false
}

// nodesOf returns the sorted names of the nodes that registered drives
// ids.
func (s *Store) nodesOf(ids []string) []string {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	var out []string
	for _, id := range ids {
		if n, ok := s.fsm.driveNode(id); ok && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Drain drains node's drives, or only drive if it is not "" (then node
// may be ""), and plans a map without them; undo plans them back in. It
// fails wrapping ErrRefused if a drive is unknown or the remaining drives
// cannot hold the erasure set.
func (s *Store) Drain(ctx context.Context, node, drive string, undo bool) (DrainStatus, error) {
	var ids []string
	switch {
	case drive != "":
		owner, ok := func() (string, bool) { s.fsm.mu.RLock(); defer s.fsm.mu.RUnlock(); return s.fsm.driveNode(drive) }()
		if !ok || (node != "" && owner != node) {
			return DrainStatus{}, fmt.Errorf("%w: drive %s is not a drive of %s", ErrRefused, drive, cmpOr(node, "any registered node"))
		}
		ids = []string{drive}
	default:
		n, ok := s.fsm.node(node)
		if !ok {
			return DrainStatus{}, fmt.Errorf("%w: node %q is not registered", ErrRefused, node)
		}
		for _, d := range n.Drives {
			ids = append(ids, d.ID)
		}
	}
	// Whether the rest holds the erasure set is checked by the FSM
	// (drainHolds), against the drains applied before this one.
	if err := s.applyCmd(ctx, cmdDrain, drainCmd{Drives: ids, Undo: undo}); err != nil {
		return DrainStatus{}, err
	}
	if err := s.updateMap(ctx); err != nil {
		return DrainStatus{}, err
	}
	return s.Drains(), nil
}

// RemoveNode removes a drained node (or, with force, a node gossip
// reports dead) from the cluster: from the registered nodes and the map
// at once, from Raft by the leader's next Reconcile. It fails wrapping
// ErrRefused if the node is not drained and force is false, or if force
// is set and the node is alive in this node's gossip view.
func (s *Store) RemoveNode(ctx context.Context, name string, force bool) error {
	if name == s.cfg.NodeID && !force {
		// Not a rule of the FSM: only the answering node knows itself.
		return fmt.Errorf("%w: node %s answers this request; ask another node", ErrRefused, name)
	}
	if force && s.aliveInGossip(name) {
		// --force writes the node's data off: for a dead node only. A
		// live one would lose intact copies (probe F4 of session 17).
		return fmt.Errorf("%w: node %s is alive: drain it and remove it without --force, or stop its process first", ErrRefused, name)
	}
	if err := s.applyCmd(ctx, cmdRemoveNode, removeNodeCmd{Name: name, Force: force}); err != nil {
		return err
	}
	return s.updateMap(ctx)
}

// aliveInGossip reports whether node name is alive in this node's gossip
// view (false when this node runs no gossip).
func (s *Store) aliveInGossip(name string) bool {
	members := s.gossip.Load()
	if members == nil {
		return false
	}
	for _, m := range (*members)() {
		if m.Name == name && m.State == MemberAlive {
			return true
		}
	}
	return false
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
