package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/tenant"
)

// lagTransport is a raft transport whose node can be made to lag: while
// paused, the RPCs that carry log entries (and votes) are held before
// raft sees them; heartbeats (raft's fast path, not the consumer) still
// pass, so the node stays a follower that simply does not apply, as a
// slow or half-cut-off follower. Its RPC listener (syncs) keeps working.
type lagTransport struct {
	transport
	out  chan raft.RPC
	done chan struct{}
	once sync.Once

	mu     sync.Mutex
	resume chan struct{} // closed while not paused
}

func newLagTransport(t transport) *lagTransport {
	l := &lagTransport{transport: t, out: make(chan raft.RPC), done: make(chan struct{}), resume: make(chan struct{})}
	close(l.resume)
	go l.run()
	return l
}

func (l *lagTransport) run() {
	in := l.transport.Consumer()
	for {
		var rpc raft.RPC
		select {
		case rpc = <-in:
		case <-l.done:
			return
		}
		l.mu.Lock()
		r := l.resume
		l.mu.Unlock()
		select {
		case <-r:
		case <-l.done:
			return
		}
		select {
		case l.out <- rpc:
		case <-l.done:
			return
		}
	}
}

func (l *lagTransport) Consumer() <-chan raft.RPC { return l.out }

func (l *lagTransport) pause() {
	l.mu.Lock()
	select {
	case <-l.resume:
		l.resume = make(chan struct{})
	default: // already paused
	}
	l.mu.Unlock()
}

func (l *lagTransport) unpause() {
	l.mu.Lock()
	select {
	case <-l.resume:
	default:
		close(l.resume)
	}
	l.mu.Unlock()
}

func (l *lagTransport) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.transport.Close()
}

// TestAbsentSyncsOrFails: a follower whose apply lags is asked about a
// tenant, key and container created through the leader meanwhile. It
// answers that they exist once it has caught up, or fails with
// meta.ErrUnavailable (503) while it cannot; never "no such" (the
// partition suite saw a DeleteBucket through a connected follower answer
// NoSuchBucket 1.1 s after the CreateBucket returned). What truly does
// not exist is still absent, on the follower and on the leader.
func TestAbsentSyncsOrFails(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node raft cluster")
	}
	var mu sync.Mutex
	lags := map[string]*lagTransport{}
	nodes, _ := startStoresWith(t, 3, func(c *Config) {
		id := c.NodeID
		// With one follower held, the leader keeps its lease through
		// the other alone: timings that a loaded machine keeps.
		c.tune = func(rc *raft.Config) {
			rc.HeartbeatTimeout = time.Second
			rc.ElectionTimeout = time.Second
			rc.LeaderLeaseTimeout = 500 * time.Millisecond
			rc.CommitTimeout = 5 * time.Millisecond
		}
		c.wrapTrans = func(tr transport) transport {
			l := newLagTransport(tr)
			mu.Lock()
			lags[id] = l
			mu.Unlock()
			return l
		}
	})
	ctx := t.Context()
	var leader, follower *Store
	var lag *lagTransport
	for _, nd := range nodes {
		if nd.store.raft.State() == raft.Leader {
			leader = nd.store
		} else if follower == nil {
			follower, lag = nd.store, lags[nd.member.Name]
		}
	}
	if leader == nil || follower == nil || lag == nil {
		t.Fatal("no leader and follower")
	}
	if _, _, err := leader.CreateTenant(ctx, "absent"); err != nil {
		t.Fatal(err)
	}
	if err := leader.CreateContainer(ctx, meta.ContainerInfo{Tenant: "absent", Name: "before"}); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.Container(ctx, "absent", "before"); err != nil {
		t.Fatalf("follower in step: Container = %v", err)
	}

	// The follower stops applying; the leader commits with the other.
	lag.pause()
	defer lag.unpause()
	if err := leader.CreateContainer(ctx, meta.ContainerInfo{Tenant: "absent", Name: "made-elsewhere"}); err != nil {
		t.Fatal(err)
	}
	_, key, err := leader.CreateTenant(ctx, "absent-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := follower.fsm.container("absent", "made-elsewhere"); ok {
		t.Fatal("setup: the paused follower applied the creation")
	}
	// The hot path stays local: a known container answers at once.
	start := time.Now()
	if _, err := follower.Container(ctx, "absent", "before"); err != nil {
		t.Fatalf("lagging follower, known container: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("lagging follower, known container took %v; want a local answer", d)
	}

	lookups := []struct {
		name string
		do   func(context.Context) error
	}{
		{"Container", func(ctx context.Context) error {
			_, err := follower.Container(ctx, "absent", "made-elsewhere")
			return err
		}},
		{"Tenant", func(ctx context.Context) error {
			_, err := follower.Tenant(ctx, "absent-2")
			return err
		}},
		{"LookupKey", func(ctx context.Context) error {
			_, _, err := follower.LookupKey(ctx, key.AccessKey)
			return err
		}},
	}
	// Still lagging: unavailable, not absent; the first lookup waits for
	// the whole catch-up to give up, the others until their deadline.
	for i, l := range lookups {
		lctx := ctx
		if i > 0 {
			var cancel context.CancelFunc
			lctx, cancel = context.WithTimeout(ctx, time.Second)
			defer cancel()
		}
		err := l.do(lctx)
		if !errors.Is(err, meta.ErrUnavailable) || errors.Is(err, meta.ErrNoSuchContainer) ||
			errors.Is(err, tenant.ErrNoSuchTenant) || errors.Is(err, tenant.ErrUnknownAccessKey) {
			t.Errorf("lagging follower: %s err = %v; want meta.ErrUnavailable, never a no-such", l.name, err)
		}
	}
	// The follower resumes applying while lookups wait: it catches up
	// and finds what was created.
	errc := make(chan error, len(lookups))
	for _, l := range lookups {
		go func() { errc <- l.do(ctx) }()
	}
	time.Sleep(300 * time.Millisecond)
	lag.unpause()
	for range lookups {
		if err := <-errc; err != nil {
			t.Errorf("follower resumed during the lookup: err = %v; want found", err)
		}
	}
	// What does not exist is absent, on both, also to many at once.
	for _, s := range []*Store{follower, leader} {
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Go(func() { _, errs[i] = s.Container(ctx, "absent", "never-made") })
		}
		wg.Wait()
		for _, err := range errs {
			if !errors.Is(err, meta.ErrNoSuchContainer) {
				t.Fatalf("Container of a bucket never made = %v; want meta.ErrNoSuchContainer", err)
			}
		}
		if _, err := s.Tenant(ctx, "never-made"); !errors.Is(err, tenant.ErrNoSuchTenant) {
			t.Fatalf("Tenant never made = %v; want tenant.ErrNoSuchTenant", err)
		}
	}
}
