package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/internal/testnet"
)

// testCA is a throwaway certificate authority for HTTPS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vaultaire test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM server certificate with the given serial for
// 127.0.0.1, localhost and the virtual-host domain tlsDomain, and its RSA
// key (RSA so that the tests can offer RSA-key-exchange and ECDHE_RSA CBC
// suites, which only an RSA certificate could negotiate).
func (ca *testCA) issue(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "vaultaire test node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", tlsDomain, "*." + tlsDomain}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

const tlsDomain = "s3.vault.test"

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsNode is a single node serving S3 over HTTPS, run in-process.
type tlsNode struct {
	addr, plainAddr   string // HTTPS (--s3) and plain HTTP (--s3-http)
	certFile, keyFile string
	root              aws.Credentials
	stdout, stderr    *syncBuffer
	http              *http.Client // trusts the CA; every name dials addr
}

// startTLSNode runs `vaultd server --tls-cert --tls-key --s3-http` with
// --domain tlsDomain and waits until it answers health checks over HTTPS.
func startTLSNode(t *testing.T, ca *testCA, serial int64) *tlsNode {
	t.Helper()
	dir := t.TempDir()
	n := &tlsNode{
		addr: testnet.Addr(t), plainAddr: testnet.Addr(t),
		certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"),
		root:   aws.Credentials{AccessKeyID: "TLSROOTKEY", SecretAccessKey: "tls-root-secret-1"},
		stdout: &syncBuffer{}, stderr: &syncBuffer{},
	}
	certPEM, keyPEM := ca.issue(t, serial)
	writeFile(t, n.certFile, certPEM)
	writeFile(t, n.keyFile, keyPEM)
	n.http = httpsClient(ca.pool, n.addr)
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": n.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": n.root.SecretAccessKey}[k]
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"server", "--name", "tls", "--data", dir + "/a," + dir + "/b", "--s3", n.addr, "--raft", testnet.Addr(t),
			"--tls-cert", n.certFile, "--tls-key", n.keyFile, "--s3-http", n.plainAddr, "--domain", tlsDomain, "--log-level", "info"},
			getenv, n.stdout, n.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server exit: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
		if t.Failed() {
			t.Logf("server stderr:\n%s", tail(n.stderr.String(), 16<<10))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("server exited before serving: %v\n%s", err, n.stderr.String())
		default:
		}
		if resp, err := n.http.Get("https://" + n.addr + "/_vault/health"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("TLS node not healthy after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// httpsClient trusts only pool and dials addr whatever the host name, so
// that virtual-host names (BUCKET.tlsDomain) need no DNS.
func httpsClient(pool *x509.CertPool, addr string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func (n *tlsNode) s3Client(endpoint string, pathStyle bool) *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint: aws.String(endpoint), Region: "us-east-1", HTTPClient: n.http, UsePathStyle: pathStyle,
		Credentials: credentials.NewStaticCredentialsProvider(n.root.AccessKeyID, n.root.SecretAccessKey, ""), RetryMaxAttempts: 1,
	})
}

func readAll(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTLSServesS3 drives a node started with --tls-cert and --tls-key with
// aws-sdk-go-v2 over HTTPS: bucket, multipart upload, reads path-style and
// virtual-host-style, presigned GETs. Plain HTTP on the TLS port, TLS 1.1,
// and TLS 1.2 suites without forward secrecy or with CBC are refused;
// --s3-http serves plain HTTP on its own address.
func TestTLSServesS3(t *testing.T) {
	ca := newTestCA(t)
	n := startTLSNode(t, ca, 100)
	ctx := t.Context()

	if want := "serving S3 on https://" + n.addr; !strings.Contains(n.stdout.String(), want) {
		t.Errorf("banner %q does not say %q", n.stdout.String(), want)
	}
	if want := "plain HTTP (all requests) on http://" + n.plainAddr; !strings.Contains(n.stdout.String(), want) {
		t.Errorf("banner %q does not say %q", n.stdout.String(), want)
	}

	c := n.s3Client("https://"+n.addr, true)
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("secure")}); err != nil {
		t.Fatal(err)
	}
	// Two parts: 5 MiB and 1 MiB + 7 bytes. Over HTTPS the SDK sends
	// unsigned aws-chunked bodies with a CRC32 trailer.
	parts := [][]byte{make([]byte, 5<<20), make([]byte, 1<<20+7)}
	for _, p := range parts {
		rand.Read(p)
	}
	want := bytes.Join(parts, nil)
	mu, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("secure"), Key: aws.String("dir/big.bin")})
	if err != nil {
		t.Fatal(err)
	}
	var done []types.CompletedPart
	for i, p := range parts {
		num := aws.Int32(int32(i + 1))
		up, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("secure"), Key: aws.String("dir/big.bin"), UploadId: mu.UploadId, PartNumber: num, Body: bytes.NewReader(p)})
		if err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		done = append(done, types.CompletedPart{ETag: up.ETag, PartNumber: num})
	}
	cmp, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String("secure"), Key: aws.String("dir/big.bin"),
		UploadId: mu.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(aws.ToString(cmp.ETag), `-2"`) {
		t.Errorf("multipart ETag = %s, want a -2 suffix", aws.ToString(cmp.ETag))
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("secure"), Key: aws.String("small.txt"), Body: strings.NewReader("hello over tls")}); err != nil {
		t.Fatal(err)
	}

	// Path style, then virtual-host style: SigV4 signs the Host header, and
	// nothing depends on the scheme.
	vc := n.s3Client("https://"+net.JoinHostPort(tlsDomain, portOf(t, n.addr)), false)
	for name, client := range map[string]*awss3.Client{"path style": c, "virtual-host style": vc} {
		got, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("secure"), Key: aws.String("dir/big.bin")})
		if err != nil {
			t.Fatalf("%s GET: %v", name, err)
		}
		if b := readAll(t, got.Body); !bytes.Equal(b, want) {
			t.Errorf("%s GET: %d bytes back, want the %d bytes put", name, len(b), len(want))
		}
		pre, err := awss3.NewPresignClient(client).PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("secure"), Key: aws.String("small.txt")},
			awss3.WithPresignExpires(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(pre.URL, "https://") {
			t.Fatalf("%s presigned URL %s is not https", name, pre.URL)
		}
		resp, err := n.http.Get(pre.URL)
		if err != nil {
			t.Fatalf("%s presigned GET: %v", name, err)
		}
		if b := readAll(t, resp.Body); resp.StatusCode != http.StatusOK || string(b) != "hello over tls" {
			t.Errorf("%s presigned GET %s: %s %q, want 200 %q", name, pre.URL, resp.Status, b, "hello over tls")
		}
		// A URL presigned for another key does not open this one.
		resp, err = n.http.Get(strings.Replace(pre.URL, "small.txt", "dir/big.bin", 1))
		if err != nil {
			t.Fatal(err)
		}
		if b := readAll(t, resp.Body); resp.StatusCode != http.StatusForbidden || !bytes.Contains(b, []byte("<Code>SignatureDoesNotMatch</Code>")) {
			t.Errorf("%s tampered presigned GET: %s %q, want 403 SignatureDoesNotMatch", name, resp.Status, b)
		}
	}

	// Plain HTTP on the TLS port gets no S3 answer.
	plain := &http.Client{Timeout: 10 * time.Second}
	if resp, err := plain.Get("http://" + n.addr + "/_vault/health"); err == nil {
		b := readAll(t, resp.Body)
		t.Errorf("plain HTTP to the TLS port answered %s %q", resp.Status, b)
	}
	// --s3-http serves plain HTTP, S3 included.
	resp, err := plain.Get("http://" + n.plainAddr + "/_vault/health")
	if err != nil {
		t.Fatalf("health on --s3-http: %v", err)
	}
	if b := readAll(t, resp.Body); resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"status":"ok"`)) {
		t.Errorf("health on --s3-http: %s %q", resp.Status, b)
	}
	pc := awss3.New(awss3.Options{BaseEndpoint: aws.String("http://" + n.plainAddr), Region: "us-east-1", UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(n.root.AccessKeyID, n.root.SecretAccessKey, "")})
	got, err := pc.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("secure"), Key: aws.String("small.txt")})
	if err != nil {
		t.Fatalf("GET over --s3-http: %v", err)
	}
	if b := readAll(t, got.Body); string(b) != "hello over tls" {
		t.Errorf("GET over --s3-http = %q", b)
	}

	// Protocol versions and TLS 1.2 suites.
	for _, tc := range []struct {
		name   string
		cfg    *tls.Config
		accept bool
	}{
		{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, true},
		{"TLS 1.2 ECDHE-RSA AES-GCM", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, true},
		{"TLS 1.2 ECDHE-RSA ChaCha20", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}}, true},
		{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
		{"TLS 1.0", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, false},
		{"TLS 1.2 ECDHE-RSA AES-CBC", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA}}, false},
		{"TLS 1.2 RSA key exchange", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.Clone()
			cfg.RootCAs, cfg.ServerName = ca.pool, "127.0.0.1"
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", n.addr, cfg)
			if err == nil {
				conn.Close()
			}
			if got := err == nil; got != tc.accept {
				t.Errorf("handshake accepted = %v (err %v), want %v", got, err, tc.accept)
			}
		})
	}
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// keepAliveConn is one raw HTTPS connection reused for several requests.
type keepAliveConn struct {
	conn *tls.Conn
	br   *bufio.Reader
}

func dialTLS(t *testing.T, ca *testCA, addr string) *keepAliveConn {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &keepAliveConn{conn: conn, br: bufio.NewReader(conn)}
}

func (k *keepAliveConn) serial() int64 {
	return k.conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// health sends GET /_vault/health on the connection and checks for 200
// and a connection kept open. It sends Content-Length: 0 because the s3
// server closes the connection after any request without a
// Content-Length (fasthttp reports -2, "identity", for a bodiless GET,
// and s3's unread-body guard then closes).
func (k *keepAliveConn) health(t *testing.T) {
	t.Helper()
	k.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(k.conn, "GET /_vault/health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"); err != nil {
		t.Fatalf("keep-alive connection: write: %v", err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		t.Fatalf("keep-alive connection: read: %v", err)
	}
	b := readAll(t, resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("keep-alive connection: %s (close %v) %q", resp.Status, resp.Close, b)
	}
}

// newConnSerial opens a new HTTPS connection and returns the serial of the
// certificate the node presents.
func newConnSerial(t *testing.T, ca *testCA, addr string) int64 {
	t.Helper()
	k := dialTLS(t, ca, addr)
	defer k.conn.Close()
	return k.serial()
}

// TestTLSReloadOnSIGHUP replaces the certificate files and sends SIGHUP to
// the process (the node runs in it): new connections get the new
// certificate while a keep-alive connection opened before keeps working.
// A reload from a key that does not match keeps the current certificate.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	ca := newTestCA(t)
	n := startTLSNode(t, ca, 100)

	old := dialTLS(t, ca, n.addr)
	old.health(t)
	if got := old.serial(); got != 100 {
		t.Fatalf("serial before reload = %d, want 100", got)
	}

	waitSerial := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := newConnSerial(t, ca, n.addr)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("new connections present serial %d 30s after SIGHUP, want %d", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	certPEM, keyPEM := ca.issue(t, 200)
	writeFile(t, n.certFile, certPEM)
	writeFile(t, n.keyFile, keyPEM)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitSerial(200)
	old.health(t)
	if got := old.serial(); got != 100 {
		t.Errorf("the open connection's serial = %d, want 100", got)
	}

	// A broken reload: the certificate of serial 300 with the key of 200.
	certPEM, _ = ca.issue(t, 300)
	writeFile(t, n.certFile, certPEM)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(n.stderr.String(), "certificate reload failed") {
		if time.Now().After(deadline) {
			t.Fatal("no reload failure logged 30s after SIGHUP with a mismatched key")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(n.stderr.String(), "private key does not match public key") {
		t.Errorf("the failed reload does not say why:\n%s", tail(n.stderr.String(), 4<<10))
	}
	if got := newConnSerial(t, ca, n.addr); got != 200 {
		t.Errorf("after a failed reload new connections present serial %d, want 200", got)
	}
	old.health(t)
	resp, err := n.http.Get("https://" + n.addr + "/_vault/health")
	if err != nil {
		t.Fatalf("health after a failed reload: %v", err)
	}
	if readAll(t, resp.Body); resp.StatusCode != http.StatusOK {
		t.Errorf("health after a failed reload: %s", resp.Status)
	}
}

// TestTLSStartErrors: bad TLS flags and files stop the node at start with
// an error naming the problem.
func TestTLSStartErrors(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certPEM, keyPEM := ca.issue(t, 7)
	_, otherKey := ca.issue(t, 8)
	good, key, wrongKey, garbage := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "other.pem"), filepath.Join(dir, "garbage.pem")
	writeFile(t, good, certPEM)
	writeFile(t, key, keyPEM)
	writeFile(t, wrongKey, otherKey)
	writeFile(t, garbage, []byte("not a certificate\n"))
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"--tls-cert", good}, "--tls-cert and --tls-key go together"},
		{"key without cert", []string{"--tls-key", key}, "--tls-cert and --tls-key go together"},
		{"s3-http without tls", []string{"--s3-http", "127.0.0.1:0"}, "--s3-http adds a plain HTTP address beside HTTPS"},
		{"missing cert", []string{"--tls-cert", missing, "--tls-key", key}, "--tls-cert: open " + missing},
		{"missing key", []string{"--tls-cert", good, "--tls-key", missing}, "--tls-key: open " + missing},
		{"key of another cert", []string{"--tls-cert", good, "--tls-key", wrongKey}, "private key does not match public key"},
		{"not PEM", []string{"--tls-cert", garbage, "--tls-key", key}, "failed to find any PEM data in certificate input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			args := append([]string{"server", "--data", t.TempDir(), "--s3", testnet.Addr(t), "--raft", testnet.Addr(t), "--log-level", "error"}, tc.args...)
			var out, errb bytes.Buffer
			err := run(ctx, args, func(string) string { return "" }, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run = %v, want an error containing %q", err, tc.want)
			}
			if out.Len() > 0 {
				t.Errorf("printed a banner for a node that should not start: %q", out.String())
			}
		})
	}
}
