package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/vaultaire/vaultaire/internal/rpcauth"
)

// rpcPurpose is the rpcauth handshake purpose of internode RPC
// connections (drive access and forwarded writes).
const rpcPurpose = "rpc"

// ListenRPC listens on addr for internode RPC. Every connection must
// first pass the rpcauth handshake under secret (refused ones are closed
// and logged, rate-limited), within the bounds on handshakes in progress
// per source and in all that the Raft listener has (authStreamLayer);
// the HTTP requests on it are then signed and checked for
// time, but their nonces are not remembered: replaying a request needs an
// authenticated connection, which a captured request does not give. This
// keeps the check free of a replay cache, which a busy cluster (tens of
// thousands of internode requests a second) would fill.
func ListenRPC(addr string, secret []byte, log *slog.Logger) (net.Listener, error) {
	ln, err := newAuthListener(addr, nil, secret, rpcPurpose, log)
	if err != nil {
		return nil, err // says "rpc"
	}
	return ln, nil
}

// rpcDial dials a peer's RPC listener and passes its handshake.
func rpcDial(secret []byte) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := rpcauth.ClientHandshake(c, secret, rpcPurpose, time.Now()); err != nil {
			c.Close()
			return nil, fmt.Errorf("cluster: rpc handshake with %s: %w", addr, err)
		}
		return c, nil
	}
}

// RPCTransport returns an HTTP transport whose connections pass the RPC
// handshake under secret, for clients of peers' ListenRPC listeners.
func RPCTransport(secret []byte) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           rpcDial(secret),
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
	}
}
