package cluster

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/internal/clustertls"
	"github.com/vaultaire/vaultaire/internal/rpcauth"
)

var (
	transportSecret      = []byte("transport-test-secret-0123456789")
	otherTransportSecret = []byte("another-cluster-secret-987654321")
)

// transportLogs is a log sink safe for concurrent use.
type transportLogs struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *transportLogs) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *transportLogs) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLayer is an authStreamLayer on a loopback port with its log and a
// channel of what Accept returns.
type testLayer struct {
	*authStreamLayer
	logs     *transportLogs
	accepted chan net.Conn
}

// newTestLayer starts a layer with secret; cleanup is registered with t.
// Unless noAccept, a goroutine calls Accept until Close and sends the
// connections to accepted.
func newTestLayer(t *testing.T, secret []byte, noAccept bool) *testLayer {
	t.Helper()
	return newTestListener(t, raftPurpose, secret, noAccept)
}

// newTestListener is newTestLayer for a listener of any purpose (ListenRPC
// is newAuthListener for rpcPurpose).
func newTestListener(t *testing.T, purpose string, secret []byte, noAccept bool) *testLayer {
	t.Helper()
	return newTestListenerTLS(t, purpose, secret, testIdentity(t, secret), noAccept)
}

// testIdentity is the internode TLS identity derived from secret.
func testIdentity(t testing.TB, secret []byte) *clustertls.Identity {
	t.Helper()
	id, err := internodeIdentity(secret)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newTestListenerTLS is newTestListener with the TLS identity id (nil:
// no TLS), which may be another secret's.
func newTestListenerTLS(t *testing.T, purpose string, secret []byte, id *clustertls.Identity, noAccept bool) *testLayer {
	t.Helper()
	logs := &transportLogs{}
	l, err := newAuthListenerTLS("127.0.0.1:0", nil, secret, purpose, id, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tl := &testLayer{authStreamLayer: l, logs: logs, accepted: make(chan net.Conn, 16)}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for {
			select {
			case c := <-tl.accepted:
				c.Close()
			default:
				return
			}
		}
	})
	if !noAccept {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				tl.accepted <- c
			}
		}()
	}
	return tl
}

// addr is the layer's address for Dial.
func (l *testLayer) addr() raft.ServerAddress { return raft.ServerAddress(l.Addr().String()) }

// expectAccept returns the next accepted connection or fails after within.
func (l *testLayer) expectAccept(t *testing.T, within time.Duration) net.Conn {
	t.Helper()
	select {
	case c := <-l.accepted:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(within):
		t.Fatalf("Accept returned nothing within %v; log:\n%s", within, l.logs)
		return nil
	}
}

// expectNoAccept fails if a connection is accepted within d.
func (l *testLayer) expectNoAccept(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case c := <-l.accepted:
		c.Close()
		t.Errorf("Accept returned a connection from %v, want none", c.RemoteAddr())
	case <-time.After(d):
	}
}

// waitLog waits until the layer's log contains all of want.
func (l *testLayer) waitLog(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		logs := l.logs.String()
		missing := ""
		for _, w := range want {
			if !strings.Contains(logs, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", missing, logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectClosedByPeer fails unless the peer closes (or resets) c within d,
// sending nothing.
func expectClosedByPeer(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	n, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("connection not closed by the layer within %v", d)
	}
	if n != 0 {
		t.Errorf("the layer sent %d bytes before closing", n)
	}
}

// rawDial opens a plain TCP connection to l.
func rawDial(t *testing.T, l *testLayer) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange checks that bytes flow both ways between a dialed and an
// accepted connection.
func exchange(t *testing.T, dialed, accepted net.Conn) {
	t.Helper()
	for _, dir := range []struct {
		from, to net.Conn
		msg      string
	}{{dialed, accepted, "ping from the client"}, {accepted, dialed, "pong from the server"}} {
		if _, err := dir.from.Write([]byte(dir.msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(dir.msg))
		dir.to.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(dir.to, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != dir.msg {
			t.Errorf("got %q, want %q", got, dir.msg)
		}
	}
}

func TestTransportRoundTrip(t *testing.T) {
	srv := newTestLayer(t, transportSecret, false)
	cli := newTestLayer(t, transportSecret, false)
	c, err := cli.Dial(srv.addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange(t, c, srv.expectAccept(t, 2*time.Second))
	if got, want := srv.Addr().String(), srv.ln.Addr().String(); got != want {
		t.Errorf("Addr() = %s, want the listener's %s", got, want)
	}
	if logs := srv.logs.String(); strings.Contains(logs, "refused") {
		t.Errorf("server refused something:\n%s", logs)
	}
}

// TestTransportWrongSecret: a node of another cluster (another secret,
// hence another derived CA) can neither connect nor be connected to, and
// under a shared CA (an operator's) the secret handshake inside the tunnel
// still keeps it out.
func TestTransportWrongSecret(t *testing.T) {
	tests := []struct {
		name           string
		server, client []byte // secrets
		sharedCA       bool   // both use the server secret's CA
		wantClient     string // in Dial's error
		wantServer     string // in the server's refusal log
	}{
		{"client with another secret", transportSecret, otherTransportSecret, false, "certificate signed by unknown authority", "tls handshake: remote error: tls: bad certificate"},
		{"server with another secret", otherTransportSecret, transportSecret, false, "certificate signed by unknown authority", "tls handshake: remote error: tls: bad certificate"},
		{"shared CA, another secret", transportSecret, otherTransportSecret, true, "server closed the connection", "bad hello MAC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestLayer(t, tt.server, false)
			cliID := testIdentity(t, tt.client)
			if tt.sharedCA {
				cliID = testIdentity(t, tt.server)
			}
			cli := newTestListenerTLS(t, raftPurpose, tt.client, cliID, false)
			c, err := cli.Dial(srv.addr(), 2*time.Second)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded across secrets")
			}
			if !strings.Contains(err.Error(), tt.wantClient) {
				t.Errorf("Dial: got err %v, want it to say %q", err, tt.wantClient)
			}
			srv.expectNoAccept(t, 100*time.Millisecond)
			srv.waitLog(t, "level=WARN", "refused raft connection", "remote=127.0.0.1:", tt.wantServer)
			for _, l := range []*testLayer{srv, cli} {
				if logs := l.logs.String(); strings.Contains(logs, string(tt.server)) || strings.Contains(logs, string(tt.client)) {
					t.Errorf("log shows a secret:\n%s", logs)
				}
			}
		})
	}
}

// TestTransportImpostorServer checks Dial refuses a server that answers
// without holding the cluster's CA or secret: one without TLS, one with a
// certificate of another CA, and one with the right CA (an operator's,
// shared) that reflects the hello instead of proving the secret.
func TestTransportImpostorServer(t *testing.T) {
	tests := []struct {
		name string
		tls  *tls.Config // nil: no TLS
		want string
	}{
		{"no TLS", nil, "first record does not look like a TLS handshake"},
		{"another CA", testIdentity(t, otherTransportSecret).ServerConfig(), "certificate signed by unknown authority"},
		{"right CA, no secret", testIdentity(t, transportSecret).ServerConfig(), "did not prove the cluster secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					if tt.tls != nil {
						c = tls.Server(c, tt.tls)
					}
					go func() {
						defer c.Close()
						hello := make([]byte, 60)
						if _, err := io.ReadFull(c, hello); err != nil {
							return
						}
						c.Write(hello[len(hello)-32:]) // its own MAC, reflected
						io.Copy(io.Discard, c)
					}()
				}
			}()
			cli := newTestLayer(t, transportSecret, true)
			c, err := cli.Dial(raft.ServerAddress(ln.Addr().String()), 2*time.Second)
			if err == nil {
				c.Close()
				t.Fatal("Dial accepted an impostor server")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Dial: got err %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestTransportHostileClientsDoNotBlockAccept(t *testing.T) {
	tests := []struct {
		name      string
		send      []byte
		closedNow bool // the layer closes it at once rather than at the handshake timeout
	}{
		{"silent", nil, false},
		{"partial TLS record", []byte("\x16\x03\x01\x02"), false},
		{"rpcauth hello without TLS", nil, true}, // sent with rpcauth below
		{"garbage", bytes.Repeat([]byte{'x'}, 60), true},
		{"HTTP", []byte("GET /v1/drives HTTP/1.1\r\nHost: raft\r\n\r\n" + strings.Repeat(" ", 30)), true},
		{"TLS under another CA", nil, true}, // a TLS client of another cluster, below
	}
	srv := newTestLayer(t, transportSecret, false)
	cli := newTestLayer(t, transportSecret, false)
	var hostile []net.Conn
	for _, tt := range tests {
		for range 3 {
			c := rawDial(t, srv)
			switch {
			case tt.name == "rpcauth hello without TLS":
				go rpcauth.ClientHandshake(c, transportSecret, raftPurpose, time.Now())
			case tt.name == "TLS under another CA":
				go tls.Client(c, testIdentity(t, otherTransportSecret).ClientConfig()).Handshake()
			default:
				if _, err := c.Write(tt.send); err != nil {
					t.Fatal(err)
				}
			}
			hostile = append(hostile, c)
		}
	}
	start := time.Now()
	c, err := cli.Dial(srv.addr(), 2*time.Second)
	if err != nil {
		t.Fatalf("good client refused behind hostile ones: %v", err)
	}
	defer c.Close()
	exchange(t, c, srv.expectAccept(t, time.Second))
	if d := time.Since(start); d > time.Second {
		t.Errorf("good client took %v, want well under the handshake timeout %v", d, rpcauth.HandshakeTimeout)
	}
	srv.expectNoAccept(t, 50*time.Millisecond)
	for i, tt := range tests {
		if tt.closedNow && tt.name != "TLS under another CA" && tt.name != "rpcauth hello without TLS" {
			for _, h := range hostile[3*i : 3*i+3] {
				expectClosedByPeer(t, h, time.Second)
			}
		}
	}
	srv.waitLog(t, "first record does not look like a TLS handshake", "certificate")
}

// dialFrom opens a plain TCP connection to l from the loopback address
// src (any of 127.0.0.0/8), closed at the end of the test.
func dialFrom(t *testing.T, l *testLayer, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// authFrom runs an honest peer's handshake from src and checks that Accept
// delivers the connection, all within d.
func authFrom(t *testing.T, l *testLayer, purpose, src string, d time.Duration) {
	t.Helper()
	start := time.Now()
	c, err := clientHandshake(t.Context(), dialFrom(t, l, src), l.dialTLS, transportSecret, purpose)
	if err != nil {
		t.Fatalf("honest peer from %s refused: %v; log:\n%s", src, err, l.logs)
	}
	exchange(t, c, l.expectAccept(t, d))
	if took := time.Since(start); took > d {
		t.Errorf("honest peer from %s took %v, want under %v", src, took, d)
	}
}

// waitPending waits until the layer counts want handshakes in progress
// from src.
func waitPending(t *testing.T, l *testLayer, src string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		got, total := l.bySource[src], len(l.pending)
		l.mu.Unlock()
		if got == want && total <= maxHandshakes {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d handshakes in progress from %s (%d in all), want %d", got, src, total, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTransportHandshakeLimits: idle connections from one source cannot
// keep an honest peer out, neither one from another source nor one from
// the same (a local attacker and the nodes of a one-host cluster all come
// from 127.0.0.1); the idle ones are cut short, the rest closed at the
// handshake deadline; refusals are logged under the listener's purpose and
// rate-limited.
func TestTransportHandshakeLimits(t *testing.T) {
	for _, purpose := range []string{raftPurpose, rpcPurpose} {
		t.Run(purpose, func(t *testing.T) {
			srv := newTestListener(t, purpose, transportSecret, false)
			start := time.Now()
			const idle = 2 * maxHandshakesPerSource
			conns := make([]net.Conn, idle)
			for i := range conns {
				conns[i] = dialFrom(t, srv, "127.0.0.1")
			}
			waitPending(t, srv, "127.0.0.1", maxHandshakesPerSource)
			// The oldest were cut short at once.
			for _, c := range conns[:maxHandshakesPerSource] {
				expectClosedByPeer(t, c, time.Second)
			}
			authFrom(t, srv, purpose, "127.0.0.2", time.Second)
			authFrom(t, srv, purpose, "127.0.0.1", time.Second)
			// The newest idle ones are closed at the handshake deadline.
			for _, c := range conns[maxHandshakesPerSource+1:] {
				expectClosedByPeer(t, c, rpcauth.ServerHandshakeTimeout+3*time.Second)
			}
			if d := time.Since(start); d < rpcauth.ServerHandshakeTimeout-100*time.Millisecond {
				t.Errorf("idle connections closed after %v, before the handshake deadline %v", d, rpcauth.ServerHandshakeTimeout)
			}
			waitPending(t, srv, "127.0.0.1", 0)
			srv.waitLog(t, "refused "+purpose+" connection", "cut short", "i/o timeout", "not_logged=")
			logs := srv.logs.String()
			other := map[string]string{raftPurpose: rpcPurpose, rpcPurpose: raftPurpose}[purpose]
			for _, wrong := range []string{"refused " + other, other + " handshakes", "cluster: " + other} {
				if strings.Contains(logs, wrong) {
					t.Errorf("the %s listener's log says %q:\n%s", purpose, wrong, logs)
				}
			}
			lines := strings.Count(logs, "refused "+purpose+" connection")
			if max := refusalLogBurst + int(time.Since(start).Seconds()*refusalLogRate) + 1; lines > max {
				t.Errorf("%d refusals logged for %d refused connections, want at most %d (rate-limited)", lines, idle, max)
			}
		})
	}
}

// TestTransportHandshakeLimitAll: idle connections from many sources fill
// no more than maxHandshakes slots, and an honest peer still gets in.
func TestTransportHandshakeLimitAll(t *testing.T) {
	srv := newTestListener(t, rpcPurpose, transportSecret, false)
	sources := maxHandshakes/maxHandshakesPerSource + 2
	for i := range sources {
		src := fmt.Sprintf("127.0.1.%d", i+1)
		for range maxHandshakesPerSource {
			dialFrom(t, srv, src)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv.mu.Lock()
		n := len(srv.pending)
		srv.mu.Unlock()
		if n == maxHandshakes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d handshakes in progress, want the cap %d", n, maxHandshakes)
		}
		time.Sleep(5 * time.Millisecond)
	}
	authFrom(t, srv, rpcPurpose, "127.0.2.1", time.Second)
	authFrom(t, srv, rpcPurpose, "127.0.1.1", time.Second)
}

// recordingConn records what is written to it.
type recordingConn struct {
	net.Conn
	written bytes.Buffer
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.written.Write(p)
	return c.Conn.Write(p)
}

// TestTransportReplayedHello: the bytes of an honest client's whole
// handshake, replayed on a new connection, fail TLS (the server's
// handshake is fresh); the rpcauth hello replayed inside a new tunnel is
// refused as a replay.
func TestTransportReplayedHello(t *testing.T) {
	srv := newTestLayer(t, transportSecret, false)
	raw := &recordingConn{Conn: rawDial(t, srv)}
	tc := tls.Client(raw, srv.dialTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	inner := &recordingConn{Conn: tc}
	if err := rpcauth.ClientHandshake(inner, transportSecret, raftPurpose, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv.expectAccept(t, time.Second)

	replay := rawDial(t, srv)
	if _, err := replay.Write(raw.written.Bytes()); err != nil {
		t.Fatal(err)
	}
	replay.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, replay) // the server's handshake, then its close
	srv.expectNoAccept(t, 50*time.Millisecond)
	srv.waitLog(t, "refused raft connection", "tls handshake")

	fresh := tls.Client(rawDial(t, srv), srv.dialTLS)
	if err := fresh.Handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Write(inner.written.Bytes()); err != nil {
		t.Fatal(err)
	}
	expectClosedByPeer(t, fresh, time.Second)
	srv.expectNoAccept(t, 50*time.Millisecond)
	srv.waitLog(t, "refused raft connection", "replayed nonce")
}

func TestTransportClose(t *testing.T) {
	srv := newTestLayer(t, transportSecret, true)
	silent := rawDial(t, srv)
	deadline := time.Now().Add(2 * time.Second)
	for len(srv.slots) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	acceptErr := make(chan error, 1)
	go func() {
		c, err := srv.Accept()
		if err == nil {
			c.Close()
		}
		acceptErr <- err
	}()
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with a handshake pending", d)
	}
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: got err %v, want net.ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close did not unblock Accept")
	}
	if _, err := srv.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Accept after Close: got err %v, want net.ErrClosed", err)
	}
	expectClosedByPeer(t, silent, time.Second)
	if strings.Contains(srv.logs.String(), "refused") {
		t.Errorf("Close logged its own handshakes as refused:\n%s", srv.logs)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	cli := newTestLayer(t, transportSecret, true)
	if c, err := cli.Dial(srv.addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("Dial to a closed layer succeeded")
	}
}

// TestTransportCloseWaitsForServed: Close of the raft layer closes the
// connections Accept returned and returns only once their users have
// closed them, so that raft's handler of an inbound connection is not in
// the middle of a heartbeat (saving a term) when the Store closes the log
// store after it; one that was panicked the process (CI, stop 37).
func TestTransportCloseWaitsForServed(t *testing.T) {
	srv := newTestLayer(t, transportSecret, false)
	cli := newTestLayer(t, transportSecret, false)
	c, err := cli.Dial(srv.addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	served := srv.expectAccept(t, 2*time.Second)
	var finished atomic.Bool
	readErr := make(chan error, 1)
	go func() { // a handler: reads commands until its connection fails, then finishes the one in hand
		_, err := io.Copy(io.Discard, served)
		readErr <- err
		time.Sleep(300 * time.Millisecond)
		finished.Store(true)
		served.Close()
	}()
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !finished.Load() {
		t.Errorf("Close returned after %v with the handler of an accepted connection still running", time.Since(start))
	}
	if d := time.Since(start); d > servedCloseWait {
		t.Errorf("Close took %v, more than servedCloseWait", d)
	}
	select {
	case <-readErr: // Close closed it under the handler
	case <-time.After(time.Second):
		t.Error("the handler's read was not ended by Close")
	}
}

func TestTransportDialTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts (in the backlog), never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli := newTestLayer(t, transportSecret, true)
	start := time.Now()
	c, err := cli.Dial(raft.ServerAddress(ln.Addr().String()), 200*time.Millisecond)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a silent server succeeded")
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Dial: got err %v, want os.ErrDeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Dial took %v, want about its 200ms timeout", d)
	}
}

func TestTransportAdvertiseAddr(t *testing.T) {
	listen := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7001}
	tests := []struct {
		name      string
		advertise net.Addr
		want      string // "" means an error
	}{
		{"nil means the listener", nil, "127.0.0.1:7001"},
		{"given", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 9001}, "10.0.0.2:9001"},
		{"port 0 means the listener's", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2)}, "10.0.0.2:7001"},
		{"unspecified IP", &net.TCPAddr{IP: net.IPv4zero, Port: 9001}, ""},
		{"no IP", &net.TCPAddr{Port: 9001}, ""},
		{"not TCP", &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 9001}, ""},
	}
	for _, tt := range tests {
		got, err := advertiseAddr(raftPurpose, tt.advertise, listen)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%s: got %v, want an error", tt.name, got)
		case tt.want != "" && (err != nil || got.String() != tt.want):
			t.Errorf("%s: got %v, %v; want %s", tt.name, got, err, tt.want)
		}
	}
	if _, err := newAuthStreamLayer("127.0.0.1:0", nil, transportSecret[:rpcauth.MinSecretSize-1], nil); err == nil {
		t.Errorf("newAuthStreamLayer accepted a short secret")
	}
}

// countFSM is a raft.FSM that records the commands applied.
type countFSM struct {
	mu   sync.Mutex // guards cmds
	cmds []string
}

func (f *countFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	return nil
}

func (f *countFSM) has(cmd string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.cmds {
		if c == cmd {
			return true
		}
	}
	return false
}

func (*countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (*countFSM) Restore(io.ReadCloser) error         { return errors.New("no snapshots") }

func TestTransportRaftReplicates(t *testing.T) {
	type node struct {
		id    raft.ServerID
		layer *testLayer
		fsm   *countFSM
		raft  *raft.Raft
	}
	nodes := make([]*node, 2)
	var servers []raft.Server
	for i := range nodes {
		l := newTestLayer(t, transportSecret, true) // raft's transport accepts
		nodes[i] = &node{id: raft.ServerID([]string{"n1", "n2"}[i]), layer: l, fsm: &countFSM{}}
		servers = append(servers, raft.Server{ID: nodes[i].id, Address: l.addr()})
	}
	for _, n := range nodes {
		trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: n.layer.authStreamLayer, MaxPool: 2, Timeout: 2 * time.Second, Logger: hclog.NewNullLogger(),
		})
		c := raft.DefaultConfig()
		c.LocalID = n.id
		c.Logger = hclog.NewNullLogger()
		c.HeartbeatTimeout = 200 * time.Millisecond
		c.ElectionTimeout = 200 * time.Millisecond
		c.LeaderLeaseTimeout = 100 * time.Millisecond
		c.CommitTimeout = 5 * time.Millisecond
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(c, n.fsm, store, store, raft.NewInmemSnapshotStore(), trans)
		if err != nil {
			t.Fatal(err)
		}
		n.raft = r
		t.Cleanup(func() {
			if err := r.Shutdown().Error(); err != nil {
				t.Errorf("shutdown %s: %v", n.id, err)
			}
		})
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	var leader atomic.Pointer[node]
	deadline := time.Now().Add(10 * time.Second)
	for leader.Load() == nil {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				leader.Store(n)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader elected; logs:\n%s\n%s", nodes[0].layer.logs, nodes[1].layer.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := leader.Load().raft.Apply([]byte("hello over rpcauth"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		for !n.fsm.has("hello over rpcauth") {
			if time.Now().After(deadline) {
				t.Fatalf("%s never applied the entry", n.id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, n := range nodes {
		if logs := n.layer.logs.String(); strings.Contains(logs, "refused") {
			t.Errorf("%s refused a connection:\n%s", n.id, logs)
		}
	}
}

func TestHCLogFormats(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Info("initial configuration", "index", 3, "servers", hclog.Fmt("%+v", []string{"n1", "n2"}))
	if got := buf.String(); !strings.Contains(got, "servers=\"[n1 n2]\"") || strings.Contains(got, "%+v") {
		t.Errorf("log line %q: want the format rendered", got)
	}
}
