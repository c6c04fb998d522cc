package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// S3 over HTTPS (--tls-cert, --tls-key).
//
// The S3 listener is wrapped with crypto/tls here, in cmd/vaultd: the s3
// package serves any net.Listener, and fasthttp sees *tls.Conn connections
// (RequestCtx.IsTLS is true). Nothing in SigV4 depends on the scheme: the
// signature covers the Host header, path and query, so path-style,
// virtual-host-style and presigned requests work the same over HTTPS.
//
// The certificate is read through tls.Config.GetCertificate from an
// atomically swapped pointer, so SIGHUP reloads the files without closing
// a listener or a connection: handshakes after the reload present the new
// certificate, connections already open keep the session they negotiated.
// A reload that fails (unreadable file, key not matching the certificate)
// is logged and the old certificate stays in use.

// tlsCipherSuites are the TLS 1.2 cipher suites offered: forward-secret
// (ECDHE) key exchange with an AEAD (AES-GCM or ChaCha20-Poly1305) only —
// no RSA key exchange, no CBC. TLS 1.3 suites are all modern and not
// configurable in crypto/tls.
var tlsCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// certReloader holds the serving certificate of the S3 listener and
// replaces it on reload. It is safe for concurrent use.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]
}

// newCertReloader loads the key pair from certFile and keyFile, so that a
// missing, unreadable or mismatched file stops the node at start.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	c, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert.Store(c)
	r.log.Info("tls: certificate loaded", certAttrs(c)...)
	warnExpired(r.log, c)
	return r, nil
}

// warnExpired logs a certificate that clients will refuse: crypto/tls
// serves it all the same, and the operator may be about to reload.
func warnExpired(log *slog.Logger, c *tls.Certificate) {
	if now := time.Now(); now.After(c.Leaf.NotAfter) || now.Before(c.Leaf.NotBefore) {
		log.Warn("tls: the certificate is not valid now; clients will refuse it", "not_before", c.Leaf.NotBefore, "not_after", c.Leaf.NotAfter)
	}
}

// loadKeyPair reads and checks a PEM certificate chain and its private key.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-key: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls says "private key does not match public key" or what
		// it could not parse; name the files.
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("--tls-cert %s: %w", certFile, err)
		}
	}
	return &c, nil
}

func certAttrs(c *tls.Certificate) []any {
	l := c.Leaf
	return []any{"subject", l.Subject.String(), "serial", l.SerialNumber.String(),
		"dns", l.DNSNames, "ips", l.IPAddresses, "not_after", l.NotAfter.UTC().Format(time.RFC3339)}
}

// Reload reads the files again and, if they hold a valid key pair, serves
// it to new handshakes. On error the current certificate stays.
func (r *certReloader) Reload() error {
	c, err := loadKeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Error("tls: certificate reload failed; keeping the current certificate", "err", err)
		return err
	}
	r.cert.Store(c)
	r.log.Info("tls: certificate reloaded", certAttrs(c)...)
	warnExpired(r.log, c)
	return nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Config returns the server's TLS configuration: TLS 1.2 or newer, the
// suites in tlsCipherSuites, HTTP/1.1 (fasthttp speaks no HTTP/2).
func (r *certReloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   tlsCipherSuites,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}
}

// Listen wraps ln so that it accepts TLS connections. The handshake runs
// on the connection's first read, in the goroutine serving it, not in
// Accept, under the read deadline fasthttp sets for the first request
// (the s3 header timeout), so a client that stalls the handshake holds
// one connection for that long at most.
func (r *certReloader) Listen(ln net.Listener) net.Listener {
	return tls.NewListener(ln, r.Config())
}

// ReloadOnSIGHUP reloads the certificate on every SIGHUP until ctx ends.
func (r *certReloader) ReloadOnSIGHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.Reload()
			}
		}
	}()
}

// tlsFlagsError checks that --tls-cert and --tls-key come together and
// that --s3-http, a plain address beside HTTPS, comes with them.
func tlsFlagsError(certFile, keyFile, plainAddr string) error {
	if (certFile == "") != (keyFile == "") {
		return errors.New("--tls-cert and --tls-key go together: give both (HTTPS) or neither (HTTP)")
	}
	if plainAddr != "" && certFile == "" {
		return errors.New("--s3-http adds a plain HTTP address beside HTTPS: it needs --tls-cert and --tls-key (without them --s3 is plain HTTP already)")
	}
	return nil
}
