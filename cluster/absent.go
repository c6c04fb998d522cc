package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/meta"
)

// Absence answers.
//
// Lookups that hit (a tenant, access key or container this node knows)
// answer from local state: nothing removes them without every answering
// node applying the removal first (applyCmd's spread). A miss is
// different: a node that lags (a follower whose apply is behind, one
// that was paused or cut off, a new leader that has not applied its
// predecessor's last entries) would answer NoSuchBucket for a bucket
// whose creation was acknowledged through another node (the partition
// suite saw a DeleteBucket through a connected follower do so 1.1 s after
// the CreateBucket returned). So before a lookup answers "absent" the
// node catches up (syncAbsent): a follower asks the leader for its
// applied index and applies as far, the leader confirms it still leads and
// applies its log; when it cannot (no leader, leader unreachable, its own
// apply stuck) for noLeaderWait, the lookup fails with
// meta.ErrUnavailable (503), never with a false "no such".
//
// Concurrent misses share syncs: at most one is in flight per node, and a
// caller joins only a sync that started after it arrived (one that
// started earlier may have read the leader's index before the write the
// caller must see), so a flood of lookups of absent names costs the
// leader at most one small RPC at a time from each node.

// absentSyncs serialises the syncs of lookup misses.
type absentSyncs struct {
	mu   sync.Mutex
	call *absentCall // the sync in flight, if any
}

// absentCall is one sync in flight; done closes once err is set.
type absentCall struct {
	done chan struct{}
	err  error
}

// syncAbsent returns once this node's state includes every write
// acknowledged to any client before the call, or fails wrapping
// meta.ErrUnavailable. A single node has nothing to do.
func (s *Store) syncAbsent(ctx context.Context) error {
	if s.verifier == nil {
		return nil
	}
	m := &s.absent
	m.mu.Lock()
	prior := m.call
	m.mu.Unlock()
	if prior != nil {
		// Started before this call: it may not cover what this call must
		// see. Wait for it, then join or start a later one.
		if err := waitAbsent(ctx, prior); err != nil {
			return err
		}
		if prior.err != nil {
			// It gave up after this call arrived: no later one would
			// do better now, and the caller's wait stays bounded.
			return prior.err
		}
	}
	m.mu.Lock()
	if c := m.call; c != nil {
		// prior has finished (and cleared m.call), so c started after
		// this call arrived.
		m.mu.Unlock()
		if err := waitAbsent(ctx, c); err != nil {
			return err
		}
		return c.err
	}
	c := &absentCall{done: make(chan struct{})}
	m.call = c
	m.mu.Unlock()
	// The sync outlives a caller that gives up (joiners wait for it); it
	// is bounded by noLeaderWait and syncTimeout.
	go func() {
		c.err = s.catchUp(context.WithoutCancel(ctx))
		m.mu.Lock()
		m.call = nil
		m.mu.Unlock()
		close(c.done)
	}()
	if err := waitAbsent(ctx, c); err != nil {
		return err
	}
	return c.err
}

// waitAbsent waits for c, or fails wrapping meta.ErrUnavailable when ctx
// ends first.
func waitAbsent(ctx context.Context, c *absentCall) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for a sync with the leader: %w", meta.ErrUnavailable, context.Cause(ctx))
	}
}

// catchUp brings this node up to the leader's applied state, retrying
// through an election for up to noLeaderWait, as forwarded writes do.
func (s *Store) catchUp(ctx context.Context) error {
	giveUp := time.Now().Add(noLeaderWait)
	for {
		err := s.catchUpOnce(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(giveUp) || s.raft.State() == raft.Shutdown {
			return fmt.Errorf("%w: catch up with the leader: %w", meta.ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: catch up with the leader: %w", meta.ErrUnavailable, err)
		case <-time.After(forwardRetry):
		}
	}
}

// catchUpOnce is one attempt of catchUp: a follower syncs with the
// leader's read index (syncIndex); the leader applies its own.
func (s *Store) catchUpOnce(ctx context.Context) error {
	if s.raft.State() != raft.Leader {
		return s.syncIndex(ctx)
	}
	last, err := s.leaderIndex()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	return s.waitApplied(ctx, last)
}

// leaderIndex is this node's read index as the leader: its last log
// index, taken before it confirms it still leads. Every write
// acknowledged to a client before the call is in the log up to there: a
// new leader holds its predecessor's committed entries before it has
// applied them, or even knows them committed, so its applied index (what
// serveIndex answered before session 12) can miss one.
func (s *Store) leaderIndex() (uint64, error) {
	last := s.raft.LastIndex()
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	return last, nil
}
