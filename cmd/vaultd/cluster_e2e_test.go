package main

// End-to-end tests of cluster mode: they build the real vaultd, run several
// processes on 127.0.0.1, drive them with the AWS SDK and SIGKILL them.
// They are skipped with -short.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/internal/rpcauth"
	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/s3"
)

// binDir holds the vaultd binary of the end-to-end tests. TestMain creates
// and removes it; e2eBinary builds into it once, on first use.
var (
	binDir  string
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vaultd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// e2eBinary returns the path of a freshly built vaultd, skipping the test
// in -short mode.
func e2eBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds vaultd and runs several processes")
	}
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "vaultd")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// syncBuffer is a bytes.Buffer safe for one writer (the exec copier) and
// concurrent readers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// e2eProc is one run of a node's process.
type e2eProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's result, set before exited is closed
}

// e2eNode is a vaultd server process with the flags it keeps across
// restarts. Its stdout and stderr accumulate over all runs.
type e2eNode struct {
	name                        string
	s3, raft, rpc, gossip, join string // addresses
	dirs                        []string
	bin                         string
	env                         []string
	stdout, stderr              syncBuffer
	proc                        *e2eProc // the latest run
	stdoutMark                  int      // stdout length when the latest run started
	extra                       []string // more flags
}

func (n *e2eNode) args() []string {
	a := []string{"server", "--name", n.name, "--data", strings.Join(n.dirs, ","),
		"--s3", n.s3, "--raft", n.raft, "--rpc", n.rpc, "--gossip", n.gossip, "--log-level", "info",
		// Uploads a crash or a test left behind hold an older map for
		// seconds, not vaultd's 15 minutes (tests wait for maps to drop).
		"--upload-hold", "15s"}
	if n.join != "" {
		a = append(a, "--join", n.join)
	}
	return append(a, n.extra...)
}

// start runs the node's process with its flags; it does not wait for it
// to serve.
func (n *e2eNode) start(t *testing.T) {
	t.Helper()
	if n.running() {
		t.Fatalf("%s: start: already running", n.name)
	}
	fmt.Fprintf(&n.stderr, "=== %s: start %s\n", time.Now().Format(time.StampMilli), strings.Join(n.args(), " "))
	n.stdoutMark = n.stdout.Len()
	cmd := exec.Command(n.bin, n.args()...)
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = &n.stdout, &n.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", n.name, err)
	}
	p := &e2eProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	n.proc = p
}

func (n *e2eNode) running() bool {
	if n.proc == nil {
		return false
	}
	select {
	case <-n.proc.exited:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the node's process and waits until it is gone.
func (n *e2eNode) kill(t *testing.T) {
	t.Helper()
	if !n.running() {
		return
	}
	fmt.Fprintf(&n.stderr, "=== %s: SIGKILL %s\n", time.Now().Format(time.StampMilli), n.name)
	n.proc.cmd.Process.Kill()
	select {
	case <-n.proc.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("%s: still running 30s after SIGKILL", n.name)
	}
}

// waitHealthy waits until the node's latest run printed "serving S3 on"
// and answers GET /_vault/health with 200.
func (n *e2eNode) waitHealthy(t *testing.T, timeout time.Duration) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		select {
		case <-n.proc.exited:
			t.Fatalf("%s exited before serving: %v", n.name, n.proc.err)
		default:
		}
		if strings.Contains(n.stdout.String()[n.stdoutMark:], "serving S3 on") {
			resp, err := hc.Get("http://" + n.s3 + "/_vault/health")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
				last = resp.Status
			} else {
				last = err.Error()
			}
		} else {
			last = `no "serving S3 on" on stdout yet`
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy after %v: %s", n.name, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail returns at most the last max bytes of s.
func tail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("[... %d bytes cut ...]\n%s", len(s)-max, s[len(s)-max:])
}

// e2eCluster is a set of nodes sharing a cluster secret and root
// credentials.
type e2eCluster struct {
	nodes  []*e2eNode
	secret []byte
	root   aws.Credentials
}

// startCluster starts n nodes with two drives each: node 1 bootstraps,
// the others join through its gossip address. It returns once every node
// serves S3. All processes are killed when the test ends, and their output
// is logged if it failed or VAULT_E2E_LOGS is set.
// longE2E skips a long multi-process test unless VAULT_E2E_LONG=1 (make
// test-long): such tests repeat, end to end, what faster tests in CI
// already check piece by piece, and CI has a time budget.
func longE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("VAULT_E2E_LONG") != "1" {
		t.Skip("a long end-to-end test: VAULT_E2E_LONG=1 (make test-long) runs it")
	}
}

func startCluster(t *testing.T, n int) *e2eCluster {
	t.Helper()
	c := prepareCluster(t, n)
	c.nodes[0].start(t)
	c.nodes[0].waitHealthy(t, 60*time.Second)
	for _, node := range c.nodes[1:] {
		node.start(t)
	}
	for _, node := range c.nodes[1:] {
		node.waitHealthy(t, 60*time.Second)
	}
	return c
}

// prepareCluster sets up n nodes (n1 bootstraps, the others join n1)
// without starting them.
func prepareCluster(t *testing.T, n int) *e2eCluster {
	t.Helper()
	bin := e2eBinary(t)
	c := &e2eCluster{
		secret: []byte(rand.Text()), // 26 characters
		root:   aws.Credentials{AccessKeyID: "E2EROOTACCESSKEY", SecretAccessKey: "e2e-root-secret-" + rand.Text()},
	}
	env := append(os.Environ(),
		"VAULT_CLUSTER_SECRET="+string(c.secret),
		"VAULT_ROOT_ACCESS_KEY="+c.root.AccessKeyID,
		"VAULT_ROOT_SECRET_KEY="+c.root.SecretAccessKey,
	)
	addrs := testnet.Addrs(t, 3*n, false)
	gossip := testnet.Addrs(t, n, true)
	for i := range n {
		dir := t.TempDir()
		node := &e2eNode{
			name: fmt.Sprintf("n%d", i+1),
			s3:   addrs[3*i], raft: addrs[3*i+1], rpc: addrs[3*i+2], gossip: gossip[i],
			dirs: []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")},
			bin:  bin, env: env,
		}
		if i > 0 {
			node.join = gossip[0]
		}
		c.nodes = append(c.nodes, node)
	}
	// Registered after the t.TempDir calls, so it runs before they are
	// removed.
	t.Cleanup(func() {
		for _, node := range c.nodes {
			node.kill(t)
		}
		if t.Failed() {
			for _, node := range c.nodes {
				t.Logf("==== %s: log (stderr), digest ====\n%s", node.name, logDigest(node.stderr.String()))
			}
		}
		if t.Failed() || os.Getenv("VAULT_E2E_LOGS") != "" {
			for _, node := range c.nodes {
				t.Logf("==== %s stdout ====\n%s", node.name, tail(node.stdout.String(), 16<<10))
				t.Logf("==== %s stderr ====\n%s", node.name, tail(node.stderr.String(), 96<<10))
			}
		}
	})
	return c
}

// admin returns a root admin API client for node i.
func (c *e2eCluster) admin(i int) *adminClient {
	return &adminClient{endpoint: "http://" + c.nodes[i].s3, creds: c.root, http: &http.Client{Timeout: 30 * time.Second}}
}

// status returns node i's view of the cluster.
func (c *e2eCluster) status(ctx context.Context, i int) (cluster.Status, error) {
	var st cluster.Status
	err := c.admin(i).do(ctx, http.MethodGet, "/_vault/admin/cluster", &st)
	return st, err
}

// raftReady reports why a node's view of Raft and the map is not yet
// complete: all nodes voters, a leader known, a map over every drive. It
// returns "" when it is.
func (c *e2eCluster) raftReady(st cluster.Status) string {
	voters := 0
	for _, s := range st.Servers {
		if s.Suffrage == "voter" {
			voters++
		}
	}
	switch n := len(c.nodes); {
	case voters != n:
		return fmt.Sprintf("%d Raft voters, want %d", voters, n)
	case st.Leader == "":
		return "no leader known"
	case st.Map.Drives != 2*n:
		return fmt.Sprintf("map over %d drives, want %d", st.Map.Drives, 2*n)
	}
	return ""
}

// membersReady reports why a node's gossip view is not yet complete: every
// node an alive member. It returns "" when it is.
func (c *e2eCluster) membersReady(st cluster.Status) string {
	var alive []string
	for _, m := range st.Members {
		if m.State == "alive" {
			alive = append(alive, m.Name)
		}
	}
	if len(alive) != len(c.nodes) {
		return fmt.Sprintf("%d alive members %v, want %d", len(alive), alive, len(c.nodes))
	}
	return ""
}

// formed is raftReady and membersReady.
func (c *e2eCluster) formed(st cluster.Status) string {
	if why := c.raftReady(st); why != "" {
		return why
	}
	return c.membersReady(st)
}

// waitView waits until ready(status) is "" on every node and the nodes
// agree on the leader and the map epoch; it returns node 1's view, or an
// error saying what was missing, with the reasons seen meanwhile.
func (c *e2eCluster) waitView(t *testing.T, timeout time.Duration, ready func(cluster.Status) string) (cluster.Status, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	began := time.Now()
	var (
		whys    []string // distinct reasons seen, for the log
		lastWhy string
	)
	for {
		var sts []cluster.Status
		why := ""
		for i := range c.nodes {
			st, err := c.status(ctx, i)
			if err != nil {
				why = fmt.Sprintf("%s: status: %v", c.nodes[i].name, err)
				break
			}
			if w := ready(st); w != "" {
				why = fmt.Sprintf("%s: %s", c.nodes[i].name, w)
				break
			}
			sts = append(sts, st)
		}
		if why == "" {
			for _, st := range sts[1:] {
				if st.Leader != sts[0].Leader || st.Map.Epoch != sts[0].Map.Epoch {
					why = fmt.Sprintf("%s sees leader %s map epoch %d, %s sees leader %s map epoch %d",
						st.Node, st.Leader, st.Map.Epoch, sts[0].Node, sts[0].Leader, sts[0].Map.Epoch)
				}
			}
		}
		if why == "" {
			if d := time.Since(began); d > 5*time.Second {
				t.Logf("views complete after %v; until then: %s", d.Round(time.Millisecond), strings.Join(whys, "; then "))
			}
			return sts[0], nil
		}
		if why != lastWhy {
			whys = append(whys, fmt.Sprintf("%s (at %v)", why, time.Since(began).Round(time.Millisecond)))
			lastWhy = why
		}
		select {
		case <-ctx.Done():
			return cluster.Status{}, fmt.Errorf("not complete after %v: %s", timeout, strings.Join(whys, "; then "))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitFormed waits until every node's view of the cluster is complete
// (formed) and returns node 1's view.
func (c *e2eCluster) waitFormed(t *testing.T, timeout time.Duration) cluster.Status {
	t.Helper()
	st, err := c.waitView(t, timeout, c.formed)
	if err != nil {
		c.fatalWithStatus(t, "cluster not formed: %v", err)
	}
	return st
}

// waitRaft waits until every node agrees on the leader and the map, all
// nodes voters.
func (c *e2eCluster) waitRaft(t *testing.T, timeout time.Duration) {
	t.Helper()
	if _, err := c.waitView(t, timeout, c.raftReady); err != nil {
		c.fatalWithStatus(t, "Raft view: %v", err)
	}
}

// waitMembers checks that every node sees every other as an alive gossip
// member again within timeout. A restarted node must find its peers even
// without --join (the bootstrap node), and a survivor that marked all its
// peers dead must see them again.
func (c *e2eCluster) waitMembers(t *testing.T, timeout time.Duration) {
	t.Helper()
	if _, err := c.waitView(t, timeout, c.membersReady); err != nil {
		c.fatalWithStatus(t, "gossip membership did not heal after restarts: %v", err)
	}
}

func (c *e2eCluster) fatalWithStatus(t *testing.T, format string, args ...any) {
	t.Helper()
	for i := range c.nodes {
		st, err := c.status(t.Context(), i)
		b, _ := json.MarshalIndent(st, "", "  ")
		t.Logf("%s status: %v %s", c.nodes[i].name, err, b)
	}
	t.Fatalf(format, args...)
}

// s3Client returns an S3 client of node i with the given key pair. It
// does not retry, so that every failure is visible.
func (c *e2eCluster) s3Client(i int, t s3.NewTenant) *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint:     aws.String("http://" + c.nodes[i].s3),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(t.AccessKey, t.SecretKey, ""),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
	})
}

// e2eArtifact is a test object whose content is derived from its key.
type e2eArtifact struct {
	key  string
	size int
	sum  [sha256.Size]byte
	etag string // quoted hex MD5, as S3 returns it for a single PUT
}

var e2eSizes = []int{0, 1, 4 << 10, 100 << 10, 200 << 10, 1 << 20, 3 << 20}

func newArtifact(key string, size int) e2eArtifact {
	a := e2eArtifact{key: key, size: size}
	b := a.body()
	a.sum = sha256.Sum256(b)
	m := md5.Sum(b)
	a.etag = `"` + hex.EncodeToString(m[:]) + `"`
	return a
}

// newArtifacts returns n artifacts under prefix, cycling through e2eSizes.
func newArtifacts(prefix string, n int) []e2eArtifact {
	arts := make([]e2eArtifact, n)
	for i := range arts {
		arts[i] = newArtifact(fmt.Sprintf("%s%04d", prefix, i), e2eSizes[i%len(e2eSizes)])
	}
	return arts
}

// body returns the artifact's deterministic pseudo-random content.
func (a e2eArtifact) body() []byte {
	b := make([]byte, a.size)
	mrand.NewChaCha8(sha256.Sum256([]byte(a.key))).Read(b)
	return b
}

func (a e2eArtifact) put(ctx context.Context, cl *awss3.Client, bucket string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := cl.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(a.key),
		Body: bytes.NewReader(a.body()), ContentLength: aws.Int64(int64(a.size)),
	})
	if err != nil {
		return fmt.Errorf("put %s (%d bytes): %w", a.key, a.size, err)
	}
	if got := aws.ToString(out.ETag); got != a.etag {
		return fmt.Errorf("put %s: ETag %s, want %s", a.key, got, a.etag)
	}
	return nil
}

// check reads the artifact back and compares its length and SHA-256.
func (a e2eArtifact) check(ctx context.Context, cl *awss3.Client, bucket string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(a.key)})
	if err != nil {
		return fmt.Errorf("get %s: %w", a.key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		return fmt.Errorf("get %s: body after %d bytes: %w", a.key, n, err)
	}
	if n != int64(a.size) || !bytes.Equal(h.Sum(nil), a.sum[:]) {
		return fmt.Errorf("get %s: %d bytes with sha256 %x, want %d bytes with sha256 %x", a.key, n, h.Sum(nil), a.size, a.sum)
	}
	return nil
}

// putAll puts arts through cl, 8 at a time, and fails t on any error.
func putAll(t *testing.T, cl *awss3.Client, bucket string, arts []e2eArtifact) {
	t.Helper()
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(8)
	for _, a := range arts {
		g.Go(func() error { return a.put(ctx, cl, bucket) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// checkAll reads every artifact back through cl, 8 at a time, and reports
// each mismatch (at most 10).
func checkAll(t *testing.T, cl *awss3.Client, bucket string, arts []e2eArtifact) {
	t.Helper()
	var (
		mu   sync.Mutex // guards errs
		errs []error
	)
	var g errgroup.Group
	g.SetLimit(8)
	for _, a := range arts {
		g.Go(func() error {
			if err := a.check(t.Context(), cl, bucket); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	for i, err := range errs {
		if i == 10 {
			t.Errorf("... and %d more", len(errs)-10)
			break
		}
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
}

// listed is a listing entry.
type listed struct {
	Key  string
	Size int64
	ETag string
}

// listAll lists bucket through cl with small pages, so that pagination is
// exercised.
func listAll(ctx context.Context, cl *awss3.Client, bucket string) ([]listed, error) {
	var out []listed
	p := awss3.NewListObjectsV2Paginator(cl, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(37)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, fmt.Errorf("list %s after %d keys: %w", bucket, len(out), err)
		}
		for _, o := range page.Contents {
			out = append(out, listed{aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToString(o.ETag)})
		}
	}
	return out, nil
}

// wantListing is the listing of a bucket holding exactly arts.
func wantListing(arts []e2eArtifact) []listed {
	var want []listed
	for _, a := range arts {
		want = append(want, listed{a.key, int64(a.size), a.etag})
	}
	slices.SortFunc(want, func(a, b listed) int { return strings.Compare(a.Key, b.Key) })
	return want
}

// checkListing lists bucket through cl and compares with want.
func checkListing(t *testing.T, who string, cl *awss3.Client, bucket string, want []listed) {
	t.Helper()
	got, err := listAll(t.Context(), cl, bucket)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("%s: listing of %s has %d entries, want %d", who, bucket, len(got), len(want))
	gm := map[string]listed{}
	for _, g := range got {
		gm[g.Key] = g
	}
	shown := 0
	for _, w := range want {
		if g, ok := gm[w.Key]; !ok || g != w {
			if shown++; shown <= 10 {
				t.Errorf("%s: got %+v (present %v), want %+v", who, g, ok, w)
			}
		}
		delete(gm, w.Key)
	}
	for _, g := range gm {
		if shown++; shown <= 10 {
			t.Errorf("%s: unexpected entry %+v", who, g)
		}
	}
}

// httpStatus is the HTTP status of an SDK error, 0 if none was received.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// retry calls f until it succeeds or timeout passes, and returns the
// number of attempts and the last error.
func retry(ctx context.Context, timeout time.Duration, f func(context.Context) error) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for n := 1; ; n++ {
		err := f(ctx)
		if err == nil {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// TestClusterThreeNodes forms a cluster of three nodes with two drives
// each, writes through one node and reads through another, then SIGKILLs
// the Raft leader, and later two of the three nodes, and restarts them.
func TestClusterThreeNodes(t *testing.T) {
	began := time.Now()
	defer func() { t.Logf("TestClusterThreeNodes took %v", time.Since(began).Round(time.Millisecond)) }()
	c := startCluster(t, 3)
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		start := time.Now()
		ok := t.Run(name, f)
		t.Logf("step %s: %v", name, time.Since(start).Round(time.Millisecond))
		if !ok {
			t.FailNow()
		}
	}

	var (
		tenant  s3.NewTenant
		cl      []*awss3.Client // per node, with the tenant's key
		bucket  = "artifacts"
		arts    = newArtifacts("first/a", 200)
		leader  int // index of the node killed first
		written []e2eArtifact
	)
	step("Form", func(t *testing.T) {
		st := c.waitFormed(t, 60*time.Second)
		t.Logf("formed in %v: leader %s, map epoch %d, policy %s, %d PGs over %d drives",
			time.Since(began).Round(time.Millisecond), st.Leader, st.Map.Epoch, st.Map.Policy, st.Map.PGs, st.Map.Drives)
		if st.Map.Policy != "4+2" {
			t.Errorf("map policy %s, want 4+2", st.Map.Policy)
		}
		if err := c.admin(0).do(t.Context(), http.MethodPut, "/_vault/admin/tenants/e2e-tenant", &tenant); err != nil {
			t.Fatalf("create tenant through n1: %v", err)
		}
		// The load below runs far above the default 100 requests/s.
		if err := c.admin(1).send(t.Context(), http.MethodPut, "/_vault/admin/tenants/e2e-tenant/rate", []byte(`{"rps":100000,"burst":100000}`), nil); err != nil {
			t.Fatalf("set the tenant's rate through n2: %v", err)
		}
		for i := range c.nodes {
			cl = append(cl, c.s3Client(i, tenant))
		}
		// The tenant was committed through n1 and the bucket through n2:
		// both are visible on every node as soon as the write returned.
		if _, err := cl[1].CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatalf("create bucket through n2 with the key of a tenant just created through n1: %v", err)
		}
		for _, i := range []int{2, 0} {
			if _, err := cl[i].HeadBucket(t.Context(), &awss3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
				t.Fatalf("bucket just created through n2 not visible through %s: %v", c.nodes[i].name, err)
			}
		}
	})

	step("WriteReadList", func(t *testing.T) {
		start := time.Now()
		putAll(t, cl[2], bucket, arts)
		t.Logf("put %d artifacts through n3 in %v", len(arts), time.Since(start).Round(time.Millisecond))
		written = append(written, arts...)
		start = time.Now()
		checkAll(t, cl[0], bucket, written)
		t.Logf("read them back through n1 in %v", time.Since(start).Round(time.Millisecond))
		want := wantListing(written)
		for i := range c.nodes {
			checkListing(t, c.nodes[i].name, cl[i], bucket, want)
		}
	})

	// A tenant with a 1 MiB quota, used through every node. Usage is
	// committed through Raft every tenant.FlushInterval (1 s): every node
	// must agree within a few seconds.
	step("Quota", func(t *testing.T) {
		ctx := t.Context()
		var qt s3.NewTenant
		if err := c.admin(0).do(ctx, http.MethodPut, "/_vault/admin/tenants/quota-tenant", &qt); err != nil {
			t.Fatal(err)
		}
		if err := c.admin(2).send(ctx, http.MethodPut, "/_vault/admin/tenants/quota-tenant/quota", []byte(`{"max_bytes":1048576}`), nil); err != nil {
			t.Fatal(err)
		}
		var qc []*awss3.Client
		for i := range c.nodes {
			qc = append(qc, c.s3Client(i, qt))
		}
		if _, err := qc[1].CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("quota-bucket")}); err != nil {
			t.Fatal(err)
		}
		two, a, b := newArtifact("two-mib", 2<<20), newArtifact("a", 600<<10), newArtifact("b", 600<<10)
		if err := two.put(ctx, qc[0], "quota-bucket"); errorCode(err) != "QuotaExceeded" || httpStatus(err) != http.StatusForbidden {
			t.Fatalf("2 MiB put into a 1 MiB quota: %v, want 403 QuotaExceeded", err)
		}
		if _, err := qc[2].HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("quota-bucket"), Key: aws.String("two-mib")}); httpStatus(err) != http.StatusNotFound {
			t.Errorf("the refused upload is visible: %v", err)
		}
		if err := a.put(ctx, qc[1], "quota-bucket"); err != nil {
			t.Fatal(err)
		}
		usageOn := func(i int) (s3.TenantUsage, error) {
			var ts []s3.TenantInfo
			if err := c.admin(i).do(ctx, http.MethodGet, "/_vault/admin/tenants", &ts); err != nil {
				return s3.TenantUsage{}, err
			}
			for _, tn := range ts {
				if tn.Name == "quota-tenant" {
					return tn.Usage, nil
				}
			}
			return s3.TenantUsage{}, errors.New("quota-tenant not listed")
		}
		agree := func(want s3.TenantUsage) {
			t.Helper()
			start := time.Now()
			for i := range c.nodes {
				if _, err := retry(ctx, 5*time.Second, func(context.Context) error {
					got, err := usageOn(i)
					if err == nil && got != want {
						err = fmt.Errorf("usage %+v, want %+v", got, want)
					}
					return err
				}); err != nil {
					t.Fatalf("%s: %v", c.nodes[i].name, err)
				}
			}
			t.Logf("usage %+v on every node within %v", want, time.Since(start).Round(time.Millisecond))
		}
		agree(s3.TenantUsage{Bytes: 600 << 10, Artifacts: 1})
		if err := b.put(ctx, qc[2], "quota-bucket"); errorCode(err) != "QuotaExceeded" {
			t.Fatalf("second 600 KiB put through another node: %v, want QuotaExceeded", err)
		}
		if _, err := qc[1].DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("quota-bucket"), Key: aws.String("a")}); err != nil {
			t.Fatal(err)
		}
		agree(s3.TenantUsage{})
		if err := b.put(ctx, qc[2], "quota-bucket"); err != nil {
			t.Fatalf("after the delete the upload should fit: %v", err)
		}
		agree(s3.TenantUsage{Bytes: 600 << 10, Artifacts: 1})
	})

	step("LeaderDown", func(t *testing.T) {
		st, err := c.status(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		leader = slices.IndexFunc(c.nodes, func(n *e2eNode) bool { return n.name == st.Leader })
		if leader < 0 {
			t.Logf("no known leader (%q): killing n1", st.Leader)
			leader = 0
		}
		var survivors []int
		for i := range c.nodes {
			if i != leader {
				survivors = append(survivors, i)
			}
		}
		t.Logf("SIGKILL the leader %s; survivors %s and %s", c.nodes[leader].name, c.nodes[survivors[0]].name, c.nodes[survivors[1]].name)
		killed := time.Now()
		c.nodes[leader].kill(t)

		for _, s := range survivors {
			start := time.Now()
			checkAll(t, cl[s], bucket, written)
			t.Logf("read %d artifacts through %s in %v", len(written), c.nodes[s].name, time.Since(start).Round(time.Millisecond))
		}

		// New artifacts through a survivor. Each gets ~20 s in case a
		// write waits on the re-election; how many attempts it took is
		// reported.
		more := newArtifacts("after-kill/a", 20)
		for _, a := range more {
			n, err := retry(t.Context(), 20*time.Second, func(ctx context.Context) error { return a.put(ctx, cl[survivors[0]], bucket) })
			if err != nil {
				t.Fatalf("after killing the leader, %v (%d attempts)", err, n)
			}
			if n > 1 {
				t.Logf("%s: put %s succeeded at attempt %d (%v after the kill)", c.nodes[survivors[0]].name, a.key, n, time.Since(killed).Round(time.Millisecond))
			}
		}
		written = append(written, more...)

		// Metadata changes commit once the survivors elected a leader.
		n, err := retry(t.Context(), 20*time.Second, func(ctx context.Context) error {
			_, err := cl[survivors[1]].CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("after-kill")})
			if errorCode(err) == "BucketAlreadyOwnedByYou" { // an earlier attempt committed
				return nil
			}
			return err
		})
		if err != nil {
			t.Fatalf("create bucket through %s after killing the leader: %v (%d attempts)", c.nodes[survivors[1]].name, err, n)
		}
		t.Logf("bucket created through %s %v after the kill (attempt %d)", c.nodes[survivors[1]].name, time.Since(killed).Round(time.Millisecond), n)
		var second s3.NewTenant
		if n, err := retry(t.Context(), 20*time.Second, func(ctx context.Context) error {
			return c.admin(survivors[0]).do(ctx, http.MethodPut, "/_vault/admin/tenants/e2e-second", &second)
		}); err != nil {
			t.Fatalf("create tenant through %s after killing the leader: %v (%d attempts)", c.nodes[survivors[0]].name, err, n)
		}
		st, err = c.status(t.Context(), survivors[0])
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader == "" || st.Leader == c.nodes[leader].name {
			t.Errorf("%s: leader %q after the old leader %s died", st.Node, st.Leader, c.nodes[leader].name)
		}
		checkListing(t, c.nodes[survivors[1]].name, cl[survivors[1]], bucket, wantListing(written))
	})

	step("LeaderRestarts", func(t *testing.T) {
		n := c.nodes[leader]
		start := time.Now()
		n.start(t)
		n.waitHealthy(t, 60*time.Second)
		t.Logf("%s healthy %v after restart", n.name, time.Since(start).Round(time.Millisecond))
		// Healthy means serving: read everything through it right away.
		start = time.Now()
		checkAll(t, cl[leader], bucket, written)
		t.Logf("read %d artifacts through the restarted %s in %v", len(written), n.name, time.Since(start).Round(time.Millisecond))
		want := wantListing(written)
		for i := range c.nodes {
			checkListing(t, c.nodes[i].name, cl[i], bucket, want)
		}
		// The bucket created while it was down reaches it from the leader.
		if n, err := retry(t.Context(), 10*time.Second, func(ctx context.Context) error {
			_, err := cl[leader].HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("after-kill")})
			return err
		}); err != nil {
			t.Errorf("%s: bucket created while it was down: %v", c.nodes[leader].name, err)
		} else if n > 1 {
			t.Logf("%s: bucket created while it was down visible at attempt %d", c.nodes[leader].name, n)
		}
		c.waitRaft(t, 30*time.Second)
		t.Run("Membership", func(t *testing.T) { c.waitMembers(t, 20*time.Second) })
	})

	step("TwoDown", func(t *testing.T) {
		const survivor = 1 // n2
		if st, err := c.status(t.Context(), survivor); err == nil {
			t.Logf("leader before the outage: %s", st.Leader)
		}
		for i := range c.nodes {
			if i != survivor {
				c.nodes[i].kill(t)
			}
		}
		a := newArtifact("outage/lost", 1<<20)
		start := time.Now()
		err := a.put(t.Context(), cl[survivor], bucket)
		t.Logf("put with two nodes down: %v after %v", err, time.Since(start).Round(time.Millisecond))
		if err == nil {
			t.Fatal("put with two of three nodes down succeeded")
		}
		if s := httpStatus(err); s != http.StatusServiceUnavailable {
			t.Errorf("put with two nodes down: HTTP status %d (code %q), want 503", s, errorCode(err))
		}
		_, err = cl[survivor].GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(a.key)})
		switch s := httpStatus(err); {
		case err == nil:
			t.Error("get of the failed put with two nodes down: 200")
		case s == http.StatusNotFound && errorCode(err) == "NoSuchKey", s == http.StatusServiceUnavailable:
			t.Logf("get of the failed put with two nodes down: %d %s", s, errorCode(err))
		default:
			t.Errorf("get of the failed put with two nodes down: %v (status %d), want 404 NoSuchKey or 503", err, s)
		}
		// Two of three Raft voters are down: no metadata write commits.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		start = time.Now()
		_, err = cl[survivor].CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("during-outage")})
		cancel()
		t.Logf("create bucket with two nodes down: %v after %v", err, time.Since(start).Round(time.Millisecond))
		if err == nil {
			t.Error("create bucket with two of three Raft voters down succeeded")
		} else if s := httpStatus(err); s != http.StatusServiceUnavailable {
			t.Errorf("create bucket with two of three Raft voters down: HTTP %d %s, want 503 ServiceUnavailable", s, errorCode(err))
		}

		start = time.Now()
		for i := range c.nodes {
			if i != survivor {
				c.nodes[i].start(t)
			}
		}
		for i := range c.nodes {
			if i != survivor {
				c.nodes[i].waitHealthy(t, 60*time.Second)
			}
		}
		c.waitRaft(t, 60*time.Second)
		t.Logf("Raft and map complete again %v after restarting two nodes", time.Since(start).Round(time.Millisecond))
		rec := newArtifacts("recovered/a", 7)
		for _, r := range rec {
			if n, err := retry(t.Context(), 30*time.Second, func(ctx context.Context) error { return r.put(ctx, cl[survivor], bucket) }); err != nil {
				t.Fatalf("after recovery, %v (%d attempts)", err, n)
			} else if n > 1 {
				t.Logf("after recovery, put %s succeeded at attempt %d", r.key, n)
			}
		}
		written = append(written, rec...)
		checkAll(t, cl[0], bucket, written)
		_, err = cl[0].GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(a.key)})
		if errorCode(err) != "NoSuchKey" {
			t.Errorf("get of the put that failed during the outage, after recovery: %v, want NoSuchKey", err)
		}
		want := wantListing(written)
		for i := range c.nodes {
			checkListing(t, c.nodes[i].name, cl[i], bucket, want)
		}
		t.Run("Membership", func(t *testing.T) { c.waitMembers(t, 20*time.Second) })
	})
}

// TestClusterRPCRequiresSecret checks that a cluster node's RPC listener
// refuses requests not signed with the cluster secret, and logs them.
func TestClusterRPCRequiresSecret(t *testing.T) {
	c := startCluster(t, 1)
	n := c.nodes[0]
	var st nodeState
	if ok, err := loadJSON(filepath.Join(n.dirs[0], "node.json"), &st); !ok || err != nil || len(st.Drives) == 0 {
		t.Fatalf("node.json: %v %v %+v", ok, err, st)
	}
	info := "/v1/drives/" + st.Drives[0] + "/info"
	wrong := []byte("not-the-cluster-secret-" + rand.Text())
	plain := &http.Client{Timeout: 10 * time.Second}
	authed := &http.Client{Timeout: 10 * time.Second, Transport: cluster.RPCTransport(c.secret)}
	other := &http.Client{Timeout: 10 * time.Second, Transport: cluster.RPCTransport(wrong)}
	send := func(hc *http.Client, method, path string, sign func(*http.Request)) (int, error) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, "http://"+n.rpc+path, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		if sign != nil {
			sign(req)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	signWith := func(secret []byte, at time.Time) func(*http.Request) {
		return func(r *http.Request) { rpcauth.Sign(r, secret, at) }
	}
	var captured http.Header
	capture := func(r *http.Request) {
		rpcauth.Sign(r, c.secret, time.Now())
		captured = r.Header.Clone()
	}
	for _, tc := range []struct {
		name         string
		hc           *http.Client
		method, path string
		sign         func(*http.Request)
		want         int // 0: the connection is refused
	}{
		// Every connection must first pass the handshake under the secret.
		{"info, plain connection", plain, http.MethodGet, info, nil, 0},
		{"apply, plain connection", plain, http.MethodPost, "/v1/cluster/apply", nil, 0},
		{"info, plain connection, signed", plain, http.MethodGet, info, signWith(c.secret, time.Now()), 0},
		{"info, handshake with another secret", other, http.MethodGet, info, signWith(wrong, time.Now()), 0},
		// On an authenticated connection, requests are signed too.
		{"info unsigned", authed, http.MethodGet, info, nil, http.StatusUnauthorized},
		{"apply unsigned", authed, http.MethodPost, "/v1/cluster/apply", nil, http.StatusUnauthorized},
		{"info wrong secret", authed, http.MethodGet, info, signWith(wrong, time.Now()), http.StatusUnauthorized},
		{"apply wrong secret", authed, http.MethodPost, "/v1/cluster/apply", signWith(wrong, time.Now()), http.StatusUnauthorized},
		{"info an hour old", authed, http.MethodGet, info, signWith(c.secret, time.Now().Add(-time.Hour)), http.StatusUnauthorized},
		{"info signed", authed, http.MethodGet, info, capture, http.StatusOK},
		// A captured request replayed on a connection of one's own fails.
		{"info replayed", plain, http.MethodGet, info, func(r *http.Request) { r.Header = captured }, 0},
	} {
		got, err := send(tc.hc, tc.method, tc.path, tc.sign)
		if got != tc.want || (tc.want != 0 && err != nil) {
			t.Errorf("%s: %s %s: status %d, err %v; want %d", tc.name, tc.method, tc.path, got, err, tc.want)
		}
	}

	for _, want := range []string{"cluster: refused rpc connection", "peer: refused unauthenticated request", "cluster: refused unauthenticated request"} {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(n.stderr.String(), want) {
			if time.Now().After(deadline) {
				t.Errorf("stderr has no %q", want)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if s := n.stderr.String(); strings.Contains(s, string(c.secret)) || strings.Contains(s, string(wrong)) {
		t.Error("stderr contains a secret")
	}
}

// TestClusterGrow: a node alone (1+1), then a second (2+2), then a third
// (4+2), with writes at every stage. The leader migrates everything into
// the newest map and drops the older ones; all data stays readable
// throughout and ends up spread over all six drives.
func TestClusterGrow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts vaultd processes")
	}
	c := prepareCluster(t, 3)
	ctx := t.Context()
	bucket := "grow"
	var written []e2eArtifact
	var cl *awss3.Client
	root := s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}
	for stage, drives := range []int{2, 4, 6} {
		node := c.nodes[stage]
		node.start(t)
		node.waitHealthy(t, 60*time.Second)
		if _, err := waitStatus(t, c, stage, 60*time.Second, func(st cluster.Status) string {
			if st.Map.Drives != drives {
				return fmt.Sprintf("map has %d drives, want %d", st.Map.Drives, drives)
			}
			return ""
		}); err != nil {
			t.Fatalf("stage %d: %v", stage+1, err)
		}
		if stage == 0 {
			cl = c.s3Client(0, root)
			if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
				t.Fatal(err)
			}
		}
		arts := newArtifacts(fmt.Sprintf("stage%d/", stage+1), 24)
		putAll(t, c.s3Client(stage, root), bucket, arts)
		written = append(written, arts...)
		// Everything written so far reads back through the newest node.
		checkAll(t, c.s3Client(stage, root), bucket, written)
	}
	// The leader migrates and drops the older maps.
	start := time.Now()
	st, err := waitStatus(t, c, 0, 120*time.Second, func(st cluster.Status) string {
		if len(st.Map.Older) > 0 {
			return fmt.Sprintf("older maps %v still in use", st.Map.Older)
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("older maps dropped %v after the third node joined; map epoch %d, %s", time.Since(start).Round(time.Second), st.Map.Epoch, st.Map.Policy)
	want := wantListing(written)
	for i := range c.nodes {
		checkAll(t, c.s3Client(i, root), bucket, written)
		checkListing(t, c.nodes[i].name, c.s3Client(i, root), bucket, want)
	}
	// Data moved onto the new nodes' drives.
	for _, d := range st.Drives {
		if d.State != "ok" || d.Used < 1<<20 {
			t.Errorf("drive %s on %s: %s, %d bytes used; want data on every drive", d.ID, d.Node, d.State, d.Used)
		}
	}
}

// waitStatus polls node i's cluster status until ready returns "".
func waitStatus(t *testing.T, c *e2eCluster, i int, timeout time.Duration, ready func(cluster.Status) string) (cluster.Status, error) {
	t.Helper()
	var st cluster.Status
	_, err := retry(t.Context(), timeout, func(ctx context.Context) error {
		var err error
		if st, err = c.status(ctx, i); err != nil {
			return err
		}
		if why := ready(st); why != "" {
			return errors.New(why)
		}
		return nil
	})
	return st, err
}

// cli returns a runner of the vaultd command line against node i's S3
// endpoint with the root credentials: its output (stdout then stderr)
// and error.
func (c *e2eCluster) cli(ctx context.Context, i int) func(args ...string) (string, error) {
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": c.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": c.root.SecretAccessKey}[k]
	}
	return func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append(args, "--endpoint", "http://"+c.nodes[i].s3), getenv, &out, &errb)
		return out.String() + errb.String(), err
	}
}
