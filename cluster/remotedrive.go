package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// Remote drives in the cluster map.
//
// A remote drive (driver/remote, class "remote") is advertised by gossip
// like a local one, by the node that declares it (vaultd server --remote),
// and registered in the map attached to that node; every other node
// reaches it through that node's RPC, as any peer drive. Its registered
// entry (MemberDrive) carries an owner epoch, 1 at first registration.
// Exactly one node owns it: a node advertising a remote drive the map
// attaches to another node does not get it by registering (putNode drops
// it from the advertisement); only AdoptDrive moves it, through Raft,
// checking and bumping the owner epoch, so two adoptions racing cannot
// both win (the loser gets ErrDriveMoved).
//
// The owner's driver checks OwnerFence before every write to the bucket:
// the drive must still be attached to this node at the epoch it was
// claimed with, in a state this node synced with the Raft leader less
// than OwnerLease ago (by its monotonic clock, which runs on while the
// process is stopped). A node that lost the drive to an adoption, or that
// is cut off from the cluster or was paused and so cannot know, stops
// writing within OwnerLease; the adopter waits OwnerLease plus the
// driver's call timeout after its adoption committed before it reads the
// bucket and writes (vaultd), so the deposed owner's last write has
// landed (or been abandoned) by then.
//
// Other nodes started with the same remote drive are standbys: they
// never write it, but Topology.Drive reads it through their read-only
// view of the bucket (Topology.UseStandbys) while gossip reports the
// owner's node down, so losing the owner loses no access to the shards
// in the bucket; writes to the drive wait for an adoption.

// cmdAdoptDrive moves a remote drive to another node. It is numbered
// apart from the commands other work adds in fsm.go.
const cmdAdoptDrive cmdType = 28

// OwnerLease is how long after its last sync with the Raft leader began a
// node keeps writing to the remote drives it owns (OwnerFence).
const OwnerLease = 5 * time.Second

// ErrNotOwner means a remote drive is not (or no longer) attached to this
// node at the epoch this node claimed it with, or this node cannot tell
// because its Raft state is stale: it must not write to the drive.
var ErrNotOwner = errors.New("cluster: not the remote drive's owner")

// ErrDriveMoved means an adoption named an owner or owner epoch the
// remote drive no longer has: another adoption won.
var ErrDriveMoved = errors.New("cluster: remote drive attached elsewhere")

// adoptDriveCmd moves remote drive Drive from node From to node To with
// owner epoch Epoch, which must be the current one + 1.
type adoptDriveCmd struct {
	Drive string `json:"drive"`
	From  string `json:"from"`
	To    string `json:"to"`
	Epoch uint64 `json:"epoch"`
}

// remoteOwner returns the node a remote drive is registered on and its
// entry, under f.mu. At most one node holds a remote drive (should a bug
// break that, the first by name is the owner, so Apply stays
// deterministic).
func (f *fsm) remoteOwner(id string) (owner string, entry MemberDrive, found bool) {
	for name, n := range f.nodes {
		if found && name > owner {
			continue
		}
		for _, d := range n.Drives {
			if d.ID == id && driveClass(d.Class) == driver.ClassRemote {
				owner, entry, found = name, d, true
			}
		}
	}
	return owner, entry, found
}

// ownRemotes rewrites the remote drives n advertises against the state,
// under f.mu: a remote drive attached to another node is dropped (only
// adoptDrive moves it), one attached to n keeps its owner epoch, a new one
// gets epoch 1. Gossip does not carry epochs.
func (f *fsm) ownRemotes(n *NodeInfo) {
	out := make([]MemberDrive, 0, len(n.Drives))
	for _, d := range n.Drives {
		if driveClass(d.Class) == driver.ClassRemote {
			owner, cur, ok := f.remoteOwner(d.ID)
			switch {
			case ok && owner != n.Name:
				continue
			case ok:
				d.Epoch = cur.Epoch
			default:
				d.Epoch = max(d.Epoch, 1)
			}
		}
		out = append(out, d)
	}
	n.Drives = out
}

func (f *fsm) adoptDrive(c adoptDriveCmd) error {
	owner, cur, ok := f.remoteOwner(c.Drive)
	switch {
	case !ok:
		return fmt.Errorf("%w: remote drive %s is not in the cluster map", ErrRefused, c.Drive)
	case owner != c.From || cur.Epoch+1 != c.Epoch:
		return fmt.Errorf("%w: remote drive %s is attached to %s at owner epoch %d, not %s at %d", ErrDriveMoved, c.Drive, owner, cur.Epoch, c.From, c.Epoch-1)
	case f.removed[c.To]:
		return fmt.Errorf("%w: node %s was removed from the cluster", ErrRefused, c.To)
	}
	to, ok := f.nodes[c.To]
	if !ok {
		return fmt.Errorf("%w: node %s is not registered yet", ErrRefused, c.To)
	}
	from := f.nodes[c.From]
	from.Drives = slices.DeleteFunc(slices.Clone(from.Drives), func(d MemberDrive) bool { return d.ID == c.Drive })
	cur.Epoch = c.Epoch
	to.Drives = append(slices.DeleteFunc(slices.Clone(to.Drives), func(d MemberDrive) bool { return d.ID == c.Drive }), cur)
	sortDrives(to.Drives)
	f.nodes[c.From], f.nodes[c.To] = from, to
	return nil
}

// DriveOwner returns the node remote drive id is attached to in the
// cluster map and its owner epoch.
func (s *Store) DriveOwner(id string) (node string, epoch uint64, ok bool) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	node, d, ok := s.fsm.remoteOwner(id)
	return node, d.Epoch, ok
}

// AdoptDrive attaches remote drive id, now attached to node from at owner
// epoch epoch, to node to with owner epoch epoch+1, and installs a map in
// which other nodes reach it through to. It fails wrapping ErrDriveMoved
// if the drive has moved meanwhile. The caller decides whether from is gone
// (vaultd refuses while gossip shows it alive, unless forced) and must not
// write to the drive before the deposed owner's fence has expired
// (OwnerLease plus its driver's call timeout). It returns the new epoch.
func (s *Store) AdoptDrive(ctx context.Context, id, from, to string, epoch uint64) (uint64, error) {
	c := adoptDriveCmd{Drive: id, From: from, To: to, Epoch: epoch + 1}
	if err := s.applyCmd(ctx, cmdAdoptDrive, c); err != nil {
		return 0, fmt.Errorf("cluster: adopt remote drive %s from %s: %w", id, from, err)
	}
	s.log.Info("cluster: remote drive adopted", "drive", id, "from", from, "to", to, "owner_epoch", c.Epoch)
	return c.Epoch, s.updateMap(ctx)
}

// OwnerFence returns nil while this node owns remote drive id at owner
// epoch epoch and has proven its Raft state current within OwnerLease:
// a sync with the leader (a leader read index on a follower, VerifyLeader
// on the leader; fresh.go) that started less than OwnerLease ago by the
// monotonic clock has succeeded, and the state it brought this node up to
// still attaches the drive here at that epoch. Else it fails wrapping
// ErrNotOwner.
//
// Why that is enough: an adoption acknowledged before the sync started is
// in the state the sync brought, so the check refuses; one acknowledged
// after it started finds this node's permission ending less than
// OwnerLease after the adoption, and the adopter waits OwnerLease plus the
// driver's call timeout before it writes. The monotonic clock runs on while
// the process is stopped, so a node resumed after a pause (SIGSTOP, a VM
// freeze) finds its permission expired and must sync first: a deposed
// leader's VerifyLeader then fails, a deposed follower learns of the
// adoption. Being the Raft leader proves nothing by itself: a paused leader
// keeps believing it leads until it next counts its followers.
//
// Past OwnerLease the call syncs first (joining the sync in progress), so
// it may wait up to the leader's reply or ctx's end; past ownerRenew it
// starts a sync in the background and answers from the current permission,
// so a drive under steady writes never waits on one.
func (s *Store) OwnerFence(ctx context.Context, id string, epoch uint64) error {
	if err := s.ownsDrive(id, epoch); err != nil {
		return err
	}
	if s.verifier == nil {
		return nil // a single node: nobody else can adopt the drive
	}
	switch age := s.syncAge(); {
	case age >= OwnerLease:
		if err := s.syncedWithin(ctx, OwnerLease); err != nil {
			return fmt.Errorf("%w: drive %s: cannot confirm ownership with the Raft leader: %w", ErrNotOwner, id, err)
		}
	case age >= ownerRenew:
		s.syncCall()
	}
	return s.ownsDrive(id, epoch)
}

// ownerRenew is the age of the last sync past which OwnerFence starts
// another in the background.
const ownerRenew = time.Second

// ownsDrive checks this node's state attaches remote drive id to it at
// owner epoch epoch.
func (s *Store) ownsDrive(id string, epoch uint64) error {
	node, cur, ok := s.DriveOwner(id)
	if !ok || node != s.cfg.NodeID || cur != epoch {
		return fmt.Errorf("%w: drive %s is attached to %q at owner epoch %d; this node %s claimed it at %d", ErrNotOwner, id, node, cur, s.cfg.NodeID, epoch)
	}
	return nil
}
