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
		late    bool          // release the held request only after the client gave up
		skew    time.Duration // the client's clock ahead of the server's
		applied bool
	}{
		{"released after the sender gave up", true, 0, false},
		{"released in time", false, 0, true},
		// Clocks that differ: the server compares offsets, not times.
		{"released after the sender gave up, its clock 30 s ahead", true, 30 * time.Second, false},
		{"released in time, its clock 30 s behind", false, -30 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			release := make(chan struct{})
			addr, answered := holdingProxy(t, f.addr, release)
			now := func() time.Time { return time.Now().Add(tc.skew) }
			// A call from the same host that arrives at once: the server
			// learns the offset of the client's clock.
			// A few: on a loaded machine one may be held up, and the
			// server keeps the quickest.
			direct := f.client(t, func(c *ClientConfig) { c.Now = now })
			for range 5 {
				if _, err := direct.Info(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			c, err := NewClient(ClientConfig{Addr: addr, Drive: testDrive, Secret: testSecret, Now: now,
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
				time.Sleep(300 * time.Millisecond) // well past the deadline
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

// TestArrivalsClockStep: a sender whose clock steps back (every request
// now looks late by the step) is refused only until the server has seen
// relearnAfter late requests over twice their timeout and none on time;
// then its offset is learnt again and its calls are applied. Drift below
// 1 ms/s never makes a request late.
func TestArrivalsClockStep(t *testing.T) {
	var a arrivals
	const timeout = 500 * time.Millisecond
	t0 := time.Unix(1_000_000, 0)
	if a.late("h", t0, t0.Add(time.Millisecond), timeout) {
		t.Fatal("first request late")
	}
	// An hour later the clocks drifted apart by 1 s: on time.
	if now := t0.Add(time.Hour); a.late("h", now.Add(-time.Second), now, timeout) {
		t.Fatal("a request after 1 s of drift in an hour refused as late")
	}
	// The sender's clock steps back by 10 s.
	start := t0.Add(2 * time.Hour)
	refused := 0
	for i := range 40 {
		now := start.Add(time.Duration(i) * 100 * time.Millisecond)
		if a.late("h", now.Add(-10*time.Second), now, timeout) {
			refused++
		} else {
			break
		}
	}
	if refused < relearnAfter-1 || refused > 20 {
		t.Fatalf("after a clock step, %d requests refused before the offset was learnt again, want about %d", refused, relearnAfter)
	}
	now := start.Add(10 * time.Second)
	if a.late("h", now.Add(-10*time.Second), now, timeout) {
		t.Fatal("refused after the offset was learnt again")
	}
	if !a.late("h", now.Add(-11*time.Second), now, timeout) {
		t.Fatal("a request 1 s late (timeout 500 ms) after relearning was applied")
	}
}
