package cluster

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/driver/peer"
	"github.com/vaultaire/vaultaire/internal/clustertls"
)

// plainPattern marks bytes that must never cross the network in the clear.
const plainPattern = "VAULTAIRE-PLAINTEXT-CANARY-"

// capturedConn is what a captureProxy forwarded on one connection.
type capturedConn struct {
	mu        sync.Mutex // guards the buffers
	up, down  bytes.Buffer
	upFirst   []byte // the first bytes the client sent
	downFirst []byte // the first bytes the server sent
}

// captureProxy forwards TCP connections to target and records every byte
// both ways, as a packet capture would.
type captureProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex // guards conns
	conns  []*capturedConn
	wg     sync.WaitGroup
}

func newCaptureProxy(t *testing.T, target string) *captureProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &captureProxy{ln: ln, target: target}
	var open sync.Map // net.Conn → struct{}, closed at cleanup
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			open.Store(c, struct{}{})
			open.Store(s, struct{}{})
			cc := &capturedConn{}
			p.mu.Lock()
			p.conns = append(p.conns, cc)
			p.mu.Unlock()
			pipe := func(dst, src net.Conn, buf *bytes.Buffer, first *[]byte) {
				b := make([]byte, 32<<10)
				for {
					n, err := src.Read(b)
					if n > 0 {
						cc.mu.Lock()
						buf.Write(b[:n])
						if *first == nil {
							*first = append([]byte(nil), b[:min(n, 3)]...)
						}
						cc.mu.Unlock()
						if _, werr := dst.Write(b[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				dst.Close()
				src.Close()
			}
			p.wg.Go(func() { pipe(s, c, &cc.up, &cc.upFirst) })
			p.wg.Go(func() { pipe(c, s, &cc.down, &cc.downFirst) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		p.wg.Wait()
	})
	return p
}

func (p *captureProxy) addr() string { return p.ln.Addr().String() }

// used reports whether a connection went through the proxy.
func (p *captureProxy) used() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) > 0
}

// check asserts that connections went through the proxy, that each one is
// TLS from its first byte both ways (a handshake record: content type 22,
// legacy version 3.x), and that none of secrets appears in what crossed.
func (p *captureProxy) check(t *testing.T, secrets ...[]byte) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) == 0 {
		t.Fatal("no connection went through the proxy")
	}
	var total int
	for i, c := range p.conns {
		c.mu.Lock()
		for _, dir := range []struct {
			name  string
			first []byte
			b     []byte
		}{{"client→server", c.upFirst, c.up.Bytes()}, {"server→client", c.downFirst, c.down.Bytes()}} {
			total += len(dir.b)
			if len(dir.b) > 0 && (len(dir.first) < 2 || dir.first[0] != 0x16 || dir.first[1] != 0x03) {
				t.Errorf("connection %d %s starts with %q, not a TLS handshake record", i, dir.name, dir.first)
			}
			for _, s := range secrets {
				if bytes.Contains(dir.b, s) {
					t.Errorf("connection %d %s carries %q in the clear", i, dir.name, s)
				}
			}
		}
		c.mu.Unlock()
	}
	t.Logf("%d connections, %d bytes captured", len(p.conns), total)
}

// sensitive is what must never cross in the clear besides the pattern.
func sensitive(secret []byte) [][]byte {
	return [][]byte{[]byte(plainPattern), secret, []byte("X-Vault-Auth"), []byte("/v1/drives/")}
}

// TestInternodeRPCEncrypted writes and reads back a shard and a record
// carrying a recognisable pattern (and a stand-in key secret) through a
// real RPC listener and RPCTransport client, with a proxy recording every
// byte between them: nothing of it, nor the cluster secret, nor even the
// HTTP request line and auth headers, is in the clear.
func TestInternodeRPCEncrypted(t *testing.T) {
	secret := []byte("rpc-capture-secret-0123456789")
	keySecret := "tenantKeySecret/" + strings.Repeat("Zq9", 12)
	ln, err := ListenRPC("127.0.0.1:0", secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	startPeerServer(t, ln, secret)
	proxy := newCaptureProxy(t, ln.Addr().String())
	c, err := peer.NewClient(peer.ClientConfig{Addr: proxy.addr(), Drive: "d1", Secret: secret, HTTP: &http.Client{Transport: RPCTransport(secret)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	data := bytes.Repeat([]byte(plainPattern), (256<<10)/len(plainPattern))
	sh := driver.Shard{PG: 7, Name: "00112233445566778899aabbccddeeff"}
	w, err := c.CreateShard(ctx, sh)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := c.ReadShard(ctx, sh, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, not the %d written", len(got), len(data))
	}
	rec := driver.Record{Key: "tenant/" + plainPattern, Version: driver.Version{15: 1}, Data: []byte(plainPattern + keySecret)}
	if _, _, err := c.PutRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if gotRec, err := c.GetRecord(ctx, rec.Key); err != nil || !bytes.Equal(gotRec.Data, rec.Data) {
		t.Fatalf("GetRecord: %q, %v; want %q", gotRec.Data, err, rec.Data)
	}
	proxy.check(t, append(sensitive(secret), []byte(keySecret))...)
}

// startPeerServer serves an in-memory drive d1 over driver/peer on ln, as
// vaultd does on its RPC listener.
func startPeerServer(t testing.TB, ln net.Listener, secret []byte) *http.Server {
	t.Helper()
	ps, err := peer.NewServer(peer.ServerConfig{
		Drives: peer.DriveMap(map[driver.DriveID]driver.Driver{"d1": &drivertest.Mem{}}), Secret: secret, AuthenticatedConns: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ps, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestInternodeRaftEncrypted replicates Raft log entries carrying the
// pattern between two nodes whose every connection crosses a recording
// proxy: the entries are not in the clear.
func TestInternodeRaftEncrypted(t *testing.T) {
	secret := []byte("raft-capture-secret-0123456789")
	type node struct {
		id    raft.ServerID
		layer *testLayer
		proxy *captureProxy
		fsm   *countFSM
		raft  *raft.Raft
	}
	nodes := make([]*node, 2)
	var servers []raft.Server
	for i := range nodes {
		l := newTestLayer(t, secret, true) // raft's transport accepts
		p := newCaptureProxy(t, l.Addr().String())
		nodes[i] = &node{id: raft.ServerID([]string{"n1", "n2"}[i]), layer: l, proxy: p, fsm: &countFSM{}}
		servers = append(servers, raft.Server{ID: nodes[i].id, Address: raft.ServerAddress(p.addr())})
	}
	for _, n := range nodes {
		trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: n.layer.authStreamLayer, MaxPool: 2, Timeout: 2 * time.Second, Logger: hclog.NewNullLogger(),
		})
		c := raft.DefaultConfig()
		c.LocalID = n.id
		c.Logger = hclog.NewNullLogger()
		c.HeartbeatTimeout = 200 * time.Millisecond
		c.ElectionTimeout = 200 * time.Millisecond
		c.LeaderLeaseTimeout = 100 * time.Millisecond
		c.CommitTimeout = 5 * time.Millisecond
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(c, n.fsm, store, store, raft.NewInmemSnapshotStore(), trans)
		if err != nil {
			t.Fatal(err)
		}
		n.raft = r
		t.Cleanup(func() {
			if err := r.Shutdown().Error(); err != nil {
				t.Errorf("shutdown %s: %v", n.id, err)
			}
		})
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	var leader atomic.Pointer[node]
	deadline := time.Now().Add(20 * time.Second)
	for leader.Load() == nil {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				leader.Store(n)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader elected; logs:\n%s\n%s", nodes[0].layer.logs, nodes[1].layer.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	entry := plainPattern + "create tenant with key secret " + strings.Repeat("k3y", 10)
	if err := leader.Load().raft.Apply([]byte(entry), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		for !n.fsm.has(entry) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never applied the entry", n.id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, n := range nodes {
		// The leader dials the follower, which need not dial back.
		if n != leader.Load() || n.proxy.used() {
			n.proxy.check(t, []byte(plainPattern), secret, []byte("k3yk3yk3y"))
		}
		if logs := n.layer.logs.String(); strings.Contains(logs, "refused") {
			t.Errorf("%s refused a connection:\n%s", n.id, logs)
		}
	}
}

// TestInternodeRPCRefusals: an RPC client of another cluster cannot reach
// a node, a node cannot reach an RPC server of another cluster, and a
// plain TCP client speaking HTTP gets no HTTP answer, only the close.
func TestInternodeRPCRefusals(t *testing.T) {
	secret := []byte("rpc-refusal-secret-0123456789")
	other := []byte("rpc-other-cluster-0123456789")
	ln, err := ListenRPC("127.0.0.1:0", secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	startPeerServer(t, ln, secret)
	lnOther, err := ListenRPC("127.0.0.1:0", other, nil)
	if err != nil {
		t.Fatal(err)
	}
	startPeerServer(t, lnOther, other)

	tests := []struct {
		name   string
		addr   string
		secret []byte
		want   string // in the error
	}{
		{"same cluster", ln.Addr().String(), secret, ""},
		{"client of another cluster", ln.Addr().String(), other, "certificate signed by unknown authority"},
		{"server of another cluster", lnOther.Addr().String(), secret, "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := peer.NewClient(peer.ClientConfig{Addr: tt.addr, Drive: "d1", Secret: tt.secret, HTTP: &http.Client{Transport: RPCTransport(tt.secret)}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err = c.Info(ctx)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Info: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Info: got err %v, want it to say %q", err, tt.want)
			}
		})
	}

	t.Run("plain TCP client", func(t *testing.T) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /v1/drives/d1/info HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the listener kept a plain TCP client's connection open")
		}
		if bytes.Contains(got, []byte("HTTP/")) || len(got) > 16 {
			t.Errorf("a plain TCP client got %q, want nothing but the close (or a TLS alert)", got)
		}
	})
}

// TestInternodeOperatorCA: with an operator's CA (UseInternodeTLS), nodes
// holding its certificates and the secret talk; a node with the CA
// derived from the same secret is refused both ways; so is a node with the
// operator's CA but another secret.
func TestInternodeOperatorCA(t *testing.T) {
	secret := []byte("operator-ca-secret-0123456789")
	dir := t.TempDir()
	caFile, certFile, keyFile := writeOperatorCA(t, dir)
	id, err := clustertls.FromFiles(caFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	UseInternodeTLS(secret, id)
	t.Cleanup(func() {
		internode.mu.Lock()
		delete(internode.operator, internodeKey(secret))
		internode.mu.Unlock()
	})
	if got := testIdentity(t, secret); got != id {
		t.Fatal("UseInternodeTLS did not take effect")
	}
	srv := newTestLayer(t, secret, false)
	cli := newTestLayer(t, secret, false)
	c, err := cli.Dial(srv.addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("operator CA: %v", err)
	}
	exchange(t, c, srv.expectAccept(t, 2*time.Second))
	c.Close()

	derived, err := clustertls.FromSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		srv, cli *testLayer
		want     string
	}{
		{"derived-CA client", srv, newTestListenerTLS(t, raftPurpose, secret, derived, true), "certificate"},
		{"derived-CA server", newTestListenerTLS(t, raftPurpose, secret, derived, false), cli, "certificate"},
		{"operator CA, another secret", srv, newTestListenerTLS(t, raftPurpose, []byte("not-the-cluster-secret-0123"), id, true), "server closed the connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cli.Dial(tt.srv.addr(), 5*time.Second)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Dial: got err %v, want it to say %q", err, tt.want)
			}
			tt.srv.expectNoAccept(t, 100*time.Millisecond)
		})
	}
}

// writeOperatorCA writes a CA and a node certificate it issued (named for
// a host, as operators' are) as PEM files in dir.
func writeOperatorCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100), Subject: pkix.Name{CommonName: "operator CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(101), Subject: pkix.Name{CommonName: "node-a.example"}, DNSNames: []string{"node-a.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("node.pem", "CERTIFICATE", der), write("node.key", "PRIVATE KEY", keyDER)
}

// BenchmarkRPCShardWrite writes 1 MiB shards through driver/peer over the
// internode RPC path (RPCTransport to ListenRPC, to an in-memory drive),
// with the default TLS tunnel and, for comparison only, without it.
func BenchmarkRPCShardWrite(b *testing.B) {
	secret := []byte("bench-rpc-secret-0123456789")
	id, err := internodeIdentity(secret)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		id   *clustertls.Identity
	}{{"tls", id}, {"plain", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			ln, err := newAuthListenerTLS("127.0.0.1:0", nil, secret, rpcPurpose, bc.id, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			startPeerServer(b, ln, secret)
			var tr *http.Transport
			if bc.id != nil {
				tr = rpcTransport(secret, bc.id.ClientConfig())
			} else {
				tr = rpcTransport(secret, nil)
			}
			c, err := peer.NewClient(peer.ClientConfig{Addr: ln.Addr().String(), Drive: "d1", Secret: secret, HTTP: &http.Client{Transport: tr}})
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 1<<20)
			rand.Read(data)
			sh := driver.Shard{PG: 1, Name: "00112233445566778899aabbccddeeff"}
			ctx := b.Context()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				w, err := c.CreateShard(ctx, sh)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(data); err != nil {
					b.Fatal(err)
				}
				if err := w.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRPCStream sends 1 MiB request bodies over the internode RPC
// path (RPCTransport to ListenRPC) to a handler that discards them: the
// transport's own cost, with the default TLS tunnel and, for comparison
// only, without it.
func BenchmarkRPCStream(b *testing.B) {
	secret := []byte("bench-rpc-secret-0123456789")
	id, err := internodeIdentity(secret)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		id   *clustertls.Identity
	}{{"tls", id}, {"plain", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			ln, err := newAuthListenerTLS("127.0.0.1:0", nil, secret, rpcPurpose, bc.id, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
			})}
			go srv.Serve(ln)
			b.Cleanup(func() { srv.Close() })
			var cfg *tls.Config
			if bc.id != nil {
				cfg = bc.id.ClientConfig()
			}
			hc := &http.Client{Transport: rpcTransport(secret, cfg)}
			data := make([]byte, 1<<20)
			rand.Read(data)
			url := "http://" + ln.Addr().String() + "/sink"
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				req, err := http.NewRequestWithContext(b.Context(), http.MethodPut, url, bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// meddlingProxy forwards one TCP connection to target; once armed, it
// hands the next chunk the client sends to meddle, which returns what to
// forward instead.
type meddlingProxy struct {
	ln     net.Listener
	armed  atomic.Bool
	meddle func([]byte) []byte
}

func newMeddlingProxy(t *testing.T, target string, meddle func([]byte) []byte) *meddlingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &meddlingProxy{ln: ln, meddle: meddle}
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		mu.Lock()
		conns = append(conns, c, s)
		mu.Unlock()
		wg.Go(func() { io.Copy(c, s); c.Close() })
		b := make([]byte, 32<<10)
		for {
			n, err := c.Read(b)
			if n > 0 {
				out := b[:n]
				if p.armed.CompareAndSwap(true, false) {
					out = p.meddle(append([]byte(nil), out...))
				}
				if _, werr := s.Write(out); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		s.Close()
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// TestInternodeTamperAndReplay: inside an established tunnel, a flipped
// bit or a replayed record is never delivered as data: the receiving end
// gets an error and the connection is dead.
func TestInternodeTamperAndReplay(t *testing.T) {
	tests := []struct {
		name   string
		meddle func([]byte) []byte
	}{
		{"flipped bit", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"replayed record", func(b []byte) []byte { return append(b, b...) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestLayer(t, transportSecret, false)
			cli := newTestLayer(t, transportSecret, true)
			p := newMeddlingProxy(t, srv.Addr().String(), tt.meddle)
			c, err := cli.Dial(raft.ServerAddress(p.ln.Addr().String()), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			accepted := srv.expectAccept(t, 2*time.Second)
			exchange(t, c, accepted)
			p.armed.Store(true)
			msg := []byte("transfer 100 to account 42")
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			accepted.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := make([]byte, 2*len(msg))
			n, err := io.ReadAtLeast(accepted, got, len(msg))
			switch tt.name {
			case "flipped bit":
				if err == nil || n > 0 {
					t.Fatalf("read %q, %v; want an error and nothing delivered", got[:n], err)
				}
			case "replayed record":
				// The original record is delivered once; its copy fails.
				if err != nil || !bytes.Equal(got[:n], msg) {
					t.Fatalf("read %q, %v; want the message once", got[:n], err)
				}
				n, err = accepted.Read(got)
				if err == nil || n > 0 {
					t.Fatalf("the replayed record read as %q, %v; want an error", got[:n], err)
				}
			}
			if !strings.Contains(err.Error(), "tls") {
				t.Errorf("error %v, want TLS's", err)
			}
		})
	}
}
