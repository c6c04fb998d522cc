package cluster

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/internal/rpcauth"
	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/tenant"
)

// Errors returned by Store, possibly wrapped; test them with errors.Is.
// Its tenant operations return the errors of package tenant
// (tenant.ErrNoSuchTenant, tenant.ErrUnknownAccessKey, ...).
var (
	// ErrNotLeader means a write reached a node that is not the Raft
	// leader. It goes away when writes are forwarded to the leader.
	ErrNotLeader = errors.New("cluster: not the leader")
)

// Defaults.
const (
	DefaultApplyTimeout      = 10 * time.Second
	DefaultMaxContainers     = 10_000 // per tenant, AWS's default bucket quota per account
	DefaultSnapshotThreshold = 1024   // log entries between snapshots
	snapshotsRetained        = 2
	transportPool            = 3
	transportTimeout         = 10 * time.Second
)

// Config configures a Store.
type Config struct {
	// Dir holds the raft log and stable store (Dir/raft.db) and the snapshots
	// (Dir/snapshots). It is created if missing.
	Dir string
	// NodeID is this node's raft server ID, stable across restarts.
	NodeID string
	// RaftAddr is the host:port the raft transport binds to and advertises
	// to peers, such as "127.0.0.1:9001". It must be an address peers can
	// dial (not 0.0.0.0). Without Secret nothing listens on it: it is only
	// the address the Raft configuration records for this node (used once
	// the node is restarted in a cluster).
	RaftAddr string
	// Bootstrap makes a node with no raft state a one-voter cluster of
	// itself (a node started without --join). A node that has state
	// ignores it, so it is safe to pass on every start.
	Bootstrap bool
	// Logger receives the store's and raft's logs; nil discards them.
	Logger *slog.Logger
	// ApplyTimeout bounds each write when the context has no earlier
	// deadline; 0 means DefaultApplyTimeout.
	ApplyTimeout time.Duration
	// MaxContainers caps the containers of one tenant (AWS caps buckets
	// per account too): each is an entry every node's state machine and
	// snapshot holds. 0 means DefaultMaxContainers; negative, no cap.
	MaxContainers int

	// DeadVoterAfter is how long a voter must be dead in gossip before
	// the leader promotes a live non-voter in its place; 0 means
	// DeadVoterAfter.
	DeadVoterAfter time.Duration
	// Secret is the cluster secret (VAULT_CLUSTER_SECRET). With it, Raft
	// connections are encrypted and authenticated (TLS with the CA derived
	// from the secret, then a handshake under the secret), writes
	// on followers are forwarded to the leader and the store serves
	// RPCHandler. Without it the store is a single node's and has no
	// peers: Raft runs on an in-process transport that listens on nothing,
	// so no other process can talk Raft to it, and writes on a non-leader
	// fail with ErrNotLeader. A node whose recovered Raft configuration
	// names other servers needs the secret.
	Secret []byte

	// tune, if set, adjusts the raft configuration (tests shorten timeouts
	// and trailing logs with it).
	tune func(*raft.Config)
	// wrapTrans, if set, wraps the raft transport (tests delay a
	// follower's log replication with it).
	wrapTrans func(transport) transport
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("cluster: config needs a Dir")
	}
	if c.NodeID == "" {
		return errors.New("cluster: config needs a NodeID")
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		return fmt.Errorf("cluster: raft address %q: %w", c.RaftAddr, err)
	}
	if c.ApplyTimeout < 0 {
		return fmt.Errorf("cluster: negative apply timeout %v", c.ApplyTimeout)
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = DefaultApplyTimeout
	}
	if c.MaxContainers == 0 {
		c.MaxContainers = DefaultMaxContainers
	}
	if c.DeadVoterAfter <= 0 {
		c.DeadVoterAfter = DeadVoterAfter
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Store is the replicated metadata store: tenants, their access keys and
// their containers. It is safe for concurrent use.
type Store struct {
	cfg   Config
	log   *slog.Logger
	fsm   *fsm
	raft  *raft.Raft
	trans transport
	logs  logStore // the raft log and stable store (logstore.go)

	absent absentSyncs // syncs of lookup misses (absent.go)

	verifier *rpcauth.Verifier // checks forwarded writes; nil without a secret
	sealer   cipher.AEAD       // seals key secrets in the log; nil without a secret
	httpc    *http.Client      // forwards writes to the leader
	syncs    chan struct{}     // bounds concurrent syncWithLeader calls
	fresh    freshness         // when this node last proved itself current (fresh.go)
	// gossip is the gossip members as this node sees them (Reconcile
	// sets it); RemoveNode refuses to force out a node alive there.
	gossip atomic.Pointer[func() []Member]

	closeOnce sync.Once
	closeErr  error
}

// transport is a raft transport the store closes.
type transport interface {
	raft.Transport
	Close() error
}

// Store implements tenant.Store, and (checked where cmd/vaultd wires it)
// engine.ContainerStore and engine.Coordinator, without importing engine.
var _ tenant.Store = (*Store)(nil)

// Open starts the raft node described by c. With c.Bootstrap and no
// existing state it bootstraps a cluster whose only voter is this node.
// If the node has (or has just been given) a configuration, Open waits
// until a leader is known or ctx ends; a node that has neither state nor
// Bootstrap returns at once and waits to be added to a cluster.
func Open(ctx context.Context, c Config) (_ *Store, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log := c.Logger.With("node", c.NodeID)
	s := &Store{cfg: c, log: log, fsm: newFSM(), syncs: make(chan struct{}, maxSyncs)}
	defer func() {
		if err != nil {
			s.Close() // releases whatever was opened before the failure
		}
	}()
	hlog := newHCLog(log)

	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: open: %w", err)
	}
	if s.logs, err = openLogStore(c.Dir); err != nil {
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(c.Dir, snapshotsRetained, hlog.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("cluster: open snapshots: %w", err)
	}
	advertise, err := net.ResolveTCPAddr("tcp", c.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: raft address %q: %w", c.RaftAddr, err)
	}
	if c.Secret != nil {
		if len(c.Secret) < MinSecretLen {
			return nil, fmt.Errorf("cluster: the cluster secret must be at least %d bytes", MinSecretLen)
		}
		// RPCHandler is served on ListenRPC's authenticated connections.
		s.verifier = rpcauth.NewConnVerifier(c.Secret, rpcauth.DefaultMaxSkew, time.Now)
		if s.sealer, err = newSealer(c.Secret); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		s.httpc = newForwardClient(c.Secret)
		stream, err := newAuthStreamLayer(c.RaftAddr, advertise, c.Secret, log)
		if err != nil {
			return nil, fmt.Errorf("cluster: raft transport %s: %w", c.RaftAddr, err)
		}
		s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: stream, MaxPool: transportPool, Timeout: transportTimeout, Logger: hlog.Named("transport"),
		})
	} else {
		// A single node: its only voter is itself, which raft never dials,
		// so it needs no listener. Loopback is not a trust boundary: an
		// unauthenticated one let any local process pose as a leader of a
		// newer term and append entries. The in-memory transport is
		// reachable only through Connect, which nothing calls.
		_, s.trans = raft.NewInmemTransportWithTimeout(raft.ServerAddress(advertise.String()), transportTimeout)
	}

	if c.wrapTrans != nil {
		s.trans = c.wrapTrans(s.trans)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.Logger = hlog.Named("raft")
	rc.SnapshotThreshold = DefaultSnapshotThreshold
	if c.tune != nil {
		c.tune(rc)
	}
	hasState, err := raft.HasExistingState(s.logs, s.logs, snaps)
	if err != nil {
		return nil, fmt.Errorf("cluster: read raft state: %w", err)
	}
	s.raft, err = raft.NewRaft(rc, s.fsm, s.logs, s.logs, snaps, s.trans)
	if err != nil {
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	switch {
	case hasState:
		log.Info("cluster: recovered raft state", "dir", c.Dir)
		if c.Secret == nil {
			if err := s.checkAlone(); err != nil {
				return nil, err
			}
		}
	case c.Bootstrap:
		log.Info("cluster: bootstrapping single-voter cluster", "dir", c.Dir, "raft", c.RaftAddr)
		boot := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter,
			ID:       rc.LocalID,
			Address:  s.trans.LocalAddr(),
		}}}
		if err := s.raft.BootstrapCluster(boot).Error(); err != nil {
			return nil, fmt.Errorf("cluster: bootstrap: %w", err)
		}
	default:
		log.Info("cluster: no raft state; waiting to join a cluster", "raft", c.RaftAddr)
		return s, nil
	}
	if err := s.waitLeader(ctx); err != nil {
		return nil, err
	}
	// Raft replays the recovered log into the FSM in the background:
	// serve nothing until it has caught up, or a restarted node would
	// briefly answer with an older state (unknown keys, missing containers).
	if err := s.waitApplied(ctx, s.raft.LastIndex()); err != nil {
		return nil, err
	}
	return s, nil
}

// checkAlone fails if the recovered Raft configuration names a server
// other than this node: without a cluster secret it could never reach it,
// and would wait for a leader forever.
func (s *Store) checkAlone() error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: read raft configuration: %w", err)
	}
	for _, sv := range f.Configuration().Servers {
		if sv.ID != raft.ServerID(s.cfg.NodeID) {
			return fmt.Errorf("cluster: this node's raft state (%s) is a cluster's (it names node %s): start it in cluster mode, with the cluster secret", s.cfg.Dir, sv.ID)
		}
	}
	return nil
}

// waitApplied returns once the FSM has applied the log up to index, or
// with ctx's error.
func (s *Store) waitApplied(ctx context.Context, index uint64) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for !s.caughtUp(index) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for the log to be applied: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
	return nil
}

// maxGapScan bounds how many log entries caughtUp inspects.
const maxGapScan = 1024

// caughtUp reports whether the FSM reflects every log entry up to index.
// raft's AppliedIndex counts entries handed to the FSM goroutine, which
// may not have applied them yet, so it is not enough alone: the FSM's own
// applied index must have reached index, or every entry between it and
// index must be one the FSM never sees (no-ops, configuration changes).
func (s *Store) caughtUp(index uint64) bool {
	a := s.fsm.applied.Load()
	if a >= index {
		return true
	}
	if s.raft.AppliedIndex() < index || index-a > maxGapScan {
		return false
	}
	first, err := s.logs.FirstIndex()
	if err != nil {
		return false
	}
	for i := max(a+1, first); i <= index; i++ {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil || l.Type == raft.LogCommand {
			return false
		}
	}
	return true
}

// waitLeader returns once a leader is known, with ctx's error, or with an
// ErrRemoved error once this node learns it was removed (removed.go).
func (s *Store) waitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	removed := s.watchRemoved(wctx) // no leader ever answers a removed node
	for {
		if s.fsm.isRemoved(s.cfg.NodeID) {
			return s.removedErr("this node's own state")
		}
		if id, _ := s.Leader(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for a leader: %w", context.Cause(ctx))
		case err := <-removed:
			return err
		case <-t.C:
		}
	}
}

// Close stops raft and closes the log and the transport. Later calls
// return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.raft != nil {
			errs = append(errs, s.raft.Shutdown().Error())
		}
		if s.trans != nil {
			errs = append(errs, s.trans.Close())
		}
		if s.logs != nil {
			errs = append(errs, s.logs.Close())
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("cluster: close: %w", err)
		}
	})
	return s.closeErr
}

// Leader returns the ID and raft address of the current leader, or empty
// strings if none is known.
func (s *Store) Leader() (id, addr string) {
	a, i := s.raft.LeaderWithID()
	return string(i), string(a)
}

// apply replicates one encoded command and returns the FSM's answer. On a
// follower the command is forwarded to the leader, and apply returns only
// once the local FSM has applied it, so a client sees its own writes on
// every node. It is bounded by ctx and by Config.ApplyTimeout, whichever
// ends first. If ctx ends before the entry commits, the command may still
// be applied later; the caller sees ctx's error.
func (s *Store) apply(ctx context.Context, cmd []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("cluster: apply: %w", context.Cause(ctx))
	}
	if s.raft.State() != raft.Leader {
		return s.forward(ctx, cmd)
	}
	idx, err := s.applyLocal(ctx, cmd)
	if errors.Is(err, ErrNotLeader) {
		// Not appended anywhere: safe to send to the leader.
		return s.forward(ctx, cmd)
	}
	return idx, err
}

// applyLocal appends cmd to the log of this node, which must be the
// leader, and waits until it is applied here. It returns the entry's index
// and the FSM's answer, or ErrNotLeader if this node is not the leader (in
// which case nothing was appended).
func (s *Store) applyLocal(ctx context.Context, cmd []byte) (uint64, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(s.cfg.ApplyTimeout)
	}
	f := s.raft.Apply(cmd, time.Until(deadline))
	// f.Error blocks until the entry is applied, leadership is lost or
	// raft shuts down; raft resolves every future, so this goroutine ends.
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case <-ctx.Done():
		return 0, fmt.Errorf("cluster: apply: %w", context.Cause(ctx))
	case err := <-done:
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return 0, ErrNotLeader
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return 0, fmt.Errorf("cluster: apply: %w", context.DeadlineExceeded)
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
			// The outcome is unknown: the entry may still commit under
			// the next leader. The client is told to retry.
			return 0, fmt.Errorf("%w: %w", meta.ErrUnavailable, err)
		case err != nil:
			return 0, fmt.Errorf("cluster: apply: %w", err)
		}
	}
	if err, ok := f.Response().(error); ok {
		return f.Index(), err
	}
	return f.Index(), nil
}

// CreateTenant creates a tenant and its first key pair. The name must
// satisfy tenant.ValidName. It fails with tenant.ErrTenantExists if the name is
// taken.
func (s *Store) CreateTenant(ctx context.Context, name string) (tenant.Tenant, tenant.Key, error) {
	if !tenant.ValidName(name) {
		return tenant.Tenant{}, tenant.Key{}, fmt.Errorf("%w: %q", tenant.ErrInvalidName, name)
	}
	now := time.Now().UTC().Round(0)
	key := newKey(now)
	err := s.applyCmd(ctx, cmdCreateTenant, createTenantCmd{Name: name, Created: now, Key: s.seal(key)})
	for try := 1; errors.Is(err, errAccessKeyExists) && try < keyDraws; try++ {
		key = newKey(now) // a 1 in 36^20 collision: draw again
		err = s.applyCmd(ctx, cmdCreateTenant, createTenantCmd{Name: name, Created: now, Key: s.seal(key)})
	}
	if err != nil {
		return tenant.Tenant{}, tenant.Key{}, err
	}
	return tenant.Tenant{Name: name, Created: now, AccessKeys: []string{key.AccessKey}}, key.public(), nil
}

// keyDraws is how many key pairs a proposer draws before giving up on
// access-key collisions.
const keyDraws = 3

// DeleteTenant deletes a tenant and its keys. It fails with
// tenant.ErrTenantNotEmpty while the tenant owns containers and with
// tenant.ErrNoSuchTenant if there is no such tenant.
func (s *Store) DeleteTenant(ctx context.Context, name string) error {
	return s.applyCmd(ctx, cmdDeleteTenant, deleteTenantCmd{Name: name})
}

// Tenants returns all tenants sorted by name, including every tenant whose
// creation returned before the call, through any node (syncForList), or
// fails with meta.ErrUnavailable.
func (s *Store) Tenants(ctx context.Context) ([]tenant.Tenant, error) {
	if err := s.syncForList(ctx); err != nil {
		return nil, err
	}
	return s.fsm.tenantList(), nil
}

// Tenant returns one tenant, or tenant.ErrNoSuchTenant once this node
// has caught up with every write acknowledged before the call (absent.go),
// or fails with meta.ErrUnavailable.
func (s *Store) Tenant(ctx context.Context, name string) (tenant.Tenant, error) {
	t, ok := s.fsm.tenant(name)
	if !ok {
		if err := s.syncAbsent(ctx); err != nil {
			return tenant.Tenant{}, fmt.Errorf("tenant %s: %w", name, err)
		}
		t, ok = s.fsm.tenant(name)
	}
	if !ok {
		return tenant.Tenant{}, fmt.Errorf("%w: %s", tenant.ErrNoSuchTenant, name)
	}
	return t, nil
}

// CreateKey adds a new key pair to an existing tenant.
func (s *Store) CreateKey(ctx context.Context, name string) (tenant.Key, error) {
	key := newKey(time.Now().UTC().Round(0))
	err := s.applyCmd(ctx, cmdCreateKey, createKeyCmd{Tenant: name, Key: s.seal(key)})
	for try := 1; errors.Is(err, errAccessKeyExists) && try < keyDraws; try++ {
		key = newKey(key.Created)
		err = s.applyCmd(ctx, cmdCreateKey, createKeyCmd{Tenant: name, Key: s.seal(key)})
	}
	if err != nil {
		return tenant.Key{}, err
	}
	return key.public(), nil
}

// DeleteKey removes one of a tenant's keys. It fails with
// tenant.ErrUnknownAccessKey if the tenant has no such key. A tenant may be
// left without keys.
func (s *Store) DeleteKey(ctx context.Context, tenant, accessKey string) error {
	return s.applyCmd(ctx, cmdDeleteKey, deleteKeyCmd{Tenant: tenant, AccessKey: accessKey})
}

// LookupKey returns the tenant and secret of an access key, or
// tenant.ErrUnknownAccessKey once this node has caught up (absent.go), or
// fails with meta.ErrUnavailable.
func (s *Store) LookupKey(ctx context.Context, accessKey string) (name, secret string, err error) {
	name, key, ok := s.fsm.lookupKey(accessKey)
	if !ok {
		if err := s.syncAbsent(ctx); err != nil {
			return "", "", fmt.Errorf("look up access key: %w", err)
		}
		name, key, ok = s.fsm.lookupKey(accessKey)
	}
	if !ok {
		return "", "", tenant.ErrUnknownAccessKey
	}
	secret, err = s.unseal(key)
	if err != nil {
		return "", "", err
	}
	return name, secret, nil
}

// CreateContainer records c. It fails with meta.ErrContainerExists if
// the tenant already has a container of that name and with
// tenant.ErrNoSuchTenant if the tenant does not exist. A zero c.Created is set to
// the current time.
func (s *Store) CreateContainer(ctx context.Context, c meta.ContainerInfo) error {
	created := c.Created
	if created.IsZero() {
		created = time.Now()
	}
	return s.applyCmd(ctx, cmdCreateContainer, createContainerCmd{
		Tenant: c.Tenant, Name: c.Name, Created: created.UTC().Round(0), Max: s.cfg.MaxContainers,
	})
}

// DeleteContainer forgets a container, or fails with
// meta.ErrNoSuchContainer. Whether it is empty is the engine's concern.
func (s *Store) DeleteContainer(ctx context.Context, tenant, name string) error {
	return s.applyCmd(ctx, cmdDeleteContainer, deleteContainerCmd{Tenant: tenant, Name: name})
}

// Container returns one container, or meta.ErrNoSuchContainer once this
// node has caught up with every write acknowledged before the call
// (absent.go: a lagging follower never answers a false NoSuchBucket), or
// fails with meta.ErrUnavailable.
func (s *Store) Container(ctx context.Context, tenant, name string) (meta.ContainerInfo, error) {
	c, ok := s.fsm.container(tenant, name)
	if !ok {
		if err := s.syncAbsent(ctx); err != nil {
			return meta.ContainerInfo{}, fmt.Errorf("container %s/%s: %w", tenant, name, err)
		}
		c, ok = s.fsm.container(tenant, name)
	}
	if !ok {
		return meta.ContainerInfo{}, fmt.Errorf("%w: %s/%s", meta.ErrNoSuchContainer, tenant, name)
	}
	return c, nil
}

// Containers returns a tenant's containers sorted by name, including
// every one whose creation returned before the call (syncForList), or
// fails with meta.ErrUnavailable; an unknown tenant has none.
func (s *Store) Containers(ctx context.Context, tenant string) ([]meta.ContainerInfo, error) {
	if err := s.syncForList(ctx); err != nil {
		return nil, err
	}
	return s.fsm.containerList(tenant), nil
}

// applyCmd encodes and applies one command. A removal (of a container,
// tenant or key) returns only once every node that answers has applied it
// too (spread): lookups that hit answer from a node's own state, so
// without the wait a node a few milliseconds behind would still accept a
// PUT into a bucket whose deletion had returned, or a deleted key.
func (s *Store) applyCmd(ctx context.Context, t cmdType, payload any) error {
	b, err := encodeCmd(t, payload)
	if err != nil {
		return err
	}
	idx, err := s.apply(ctx, b)
	if err == nil && idx > 0 && removals[t] {
		s.spread(ctx, idx)
	}
	return err
}

// removals are the commands whose effect every node must have applied
// before the call returns. Setting a bucket configuration is one too: it
// may replace a document nodes read from their own state (CORS preflights
// answer from it without asking the leader).
var removals = map[cmdType]bool{cmdDeleteContainer: true, cmdDeleteTenant: true, cmdDeleteKey: true, cmdSetConfig: true}
