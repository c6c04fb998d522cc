package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/peer"
	"github.com/vaultaire/vaultaire/placement"
)

// refusingRecords is a drive that fails record writes of one index key
// while armed (a drive cut off from the writer).
type refusingRecords struct {
	driver.Driver
	ikey  string
	armed atomic.Bool
}

func (d *refusingRecords) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if r.Key == d.ikey && d.armed.Load() {
		return driver.Record{}, false, fmt.Errorf("refusingRecords: %w", driver.ErrOffline)
	}
	return d.Driver.PutRecord(ctx, r)
}

// heldRPC forwards a node's record writes to another node's peer server,
// but holds them while armed until release is closed, and then delivers
// them: a partition that drops the packets, which TCP retransmits once it
// heals, after the sender gave the call up. Each held request's answer
// status goes to answered.
type heldRPC struct {
	target   string
	armed    atomic.Bool
	release  chan struct{}
	answered chan int
}

func (p *heldRPC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if p.armed.Load() {
		<-p.release
	}
	req, err := http.NewRequestWithContext(context.Background(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		p.answered <- -1
		return
	}
	resp.Body.Close()
	p.answered <- resp.StatusCode
}

// recordsVia is a peer drive whose record writes take another path (the
// heldRPC proxy).
type recordsVia struct {
	*peer.Client
	records *peer.Client
}

func (d *recordsVia) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	return d.records.PutRecord(ctx, r)
}

// TestLateRecordWriteStaysFailed is the partition suite's "listed, then
// NoSuchKey" (seed 729666808, "isolate n3"), replayed on one engine: two
// of the key's six drives are another node's, reached over the peer RPC.
// A PUT of a deleted key commits its shards, but its records land on two
// drives only: two local drives refuse them and the record writes to the
// other node are held by the network until the PUT has given them up. The
// PUT fails; GET answers NoSuchKey (the tombstone is on four drives).
// Then the network delivers the held writes. Applied then, they put the
// failed version on four drives, and GET served it: the key seen absent,
// then present, with no write in between. The peer server refuses a call
// its sender gave up (X-Vault-Expires), and GET stays NoSuchKey.
func TestLateRecordWriteStaysFailed(t *testing.T) {
	const key = "k2"
	ikey := indexPrefix("t", "c") + key
	secret := []byte("0123456789abcdef-late-write-secret")
	// The test rig's six drives (4+2: every set holds all of them); the
	// last two are served by the other node's peer server.
	remote := map[driver.DriveID]driver.Driver{}
	srv, err := peer.NewServer(peer.ServerConfig{Drives: peer.DriveMap(remote), Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	proxy := &heldRPC{target: ts.URL, release: make(chan struct{}), answered: make(chan int, 8)}
	ps := httptest.NewServer(proxy)
	t.Cleanup(ps.Close)
	t.Cleanup(func() {
		if proxy.armed.Load() {
			close(proxy.release)
		}
	})
	client := func(addr string, id driver.DriveID) *peer.Client {
		c, err := peer.NewClient(peer.ClientConfig{Addr: addr, Drive: id, Secret: secret,
			CallTimeout: 500 * time.Millisecond, ProgressTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	var refusing []*refusingRecords
	r := newRig(t, rigOptions{drives: 6, noSync: true, policy: placement.Policy{Data: 4, Parity: 2},
		wrap: func(d driver.Driver) driver.Driver {
			id := driveID(t, d)
			if id == "d04" || id == "d05" {
				remote[id] = d
				return &recordsVia{client(ts.Listener.Addr().String(), id), client(ps.Listener.Addr().String(), id)}
			}
			rr := &refusingRecords{Driver: d, ikey: ikey}
			refusing = append(refusing, rr)
			return rr
		}})
	e := r.e
	t.Cleanup(e.WaitBackground)
	ctx := t.Context()
	old := bytes.Repeat([]byte("o"), 1000)
	if _, err := e.Put(ctx, "t", "c", key, bytes.NewReader(old), PutOptions{Size: int64(len(old))}); err != nil {
		t.Fatal(err)
	}
	if err := e.Delete(ctx, "t", "c", key); err != nil {
		t.Fatal(err)
	}

	// The cut: two local drives refuse the records, and the other node's
	// two get them only later.
	// (Six drives, 4+2: every set holds all of them.)
	refusing[0].armed.Store(true)
	refusing[1].armed.Store(true)
	proxy.armed.Store(true)
	body := bytes.Repeat([]byte("n"), 300<<10) // shard files, not inline
	_, err = e.Put(ctx, "t", "c", key, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if !errors.Is(err, ErrWriteQuorum) {
		t.Fatalf("PUT whose records reached 2 of 6 drives: %v, want ErrWriteQuorum", err)
	}
	if _, err := e.Open(ctx, "t", "c", key); !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("GET after the failed PUT: %v, want ErrNoSuchArtifact", err)
	}

	// The cut heals: the held record writes arrive.
	proxy.armed.Store(false)
	close(proxy.release)
	for range 2 {
		select {
		case <-proxy.answered:
		case <-time.After(10 * time.Second):
			t.Fatal("the held record writes were not answered")
		}
	}
	for _, rr := range refusing {
		rr.armed.Store(false)
	}
	a, err := e.Open(ctx, "t", "c", key)
	if err == nil {
		t.Fatalf("GET after the held record writes arrived serves the failed PUT's version (%d bytes), after GET answered NoSuchKey", a.Info.Size)
	}
	if !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("GET after the held record writes arrived: %v, want ErrNoSuchArtifact", err)
	}
	res, err := e.List(ctx, "t", "c", ListOptions{})
	if err != nil || len(res.Artifacts) != 0 {
		t.Fatalf("listing after the held record writes arrived: %+v, %v; want empty", res.Artifacts, err)
	}
}
