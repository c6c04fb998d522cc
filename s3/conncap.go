package s3

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Connection caps (Config.MaxConns, Config.MaxConnsPerIP) are enforced by
// connCaps in the server's own accept loop, not by fasthttp: fasthttp's
// per-address counter pools its connection wrappers, and the race
// detector caught Shutdown racing with them. A connection over a cap is
// refused before anything of it is read: in its own goroutine, with a
// deadline, the server writes a minimal S3 error (429 SlowDown over the
// per-source cap, 503 SlowDown over the total cap, both with
// "Retry-After: 1" and "Connection: close"), shuts its side down, discards
// what the client sends for at most refuseLinger (so that the answer is
// not destroyed by a reset) and closes. At most maxRefusing refusals are
// in progress at once; beyond that a connection over a cap is closed
// without an answer. So an unauthenticated client never holds more than
// its share of connections, nor a refused one for longer than
// refuseTimeout.
const (
	maxRefusing   = 64
	refuseTimeout = 2 * time.Second        // the whole refusal: answer, linger, close
	refuseLinger  = 500 * time.Millisecond // of refuseTimeout, the discarding of input
)

// connCaps counts a Server's client connections, in all and per source,
// over every listener the Server serves. It is safe for concurrent use.
type connCaps struct {
	all, perSource int // caps; zero or negative: none
	log            *slog.Logger
	logLimit       *rate.Limiter // refusals logged
	muted          atomic.Int64  // refusals not logged since the last one logged
	refusing       chan struct{} // a token per refusal in progress

	// Refusals so far: over the per-source cap, over the total cap, and
	// those of either closed unanswered (maxRefusing answers in progress).
	refusedSource, refusedAll, unanswered atomic.Uint64

	mu       sync.Mutex         // guards the two fields below
	n        int                // connections open
	bySource map[netip.Addr]int // connections open per source
}

func newConnCaps(all, perSource int, log *slog.Logger) *connCaps {
	return &connCaps{
		all: all, perSource: perSource, log: log,
		logLimit: rate.NewLimiter(1, 8),
		refusing: make(chan struct{}, maxRefusing),
		bySource: make(map[netip.Addr]int),
	}
}

// source is the address a connection is counted under: an IPv4 address,
// or an IPv6 /64 (one host's usual allocation); ok is false when the
// address is not an IP (no per-source cap then).
func source(a net.Addr) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, true
}

// admit counts a connection from src (hasSrc false: no source) and
// returns 0, or the status to refuse it with.
func (k *connCaps) admit(src netip.Addr, hasSrc bool) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.all > 0 && k.n >= k.all {
		return http.StatusServiceUnavailable
	}
	if hasSrc && k.perSource > 0 && k.bySource[src] >= k.perSource {
		return http.StatusTooManyRequests
	}
	k.n++
	if hasSrc {
		k.bySource[src]++
	}
	return 0
}

// ConnStats counts a Server's client connections (Server.ConnStats).
type ConnStats struct {
	Open int // connections open now, over every listener
	// Connections refused over the per-source cap (429) and over the
	// total cap (503) since the Server started; Unanswered of them were
	// closed without an answer because maxRefusing answers were under way.
	RefusedPerSource, RefusedTotal, Unanswered uint64
}

func (k *connCaps) stats() ConnStats {
	k.mu.Lock()
	open := k.n
	k.mu.Unlock()
	return ConnStats{Open: open, RefusedPerSource: k.refusedSource.Load(),
		RefusedTotal: k.refusedAll.Load(), Unanswered: k.unanswered.Load()}
}

// release uncounts a connection admit counted.
func (k *connCaps) release(src netip.Addr, hasSrc bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n--
	if !hasSrc {
		return
	}
	if k.bySource[src]--; k.bySource[src] <= 0 {
		delete(k.bySource, src)
	}
}

// refusals are the answers to connections over a cap, by status.
var refusals = map[int][]byte{
	http.StatusTooManyRequests:    refusal(http.StatusTooManyRequests, "Too many connections from your address; close some or retry later."),
	http.StatusServiceUnavailable: refusal(http.StatusServiceUnavailable, "Too many connections to this server; retry later."),
}

func refusal(status int, msg string) []byte {
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>%s</Code><Message>%s</Message></Error>`, ErrSlowDown.Code, msg)
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nServer: Vaultaire\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}

// refuse answers c with status and closes it, in a goroutine of its own
// bounded by refuseTimeout, or closes it at once when maxRefusing
// refusals are in progress. A TLS connection's handshake runs in the
// answer's write, under the same deadline.
func (k *connCaps) refuse(c net.Conn, status int) {
	if status == http.StatusTooManyRequests {
		k.refusedSource.Add(1)
	} else {
		k.refusedAll.Add(1)
	}
	if k.logLimit.Allow() {
		k.log.Warn("connection refused", "client", c.RemoteAddr().String(), "status", status,
			"max_conns", k.all, "max_conns_per_ip", k.perSource, "not_logged_since", k.muted.Swap(0))
	} else {
		k.muted.Add(1)
	}
	select {
	case k.refusing <- struct{}{}:
	default:
		k.unanswered.Add(1)
		c.Close()
		return
	}
	go func() {
		defer func() { <-k.refusing }()
		defer c.Close()
		end := time.Now().Add(refuseTimeout)
		c.SetDeadline(end)
		if _, err := c.Write(refusals[status]); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		if linger := time.Now().Add(refuseLinger); linger.Before(end) {
			c.SetReadDeadline(linger)
		}
		io.CopyN(io.Discard, c, 64<<10)
	}()
}

// capListener is a net.Listener whose connections are counted by caps;
// those over a cap are refused and never returned by Accept.
type capListener struct {
	net.Listener
	caps *connCaps
}

// Accept returns the next connection within the caps.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src, hasSrc := source(c.RemoteAddr())
		if status := l.caps.admit(src, hasSrc); status != 0 {
			l.caps.refuse(c, status)
			continue
		}
		cc := &capConn{Conn: c, release: func() { l.caps.release(src, hasSrc) }}
		if _, ok := c.(tlsConn); ok {
			// fasthttp's RequestCtx.IsTLS and TLSConnectionState look for
			// these methods on the connection.
			return &capTLSConn{cc}, nil
		}
		return cc, nil
	}
}

// capConn is a counted connection: its first Close uncounts it.
type capConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close closes the connection and, the first time, uncounts it.
func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite shuts down the writing side, when the connection can.
func (c *capConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("s3: %T cannot close its writing side", c.Conn)
}

// tlsConn is what fasthttp looks for in a TLS connection.
type tlsConn interface {
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// capTLSConn is a counted TLS connection.
type capTLSConn struct{ *capConn }

// Handshake runs the TLS handshake if it has not run yet.
func (c capTLSConn) Handshake() error { return c.Conn.(tlsConn).Handshake() }

// ConnectionState returns the TLS connection's state.
func (c capTLSConn) ConnectionState() tls.ConnectionState {
	return c.Conn.(tlsConn).ConnectionState()
}
