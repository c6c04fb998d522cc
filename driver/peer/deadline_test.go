package peer

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/driver/local"
)

// fastDeadlines are the Client deadlines of these tests.
func fastDeadlines(c *ClientConfig) {
	c.CallTimeout = 300 * time.Millisecond
	c.ProgressTimeout = 300 * time.Millisecond
}

// within runs f and fails unless it returns an error wrapping
// driver.ErrOffline within bound.
func within(t *testing.T, what string, bound time.Duration, f func() error) {
	t.Helper()
	began := time.Now()
	err := f()
	if took := time.Since(began); took > bound {
		t.Errorf("%s took %v against a silent peer, want under %v", what, took, bound)
	}
	if !errors.Is(err, driver.ErrOffline) {
		t.Errorf("%s against a silent peer: %v, want driver.ErrOffline", what, err)
	}
}

// TestClientDeadlinesPausedPeer: a peer whose process is paused (SIGSTOP)
// still completes TCP handshakes in the kernel and buffers what it is
// sent, but never answers. Every call of a Client gives up within its
// deadlines instead of a 30 s header timeout or never.
func TestClientDeadlinesPausedPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // never accepted: the kernel's backlog answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := NewClient(ClientConfig{Addr: ln.Addr().String(), Drive: testDrive, Secret: testSecret,
		CallTimeout: 300 * time.Millisecond, ProgressTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	ctx := t.Context()
	const bound = 3 * time.Second
	s := driver.Shard{PG: 1, Name: "00112233445566778899aabbccddeeff"}
	within(t, "Info", bound, func() error { _, err := c.Info(ctx); return err })
	within(t, "GetRecord", bound, func() error { _, err := c.GetRecord(ctx, "k"); return err })
	within(t, "PutRecord", bound, func() error {
		_, _, err := c.PutRecord(ctx, driver.Record{Key: "k", Version: driver.Version{1}, Data: []byte("x")})
		return err
	})
	within(t, "DeleteShard", bound, func() error { return c.DeleteShard(ctx, s) })
	within(t, "ListRecords", bound, func() error { _, err := c.ListRecords(ctx, "", "", 10); return err })
	within(t, "ReadShard", bound, func() error {
		rc, err := c.ReadShard(ctx, s, 0, -1)
		if err == nil {
			rc.Close()
		}
		return err
	})
	// An upload: Writes go into kernel buffers until they fill, then one
	// stalls; the Client gives up on it, or on the answer to Commit.
	w, err := c.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	within(t, "shard upload", 10*time.Second, func() error {
		chunk := make([]byte, 1<<20)
		for range 256 {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
		return w.Commit(ctx)
	})
	w.Abort()
}

// TestClientProgressDeadlineHungDrive: a download whose peer stops sending
// mid-stream (its drive hangs) fails with driver.ErrOffline after the
// progress deadline, and so does a commit the peer never answers.
func TestClientProgressDeadlineHungDrive(t *testing.T) {
	dir := t.TempDir()
	ld, err := local.Open(t.Context(), local.Config{Dir: dir, ID: testDrive, ClusterID: "c1", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ld.Close() })
	f := drivertest.NewFaulty(ld)
	srv, err := NewServer(ServerConfig{Drives: DriveMap(map[driver.DriveID]driver.Driver{testDrive: f}), Secret: testSecret, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { f.SetHang(false) }) // before Close, which waits for the handlers
	cc := ClientConfig{Addr: ts.Listener.Addr().String(), Drive: testDrive, Secret: testSecret}
	fastDeadlines(&cc)
	c, err := NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	ctx := t.Context()
	s := driver.Shard{PG: 1, Name: "00112233445566778899aabbccddeeff"}
	data := bytes.Repeat([]byte("z"), 4<<20)
	w, err := c.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := c.ReadShard(ctx, s, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	f.SetHang(true)
	within(t, "a download whose drive hung", 3*time.Second, func() error {
		_, err := io.Copy(io.Discard, rc)
		return err
	})
	w, err = c.CreateShard(ctx, driver.Shard{PG: 1, Name: "ffeeddccbbaa99887766554433221100"})
	if err != nil {
		t.Fatal(err)
	}
	within(t, "an upload whose drive hung", 3*time.Second, func() error {
		if _, err := w.Write([]byte("small")); err != nil {
			return err
		}
		return w.Commit(ctx)
	})
}
