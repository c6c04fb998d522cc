package s3_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/s3"
)

// TestConnectionCaps checks Config.MaxConnsPerIP and MaxConns: once an
// address holds its share of connections, its next one is answered 429
// SlowDown and closed while other addresses are still served; once all
// clients together hold MaxConns, the next one is answered 503 SlowDown;
// a closed connection frees its place; Server.ConnStats counts all of it.
// It runs under the race detector too (the caps are the server's own,
// not fasthttp's).
func TestConnectionCaps(t *testing.T) {
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
	// code of the answer, or 0 when the connection closed without one. A
	// refusal must be an S3 SlowDown error with Retry-After, and the
	// connection must be closed after it.
	status := func(c net.Conn) int {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /_vault/health HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("reading the answer's body: %v", err)
		}
		if resp.StatusCode != http.StatusOK {
			if !strings.Contains(string(body), "<Code>SlowDown</Code>") || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("refusal %d: body %q, Retry-After %q; want SlowDown and a Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("refusal %d: connection not closed after the answer: %v", resp.StatusCode, err)
			}
		}
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
	if got, want := e.srv.ConnStats(), (s3.ConnStats{Open: all, RefusedPerSource: 1, RefusedTotal: 1}); got != want {
		t.Fatalf("ConnStats %+v, want %+v", got, want)
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

// TestConnectionCapDefaults checks that zero caps are derived (MaxConns
// from the open-file limit, MaxConnsPerIP a quarter of MaxConns) and
// negative ones mean unlimited.
func TestConnectionCapDefaults(t *testing.T) {
	var seen s3.Config
	startServerWith(t, func(c *s3.Config) { seen = *c })
	for _, tc := range []struct {
		name               string
		all, perIP         int
		wantAll, wantPerIP int // 0: derived, checked below
	}{
		{"derived", 0, 0, 0, 0},
		{"per-IP from MaxConns", 100, 0, 100, 25},
		{"per-IP at least 1", 3, 0, 3, 1},
		{"explicit", 100, 7, 100, 7},
		{"no caps", -1, -1, -1, -1},
	} {
		c := seen
		c.MaxConns, c.MaxConnsPerIP = tc.all, tc.perIP
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.wantAll == 0 {
			if c.MaxConns <= 0 || c.MaxConnsPerIP != max(c.MaxConns/4, 1) {
				t.Errorf("%s: MaxConns %d, MaxConnsPerIP %d; want MaxConns > 0 and per-IP a quarter of it", tc.name, c.MaxConns, c.MaxConnsPerIP)
			}
			continue
		}
		if c.MaxConns != tc.wantAll || c.MaxConnsPerIP != tc.wantPerIP {
			t.Errorf("%s: MaxConns %d, MaxConnsPerIP %d; want %d, %d", tc.name, c.MaxConns, c.MaxConnsPerIP, tc.wantAll, tc.wantPerIP)
		}
	}
}
