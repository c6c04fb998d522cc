package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/local"
	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/s3"
)

// healNode is a single node run in-process by run(), on 4 data
// directories (erasure coding 2+2, every set spans all four drives), with
// its background loops set short.
type healNode struct {
	dirs   []string
	s3     string
	raft   string
	flags  []string // extra server flags
	stderr syncBuffer
	stop   func() // cancels run and waits for it
}

const (
	healRootKey    = "HEALROOTKEY"
	healRootSecret = "healrootsecret1"
)

func newHealNode(t *testing.T, flags ...string) *healNode {
	t.Helper()
	base := t.TempDir()
	n := &healNode{s3: testnet.Addr(t), raft: testnet.Addr(t), flags: flags}
	for i := range 4 {
		n.dirs = append(n.dirs, filepath.Join(base, fmt.Sprintf("d%d", i)))
	}
	return n
}

// start runs the node and waits until it serves.
func (n *healNode) start(t *testing.T) {
	t.Helper()
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": healRootKey, "VAULT_ROOT_SECRET_KEY": healRootSecret}[k]
	}
	args := append([]string{"server", "--name", "n1", "--data", strings.Join(n.dirs, ","), "--s3", n.s3, "--raft", n.raft,
		"--log-level", "info"}, n.flags...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out syncBuffer
	go func() { done <- run(ctx, args, getenv, &out, &n.stderr) }()
	n.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server exit: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("server did not stop")
		}
		n.stop = func() {}
	}
	t.Cleanup(func() { n.stop() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("server exited: %v\n%s", err, tail(n.stderr.String(), 4000))
		default:
		}
		resp, err := http.Get("http://" + n.s3 + "/_vault/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not healthy: %v\n%s", err, tail(n.stderr.String(), 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *healNode) client() *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint:     aws.String("http://" + n.s3),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(healRootKey, healRootSecret, ""),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
	})
}

// driveDir is the local drive directory of data directory i.
func (n *healNode) driveDir(i int) string { return filepath.Join(n.dirs[i], "drive") }

// records returns the records of drive i (the node must be stopped).
func (n *healNode) records(t *testing.T, i int) map[string]driver.Record {
	t.Helper()
	var st nodeState
	if ok, err := loadJSON(filepath.Join(n.dirs[0], "node.json"), &st); !ok || err != nil {
		t.Fatalf("node.json: %v %v", ok, err)
	}
	d, err := local.Open(t.Context(), local.Config{Dir: n.driveDir(i), ID: driver.DriveID(st.Drives[i]), ClusterID: st.ClusterID})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	recs := map[string]driver.Record{}
	after := ""
	for {
		page, err := d.ListRecords(t.Context(), "", after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return recs
		}
		for _, r := range page {
			full, err := d.GetRecord(t.Context(), r.Key)
			if err != nil {
				t.Fatal(err)
			}
			recs[r.Key] = full
			after = r.Key
		}
	}
}

// shardFiles returns the committed shard files of drive i, by path
// relative to the drive, with their bytes.
func (n *healNode) shardFiles(t *testing.T, i int) map[string][]byte {
	t.Helper()
	root := filepath.Join(n.driveDir(i), "shards")
	files := map[string][]byte{}
	filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil {
			rel, _ := filepath.Rel(root, p)
			files[rel] = b
		}
		return nil
	})
	return files
}

// metric returns the value of the series name{drive="n1-d<i>"} (or name
// without labels for i < 0) from the node's /_vault/metrics, or -1.
func (n *healNode) metric(t *testing.T, name string, i int) float64 {
	t.Helper()
	resp, err := metricsGet(context.Background(), "http://"+n.s3+"/_vault/metrics", aws.Credentials{AccessKeyID: healRootKey, SecretAccessKey: healRootSecret})
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	want := name + " "
	if i >= 0 {
		want = fmt.Sprintf(`drive="n1-d%d"`, i)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "vaultaire_"+name) || !strings.Contains(l, want) {
			continue
		}
		if i >= 0 && !strings.HasPrefix(l, "vaultaire_"+name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err == nil {
			return v
		}
	}
	return -1
}

// putHealArtifacts creates bucket (unless it exists) and puts n artifacts
// under prefix, inline (4 KiB) and with shard files (200 KiB, 1 MiB).
func putHealArtifacts(t *testing.T, cl *awss3.Client, bucket, prefix string, n int) []e2eArtifact {
	t.Helper()
	if _, err := cl.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil && errorCode(err) != "BucketAlreadyOwnedByYou" {
		t.Fatal(err)
	}
	sizes := []int{4 << 10, 200 << 10, 1 << 20}
	arts := make([]e2eArtifact, n)
	for i := range arts {
		arts[i] = newArtifact(fmt.Sprintf("%s%03d", prefix, i), sizes[i%len(sizes)])
	}
	putAll(t, cl, bucket, arts)
	return arts
}

// waitFor polls cond every 100 ms until it returns "" or timeout passes,
// then fails with its last answer.
func waitFor(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sameShards reports how got differs from want, or "".
func sameShards(got, want map[string][]byte) string {
	missing, differ := 0, 0
	for p, b := range want {
		g, ok := got[p]
		switch {
		case !ok:
			missing++
		case !bytes.Equal(g, b):
			differ++
		}
	}
	if missing > 0 || differ > 0 || len(got) != len(want) {
		return fmt.Sprintf("%d shard files of %d missing, %d differ, %d present", missing, len(want), differ, len(got))
	}
	return ""
}

// sameRecords fails t unless got holds exactly want's records, with the
// same versions, and the same data if data is set (records of one version
// differ between drives in the shard they describe).
func sameRecords(t *testing.T, who string, got, want map[string]driver.Record, data bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d records, want %d", who, len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || g.Version != w.Version || data && !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s: record %q = %v (present %v), want version %v and the same data", who, k, g.Version, ok, w.Version)
		}
	}
}

// TestSingleNodeHealsWipedDriveWithoutReads: one drive of a single node is
// wiped while it runs (a replaced disk: empty directory where the old one
// was). Without any read, the probe reformats it, the scanner finds what
// it lacks and the healer rebuilds it: every shard file comes back byte
// for byte and every record with its version, within a few scan periods.
func TestSingleNodeHealsWipedDriveWithoutReads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node and waits for its background loops")
	}
	n := newHealNode(t, "--scan-interval", "1s", "--heal-interval", "200ms", "--probe-interval", "300ms")
	n.start(t)
	cl := n.client()
	arts := putHealArtifacts(t, cl, "wipe", "a", 30)
	n.stop()
	const wiped = 2
	wantShards := n.shardFiles(t, wiped)
	wantRecs := n.records(t, wiped)
	if len(wantShards) != 20 || len(wantRecs) != 30 {
		t.Fatalf("drive %d holds %d shard files and %d records, want 20 and 30", wiped, len(wantShards), len(wantRecs))
	}

	n.start(t)
	ents, err := os.ReadDir(n.driveDir(wiped))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(n.driveDir(wiped), e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, func() string {
		if d := sameShards(n.shardFiles(t, wiped), wantShards); d != "" {
			return "wiped drive not refilled: " + d
		}
		return ""
	})
	// The heal queue drains (the records are written after the shards).
	waitFor(t, 30*time.Second, func() string {
		if q := n.metric(t, "heal_queue", -1); q != 0 {
			return fmt.Sprintf("heal queue %v", q)
		}
		return ""
	})
	if r := n.metric(t, "repairs_total", -1); r < 30 {
		t.Errorf("repairs_total %v, want the 30 artifacts", r)
	}
	n.stop()
	sameRecords(t, "wiped drive", n.records(t, wiped), wantRecs, true)
	if f, err := os.ReadFile(filepath.Join(n.driveDir(wiped), "format.json")); err != nil || !bytes.Contains(f, []byte(`"n1-d2"`)) {
		t.Errorf("format record of the replaced drive: %s, %v", f, err)
	}
	// And the data reads back with two other drives gone.
	for _, i := range []int{0, 3} {
		if err := os.Rename(n.driveDir(i), n.driveDir(i)+".away"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(n.driveDir(i), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n.start(t)
	checkAll(t, cl, "wipe", arts)
}

// TestNodeStartsWithBadDrive: a node whose drive is read-only (a read-only
// bind mount of its data directory, which stops root too) or unusable (its
// drive path is a regular file, as when a disk failed to mount) still
// starts, serves reads and writes and reports the drive offline; once the
// drive is fixed it comes online within the probe period and is healed.
func TestNodeStartsWithBadDrive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node and waits for its background loops")
	}
	const bad = 3
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, n *healNode) (fix func())
	}{
		{"read-only mount", func(t *testing.T, n *healNode) func() {
			dir := n.dirs[bad]
			if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
				t.Skipf("bind mount not permitted here: %v", err)
			}
			mounted := true
			unmount := func() {
				if mounted {
					if err := syscall.Unmount(dir, 0); err != nil {
						t.Errorf("unmount: %v", err)
					}
					mounted = false
				}
			}
			t.Cleanup(unmount)
			if err := syscall.Mount("", dir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
				t.Skipf("read-only remount not permitted here: %v", err)
			}
			if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600); err == nil {
				t.Fatal("the read-only mount takes writes")
			}
			return unmount
		}},
		{"drive path is a file", func(t *testing.T, n *healNode) func() {
			dir := n.driveDir(bad)
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, []byte("not a drive"), 0o600); err != nil {
				t.Fatal(err)
			}
			// Fixed by an empty directory: a replaced disk.
			return func() {
				if err := os.Remove(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newHealNode(t, "--scan-interval", "1s", "--heal-interval", "200ms", "--probe-interval", "300ms")
			n.start(t)
			cl := n.client()
			before := putHealArtifacts(t, cl, "bad", "before", 9)
			n.stop()
			fix := tc.break_(t, n)

			n.start(t)
			if v := n.metric(t, "drive_online", bad); v != 0 {
				t.Fatalf("drive_online of the bad drive = %v, want 0\n%s", v, tail(n.stderr.String(), 3000))
			}
			for i := range bad {
				if v := n.metric(t, "drive_online", i); v != 1 {
					t.Errorf("drive_online of drive %d = %v, want 1", i, v)
				}
			}
			var st cluster.Status
			if err := newHealAdmin(n).do(t.Context(), http.MethodGet, "/_vault/admin/cluster", &st); err != nil {
				t.Fatal(err)
			}
			if len(st.Drives) != 4 || st.Drives[bad].State != "offline" || st.Drives[0].State != "ok" {
				t.Errorf("cluster status drives: %+v", st.Drives)
			}
			after := putHealArtifacts(t, cl, "bad", "after", 9)
			checkAll(t, cl, "bad", append(before, after...))

			fix()
			waitFor(t, 15*time.Second, func() string {
				if v := n.metric(t, "drive_online", bad); v != 1 {
					return fmt.Sprintf("drive_online of the fixed drive = %v", v)
				}
				return ""
			})
			// Healed: a shard file of every artifact with shard files
			// (6 of the 18), the queue drained.
			waitFor(t, 60*time.Second, func() string {
				if got := len(n.shardFiles(t, bad)); got != 12 {
					return fmt.Sprintf("%d shard files on the fixed drive, want 12", got)
				}
				if q := n.metric(t, "heal_queue", -1); q != 0 {
					return fmt.Sprintf("heal queue %v", q)
				}
				return ""
			})
			n.stop()
			sameRecords(t, "fixed drive", n.records(t, bad), n.records(t, 0), false)
		})
	}
}

// newHealAdmin is an admin API client of n with the root credentials.
func newHealAdmin(n *healNode) *adminClient {
	c, err := newAdminClient(func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": healRootKey, "VAULT_ROOT_SECRET_KEY": healRootSecret}[k]
	}, "http://"+n.s3, n.dirs[0])
	if err != nil {
		panic(err)
	}
	return c
}

// metricSum returns the sum of the series name{...} of every drive.
func (n *healNode) metricSum(t *testing.T, name string) float64 {
	t.Helper()
	var sum float64
	for i := range n.dirs {
		if v := n.metric(t, name, i); v > 0 {
			sum += v
		}
	}
	return sum
}

// TestScrubRepairsBitrotEndToEnd: bytes flipped in 2% of a single node's
// shard files, which nobody reads, are found by the scrubber within its
// (short) period and rebuilt on disk; the metrics and `vaultd cluster
// status` count them.
func TestScrubRepairsBitrotEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node and waits for its background loops")
	}
	n := newHealNode(t, "--scrub-period", "3s", "--scrub-rate", "64MiB", "--scan-interval", "1h")
	n.start(t)
	cl := n.client()
	if _, err := cl.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String("rot")}); err != nil {
		t.Fatal(err)
	}
	arts := make([]e2eArtifact, 50)
	for i := range arts {
		arts[i] = newArtifact(fmt.Sprintf("r%03d", i), 150<<10+i*1000)
	}
	putAll(t, cl, "rot", arts)
	type victim struct {
		path string
		orig []byte
	}
	var victims []victim
	for i := range n.dirs {
		files := n.shardFiles(t, i)
		if len(files) != len(arts) {
			t.Fatalf("drive %d: %d shard files, want %d", i, len(files), len(arts))
		}
		// The i-th file in name order: a shard of a different artifact
		// on each drive (a file's name is its artifact's), so that one
		// heal never rebuilds two victims at once (picked at random, two
		// victims of one artifact were rebuilt by one heal and counted
		// once: 3 repaired of 4, a CI failure of session 20).
		rel := slices.Sorted(maps.Keys(files))[i]
		victims = append(victims, victim{filepath.Join(n.driveDir(i), "shards", rel), files[rel]})
	}
	// 4 of 200 files: one per drive, flipped at different depths.
	for i, v := range victims {
		b := bytes.Clone(v.orig)
		b[[]int{0, 40, len(b) / 3, len(b) - 1}[i]] ^= 0x01
		if err := os.WriteFile(v.path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 90*time.Second, func() string {
		c, r := n.metricSum(t, "scrub_corrupt_total"), n.metricSum(t, "scrub_repaired_total")
		if c < 4 || r < 4 {
			return fmt.Sprintf("scrub_corrupt_total %v, scrub_repaired_total %v; want 4 and 4\n%s", c, r, tail(n.stderr.String(), 2000))
		}
		return ""
	})
	for _, v := range victims {
		if got, err := os.ReadFile(v.path); err != nil || !bytes.Equal(got, v.orig) {
			t.Errorf("%s after the scrub: %d bytes, %v; want the original", v.path, len(got), err)
		}
	}
	if c, r := n.metricSum(t, "scrub_corrupt_total"), n.metricSum(t, "scrub_repaired_total"); c != 4 || r != 4 {
		t.Errorf("scrub_corrupt_total %v, scrub_repaired_total %v; want 4 and 4", c, r)
	}
	// The corrupt files may come early in a pass: wait for the passes to
	// have read at least every shard's first 50 KiB.
	waitFor(t, 60*time.Second, func() string {
		if b := n.metricSum(t, "scrub_bytes_total"); b < float64(4*len(arts)*50<<10) {
			return fmt.Sprintf("scrub_bytes_total %v: the passes did not read the shards", b)
		}
		return ""
	})

	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": healRootKey, "VAULT_ROOT_SECRET_KEY": healRootSecret}[k]
	}
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"cluster", "status", "--endpoint", "http://" + n.s3, "--json"}, getenv, &out, &errb); err != nil {
		t.Fatalf("cluster status --json: %v %s", err, errb.String())
	}
	var st cluster.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	var corrupt, repaired uint64
	for _, s := range st.Scrub {
		corrupt += s.Corrupt
		repaired += s.Repaired
		if s.Shards == 0 || s.Bytes == 0 {
			t.Errorf("scrub status of %s: %+v", s.Drive, s)
		}
	}
	if len(st.Scrub) != 4 || corrupt != 4 || repaired != 4 || st.Map.Policy != "2+2" || len(st.Drives) != 4 {
		t.Errorf("cluster status: %d scrub entries, %d corrupt, %d repaired, map %+v, %d drives", len(st.Scrub), corrupt, repaired, st.Map, len(st.Drives))
	}
	out.Reset()
	if err := run(t.Context(), []string{"cluster", "status", "--endpoint", "http://" + n.s3}, getenv, &out, &errb); err != nil {
		t.Fatalf("cluster status: %v %s", err, errb.String())
	}
	if !strings.Contains(out.String(), "SCRUB (drives of n1)") || !strings.Contains(out.String(), "n1-d3") {
		t.Errorf("cluster status text:\n%s", out.String())
	}
	checkAll(t, cl, "rot", arts)
}

func TestByteSizeFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"512KiB", 512 << 10, true}, {"8MiB", 8 << 20, true}, {"8M", 8 << 20, true},
		{"1.5GiB", 3 << 29, true}, {"2 gb", 2 << 30, true}, {"", 0, false}, {"MiB", 0, false}, {"3 parsecs", 0, false},
	} {
		var b byteSize
		err := b.Set(tc.in)
		if (err == nil) != tc.ok || tc.ok && int64(b) != tc.want {
			t.Errorf("Set(%q) = %d, %v; want %d (ok %v)", tc.in, b, err, tc.want, tc.ok)
		}
	}
}

// startWith runs node n's process with its flags and extra ones.
func startWith(t *testing.T, n *e2eNode, extra ...string) {
	t.Helper()
	args := append(n.args(), extra...)
	n.stdoutMark = n.stdout.Len()
	cmd := exec.Command(n.bin, args...)
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

// scrapeSum sums the values of the series of family name (all labels) that
// addr's /_vault/metrics reports (read as root), and returns their drive
// labels.
func scrapeSum(addr, name string, root aws.Credentials) (float64, []string) {
	resp, err := metricsGet(context.Background(), "http://"+addr+"/_vault/metrics", root)
	if err != nil {
		return -1, nil
	}
	defer resp.Body.Close()
	var sum float64
	var drives []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "vaultaire_"+name+"{") {
			continue
		}
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
			sum += v
		}
		if _, rest, ok := strings.Cut(l, `drive="`); ok {
			drives = append(drives, rest[:strings.IndexByte(rest, '"')])
		}
	}
	return sum, drives
}

// TestClusterScrubEachNodeItsDrives: in a three-node cluster every node
// scrubs its own drives: a byte flipped in one shard file on each node is
// found and repaired by that node, whose metrics name only its drives.
func TestClusterScrubEachNodeItsDrives(t *testing.T) {
	c := prepareCluster(t, 3)
	flags := []string{"--scrub-period", "3s", "--scrub-rate", "64MiB"}
	startWith(t, c.nodes[0], flags...)
	c.nodes[0].waitHealthy(t, 60*time.Second)
	for _, n := range c.nodes[1:] {
		startWith(t, n, flags...)
	}
	for _, n := range c.nodes[1:] {
		n.waitHealthy(t, 60*time.Second)
	}
	c.waitFormed(t, 90*time.Second)
	cl := c.s3Client(0, s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey})
	if _, err := retry(t.Context(), 30*time.Second, func(ctx context.Context) error {
		_, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("rot")})
		if errorCode(err) == "BucketAlreadyOwnedByYou" {
			return nil
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	arts := make([]e2eArtifact, 12)
	for i := range arts {
		arts[i] = newArtifact(fmt.Sprintf("r%02d", i), 300<<10)
	}
	putAll(t, cl, "rot", arts)
	// Each node's drives as they stood before anything was found.
	base := make([]float64, len(c.nodes))
	for i, n := range c.nodes {
		base[i], _ = scrapeSum(n.s3, "scrub_corrupt_total", c.root)
	}
	type victim struct {
		path string
		orig []byte
	}
	// A different artifact on each node: a shard file has the same name
	// on every drive of its set, and three bad shards of one 4+2 artifact
	// could not be rebuilt.
	var victims []victim
	for i, n := range c.nodes {
		var found string
		k := 0
		filepath.WalkDir(filepath.Join(n.dirs[0], "drive", "shards"), func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				if k == i {
					found = p
				}
				k++
			}
			return nil
		})
		if found == "" {
			t.Fatalf("%s: no shard file on its first drive", n.name)
		}
		b, err := os.ReadFile(found)
		if err != nil {
			t.Fatal(err)
		}
		victims = append(victims, victim{found, b})
		bad := bytes.Clone(b)
		bad[len(bad)/2] ^= 0x08
		if err := os.WriteFile(found, bad, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range c.nodes {
		waitFor(t, 90*time.Second, func() string {
			corrupt, drives := scrapeSum(n.s3, "scrub_corrupt_total", c.root)
			repaired, _ := scrapeSum(n.s3, "scrub_repaired_total", c.root)
			if corrupt-base[i] < 1 || repaired < 1 {
				return fmt.Sprintf("%s: scrub_corrupt_total %v (before %v), scrub_repaired_total %v", n.name, corrupt, base[i], repaired)
			}
			for _, d := range drives {
				if !strings.HasPrefix(d, n.name+"-") {
					return fmt.Sprintf("%s reports scrubbing drive %s of another node", n.name, d)
				}
			}
			if len(drives) != 2 {
				return fmt.Sprintf("%s scrubs drives %v, want its 2", n.name, drives)
			}
			return ""
		})
	}
	for _, v := range victims {
		if got, err := os.ReadFile(v.path); err != nil || !bytes.Equal(got, v.orig) {
			t.Errorf("%s after the scrub: %d bytes, %v; want the original", v.path, len(got), err)
		}
	}
	checkAll(t, cl, "rot", arts)
}

// TestDriveGoesReadOnlyWhileRunning: a drive remounted read-only under a
// running node (as a file system does after I/O errors) is reported offline
// within the probe period while the node keeps serving; remounted
// read-write, it comes back and gets what it missed.
func TestDriveGoesReadOnlyWhileRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node and waits for its background loops")
	}
	const bad = 1
	n := newHealNode(t, "--scan-interval", "1s", "--heal-interval", "200ms", "--probe-interval", "300ms")
	n.start(t)
	cl := n.client()
	before := putHealArtifacts(t, cl, "rodrive", "before", 9)
	dir := n.dirs[bad]
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount not permitted here: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	if err := syscall.Mount("", dir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("read-only remount not permitted here: %v", err)
	}
	waitFor(t, 15*time.Second, func() string {
		if v := n.metric(t, "drive_online", bad); v != 0 {
			return fmt.Sprintf("drive_online of the read-only drive = %v", v)
		}
		return ""
	})
	after := putHealArtifacts(t, cl, "rodrive", "after", 9)
	checkAll(t, cl, "rodrive", append(before, after...))
	// Remounted read-write (the bind mount shows the same files).
	if err := syscall.Mount("", dir, "", syscall.MS_BIND|syscall.MS_REMOUNT, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() string {
		if v := n.metric(t, "drive_online", bad); v != 1 {
			return fmt.Sprintf("drive_online of the remounted drive = %v", v)
		}
		return ""
	})
	waitFor(t, 60*time.Second, func() string {
		if got := len(n.shardFiles(t, bad)); got != 12 {
			return fmt.Sprintf("%d shard files on the remounted drive, want 12", got)
		}
		if q := n.metric(t, "heal_queue", -1); q != 0 {
			return fmt.Sprintf("heal queue %v", q)
		}
		return ""
	})
	n.stop()
	if err := syscall.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	sameRecords(t, "remounted drive", n.records(t, bad), n.records(t, 0), false)
}
