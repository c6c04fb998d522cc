package cluster

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/meta"
)

// Fresh state for writes.
//
// A node answers most lookups from its own FSM. For the bucket
// configuration a write acts on (versioning, object lock) that is not
// enough: a node paused (SIGSTOP) or cut off while versioning was enabled
// through another node would, once it resumes, write as if the bucket
// were still unversioned and destroy a version (probe H5). So a write
// reads that configuration through Fresh, which answers from local state
// only while this node has recently proven itself current:
//
//   - A sync (a leader read index: syncIndex on a follower, VerifyLeader
//     on the leader) started at time t brings the FSM up to every write
//     the leader had applied by then, which includes every write
//     acknowledged to a client before t. The node is then fresh until
//     t + freshWindow by its monotonic clock, which keeps running while
//     the process is stopped: a resumed node is stale and syncs first.
//   - A configuration change returns only once every node has applied
//     it, or after at least spreadWait (> freshWindow) from its apply
//     (spread). A node that did not confirm it synced last before the
//     change was applied, so its window has closed by the time any client
//     learns of the change: its next write syncs and sees it.
//
// Concurrent callers share one sync; a node under write load syncs at
// most once per freshWindow (one small RPC to the leader), and a single
// node without peers never does. A sync that fails (no leader, leader
// unreachable) fails the write with meta.ErrUnavailable: the client
// retries, rather than a version being written under a guessed state. A
// node paused after its check and before its write is not covered (the
// window of any lease without fencing).

// freshWindow is how long a sync keeps a node fresh. It must stay below
// spreadWait (see above).
const freshWindow = time.Second

// freshness tracks when this node last proved itself current.
type freshness struct {
	mu     sync.Mutex // guards the following fields
	synced time.Time  // the start of the last successful sync (monotonic); zero: never
	call   *freshCall // the sync in progress, if any
}

// freshCall is one sync in progress; done closes when err is set.
type freshCall struct {
	started time.Time
	done    chan struct{}
	err     error
}

// Fresh returns once this node's state reflects every write acknowledged
// to any client before the call (within freshWindow of a sync), or fails
// wrapping meta.ErrUnavailable.
func (s *Store) Fresh(ctx context.Context) error {
	if s.verifier == nil {
		return nil // a single node: its state is the state
	}
	return s.syncedWithin(ctx, freshWindow)
}

// syncedWithin returns once a sync with the leader that started less than
// window ago has succeeded, joining the sync in progress or starting one,
// or fails wrapping meta.ErrUnavailable.
func (s *Store) syncedWithin(ctx context.Context, window time.Duration) error {
	asked := time.Now()
	for {
		if s.syncAge() < window {
			return nil
		}
		c := s.syncCall()
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for a sync with the leader: %w", meta.ErrUnavailable, context.Cause(ctx))
		case <-c.done:
		}
		if c.err != nil || !c.started.Before(asked) {
			return c.err
		}
		// The sync started before this call, so it may not cover a write
		// acknowledged in between: check the window again (it normally
		// holds, and a sync that outlasted it is redone).
	}
}

// syncAge is how long ago the last successful sync started (by the
// monotonic clock, which runs on while the process is stopped).
func (s *Store) syncAge() time.Duration {
	s.fresh.mu.Lock()
	defer s.fresh.mu.Unlock()
	if s.fresh.synced.IsZero() {
		return time.Duration(math.MaxInt64)
	}
	return time.Since(s.fresh.synced)
}

// syncCall returns the sync in progress, starting one if there is none.
// The sync runs on its own (catchUp is bounded by noLeaderWait), so a
// caller that gives up does not cut it short for the others.
func (s *Store) syncCall() *freshCall {
	f := &s.fresh
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.call != nil {
		return f.call
	}
	c := &freshCall{started: time.Now(), done: make(chan struct{})}
	f.call = c
	go func() {
		err := s.catchUp(context.Background()) // absent.go: the one catch-up with the leader
		f.mu.Lock()
		if err == nil && c.started.After(f.synced) {
			f.synced = c.started
		}
		c.err, f.call = err, nil
		f.mu.Unlock()
		close(c.done)
	}()
	return c
}
