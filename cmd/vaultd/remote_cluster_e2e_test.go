package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/s3"
)

// TestClusterRemoteDrive: a remote drive (a real MinIO bucket) declared on
// n3 of a 3-node cluster is in the map as a remote drive of n3 in its own
// failure domain; a hybrid container's artifacts, written and read through
// every node, are byte-identical and their parity shards land in the
// bucket. n3 is killed; n4, started with the same --remote, adopts the
// drive (after the fence wait) and every artifact reads back through every
// live node; n4 writes to it; n3 restarted with its --remote is a
// read-only standby while n4, the owner now, is alive, and takes the drive
// back only when forced.
func TestClusterRemoteDrive(t *testing.T) {
	longE2E(t)
	began := time.Now()
	defer func() { t.Logf("TestClusterRemoteDrive took %v", time.Since(began).Round(time.Millisecond)) }()
	c := prepareCluster(t, 3)
	m := startMinIO(t)
	ctx := t.Context()
	mc := remoteTestClient(m.endpoint, m.ak, m.sk)
	if _, err := mc.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("cold")}); err != nil {
		t.Fatal(err)
	}
	remoteEnv := []string{"VAULT_REMOTE_COLD_ACCESS_KEY=" + m.ak, "VAULT_REMOTE_COLD_SECRET_KEY=" + m.sk}
	remoteFlag := []string{"--remote", "cold=" + m.endpoint + "/cold/drive?timeout=5s"}
	n3 := c.nodes[2]
	n3.env = append(n3.env[:len(n3.env):len(n3.env)], remoteEnv...)
	n3.extra = remoteFlag
	for _, n := range c.nodes {
		n.extra = append(n.extra, "--heal-interval", "1s")
		n.start(t)
	}
	for _, n := range c.nodes {
		n.waitHealthy(t, 60*time.Second)
	}
	remoteOn := func(node string) func(cluster.Status) string {
		return func(st cluster.Status) string {
			if st.Map.Drives < 7 {
				return fmt.Sprintf("map over %d drives, want 7 or more", st.Map.Drives)
			}
			for _, d := range st.Drives {
				if d.ID == "remote-cold" {
					if d.Node != node || d.Class != "remote" || d.Zone != "remote:cold" {
						return fmt.Sprintf("remote-cold: node %s class %s zone %s, want %s remote remote:cold", d.Node, d.Class, d.Zone, node)
					}
					if d.State != "ok" {
						return fmt.Sprintf("remote-cold on %s: %s %s", d.Node, d.State, d.Error)
					}
					return ""
				}
			}
			return "no remote-cold in the map"
		}
	}
	if _, err := c.waitView(t, 60*time.Second, func(st cluster.Status) string {
		if why := c.formed2(st, 7); why != "" {
			return why
		}
		return remoteOn("n3")(st)
	}); err != nil {
		c.fatalWithStatus(t, "remote drive not registered on n3: %v", err)
	}

	root := s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}
	if _, err := c.s3Client(0, root).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("hot")}); err != nil {
		t.Fatal(err)
	}
	ctlEnv := map[string]string{"VAULT_ENDPOINT": "http://" + c.nodes[1].s3, "VAULT_ROOT_ACCESS_KEY": c.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": c.root.SecretAccessKey}
	if err := run(ctx, []string{"container", "set-policy", "hot", "hybrid"}, func(k string) string { return ctlEnv[k] }, io.Discard, io.Discard); err != nil {
		t.Fatalf("container set-policy hot hybrid: %v", err)
	}
	var written []e2eArtifact
	var total int64
	for i := range c.nodes {
		arts := newArtifacts(fmt.Sprintf("via-n%d/", i+1), 14)
		putAll(t, c.s3Client(i, root), "hot", arts)
		written = append(written, arts...)
		for _, a := range arts {
			total += int64(a.size)
		}
	}
	for i := range c.nodes {
		checkAll(t, c.s3Client(i, root), "hot", written)
	}
	// Hybrid over 3 nodes and one remote drive is 3+1: the parity shard,
	// a third of the data's size, is in the bucket.
	inBucket := func() (int64, int) { return remoteShardBytes(t, mc, "cold", "drive/") }
	if b, n := inBucket(); b < total/4 {
		t.Errorf("remote bucket holds %d bytes in %d objects; want the parity of %d bytes written (at least %d)", b, n, total, total/4)
	} else {
		t.Logf("remote bucket: %d bytes in %d objects for %d bytes written", b, n, total)
	}
	if v := remoteMetric(t, c.root, c.nodes[2], `vaultaire_remote_requests_total{drive="remote-cold",method="PUT"}`); v < 1 {
		t.Errorf("n3's remote PUTs: %v, want some", v)
	}

	// The declaring node is lost; a new node with the same --remote adopts
	// the drive.
	n3.kill(t)
	if _, err := waitStatus(t, c, 0, 60*time.Second, func(st cluster.Status) string {
		for _, mb := range st.Members {
			if mb.Name == "n3" && (mb.State == "dead" || mb.State == "left") {
				return ""
			}
		}
		return "n3 not dead in n1's gossip yet"
	}); err != nil {
		t.Fatal(err)
	}
	addrs, gossip := testnet.Addrs(t, 3, false), testnet.Addrs(t, 1, true)
	dir := t.TempDir()
	n4 := &e2eNode{name: "n4", s3: addrs[0], raft: addrs[1], rpc: addrs[2], gossip: gossip[0], join: c.nodes[0].gossip,
		dirs: []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}, bin: n3.bin, env: n3.env,
		extra: append([]string{"--heal-interval", "1s"}, remoteFlag...)}
	c.nodes = append(c.nodes, n4) // killed and logged at cleanup with the others
	adoptStart := time.Now()
	n4.start(t)
	n4.waitHealthy(t, 90*time.Second)
	t.Logf("n4 serving %v after its start", time.Since(adoptStart).Round(time.Millisecond))
	live := []int{0, 1, 3}
	for _, i := range live {
		if _, err := waitStatus(t, c, i, 60*time.Second, remoteOn("n4")); err != nil {
			t.Fatalf("%s: %v", c.nodes[i].name, err)
		}
	}
	t.Logf("the remote drive on n4 and answering %v after its start (the fence wait included)", time.Since(adoptStart).Round(time.Millisecond))
	if !strings.Contains(n4.stderr.String(), "remote drive adopted") {
		t.Errorf("n4's log does not show the adoption")
	}
	for _, i := range live {
		checkAll(t, c.s3Client(i, root), "hot", written)
	}
	before, _ := inBucket()
	more := newArtifacts("after-adoption/", 7)
	putAll(t, c.s3Client(1, root), "hot", more)
	written = append(written, more...)
	for _, i := range live {
		checkAll(t, c.s3Client(i, root), "hot", written)
	}
	if after, _ := inBucket(); after <= before {
		t.Errorf("writes after the adoption did not reach the remote bucket: %d bytes before, %d after", before, after)
	}
	if v := remoteMetric(t, c.root, n4, `vaultaire_remote_requests_total{drive="remote-cold",method="PUT"}`); v < 1 {
		t.Errorf("n4's remote PUTs: %v, want some", v)
	}

	// The deposed owner restarted with its --remote does not take the
	// drive from the live n4: it becomes a standby, which never writes.
	n3.start(t)
	n3.waitHealthy(t, 90*time.Second)
	if _, err := retry(ctx, 30*time.Second, func(context.Context) error {
		if !strings.Contains(n3.stderr.String(), "this node is a standby") {
			return errors.New("its log does not say it is a standby")
		}
		return nil
	}); err != nil {
		t.Errorf("n3 restarted with --remote cold while n4 owns the drive: %v\n%s", err, tail(n3.stderr.String(), 4<<10))
	}
	if _, err := waitStatus(t, c, 2, 60*time.Second, remoteOn("n4")); err != nil {
		t.Fatalf("n3: %v", err)
	}
	if v := remoteMetric(t, c.root, n3, `vaultaire_remote_requests_total{drive="remote-cold",method="PUT"}`); v != 0 {
		t.Errorf("the standby n3 sent %v PUTs to the bucket, want none", v)
	}

	// Forced, n3 takes the drive back from the live n4, which is fenced
	// through Raft: it reports the drive offline and sends the bucket
	// nothing more, while writes through it reach the drive through n3.
	n3.kill(t)
	n3.extra = append(n3.extra, "--remote-adopt-force")
	n3.start(t)
	n3.waitHealthy(t, 90*time.Second)
	live = []int{0, 1, 2, 3}
	for _, i := range live {
		if _, err := waitStatus(t, c, i, 60*time.Second, remoteOn("n3")); err != nil {
			t.Fatalf("%s: %v", c.nodes[i].name, err)
		}
	}
	putsN4 := remoteMetric(t, c.root, n4, `vaultaire_remote_requests_total{drive="remote-cold",method="PUT"}`)
	before, _ = inBucket()
	more = newArtifacts("after-forced/", 7)
	putAll(t, c.s3Client(3, root), "hot", more)
	written = append(written, more...)
	for _, i := range live {
		checkAll(t, c.s3Client(i, root), "hot", written)
	}
	if after, _ := inBucket(); after <= before {
		t.Errorf("writes through n4 after the forced adoption did not reach the remote bucket: %d bytes before, %d after", before, after)
	}
	if v := remoteMetric(t, c.root, n4, `vaultaire_remote_requests_total{drive="remote-cold",method="PUT"}`); v != putsN4 {
		t.Errorf("the deposed n4 sent %v PUTs to the bucket after it lost the drive, want none", v-putsN4)
	}
	if v := remoteMetric(t, c.root, n4, `vaultaire_remote_online{drive="remote-cold"}`); v != 0 {
		t.Errorf("the deposed n4 reports its remote drive online (%v), want 0 (fenced)", v)
	}
	if v := remoteMetric(t, c.root, n3, `vaultaire_remote_requests_total{drive="remote-cold",method="PUT"}`); v < 1 {
		t.Errorf("n3's remote PUTs after taking the drive back: %v, want some", v)
	}
	for _, n := range c.nodes {
		for _, out := range []string{n.stdout.String(), n.stderr.String()} {
			if strings.Contains(out, m.sk) {
				t.Errorf("%s: the remote secret key appears in the output", n.name)
			}
		}
	}
}

// formed2 is formed with drives drives in the map instead of two per node.
func (c *e2eCluster) formed2(st cluster.Status, drives int) string {
	if why := c.membersReady(st); why != "" {
		return why
	}
	voters := 0
	for _, s := range st.Servers {
		if s.Suffrage == "voter" {
			voters++
		}
	}
	switch {
	case voters != len(c.nodes):
		return fmt.Sprintf("%d Raft voters, want %d", voters, len(c.nodes))
	case st.Leader == "":
		return "no leader known"
	case st.Map.Drives != drives:
		return fmt.Sprintf("map over %d drives, want %d", st.Map.Drives, drives)
	}
	return ""
}

// remoteMetric returns a series of node n's metrics (0 if absent).
func remoteMetric(t *testing.T, root aws.Credentials, n *e2eNode, series string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := metricsGet(ctx, "http://"+n.s3+"/_vault/metrics", root)
	if err != nil {
		t.Fatalf("%s metrics: %v", n.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s metrics: status %d", n.name, resp.StatusCode)
	}
	b, _ := io.ReadAll(resp.Body)
	v, _ := metricValue(string(b), series)
	return v
}

// remoteShardBytes sums the sizes of the record log and shard objects a
// remote drive keeps under prefix of bucket (its log/ and obj/ objects),
// and counts them.
func remoteShardBytes(t *testing.T, mc *awss3.Client, bucket, prefix string) (bytes int64, objects int) {
	t.Helper()
	p := awss3.NewListObjectsV2Paginator(mc, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		out, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("list the remote bucket: %v", err)
		}
		for _, o := range out.Contents {
			if k := aws.ToString(o.Key); strings.HasPrefix(k, prefix+"log/") || strings.HasPrefix(k, prefix+"obj/") {
				bytes += aws.ToInt64(o.Size)
				objects++
			}
		}
	}
	return bytes, objects
}
