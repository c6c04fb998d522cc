package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/driver/faulty"
	"github.com/vaultaire/vaultaire/s3"
)

// remoteCluster is a 3-node cluster of two local drives per node in which
// every node is started with the same two --remote drives (two prefixes
// of one MinIO bucket, "cold"): n1, started first, owns them; n2 and n3
// are standbys. A hybrid container "hot" is 4+2 there, both parity
// shards on the remote drives.
type remoteCluster struct {
	*e2eCluster
	m          *minioServer
	mc         *awss3.Client
	rootTenant s3.NewTenant
}

// remoteDriveNames are the remote drives of a remoteCluster.
var remoteDriveNames = []string{"colda", "coldb"}

func startRemoteCluster(t *testing.T) *remoteCluster {
	t.Helper()
	rc := startRemoteNodes(t)
	c, ctx := rc.e2eCluster, t.Context()
	for _, n := range c.nodes[1:] {
		// Remote drives are claimed while the node serves: the standby
		// line may follow the banner.
		if _, err := retry(ctx, 30*time.Second, func(context.Context) error {
			if !strings.Contains(n.stderr.String(), "this node is a standby") {
				return errors.New("its log does not say it is a standby")
			}
			return nil
		}); err != nil {
			t.Fatalf("%s started with the remote drives n1 owns: %v", n.name, err)
		}
	}
	if _, err := c.s3Client(0, rc.rootTenant).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("hot")}); err != nil {
		t.Fatal(err)
	}
	ctlEnv := map[string]string{"VAULT_ENDPOINT": "http://" + c.nodes[1].s3, "VAULT_ROOT_ACCESS_KEY": c.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": c.root.SecretAccessKey}
	if err := run(ctx, []string{"container", "set-policy", "hot", "hybrid"}, func(k string) string { return ctlEnv[k] }, io.Discard, io.Discard); err != nil {
		t.Fatalf("container set-policy hot hybrid: %v", err)
	}
	return rc
}

// remotesOn checks that every remote drive is in the map, attached to
// node, and answers.
func remotesOn(node string) func(cluster.Status) string {
	return func(st cluster.Status) string {
		for _, name := range remoteDriveNames {
			id := string(remoteDriveID(name))
			found := false
			for _, d := range st.Drives {
				if d.ID != id {
					continue
				}
				found = true
				switch {
				case d.Node != node || d.Class != "remote":
					return fmt.Sprintf("%s: node %s class %s, want %s remote", id, d.Node, d.Class, node)
				case d.State != "ok":
					return fmt.Sprintf("%s on %s: %s %s", id, d.Node, d.State, d.Error)
				}
			}
			if !found {
				return "no " + id + " in the map"
			}
		}
		return ""
	}
}

// bucketObjects returns the keys and sizes of the objects under the
// remote drives' prefixes.
func (rc *remoteCluster) bucketObjects(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	p := awss3.NewListObjectsV2Paginator(rc.mc, &awss3.ListObjectsV2Input{Bucket: aws.String("cold")})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("list the remote bucket: %v", err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
		}
	}
	return out
}

// waitDown waits until gossip on node i reports node name not alive.
func (rc *remoteCluster) waitDown(t *testing.T, i int, name string) {
	t.Helper()
	if _, err := waitStatus(t, rc.e2eCluster, i, 60*time.Second, func(st cluster.Status) string {
		for _, mb := range st.Members {
			if mb.Name == name && mb.State != "alive" {
				return ""
			}
		}
		return name + " still alive in " + rc.nodes[i].name + "'s gossip"
	}); err != nil {
		t.Fatal(err)
	}
}

// checkThrough reads every artifact back through node i, waiting up to a
// minute for the first to succeed (a Raft election after a kill).
func (rc *remoteCluster) checkThrough(t *testing.T, i int, arts []e2eArtifact) {
	t.Helper()
	cl := rc.s3Client(i, rc.rootTenant)
	if _, err := retry(t.Context(), 60*time.Second, func(ctx context.Context) error { return arts[0].check(ctx, cl, "hot") }); err != nil {
		t.Fatalf("through %s: %v", rc.nodes[i].name, err)
	}
	checkAll(t, cl, "hot", arts)
}

// TestClusterRemoteOwnerLost (issue 13, criterion 2): a 3-node cluster
// with one remote backend holding two remote drives, both owned by n1 and
// declared on every node; a hybrid container is 4+2 with both parity
// shards on the remote. Small and striped artifacts read back
// byte-identical after losing a non-owner node's two drives (n3, SIGKILL),
// and after losing the owner node n1 (SIGKILL), whose two local drives and
// whose remote drives go with it: n2 and n3 read the remote shards from
// the bucket directly (read-only standbys), and the bucket is not written
// while they do.
func TestClusterRemoteOwnerLost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster and a MinIO")
	}
	began := time.Now()
	defer func() { t.Logf("TestClusterRemoteOwnerLost took %v", time.Since(began).Round(time.Millisecond)) }()
	rc := startRemoteCluster(t)
	arts := newArtifacts("small/", 14)
	arts = append(arts, newArtifact("large/9m", 9<<20), newArtifact("large/5m", 5<<20+12345))
	putAll(t, rc.s3Client(1, rc.rootTenant), "hot", arts)
	for i := range rc.nodes {
		checkAll(t, rc.s3Client(i, rc.rootTenant), "hot", arts)
	}
	for _, name := range remoteDriveNames {
		n := 0
		for k := range rc.bucketObjects(t) {
			if strings.HasPrefix(k, name+"/log/") || strings.HasPrefix(k, name+"/obj/") {
				n++
			}
		}
		if n == 0 {
			t.Fatalf("no shard data under cold/%s/: the hybrid container's parity is not on the remote", name)
		}
	}

	// A non-owner node's two drives lost: the remote drives are read
	// through their owner.
	n1, n3 := rc.nodes[0], rc.nodes[2]
	n3.kill(t)
	rc.waitDown(t, 0, "n3")
	for _, i := range []int{0, 1} {
		rc.checkThrough(t, i, arts)
	}
	n3.start(t)
	n3.waitHealthy(t, 90*time.Second)
	if _, err := rc.waitView(t, 60*time.Second, func(st cluster.Status) string {
		if why := rc.membersReady(st); why != "" {
			return why
		}
		return remotesOn("n1")(st)
	}); err != nil {
		rc.fatalWithStatus(t, "n3 back: %v", err)
	}

	// The owner lost: two local drives of every stripe at most, and the
	// only node that can write the remote drives. The standbys read them.
	before := rc.bucketObjects(t)
	n1.kill(t)
	rc.waitDown(t, 1, "n1")
	rc.waitDown(t, 2, "n1")
	for _, i := range []int{1, 2} {
		rc.checkThrough(t, i, arts)
	}
	standby := 0
	for _, n := range rc.nodes[1:] {
		if strings.Contains(n.stderr.String(), "reading its bucket directly") {
			standby++
		}
	}
	if standby == 0 {
		t.Errorf("neither n2 nor n3 read the remote drives from the bucket, yet every artifact read back")
	}
	// The standbys' requests to the bucket are counted under the drives:
	// reads and listings, never a write.
	var reads float64
	for _, n := range rc.nodes[1:] {
		for _, name := range remoteDriveNames {
			for _, method := range []string{"GET", "LIST", "PUT", "POST", "DELETE"} {
				v := remoteMetric(t, rc.root, n, fmt.Sprintf(`vaultaire_remote_requests_total{drive="%s",method="%s"}`, remoteDriveID(name), method))
				switch method {
				case "GET", "LIST":
					reads += v
				default:
					if v != 0 {
						t.Errorf("standby %s sent %v %s requests to drive %s, want none", n.name, v, method, name)
					}
				}
			}
		}
	}
	if reads == 0 {
		t.Errorf("the standbys' metrics count no GET or LIST request of the remote drives")
	}
	if after := rc.bucketObjects(t); !maps.Equal(before, after) {
		t.Errorf("the bucket changed while its owner was down (%d objects before, %d after): a standby wrote to it", len(before), len(after))
	}

	// n2 restarted with the remote drives while their owner n1 is dead
	// adopts both. It serves S3 meanwhile, and the two fence waits overlap
	// (session 11's probe: claims ran one after the other before the node
	// served, about 45 s per drive at defaults).
	n2 := rc.nodes[1]
	n2.kill(t)
	mark := n2.stderr.Len()
	n2.start(t)
	n2.waitHealthy(t, 90*time.Second)
	served := time.Now()
	rc.checkThrough(t, 1, arts)
	var adopted, opened []time.Time
	if _, err := retry(t.Context(), 90*time.Second, func(context.Context) error {
		log := n2.stderr.String()[mark:]
		adopted, opened = logTimes(t, log, "remote drive adopted; waiting"), logTimes(t, log, "opened after its adoption")
		if len(opened) < len(remoteDriveNames) {
			return fmt.Errorf("%d of %d remote drives opened after adoption", len(opened), len(remoteDriveNames))
		}
		return nil
	}); err != nil {
		t.Fatalf("n2: %v\n%s", err, tail(n2.stderr.String()[mark:], 8<<10))
	}
	if !served.Before(opened[0]) {
		t.Errorf("n2 served S3 at %v, after its first adopted drive opened (%v): the claims held up serving", served.Format(time.StampMilli), opened[0].Format(time.StampMilli))
	}
	if len(adopted) != len(remoteDriveNames) || adopted[len(adopted)-1].After(opened[0]) {
		t.Errorf("n2 adopted its drives at %v and opened them at %v: the adoptions did not wait together", adopted, opened)
	}
	if _, err := waitStatus(t, rc.e2eCluster, 2, 60*time.Second, remotesOn("n2")); err != nil {
		rc.fatalWithStatus(t, "n3's view after n2 adopted the remote drives: %v", err)
	}
	more := newArtifacts("after-adoption/", 5)
	putAll(t, rc.s3Client(2, rc.rootTenant), "hot", more)
	rc.checkThrough(t, 1, append(arts, more...))
	if after := rc.bucketObjects(t); len(after) <= len(before) {
		t.Errorf("writes after n2 adopted the remote drives did not reach the bucket (%d objects before, %d after)", len(before), len(after))
	}

	// n2 restarted after its adoption (n1 still dead): the adoption may be
	// recent, so it waits the previous owner's fence out again rather
	// than opening the drives at once, and reads the bucket meanwhile:
	// every artifact, whose stripes need the remote parity with n1's
	// drives gone, reads back through n2 and n3 during the wait (session
	// 13's probes: it opened at once, with formatting allowed; and during
	// a fence wait nobody read the drives, since the map names a live node).
	all := append(arts, more...)
	n2.kill(t)
	mark = n2.stderr.Len()
	restarted := time.Now()
	n2.start(t)
	n2.waitHealthy(t, 90*time.Second)
	waitLog(t, n2, mark, "attached to this node by an adoption; waiting", len(remoteDriveNames), 30*time.Second)
	for _, i := range []int{1, 2} {
		checkAll(t, rc.s3Client(i, rc.rootTenant), "hot", all)
	}
	if early := logTimes(t, n2.stderr.String()[mark:], "opened after its adoption"); len(early) > 0 {
		t.Errorf("a drive opened at %v, before the reads during the fence wait ended: they proved nothing", early[0].Format(time.StampMilli))
	}
	opened = waitLog(t, n2, mark, "opened after its adoption", len(remoteDriveNames), 60*time.Second)
	fence := cluster.OwnerLease + 5*time.Second // the drives' ?timeout=5s
	for _, at := range opened {
		if d := at.Sub(restarted); d < fence {
			t.Errorf("n2 restarted after its adoption opened a drive %v after its start, within the previous owner's fence (%v)", d.Round(time.Millisecond), fence)
		}
	}
	again := newArtifacts("after-restart/", 3)
	putAll(t, rc.s3Client(1, rc.rootTenant), "hot", again)
	rc.checkThrough(t, 2, append(all, again...))
}

// waitLog waits up to limit for n lines containing substr in node's log
// after byte mark, and returns their times; it fails the test with the
// log's tail if they do not come.
func waitLog(t *testing.T, node *e2eNode, mark int, substr string, n int, limit time.Duration) []time.Time {
	t.Helper()
	var at []time.Time
	if _, err := retry(t.Context(), limit, func(context.Context) error {
		if at = logTimes(t, node.stderr.String()[mark:], substr); len(at) < n {
			return fmt.Errorf("%d of %d log lines %q", len(at), n, substr)
		}
		return nil
	}); err != nil {
		t.Fatalf("%s: %v\n%s", node.name, err, tail(node.stderr.String()[mark:], 8<<10))
	}
	return at
}

// logTimes returns the time= of each line of a text log that contains
// substr, in order.
func logTimes(t *testing.T, log, substr string) []time.Time {
	t.Helper()
	var out []time.Time
	for line := range strings.Lines(log) {
		if !strings.Contains(line, substr) {
			continue
		}
		f, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, f)
		if err != nil {
			t.Fatalf("log line without a time: %q: %v", line, err)
		}
		out = append(out, at)
	}
	return out
}

// TestRemoteHealAfterOutage (issue 13, criterion 3): a hybrid container
// on one node (4 local drives, 2 remote drives in a real MinIO, 4+2, the
// parity on the remote) takes writes while the MinIO is down: each PUT
// succeeds at the local quorum or fails cleanly with 503, and what
// succeeded reads back. The node restarts during the outage. When the
// MinIO returns, the scanner and the healer fill the remote drives'
// missing shards and records: then, with two local drives offline, every
// artifact (written before and during the outage) reads back
// byte-identical, which needs both remote parity shards of every stripe.
func TestRemoteHealAfterOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node and a MinIO and waits for heal")
	}
	began := time.Now()
	defer func() { t.Logf("TestRemoteHealAfterOutage took %v", time.Since(began).Round(time.Millisecond)) }()
	m := startMinIO(t)
	ctx := t.Context()
	mc := remoteTestClient(m.endpoint, m.ak, m.sk)
	for _, b := range []string{"cold1", "cold2"} {
		if _, err := mc.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
		up := strings.ToUpper(b)
		t.Setenv("VAULT_REMOTE_"+up+"_ACCESS_KEY", m.ak)
		t.Setenv("VAULT_REMOTE_"+up+"_SECRET_KEY", m.sk)
	}
	n := newDiskNode(t, "--scan-interval", "2s", "--heal-interval", "300ms", "--probe-interval", "300ms",
		"--remote", "cold1="+m.endpoint+"/cold1?timeout=3s", "--remote", "cold2="+m.endpoint+"/cold2?timeout=3s")
	n.start(t)
	cl := n.client()
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("hot")}); err != nil {
		t.Fatal(err)
	}
	ctlEnv := map[string]string{"VAULT_ENDPOINT": "http://" + n.s3, "VAULT_ROOT_ACCESS_KEY": healRootKey, "VAULT_ROOT_SECRET_KEY": healRootSecret}
	if err := run(ctx, []string{"container", "set-policy", "hot", "hybrid"}, func(k string) string { return ctlEnv[k] }, io.Discard, io.Discard); err != nil {
		t.Fatalf("container set-policy hot hybrid: %v", err)
	}
	before := newArtifacts("before/", 7)
	putAll(t, cl, "hot", before)

	m.kill()
	var during []e2eArtifact
	for _, a := range append(newArtifacts("during/", 14), newArtifact("during/large", 6<<20+3)) {
		switch err := a.put(ctx, cl, "hot"); {
		case err == nil:
			during = append(during, a)
		case httpStatus(err) == 503:
			t.Logf("PUT %s while the remote is down: 503 (%s)", a.key, errorCode(err))
		default:
			t.Errorf("PUT %s while the remote is down: %v, want success or 503", a.key, err)
		}
	}
	if len(during) == 0 {
		t.Fatalf("no PUT succeeded while the remote was down: the local drives alone are a write quorum of a hybrid 4+2")
	}
	all := append(slices.Clone(before), during...)
	checkAll(t, cl, "hot", all)

	// The restart drops what the remote drives had queued for the
	// backend (driver/remote keeps a failed group commit's mutations
	// queued: with the node up, the records and small shards of the
	// writes above could land once the MinIO answers, and their heal
	// then finds nothing to repair; this test failed on that, counting
	// repairs, in sessions 18 to 26) and the heal queue (in memory): the
	// scanner must find every artifact written during the outage, and
	// each needs its remote records and shards rebuilt.
	n.stop(t)
	n.start(t)
	m.start()
	waitFor(t, 240*time.Second, func() string {
		if r := n.metric(t, "repairs_total", -1); r < float64(len(during)) {
			return fmt.Sprintf("repairs_total %v, want at least %d (the artifacts written during the outage); heal queue %v; log %s", r, len(during), n.metric(t, "heal_queue", -1), tail(n.healNode.stderr.String(), 3000))
		}
		if q := n.metric(t, "heal_queue", -1); q != 0 {
			return fmt.Sprintf("heal queue %v", q)
		}
		return ""
	})
	off := faulty.Plan{Rules: []faulty.Rule{{Op: faulty.OpAll, Fault: faulty.Offline}}}
	n.setFaults(t, map[string]faulty.Plan{"n1-d0": off, "n1-d1": off})
	checkAll(t, cl, "hot", all)
	n.setFaults(t, map[string]faulty.Plan{"n1-d2": off, "n1-d3": off})
	checkAll(t, cl, "hot", all)
}

// startRemoteNodes starts three nodes declaring the remote drives of one
// MinIO bucket, with extra flags on every node; n1 registers first and so
// owns them.
func startRemoteNodes(t *testing.T, extra ...string) *remoteCluster {
	t.Helper()
	c := prepareCluster(t, 3)
	m := startMinIO(t)
	ctx := t.Context()
	mc := remoteTestClient(m.endpoint, m.ak, m.sk)
	if _, err := mc.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("cold")}); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		n.env = n.env[:len(n.env):len(n.env)]
		for _, name := range remoteDriveNames {
			up := strings.ToUpper(name)
			n.env = append(n.env, "VAULT_REMOTE_"+up+"_ACCESS_KEY="+m.ak, "VAULT_REMOTE_"+up+"_SECRET_KEY="+m.sk)
			n.extra = append(n.extra, "--remote", name+"="+m.endpoint+"/cold/"+name+"?timeout=5s")
		}
		n.extra = append(n.extra, "--heal-interval", "1s")
		n.extra = append(n.extra, extra...)
	}
	c.nodes[0].start(t)
	c.nodes[0].waitHealthy(t, 60*time.Second)
	for _, n := range c.nodes[1:] {
		n.start(t)
	}
	for _, n := range c.nodes[1:] {
		n.waitHealthy(t, 90*time.Second)
	}
	if _, err := c.waitView(t, 60*time.Second, func(st cluster.Status) string {
		if why := c.formed2(st, 8); why != "" {
			return why
		}
		return remotesOn("n1")(st)
	}); err != nil {
		c.fatalWithStatus(t, "remote drives not registered on n1: %v", err)
	}
	return &remoteCluster{e2eCluster: c, m: m, mc: mc,
		rootTenant: s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}}
}

// TestClusterRemoteAdopterMistyped: with the owner n1 dead, n2 restarted
// with a mistyped URL for drive colda must not adopt it (session 13's
// probe: it adopted first and checked after, so colda sat in the map on
// a node that could not read it, and the standbys no longer read it:
// half of the artifacts failed through n3). It checks the bucket first,
// read-only, and leaves colda to n1, whose standbys keep reading it; it
// writes nothing under the mistyped prefix. Restarted with the right
// URL, it adopts colda too. Slow (a MinIO, two fence waits): run by
// `make remote-probes` (VAULT_PROBE=1).
func TestClusterRemoteAdopterMistyped(t *testing.T) {
	if os.Getenv("VAULT_PROBE") != "1" {
		t.Skip("a multi-process remote-drive probe: make remote-probes (VAULT_PROBE=1)")
	}
	rc := startRemoteCluster(t)
	arts := newArtifacts("small/", 14)
	arts = append(arts, newArtifact("large/9m", 9<<20), newArtifact("large/5m", 5<<20+12345))
	putAll(t, rc.s3Client(1, rc.rootTenant), "hot", arts)
	rc.nodes[0].kill(t)
	rc.waitDown(t, 1, "n1")
	rc.waitDown(t, 2, "n1")
	rc.checkThrough(t, 2, arts)

	n2 := rc.nodes[1]
	n2.kill(t)
	good := slices.Clone(n2.extra)
	n2.extra = slices.Clone(good)
	typoed := false
	for i, a := range n2.extra {
		if strings.HasPrefix(a, "colda=") {
			n2.extra[i] = strings.Replace(a, "/cold/colda?", "/cold/typo-colda?", 1)
			typoed = n2.extra[i] != a
		}
	}
	if !typoed {
		t.Fatalf("no colda URL to mistype in %q", n2.extra)
	}
	mark := n2.stderr.Len()
	n2.start(t)
	n2.waitHealthy(t, 90*time.Second)
	if _, err := retry(t.Context(), 60*time.Second, func(context.Context) error {
		log := n2.stderr.String()[mark:]
		switch {
		case !strings.Contains(log, "its bucket does not answer as this drive"):
			return errors.New("colda's bucket not refused yet")
		case len(logTimes(t, log, "opened after its adoption")) < 1:
			return errors.New("coldb not adopted and opened yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("n2 with a mistyped colda URL: %v\n%s", err, tail(n2.stderr.String()[mark:], 8<<10))
	}
	if _, err := waitStatus(t, rc.e2eCluster, 2, 30*time.Second, func(st cluster.Status) string {
		for _, d := range st.Drives {
			switch d.ID {
			case string(remoteDriveID("colda")):
				if d.Node != "n1" {
					return "colda attached to " + d.Node + ", want n1 (not adopted)"
				}
			case string(remoteDriveID("coldb")):
				if d.Node != "n2" {
					return "coldb attached to " + d.Node + ", want n2"
				}
			}
		}
		return ""
	}); err != nil {
		t.Fatal(err)
	}
	// n3's standby reads colda; n2's own view of it has the mistyped URL,
	// so reads through n2 that need colda fail until it is fixed.
	checkAll(t, rc.s3Client(2, rc.rootTenant), "hot", arts)
	for k := range rc.bucketObjects(t) {
		if strings.HasPrefix(k, "typo-colda/") {
			t.Errorf("n2 wrote %s under the mistyped prefix", k)
		}
	}

	n2.kill(t)
	n2.extra = good
	mark = n2.stderr.Len()
	n2.start(t)
	n2.waitHealthy(t, 90*time.Second)
	if _, err := waitStatus(t, rc.e2eCluster, 2, 90*time.Second, remotesOn("n2")); err != nil {
		rc.fatalWithStatus(t, "n2 restarted with the right URL: %v", err)
	}
	more := newArtifacts("after/", 4)
	putAll(t, rc.s3Client(2, rc.rootTenant), "hot", more)
	rc.checkThrough(t, 1, append(arts, more...))
}
