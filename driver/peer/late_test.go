package peer

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// holdingProxy forwards one connection to addr, but holds what the client
// sends until release is closed (a partition that drops the packets, which
// TCP retransmits once it heals). It reports the status of the server's
// answer on answered and copies the answer back to the client, if it is
// still there.
func holdingProxy(t *testing.T, addr string, release <-chan struct{}) (string, <-chan int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	answered := make(chan int, 1)
	go func() {
		cc, err := ln.Accept()
		if err != nil {
			return
		}
		defer cc.Close()
		chunks := make(chan []byte, 64)
		go func() {
			defer close(chunks)
			for {
				b := make([]byte, 32<<10)
				n, err := cc.Read(b)
				if n > 0 {
					chunks <- b[:n]
				}
				if err != nil {
					return
				}
			}
		}()
		<-release
		sc, err := net.Dial("tcp", addr)
		if err != nil {
			answered <- -1
			return
		}
		defer sc.Close()
		go func() {
			for b := range chunks {
				if _, err := sc.Write(b); err != nil {
					return
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(sc), nil)
		if err != nil {
			answered <- -1
			return
		}
		answered <- resp.StatusCode
		resp.Write(cc) // the client may be gone
	}()
	return ln.Addr().String(), answered
}

// TestLateRecordWriteRefused: a record write held up in the network (the
// partition suite's "isolate n3": n3's record writes to the other nodes
// were dropped, the engine gave them up and failed the PUT, and TCP
// delivered them once the cut healed) must not be applied once its sender
// gave it up: landing then, it made the failed write appear after reads
// had answered NoSuchKey (seed 729666808). A write that arrives in time is
// applied as before.
func TestLateRecordWriteRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		late    bool // release the held request only after the client gave up
		applied bool
	}{
		{"released after the sender gave up", true, false},
		{"released in time", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			release := make(chan struct{})
			addr, answered := holdingProxy(t, f.addr, release)
			c, err := NewClient(ClientConfig{Addr: addr, Drive: testDrive, Secret: testSecret,
				CallTimeout: 500 * time.Millisecond, ProgressTimeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			rec := driver.Record{Key: "k", Version: driver.Version{1}, Data: []byte("late record")}
			errc := make(chan error, 1)
			go func() { _, _, err := c.PutRecord(t.Context(), rec); errc <- err }()
			if tc.late {
				if err := <-errc; !errors.Is(err, driver.ErrOffline) {
					t.Fatalf("PutRecord held past its deadline: %v, want driver.ErrOffline", err)
				}
				time.Sleep(50 * time.Millisecond) // past the deadline by any rounding
				close(release)
			} else {
				time.Sleep(100 * time.Millisecond)
				close(release)
				if err := <-errc; err != nil {
					t.Fatalf("PutRecord delayed 100 ms: %v", err)
				}
			}
			var status int
			select {
			case status = <-answered:
			case <-time.After(10 * time.Second):
				t.Fatal("the server did not answer the forwarded request")
			}
			got, err := f.local.GetRecord(t.Context(), "k")
			switch {
			case tc.applied && (err != nil || string(got.Data) != "late record"):
				t.Fatalf("record after a write in time (status %d): %q, %v", status, got.Data, err)
			case !tc.applied && !errors.Is(err, driver.ErrNotFound):
				t.Fatalf("a record write that arrived after its sender gave it up was applied (status %d): %q, %v", status, got.Data, err)
			case !tc.applied && status != http.StatusServiceUnavailable:
				t.Fatalf("late record write answered %d, want 503", status)
			}
		})
	}
}
