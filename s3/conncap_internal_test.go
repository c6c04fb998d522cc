package s3

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestCapConnReleasesOnce: closing a counted connection twice frees one
// place, not two, and a connection over the cap is answered and closed
// within refuseTimeout even when its client never reads or closes.
func TestCapConnReleasesOnce(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &capListener{Listener: inner, caps: newConnCaps(2, -1, slog.New(slog.DiscardHandler))}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accept := func(what string) net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			t.Cleanup(func() { c.Close() })
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not accepted", what)
			return nil
		}
	}
	// refused checks that c is answered 503 SlowDown and closed in time.
	refused := func(what string, c net.Conn) {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: no answer: %v", what, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d, want 503", what, resp.StatusCode)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("%s: connection not closed: %v", what, err)
		}
		if took := time.Since(start); took > refuseTimeout+3*time.Second {
			t.Fatalf("%s: closed after %v, want within %v", what, took, refuseTimeout)
		}
	}

	dial()
	a := accept("first")
	dial()
	accept("second")
	idle := dial() // over the cap: the client sends nothing and waits
	refused("third, over the cap", idle)
	select {
	case c := <-accepted:
		t.Fatalf("a connection over the cap was accepted: %v", c.RemoteAddr())
	default:
	}

	a.Close()
	a.Close() // a second Close must not free a second place
	dial()
	accept("after a close")
	refused("over the cap after a double close", dial())
}

// TestCapListenerKeepsTLS: behind the caps, fasthttp still sees a TLS
// connection as TLS (RequestCtx.IsTLS, which POST Object's redirect
// scheme follows, and TLSConnectionState).
func TestCapListenerKeepsTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &capListener{Listener: tls.NewListener(inner, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}),
		caps: newConnCaps(10, 5, slog.New(slog.DiscardHandler))}
	srv := &fasthttp.Server{Handler: func(fctx *fasthttp.RequestCtx) {
		if fctx.IsTLS() && fctx.TLSConnectionState() != nil {
			fctx.WriteString("tls")
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	pool := x509.NewCertPool()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(cert)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + inner.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "tls" {
		t.Fatalf("handler behind the caps: %q, %v; want it to see TLS", body, err)
	}
}

// TestSource: connections are counted per IPv4 address and per IPv6 /64;
// an IPv4-mapped address counts as its IPv4 address; a non-IP address
// has no source.
func TestSource(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string // "" means no source
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 80}, "127.0.0.2"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 1}, "10.0.0.1"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 5}, "2001:db8:1:2::"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 6}, "2001:db8:1:2::"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 6}, "2001:db8:1:3::"},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, ""},
	} {
		got, ok := source(tc.addr)
		if (tc.want == "") != !ok || (ok && got.String() != tc.want) {
			t.Errorf("source(%v) = %v, %v; want %q", tc.addr, got, ok, tc.want)
		}
	}
}
