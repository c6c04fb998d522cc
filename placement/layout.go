package placement

import (
	"fmt"

	"github.com/vaultaire/vaultaire/driver"
)

// Layout names how a container's shards are spread over the drive classes
// (driver.ClassLocal, driver.ClassRemote) of a map. The names reach the
// Raft log (a container's storage policy) and records; append only.
type Layout string

// Layouts. The zero Layout is the map's own table (Map.PGs), which mixes
// every drive regardless of class.
const (
	// LayoutLocal puts every shard on local drives.
	LayoutLocal Layout = "local"
	// LayoutHybrid puts the data shards on local drives and the parity
	// shards on remote drives.
	LayoutHybrid Layout = "hybrid"
	// LayoutRemote puts every shard on remote drives: where the tier
	// policy moves artifacts.
	LayoutRemote Layout = "remote"
)

// ForLayout returns the map a container of layout l uses: the same epoch,
// drives, PG count and PG → name hashing as m, with a policy and PG → drive
// set table of its own, computed from the drives of the classes l uses by
// the same rendezvous walk as NewMap (so the same map gives the same sets
// on every node, and a joining drive moves only the sets it enters):
//
//   - LayoutLocal: k+m over the local drives. A map without remote drives
//     is its own local layout (ForLayout returns m), so clusters without
//     remote drives place exactly as before. Otherwise the policy is m's
//     when an operator chose it and it fits the local drives, else
//     DefaultPolicy(local drives).
//   - LayoutHybrid: p = min(max(m.Policy.Parity, 1), remote drives)
//     parity shards on remote drives (slots k..k+p-1) and
//     k = min(m.Policy.Data, local drives, p × local failure domains)
//     data shards on local drives (slots 0..k-1, node and zone caps as in
//     NewMap). The failure domains are the nodes, or a single node's
//     drives. With several nodes the node cap is then at most p, so
//     losing a whole node (or any p local drives of a set) loses no data;
//     reads need only the data shards, so they never touch a remote drive
//     while the local ones answer; and since k > p whenever there are
//     more local drives than remote ones, the write quorum (k) is met by
//     the local drives alone while the remote is down. With 4 local
//     drives on one node and 2 remote drives that is 4+2; with 3 nodes of
//     2 drives and 2 remote drives, 4+2; with 3 nodes and 1 remote drive,
//     3+1.
//   - LayoutRemote: DefaultPolicy(remote drives) over the remote drives.
//
// The result's Layout field is l (or empty when it is m itself); it must
// not be modified. ForLayout fails, wrapping ErrTooFewDrives, when the map
// lacks drives of a class l needs: hybrid and remote need at least one
// remote drive. It recomputes the table on every call; callers cache it
// per map.
func (m *Map) ForLayout(l Layout) (*Map, error) {
	if l == "" || m.Layout == l {
		return m, nil
	}
	if m.Layout != "" {
		return nil, fmt.Errorf("%w: layout %s of a %s layout map", ErrInvalidMap, l, m.Layout)
	}
	var local, remote []Drive
	for _, d := range m.Drives {
		if d.Class == driver.ClassRemote {
			remote = append(remote, d)
		} else {
			local = append(local, d)
		}
	}
	var tables [][][]DriveID
	var pol Policy
	switch l {
	case LayoutLocal:
		if len(remote) == 0 {
			return m, nil
		}
		p := m.Policy
		if !m.Chosen || p.SetSize() > len(local) {
			var err error
			if p, err = DefaultPolicy(len(local)); err != nil {
				return nil, fmt.Errorf("%w: layout local: no local drives", ErrTooFewDrives)
			}
		}
		t, err := classTable(local, p.SetSize(), m.PGCount(), m.Epoch)
		if err != nil {
			return nil, err
		}
		tables, pol = [][][]DriveID{t}, p
	case LayoutHybrid:
		if len(remote) == 0 || len(local) == 0 {
			return nil, fmt.Errorf("%w: layout hybrid needs local and remote drives, map has %d local and %d remote", ErrTooFewDrives, len(local), len(remote))
		}
		// k <= p × failure domains: the node caps then put at most p
		// data shards of a set on one node, so losing a whole node
		// leaves k shards. A single node's domains are its drives.
		nodes := map[NodeID]bool{}
		for _, d := range local {
			nodes[d.Node] = true
		}
		domains := len(nodes)
		if domains == 1 {
			domains = len(local)
		}
		p := min(max(m.Policy.Parity, 1), len(remote))
		k := min(m.Policy.Data, len(local), p*domains)
		lt, err := classTable(local, k, m.PGCount(), m.Epoch)
		if err != nil {
			return nil, err
		}
		rt, err := classTable(remote, p, m.PGCount(), m.Epoch)
		if err != nil {
			return nil, err
		}
		tables, pol = [][][]DriveID{lt, rt}, Policy{Data: k, Parity: p}
	case LayoutRemote:
		p, err := DefaultPolicy(len(remote))
		if err != nil {
			return nil, fmt.Errorf("%w: layout remote: no remote drives", ErrTooFewDrives)
		}
		t, err := classTable(remote, p.SetSize(), m.PGCount(), m.Epoch)
		if err != nil {
			return nil, err
		}
		tables, pol = [][][]DriveID{t}, p
	default:
		return nil, fmt.Errorf("%w: unknown layout %q", ErrInvalidMap, l)
	}
	size := pol.SetSize()
	pgs := make([][]DriveID, m.PGCount())
	slots := make([]DriveID, 0, len(pgs)*size)
	for pg := range pgs {
		start := len(slots)
		for _, t := range tables {
			slots = append(slots, t[pg]...)
		}
		pgs[pg] = slots[start:len(slots):len(slots)]
	}
	return &Map{Epoch: m.Epoch, Policy: pol, Drives: m.Drives, PGs: pgs, Chosen: m.Chosen, Width: m.Width, WidthBy: m.WidthBy, Layout: l}, nil
}

// classTable picks size drives of drives for each of pgCount PGs as NewMap
// does.
func classTable(drives []Drive, size, pgCount int, epoch Epoch) ([][]DriveID, error) {
	t, err := NewMap(drives, Policy{Data: size}, pgCount, epoch)
	if err != nil {
		return nil, err
	}
	return t.PGs, nil
}

// HasRemote reports whether the map has a drive of class driver.ClassRemote.
func (m *Map) HasRemote() bool {
	for _, d := range m.Drives {
		if d.Class == driver.ClassRemote {
			return true
		}
	}
	return false
}
