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
	for try := 0; try < 3; try++ {
		cur := s.fsm.currentMap()
		var drives []placement.Drive
		for _, n := range s.fsm.nodeList() {
			for _, d := range n.Drives {
				drives = append(drives, placement.Drive{ID: placement.DriveID(d.ID), Node: placement.NodeID(n.Name), Zone: d.Zone, Class: driveClass(d.Class)})
			}
		}
		if len(drives) == 0 {
			return nil
		}
		slices.SortFunc(drives, func(a, b placement.Drive) int { return strings.Compare(string(a.ID), string(b.ID)) })
		if cur != nil && slices.Equal(cur.Drives, drives) {
			return nil
		}
		pol, err := placement.DefaultPolicy(len(drives))
		if err != nil {
			return err
		}
		pgs := placement.DefaultPGCount
		epoch := placement.Epoch(1)
		if cur != nil {
			pgs, epoch = cur.PGCount(), cur.Epoch+1
		}
		m, err := placement.NewMap(drives, pol, pgs, epoch)
		if err != nil {
			return fmt.Errorf("cluster: plan map: %w", err)
		}
		err = s.applyCmd(ctx, cmdSetMap, setMapCmd{Map: m})
		if !errors.Is(err, errStaleMap) {
			if err == nil {
				s.log.Info("cluster: new map", "epoch", m.Epoch, "policy", m.Policy.String(), "drives", len(m.Drives))
			}
			return err
		}
	}
	return fmt.Errorf("cluster: map kept changing while planning: %w", errStaleMap)
}

// driveClass maps an advertised class to the map's; unknown means local.
func driveClass(c string) driver.Class {
	if driver.Class(c) == driver.ClassRemote {
		return driver.ClassRemote
	}
	return driver.ClassLocal
}
