package cluster

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/internal/clustertls"
	"github.com/vaultaire/vaultaire/internal/rpcauth"
)

// Internode connections (Raft and RPC) are TLS 1.3 tunnels, mutually
// authenticated with certificates of the cluster's CA (derived from the
// cluster secret unless the operator set one with UseInternodeTLS; see
// internal/clustertls), with the rpcauth handshake under the secret run
// inside the tunnel. Everything after the TCP handshake is encrypted and
// integrity-protected: object shards, Raft log entries (sealed key secrets
// included), request signatures. TLS's record sequence numbers make
// replaying, dropping or reordering bytes within a connection fail the
// connection, and each connection's keys are ephemeral (forward secrecy).
//
// The internode identities of this process, by cluster secret: one per
// secret, so that every listener and dialer of a node presents the same
// leaf certificate, and tests may run nodes of several clusters in one
// process.
var internode struct {
	mu       sync.Mutex                        // guards the maps
	operator map[[32]byte]*clustertls.Identity // set by UseInternodeTLS
	derived  map[[32]byte]*clustertls.Identity // derived from the secret on first use
}

// UseInternodeTLS makes this process's internode connections under secret
// use id (an operator's CA and certificate, clustertls.FromFiles) instead
// of the CA derived from secret. Call it before ListenRPC, RPCTransport
// and Open. The rpcauth handshake under the secret still runs inside the
// tunnel.
func UseInternodeTLS(secret []byte, id *clustertls.Identity) {
	internode.mu.Lock()
	defer internode.mu.Unlock()
	if internode.operator == nil {
		internode.operator = map[[32]byte]*clustertls.Identity{}
	}
	internode.operator[internodeKey(secret)] = id
}

// internodeKey is the key of secret's entries in internode.
func internodeKey(secret []byte) [32]byte { return sha256.Sum256(secret) }

// internodeIdentity returns the internode TLS identity for secret.
func internodeIdentity(secret []byte) (*clustertls.Identity, error) {
	k := internodeKey(secret)
	internode.mu.Lock()
	defer internode.mu.Unlock()
	if id := internode.operator[k]; id != nil {
		return id, nil
	}
	if id := internode.derived[k]; id != nil {
		return id, nil
	}
	id, err := clustertls.FromSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("cluster: internode TLS: %w", err)
	}
	if internode.derived == nil {
		internode.derived = map[[32]byte]*clustertls.Identity{}
	}
	internode.derived[k] = id
	return id, nil
}

// clientHandshake opens the tunnel on a freshly dialed c: TLS with cfg
// (nil only in benchmarks: no TLS), then the rpcauth client handshake for
// purpose inside it, both within rpcauth.HandshakeTimeout (and ctx). On
// error the caller closes c.
func clientHandshake(ctx context.Context, c net.Conn, cfg *tls.Config, secret []byte, purpose string) (net.Conn, error) {
	if cfg == nil {
		return c, rpcauth.ClientHandshake(c, secret, purpose, time.Now())
	}
	if err := c.SetDeadline(time.Now().Add(rpcauth.HandshakeTimeout)); err != nil {
		return nil, fmt.Errorf("set handshake deadline: %w", err)
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	if err := rpcauth.ClientHandshake(tc, secret, purpose, time.Now()); err != nil {
		return nil, err
	}
	return tc, nil
}

// serverHandshake is clientHandshake's counterpart on an accepted c, all
// within rpcauth.ServerHandshakeTimeout.
func (l *authStreamLayer) serverHandshake(c net.Conn) (net.Conn, error) {
	if l.tls == nil {
		return c, l.verifier.ServerHandshake(c, l.purpose)
	}
	deadline := time.Now().Add(rpcauth.ServerHandshakeTimeout)
	if err := c.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("set handshake deadline: %w", err)
	}
	tc := tls.Server(c, l.tls)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	if err := l.verifier.ServerHandshake(cappedConn{tc, deadline}, l.purpose); err != nil {
		return nil, err
	}
	if err := tc.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear handshake deadline: %w", err)
	}
	return tc, nil
}

// cappedConn keeps its deadline at or before limit, so that the rpcauth
// handshake inside the tunnel does not extend the whole handshake's.
type cappedConn struct {
	net.Conn
	limit time.Time
}

func (c cappedConn) SetDeadline(t time.Time) error {
	if t.IsZero() || t.After(c.limit) {
		t = c.limit
	}
	return c.Conn.SetDeadline(t)
}
