package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/vaultaire/vaultaire/driver/peer"
)

// rpcPurpose is the rpcauth handshake purpose of internode RPC
// connections (drive access and forwarded writes).
const rpcPurpose = "rpc"

// ListenRPC listens on addr for internode RPC. Every connection is a
// TLS 1.3 tunnel with certificates of the cluster's CA on both sides
// (derived from secret unless UseInternodeTLS set another), inside which
// the rpcauth handshake under secret runs first (refused connections are
// closed and logged, rate-limited), within the bounds on handshakes in progress
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

// errRPCHandshake marks a dial to a peer's RPC listener that connected
// but failed the TLS or rpcauth handshake: another cluster secret (or
// internode CA) than the peer's, most likely.
var errRPCHandshake = errors.New("cluster: rpc handshake")

// rpcDial dials a peer's RPC listener and opens the tunnel: TLS with cfg
// (nil only in benchmarks), then the rpcauth handshake.
func rpcDial(secret []byte, cfg *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc, err := clientHandshake(ctx, c, cfg, secret, rpcPurpose)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("%w with %s: %w", errRPCHandshake, addr, err)
		}
		return tc, nil
	}
}

// RPCTransport returns an HTTP transport for clients of peers' ListenRPC
// listeners: its connections are the same tunnels (TLS with the cluster's
// CA, then the rpcauth handshake under secret). URLs stay "http://": the
// TLS is below HTTP, in the dialer. If the internode identity cannot be
// made (a secret shorter than MinSecretLen), every dial fails with why.
func RPCTransport(secret []byte) *http.Transport {
	id, err := internodeIdentity(secret)
	if err != nil {
		t := rpcTransport(nil, nil)
		t.DialContext = func(context.Context, string, string) (net.Conn, error) { return nil, err }
		return t
	}
	return rpcTransport(secret, id.ClientConfig())
}

// rpcTransport is RPCTransport with the client TLS configuration cfg; nil
// means no TLS, which only benchmarks use.
func rpcTransport(secret []byte, cfg *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           rpcDial(secret, cfg),
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		WriteBufferSize:       peer.TransportBufferSize, // fewer writes per shard upload
		ReadBufferSize:        peer.TransportBufferSize,
	}
}
