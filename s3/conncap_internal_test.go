package s3

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
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
