package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/placement"
)

// NodeInfo is a node registered in the replicated cluster map: its
// addresses and drives. The leader registers every node it sees alive in
// gossip; a registered node stays registered (and its drives stay in the
// map) when it goes down, so that its shards are expected back.
type NodeInfo struct {
	Name     string        `json:"name"`
	S3Addr   string        `json:"s3"`
	RaftAddr string        `json:"raft"`
	RPCAddr  string        `json:"rpc"`
	Gossip   string        `json:"gossip"` // gossip ip:port, a seed for rejoining after a restart
	Drives   []MemberDrive `json:"drives"` // sorted by Class, Zone, ID
}

func (n NodeInfo) equal(o NodeInfo) bool {
	return n.Name == o.Name && n.S3Addr == o.S3Addr && n.RaftAddr == o.RaftAddr &&
		n.RPCAddr == o.RPCAddr && n.Gossip == o.Gossip && slices.Equal(n.Drives, o.Drives)
}

// nodeOf turns a gossip member into the NodeInfo it advertises.
func nodeOf(m Member) NodeInfo {
	return NodeInfo{Name: m.Name, S3Addr: m.S3Addr, RaftAddr: m.RaftAddr, RPCAddr: m.RPCAddr, Gossip: m.Addr, Drives: slices.Clone(m.Drives)}
}

// setMapCmd installs the next cluster map. Its epoch must be the current
// epoch + 1, so two leaders' (or one leader's racing) proposals cannot both
// win; the loser recomputes from the new state.
type setMapCmd struct {
	Map *placement.Map `json:"map"`
}

// errStaleMap is Apply's answer to a map whose epoch does not follow the
// current one.
var errStaleMap = errors.New("cluster: map epoch does not follow the current map")

func (f *fsm) putNode(n NodeInfo) error {
	if n.Name == "" {
		return errors.New("cluster: node without a name")
	}
	if f.removed[n.Name] {
		return fmt.Errorf("%w: node %s was removed from the cluster", ErrRefused, n.Name)
	}
	f.ownRemotes(&n) // a remote drive moves between nodes only by adoption
	if old, ok := f.nodes[n.Name]; ok {
		// A node keeps the drives it registered: a restart that
		// advertised fewer drives must not drop shards from the map.
		for _, d := range old.Drives {
			if !slices.ContainsFunc(n.Drives, func(nd MemberDrive) bool { return nd.ID == d.ID }) {
				n.Drives = append(n.Drives, d)
			}
		}
		sortDrives(n.Drives)
	}
	f.nodes[n.Name] = n
	return nil
}

func (f *fsm) setMap(c setMapCmd) error {
	if c.Map == nil {
		return errors.New("cluster: set map without a map")
	}
	if err := c.Map.Validate(); err != nil {
		return err
	}
	var cur placement.Epoch
	if len(f.maps) > 0 {
		cur = f.maps[len(f.maps)-1].Epoch
	}
	if c.Map.Epoch != cur+1 {
		return fmt.Errorf("%w: proposed epoch %d, current %d", errStaleMap, c.Map.Epoch, cur)
	}
	f.maps = append(f.maps, c.Map)
	return nil
}

// dropMapCmd forgets an older map once no data lives only there.
type dropMapCmd struct {
	Epoch placement.Epoch `json:"epoch"`
}

func (f *fsm) dropMap(c dropMapCmd) error {
	for i, m := range f.maps {
		if m.Epoch != c.Epoch {
			continue
		}
		if i == len(f.maps)-1 {
			return fmt.Errorf("cluster: map epoch %d is the current map", c.Epoch)
		}
		f.maps = slices.Delete(slices.Clone(f.maps), i, i+1)
		return nil
	}
	return nil // already dropped
}

// DropMap forgets an older map: reads stop falling back to it. The caller
// must know that no artifact lives only in it (the migrator checks).
func (s *Store) DropMap(ctx context.Context, epoch placement.Epoch) error {
	return s.applyCmd(ctx, cmdDropMap, dropMapCmd{Epoch: epoch})
}

func (f *fsm) node(name string) (NodeInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.nodes[name]
	return n, ok
}

func (f *fsm) nodeList() []NodeInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]NodeInfo, 0, len(f.nodes))
	for _, n := range f.nodes {
		n.Drives = slices.Clone(n.Drives)
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// currentMap returns the newest map, or nil before the first.
func (f *fsm) currentMap() *placement.Map {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.maps) == 0 {
		return nil
	}
	return f.maps[len(f.maps)-1]
}

// olderMaps returns the maps before the current one, newest first.
func (f *fsm) olderMaps() []*placement.Map {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.maps) < 2 {
		return nil
	}
	out := slices.Clone(f.maps[:len(f.maps)-1])
	slices.Reverse(out)
	return out
}

// Nodes returns the registered nodes sorted by name.
func (s *Store) Nodes() []NodeInfo { return s.fsm.nodeList() }

// Node returns one registered node.
func (s *Store) Node(name string) (NodeInfo, bool) { return s.fsm.node(name) }

// Map returns the current cluster map, or nil before the first node has
// registered. The map is immutable.
func (s *Store) Map() *placement.Map { return s.fsm.currentMap() }

// OlderMaps returns earlier maps, newest first. Reads consult them for
// artifacts written before the map last changed (data is not migrated
// yet).
func (s *Store) OlderMaps() []*placement.Map { return s.fsm.olderMaps() }

// IsLeader reports whether this node is the Raft leader now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// AllContainers returns every tenant's containers, sorted by tenant and
// name, from this node's state (on the leader, the committed state).
func (s *Store) AllContainers(ctx context.Context) ([]meta.ContainerInfo, error) {
	var out []meta.ContainerInfo
	for _, tn := range s.fsm.tenantList() {
		out = append(out, s.fsm.containerList(tn.Name)...)
	}
	return out, nil
}

// RegisterNode records n in the cluster map (replacing its addresses;
// drives are only ever added) and, if that adds drives, installs a new map
// over all registered drives. It is what the leader does for each node it
// sees in gossip; it is idempotent.
func (s *Store) RegisterNode(ctx context.Context, n NodeInfo) error {
	if s.fsm.isRemoved(n.Name) {
		return nil // removed: gossip may show it until it stops
	}
	s.fsm.mu.RLock()
	s.fsm.ownRemotes(&n) // as putNode will: compare what it would store
	s.fsm.mu.RUnlock()
	sortDrives(n.Drives)
	if old, ok := s.fsm.node(n.Name); !ok || !old.equal(n) {
		if err := s.applyCmd(ctx, cmdPutNode, n); err != nil {
			return fmt.Errorf("cluster: register node %s: %w", n.Name, err)
		}
	}
	return s.updateMap(ctx)
}

// updateMap installs a map over every registered drive if the current
// map lacks any of them.
func (s *Store) updateMap(ctx context.Context) error {
	return s.replan(ctx, nil)
}

// ErrRefused means the cluster refused an operator's change (set-erasure,
// and later drain and removal) as impossible with its drives; the message
// says why. The admin API answers it as a client error.
var ErrRefused = errors.New("cluster: refused")

// mapDrives returns every registered drive not being drained, sorted by
// ID.
func (s *Store) mapDrives() []placement.Drive {
	var drives []placement.Drive
	draining := s.fsm.drainingDrives()
	for _, n := range s.fsm.nodeList() {
		for _, d := range n.Drives {
			if slices.Contains(draining, d.ID) {
				continue
			}
			drives = append(drives, placement.Drive{ID: placement.DriveID(d.ID), Node: placement.NodeID(n.Name), Zone: d.Zone, Class: driveClass(d.Class)})
		}
	}
	slices.SortFunc(drives, func(a, b placement.Drive) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return drives
}

// replan installs a new map if the current one does not cover exactly the
// registered drives or (with choice) does not have the chosen policy and
// width. The policy is the operator's once chosen (Map.Chosen), else
// placement.DefaultPolicy for the drive count; the width likewise the
// operator's once set (Map.WidthSet), else placement.DefaultWidth. A
// choice the drives cannot hold is refused (ErrRefused).
func (s *Store) replan(ctx context.Context, choice *ErasureChange) error {
	for try := 0; try < 3; try++ {
		cur := s.fsm.currentMap()
		drives := s.mapDrives()
		if len(drives) == 0 {
			if choice != nil {
				return fmt.Errorf("%w: no drives registered yet", ErrRefused)
			}
			return nil
		}
		var (
			pol     placement.Policy
			width   int
			widthBy placement.WidthSource
			chosen  bool
			err     error
		)
		switch {
		case choice != nil && choice.Policy != nil:
			pol, chosen = *choice.Policy, true
		case cur != nil && cur.Chosen:
			pol, chosen = cur.Policy, true
		default:
			if pol, err = placement.DefaultPolicy(len(drives)); err != nil {
				return err
			}
		}
		switch {
		case choice != nil && choice.Width > 0:
			width, widthBy = choice.Width, placement.WidthOperator
		case choice != nil && choice.DefaultWidth:
			width, widthBy = placement.DefaultWidth(len(drives), pol), placement.WidthDefault
		case cur != nil && cur.WidthSet():
			width, widthBy = cur.Width, cur.WidthBy
		default:
			width, widthBy = placement.DefaultWidth(len(drives), pol), placement.WidthDefault
			if cur != nil && cur.WidthBy == placement.WidthLegacy && !chosen {
				widthBy = placement.WidthLegacy // the same meaning: no new epoch for it
			}
		}
		if cur != nil && slices.Equal(cur.Drives, drives) && cur.Policy == pol && cur.Width == width && cur.Chosen == chosen && cur.WidthBy == widthBy {
			return nil
		}
		pgs := placement.DefaultPGCount
		epoch := placement.Epoch(1)
		if cur != nil {
			pgs, epoch = cur.PGCount(), cur.Epoch+1
		}
		var m *placement.Map
		if cur != nil && cur.Policy == pol {
			// Same policy: move as few (PG, slot) entries as keep the
			// map balanced (placement.Plan), not a reshuffle.
			m, err = placement.Plan(cur, drives, epoch)
		} else {
			m, err = placement.NewMap(drives, pol, pgs, epoch)
		}
		if err != nil {
			if choice != nil {
				return fmt.Errorf("%w: erasure %s over the cluster's %d drives: %w", ErrRefused, pol, len(drives), err)
			}
			return fmt.Errorf("cluster: plan map: %w", err)
		}
		m.Chosen, m.Width, m.WidthBy = chosen, width, widthBy
		if err := m.Validate(); err != nil {
			if choice != nil {
				return fmt.Errorf("%w: %w", ErrRefused, err)
			}
			return err
		}
		err = s.applyCmd(ctx, cmdSetMap, setMapCmd{Map: m})
		if !errors.Is(err, errStaleMap) {
			if err == nil {
				s.log.Info("cluster: new map", "epoch", m.Epoch, "policy", m.Policy.String(), "width", m.Width, "chosen", m.Chosen, "width_by", string(m.WidthBy), "drives", len(m.Drives))
			}
			return err
		}
	}
	return fmt.Errorf("cluster: map kept changing while planning: %w", errStaleMap)
}

// SetErasure makes pol the erasure policy of new writes and width their
// stripe width (0 keeps the current width if an operator set it, else
// it is placement.DefaultWidth for the drives and pol), with a new map
// epoch over the same drives: ChangeErasure with both.
func (s *Store) SetErasure(ctx context.Context, pol placement.Policy, width int) (*placement.Map, error) {
	return s.ChangeErasure(ctx, ErasureChange{Policy: &pol, Width: width})
}

// SetWidth makes width the stripe width of new writes and keeps the
// policy; width 0 returns to placement.DefaultWidth for the drive count:
// ChangeErasure with a width alone.
func (s *Store) SetWidth(ctx context.Context, width int) (*placement.Map, error) {
	return s.ChangeErasure(ctx, ErasureChange{Width: width, DefaultWidth: width == 0})
}

// ErasureChange is an operator's change of the erasure policy or the
// stripe width of new writes (vaultd cluster set-erasure).
type ErasureChange struct {
	// Policy, if set, becomes the policy, kept as drives join and
	// leave (Map.Chosen); nil keeps the current one, the operator's or
	// the default that follows the drive count.
	Policy *placement.Policy
	// Width, 1 to placement.MaxWidth, becomes the stripe width, kept as
	// drives join and leave; 0 keeps the width if an operator set it,
	// else it follows the drive count and policy (placement.DefaultWidth).
	Width int
	// DefaultWidth (with Width 0) returns the width to
	// placement.DefaultWidth, which then follows the drive count.
	DefaultWidth bool
}

// ChangeErasure applies c with a new map epoch over the same drives (none
// if nothing changes); the engine's migrator then re-encodes what older
// maps hold in the background, as after growth, and stripes large
// artifacts written under the new map over its width. It fails wrapping
// ErrRefused if c changes nothing, if the drives cannot hold the policy
// (fewer drives than k+m, no parity, more shards of a set on one node than
// parity) or if the width is out of range.
func (s *Store) ChangeErasure(ctx context.Context, c ErasureChange) (*placement.Map, error) {
	switch {
	case c.Width < 0 || c.Width > placement.MaxWidth:
		return nil, fmt.Errorf("%w: stripe width %d not in 1..%d (0 or auto: the default for the drive count)", ErrRefused, c.Width, placement.MaxWidth)
	case c.DefaultWidth && c.Width != 0:
		return nil, fmt.Errorf("%w: stripe width %d and the default width at once", ErrRefused, c.Width)
	case c.Policy == nil && c.Width == 0 && !c.DefaultWidth:
		return nil, fmt.Errorf("%w: neither an erasure policy nor a stripe width to set", ErrRefused)
	}
	if c.Policy != nil {
		if err := c.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		if cur := s.fsm.currentMap(); cur != nil {
			if err := survivesOneDomain(*c.Policy, cur.Drives); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrRefused, err)
			}
		}
	}
	if err := s.replan(ctx, &c); err != nil {
		return nil, err
	}
	return s.fsm.currentMap(), nil
}

// survivesOneDomain refuses an operator's policy that the loss of one
// failure domain would break: no parity with more than one drive (a single
// drive's failure loses data), or, with several domains (nodes; each
// remote drive is its own), more shards of a set on one domain than there
// are parity shards, as placement spreads a set evenly over the domains.
func survivesOneDomain(pol placement.Policy, drives []placement.Drive) error {
	if pol.SetSize() > len(drives) {
		return nil // planning refuses it, naming the drives it needs
	}
	if pol.Parity == 0 && len(drives) > 1 {
		return fmt.Errorf("policy %s has no parity: losing any one of the %d drives would lose data", pol, len(drives))
	}
	domains := map[string]bool{}
	for _, d := range drives {
		if d.Class == driver.ClassRemote {
			domains["remote:"+string(d.ID)] = true
		} else {
			domains["node:"+string(d.Node)] = true
		}
	}
	if n := len(domains); n > 1 {
		if per := (pol.SetSize() + n - 1) / n; per > pol.Parity {
			return fmt.Errorf("policy %s over %d nodes puts up to %d shards of a stripe on one node, more than its %d parity: losing that node would make data unreadable", pol, n, per, pol.Parity)
		}
	}
	return nil
}

// driveClass maps an advertised class to the map's; unknown means local.
func driveClass(c string) driver.Class {
	if driver.Class(c) == driver.ClassRemote {
		return driver.ClassRemote
	}
	return driver.ClassLocal
}
