package cluster

import (
	"context"
	"fmt"
	"slices"

	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/placement"
)

// Settled containers (meta.ContainerInfo.Settled).
//
// A container records the epoch of the cluster map from which on the
// older maps kept during a migration may hold its artifacts. The FSM sets
// it when it applies the container's creation, to the epoch of its
// current map then: every node that sees the container has applied that
// map, and writes with it or a later one. The leader's migrator raises it
// for every container (cmdSettleContainers) once a migration pass that
// began after the current map settled ended clean: no older map holds an
// artifact that is not also in its current set then. A listing needs the
// older maps' sets from that epoch on (engine.List); a container whose
// value reaches the current epoch needs none, so a node down after a map
// change costs its listings nothing once a clean pass has run.
//
// Both are deterministic: the FSM reads its own maps, never the
// proposer's view. Entries and snapshots written before the field existed
// decode to 0, "every older map", the safe reading.

// cmdSettleContainers raises every container's Settled epoch, and
// cmdSettleContainersExcept every container's but those it names (the
// migrator leaves out the containers with an upload in progress it could
// not move). They are numbered apart from the commands other work adds in
// fsm.go. The second is a command of its own so that a node of a version
// before it refuses it (an unknown command) rather than settling every
// container: such a node's listings stay strict, the safe side.
const (
	cmdSettleContainers       cmdType = 29
	cmdSettleContainersExcept cmdType = 30
)

// settleContainersCmd raises every container's Settled to at least Epoch,
// but those in Except.
type settleContainersCmd struct {
	Epoch  placement.Epoch     `json:"epoch"`
	Except []meta.ContainerRef `json:"except,omitempty"`
}

// currentEpoch returns the epoch of the newest map, 0 before the first.
// The caller holds f.mu.
func (f *fsm) currentEpoch() placement.Epoch {
	if len(f.maps) == 0 {
		return 0
	}
	return f.maps[len(f.maps)-1].Epoch
}

func (f *fsm) settleContainers(c settleContainersCmd) error {
	if cur := f.currentEpoch(); c.Epoch > cur {
		return fmt.Errorf("cluster: settle containers through epoch %d: the current map is of epoch %d", c.Epoch, cur)
	}
	for _, cs := range f.containers {
		for name, ci := range cs {
			if slices.Contains(c.Except, ci.Ref()) {
				continue
			}
			if ci.Settled < uint64(c.Epoch) {
				ci.Settled = uint64(c.Epoch)
				cs[name] = ci
			}
		}
	}
	return nil
}

// SettleContainers records that the older maps of epochs below epoch
// hold no artifact of any container but those in except: the caller (the
// migrator, on the leader) ran a migration pass over every container that
// began after the map of epoch epoch settled and ended clean, and moved
// the uploads in progress of all but those. Each other container's
// Settled becomes at least epoch; a container created later has its
// creation's epoch, which is not lower.
func (s *Store) SettleContainers(ctx context.Context, epoch placement.Epoch, except []meta.ContainerRef) error {
	ct := cmdSettleContainers
	if len(except) > 0 {
		ct = cmdSettleContainersExcept
	}
	if err := s.applyCmd(ctx, ct, settleContainersCmd{Epoch: epoch, Except: except}); err != nil {
		return fmt.Errorf("cluster: settle containers through epoch %d: %w", epoch, err)
	}
	return nil
}
