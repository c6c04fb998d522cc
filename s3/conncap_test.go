package s3_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/s3"
)

// TestConnectionCaps checks Config.MaxConnsPerIP and MaxConns: once an
// address holds its share of connections, its next one is answered 429
// and closed while other addresses are still served; once all clients
// together hold MaxConns, the next one is answered 503; a closed
// connection frees its place.
func TestConnectionCaps(t *testing.T) {
	if raceEnabled {
		t.Skip("fasthttp's per-address connection counting races with its Shutdown (the reason MaxConnsPerIP is off by default)")
	}
	const perIP, all = 6, 10
	e := startServerWith(t, func(c *s3.Config) { c.MaxConnsPerIP, c.MaxConns = perIP, all })
	addr := strings.TrimPrefix(e.endpoint, "http://")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}

	dial := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// status sends an anonymous health check on c and returns the status
	// code of the answer, or 0 when the connection closed without one.
	status := func(c net.Conn) int {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /_vault/health HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// held opens n connections from src and checks each is served.
	held := func(src string, n int) []net.Conn {
		t.Helper()
		var out []net.Conn
		for i := range n {
			c := dial(src)
			if got := status(c); got != http.StatusOK {
				t.Fatalf("connection %d from %s: status %d, want 200", i+1, src, got)
			}
			out = append(out, c)
		}
		return out
	}

	a := held("127.0.0.2", perIP)
	if got := status(dial("127.0.0.2")); got != http.StatusTooManyRequests {
		t.Fatalf("connection %d from 127.0.0.2: status %d, want 429", perIP+1, got)
	}
	held("127.0.0.3", all-perIP) // another address is still served, up to MaxConns
	if got := status(dial("127.0.0.4")); got != http.StatusServiceUnavailable {
		t.Fatalf("connection %d in all: status %d, want 503", all+1, got)
	}
	// Closing one of 127.0.0.2's connections frees a place for it.
	a[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := status(dial("127.0.0.2"))
		if got == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing a connection, a new one from 127.0.0.2: status %d, want 200", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConnectionCapDefaults checks that zero caps are derived from the
// open-file limit and negative ones mean unlimited.
func TestConnectionCapDefaults(t *testing.T) {
	var seen s3.Config
	startServerWith(t, func(c *s3.Config) { seen = *c })
	c := seen
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxConns <= 0 || c.MaxConnsPerIP != -1 {
		t.Fatalf("derived caps: MaxConns %d, MaxConnsPerIP %d; want MaxConns > 0, per-IP off", c.MaxConns, c.MaxConnsPerIP)
	}
	c = seen
	c.MaxConns, c.MaxConnsPerIP = -1, -1
	if err := c.Validate(); err != nil || c.MaxConns != -1 || c.MaxConnsPerIP != -1 {
		t.Fatalf("negative caps: %v, MaxConns %d, MaxConnsPerIP %d; want -1 kept", err, c.MaxConns, c.MaxConnsPerIP)
	}
}
