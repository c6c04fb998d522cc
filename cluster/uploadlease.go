package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vaultaire/vaultaire/driver/peer"
	"github.com/vaultaire/vaultaire/meta"
)

// Upload leases: the cluster-wide lock of a multipart upload.
//
// Every operation that changes a multipart upload (a part's commit, the
// completion, an abort, the sweeper) runs under the upload's lease, held
// by one node at a time (engine.UploadLocker). A node acquires it with a
// Raft command carrying its name, a token, a ttl and its wall-clock time;
// the FSM grants it unless another node holds an unexpired lease of the
// upload. Expiry is judged against the time carried in the command, so
// every replica decides alike; expired leases are dropped on apply. The
// holder trusts its lease for uploadLeaseTTL-uploadLeaseMargin from the
// moment it proposed the command (by its monotonic clock), so a lease is
// never held twice as long as the nodes' wall clocks differ by less than
// uploadLeaseMargin (10 s; NTP keeps them within milliseconds). The engine
// checks the lease before each destructive step. A node paused between
// that check and the step's end for longer than the margin could overlap
// with the next holder; its writes are fenced instead: FenceUpload puts
// the lease (upload, token, granting Raft index) into the ctx of the
// writes made under it, and every node's drives (Fence, fence.go) refuse
// a write whose lease is no longer the upload's current one once they
// have applied the granting index.
//
// A holder renews its lease (the same token, a new expiry) every third of
// the time it trusts it, until it unlocks: an operation may take longer
// than the ttl (a large part streamed into an upload that a map change
// left in an older set, a completion copying many parts), and it must not
// lose the lease to its own duration. A holder paused or cut off for
// longer than the ttl stops renewing; another node may then take the
// lease, and the holder, resumed, finds its trust expired (held) and its
// writes fenced.
var (
	uploadLeaseTTL    = 30 * time.Second
	uploadLeaseMargin = 10 * time.Second // the bound assumed on clock skew
)

const (
	// uploadLeaseWait bounds how long LockUpload retries a lease held by
	// another node before failing as unavailable.
	uploadLeaseWait = 5 * time.Second
	// uploadLeaseTimeout bounds the release of a lease.
	uploadLeaseTimeout = 5 * time.Second
)

// errUploadLeased is Apply's answer to an acquire of a lease another node
// holds.
var errUploadLeased = errors.New("cluster: upload locked by another node")

// uploadLease is a lease as replicated.
type uploadLease struct {
	Upload  string `json:"upload"`
	Node    string `json:"node"`
	Token   string `json:"token"`
	Expires int64  `json:"expires"`         // unix nanos, by the acquirer's clock
	Index   uint64 `json:"index,omitempty"` // the Raft index that granted it: writes under it carry it (fence.go)
}

type (
	acquireLeaseCmd struct {
		Upload string `json:"upload"`
		Node   string `json:"node"`
		Token  string `json:"token"`
		TTL    int64  `json:"ttl"` // nanoseconds
		Now    int64  `json:"now"` // unix nanos: the proposer's clock
	}
	releaseLeaseCmd struct {
		Upload string `json:"upload"`
		Node   string `json:"node"`
		Token  string `json:"token"`
	}
)

// acquireLease grants c's lease unless another node holds an unexpired one
// (at c.Now). A node may take over its own lease (a retry, or a new
// operation after a release that failed): its local lock serialises its
// own operations. Called with f.mu held.
func (f *fsm) acquireLease(c acquireLeaseCmd, index uint64) error {
	if c.Upload == "" || c.Node == "" || c.TTL <= 0 {
		return errors.New("cluster: malformed upload lease")
	}
	for id, l := range f.leases {
		if l.Expires <= c.Now {
			delete(f.leases, id) // the order of deletion does not matter
		}
	}
	if l, ok := f.leases[c.Upload]; ok && l.Node != c.Node {
		return fmt.Errorf("%w: %s", errUploadLeased, l.Node)
	}
	if f.leases == nil {
		f.leases = make(map[string]uploadLease)
	}
	f.leases[c.Upload] = uploadLease{Upload: c.Upload, Node: c.Node, Token: c.Token, Expires: c.Now + c.TTL, Index: index}
	return nil
}

// releaseLease drops c's lease if c's node and token hold it.
func (f *fsm) releaseLease(c releaseLeaseCmd) error {
	l, ok := f.leases[c.Upload]
	if !ok || l.Node != c.Node || l.Token != c.Token {
		return fmt.Errorf("%w: release by %s, not the holder", errUploadLeased, c.Node)
	}
	delete(f.leases, c.Upload)
	return nil
}

// lease returns upload's lease, if any.
func (f *fsm) lease(upload string) (uploadLease, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	l, ok := f.leases[upload]
	return l, ok
}

// leaseHeld reports whether node holds upload's lease with token.
func (f *fsm) leaseHeld(upload, node, token string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	l, ok := f.leases[upload]
	return ok && l.Node == node && l.Token == token
}

// leaseList returns the leases sorted by upload, for a snapshot. Called
// with f.mu held.
func (f *fsm) leaseList() []uploadLease {
	out := make([]uploadLease, 0, len(f.leases))
	for _, l := range f.leases {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b uploadLease) int { return strings.Compare(a.Upload, b.Upload) })
	return out
}

// leaseMap indexes a snapshot's leases.
func leaseMap(ls []uploadLease) map[string]uploadLease {
	m := make(map[string]uploadLease, len(ls))
	for _, l := range ls {
		m[l.Upload] = l
	}
	return m
}

// LockUpload acquires the cluster-wide lease of upload id for this node
// (engine.UploadLocker). While another node holds it, it retries with
// backoff for up to uploadLeaseWait (or until ctx ends) and then fails
// wrapping meta.ErrUnavailable. held reports whether the lease is still
// certainly this node's; unlock releases it (a failed release leaves it to
// expire).
func (s *Store) LockUpload(ctx context.Context, id string) (held func() bool, unlock func(), err error) {
	token := rand.Text()
	node := s.cfg.NodeID
	giveUp := time.Now().Add(uploadLeaseWait)
	ttl, margin := uploadLeaseTTL, uploadLeaseMargin // read once: the renewal goroutine outlives the call
	backoff := 10 * time.Millisecond
	for {
		start := time.Now()
		err = s.applyCmd(ctx, cmdAcquireLease, acquireLeaseCmd{Upload: id, Node: node, Token: token, TTL: int64(ttl), Now: start.UnixNano()})
		// apply returns once this node applied the command: its state
		// says whether the lease is ours (whatever the error, which may
		// be an outcome unknown to the forwarder).
		if s.fsm.leaseHeld(id, node, token) {
			var valid atomic.Pointer[time.Time]
			until := start.Add(ttl - margin)
			valid.Store(&until)
			held = func() bool { return time.Now().Before(*valid.Load()) }
			stop, renewed := make(chan struct{}), make(chan struct{})
			go s.renewLease(id, node, token, ttl, margin, &valid, stop, renewed)
			var once sync.Once
			unlock = func() {
				once.Do(func() {
					close(stop)
					<-renewed // no renewal after the release
					rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), uploadLeaseTimeout)
					defer cancel()
					if err := s.applyCmd(rctx, cmdReleaseLease, releaseLeaseCmd{Upload: id, Node: node, Token: token}); err != nil {
						s.cfg.Logger.Debug("upload lease release failed; it expires", "upload", id, "err", err)
					}
				})
			}
			return held, unlock, nil
		}
		if err == nil {
			err = errUploadLeased
		}
		if ctx.Err() != nil || time.Now().After(giveUp) {
			return nil, nil, fmt.Errorf("%w: upload %s: %w", meta.ErrUnavailable, id, err)
		}
		t := time.NewTimer(backoff/2 + mrand.N(backoff))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("%w: upload %s: %w", meta.ErrUnavailable, id, context.Cause(ctx))
		case <-t.C:
		}
		backoff = min(2*backoff, 400*time.Millisecond)
	}
}

// renewLease renews this node's lease of upload id (token) every third of
// the time it is trusted (ttl less margin, as LockUpload read them: a
// test may change the package's values once the call returned), moving
// valid on after each renewal that kept it,
// until stop is closed or the lease is lost (another node took it after it
// expired: the renewals failed for longer than the ttl). It closes done
// when it returns.
func (s *Store) renewLease(id, node, token string, ttl, margin time.Duration, valid *atomic.Pointer[time.Time], stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	every := (ttl - margin) / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), every)
		err := s.applyCmd(ctx, cmdAcquireLease, acquireLeaseCmd{Upload: id, Node: node, Token: token, TTL: int64(ttl), Now: start.UnixNano()})
		cancel()
		l, ok := s.fsm.lease(id)
		switch {
		case ok && l.Node == node && l.Token == token && err == nil:
			until := start.Add(ttl - margin)
			valid.Store(&until)
		case ok && (l.Node != node || l.Token != token):
			s.cfg.Logger.Warn("upload lease lost to another holder while held; the operation under it fails", "upload", id, "holder", l.Node)
			return
		default:
			// Not renewed this time (no leader, a timeout): the trust
			// runs out unless a later renewal succeeds.
			s.cfg.Logger.Debug("upload lease renewal failed", "upload", id, "err", err)
		}
	}
}

// UploadLeased reports whether a node holds upload id's lease now, by this
// node's clock (engine.UploadLeases).
func (s *Store) UploadLeased(id string) bool {
	l, ok := s.fsm.lease(id)
	return ok && l.Expires > time.Now().UnixNano()
}

// FenceUpload returns ctx carrying this node's lease of upload id
// (engine.UploadFencer), so that the drives of every node refuse the
// writes made under it once the lease has passed to another node or been
// released (fence.go). Without a lease of this node it returns ctx.
func (s *Store) FenceUpload(ctx context.Context, id string) context.Context {
	l, ok := s.fsm.lease(id)
	if !ok || l.Node != s.cfg.NodeID {
		return ctx
	}
	return peer.WithLease(ctx, peer.Lease{Upload: id, Token: l.Token, Index: l.Index})
}
