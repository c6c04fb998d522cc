package cluster

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultGossipPort is the gossip port used when MembershipConfig.BindAddr
// has none.
const DefaultGossipPort = 7946

// MinSecretLen is the shortest cluster secret accepted, in bytes.
const MinSecretLen = 16

// DefaultBroadcastTimeout bounds how long Update and Leave wait for their
// announcement to be gossiped when the context has no earlier deadline.
const DefaultBroadcastTimeout = 5 * time.Second

var (
	// ErrMetaTooLarge means a Member's advertised fields do not fit in
	// memberlist's node metadata (memberlist.MetaMaxSize bytes), even
	// with drives encoded compactly.
	ErrMetaTooLarge = errors.New("cluster: member metadata too large")

	// ErrMembershipClosed is returned by a Membership after Close or
	// Leave.
	ErrMembershipClosed = errors.New("cluster: membership closed")

	// ErrSecretMismatch is Join's error when every address it tried
	// answered with gossip this node could not decrypt, or could not
	// decrypt this node's: they run under another cluster secret.
	ErrSecretMismatch = errors.New("cluster: the cluster secret differs from the peers'")
)

// decryptFailed reports whether err is memberlist's failure to decrypt
// a message (it has no sentinel: security.go says "no installed keys
// could decrypt the message").
func decryptFailed(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no installed keys could decrypt")
}

// MembershipConfig configures StartMembership.
type MembershipConfig struct {
	// Name is this node's name, unique in the cluster. Required.
	Name string
	// BindAddr is the gossip listen address, host:port with an IP host
	// (UDP and TCP). Port 0 picks a free port; see Membership.Addr.
	// Empty means 0.0.0.0:DefaultGossipPort.
	BindAddr string
	// AdvertiseAddr, if set, is the ip:port other nodes use to reach
	// this node, for when BindAddr is not reachable as is.
	AdvertiseAddr string
	// Self is what this node advertises. Its Name, State and Addr are
	// ignored and filled in. Its encoding must fit in
	// memberlist.MetaMaxSize bytes (ErrMetaTooLarge).
	Self Member
	// Secret is the cluster secret (VAULT_CLUSTER_SECRET), at least
	// MinSecretLen bytes. Gossip is encrypted and authenticated with
	// AES-256-GCM under SHA-256(Secret). Required.
	Secret []byte
	// Logger receives this package's and memberlist's logs; nil
	// discards them.
	Logger *slog.Logger
	// Events, if set, is called with a member's new view whenever one
	// joins, updates its metadata, leaves or fails, this node included.
	// Calls are serial, from one goroutine owned by the Membership, in
	// the order the changes happened; changes to one member that happen
	// while an earlier call is running may be coalesced into one call
	// with the latest view. Events must not call Update, Leave or Close,
	// which wait for the running call to return. After Leave or Close returns
	// it is not called again.
	Events func(Member)
	// Local selects memberlist.DefaultLocalConfig timings (loopback,
	// tests); otherwise memberlist.DefaultLANConfig.
	Local bool
}

// Validate checks c and fills in defaults.
func (c *MembershipConfig) Validate() error {
	if c.Name == "" {
		return errors.New("cluster: membership config needs a Name")
	}
	if c.BindAddr == "" {
		c.BindAddr = net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultGossipPort))
	}
	if _, _, err := splitIPPort(c.BindAddr); err != nil {
		return fmt.Errorf("cluster: membership BindAddr: %w", err)
	}
	if c.AdvertiseAddr != "" {
		if _, port, err := splitIPPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("cluster: membership AdvertiseAddr: %w", err)
		} else if port == 0 {
			return fmt.Errorf("cluster: membership AdvertiseAddr %q needs a port", c.AdvertiseAddr)
		}
	}
	if len(c.Secret) < MinSecretLen {
		return fmt.Errorf("cluster: membership needs a cluster secret of at least %d bytes", MinSecretLen)
	}
	if c.Self.Name != "" && c.Self.Name != c.Name {
		return fmt.Errorf("cluster: membership Self.Name %q is not Name %q", c.Self.Name, c.Name)
	}
	if _, err := encodeMeta(c.Self, false); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// splitIPPort parses "ip:port". An empty host means 0.0.0.0.
func splitIPPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%q: host must be an IP address", addr)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	return host, int(port), nil
}

// Membership is this node's membership in the gossip cluster. Its
// methods are safe for concurrent use.
//
// It is this node's view of which nodes exist and whether they are up,
// kept by hashicorp/memberlist (SWIM gossip with failure detection).
// Each node advertises its addresses and drives as memberlist node
// metadata (compact JSON, at most memberlist.MetaMaxSize bytes). Gossip
// is encrypted and authenticated with AES-256-GCM under a key derived
// from the cluster secret, so a node with another secret can neither
// join nor be seen.
//
// memberlist reports joins, metadata updates and departures, but not
// whether a departure was graceful: in v0.7.0 the State of the Node
// handed to NotifyLeave is always StateAlive, because the field
// memberlist updates shadows it (hashicorp/memberlist#293). So Leave
// first re-advertises this node's metadata with a leaving flag, and an
// observer that saw the flag before the departure records the member as
// Left, otherwise as Dead. memberlist does not report suspicion either,
// so MemberSuspect is not reported yet.
type Membership struct {
	ml     *memberlist.Memberlist
	log    *slog.Logger
	name   string
	events func(Member)
	onMsg  atomic.Pointer[msgHandler] // user messages' receiver (ratecount.go)

	// opMu serializes Update, Leave and Close, so that memberlist is
	// never used after Shutdown (its Leave panics then) and Update does
	// not undo Leave's announcement.
	opMu sync.Mutex

	mu      sync.Mutex // guards the following fields
	self    Member     // advertised fields, drives sorted
	leaving bool       // Leave has begun; advertised in meta
	meta    []byte     // encoded self and leaving, returned by NodeMeta
	members map[string]*Member
	pending []string        // names whose Events call is due, oldest first
	queued  map[string]bool // names in pending
	closed  bool

	// The events goroutine, started only when Events is set, is owned by
	// the Membership: kick wakes it, closing stop ends it, and it closes
	// done when it returns. Close waits for done.
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// StartMembership starts gossiping as c.Name on c.BindAddr, alone until
// Join. ctx is only checked: starting does not wait for other nodes.
func StartMembership(ctx context.Context, c MembershipConfig) (*Membership, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	self := c.Self.clone()
	self.Name, self.State, self.Addr = c.Name, 0, ""
	sortDrives(self.Drives)
	meta, err := encodeMeta(self, false)
	if err != nil {
		return nil, err
	}
	m := &Membership{
		log:     c.Logger.With("node", c.Name),
		name:    c.Name,
		events:  c.Events,
		self:    self,
		meta:    meta,
		members: map[string]*Member{},
		queued:  map[string]bool{},
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}

	mc := memberlist.DefaultLANConfig()
	if c.Local {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = c.Name
	mc.BindAddr, mc.BindPort, _ = splitIPPort(c.BindAddr)
	mc.AdvertisePort = mc.BindPort
	if c.AdvertiseAddr != "" {
		mc.AdvertiseAddr, mc.AdvertisePort, _ = splitIPPort(c.AdvertiseAddr)
	}
	key := sha256.Sum256(c.Secret)
	mc.SecretKey = key[:]
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	d := gossipDelegate{m}
	mc.Delegate = d
	mc.Events = d
	mc.Logger = newGossipLog(c.Logger.With("node", c.Name))

	m.ml, err = memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start membership on %s: %w", c.BindAddr, err)
	}
	if m.events != nil {
		go m.deliver()
	} else {
		close(m.done)
	}
	m.log.Debug("gossip started", "addr", m.Addr())
	return m, nil
}

// Addr returns the host:port other nodes reach this node's gossip at:
// AdvertiseAddr if set, else the bound address with the real port (also
// when BindAddr's port was 0). When bound to 0.0.0.0, memberlist
// advertises one of the host's private addresses.
func (m *Membership) Addr() string {
	return m.ml.LocalNode().Address()
}

// Join contacts the gossip nodes at addrs (host:port) and merges state
// with every one that answers, which makes this node known to the whole
// cluster. It returns how many answered, and an error if none did; the
// error wraps ErrSecretMismatch if every address failed to decrypt (a
// wrong secret never heals by retrying). Addresses are tried in order;
// ctx is checked between them and each attempt is bounded by
// memberlist's TCP timeout.
func (m *Membership) Join(ctx context.Context, addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, errors.New("cluster: join: no addresses")
	}
	var errs []error
	n, mismatches := 0, 0
	for _, a := range addrs {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if m.isClosed() {
			return n, ErrMembershipClosed
		}
		k, err := m.ml.Join([]string{a})
		n += k
		if err != nil {
			// memberlist returns a go-multierror; keep its one error.
			var me interface{ WrappedErrors() []error }
			if errors.As(err, &me) && len(me.WrappedErrors()) == 1 {
				err = me.WrappedErrors()[0]
			}
			if decryptFailed(err) {
				mismatches++
				err = fmt.Errorf("%w (does %s run under another cluster secret?)", err, a)
			}
			errs = append(errs, err)
			m.log.Debug("gossip join failed", "addr", a, "err", err)
		}
	}
	switch {
	case n == 0 && mismatches == len(addrs):
		return 0, fmt.Errorf("cluster: join %v: %w: %w", addrs, ErrSecretMismatch, errors.Join(errs...))
	case n == 0:
		return 0, fmt.Errorf("cluster: join %v: %w", addrs, errors.Join(errs...))
	}
	return n, nil
}

// Members returns every member this node knows, itself included, sorted
// by name. Members that failed or left stay listed, with their last
// advertised fields, until they rejoin.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		out = append(out, mem.clone())
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Update re-advertises this node as self (for example after its drives
// changed); self's Name, State and Addr are ignored. It fails with
// ErrMetaTooLarge, leaving the advertised fields unchanged, if self does
// not fit. It waits up to DefaultBroadcastTimeout for the update to be
// gossiped; if that times out the update still spreads, and Update only
// logs it.
func (m *Membership) Update(self Member) error {
	if self.Name != "" && self.Name != m.name {
		return fmt.Errorf("cluster: update: member name %q is not %q", self.Name, m.name)
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	self = self.clone()
	self.Name, self.State, self.Addr = m.name, 0, ""
	sortDrives(self.Drives)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrMembershipClosed
	}
	meta, err := encodeMeta(self, m.leaving)
	if err == nil {
		m.self, m.meta = self, meta
	}
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cluster: update: %w", err)
	}
	// UpdateNode calls NodeMeta and NotifyUpdate, which take m.mu.
	if err := m.ml.UpdateNode(DefaultBroadcastTimeout); err != nil {
		m.log.Warn("gossip update not yet broadcast", "err", err)
	}
	return nil
}

// Leave announces that this node is leaving, so others record it as
// Left rather than Dead, then shuts down as Close does. It waits for the
// announcements to be gossiped until ctx's deadline, or at most
// DefaultBroadcastTimeout each; it shuts down even if that fails and
// returns the error.
func (m *Membership) Leave(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrMembershipClosed
	}
	m.leaving = true
	meta, err := encodeMeta(m.self, true)
	if err == nil {
		m.meta = meta
	}
	m.mu.Unlock()
	if err == nil {
		err = m.ml.UpdateNode(broadcastTimeout(ctx))
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = m.ml.Leave(broadcastTimeout(ctx))
	}
	if err != nil {
		err = fmt.Errorf("cluster: leave: %w", err)
	}
	return errors.Join(err, m.close())
}

func broadcastTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return min(max(time.Until(dl), time.Millisecond), DefaultBroadcastTimeout)
	}
	return DefaultBroadcastTimeout
}

// Close stops gossiping without leaving: other nodes will find this node
// Dead. It waits for a running Events call to return. Calling it again
// does nothing.
func (m *Membership) Close() error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	return m.close()
}

// close does Close's work; opMu must be held.
func (m *Membership) close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.pending, m.queued = nil, nil
	m.mu.Unlock()
	err := m.ml.Shutdown()
	close(m.stop)
	<-m.done
	m.log.Info("gossip stopped")
	if err != nil {
		return fmt.Errorf("cluster: close membership: %w", err)
	}
	return nil
}

func (m *Membership) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// observe records a member's new view and queues an Events call. It is
// called by memberlist with its node lock held, so it must not block or
// call into memberlist.
func (m *Membership) observe(n *memberlist.Node, state MemberState) {
	mem, leaving, err := decodeMeta(n.Meta)
	if err != nil {
		m.log.Warn("gossip: bad member metadata", "member", n.Name, "err", err)
	}
	mem.Name, mem.Addr = n.Name, n.Address()
	// A later memberlist may report StateLeft itself (hashicorp/memberlist#321).
	if state == MemberDead && (leaving || n.State == memberlist.StateLeft) {
		state = MemberLeft
	}
	mem.State = state

	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.members[n.Name]; err != nil && old != nil {
		// Keep the last good advertised fields.
		mem.S3Addr, mem.RaftAddr, mem.RPCAddr, mem.Drives = old.S3Addr, old.RaftAddr, old.RPCAddr, old.Drives
	}
	if old := m.members[n.Name]; old == nil || old.State != state {
		// A member found alive is start-up chatter; one lost is news.
		level := map[MemberState]slog.Level{MemberAlive: slog.LevelDebug, MemberDead: slog.LevelWarn}[state]
		m.log.Log(context.Background(), level, "gossip member "+state.String(), "member", n.Name, "addr", mem.Addr)
	}
	m.members[n.Name] = &mem
	if m.events == nil || m.closed {
		return
	}
	if !m.queued[n.Name] {
		m.queued[n.Name] = true
		m.pending = append(m.pending, n.Name)
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// deliver is the events goroutine: it calls m.events for each pending
// member, one at a time, until stop is closed.
func (m *Membership) deliver() {
	defer close(m.done)
	for {
		select {
		case <-m.stop:
			return
		case <-m.kick:
		}
		for {
			select {
			case <-m.stop:
				return
			default:
			}
			mem, ok := m.nextEvent()
			if !ok {
				break
			}
			m.events(mem)
		}
	}
}

// nextEvent pops the oldest pending member and returns its current view.
func (m *Membership) nextEvent() (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.pending) > 0 {
		name := m.pending[0]
		m.pending = m.pending[1:]
		delete(m.queued, name)
		if mem := m.members[name]; mem != nil {
			return mem.clone(), true
		}
	}
	return Member{}, false
}

// gossipDelegate is memberlist's Delegate and EventDelegate for a
// Membership. It is a separate type so that its methods stay out of
// Membership's API.
type gossipDelegate struct{ m *Membership }

var (
	_ memberlist.Delegate      = gossipDelegate{}
	_ memberlist.EventDelegate = gossipDelegate{}
)

// NodeMeta returns the encoded advertised fields, which encodeMeta kept
// within memberlist.MetaMaxSize (memberlist panics beyond it).
func (d gossipDelegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if len(d.m.meta) > limit {
		d.m.log.Error("gossip: member metadata over limit", "size", len(d.m.meta), "limit", limit)
		return nil
	}
	return slices.Clone(d.m.meta)
}

func (d gossipDelegate) NotifyMsg(b []byte)              { d.m.notifyMsg(b) }
func (gossipDelegate) GetBroadcasts(_, _ int) [][]byte   { return nil }
func (gossipDelegate) LocalState(bool) []byte            { return nil }
func (gossipDelegate) MergeRemoteState([]byte, bool)     {}
func (d gossipDelegate) NotifyJoin(n *memberlist.Node)   { d.m.observe(n, MemberAlive) }
func (d gossipDelegate) NotifyUpdate(n *memberlist.Node) { d.m.observe(n, MemberAlive) }

// NotifyLeave is called when a member failed or left; observe tells
// which from the leaving flag in its metadata.
func (d gossipDelegate) NotifyLeave(n *memberlist.Node) { d.m.observe(n, MemberDead) }
