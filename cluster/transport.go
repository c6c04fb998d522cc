package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/internal/rpcauth"
)

// raftPurpose is the rpcauth handshake purpose of raft connections, so a
// handshake made for another internode stream never opens a raft one.
const raftPurpose = "raft"

// maxHandshakes bounds the inbound raft connections being authenticated or
// waiting for Accept at once; connections beyond it are closed on arrival.
const maxHandshakes = 64

// authStreamLayer is a raft.StreamLayer over TCP whose connections start
// with an rpcauth handshake under the cluster secret: Dial returns only
// connections to a server that proved the secret, Accept only connections
// from a client that proved it, with a fresh time and nonce. After the
// handshake the stream is plain raft (see rpcauth on what that does not
// protect).
//
// Inbound handshakes run in goroutines of their own, at most maxHandshakes
// at once, each bounded by rpcauth.HandshakeTimeout, so a slow or hostile
// peer never holds up Accept. Refused connections are logged at Warn with
// the remote address and the reason. It is safe for concurrent use.
type authStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	secret    []byte
	purpose   string // the handshake purpose: raftPurpose or rpcPurpose
	verifier  *rpcauth.Verifier
	log       *slog.Logger

	conns  chan net.Conn  // authenticated inbound connections, to Accept
	slots  chan struct{}  // a token per inbound connection not yet delivered
	closed chan struct{}  // closed by Close
	wg     sync.WaitGroup // the accept loop and the handshake goroutines

	mu      sync.Mutex            // guards pending; Close closes closed under it
	pending map[net.Conn]struct{} // inbound connections in their handshake

	closeOnce sync.Once
	closeErr  error
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
		return nil, fmt.Errorf("cluster: raft transport needs a cluster secret of at least %d bytes", rpcauth.MinSecretSize)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("cluster: raft listen: %w", err)
	}
	adv, err := advertiseAddr(advertise, ln.Addr())
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
		conns:     make(chan net.Conn),
		slots:     make(chan struct{}, maxHandshakes),
		closed:    make(chan struct{}),
		pending:   make(map[net.Conn]struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// advertiseAddr returns the address to advertise for a listener on listen.
func advertiseAddr(advertise, listen net.Addr) (net.Addr, error) {
	if advertise == nil {
		advertise = listen
	}
	a, ok := advertise.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("cluster: raft advertise address %v is not TCP", advertise)
	}
	if a.IP == nil || a.IP.IsUnspecified() {
		return nil, fmt.Errorf("cluster: raft advertise address %v has no IP peers can dial", advertise)
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
			l.log.Warn("cluster: raft accept failed", "err", err, "retry_in", delay)
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
			l.refused(c, "too many raft handshakes in progress")
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

// handshake authenticates c and hands it to Accept, or closes it.
func (l *authStreamLayer) handshake(c net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.slots }()
	err := l.verifier.ServerHandshake(c, l.purpose)
	l.untrack(c)
	if err != nil {
		select {
		case <-l.closed: // Close cut the handshake short; not the peer's doing
		default:
			l.refused(c, err.Error())
		}
		c.Close()
		return
	}
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *authStreamLayer) refused(c net.Conn, reason string) {
	l.log.Warn("cluster: refused "+l.purpose+" connection", "remote", c.RemoteAddr().String(), "reason", reason)
}

// track records c as in its handshake, unless the layer is closed.
func (l *authStreamLayer) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
		return false
	default:
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *authStreamLayer) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
}

// Accept waits for the next authenticated inbound connection. After Close
// it returns an error matching net.ErrClosed.
func (l *authStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.advertise, Err: net.ErrClosed}
	}
}

// Close stops listening, closes the connections still in their handshake
// and waits for the layer's goroutines to end. Connections already returned
// by Accept or Dial are the caller's. It is safe to call more than once.
func (l *authStreamLayer) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		close(l.closed)
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
		l.closeErr = l.ln.Close()
		l.wg.Wait()
	})
	return l.closeErr
}

// Addr returns the advertised address.
func (l *authStreamLayer) Addr() net.Addr { return l.advertise }

// Dial connects to a raft peer and runs the client handshake, all within
// timeout (zero means only rpcauth.HandshakeTimeout bounds the handshake).
// It fails if the peer refuses us or does not prove the cluster secret.
func (l *authStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	start := time.Now()
	c, err := (&net.Dialer{Timeout: timeout}).Dial("tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("cluster: raft dial %s: %w", address, err)
	}
	var timer *time.Timer // cuts the handshake short at timeout
	if timeout > 0 {
		timer = time.AfterFunc(timeout-time.Since(start), func() { c.Close() })
	}
	err = rpcauth.ClientHandshake(c, l.secret, l.purpose, time.Now())
	if timer != nil && !timer.Stop() {
		c.Close()
		return nil, fmt.Errorf("cluster: raft handshake with %s: not done within %v: %w", address, timeout, os.ErrDeadlineExceeded)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("cluster: raft handshake with %s: %w", address, err)
	}
	return c, nil
}
