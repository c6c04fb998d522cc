package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/peer"
	"github.com/vaultaire/vaultaire/placement"
)

// Topology is the engine's view of a cluster: the replicated cluster map
// and a Driver for every drive in it — this node's own drives directly,
// other nodes' through their RPC listener (driver/peer), addressed by the
// RPC address the node registered. It is safe for concurrent use.
type Topology struct {
	store  *Store
	local  map[placement.DriveID]driver.Driver
	secret []byte
	http   *http.Client
	log    *slog.Logger

	mu    sync.Mutex
	peers map[placement.DriveID]*peer.Client // by drive; replaced when the node's address changes
	addrs map[placement.DriveID]string

	standbys map[placement.DriveID]driver.Driver // read-only views of remote drives, set by UseStandbys

	members atomic.Pointer[func() []Member] // gossip's view, set by WatchMembers
	down    atomic.Pointer[downNodes]       // cached from members

	drain drainRate // DrainProgress's samples
}

// downNodes is the set of nodes gossip reports not alive, as of at.
type downNodes struct {
	at    time.Time
	nodes map[string]MemberState
}

// downRefresh is how long Drive trusts its cached view of which nodes are
// down before asking gossip again.
const downRefresh = 200 * time.Millisecond

// WatchMembers makes the Topology treat the drives of every node that
// members (gossip: Membership.Members) reports suspect, dead or left as
// offline: Drive fails for them with driver.ErrOffline, so requests do not
// wait on a node that is paused, partitioned or gone; what such drives
// miss is the healer's to restore once the node is back. A node gossip
// does not know (yet) is taken as up. Call it before serving.
func (t *Topology) WatchMembers(members func() []Member) {
	t.members.Store(&members)
	t.down.Store(nil)
}

// nodeDown reports whether gossip reports node not alive, and its state.
func (t *Topology) nodeDown(node string) (MemberState, bool) {
	mf := t.members.Load()
	if mf == nil {
		return 0, false
	}
	d := t.down.Load()
	if d == nil || time.Since(d.at) > downRefresh {
		d = &downNodes{at: time.Now(), nodes: map[string]MemberState{}}
		for _, m := range (*mf)() {
			if m.State != MemberAlive {
				d.nodes[m.Name] = m.State
			}
		}
		t.down.Store(d)
	}
	st, ok := d.nodes[node]
	return st, ok
}

// UseStandbys gives t read-only views of remote drives other nodes own
// (this node was started with the same --remote): while gossip reports a
// remote drive's node down, Drive returns its standby instead of failing,
// so the shards and records in the bucket stay readable when their owner
// is lost. A standby must never write the bucket (driver/remote,
// Config.ReadOnly: its writes fail with driver.ErrOffline, which the
// engine takes as the drive being unavailable, as it would the owner's
// node being down). Call it before serving.
func (t *Topology) UseStandbys(s map[placement.DriveID]driver.Driver) {
	t.standbys = s
}

// ErrUnknownDrive means a drive is not in the cluster map, or its node
// cannot be reached (no RPC address). The engine treats it as offline.
var ErrUnknownDrive = errors.New("cluster: drive not in the cluster map")

// NewTopology returns the topology of s's cluster map, serving local
// drives from local and reaching the others with secret.
func NewTopology(s *Store, local map[placement.DriveID]driver.Driver, secret []byte, log *slog.Logger) *Topology {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Topology{
		store: s, local: local, secret: secret, log: log,
		http:  &http.Client{Transport: RPCTransport(secret)},
		peers: map[placement.DriveID]*peer.Client{},
		addrs: map[placement.DriveID]string{},
	}
}

// Map returns the current cluster map (nil until the first node
// registered; vaultd waits for it with Store.WaitReady before serving).
func (t *Topology) Map() *placement.Map { return t.store.Map() }

// OlderMaps returns earlier maps, newest first.
func (t *Topology) OlderMaps() []*placement.Map { return t.store.OlderMaps() }

// Drive returns the Driver of drive id.
func (t *Topology) Drive(id placement.DriveID) (driver.Driver, error) {
	m := t.store.Map()
	if d, ok := t.local[id]; ok {
		// A remote drive another node adopted is reached through that
		// node, like any peer drive: this node's driver is fenced.
		if m == nil {
			return d, nil
		}
		if dr, ok := m.Drive(id); !ok || dr.Class != driver.ClassRemote || string(dr.Node) == t.store.cfg.NodeID {
			return d, nil
		}
	}
	if m == nil {
		return nil, fmt.Errorf("%w: %s (no cluster map yet)", ErrUnknownDrive, id)
	}
	dr, ok := m.Drive(id)
	current := ok
	for _, o := range t.store.OlderMaps() {
		if ok {
			break
		}
		// A drained drive is only in older maps until migration moved
		// its data off: reads and the migrator still need it.
		dr, ok = o.Drive(id)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownDrive, id)
	}
	if !current && dr.Class != driver.ClassRemote && t.store.fsm.isRemoved(string(dr.Node)) {
		// Only in older maps now; its data is lost or moved (a remote
		// drive's bucket is not: another node adopts it).
		return nil, fmt.Errorf("cluster: drive %s: %w: node %s was removed", id, driver.ErrRemoved, dr.Node)
	}
	if st, down := t.nodeDown(string(dr.Node)); down {
		if sb, ok := t.standbys[id]; ok && dr.Class == driver.ClassRemote {
			return sb, nil // read from the bucket directly; writes refused
		}
		return nil, fmt.Errorf("cluster: drive %s: %w: node %s is %s by gossip", id, driver.ErrOffline, dr.Node, st)
	}
	n, ok := t.store.Node(string(dr.Node))
	if !ok || n.RPCAddr == "" {
		return nil, fmt.Errorf("%w: %s: node %s has no RPC address", ErrUnknownDrive, id, dr.Node)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.peers[id]; ok && t.addrs[id] == n.RPCAddr {
		return c, nil
	}
	c, err := peer.NewClient(peer.ClientConfig{Addr: n.RPCAddr, Drive: id, Secret: t.secret, HTTP: t.http, Logger: t.log})
	if err != nil {
		return nil, err
	}
	t.peers[id], t.addrs[id] = c, n.RPCAddr
	return c, nil
}

// Status returns this node's view of the cluster: Raft, gossip members
// (from members, which may be nil) and the map's drives, each probed with
// Info within ctx.
func (t *Topology) Status(ctx context.Context, members []Member) Status {
	var st Status
	t.store.raftStatus(&st)
	for _, m := range members {
		st.Members = append(st.Members, MemberStatus{
			Name: m.Name, State: m.State.String(), Gossip: m.Addr,
			S3Addr: m.S3Addr, RaftAddr: m.RaftAddr, RPCAddr: m.RPCAddr, Drives: len(m.Drives),
		})
	}
	m := t.store.Map()
	if m == nil {
		return st
	}
	st.Map = MapStatusOf(m)
	for _, o := range t.store.OlderMaps() {
		st.Map.Older = append(st.Map.Older, uint64(o.Epoch))
	}
	// The current map's drives, and the draining ones, which it no
	// longer has but which still hold data until the drain is done.
	drives := slices.Clone(m.Drives)
	draining := t.store.fsm.drainingDrives()
	for _, id := range draining {
		if _, ok := m.Drive(placement.DriveID(id)); !ok {
			if dr, ok := t.store.registeredDrive(id); ok {
				drives = append(drives, dr)
			}
		}
	}
	st.Drives = make([]DriveStatus, len(drives))
	var wg sync.WaitGroup
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for i, dr := range drives {
		st.Drives[i] = DriveStatus{ID: string(dr.ID), Node: string(dr.Node), Zone: dr.Zone, Class: string(dr.Class), State: "ok",
			Draining: slices.Contains(draining, string(dr.ID))}
		wg.Go(func() {
			ds := &st.Drives[i]
			d, err := t.Drive(dr.ID)
			if err == nil {
				var info driver.Info
				if info, err = d.Info(pctx); err == nil {
					ds.Used, ds.Free, ds.Total = info.Usage.Used, info.Usage.Free, info.Usage.Total
				}
			}
			if err != nil {
				ds.State, ds.Error = "offline", err.Error()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(st.Drives, func(a, b DriveStatus) int { return strings.Compare(a.ID, b.ID) })
	st.Drain = t.DrainProgress(ctx)
	return st
}
