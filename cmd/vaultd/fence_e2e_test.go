package main

// End-to-end test of fenced map epochs (issue 14.7): a node paused with
// SIGSTOP in the middle of a PUT while the map changes cannot overwrite
// anything once it resumes. Skipped with -short.

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/s3"
)

// TestClusterPausedWriterFenced: three nodes; a PUT through n-victim has
// planned its write under the current map and sent part of its body when
// the node is stopped (SIGSTOP); a fourth node joins, which makes a new
// map that moves every PG; the node resumes and the rest of the body
// arrives. Its shard writes, planned under the old epoch, are refused by
// the other nodes' drives (counted in vaultaire_fence_refused_writes_total),
// the PUT fails with 503 ServiceUnavailable, and the key still reads the
// earlier version, byte for byte, through every node.
func TestClusterPausedWriterFenced(t *testing.T) {
	const (
		size = 4 << 20
		head = 256 << 10 // sent before the pause: less than a stripe, so no shard is open yet
		// The S3 front end drops a body that sends nothing for 30 s
		// (BodyRateWindow): the pause must end well before.
		maxPause = 22 * time.Second
	)
	c := prepareCluster(t, 4)
	ctx := t.Context()
	for _, n := range c.nodes[:3] {
		n.start(t)
		n.waitHealthy(t, 60*time.Second)
	}
	epochOf := func(i int) (cluster.Status, error) {
		return waitStatus(t, c, i, 60*time.Second, func(st cluster.Status) string {
			if st.Map.Drives != 6 || st.Leader == "" {
				return fmt.Sprintf("map over %d drives, leader %q; want 6 and a leader", st.Map.Drives, st.Leader)
			}
			return ""
		})
	}
	st, err := epochOf(0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3; i++ {
		if _, err := waitStatus(t, c, i, 60*time.Second, func(o cluster.Status) string {
			if o.Map.Epoch != st.Map.Epoch {
				return fmt.Sprintf("map epoch %d, want %d", o.Map.Epoch, st.Map.Epoch)
			}
			return ""
		}); err != nil {
			t.Fatal(err)
		}
	}
	root := s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}
	const bucket = "fenced"
	if _, err := c.s3Client(0, root).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	v1 := newArtifact("victim", size)
	if err := v1.put(ctx, c.s3Client(0, root), bucket); err != nil {
		t.Fatal(err)
	}
	// The stale writer: a node that is not the leader, so the others
	// keep a Raft quorum and change the map while it is stopped.
	victim := slices.IndexFunc(c.nodes[:3], func(n *e2eNode) bool { return n.name != st.Leader })
	vn := c.nodes[victim]
	v2 := make([]byte, size)
	for i := range v2 {
		v2[i] = byte(i*7 + 1)
	}
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+vn.s3+"/"+bucket+"/victim", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
	if err := v4.NewSigner().SignHTTP(ctx, c.root, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		body   []byte
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		answered <- answer{status: resp.StatusCode, body: b, err: err}
	}()
	t.Cleanup(func() { pw.CloseWithError(io.ErrClosedPipe) })
	if _, err := pw.Write(v2[:head]); err != nil {
		t.Fatalf("send the head of the body: %v", err)
	}
	time.Sleep(time.Second) // the PUT is in the engine, its map taken
	vp := vn.proc.cmd.Process
	t.Cleanup(func() { vp.Signal(syscall.SIGCONT) }) // before the kill of prepareCluster's cleanup
	if err := vp.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	fmt.Fprintf(&vn.stderr, "=== %s: SIGSTOP\n", paused.Format(time.StampMilli))

	// A fourth node joins: a new map, seen by the running nodes.
	n4 := c.nodes[3]
	n4.start(t)
	var running []int
	for i := range 3 {
		if i != victim {
			running = append(running, i)
		}
	}
	for _, i := range running {
		if _, err := waitStatus(t, c, i, maxPause-time.Since(paused), func(o cluster.Status) string {
			if o.Map.Epoch <= st.Map.Epoch || o.Map.Drives != 8 {
				return fmt.Sprintf("map epoch %d over %d drives, want a new one over 8", o.Map.Epoch, o.Map.Drives)
			}
			return ""
		}); err != nil {
			t.Fatalf("%s while %s is stopped: %v", c.nodes[i].name, vn.name, err)
		}
	}
	t.Logf("new map seen by the running nodes %v after the pause", time.Since(paused).Round(time.Millisecond))
	if err := vp.Signal(syscall.SIGCONT); err != nil {
		select {
		case <-vn.proc.exited:
			t.Fatalf("SIGCONT %s: %v: it exited while stopped: %v", vn.name, err, vn.proc.err)
		case <-time.After(time.Second):
		}
		t.Fatalf("SIGCONT %s: %v", vn.name, err)
	}
	fmt.Fprintf(&vn.stderr, "=== %s: SIGCONT\n", time.Now().Format(time.StampMilli))
	go func() {
		pw.Write(v2[head:])
		pw.Close()
	}()
	var a answer
	select {
	case a = <-answered:
	case <-time.After(2 * time.Minute):
		t.Fatal("the stale PUT did not answer within 2 minutes")
	}
	if a.err != nil {
		t.Fatalf("stale PUT: %v", a.err)
	}
	var e struct {
		Code string `xml:"Code"`
	}
	xml.Unmarshal(a.body, &e)
	if a.status != http.StatusServiceUnavailable || e.Code != "ServiceUnavailable" {
		t.Fatalf("stale PUT through the resumed %s: %d %s, want 503 ServiceUnavailable (%s)", vn.name, a.status, e.Code, bytes.TrimSpace(a.body))
	}

	// The refusals were counted by the nodes that knew the new map.
	var refused float64
	for _, i := range append(running, 3) {
		m, err := scrapeMetrics(ctx, "http://"+c.nodes[i].s3+"/_vault/metrics", c.root)
		if err != nil {
			t.Fatalf("%s metrics: %v", c.nodes[i].name, err)
		}
		refused += m["vaultaire_fence_refused_writes_total"]
	}
	if refused == 0 {
		t.Fatal("no node counted a refused stale write (vaultaire_fence_refused_writes_total is 0)")
	}
	t.Logf("%v stale writes refused", refused)

	// Nothing was overwritten: the old version reads through every node.
	n4.waitHealthy(t, 60*time.Second)
	for i := range c.nodes {
		if _, err := retry(ctx, 30*time.Second, func(ctx context.Context) error {
			return v1.check(ctx, c.s3Client(i, root), bucket)
		}); err != nil {
			t.Errorf("through %s: %v", c.nodes[i].name, err)
		}
	}
}
