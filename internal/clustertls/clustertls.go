// Package clustertls encrypts and mutually authenticates internode
// connections (Raft and the internode RPC) with TLS 1.3, from the cluster
// secret alone or from an operator's CA.
//
// # Derived CA (the default)
//
// Every node derives the same CA from the cluster secret: HKDF-SHA256
// (crypto/hkdf) of the secret, with a fixed salt and the info
// "vaultaire internode CA v1", gives a 32-byte Ed25519 seed, hence the CA
// key; the CA certificate is built from a fixed template (serial 1, fixed
// validity 2025–2125, the key's fingerprint in its name) and Ed25519
// signatures are deterministic, so every node holds byte-identical CA
// certificates without exchanging anything. Each node then generates an
// ephemeral ECDSA P-256 key at start (it never touches the disk) and
// issues itself a leaf certificate for the fixed name ServerName, valid
// LeafValidity (backdated by an hour against clock skew) and re-issued by
// the GetCertificate and GetClientCertificate callbacks once less than
// renewBefore remains, so a long-running node never presents an expired
// certificate.
//
// Both sides require TLS 1.3 and a certificate chaining to the CA: the
// client verifies the server's as ServerName, the server requires and
// verifies the client's. A node with another secret has another CA, so
// neither its certificate nor its verification passes: it can neither
// connect nor be connected to. Since only a holder of the secret can
// derive the CA key, a verified certificate already proves the secret;
// cluster still runs its rpcauth handshake inside the tunnel, which binds
// each connection to its purpose (Raft or RPC) and keeps one check common
// to both CA modes.
//
// Why this rather than a Noise handshake or a pre-shared-key cipher suite:
// crypto/tls is in the standard library, audited and fast (AES-GCM or
// ChaCha20-Poly1305 with hardware support), TLS 1.3 gives forward secrecy
// (an ephemeral ECDHE per connection: a secret leaked later does not
// decrypt captured traffic) and, with its record sequence numbers and
// AEAD, makes replaying, reordering or altering bytes inside a connection
// impossible; packet captures decode as ordinary TLS; and an operator's
// own PKI plugs into the same code path.
//
// # Operator CA
//
// FromFiles loads a CA bundle, a certificate and its key (PEM). Peers are
// then verified against that CA only (any name: operators' certificates
// usually name their host, so the chain and the key usages are checked,
// not the name), and the certificate is served as loaded; replacing it
// needs a restart. The cluster secret is still required for the rpcauth
// handshake inside the tunnel.
//
// clustertls imports nothing of this module; cluster dials and listens
// with it, cmd/vaultd loads an operator's files (FromFiles).
package clustertls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"
)

// ServerName is the DNS name in every leaf issued by a derived CA, and
// the name clients verify.
const ServerName = "vaultaire-node"

// LeafValidity is how long a leaf issued by a derived CA is valid.
const LeafValidity = 7 * 24 * time.Hour

// renewBefore: a derived leaf is re-issued once less than this remains.
const renewBefore = 2 * 24 * time.Hour

// backdate is how far before its issue a leaf is valid, against clocks
// apart.
const backdate = time.Hour

// Derivation constants. Changing any of them changes every cluster's CA.
const (
	hkdfSalt = "vaultaire cluster secret salt v1"
	hkdfInfo = "vaultaire internode CA v1"
)

// caNotBefore and caNotAfter are the derived CA's fixed validity.
var (
	caNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC)
)

// MinSecretSize is the shortest secret FromSecret accepts, in bytes.
const MinSecretSize = 16

// Identity is a node's internode TLS identity: the CA peers are verified
// against and the certificate it presents. Its methods are safe for
// concurrent use.
type Identity struct {
	roots   *x509.CertPool
	derived bool // roots is the derived CA; leaves are issued by caKey

	caCert *x509.Certificate  // the derived CA; nil for an operator CA
	caKey  ed25519.PrivateKey // nil for an operator CA
	now    func() time.Time

	mu   sync.Mutex       // guards leaf
	leaf *tls.Certificate // the certificate presented; re-issued if derived
}

// DeriveCA returns the DER certificate and the key of the CA derived from
// secret. Every call with the same secret returns the same bytes.
func DeriveCA(secret []byte) (der []byte, key ed25519.PrivateKey, err error) {
	if len(secret) < MinSecretSize {
		return nil, nil, fmt.Errorf("clustertls: secret shorter than %d bytes", MinSecretSize)
	}
	seed, err := hkdf.Key(sha256.New, secret, []byte(hkdfSalt), hkdfInfo, ed25519.SeedSize)
	if err != nil {
		return nil, nil, fmt.Errorf("clustertls: derive CA key: %w", err)
	}
	key = ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	fp := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"vaultaire"}, CommonName: "vaultaire cluster CA " + hex.EncodeToString(fp[:8])},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          fp[:20],
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, nil, fmt.Errorf("clustertls: create CA certificate: %w", err)
	}
	return der, key, nil
}

// FromSecret returns the identity of a node of the cluster whose secret
// is secret: the derived CA and a fresh leaf it issued.
func FromSecret(secret []byte) (*Identity, error) {
	return fromSecret(secret, time.Now)
}

func fromSecret(secret []byte, now func() time.Time) (*Identity, error) {
	der, key, err := DeriveCA(secret)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("clustertls: parse derived CA: %w", err)
	}
	id := &Identity{roots: x509.NewCertPool(), derived: true, caCert: ca, caKey: key, now: now}
	id.roots.AddCert(ca)
	if _, err := id.certificate(); err != nil {
		return nil, err
	}
	return id, nil
}

// FromFiles returns an identity from an operator's CA bundle and a
// certificate and key, all PEM files.
func FromFiles(caFile, certFile, keyFile string) (*Identity, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("clustertls: read CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("clustertls: %s holds no PEM certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("clustertls: load certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("clustertls: parse certificate: %w", err)
	}
	cert.Leaf = leaf
	id := &Identity{roots: roots, leaf: &cert, now: time.Now}
	// Refuse at start a certificate peers would refuse at every connection.
	if _, err := leaf.Verify(id.verifyOptions(nil, x509.ExtKeyUsageServerAuth)); err != nil {
		return nil, fmt.Errorf("clustertls: %s does not chain to %s as a server: %w", certFile, caFile, err)
	}
	if _, err := leaf.Verify(id.verifyOptions(nil, x509.ExtKeyUsageClientAuth)); err != nil {
		return nil, fmt.Errorf("clustertls: %s does not chain to %s as a client: %w", certFile, caFile, err)
	}
	return id, nil
}

// ServerConfig returns the TLS configuration of a node's listeners:
// TLS 1.3 only, a client certificate chaining to the CA required.
func (id *Identity) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		MaxVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      id.roots,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.certificate() },
	}
}

// ClientConfig returns the TLS configuration of a node's dialers: TLS 1.3
// only, the server's certificate verified against the CA (as ServerName
// for a derived CA, by chain and key usage for an operator's), this
// node's certificate presented.
func (id *Identity) ClientConfig() *tls.Config {
	c := &tls.Config{
		MinVersion:           tls.VersionTLS13,
		MaxVersion:           tls.VersionTLS13,
		RootCAs:              id.roots,
		ServerName:           ServerName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return id.certificate() },
	}
	if !id.derived {
		// Operators' certificates name their hosts, not ServerName, and a
		// node dials peers by address: verify the chain and the key usage
		// here instead of the name.
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("clustertls: peer presented no certificate")
			}
			_, err := cs.PeerCertificates[0].Verify(id.verifyOptions(cs.PeerCertificates[1:], x509.ExtKeyUsageServerAuth))
			return err
		}
	}
	return c
}

// verifyOptions verifies a certificate against the roots for usage.
func (id *Identity) verifyOptions(intermediates []*x509.Certificate, usage x509.ExtKeyUsage) x509.VerifyOptions {
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		pool.AddCert(c)
	}
	return x509.VerifyOptions{Roots: id.roots, Intermediates: pool, CurrentTime: id.now(), KeyUsages: []x509.ExtKeyUsage{usage}}
}

// certificate returns the certificate to present, issuing a new leaf
// first if this identity has a derived CA and the current leaf is near
// its end.
func (id *Identity) certificate() (*tls.Certificate, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	now := id.now()
	if id.leaf != nil && (!id.derived || now.Before(id.leaf.Leaf.NotAfter.Add(-renewBefore))) {
		return id.leaf, nil
	}
	leaf, err := id.issue(now)
	if err != nil {
		return nil, err
	}
	id.leaf = leaf
	return leaf, nil
}

// issue returns a leaf for a fresh key, issued at now by the derived CA.
func (id *Identity) issue(now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("clustertls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("clustertls: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"vaultaire"}, CommonName: ServerName},
		DNSNames:     []string{ServerName},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(LeafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, id.caCert, key.Public(), id.caKey)
	if err != nil {
		return nil, fmt.Errorf("clustertls: issue leaf: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("clustertls: parse leaf: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: crypto.Signer(key), Leaf: leaf}, nil
}
