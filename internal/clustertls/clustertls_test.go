package clustertls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	secretA = []byte("clustertls-secret-A-0123456789")
	secretB = []byte("clustertls-secret-B-0123456789")
)

// TestDeriveCA: the same secret gives byte-identical CA certificates and
// keys (every node builds the same CA alone); another secret another CA;
// a short secret none.
func TestDeriveCA(t *testing.T) {
	der1, key1, err := DeriveCA(secretA)
	if err != nil {
		t.Fatal(err)
	}
	der2, key2, err := DeriveCA(append([]byte(nil), secretA...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(der1, der2) || !key1.Equal(key2) {
		t.Error("the same secret derived two different CAs")
	}
	derB, keyB, err := DeriveCA(secretB)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(der1, derB) || key1.Equal(keyB) {
		t.Error("two secrets derived the same CA")
	}
	ca, err := x509.ParseCertificate(der1)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || ca.CheckSignatureFrom(ca) != nil {
		t.Errorf("derived CA: IsCA %v, self-signature %v", ca.IsCA, ca.CheckSignatureFrom(ca))
	}
	if bytes.Contains(der1, secretA) {
		t.Error("the CA certificate contains the secret")
	}
	if _, _, err := DeriveCA(secretA[:MinSecretSize-1]); err == nil {
		t.Error("DeriveCA accepted a short secret")
	}
}

// handshake runs a TLS handshake between a client and a server
// configuration over loopback TCP and returns both sides' errors.
func handshake(t *testing.T, client, server *tls.Config) (cliErr, srvErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	deadline := time.Now().Add(10 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	var wg sync.WaitGroup
	wg.Go(func() {
		srvErr = tls.Server(b, server).Handshake()
		if srvErr != nil {
			b.Close()
		}
	})
	cliErr = tls.Client(a, client).Handshake()
	if cliErr != nil {
		a.Close()
	}
	wg.Wait()
	return cliErr, srvErr
}

func TestHandshake(t *testing.T) {
	a1, err := FromSecret(secretA)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := FromSecret(secretA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := FromSecret(secretB)
	if err != nil {
		t.Fatal(err)
	}
	tls12 := a2.ClientConfig()
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	noCert := a2.ClientConfig()
	noCert.GetClientCertificate = nil
	tests := []struct {
		name    string
		client  *tls.Config
		server  *tls.Config
		wantErr string // in the client's or the server's error; "" for success
	}{
		{"two nodes of one cluster", a2.ClientConfig(), a1.ServerConfig(), ""},
		{"client of another cluster", b.ClientConfig(), a1.ServerConfig(), "certificate signed by unknown authority"},
		{"server of another cluster", a1.ClientConfig(), b.ServerConfig(), "certificate signed by unknown authority"},
		{"TLS 1.2 client", tls12, a1.ServerConfig(), "protocol version"},
		{"client without a certificate", noCert, a1.ServerConfig(), "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cliErr, srvErr := handshake(t, tt.client, tt.server)
			if tt.wantErr == "" {
				if cliErr != nil || srvErr != nil {
					t.Fatalf("handshake: client %v, server %v", cliErr, srvErr)
				}
				return
			}
			if cliErr == nil && srvErr == nil {
				t.Fatal("handshake succeeded")
			}
			if !strings.Contains(errString(cliErr)+" | "+errString(srvErr), tt.wantErr) {
				t.Errorf("client %v, server %v; want one to say %q", cliErr, srvErr, tt.wantErr)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestLeafRenewal: a leaf is reused while it has time left, re-issued
// (another key, still trusted) once less than renewBefore remains, so a
// node running for weeks never presents an expired certificate.
func TestLeafRenewal(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	id, err := fromSecret(secretA, clock)
	if err != nil {
		t.Fatal(err)
	}
	first, err := id.certificate()
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Leaf.NotAfter.Sub(clock()); got < LeafValidity-time.Second || got > LeafValidity {
		t.Errorf("leaf valid for %v, want %v", got, LeafValidity)
	}
	advance(LeafValidity - renewBefore - time.Minute)
	if same, _ := id.certificate(); same != first {
		t.Error("leaf re-issued while it had time left")
	}
	for range 3 { // weeks of running
		advance(2 * time.Minute)
		next, err := id.certificate()
		if err != nil {
			t.Fatal(err)
		}
		if next == first || next.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
			t.Fatal("leaf not re-issued near its end")
		}
		opts := x509.VerifyOptions{Roots: id.roots, DNSName: ServerName, CurrentTime: clock(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if _, err := next.Leaf.Verify(opts); err != nil {
			t.Errorf("re-issued leaf: %v", err)
		}
		first = next
		advance(LeafValidity - renewBefore - time.Minute)
	}
}
