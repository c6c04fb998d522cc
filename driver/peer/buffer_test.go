package peer

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// countingConn counts the Write calls on a connection: each is a system
// call (and, under TLS, at least one record).
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// countingClient returns the default peer HTTP client with its connections'
// writes counted in writes.
func countingClient(writes *atomic.Int64) *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: defaultTransport(func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, writes: writes}, nil
	})}
}

// TestShardUploadWrites checks that a 1 MiB shard upload leaves the client
// in a few large writes, not a small one and a large one per 32 KiB chunk.
func TestShardUploadWrites(t *testing.T) {
	f := newFixture(t)
	var writes atomic.Int64
	c := f.client(t, func(cc *ClientConfig) { cc.HTTP = countingClient(&writes) })
	data := make([]byte, 1<<20)
	for i := range 3 {
		before := writes.Load()
		w, err := c.CreateShard(t.Context(), driver.Shard{PG: 1, Name: fmt.Sprintf("%016x", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		n := writes.Load() - before
		t.Logf("upload %d: %d writes for 1 MiB", i, n)
		if n > 24 { // 1 MiB / 64 KiB, plus the request head and the trailer
			t.Errorf("upload %d: %d writes for a 1 MiB shard, want at most 24", i, n)
		}
	}
}
