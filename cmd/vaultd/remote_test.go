package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/internal/faultproxy"
	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/internal/testnode"
)

// remoteNode is a single node started in-process with --remote drives.
type remoteNode struct {
	s3Addr   string
	out, err *syncBuffer
	stop     func() error
}

// startRemoteNode runs `vaultd server` with args until stop is called (or
// the test ends), and waits until it serves.
func startRemoteNode(t *testing.T, args []string, env map[string]string) (*remoteNode, error) {
	t.Helper()
	n := &remoteNode{s3Addr: testnet.Addr(t), out: &syncBuffer{}, err: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	full := append([]string{"server", "--name", "solo", "--s3", n.s3Addr, "--raft", testnet.Addr(t), "--log-level", "info", "--probe-interval", "200ms"}, args...)
	go func() { done <- run(ctx, full, func(k string) string { return env[k] }, n.out, n.err) }()
	stopped := false
	var exitErr error
	n.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case exitErr = <-done:
			case <-time.After(30 * time.Second):
				exitErr = errors.New("server did not stop within 30s")
			}
		}
		return exitErr
	}
	t.Cleanup(func() {
		if err := n.stop(); err != nil {
			t.Errorf("server exit: %v", err)
		}
		if t.Failed() {
			t.Logf("==== vaultd on %s: log (stderr) ====\n%s", n.s3Addr, logDigest(n.err.String()))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			stopped = true // the caller gets the error
			return nil, fmt.Errorf("server exited: %v\n%s", err, tail(n.err.String(), 4<<10))
		default:
		}
		if resp, err := http.Get("http://" + n.s3Addr + "/_vault/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, errors.New("node not healthy after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func remoteTestClient(endpoint, ak, sk string) *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint: aws.String(endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(ak, sk, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// TestRemoteDrives: a single node with 4 local drives and 2 remote drives
// (two buckets of a second Vaultaire, behind a fault proxy) stores
// artifacts byte-identical, puts shards in the remote buckets, and still
// serves every artifact with the remote backend down (4+2: the two remote
// shards of a stripe are its parity budget). The secret keys never show in
// the node's output.
func TestRemoteDrives(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	backend := testnode.Start(t, nil)
	p, err := faultproxy.Start(backend.Endpoint, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	remoteDrives(t, p.URL, backend.Endpoint, "ALICEKEY", "alicesecret",
		func() { p.Set(faultproxy.Faults{Outage: true}) }, func() { p.Set(faultproxy.Faults{}) })
}

// TestRemoteDrivesMinIO is TestRemoteDrives with two buckets of a real
// MinIO as the remote drives, killed and restarted.
func TestRemoteDrivesMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	m := startMinIO(t)
	remoteDrives(t, m.endpoint, m.endpoint, m.ak, m.sk, m.kill, m.start)
}

// remoteDrives runs the single node against the remote S3 server reached
// at url (direct is its own address, for checks); down and up stop and
// restart it.
func remoteDrives(t *testing.T, url, direct, rak, rsk string, down, up func()) {
	bc := remoteTestClient(direct, rak, rsk)
	ctx := t.Context()
	for _, b := range []string{"cold1", "cold2"} {
		if _, err := bc.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	credFile := filepath.Join(dir, "cold2.json")
	if err := os.WriteFile(credFile, []byte(`{"access_key":"`+rak+`","secret_key":"`+rsk+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	root := map[string]string{"VAULT_ROOT_ACCESS_KEY": "REMOTEROOTKEY", "VAULT_ROOT_SECRET_KEY": "remote-root-secret-1"}
	env := map[string]string{
		"VAULT_REMOTE_COLD1_ACCESS_KEY": rak, "VAULT_REMOTE_COLD1_SECRET_KEY": rsk,
		"VAULT_REMOTE_COLD2_CREDENTIALS": credFile,
	}
	for k, v := range root {
		env[k] = v
	}
	data := strings.Join([]string{dir + "/a", dir + "/b", dir + "/c", dir + "/d"}, ",")
	args := []string{"--data", data,
		"--remote", "cold1=" + url + "/cold1?region=us-east-1",
		"--remote", "COLD2=" + url + "/cold2/some/prefix"}

	// A world-readable credentials file is refused.
	if _, err := startRemoteNode(t, args, env); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("start with a 0644 credentials file: %v, want a refusal", err)
	}
	if err := os.Chmod(credFile, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := startRemoteNode(t, args, env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(n.out.String(), "erasure coding 4+2") {
		t.Errorf("node banner does not show 4+2 over 6 drives:\n%s", n.out.String())
	}
	cl := remoteTestClient("http://"+n.s3Addr, root["VAULT_ROOT_ACCESS_KEY"], root["VAULT_ROOT_SECRET_KEY"])
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("hot")}); err != nil {
		t.Fatal(err)
	}
	// Remote drives hold shards of hybrid containers only (the default,
	// local, keeps every shard on local drives).
	ctlEnv := map[string]string{"VAULT_ENDPOINT": "http://" + n.s3Addr}
	maps.Copy(ctlEnv, root)
	if err := run(ctx, []string{"container", "set-policy", "hot", "hybrid"}, func(k string) string { return ctlEnv[k] }, io.Discard, io.Discard); err != nil {
		t.Fatalf("container set-policy hot hybrid: %v", err)
	}
	sizes := []int{0, 1000, 100 << 10, 300 << 10, 3<<20 + 7, 20 << 20}
	bodies := map[string][]byte{}
	for i, size := range sizes {
		key := fmt.Sprintf("art-%d", i)
		bodies[key] = bytes.Repeat([]byte{byte(i + 1), byte(i * 7), 3}, size/3+1)[:size]
		if _, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("hot"), Key: aws.String(key), Body: bytes.NewReader(bodies[key])}); err != nil {
			t.Fatalf("PUT %s: %v", key, err)
		}
	}
	check := func(when string) {
		t.Helper()
		for key, want := range bodies {
			start := time.Now()
			out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("hot"), Key: aws.String(key)})
			if err != nil {
				t.Errorf("%s: GET %s: %v", when, key, err)
				continue
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: GET %s: %d bytes (want %d), %v", when, key, len(got), len(want), err)
			}
			t.Logf("%s: GET %s (%d bytes) took %v", when, key, len(want), time.Since(start))
		}
	}
	check("remote up")
	// The remote buckets received their shards (log objects; large shards
	// as objects of their own) under their prefixes.
	for b, prefix := range map[string]string{"cold1": "", "cold2": "some/prefix/"} {
		out, err := bc.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(b)})
		if err != nil {
			t.Fatal(err)
		}
		var logs, objs int
		for _, o := range out.Contents {
			k := aws.ToString(o.Key)
			if !strings.HasPrefix(k, prefix) {
				t.Errorf("bucket %s: object %s outside the prefix %q", b, k, prefix)
			}
			switch {
			case strings.HasPrefix(k, prefix+"log/"):
				logs++
			case strings.HasPrefix(k, prefix+"obj/"):
				objs++
			}
		}
		t.Logf("bucket %s: %d log objects, %d shard objects", b, logs, objs)
		if logs == 0 {
			t.Errorf("bucket %s: no log objects", b)
		}
		// The provider holds no plaintext: no object's bytes name a key
		// (records live in the log objects) or carry an artifact's data.
		for _, o := range out.Contents {
			k := aws.ToString(o.Key)
			if k == prefix+"format.json" {
				continue
			}
			got, err := bc.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(b), Key: o.Key})
			if err != nil {
				t.Fatalf("bucket %s: GET %s: %v", b, k, err)
			}
			raw, err := io.ReadAll(got.Body)
			got.Body.Close()
			if err != nil {
				t.Fatalf("bucket %s: GET %s: %v", b, k, err)
			}
			for key, body := range bodies {
				if bytes.Contains(raw, []byte(key)) {
					t.Errorf("bucket %s: object %s holds the key %s in plaintext", b, k, key)
				}
				if len(body) >= 4096 && bytes.Contains(raw, body[1024:1024+64]) {
					t.Errorf("bucket %s: object %s holds %s's bytes in plaintext", b, k, key)
				}
			}
		}
	}
	if !strings.Contains(n.out.String(), "remote drives: 2, encrypted; their key is kept in "+filepath.Join(dir, "a", remoteKeyFile)) {
		t.Errorf("node banner does not say where the remote drives' key is kept:\n%s", n.out.String())
	}
	resp, err := metricsGet(ctx, "http://"+n.s3Addr+"/_vault/metrics", aws.Credentials{AccessKeyID: root["VAULT_ROOT_ACCESS_KEY"], SecretAccessKey: root["VAULT_ROOT_SECRET_KEY"]})
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `drive="remote-cold1",node="solo"`) && !bytes.Contains(metrics, []byte(`class="remote",drive="remote-cold1"`)) {
		t.Errorf("metrics do not show remote-cold1 as a remote drive")
	}
	// What the remote drives sent to their backends is counted per drive.
	for _, series := range []string{
		`vaultaire_remote_requests_total{drive="remote-cold1",method="PUT"}`,
		`vaultaire_remote_requests_total{drive="remote-cold2",method="PUT"}`,
		`vaultaire_remote_sent_bytes_total{drive="remote-cold1"}`,
		`vaultaire_remote_online{drive="remote-cold2"}`,
		`vaultaire_remote_encrypted{drive="remote-cold1"}`,
		`vaultaire_remote_encrypted{drive="remote-cold2"}`,
	} {
		if v, ok := metricValue(string(metrics), series); !ok || v < 1 {
			t.Errorf("metric %s = %v (present %v), want at least 1", series, v, ok)
		}
	}
	// Losses of the bucket's objects are counted per drive (none here).
	for _, series := range []string{
		`vaultaire_remote_losses_total{drive="remote-cold1"}`,
		`vaultaire_remote_lost_objects_total{drive="remote-cold1"}`,
	} {
		if v, ok := metricValue(string(metrics), series); !ok || v != 0 {
			t.Errorf("metric %s = %v (present %v), want 0", series, v, ok)
		}
	}
	if bytes.Contains(metrics, []byte(rsk)) {
		t.Errorf("a remote secret key appears in the metrics")
	}

	// The remote backend goes away: every artifact is still served.
	down()
	check("remote down")
	up()
	check("remote back")

	// A restart with another set of remotes is refused: it would re-place
	// every artifact.
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := startRemoteNode(t, args[:4], env); err == nil || !strings.Contains(err.Error(), "--remote") {
		t.Errorf("restart without one of the remotes: %v, want a refusal", err)
	}
	// The same flags start again and serve everything (the remote
	// drives' indexes come back from their buckets).
	n2, err := startRemoteNode(t, args, env)
	if err != nil {
		t.Fatal(err)
	}
	cl = remoteTestClient("http://"+n2.s3Addr, root["VAULT_ROOT_ACCESS_KEY"], root["VAULT_ROOT_SECRET_KEY"])
	check("restarted")
	for _, out := range []string{n.out.String(), n.err.String(), n2.out.String(), n2.err.String()} {
		if strings.Contains(out, rsk) {
			t.Errorf("a remote secret key appears in the node's output")
		}
	}

	// The remote drives' key lost (remote-key.json): the node refuses to
	// start, rather than make a new key the drives were never wrapped
	// under, and changes nothing in their buckets; with the key put back,
	// it serves again.
	if err := n2.stop(); err != nil {
		t.Fatal(err)
	}
	listed := func() map[string]int64 {
		t.Helper()
		objs := map[string]int64{}
		for _, b := range []string{"cold1", "cold2"} {
			out, err := bc.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(b)})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range out.Contents {
				objs[b+"/"+aws.ToString(o.Key)] = aws.ToInt64(o.Size)
			}
		}
		return objs
	}
	before := listed()
	keyFile := filepath.Join(dir, "a", remoteKeyFile)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := startRemoteNode(t, args, env); err == nil || !strings.Contains(err.Error(), "restore it from your backup") {
		t.Fatalf("start with the remote drives' key lost: %v, want a refusal asking for the key", err)
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("a new key file was made in place of the lost one: %v", err)
	}
	online := func(n *remoteNode) (float64, bool) {
		resp, err := metricsGet(ctx, "http://"+n.s3Addr+"/_vault/metrics", aws.Credentials{AccessKeyID: root["VAULT_ROOT_ACCESS_KEY"], SecretAccessKey: root["VAULT_ROOT_SECRET_KEY"]})
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return metricValue(string(m), `vaultaire_remote_online{drive="remote-cold1"}`)
	}
	if after := listed(); !maps.Equal(before, after) {
		t.Errorf("the remote buckets changed while their key was lost: %d objects before, %d after", len(before), len(after))
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	n4, err := startRemoteNode(t, args, env)
	if err != nil {
		t.Fatal(err)
	}
	cl = remoteTestClient("http://"+n4.s3Addr, root["VAULT_ROOT_ACCESS_KEY"], root["VAULT_ROOT_SECRET_KEY"])
	check("remote key back")
	if v, ok := online(n4); !ok || v != 1 {
		t.Errorf("remote-cold1 online = %v (present %v) with its key back, want 1", v, ok)
	}

	// node.json keeps the drives seen encrypted; the provider replacing
	// cold1's format.json with a plaintext one (the same cluster and drive
	// ids, no data key) gets the drive refused, not written in the clear.
	if err := n4.stop(); err != nil {
		t.Fatal(err)
	}
	var st nodeState
	if ok, err := loadJSON(filepath.Join(dir, "a", "node.json"), &st); !ok || err != nil || !slices.Equal(st.EncryptedRemotes, []string{"cold1", "cold2"}) && !slices.Equal(st.EncryptedRemotes, []string{"cold2", "cold1"}) {
		t.Fatalf("node.json: encrypted remotes %q (%v, %v), want cold1 and cold2", st.EncryptedRemotes, ok, err)
	}
	fo, err := bc.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("cold1"), Key: aws.String("format.json")})
	if err != nil {
		t.Fatal(err)
	}
	var format map[string]any
	err = json.NewDecoder(fo.Body).Decode(&format)
	fo.Body.Close()
	if err != nil || format["enc"] == nil {
		t.Fatalf("cold1's format.json: %v, %v; want one with a data key", format, err)
	}
	delete(format, "enc")
	plain, _ := json.Marshal(format)
	if _, err := bc.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("cold1"), Key: aws.String("format.json"), Body: bytes.NewReader(plain)}); err != nil {
		t.Fatal(err)
	}
	n5, err := startRemoteNode(t, args, env)
	if err != nil {
		t.Fatal(err)
	}
	cl = remoteTestClient("http://"+n5.s3Addr, root["VAULT_ROOT_ACCESS_KEY"], root["VAULT_ROOT_SECRET_KEY"])
	check("cold1 downgraded")
	if !strings.Contains(n5.err.String(), "was encrypted but its bucket now holds a plaintext format") {
		t.Errorf("the node's log does not say cold1 was downgraded:\n%s", tail(n5.err.String(), 4<<10))
	}
	if v, ok := online(n5); !ok || v != 0 {
		t.Errorf("remote-cold1 online = %v (present %v) with a plaintext format.json, want 0", v, ok)
	}
}

func TestRemoteFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"access_key":"AK","secret_key":"SK"}`), 0o600)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"access_key":"AK"}`), 0o600)
	group := filepath.Join(dir, "group.json")
	os.WriteFile(group, []byte(`{"access_key":"AK","secret_key":"SK"}`), 0o640)
	tests := []struct {
		name    string
		flags   []string
		env     map[string]string
		wantErr string // "" = ok
		wantAK  string
	}{
		{"env", []string{"b2=https://s3.example.com/bkt?region=x"}, map[string]string{"VAULT_REMOTE_B2_ACCESS_KEY": "AK", "VAULT_REMOTE_B2_SECRET_KEY": "SK"}, "", "AK"},
		{"file", []string{"Lyve=https://h/b"}, map[string]string{"VAULT_REMOTE_LYVE_CREDENTIALS": good}, "", "AK"},
		{"no credentials", []string{"b2=https://h/b"}, nil, "no credentials", ""},
		{"half credentials", []string{"b2=https://h/b"}, map[string]string{"VAULT_REMOTE_B2_ACCESS_KEY": "AK"}, "set both", ""},
		{"file readable by group", []string{"b2=https://h/b"}, map[string]string{"VAULT_REMOTE_B2_CREDENTIALS": group}, "chmod 600", ""},
		{"file without secret", []string{"b2=https://h/b"}, map[string]string{"VAULT_REMOTE_B2_CREDENTIALS": bad}, "want {", ""},
		{"missing file", []string{"b2=https://h/b"}, map[string]string{"VAULT_REMOTE_B2_CREDENTIALS": dir + "/nope"}, "no such file", ""},
		{"no name", []string{"https://h/b"}, nil, "want NAME=", ""},
		{"bad name", []string{"a.b=https://h/b"}, nil, "want NAME=", ""},
		{"twice", []string{"a=https://h/b", "A=https://h/c"}, nil, "given twice", ""},
		{"secret in URL", []string{"a=https://AK:SECRETKEY@h/b"}, nil, "credentials do not belong", ""},
		{"same bucket and prefix", []string{"a=https://h/b", "c=https://h/b/"}, nil, "overlap", ""},
		{"prefix inside another's", []string{"a=https://h/b", "c=https://h/b/obj"}, nil, "overlap", ""},
		{"prefix around another's", []string{"a=https://h/b/p/q?region=x", "c=https://h/b/p"}, nil, "overlap", ""},
		{"sibling prefixes", []string{"a=https://h/b/p", "c=https://h/b/p2"}, map[string]string{"VAULT_REMOTE_C_ACCESS_KEY": "CK", "VAULT_REMOTE_C_SECRET_KEY": "CS", "VAULT_REMOTE_A_ACCESS_KEY": "AK", "VAULT_REMOTE_A_SECRET_KEY": "SK"}, "", "AK"},
		{"same prefix on two endpoints", []string{"a=https://h/b", "c=https://h2/b"}, map[string]string{"VAULT_REMOTE_C_ACCESS_KEY": "CK", "VAULT_REMOTE_C_SECRET_KEY": "CS", "VAULT_REMOTE_A_ACCESS_KEY": "AK", "VAULT_REMOTE_A_SECRET_KEY": "SK"}, "", "AK"},
		{"a second remote", []string{"a=https://h/b", "c=https://h/c/p"}, map[string]string{"VAULT_REMOTE_C_ACCESS_KEY": "CK", "VAULT_REMOTE_C_SECRET_KEY": "CS", "VAULT_REMOTE_A_ACCESS_KEY": "AK", "VAULT_REMOTE_A_SECRET_KEY": "SK"}, "", "AK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := parseRemoteFlags(tt.flags)
			if err == nil {
				err = loadRemoteCredentials(specs, func(k string) string { return tt.env[k] })
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			case err != nil && (strings.Contains(err.Error(), "SECRETKEY") || strings.Contains(err.Error(), "SK")):
				t.Fatalf("error %q shows a secret", err)
			case tt.wantErr == "" && specs[0].cfg.AccessKey != tt.wantAK:
				t.Fatalf("access key %q, want %q", specs[0].cfg.AccessKey, tt.wantAK)
			}
		})
	}
}

// minioServer is a MinIO process for the tests, restartable on its port
// and directory.
type minioServer struct {
	t                *testing.T
	bin, dir, port   string
	endpoint, ak, sk string
	cmd              *exec.Cmd
}

// startMinIO runs the MinIO built by scripts/minio.sh (or VAULT_MINIO_BIN)
// until the test ends, or skips the test when there is none.
func startMinIO(t *testing.T) *minioServer {
	t.Helper()
	bin := os.Getenv("VAULT_MINIO_BIN")
	if bin == "" {
		home, _ := os.UserCacheDir()
		bins, _ := filepath.Glob(filepath.Join(home, "vaultaire", "minio", "minio-*"))
		if len(bins) == 0 {
			t.Skip("no MinIO binary: run `make minio` (scripts/minio.sh builds it into ~/.cache/vaultaire/minio, several minutes) or set VAULT_MINIO_BIN")
		}
		slices.Sort(bins)
		bin = bins[len(bins)-1]
	}
	_, port, _ := net.SplitHostPort(testnet.Addr(t))
	m := &minioServer{t: t, bin: bin, dir: t.TempDir(), port: port, endpoint: "http://127.0.0.1:" + port, ak: "minio-test-root", sk: "minio-test-root-secret"}
	m.start()
	t.Cleanup(m.kill)
	return m
}

func (m *minioServer) start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "server", "--quiet", "--address", "127.0.0.1:"+m.port, m.dir)
	m.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.ak, "MINIO_ROOT_PASSWORD="+m.sk, "MINIO_BROWSER=off", "MINIO_CI_CD=1")
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start minio: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(m.endpoint + "/minio/health/live"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			m.t.Fatal("minio not live after 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *minioServer) kill() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
		m.cmd = nil
	}
}

// metricValue returns the value of series (name and labels exactly as
// exposed) in a Prometheus text exposition.
func metricValue(exposition, series string) (float64, bool) {
	for line := range strings.SplitSeq(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestRemoteReformatFlag: --remote-reformat names --remote drives (any
// case, comma-separated) and sets their Reformat; a name no --remote has
// is an error, not ignored.
func TestRemoteReformatFlag(t *testing.T) {
	for _, tc := range []struct {
		reformat string
		want     []bool
		err      string
	}{
		{"", []bool{false, false}, ""},
		{"B", []bool{false, true}, ""},
		{"a, b", []bool{true, true}, ""},
		{"c", nil, "no --remote of that name"},
	} {
		f, err := parseServerFlags([]string{"--remote", "a=https://h/a", "--remote", "b=https://h/b", "--remote-reformat", tc.reformat}, io.Discard)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("--remote-reformat %q: %v, want an error containing %q", tc.reformat, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("--remote-reformat %q: %v", tc.reformat, err)
		}
		for i, s := range f.remoteSpecs {
			if s.cfg.Reformat != tc.want[i] {
				t.Errorf("--remote-reformat %q: %s Reformat %v, want %v", tc.reformat, s.name, s.cfg.Reformat, tc.want[i])
			}
		}
	}
}
