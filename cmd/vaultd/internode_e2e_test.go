package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/s3"
)

// e2eCanary marks object bytes that must never cross between nodes in
// the clear.
const e2eCanary = "VAULTAIRE-E2E-CANARY-"

// startCapture starts tcpdump on loopback for TCP and UDP traffic on ports,
// writing a pcap file, and returns a function that stops it and returns
// the file's bytes. It skips the test without tcpdump or the privilege to
// capture.
func startCapture(t *testing.T, name string, ports []string) (stop func() []byte) {
	t.Helper()
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed (apt-get install tcpdump): cannot capture loopback traffic")
	}
	file := filepath.Join(t.TempDir(), name+".pcap")
	filter := "(tcp or udp) and (port " + strings.Join(ports, " or port ") + ")"
	cmd := exec.Command(bin, "-i", "lo", "-U", "-n", "-s", "0", "-w", file, filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	listening := make(chan error, 1)
	var errOut bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errOut.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "listening on") {
				listening <- nil
				io.Copy(io.Discard, stderr)
				return
			}
		}
		listening <- fmt.Errorf("tcpdump exited: %s", errOut.String())
	}()
	stopped := false
	stopFn := func() []byte {
		t.Helper()
		if !stopped {
			stopped = true
			time.Sleep(500 * time.Millisecond) // the last packets
			cmd.Process.Signal(syscall.SIGINT)
			cmd.Wait()
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("read capture: %v", err)
		}
		return b
	}
	t.Cleanup(func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	select {
	case err := <-listening:
		if err != nil {
			if strings.Contains(err.Error(), "ermission") || strings.Contains(err.Error(), "not permitted") {
				t.Skipf("no privilege to capture on loopback: %v", err)
			}
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("tcpdump not listening after 20s: %s", errOut.String())
	}
	return stopFn
}

// canaryBody is size bytes of random data with the canary every 4 KiB,
// so that compression cannot hide it and every shard of it carries it.
func canaryBody(size int) []byte {
	b := make([]byte, size)
	rand.Read(b)
	for off := 0; off+len(e2eCanary) <= size; off += 4 << 10 {
		copy(b[off:], e2eCanary)
	}
	return b
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClusterInternodeEncrypted captures, with tcpdump on loopback, all
// traffic on three nodes' RPC, Raft and gossip ports from before they
// start, through the cluster's formation, the creation of a tenant and an
// object carrying a recognisable pattern written through one node and
// read through another: the pattern, the cluster secret, the tenant's
// secret key, RPC requests and cluster metadata (RPC addresses, drive ids,
// in Raft entries and RPC paths) are nowhere in the capture. The same
// capture on the S3 port (plain HTTP to the client) does show the
// pattern, which proves the capture sees payloads.
//
// Gossip is captured too, but proves little here: memberlist compresses
// its messages before encrypting them, so its metadata would not show as
// text even unencrypted. Its encryption is memberlist's AES-256-GCM under
// a key derived from the secret (cluster/membership.go), and
// TestMembershipWrongSecret shows a node with another secret kept out.
func TestClusterInternodeEncrypted(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed (apt-get install tcpdump): cannot capture loopback traffic")
	}
	c := prepareCluster(t, 3)
	var ports []string
	for _, n := range c.nodes {
		ports = append(ports, port(t, n.rpc), port(t, n.raft), port(t, n.gossip))
	}
	stopInternode := startCapture(t, "internode", ports)
	stopS3 := startCapture(t, "s3", []string{port(t, c.nodes[1].s3)})
	c.nodes[0].start(t)
	c.nodes[0].waitHealthy(t, 60*time.Second)
	for _, n := range c.nodes[1:] {
		n.start(t)
	}
	for _, n := range c.nodes[1:] {
		n.waitHealthy(t, 60*time.Second)
	}
	c.waitFormed(t, 60*time.Second)
	metadata := map[string][]byte{}
	for _, n := range c.nodes {
		metadata[n.name+"'s RPC address"] = []byte(n.rpc)
		var st nodeState
		if ok, err := loadJSON(filepath.Join(n.dirs[0], "node.json"), &st); !ok || err != nil || len(st.Drives) == 0 {
			t.Fatalf("%s node.json: %v %v %+v", n.name, ok, err, st)
		}
		for _, d := range st.Drives {
			metadata["drive id "+d] = []byte(d)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var tenant s3.NewTenant
	if err := c.admin(1).do(ctx, http.MethodPut, "/_vault/admin/tenants/capture-tenant", &tenant); err != nil {
		t.Fatalf("create tenant through n2: %v", err)
	}
	var cl []*awss3.Client
	for i := range c.nodes {
		cl = append(cl, c.s3Client(i, tenant))
	}
	bucket := "capture"
	if _, err := retry(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := cl[1].CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)})
		return err
	}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	body := canaryBody(1 << 20)
	if _, err := cl[1].PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("canary"), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
	}); err != nil {
		t.Fatalf("put through n2: %v", err)
	}
	out, err := cl[2].GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("canary")})
	if err != nil {
		t.Fatalf("get through n3: %v", err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get through n3: %d bytes, err %v; want the %d written", len(got), err, len(body))
	}

	internode, clientSide := stopInternode(), stopS3()
	t.Logf("captured %d bytes of internode traffic, %d of S3 traffic", len(internode), len(clientSide))
	if !bytes.Contains(clientSide, []byte(e2eCanary)) {
		t.Fatal("the S3 capture lacks the pattern the client sent in plain HTTP: the capture does not see payloads")
	}
	// At least the shards on the other nodes' drives crossed: 4 of 6 of
	// 1.5 MiB of shards for a 4+2 stripe, less any on n2's own drives.
	if len(internode) < 256<<10 {
		t.Fatalf("only %d bytes of internode traffic captured; shards did not cross the captured ports", len(internode))
	}
	clear := map[string][]byte{
		"object bytes":       []byte(e2eCanary),
		"the cluster secret": c.secret,
		"the tenant's key":   []byte(tenant.SecretKey),
		"an RPC request":     []byte("/v1/drives/"),
	}
	maps.Copy(clear, metadata)
	for what, b := range clear {
		if bytes.Contains(internode, b) {
			t.Errorf("%s crossed between nodes in the clear", what)
		}
	}
}

// writeInternodeCA writes an operator's CA and, for each name, a
// certificate it issued for that host, as PEM files in dir.
func writeInternodeCA(t *testing.T, dir string, names []string) (caFile string, certs, keys []string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e operator CA"},
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
	caFile = write("ca.pem", "CERTIFICATE", caDER)
	for i, name := range names {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(10 + i)), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		kDER, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, write(name+".pem", "CERTIFICATE", der))
		keys = append(keys, write(name+".key", "PRIVATE KEY", kDER))
	}
	return caFile, certs, keys
}

// TestClusterOperatorCA: three nodes started with --internode-ca,
// --internode-cert and --internode-key form a cluster and serve an object
// written through one node from another; an RPC client with the CA
// derived from the same secret is refused, so the operator's CA, not the
// derived one, guards the RPC port.
func TestClusterOperatorCA(t *testing.T) {
	c := prepareCluster(t, 3)
	var names []string
	for _, n := range c.nodes {
		names = append(names, n.name+".example")
	}
	caFile, certs, keys := writeInternodeCA(t, t.TempDir(), names)
	for i, n := range c.nodes {
		n.extra = []string{"--internode-ca", caFile, "--internode-cert", certs[i], "--internode-key", keys[i]}
	}
	c.nodes[0].start(t)
	c.nodes[0].waitHealthy(t, 60*time.Second)
	for _, n := range c.nodes[1:] {
		n.start(t)
	}
	for _, n := range c.nodes[1:] {
		n.waitHealthy(t, 60*time.Second)
	}
	c.waitFormed(t, 60*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var tenant s3.NewTenant
	if err := c.admin(1).do(ctx, http.MethodPut, "/_vault/admin/tenants/operator-ca", &tenant); err != nil {
		t.Fatalf("create tenant through n2: %v", err)
	}
	cl1, cl2 := c.s3Client(1, tenant), c.s3Client(2, tenant)
	if _, err := retry(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := cl1.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("opca")})
		return err
	}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	a := newArtifact("operator-ca/object", 1<<20)
	if err := a.put(ctx, cl1, "opca"); err != nil {
		t.Fatal(err)
	}
	if err := a.check(ctx, cl2, "opca"); err != nil {
		t.Fatal(err)
	}

	derived := &http.Client{Timeout: 10 * time.Second, Transport: cluster.RPCTransport(c.secret)}
	_, err := derived.Get("http://" + c.nodes[0].rpc + "/v1/cluster/index")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an RPC client with the derived CA: err %v, want a refused certificate", err)
	}
}
