package rpcauth

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// recConn records what is written to a net.Conn and its deadlines.
type recConn struct {
	net.Conn
	mu        sync.Mutex // guards the following fields
	written   bytes.Buffer
	deadlines []time.Time
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.written.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, t)
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// checkDeadlines reports unless c's deadline was set at most timeout
// ahead and then cleared.
func (c *recConn) checkDeadlines(t *testing.T, side string, timeout time.Duration) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.deadlines) != 2 {
		t.Fatalf("%s set %d deadlines %v, want 2 (set, clear)", side, len(c.deadlines), c.deadlines)
	}
	if d := time.Until(c.deadlines[0]); d <= 0 || d > timeout {
		t.Errorf("%s deadline %v ahead, want within (0, %v]", side, d, timeout)
	}
	if !c.deadlines[1].IsZero() {
		t.Errorf("%s left the deadline at %v, want it cleared", side, c.deadlines[1])
	}
}

// pipe runs a ClientHandshake against a ServerHandshake over net.Pipe,
// closing each side on its error as callers must, and returns both errors.
func pipe(t *testing.T, client func(net.Conn) error, server func(net.Conn) error) (clientErr, serverErr error) {
	t.Helper()
	cc, sc := net.Pipe()
	t.Cleanup(func() { cc.Close(); sc.Close() })
	done := make(chan error, 1)
	go func() {
		err := server(sc)
		if err != nil {
			sc.Close()
		}
		done <- err
	}()
	clientErr = client(cc)
	if clientErr != nil {
		cc.Close()
	}
	return clientErr, <-done
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name          string
		clientSecret  []byte
		serverSecret  []byte
		clientPurpose string
		serverPurpose string
		clientTime    time.Time
		wantServer    error // nil: both sides succeed
	}{
		{"ok", testSecret, testSecret, "raft", "raft", testNow, nil},
		{"ok within skew", testSecret, testSecret, "raft", "raft", testNow.Add(DefaultMaxSkew - time.Second), nil},
		{"wrong secret", otherSecret, testSecret, "raft", "raft", testNow, errBadHello},
		{"wrong purpose", testSecret, testSecret, "drives", "raft", testNow, errBadHello},
		{"purpose is a prefix", testSecret, testSecret, "raf", "raft", testNow, errBadHello},
		{"clock behind", testSecret, testSecret, "raft", "raft", testNow.Add(-DefaultMaxSkew - time.Second), errSkew},
		{"clock ahead", testSecret, testSecret, "raft", "raft", testNow.Add(DefaultMaxSkew + time.Second), errSkew},
		{"server secret too short", testSecret[:MinSecretSize-1], testSecret[:MinSecretSize-1], "raft", "raft", testNow, errShortSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVerifier(tt.serverSecret, 0, fixedClock(testNow))
			var crec, srec *recConn
			cerr, serr := pipe(t,
				func(c net.Conn) error {
					crec = &recConn{Conn: c}
					return ClientHandshake(crec, tt.clientSecret, tt.clientPurpose, tt.clientTime)
				},
				func(c net.Conn) error {
					srec = &recConn{Conn: c}
					return v.ServerHandshake(srec, tt.serverPurpose)
				})
			if tt.wantServer == nil {
				if cerr != nil || serr != nil {
					t.Fatalf("got client err %v, server err %v; want both nil", cerr, serr)
				}
				crec.checkDeadlines(t, "client", HandshakeTimeout)
				srec.checkDeadlines(t, "server", ServerHandshakeTimeout)
				if got, want := crec.written.Len(), helloSize; got != want {
					t.Errorf("client wrote %d bytes, want %d", got, want)
				}
				if got, want := srec.written.Len(), proofSize; got != want {
					t.Errorf("server wrote %d bytes, want %d", got, want)
				}
				return
			}
			if !errors.Is(serr, tt.wantServer) {
				t.Errorf("server: got err %v, want %v", serr, tt.wantServer)
			}
			if cerr == nil {
				t.Errorf("client: handshake refused by the server succeeded")
			}
			if srec.written.Len() != 0 {
				t.Errorf("refusing server wrote %d bytes, want none", srec.written.Len())
			}
		})
	}
}

func TestHandshakeDataFlowsAfter(t *testing.T) {
	v := NewVerifier(testSecret, 0, nil)
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	go func() {
		if err := v.ServerHandshake(sc, "raft"); err != nil {
			t.Errorf("server: %v", err)
			return
		}
		io.Copy(sc, sc) // echo
	}()
	if err := ClientHandshake(cc, testSecret, "raft", time.Now()); err != nil {
		t.Fatal(err)
	}
	msg := []byte("append entries")
	if _, err := cc.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(cc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("echo: got %q, want %q", got, msg)
	}
}

func TestHandshakeClientShortSecret(t *testing.T) {
	v := NewVerifier(testSecret, 0, fixedClock(testNow))
	cerr, serr := pipe(t,
		func(c net.Conn) error { return ClientHandshake(c, testSecret[:MinSecretSize-1], "raft", testNow) },
		func(c net.Conn) error { return v.ServerHandshake(c, "raft") })
	if !errors.Is(cerr, errClientSecret) {
		t.Errorf("client: got err %v, want %v", cerr, errClientSecret)
	}
	if serr == nil {
		t.Errorf("server accepted a client that sent nothing")
	}
}

// TestHandshakeImpostorServer checks the client refuses a server that does
// not prove the secret, whatever it answers.
func TestHandshakeImpostorServer(t *testing.T) {
	tests := []struct {
		name   string
		answer func(hello []byte) []byte
	}{
		{"proof under another secret", func(h []byte) []byte { return proofMAC(otherSecret, "raft", h[offNonce:offMAC]) }},
		{"proof for another purpose", func(h []byte) []byte { return proofMAC(testSecret, "drives", h[offNonce:offMAC]) }},
		{"hello MAC reflected", func(h []byte) []byte { return h[offMAC:] }},
		{"zeros", func([]byte) []byte { return make([]byte, proofSize) }},
		{"short answer", func(h []byte) []byte { return proofMAC(testSecret, "raft", h[offNonce:offMAC])[:proofSize-1] }},
		{"silence", func([]byte) []byte { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cerr, _ := pipe(t,
				func(c net.Conn) error { return ClientHandshake(c, testSecret, "raft", time.Now()) },
				func(c net.Conn) error {
					hello := make([]byte, helloSize)
					if _, err := io.ReadFull(c, hello); err != nil {
						return err
					}
					c.Write(tt.answer(hello))
					return errors.New("impostor done") // closes the conn
				})
			if cerr == nil {
				t.Fatal("client accepted an impostor server")
			}
			if tt.name != "short answer" && tt.name != "silence" && !errors.Is(cerr, errImpostor) {
				t.Errorf("client: got err %v, want %v", cerr, errImpostor)
			}
		})
	}
	// The genuine answer passes, so the cases above fail for their reason.
	cerr, _ := pipe(t,
		func(c net.Conn) error { return ClientHandshake(c, testSecret, "raft", time.Now()) },
		func(c net.Conn) error {
			hello := make([]byte, helloSize)
			if _, err := io.ReadFull(c, hello); err != nil {
				return err
			}
			_, err := c.Write(proofMAC(testSecret, "raft", hello[offNonce:offMAC]))
			return err
		})
	if cerr != nil {
		t.Errorf("genuine proof refused: %v", cerr)
	}
}

// hello returns a genuine hello for purpose, recorded from a client whose
// server never answers.
func hello(t *testing.T, secret []byte, purpose string, at time.Time) []byte {
	t.Helper()
	cc, sc := net.Pipe()
	rec := &recConn{Conn: cc}
	go func() {
		io.ReadFull(sc, make([]byte, helloSize))
		sc.Close()
	}()
	ClientHandshake(rec, secret, purpose, at)
	cc.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.written.Len() != helloSize {
		t.Fatalf("recorded %d hello bytes, want %d", rec.written.Len(), helloSize)
	}
	return bytes.Clone(rec.written.Bytes())
}

// serve runs ServerHandshake on a client that sends raw and then waits
// for the answer, or hangs up if raw is shorter than a hello.
func serve(t *testing.T, v *Verifier, purpose string, raw []byte) error {
	t.Helper()
	_, err := pipe(t,
		func(c net.Conn) error {
			if _, err := c.Write(raw); err != nil {
				return err
			}
			if len(raw) < helloSize {
				return c.Close()
			}
			io.ReadFull(c, make([]byte, proofSize))
			return nil
		},
		func(c net.Conn) error { return v.ServerHandshake(c, purpose) })
	return err
}

func TestHandshakeReplayRefused(t *testing.T) {
	v := NewVerifier(testSecret, 0, fixedClock(testNow))
	h := hello(t, testSecret, "raft", testNow)
	if err := serve(t, v, "raft", h); err != nil {
		t.Fatalf("first hello: %v", err)
	}
	if err := serve(t, v, "raft", h); !errors.Is(err, errReplayed) {
		t.Errorf("replayed hello: got err %v, want %v", err, errReplayed)
	}
	// A fresh hello from the same client is fine.
	if err := serve(t, v, "raft", hello(t, testSecret, "raft", testNow)); err != nil {
		t.Errorf("fresh hello: %v", err)
	}
}

func TestHandshakeMalformedHello(t *testing.T) {
	good := hello(t, testSecret, "raft", testNow)
	mutate := func(f func(h []byte)) []byte {
		h := bytes.Clone(good)
		f(h)
		return h
	}
	tests := []struct {
		name string
		raw  []byte
		want error // nil: any error
	}{
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, helloSize))), errNotHello},
		{"bad magic", mutate(func(h []byte) { h[0] = 'X' }), errNotHello},
		{"bad version", mutate(func(h []byte) { h[len(helloMagic)] = 2 }), errVersion},
		{"time changed", mutate(func(h []byte) { h[offTime+7]++ }), errBadHello},
		{"nonce changed", mutate(func(h []byte) { h[offNonce]++ }), errBadHello},
		{"MAC changed", mutate(func(h []byte) { h[offMAC]++ }), errBadHello},
		{"short hello", good[:helloSize-1], nil},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVerifier(testSecret, 0, fixedClock(testNow))
			err := serve(t, v, "raft", tt.raw)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("got err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestHandshakeSilentClientTimesOut(t *testing.T) {
	if testing.Short() {
		t.Skip("waits ServerHandshakeTimeout")
	}
	t.Parallel()
	v := NewVerifier(testSecret, 0, nil)
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	start := time.Now()
	err := v.ServerHandshake(sc, "raft")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("got err %v, want a timeout", err)
	}
	if d := time.Since(start); d < ServerHandshakeTimeout-100*time.Millisecond || d > ServerHandshakeTimeout+2*time.Second {
		t.Errorf("server waited %v, want about %v", d, ServerHandshakeTimeout)
	}
}

// FuzzServerHandshake checks that no client bytes crash the server or pass
// without the secret.
func FuzzServerHandshake(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(helloMagic + "\x01"))
	f.Add(bytes.Repeat([]byte{0xff}, helloSize))
	f.Add(append([]byte(helloMagic+"\x01"), make([]byte, helloSize)...))
	f.Fuzz(func(t *testing.T, raw []byte) {
		v := NewVerifier(testSecret, 0, fixedClock(testNow))
		if err := serve(t, v, "raft", raw); err == nil {
			t.Errorf("accepted %x", raw)
		}
	})
}
