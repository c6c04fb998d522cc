package main

import (
	"bytes"
	"context"
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
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver/faulty"
	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/s3"
)

// diskNode is a real vaultd process on 4 data directories (2+2, every set
// on all four drives) with the test-only disk-fault hook on: its drives
// fail as the file at faults says, changed while it runs.
type diskNode struct {
	*healNode            // directories, addresses, stderr, metric, records
	bin       string     // vaultd binary
	faults    string     // the VAULT_FAULTS file
	stdout    syncBuffer //
	proc      *e2eProc
	requests  atomic.Int64 // HTTP requests sent by client()
}

func newDiskNode(t *testing.T, flags ...string) *diskNode {
	t.Helper()
	n := &diskNode{healNode: newHealNode(t, flags...), bin: e2eBinary(t)}
	n.faults = filepath.Join(t.TempDir(), "faults.json")
	if err := os.WriteFile(n.faults, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs the process and waits until it serves.
func (n *diskNode) start(t *testing.T) {
	t.Helper()
	args := append([]string{"server", "--name", "n1", "--data", strings.Join(n.dirs, ","), "--s3", n.s3, "--raft", n.raft,
		"--log-level", "info"}, n.flags...)
	cmd := exec.Command(n.bin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ROOT_ACCESS_KEY="+healRootKey, "VAULT_ROOT_SECRET_KEY="+healRootSecret,
		faultsEnv+"="+n.faults, faultsEnableEnv+"="+faultsEnableVal)
	cmd.Stdout, cmd.Stderr = &n.stdout, &n.healNode.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &e2eProc{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	n.proc = p
	t.Cleanup(func() { n.stop(t) })
	hc := &http.Client{Timeout: 2 * time.Second}
	waitFor(t, 60*time.Second, func() string {
		select {
		case <-p.exited:
			t.Fatalf("vaultd exited: %v\n%s", p.err, tail(n.healNode.stderr.String(), 4000))
		default:
		}
		resp, err := hc.Get("http://" + n.s3 + "/_vault/health")
		if err != nil {
			return err.Error()
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.Status
		}
		return ""
	})
}

// stop ends the process with SIGTERM (SIGKILL after 30s) and waits.
func (n *diskNode) stop(t *testing.T) {
	if n.proc == nil {
		return
	}
	p := n.proc
	n.proc = nil
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("vaultd did not stop on SIGTERM")
	}
}

// setFaults writes plans (by drive id, "*" for the others) to the faults
// file and waits until the node has applied them.
func (n *diskNode) setFaults(t *testing.T, plans map[string]faulty.Plan) {
	t.Helper()
	b, err := json.Marshal(faultsFile{Seed: 1, Drives: plans})
	if err != nil {
		t.Fatal(err)
	}
	const applied = "TEST-ONLY disk-fault rules applied"
	before := strings.Count(n.healNode.stderr.String(), applied)
	tmp := n.faults + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, n.faults); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() string {
		if strings.Count(n.healNode.stderr.String(), applied) > before {
			return ""
		}
		return "faults not applied: " + string(b)
	})
}

// client returns an SDK client with the SDK's default retries, counting
// the HTTP requests it sends in n.requests.
func (n *diskNode) client() *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint: aws.String("http://" + n.s3),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(healRootKey, healRootSecret, ""),
		UsePathStyle: true,
		HTTPClient:   countingClient{&n.requests, http.DefaultClient},
	})
}

type countingClient struct {
	n *atomic.Int64
	c *http.Client
}

func (c countingClient) Do(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.c.Do(r)
}

func putBytes(ctx context.Context, cl *awss3.Client, bucket, key string, b []byte) error {
	_, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b)))})
	return err
}

// The hook is refused unless explicitly enabled, and refuses a bad file.
func TestFaultsHookRefused(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "faults.json")
	if err := os.WriteFile(rules, []byte(`{"drives":{"*":{"rules":[{"op":"write","fault":"melt"}]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{faultsEnv: rules}, "refusing it without " + faultsEnableEnv},
		{map[string]string{faultsEnv: rules, faultsEnableEnv: "1"}, "refusing it without " + faultsEnableEnv},
		{map[string]string{faultsEnv: rules, faultsEnableEnv: faultsEnableVal}, `unknown fault "melt"`},
	} {
		env := map[string]string{"VAULT_ROOT_ACCESS_KEY": healRootKey, "VAULT_ROOT_SECRET_KEY": healRootSecret}
		for k, v := range tc.env {
			env[k] = v
		}
		args := []string{"server", "--name", "n1", "--data", filepath.Join(t.TempDir(), "d0"), "--s3", testnet.Addr(t), "--raft", testnet.Addr(t)}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := run(ctx, args, func(k string) string { return env[k] }, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: run = %v, want an error containing %q", tc.env, err, tc.want)
		}
	}
}

// full makes a drive refuse, as a full disk does, shard writes and records
// bigger than a tombstone.
var full = faulty.Plan{Rules: []faulty.Rule{{Op: faulty.OpShardWrite | faulty.OpPutRecord, Fault: faulty.NoSpace, MinSize: 512}}}

// TestDiskFullEndToEnd fills every drive of a running node: PUTs (inline,
// sharded, multipart) fail with 507 InsufficientStorage, at once, not
// retried by the SDK; existing objects read back byte-identical, list, and
// can be deleted; an overwrite that failed leaves the old bytes. Once space
// is back, writes work again.
func TestDiskFullEndToEnd(t *testing.T) {
	n := newDiskNode(t, "--probe-interval", "200ms", "--scan-interval", "1s", "--heal-interval", "200ms")
	n.start(t)
	cl := n.client()
	ctx := t.Context()
	arts := putHealArtifacts(t, cl, "full", "a", 9)

	n.setFaults(t, map[string]faulty.Plan{"*": full})
	for _, size := range []int{4 << 10, 200 << 10, 1 << 20} {
		before := n.requests.Load()
		err := putBytes(ctx, cl, "full", fmt.Sprintf("new-%d", size), make([]byte, size))
		if got := errorCode(err); got != "InsufficientStorage" || httpStatus(err) != http.StatusInsufficientStorage {
			t.Fatalf("PUT of %d bytes on full drives: %v (code %q, status %d), want 507 InsufficientStorage", size, err, got, httpStatus(err))
		}
		if sent := n.requests.Load() - before; sent != 1 {
			t.Errorf("PUT on full drives sent %d requests, want 1 (507 is not retried)", sent)
		}
		if _, err := cl.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("full"), Key: aws.String(fmt.Sprintf("new-%d", size))}); errorCode(err) != "NotFound" {
			t.Errorf("refused PUT visible: HEAD = %v", err)
		}
	}
	// An overwrite fails and leaves the old bytes.
	if err := putBytes(ctx, cl, "full", arts[1].key, make([]byte, 300<<10)); errorCode(err) != "InsufficientStorage" {
		t.Fatalf("overwrite on full drives: %v, want InsufficientStorage", err)
	}
	// A multipart part is refused the same way.
	mp, err := cl.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("full"), Key: aws.String("mp")})
	if err == nil {
		_, err = cl.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("full"), Key: aws.String("mp"), UploadId: mp.UploadId,
			PartNumber: aws.Int32(1), Body: bytes.NewReader(make([]byte, 5<<20)), ContentLength: aws.Int64(5 << 20)})
	}
	if errorCode(err) != "InsufficientStorage" {
		t.Fatalf("multipart on full drives: %v, want InsufficientStorage", err)
	}
	// Existing data stays readable and listed, well past a probe period
	// (a full drive must not be taken offline), and can be deleted.
	time.Sleep(time.Second)
	checkAll(t, cl, "full", arts)
	out, err := cl.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("full")})
	if err != nil || len(out.Contents) != len(arts) {
		t.Fatalf("list on full drives: %v, %d objects, want %d", err, len(out.Contents), len(arts))
	}
	if _, err := cl.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("full"), Key: aws.String(arts[0].key)}); err != nil {
		t.Fatalf("delete on full drives: %v", err)
	}
	if _, err := cl.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("full"), Key: aws.String(arts[0].key)}); errorCode(err) != "NotFound" {
		t.Fatalf("deleted object: HEAD = %v, want NotFound", err)
	}
	checkAll(t, cl, "full", arts[1:])

	// One drive full of four: writes still succeed (3 of 4 is a quorum).
	n.setFaults(t, map[string]faulty.Plan{"n1-d0": full})
	more := []e2eArtifact{newArtifact("b0", 200<<10), newArtifact("b1", 4<<10)}
	putAll(t, cl, "full", more)
	// Space back: everything works, and the drive that was full gets
	// what it missed: it then serves with two others gone.
	n.setFaults(t, nil)
	putAll(t, cl, "full", arts[:1])
	checkAll(t, cl, "full", append(arts, more...))
	waitFor(t, 60*time.Second, func() string {
		if r := n.metric(t, "repairs_total", -1); r < float64(len(more)) {
			return fmt.Sprintf("repairs_total %v, want at least %d", r, len(more))
		}
		if q := n.metric(t, "heal_queue", -1); q != 0 {
			return fmt.Sprintf("heal queue %v", q)
		}
		return ""
	})
	off := faulty.Plan{Rules: []faulty.Rule{{Op: faulty.OpAll, Fault: faulty.Offline}}}
	n.setFaults(t, map[string]faulty.Plan{"n1-d1": off, "n1-d2": off})
	checkAll(t, cl, "full", append(arts, more...))
}

// TestDriveGoneEndToEnd: a drive disappears from a running node (every
// call fails), writes go on at quorum, the drive returns and the scanner
// and healer refill it: the objects then read from it with two other
// drives gone.
func TestDriveGoneEndToEnd(t *testing.T) {
	n := newDiskNode(t, "--scan-interval", "1s", "--heal-interval", "200ms", "--probe-interval", "300ms")
	n.start(t)
	cl := n.client()
	before := putHealArtifacts(t, cl, "gone", "a", 6)

	n.setFaults(t, map[string]faulty.Plan{"n1-d1": {Rules: []faulty.Rule{{Op: faulty.OpAll, Fault: faulty.Offline}}}})
	during := putHealArtifacts(t, cl, "gone", "b", 9)
	all := append(before, during...)
	checkAll(t, cl, "gone", all)

	n.setFaults(t, nil) // the drive returns
	waitFor(t, 60*time.Second, func() string {
		if r := n.metric(t, "repairs_total", -1); r < float64(len(during)) {
			return fmt.Sprintf("repairs_total %v, want at least %d", r, len(during))
		}
		if q := n.metric(t, "heal_queue", -1); q != 0 {
			return fmt.Sprintf("heal queue %v", q)
		}
		return ""
	})
	// Drives 0 and 2 gone: 1 and 3 must hold everything.
	off := faulty.Plan{Rules: []faulty.Rule{{Op: faulty.OpAll, Fault: faulty.Offline}}}
	n.setFaults(t, map[string]faulty.Plan{"n1-d0": off, "n1-d2": off})
	checkAll(t, cl, "gone", all)
}

// TestFsyncEIOEndToEnd: with fsync failing on one drive always and on
// another at random, a PUT is acknowledged only when its shards and
// records are on a write quorum (3 of 4 drives): counted on the stopped
// node's drives. The others fail with 503 and are not visible.
func TestFsyncEIOEndToEnd(t *testing.T) {
	n := newDiskNode(t, "--scan-interval", "1h", "--heal-interval", "1h")
	n.start(t)
	cl := n.healNode.client() // no retries: each PUT is one attempt
	ctx := t.Context()
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("fsync")}); err != nil {
		t.Fatal(err)
	}
	eio := func(p float64) faulty.Plan {
		return faulty.Plan{Rules: []faulty.Rule{{Op: faulty.OpCommit, Fault: faulty.EIO, Prob: p}}}
	}
	n.setFaults(t, map[string]faulty.Plan{"n1-d0": eio(1), "n1-d1": eio(0.5)})
	var acked, failed []e2eArtifact
	for i := range 16 {
		a := newArtifact(fmt.Sprintf("f%02d", i), 200<<10)
		err := a.put(ctx, cl, "fsync")
		switch {
		case err == nil:
			acked = append(acked, a)
		case errorCode(err) == "ServiceUnavailable":
			failed = append(failed, a)
		default:
			t.Fatalf("put %s: %v, want success or ServiceUnavailable", a.key, err)
		}
	}
	if len(acked) == 0 || len(failed) == 0 {
		t.Fatalf("%d acknowledged, %d failed: want some of each", len(acked), len(failed))
	}
	for _, a := range failed {
		if _, err := cl.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("fsync"), Key: aws.String(a.key)}); errorCode(err) != "NotFound" {
			t.Errorf("failed PUT %s visible: HEAD = %v", a.key, err)
		}
	}
	checkAll(t, cl, "fsync", acked)
	n.stop(t)
	// Count, per key, the drives holding its record and a shard file.
	holders := map[string]int{}
	for i := range 4 {
		shards := n.shardFiles(t, i)
		for key := range n.records(t, i) {
			for _, a := range append(acked, failed...) {
				if strings.HasSuffix(key, a.key) { // keys f00..f15: no suffix of another
					holders[a.key]++
				}
			}
		}
		if i == 0 && len(shards) != 0 {
			t.Errorf("drive 0, whose fsync always failed, holds %d shard files", len(shards))
		}
	}
	for _, a := range acked {
		if holders[a.key] < 3 {
			t.Errorf("acknowledged %s is on %d drives, want a write quorum of 3", a.key, holders[a.key])
		}
	}
	for _, a := range failed {
		if holders[a.key] != 0 {
			t.Errorf("failed %s left records on %d drives", a.key, holders[a.key])
		}
	}
	t.Logf("%d acknowledged on a write quorum, %d refused with 503", len(acked), len(failed))
}

// TestRealFullDiskEndToEnd fills real file systems (a small tmpfs mounted
// as each drive; root only): large PUTs fail with 507, the drives stay
// online past several probe periods (a failing write probe used to take a
// full drive offline, hiding its data), existing objects read back, and
// once space is freed writes work again.
func TestRealFullDiskEndToEnd(t *testing.T) {
	n := newDiskNode(t, "--probe-interval", "200ms")
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	for i := range n.dirs {
		dir := n.driveDir(i)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
			t.Skipf("cannot mount a tmpfs: %v", err)
		}
		t.Cleanup(func() {
			if err := syscall.Unmount(dir, 0); err != nil {
				exec.Command("umount", "-l", dir).Run()
			}
		})
	}
	n.start(t)
	cl := n.client()
	ctx := t.Context()
	arts := putHealArtifacts(t, cl, "real", "a", 6)
	var fillers []string
	for i := range n.dirs {
		fillers = append(fillers, fillFS(t, n.driveDir(i)))
	}
	err := putBytes(ctx, cl, "real", "big", make([]byte, 4<<20))
	if errorCode(err) != "InsufficientStorage" || httpStatus(err) != http.StatusInsufficientStorage {
		t.Fatalf("PUT on full disks: %v, want 507 InsufficientStorage", err)
	}
	time.Sleep(time.Second) // five probe periods
	checkAll(t, cl, "real", arts)
	if log := n.healNode.stderr.String(); strings.Contains(log, "drive offline") {
		t.Errorf("a full drive was taken offline:\n%s", tail(log, 3000))
	}
	for _, f := range fillers {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	more := []e2eArtifact{newArtifact("big", 4<<20)}
	putAll(t, cl, "real", more)
	checkAll(t, cl, "real", append(arts, more...))
}

// fillFS writes a file in dir until its file system is full and returns
// its path.
func fillFS(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return path
		}
	}
}

// TestBandwidthCapEndToEnd caps every drive of a running node through the
// hook (as issue 14's "every drive at 40 MiB/s" will) and times a PUT and a
// GET: each of the 2+2 drives moves half the object, so neither can beat
// half the object's size over the cap.
func TestBandwidthCapEndToEnd(t *testing.T) {
	n := newDiskNode(t)
	n.start(t)
	cl := n.client()
	ctx := t.Context()
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("bwcap")}); err != nil {
		t.Fatal(err)
	}
	const rate = 4 << 20 // bytes per second per drive
	n.setFaults(t, map[string]faulty.Plan{"*": {Bandwidth: rate}})
	a := newArtifact("big", 8<<20)
	want := time.Duration(float64(a.size/2) / rate * float64(time.Second)) // 1s
	began := time.Now()
	if err := a.put(ctx, cl, "bwcap"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	t.Logf("PUT of 8 MiB: %v (the cap alone: %v)", took, want)
	if took < want*95/100 || took > 10*want {
		t.Errorf("PUT of 8 MiB over drives capped at 4 MiB/s took %v, want about %v", took, want)
	}
	began = time.Now()
	if err := a.check(ctx, cl, "bwcap"); err != nil {
		t.Fatal(err)
	}
	took = time.Since(began)
	t.Logf("GET of 8 MiB: %v (the cap alone: %v)", took, want)
	if took < want*95/100 || took > 10*want {
		t.Errorf("GET of 8 MiB over drives capped at 4 MiB/s took %v, want about %v", took, want)
	}
	n.setFaults(t, nil)
}

// objState is what an object may read as: any of its bodies, nil meaning
// absent.
type objState [][]byte

// TestDiskChaosEndToEnd runs a random workload against a real node while
// random disk faults come and go: each round one drive with one to three
// random fault classes, or two drives failing writes (ENOSPC, EIO, torn
// commits). Every PUT and DELETE must succeed or fail with 503 or 507;
// every GET must succeed (one faulty drive of 2+2, or two failing only
// writes, leave a read quorum) with bytes the acknowledgements allow,
// except that with two drives failing writes a GET of a key whose last
// write failed may answer 503: that write may be on two drives, which a
// read can neither write back to a third nor tell from a version served
// before (engine TestReadOfFailedWriteWaitsForDrives). After
// each round the faults are cleared, the scanner, healer and scrubber run,
// and every object must read from two drives alone, all pairs tried in
// turn. VAULT_DISK_E2E_ROUNDS sets the rounds (2 by default) and
// VAULT_DISK_SEED the seed.
func TestDiskChaosEndToEnd(t *testing.T) {
	rounds := 2
	if s := os.Getenv("VAULT_DISK_E2E_ROUNDS"); s != "" {
		var err error
		if rounds, err = strconv.Atoi(s); err != nil {
			t.Fatalf("VAULT_DISK_E2E_ROUNDS=%q: %v", s, err)
		}
	}
	seed := uint64(1)
	if s := os.Getenv("VAULT_DISK_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("VAULT_DISK_SEED=%q: %v", s, err)
		}
	} else if os.Getenv("VAULT_DISK_E2E_ROUNDS") != "" {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d, %d rounds", seed, rounds)
	rng := mrand.New(mrand.NewPCG(seed, 2))
	n := newDiskNode(t, "--scan-interval", "1s", "--heal-interval", "200ms", "--probe-interval", "300ms",
		"--scrub-period", "2s", "--scrub-rate", "512MiB")
	n.start(t)
	cl := n.healNode.client() // one attempt per request
	ctx := t.Context()
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("chaos")}); err != nil {
		t.Fatal(err)
	}
	classes := []faulty.Rule{
		{Op: faulty.OpWrite, Fault: faulty.EIO},
		{Op: faulty.OpCommit, Fault: faulty.EIO},
		{Op: faulty.OpPutRecord, Fault: faulty.EIO},
		{Op: faulty.OpShardWrite | faulty.OpPutRecord, Fault: faulty.NoSpace, MinSize: 512},
		{Op: faulty.OpCommit, Fault: faulty.Torn},
		{Op: faulty.OpCommit, Fault: faulty.Lost},
		{Op: faulty.OpWrite, Fault: faulty.Flip},
		{Op: faulty.OpReads, Fault: faulty.Flip},
		{Op: faulty.OpReads, Fault: faulty.EIO},
		{Op: faulty.OpAll, Fault: faulty.Offline},
		{Op: faulty.OpAll, Fault: faulty.Slow, Delay: 20 * time.Millisecond},
	}
	writeOnly := classes[:5]
	model := map[string]objState{}
	get := func(key string) ([]byte, bool, error) {
		out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("chaos"), Key: aws.String(key)})
		if errorCode(err) == "NoSuchKey" {
			return nil, true, nil
		}
		if err != nil {
			return nil, false, err
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		return b, false, err
	}
	allowed := func(st objState, b []byte, absent bool) bool {
		for _, v := range st {
			if v == nil && absent || v != nil && !absent && bytes.Equal(v, b) {
				return true
			}
		}
		return false
	}
	failedWrite := map[string]bool{} // keys whose last write failed, this round, with two drives failing writes
	checkKey := func(what, key string) {
		t.Helper()
		b, absent, err := get(key)
		if failedWrite[key] && errorCode(err) == "ServiceUnavailable" {
			return
		}
		if err != nil {
			t.Fatalf("%s: GET %s: %v (status %d)", what, key, err, httpStatus(err))
		}
		if !allowed(model[key], b, absent) {
			t.Fatalf("%s: GET %s: %d bytes (absent %v), not one of its %d allowed states", what, key, len(b), absent, len(model[key]))
		}
	}
	var acked, refused int
	for round := range rounds {
		plans := map[string]faulty.Plan{}
		bad, pick := rng.Perm(4)[:1], classes
		if rng.IntN(3) == 0 {
			bad, pick = rng.Perm(4)[:2], writeOnly
		}
		clear(failedWrite)
		for _, i := range bad {
			var p faulty.Plan
			for range 1 + rng.IntN(3) {
				r := pick[rng.IntN(len(pick))]
				r.Prob = []float64{0.3, 1}[rng.IntN(2)]
				p.Rules = append(p.Rules, r)
			}
			plans[fmt.Sprintf("n1-d%d", i)] = p
		}
		pj, _ := json.Marshal(plans)
		t.Logf("round %d: %s", round, pj)
		n.setFaults(t, plans)
		for op := range 12 {
			what := fmt.Sprintf("round %d op %d", round, op)
			key := fmt.Sprintf("k%d", rng.IntN(10))
			var err error
			var body []byte
			if rng.IntN(5) == 0 {
				_, err = cl.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("chaos"), Key: aws.String(key)})
			} else {
				body = make([]byte, []int{0, 4 << 10, 200 << 10, 1 << 20}[rng.IntN(4)])
				mrand.NewChaCha8([32]byte{byte(round), byte(op), byte(seed)}).Read(body)
				err = putBytes(ctx, cl, "chaos", key, body)
			}
			failedWrite[key] = err != nil && len(bad) == 2
			switch code := errorCode(err); {
			case err == nil:
				model[key] = objState{body} // nil body: deleted
				if body == nil {
					model[key] = objState{nil}
				}
				acked++
			case code == "ServiceUnavailable" || code == "InsufficientStorage":
				if model[key] == nil {
					model[key] = objState{nil}
				}
				model[key] = append(model[key], body)
				refused++
			default:
				t.Fatalf("%s: write %s: %v (status %d), want success, 503 or 507", what, key, err, httpStatus(err))
			}
			checkKey(what, key)
		}
		// Heal: faults off, a scan, the queue drained, two scrub passes.
		passes := make([]float64, 4)
		for i := range passes {
			passes[i] = n.metric(t, "scrub_passes_total", i)
		}
		n.setFaults(t, nil)
		clear(failedWrite) // the drives take writes again: every GET must succeed
		waitFor(t, 60*time.Second, func() string {
			for i, p := range passes {
				if got := n.metric(t, "scrub_passes_total", i); got < p+2 {
					return fmt.Sprintf("drive %d: %v scrub passes, want %v", i, got, p+2)
				}
			}
			if q := n.metric(t, "heal_queue", -1); q != 0 {
				return fmt.Sprintf("heal queue %v", q)
			}
			return ""
		})
		for key := range model {
			checkKey(fmt.Sprintf("round %d healed", round), key)
			b, absent, _ := get(key)
			if absent {
				model[key] = objState{nil}
			} else {
				model[key] = objState{b}
			}
		}
		off := faulty.Plan{Rules: []faulty.Rule{{Op: faulty.OpAll, Fault: faulty.Offline}}}
		for _, pair := range [][2]int{{0, 1}, {2, 3}, {0, 2}, {1, 3}, {0, 3}, {1, 2}} {
			n.setFaults(t, map[string]faulty.Plan{fmt.Sprintf("n1-d%d", pair[0]): off, fmt.Sprintf("n1-d%d", pair[1]): off})
			for key := range model {
				checkKey(fmt.Sprintf("round %d healed, drives %v offline", round, pair), key)
			}
		}
		n.setFaults(t, nil)
	}
	t.Logf("%d rounds: %d writes acknowledged, %d refused with 503/507, 0 anomalies", rounds, acked, refused)
}

// TestClusterDiskFullEndToEnd fills every drive of a three-node cluster
// (six drives, 4+2, four of them behind peers): a PUT to any node fails
// with 507 InsufficientStorage, as on a single node, because a full peer
// drive crosses the wire as driver.ErrNoSpace; existing objects still read
// from every node; writes work again once space is back.
func TestClusterDiskFullEndToEnd(t *testing.T) {
	c := prepareCluster(t, 3)
	rules := filepath.Join(t.TempDir(), "faults.json")
	if err := os.WriteFile(rules, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		n.env = append(slices.Clone(n.env), faultsEnv+"="+rules, faultsEnableEnv+"="+faultsEnableVal)
	}
	c.nodes[0].start(t)
	c.nodes[0].waitHealthy(t, 60*time.Second)
	for _, n := range c.nodes[1:] {
		n.start(t)
	}
	for _, n := range c.nodes[1:] {
		n.waitHealthy(t, 60*time.Second)
	}
	c.waitFormed(t, 90*time.Second)
	root := s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}
	cl := c.s3Client(0, root)
	if _, err := retry(t.Context(), 30*time.Second, func(ctx context.Context) error {
		_, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("cfull")})
		if errorCode(err) == "BucketAlreadyOwnedByYou" {
			return nil
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	arts := []e2eArtifact{newArtifact("a0", 4<<10), newArtifact("a1", 300<<10), newArtifact("a2", 1<<20)}
	putAll(t, cl, "cfull", arts)

	// Every node's drives full; each node logs that it applied the rules.
	const applied = "TEST-ONLY disk-fault rules applied"
	before := make([]int, len(c.nodes))
	for i, n := range c.nodes {
		before[i] = strings.Count(n.stderr.String(), applied)
	}
	b, _ := json.Marshal(faultsFile{Drives: map[string]faulty.Plan{"*": full}})
	if err := os.WriteFile(rules+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(rules+".tmp", rules); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() string {
		for i, n := range c.nodes {
			if strings.Count(n.stderr.String(), applied) == before[i] {
				return n.name + " has not applied the faults"
			}
		}
		return ""
	})
	for i := range c.nodes {
		cli := c.s3Client(i, root)
		err := putBytes(t.Context(), cli, "cfull", fmt.Sprintf("new%d", i), make([]byte, 1<<20))
		if errorCode(err) != "InsufficientStorage" || httpStatus(err) != http.StatusInsufficientStorage {
			t.Errorf("PUT through %s on full drives: %v, want 507 InsufficientStorage", c.nodes[i].name, err)
		}
		checkAll(t, cli, "cfull", arts)
	}
	if err := os.WriteFile(rules, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := []e2eArtifact{newArtifact("b0", 1<<20)}
	if _, err := retry(t.Context(), 15*time.Second, func(ctx context.Context) error {
		return extra[0].put(ctx, cl, "cfull")
	}); err != nil {
		t.Fatalf("PUT once space is back: %v", err)
	}
	checkAll(t, c.s3Client(2, root), "cfull", append(arts, extra...))
}
