package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/time/rate"

	"github.com/vaultaire/vaultaire/internal/clustertls"
	"github.com/vaultaire/vaultaire/internal/rpcauth"
)

// raftPurpose is the rpcauth handshake purpose of raft connections, so a
// handshake made for another internode stream never opens a raft one.
const raftPurpose = "raft"

// Bounds on inbound connections in their handshake, per listener.
const (
	// maxHandshakes bounds the connections being authenticated at once.
	maxHandshakes = 256
	// maxHandshakesPerSource bounds them per source address (an IPv4
	// address or an IPv6 /64), so that one source cannot take them all.
	maxHandshakesPerSource = 32
	// handshakeGoroutines bounds the handshake goroutines, which outlive
	// their connection's eviction by a moment and also hand authenticated
	// connections to Accept; connections beyond it are closed on arrival.
	handshakeGoroutines = 2 * maxHandshakes
)

// Refusals are logged at most refusalLogRate a second after a burst of
// refusalLogBurst; the others are counted and the count is logged with
// the next refusal that is.
const (
	refusalLogRate  = 1
	refusalLogBurst = 16
)

// authStreamLayer is a raft.StreamLayer over TCP whose connections are
// TLS 1.3 tunnels with certificates of the cluster's CA on both sides
// (internode.go, internal/clustertls), inside which an rpcauth handshake
// under the cluster secret runs first: Dial returns only connections to a
// server that proved both, Accept only connections from a client that
// proved both, with a fresh time and nonce. After the handshake the stream
// is raft's, encrypted. ListenRPC uses it as the listener of internode
// RPC.
//
// Inbound handshakes (TLS and rpcauth together) run in goroutines of
// their own, each bounded by rpcauth.ServerHandshakeTimeout in all, so a
// slow or hostile peer never holds up Accept. At most maxHandshakes are in progress, at most
// maxHandshakesPerSource from one source address: when a new connection
// would exceed either, the oldest handshake in progress (of that source,
// or of all) is cut short. An honest handshake takes one round trip, so
// the oldest is almost always an idle connection: idle connections from
// one address (or many) keep an honest peer out, even one on the same
// address, only if they keep arriving faster than the cap's worth per
// round trip. Refused connections are logged at Warn with the remote
// address and the reason, rate-limited. It is safe for concurrent use.
type authStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	secret    []byte
	purpose   string      // the handshake purpose and log label: raftPurpose or rpcPurpose
	tls       *tls.Config // the server side of the tunnel; nil (benchmarks only) for none
	dialTLS   *tls.Config // the client side, for Dial
	verifier  *rpcauth.Verifier
	log       *slog.Logger
	logLimit  *rate.Limiter // refusals logged
	muted     atomic.Int64  // refusals not logged since the last one logged

	conns  chan net.Conn  // authenticated inbound connections, to Accept
	slots  chan struct{}  // a token per handshake goroutine
	closed chan struct{}  // closed by Close
	wg     sync.WaitGroup // the accept loop and the handshake goroutines

	mu       sync.Mutex               // guards the four fields below; Close closes closed under it
	pending  map[net.Conn]pendingConn // inbound connections in their handshake
	bySource map[string]int           // len(pending) by source
	evicted  map[net.Conn]struct{}    // pending connections cut short, not yet untracked
	seq      uint64                   // arrival counter, orders pending

	// served are the connections Accept returned that their user has not
	// closed yet, tracked only when waitServed: Close closes them and waits
	// (at most servedCloseWait) for their users to close them in turn.
	// Raft's NetworkTransport.Close neither stops nor waits for its
	// handlers of inbound connections, and one in the middle of a
	// heartbeat when the Store closes the log store under it saves the
	// new term into a closed store, which panics the process. Under mu.
	waitServed bool
	served     map[*servedConn]struct{}
	servedWG   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// servedCloseWait bounds Close's wait for the users of accepted
// connections to return: a raft handler finishes the command it is in
// (a heartbeat: a term and an index saved) once its connection is closed.
const servedCloseWait = 5 * time.Second

// servedConn is a connection Accept returned, tracked until closed.
type servedConn struct {
	net.Conn
	l    *authStreamLayer
	once sync.Once
}

// Close closes the connection and tells the layer its user is done.
func (c *servedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.served, c)
		c.l.mu.Unlock()
		c.l.servedWG.Done()
	})
	return err
}

// pendingConn is a connection in its handshake.
type pendingConn struct {
	source string
	seq    uint64 // arrival order
}

var _ raft.StreamLayer = (*authStreamLayer)(nil)

// newAuthStreamLayer listens on bind and returns a stream layer that
// advertises advertise (nil means the listener's address; port 0 means the
// listener's port) and authenticates with secret. Like raft's TCP transport
// it refuses an advertise address that is not TCP or has an unspecified IP,
// which peers could not dial. Close stops it.
func newAuthStreamLayer(bind string, advertise net.Addr, secret []byte, log *slog.Logger) (*authStreamLayer, error) {
	return newAuthListener(bind, advertise, secret, raftPurpose, log)
}

// newAuthListener is newAuthStreamLayer for connections of any purpose.
func newAuthListener(bind string, advertise net.Addr, secret []byte, purpose string, log *slog.Logger) (*authStreamLayer, error) {
	if len(secret) < rpcauth.MinSecretSize {
		return nil, fmt.Errorf("cluster: %s listener needs a cluster secret of at least %d bytes", purpose, rpcauth.MinSecretSize)
	}
	id, err := internodeIdentity(secret)
	if err != nil {
		return nil, err
	}
	return newAuthListenerTLS(bind, advertise, secret, purpose, id, log)
}

// newAuthListenerTLS is newAuthListener with the TLS identity id; nil
// means no TLS, which only benchmarks use, to measure TLS's cost.
func newAuthListenerTLS(bind string, advertise net.Addr, secret []byte, purpose string, id *clustertls.Identity, log *slog.Logger) (*authStreamLayer, error) {
	if len(secret) < rpcauth.MinSecretSize {
		return nil, fmt.Errorf("cluster: %s listener needs a cluster secret of at least %d bytes", purpose, rpcauth.MinSecretSize)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s listen: %w", purpose, err)
	}
	adv, err := advertiseAddr(purpose, advertise, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	l := &authStreamLayer{
		ln:        ln,
		advertise: adv,
		secret:    append([]byte(nil), secret...),
		purpose:   purpose,
		verifier:  rpcauth.NewVerifier(secret, rpcauth.DefaultMaxSkew, time.Now),
		log:       log,
		logLimit:  rate.NewLimiter(refusalLogRate, refusalLogBurst),
		conns:     make(chan net.Conn),
		slots:     make(chan struct{}, handshakeGoroutines),
		closed:    make(chan struct{}),
		pending:   make(map[net.Conn]pendingConn),
		bySource:  make(map[string]int),
		evicted:   make(map[net.Conn]struct{}),
		served:    make(map[*servedConn]struct{}),
		// raft's handlers run beside the store Close waits for; an RPC
		// listener's user (an http.Server) waits for its own handlers
		waitServed: purpose == raftPurpose,
	}
	if id != nil {
		l.tls, l.dialTLS = id.ServerConfig(), id.ClientConfig()
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// advertiseAddr returns the address to advertise for a listener on listen.
func advertiseAddr(purpose string, advertise, listen net.Addr) (net.Addr, error) {
	if advertise == nil {
		advertise = listen
	}
	a, ok := advertise.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("cluster: %s advertise address %v is not TCP", purpose, advertise)
	}
	if a.IP == nil || a.IP.IsUnspecified() {
		return nil, fmt.Errorf("cluster: %s advertise address %v has no IP peers can dial", purpose, advertise)
	}
	if a.Port == 0 {
		b := *a
		b.Port = listen.(*net.TCPAddr).Port
		a = &b
	}
	return a, nil
}

// acceptLoop accepts TCP connections and starts their handshakes until
// Close.
func (l *authStreamLayer) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration // backoff after a failed Accept
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("cluster: "+l.purpose+" accept failed", "err", err, "retry_in", delay)
			select {
			case <-l.closed:
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		select {
		case l.slots <- struct{}{}:
		default:
			l.refused(c, "too many "+l.purpose+" handshakes in progress")
			c.Close()
			continue
		}
		if !l.track(c) {
			<-l.slots
			c.Close()
			return
		}
		l.wg.Add(1)
		go l.handshake(c)
	}
}

// handshake authenticates c and hands its tunnel to Accept, or closes it.
func (l *authStreamLayer) handshake(c net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.slots }()
	tc, err := l.serverHandshake(c)
	evicted := l.untrack(c)
	if err != nil || evicted {
		select {
		case <-l.closed: // Close cut the handshake short; not the peer's doing
		default:
			if evicted {
				l.refused(c, "handshake cut short for a newer connection (too many in progress from its source, or in all)")
			} else {
				l.refused(c, err.Error())
			}
		}
		c.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.closed:
		tc.Close()
	}
}

// refused logs a refused connection, unless refusals are being logged too
// often: those are only counted, and the count goes with the next one
// logged.
func (l *authStreamLayer) refused(c net.Conn, reason string) {
	if !l.logLimit.Allow() {
		l.muted.Add(1)
		return
	}
	attrs := []any{"remote", c.RemoteAddr().String(), "reason", reason}
	if n := l.muted.Swap(0); n > 0 {
		attrs = append(attrs, "not_logged", n)
	}
	l.log.Warn("cluster: refused "+l.purpose+" connection", attrs...)
}

// sourceOf returns the source a connection is counted under: its IP, or
// its /64 for IPv6, where one host commonly has a whole /64.
func sourceOf(c net.Conn) string {
	a, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return c.RemoteAddr().String()
	}
	if ip4 := a.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return a.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// track records c as in its handshake, unless the layer is closed. If
// that makes too many from c's source, or in all, it cuts the oldest
// short (of the source, else of all): closing it ends its handshake,
// whose goroutine then refuses it.
func (l *authStreamLayer) track(c net.Conn) bool {
	src := sourceOf(c)
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
		return false
	default:
	}
	switch {
	case l.bySource[src] >= maxHandshakesPerSource:
		l.evictOldest(src)
	case len(l.pending) >= maxHandshakes:
		l.evictOldest("")
	}
	l.seq++
	l.pending[c] = pendingConn{source: src, seq: l.seq}
	l.bySource[src]++
	return true
}

// evictOldest closes the oldest pending connection of source ("" for
// any) and stops counting it. l.mu must be held.
func (l *authStreamLayer) evictOldest(source string) {
	var (
		oldest net.Conn
		seq    uint64
	)
	for c, p := range l.pending {
		if (source == "" || p.source == source) && (oldest == nil || p.seq < seq) {
			oldest, seq = c, p.seq
		}
	}
	if oldest == nil {
		return
	}
	l.forget(oldest)
	l.evicted[oldest] = struct{}{}
	oldest.Close()
}

// forget stops counting c as pending. l.mu must be held.
func (l *authStreamLayer) forget(c net.Conn) {
	p, ok := l.pending[c]
	if !ok {
		return
	}
	delete(l.pending, c)
	if l.bySource[p.source]--; l.bySource[p.source] <= 0 {
		delete(l.bySource, p.source)
	}
}

// untrack ends c's handshake and reports whether it was cut short.
func (l *authStreamLayer) untrack(c net.Conn) (evicted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forget(c)
	if _, evicted = l.evicted[c]; evicted {
		delete(l.evicted, c)
	}
	return evicted
}

// Accept waits for the next authenticated inbound connection. After Close
// it returns an error matching net.ErrClosed.
func (l *authStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		if !l.waitServed {
			return c, nil
		}
		sc := &servedConn{Conn: c, l: l}
		l.mu.Lock()
		defer l.mu.Unlock()
		select {
		case <-l.closed: // Close has run or is waiting: too late to serve
			c.Close()
			return nil, l.closedErr()
		default:
		}
		l.served[sc] = struct{}{}
		l.servedWG.Add(1)
		return sc, nil
	case <-l.closed:
		return nil, l.closedErr()
	}
}

// closedErr is Accept's error after Close.
func (l *authStreamLayer) closedErr() error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: l.advertise, Err: net.ErrClosed}
}

// Close stops listening, closes the connections still in their handshake
// and waits for the layer's goroutines to end. Connections already returned
// by Dial are the caller's, and so are those returned by Accept unless
// waitServed (the raft layer): then Close closes them too and waits, at
// most servedCloseWait, for their users to close them, so that nothing
// served on them is still running when Close returns. It is safe to call
// more than once.
func (l *authStreamLayer) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		close(l.closed)
		for c := range l.pending {
			c.Close()
		}
		for c := range l.served {
			c.Conn.Close() // the user's Close, when it returns, is the signal
		}
		l.mu.Unlock()
		l.closeErr = l.ln.Close()
		l.wg.Wait()
		if !waitTimeout(&l.servedWG, servedCloseWait) {
			l.log.Warn("cluster: closed with a handler of an inbound connection still running", "purpose", l.purpose)
		}
	})
	return l.closeErr
}

// waitTimeout waits for wg at most d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Addr returns the advertised address.
func (l *authStreamLayer) Addr() net.Addr { return l.advertise }

// Dial connects to a raft peer and opens the tunnel (TLS, then the
// rpcauth client handshake), all within timeout (zero means only
// rpcauth.HandshakeTimeout bounds the handshake). It fails if the peer
// refuses us or does not prove the cluster's CA and secret.
func (l *authStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	start := time.Now()
	c, err := (&net.Dialer{Timeout: timeout}).Dial("tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("cluster: %s dial %s: %w", l.purpose, address, err)
	}
	var timer *time.Timer // cuts the handshake short at timeout
	if timeout > 0 {
		timer = time.AfterFunc(timeout-time.Since(start), func() { c.Close() })
	}
	tc, err := clientHandshake(context.Background(), c, l.dialTLS, l.secret, l.purpose)
	if timer != nil && !timer.Stop() {
		c.Close()
		return nil, fmt.Errorf("cluster: %s handshake with %s: not done within %v: %w", l.purpose, address, timeout, os.ErrDeadlineExceeded)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("cluster: %s handshake with %s: %w", l.purpose, address, err)
	}
	return tc, nil
}
