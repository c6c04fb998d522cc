package chaos

// The multi-process harness: it builds vaultd once, runs nodes as real
// processes (optionally each in its own network namespace), SIGKILLs,
// SIGSTOPs and restarts them, and talks to them with the AWS SDK and the
// signed admin API.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/internal/testnet"
)

var (
	binDir  string
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vaultd-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// vaultdBinary builds ./cmd/vaultd once per test binary; it skips the test
// with -short.
func vaultdBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos: runs vaultd processes (skipped with -short)")
	}
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "vaultd")
		cmd := exec.Command("go", "build", "-o", binPath, "../cmd/vaultd")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// iterations is the number of iterations a suite runs: VAULT_CHAOS_ITERS,
// else long with VAULT_CHAOS_LONG=1, else short.
func iterations(t *testing.T, short, long int) int {
	t.Helper()
	if v := os.Getenv("VAULT_CHAOS_ITERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100_000 {
			t.Fatalf("VAULT_CHAOS_ITERS=%q: want 1 to 100000", v)
		}
		return n
	}
	if os.Getenv("VAULT_CHAOS_LONG") == "1" {
		return long
	}
	return short
}

// seed returns the suite's random seed: VAULT_CHAOS_SEED or a fresh one,
// logged so that a failing run can be replayed (as far as timing allows).
func seed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv("VAULT_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("VAULT_CHAOS_SEED=%q: %v", v, err)
		}
		return s
	}
	s := mrand.Uint64() % 1_000_000_000
	t.Logf("seed %d (VAULT_CHAOS_SEED=%d replays the schedule)", s, s)
	return s
}

// proc is one run of a node's process.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's result, set before exited is closed
}

// node is a vaultd process with the flags it keeps across restarts. Its
// output accumulates in a file.
type node struct {
	name                        string
	s3, raft, rpc, gossip, join string // addresses
	dirs                        []string
	bin                         string
	env                         []string
	netns                       string // network namespace to run in, "" for the test's
	extra                       []string
	logPath                     string

	mu      sync.Mutex // guards proc, stopped
	proc    *proc
	stopped bool // SIGSTOPped
}

func (n *node) args() []string {
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

func (n *node) logf(format string, args ...any) {
	f, err := os.OpenFile(n.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s %s: %s\n", time.Now().Format(time.StampMilli), n.name, fmt.Sprintf(format, args...))
}

// start runs the node's process; it does not wait for it to serve.
func (n *node) start(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.runningLocked() {
		t.Fatalf("%s: start: already running", n.name)
	}
	n.logf("start %s", strings.Join(n.args(), " "))
	out, err := os.OpenFile(n.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if n.netns != "" {
		// ip netns exec execs the command in place: the PID is vaultd's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", n.netns, n.bin}, n.args()...)...)
	} else {
		cmd = exec.Command(n.bin, n.args()...)
	}
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("%s: start: %v", n.name, err)
	}
	out.Close() // the child holds its own copy
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	n.proc = p
	n.stopped = false
}

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.runningLocked()
}

func (n *node) runningLocked() bool {
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
func (n *node) kill(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.runningLocked() {
		return
	}
	n.logf("SIGKILL")
	n.proc.cmd.Process.Kill()
	select {
	case <-n.proc.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("%s: still running 30s after SIGKILL", n.name)
	}
	n.stopped = false
}

// signal sends SIGSTOP or SIGCONT.
func (n *node) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.runningLocked() {
		return
	}
	n.logf("%v", sig)
	if err := n.proc.cmd.Process.Signal(sig); err != nil {
		t.Errorf("%s: %v: %v", n.name, sig, err)
	}
	n.stopped = sig == syscall.SIGSTOP
}

// waitHealthy waits until the node answers GET /_vault/health with 200.
func (n *node) waitHealthy(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := n.healthy(t.Context(), timeout); err != nil {
		t.Fatal(err)
	}
}

func (n *node) healthy(ctx context.Context, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		n.mu.Lock()
		p := n.proc
		n.mu.Unlock()
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before serving: %v%s", n.name, p.err, n.panicLine())
		default:
		}
		resp, err := hc.Get("http://" + n.s3 + "/_vault/health")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after %v: %s", n.name, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// panicLine returns ": " and the last "panic:" line of the node's
// output, or "".
func (n *node) panicLine() string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return ""
	}
	i := bytes.LastIndex(b, []byte("\npanic: "))
	if i < 0 {
		return ""
	}
	line, _, _ := bytes.Cut(b[i+1:], []byte("\n"))
	return ": " + string(line)
}

// logTail returns at most the last max bytes of the node's output.
func (n *node) logTail(limit int64) string {
	f, err := os.Open(n.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(0, st.Size()-limit)
	f.Seek(off, io.SeekStart)
	b, _ := io.ReadAll(f)
	if off > 0 {
		return fmt.Sprintf("[... %d bytes cut ...]\n%s", off, b)
	}
	return string(b)
}

// testCluster is a set of nodes sharing a cluster secret and root
// credentials.
type testCluster struct {
	t      *testing.T
	nodes  []*node
	root   aws.Credentials
	env    []string
	net    *netns // nil: loopback
	extra  []string
	logDir string
}

// newCluster prepares n nodes with two drives each (n1 bootstraps, the
// others join it) without starting them. With nn set, node i runs in
// namespace i of nn on its own address. Every process is killed when the
// test ends and, if it failed or VAULT_CHAOS_LOGS is set, the tail of
// each node's output is logged.
func newCluster(t *testing.T, n int, nn *netns, extra ...string) *testCluster {
	t.Helper()
	bin := vaultdBinary(t)
	c := &testCluster{
		t:      t,
		root:   aws.Credentials{AccessKeyID: "CHAOSROOTACCESSKEY", SecretAccessKey: "chaos-root-secret-" + rand.Text()},
		net:    nn,
		extra:  extra,
		logDir: t.TempDir(),
	}
	c.env = append(os.Environ(),
		"VAULT_CLUSTER_SECRET="+rand.Text(),
		"VAULT_ROOT_ACCESS_KEY="+c.root.AccessKeyID,
		"VAULT_ROOT_SECRET_KEY="+c.root.SecretAccessKey,
	)
	for range n {
		c.addNode(t, bin)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.stopped {
				nd.signal(t, syscall.SIGCONT)
			}
			nd.kill(t)
		}
		if t.Failed() || os.Getenv("VAULT_CHAOS_LOGS") != "" {
			for _, nd := range c.nodes {
				t.Logf("==== %s output ====\n%s", nd.name, nd.logTail(16<<10))
			}
			// Keep the whole logs: the temporary directory goes away.
			keep := filepath.Join(cmp.Or(os.Getenv("VAULT_CHAOS_OUT"), os.TempDir()), fmt.Sprintf("chaos-logs-%s-%d", t.Name(), time.Now().Unix()))
			if err := os.MkdirAll(keep, 0o755); err == nil {
				for _, nd := range c.nodes {
					if b, err := os.ReadFile(nd.logPath); err == nil {
						os.WriteFile(filepath.Join(keep, nd.name+".log"), b, 0o644)
					}
				}
				t.Logf("node logs kept in %s", keep)
			}
		}
	})
	return c
}

// addNode prepares one more node (not started); it joins n1.
func (c *testCluster) addNode(t *testing.T, bin string) *node {
	t.Helper()
	i := len(c.nodes)
	dir := t.TempDir()
	nd := &node{
		name:    fmt.Sprintf("n%d", i+1),
		dirs:    []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")},
		bin:     bin,
		env:     c.env,
		extra:   c.extra,
		logPath: filepath.Join(c.logDir, fmt.Sprintf("n%d.log", i+1)),
	}
	if c.net != nil {
		ip := c.net.ip(i)
		nd.netns = c.net.ns(i)
		nd.s3, nd.raft, nd.rpc, nd.gossip = ip+":9000", ip+":9001", ip+":9002", ip+":9003"
	} else {
		a := testnet.Addrs(t, 3, false)
		g := testnet.Addrs(t, 1, true)
		nd.s3, nd.raft, nd.rpc, nd.gossip = a[0], a[1], a[2], g[0]
	}
	if i > 0 {
		nd.join = c.nodes[0].gossip
	}
	c.nodes = append(c.nodes, nd)
	return nd
}

// start starts every node and waits until each is healthy and the
// cluster is formed.
func (c *testCluster) start(t *testing.T) {
	t.Helper()
	c.nodes[0].start(t)
	c.nodes[0].waitHealthy(t, 60*time.Second)
	for _, nd := range c.nodes[1:] {
		nd.start(t)
	}
	for _, nd := range c.nodes[1:] {
		nd.waitHealthy(t, 60*time.Second)
	}
	if err := c.waitFormed(t.Context(), len(c.nodes), 120*time.Second); err != nil {
		t.Fatal(err)
	}
}

// waitFormed waits until every running node sees n voters, a leader, a
// map over 2n drives with no older maps being migrated, and all agree on
// the leader and the map epoch.
func (c *testCluster) waitFormed(ctx context.Context, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var why string
	for {
		why = ""
		var leader string
		var epoch uint64
		for i, nd := range c.nodes {
			if !nd.running() {
				continue
			}
			st, err := c.status(ctx, i)
			voters := 0
			for _, s := range st.Servers {
				if s.Suffrage == "voter" {
					voters++
				}
			}
			switch {
			case err != nil:
				why = fmt.Sprintf("%s: %v", nd.name, err)
			case voters != n:
				why = fmt.Sprintf("%s: %d voters, want %d", nd.name, voters, n)
			case st.Leader == "":
				why = nd.name + ": no leader"
			case st.Map.Drives != 2*n:
				why = fmt.Sprintf("%s: map over %d drives, want %d", nd.name, st.Map.Drives, 2*n)
			case len(st.Map.Older) > 0:
				why = fmt.Sprintf("%s: older maps %v", nd.name, st.Map.Older)
			case leader != "" && (st.Leader != leader || st.Map.Epoch != epoch):
				why = fmt.Sprintf("%s: leader %s epoch %d, others %s %d", nd.name, st.Leader, st.Map.Epoch, leader, epoch)
			}
			if why != "" {
				break
			}
			leader, epoch = st.Leader, st.Map.Epoch
		}
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not formed after %v: %s", timeout, why)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// leader returns the index of the node the running nodes name leader, or
// -1.
func (c *testCluster) leader(ctx context.Context) int {
	for i, nd := range c.nodes {
		if !nd.running() || nd.stopped {
			continue
		}
		st, err := c.status(ctx, i)
		if err != nil || st.Leader == "" {
			continue
		}
		for j, m := range c.nodes {
			if m.name == st.Leader {
				return j
			}
		}
	}
	return -1
}

// status returns node i's view of the cluster.
func (c *testCluster) status(ctx context.Context, i int) (cluster.Status, error) {
	var st cluster.Status
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.admin(ctx, i, http.MethodGet, "/_vault/admin/cluster", nil, &st)
	return st, err
}

// admin calls node i's admin API as root. It returns the HTTP status (0
// if there was no answer) and, for a status of 300 or more, an error
// naming the S3 error code.
func (c *testCluster) admin(ctx context.Context, i int, method, path string, body []byte, out any) (int, error) {
	u, err := url.JoinPath("http://"+c.nodes[i].s3, path)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("x-amz-content-sha256", hash)
	if err := v4.NewSigner().SignHTTP(ctx, c.root, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		return 0, err
	}
	resp, err := adminHTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Code string `xml:"Code"`
		}
		xml.Unmarshal(answer, &e)
		return resp.StatusCode, &adminError{status: resp.StatusCode, code: e.Code}
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(answer, out)
	}
	return resp.StatusCode, nil
}

var adminHTTP = &http.Client{Timeout: 10 * time.Second}

type adminError struct {
	status int
	code   string
}

func (e *adminError) Error() string { return fmt.Sprintf("%d %s", e.status, e.code) }

// s3Client returns a root S3 client of node i that does not retry, with
// a per-request timeout.
func (c *testCluster) s3Client(i int, timeout time.Duration) *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint:     aws.String("http://" + c.nodes[i].s3),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(c.root.AccessKeyID, c.root.SecretAccessKey, ""),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
		HTTPClient:       &http.Client{Timeout: timeout},
	})
}

// httpStatus returns the HTTP status of an SDK error, 0 if none came.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	var ae *adminError
	if errors.As(err, &ae) {
		return ae.status
	}
	return 0
}

// errorCode returns the S3 error code of an SDK or admin error.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	var ad *adminError
	if errors.As(err, &ad) {
		return ad.code
	}
	return ""
}

// netns is a set of network namespaces, one per node, each with a veth
// pair onto a bridge in the test's namespace, on a private 10.x subnet.
// Partitions are routes inside a namespace: a route to a peer's address
// through a gateway that does not exist drops what this node sends to it.
type netns struct {
	prefix string // namespace and interface name prefix
	subnet string // "10.a.b."
	n      int
	mu     sync.Mutex
	cut    map[[2]int]bool // [from, to]: packets from node from to node to are dropped
	faults *faultWindows   // if set, cut nodes are recorded
}

func (nn *netns) ns(i int) string   { return fmt.Sprintf("%sn%d", nn.prefix, i+1) }
func (nn *netns) ip(i int) string   { return fmt.Sprintf("%s%d", nn.subnet, i+1) }
func (nn *netns) bridge() string    { return nn.prefix + "br" }
func (nn *netns) veth(i int) string { return fmt.Sprintf("%sv%d", nn.prefix, i+1) }

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// netnsSeq numbers newNetns's calls in this process.
var netnsSeq atomic.Int64

// newNetns creates n namespaces on a bridge, or skips the test if this
// process may not create namespaces. Everything is removed when the test
// ends (after the processes, which are killed by cleanups registered
// later).
func newNetns(t *testing.T, n int) *netns {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos: runs vaultd processes (skipped with -short)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition suite needs iproute2 (ip): not found")
	}
	// Names unique per call, not only per process: deleting a namespace
	// returns before the kernel has removed its veth pair, so the next
	// test of the process reusing the names met the last one's
	// ("RTNETLINK answers: File exists", CI 00:24Z 2026-12-08). At most
	// 15 characters: vch + 4 digits + 2 + "probe".
	seq := netnsSeq.Add(1)
	nn := &netns{
		prefix: fmt.Sprintf("vch%04d%c%c", os.Getpid()%10_000, 'a'+seq/26%26, 'a'+seq%26),
		subnet: fmt.Sprintf("10.%d.%d.", 200+mrand.IntN(50), mrand.IntN(250)),
		n:      n,
		cut:    map[[2]int]bool{},
	}
	probe := nn.prefix + "probe"
	if err := run("ip", "netns", "add", probe); err != nil {
		t.Skipf("partition suite needs the privilege to create network namespaces (run as root): %v", err)
	}
	run("ip", "netns", "del", probe)
	t.Cleanup(func() {
		for i := range n {
			run("ip", "netns", "del", nn.ns(i)) // removes the veth pair too
		}
		run("ip", "link", "del", nn.bridge())
	})
	steps := [][]string{
		{"ip", "link", "add", nn.bridge(), "type", "bridge"},
		{"ip", "addr", "add", nn.subnet + "254/24", "dev", nn.bridge()},
		{"ip", "link", "set", nn.bridge(), "up"},
	}
	for i := range n {
		steps = append(steps,
			[]string{"ip", "netns", "add", nn.ns(i)},
			[]string{"ip", "link", "add", nn.veth(i), "type", "veth", "peer", "name", "eth0", "netns", nn.ns(i)},
			[]string{"ip", "link", "set", nn.veth(i), "master", nn.bridge(), "up"},
			[]string{"ip", "-n", nn.ns(i), "addr", "add", nn.ip(i) + "/24", "dev", "eth0"},
			[]string{"ip", "-n", nn.ns(i), "link", "set", "eth0", "up"},
			[]string{"ip", "-n", nn.ns(i), "link", "set", "lo", "up"},
			[]string{"ip", "-n", nn.ns(i), "neigh", "replace", nn.subnet + "250", "lladdr", "02:00:00:00:de:ad", "nud", "permanent", "dev", "eth0"},
		)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			t.Fatalf("setting up namespaces: %v", err)
		}
	}
	// The test reaches every node through the bridge.
	for i := range n {
		if err := waitReachable(t, nn.ip(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A cut drops packets silently, and healing it restores the path.
	if n > 1 {
		if err := nn.drop(0, 1); err != nil {
			t.Fatal(err)
		}
		if got := nn.probe(0, 1); got != "timeout" {
			t.Fatalf("n1 cut off from n2: connecting %s→%s: %s, want a timeout", nn.ip(0), nn.ip(1), got)
		}
		if err := nn.heal(); err != nil {
			t.Fatal(err)
		}
		if got := nn.probe(0, 1); got != "refused" {
			t.Fatalf("cut healed: connecting %s→%s: %s, want refused (nothing listens on port 9)", nn.ip(0), nn.ip(1), got)
		}
	}
	return nn
}

// probe connects from node from's namespace to port 9 of node to and
// says how it went: "refused", "timeout" or the error.
func (nn *netns) probe(from, to int) string {
	cmd := exec.Command("ip", "netns", "exec", nn.ns(from), "timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/"+nn.ip(to)+"/9")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == 124:
		return "timeout"
	case strings.Contains(string(out), "refused"):
		return "refused"
	}
	return fmt.Sprintf("%v: %s", err, bytes.TrimSpace(out))
}

// waitReachable waits until a TCP connect to ip:9 is refused (the
// namespace answers) rather than timing out.
func waitReachable(t *testing.T, ip string) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ip+":9", time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace address %s unreachable: %v", ip, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// drop makes node from drop what it sends to node to (one direction):
// a route to the peer through a gateway whose permanent neighbour entry
// is a MAC address nobody has, so packets vanish silently, as in a real
// partition (a blackhole route would fail sends at once with EINVAL).
func (nn *netns) drop(from, to int) error {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	if nn.cut[[2]int{from, to}] {
		return nil
	}
	if err := run("ip", "-n", nn.ns(from), "route", "add", nn.ip(to)+"/32", "via", nn.subnet+"250", "dev", "eth0"); err != nil {
		return err
	}
	nn.cut[[2]int{from, to}] = true
	return nil
}

// isolate cuts node i off from every other node, both ways; the test
// still reaches it.
func (nn *netns) isolate(i int) error {
	if nn.faults != nil {
		nn.faults.begin(i)
	}
	for j := range nn.n {
		if j == i {
			continue
		}
		if err := errors.Join(nn.drop(i, j), nn.drop(j, i)); err != nil {
			return err
		}
	}
	return nil
}

// heal removes every cut.
func (nn *netns) heal() error {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	var errs []error
	for k := range nn.cut {
		if err := run("ip", "-n", nn.ns(k[0]), "route", "del", nn.ip(k[1])+"/32"); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(nn.cut, k)
	}
	if nn.faults != nil && len(nn.cut) == 0 {
		for i := range nn.n {
			nn.faults.end(i)
		}
	}
	return errors.Join(errs...)
}

// describe names the current cuts.
func (nn *netns) describe() string {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	var s []string
	for k := range nn.cut {
		s = append(s, fmt.Sprintf("n%d->n%d", k[0]+1, k[1]+1))
	}
	return strings.Join(s, " ")
}

// faultWindows records when each node was cut off or paused.
type faultWindows struct {
	mu     sync.Mutex
	open   map[int]time.Time
	closed map[int][][2]time.Time
}

func newFaultWindows() *faultWindows {
	return &faultWindows{open: map[int]time.Time{}, closed: map[int][][2]time.Time{}}
}

func (f *faultWindows) begin(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.open[i]; !ok {
		f.open[i] = time.Now()
	}
}

func (f *faultWindows) end(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.open[i]; ok {
		f.closed[i] = append(f.closed[i], [2]time.Time{s, time.Now()})
		delete(f.open, i)
	}
}

// since returns the start of the earliest fault window of node i that
// overlaps [from, to] once extended by grace at its end, and whether
// there is one.
func (f *faultWindows) since(i int, from, to time.Time, grace time.Duration) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var first time.Time
	for _, w := range f.closed[i] {
		if w[0].Before(to) && w[1].Add(grace).After(from) && (first.IsZero() || w[0].Before(first)) {
			first = w[0]
		}
	}
	if s, ok := f.open[i]; ok && s.Before(to) && (first.IsZero() || s.Before(first)) {
		first = s
	}
	return first, !first.IsZero()
}
