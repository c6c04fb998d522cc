package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/s3"
)

// TestRelayoutMinIO: a single node with 4 local drives and 2 remote
// drives (two buckets of one real MinIO). A local container holding
// artifacts (plain, inline, empty, multipart-completed, two versions of a
// versioned key) gets `vaultd container set-policy hybrid`, which was
// refused with BucketNotEmpty: it is refused only while an upload is in
// progress, then committed at once, and the leader's re-layout walk,
// shown by `vaultd container list`, moves every version into the hybrid
// layout: the remote drives then hold the parity (their used bytes grow
// by half the data, 4+2), every version reads back byte-identical, also
// with the MinIO killed (the data shards are local), and the moves are
// counted in the metrics and the transaction log. Back to local, the walk
// empties the remote drives of the container again.
func TestRelayoutMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO and a server")
	}
	m, _, env, local := coldMinIO(t)
	ctx := t.Context()
	// At 2 MiB/s the walk to hybrid takes seconds: the node is restarted
	// part way through it.
	args := func(rate string) []string {
		return []string{"--data", strings.Join(local, ","), "--relayout-interval", "200ms", "--relayout-rate", rate,
			"--remote", "cold1=" + m.endpoint + "/cold1?region=us-east-1",
			"--remote", "cold2=" + m.endpoint + "/cold2?region=us-east-1"}
	}
	n, err := startRemoteNode(t, args("2MiB"), env)
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://" + n.s3Addr
	cl := remoteTestClient(ep, policyRoot["VAULT_ROOT_ACCESS_KEY"], policyRoot["VAULT_ROOT_SECRET_KEY"])
	const bucket = "data"
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	metrics := func() string { return rootMetrics(t, ep) }
	// remoteUsed sums the used bytes of the remote drives.
	remoteUsed := func() float64 {
		t.Helper()
		var sum float64
		found := 0
		for line := range strings.SplitSeq(metrics(), "\n") {
			if strings.HasPrefix(line, "vaultaire_drive_used_bytes{") && strings.Contains(line, `drive="remote-`) {
				f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
				if err != nil {
					t.Fatalf("metrics line %q: %v", line, err)
				}
				sum += f
				found++
			}
		}
		if found != 2 {
			t.Fatalf("%d remote drives in vaultaire_drive_used_bytes, want 2", found)
		}
		return sum
	}
	baseline := remoteUsed()

	type version struct{ key, vid string }
	bodies := map[version][]byte{}
	var total int64
	for i, size := range []int{0, 1000, 100 << 10, 300 << 10, 3<<20 + 7, 9 << 20} {
		key := fmt.Sprintf("art-%d", i)
		body := bytes.Repeat([]byte{byte(i + 1), byte(i * 7), 3, 250, byte(i)}, size/5+1)[:size]
		if _, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("PUT %s: %v", key, err)
		}
		bodies[version{key, ""}] = body
		total += int64(size)
	}
	mp := bytes.Repeat([]byte("multipart relayout "), (5<<20+1000)/19+1)[:5<<20+1000]
	cu, err := cl.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("mp")})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, p := range [][]byte{mp[:5<<20], mp[5<<20:]} {
		up, err := cl.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String("mp"), UploadId: cu.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	// An upload in progress blocks the change of layout.
	if _, err := vaultctl(ctx, ep, "container", "set-policy", bucket, "hybrid"); err == nil || !strings.Contains(err.Error(), "BucketNotEmpty") {
		t.Errorf("set-policy hybrid with an upload in progress: %v, want BucketNotEmpty", err)
	}
	if _, err := cl.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("mp"), UploadId: cu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	bodies[version{"mp", ""}] = mp
	total += int64(len(mp))
	if _, err := cl.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	for i, size := range []int{700 << 10, 200 << 10} {
		body := bytes.Repeat([]byte{byte(100 + i), 9, 8}, size/3+1)[:size]
		out, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("ver"), Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		bodies[version{"ver", aws.ToString(out.VersionId)}] = body
		total += int64(size)
	}
	bodies[version{"ver", ""}] = bodies[version{"ver", func() string {
		for v := range bodies {
			if v.key == "ver" && v.vid != "" && len(bodies[v]) == 200<<10 {
				return v.vid
			}
		}
		return ""
	}()}]

	check := func(when string) {
		t.Helper()
		for v, want := range bodies {
			in := &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(v.key)}
			if v.vid != "" {
				in.VersionId = aws.String(v.vid)
			}
			out, err := cl.GetObject(ctx, in)
			if err != nil {
				t.Errorf("%s: GET %s %s: %v", when, v.key, v.vid, err)
				continue
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: GET %s %s: %d bytes (want %d), %v", when, v.key, v.vid, len(got), len(want), err)
			}
		}
	}
	// status returns the container's re-layout from `vaultd container
	// list --json`, checking the policy.
	status := func(policy string) (s3.RelayoutStatus, string) {
		t.Helper()
		out, err := vaultctl(ctx, ep, "container", "list", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var cs []s3.ContainerStatus
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			t.Fatalf("container list --json: %v: %q", err, out)
		}
		for _, c := range cs {
			if c.Name != bucket {
				continue
			}
			if c.Policy != policy || c.Relayout == nil || c.Relayout.Layout != policy {
				t.Fatalf("container list: %+v %+v, want policy %s and its re-layout", c, c.Relayout, policy)
			}
			return *c.Relayout, out
		}
		t.Fatalf("container list: no %s: %s", bucket, out)
		return s3.RelayoutStatus{}, out
	}
	setPolicy := func(policy string) {
		t.Helper()
		if _, err := vaultctl(ctx, ep, "container", "set-policy", bucket, policy); err != nil {
			t.Fatalf("set-policy %s on a container holding artifacts: %v", policy, err)
		}
		check("right after set-policy " + policy)
	}
	waitDone := func(policy string) s3.RelayoutStatus {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			st, out := status(policy)
			if st.Done {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("the re-layout to %s is not done after 3 min:\n%s", policy, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	versions := len(bodies) - 1 // "ver" is there twice: newest, and by its version id

	// To hybrid, the node restarted part way: once the walk committed
	// some moves and has versions left, the node stops and starts again
	// (faster), and the walk goes on from the committed cursor.
	setPolicy("hybrid")
	var before s3.RelayoutStatus
	for deadline := time.Now().Add(time.Minute); ; {
		st, out := status("hybrid")
		if st.Done {
			t.Fatalf("the re-layout to hybrid was done before the restart: slow it down:\n%s", out)
		}
		if st.Counted && st.Moved > 0 && st.ArtifactsLeft >= 2 {
			before = st
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress of the re-layout to hybrid after 1 min:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if n, err = startRemoteNode(t, args("64MiB"), env); err != nil {
		t.Fatal(err)
	}
	ep = "http://" + n.s3Addr
	cl = remoteTestClient(ep, policyRoot["VAULT_ROOT_ACCESS_KEY"], policyRoot["VAULT_ROOT_SECRET_KEY"])
	st := waitDone("hybrid")
	after, _ := metricValue(metrics(), "vaultaire_relayout_moved_total")
	// The moves committed before the restart and those after it are
	// every version, but for those of the batch the stop cut (moved, not
	// committed: the walk finds them in place).
	if st.ArtifactsLeft != 0 || st.BytesLeft != 0 || st.Moved > versions || after < 1 || st.Moved-int(after) < before.Moved {
		t.Errorf("re-layout to hybrid: %+v; %d moved before the restart, %v after; want %d versions in all, some after the restart", st, before.Moved, after, versions)
	}
	if out, err := vaultctl(ctx, ep, "container", "list"); err != nil || !strings.Contains(out, "hybrid: done") {
		t.Errorf("container list: %v\n%s", err, out)
	}
	// 4+2: the parity on the remote drives is half the data (and the
	// inline artifacts' records).
	if used := remoteUsed() - baseline; used < 0.45*float64(total) {
		t.Errorf("after the re-layout to hybrid the remote drives hold %v bytes more, want at least half of %d", used, total)
	}
	check("after the re-layout to hybrid")
	m.kill()
	check("hybrid with the MinIO killed")
	m.start()
	var txn []byte
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		txn, _ = os.ReadFile(filepath.Join(local[0], "events", "txn.log"))
		if bytes.Count(txn, []byte(`"operation":"RelayoutArtifact"`)) >= st.Moved {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := bytes.Count(txn, []byte(`"operation":"RelayoutArtifact","bucket":"data"`)); got < st.Moved || got > versions {
		t.Errorf("transaction log has %d RelayoutArtifact lines, want %d to %d:\n%s", got, st.Moved, versions, txn)
	}

	// Back to local: the remote drives hold nothing of the container.
	setPolicy("local")
	st = waitDone("local")
	if st.Moved != versions || st.MovedBytes != total {
		t.Errorf("re-layout to local: %+v, want %d versions of %d bytes moved", st, versions, total)
	}
	exp := metrics()
	if v, _ := metricValue(exp, "vaultaire_relayout_moved_total"); v != after+float64(versions) {
		t.Errorf("vaultaire_relayout_moved_total = %v, want %v", v, after+float64(versions))
	}
	if v, _ := metricValue(exp, "vaultaire_relayout_moved_bytes_total"); v < float64(total) {
		t.Errorf("vaultaire_relayout_moved_bytes_total = %v, want at least %d", v, total)
	}
	if used := remoteUsed(); used != baseline {
		t.Errorf("after the re-layout back to local the remote drives use %v bytes, %v before the container had any", used, baseline)
	}
	check("after the re-layout back to local")
}

// TestClusterRelayout: a 3-node cluster with one remote drive (a real
// MinIO bucket, declared on n3). A container holding artifacts written
// through every node is set to hybrid through a follower's admin API; the
// Raft leader alone walks it (the nodes' moved counters sum to the
// artifacts, on one node), every node's `container list` shows it done,
// the parity (3+1: a third of the data) is then in the bucket, and every
// artifact reads back byte-identical through every node.
func TestClusterRelayout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO and a 3-node cluster")
	}
	c := prepareCluster(t, 3)
	m := startMinIO(t)
	ctx := t.Context()
	mc := remoteTestClient(m.endpoint, m.ak, m.sk)
	if _, err := mc.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("cold")}); err != nil {
		t.Fatal(err)
	}
	n3 := c.nodes[2]
	n3.env = append(n3.env[:len(n3.env):len(n3.env)], "VAULT_REMOTE_COLD_ACCESS_KEY="+m.ak, "VAULT_REMOTE_COLD_SECRET_KEY="+m.sk)
	n3.extra = []string{"--remote", "cold=" + m.endpoint + "/cold/drive?timeout=5s"}
	for _, n := range c.nodes {
		n.extra = append(n.extra, "--relayout-interval", "300ms")
		n.start(t)
	}
	for _, n := range c.nodes {
		n.waitHealthy(t, 60*time.Second)
	}
	st, err := c.waitView(t, 60*time.Second, func(st cluster.Status) string { return c.formed2(st, 7) })
	if err != nil {
		c.fatalWithStatus(t, "cluster with the remote drive not formed: %v", err)
	}
	root := s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}
	if _, err := c.s3Client(0, root).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("data")}); err != nil {
		t.Fatal(err)
	}
	var written []e2eArtifact
	var total int64
	for i := range c.nodes {
		arts := newArtifacts(fmt.Sprintf("via-n%d/", i+1), 7)
		putAll(t, c.s3Client(i, root), "data", arts)
		written = append(written, arts...)
		for _, a := range arts {
			total += int64(a.size)
		}
	}
	inBucket := func() int64 {
		n, _ := remoteShardBytes(t, mc, "cold", "drive/")
		return n
	}
	before := inBucket()
	// The migrator moves what older maps' drives hold into the
	// container's layout too: wait until it dropped the maps of the
	// cluster's forming, so the walk alone moves the artifacts.
	if st, err = c.waitView(t, 2*time.Minute, func(st cluster.Status) string {
		if len(st.Map.Older) > 0 {
			return fmt.Sprintf("older map epochs %v kept", st.Map.Older)
		}
		return c.formed2(st, 7)
	}); err != nil {
		c.fatalWithStatus(t, "older maps not dropped: %v", err)
	}

	// Through a follower.
	follower := slices.IndexFunc(c.nodes, func(n *e2eNode) bool { return n.name != st.Leader })
	ctlEnv := map[string]string{"VAULT_ENDPOINT": "http://" + c.nodes[follower].s3, "VAULT_ROOT_ACCESS_KEY": c.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": c.root.SecretAccessKey}
	if err := run(ctx, []string{"container", "set-policy", "data", "hybrid"}, func(k string) string { return ctlEnv[k] }, io.Discard, io.Discard); err != nil {
		t.Fatalf("container set-policy data hybrid on a container holding artifacts: %v", err)
	}
	checkAll(t, c.s3Client(follower, root), "data", written)
	var done s3.RelayoutStatus
	for i, n := range c.nodes {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			var cs []s3.ContainerStatus
			if err := c.admin(i).do(ctx, http.MethodGet, "/_vault/admin/containers", &cs); err != nil {
				t.Fatalf("%s: container list: %v", n.name, err)
			}
			i := slices.IndexFunc(cs, func(c s3.ContainerStatus) bool { return c.Name == "data" })
			if i >= 0 && cs[i].Relayout != nil && cs[i].Relayout.Done {
				if r := cs[i].Relayout; r.Layout != "hybrid" || r.Moved != len(written) || r.MovedBytes != total || r.ArtifactsLeft != 0 {
					t.Errorf("%s: container list: re-layout %+v, want %d artifacts of %d bytes moved to hybrid, none left", n.name, r, len(written), total)
				}
				done = *cs[i].Relayout
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: re-layout not done after 3 min: %+v", n.name, cs)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	var sum float64
	movers := 0
	for _, n := range c.nodes {
		if v := remoteMetric(t, c.root, n, "vaultaire_relayout_moved_total"); v > 0 {
			sum += v
			movers++
		}
	}
	if sum != float64(len(written)) || movers != 1 {
		t.Errorf("vaultaire_relayout_moved_total: %v on %d nodes, want %d on the leader alone", sum, movers, len(written))
	}
	// 3+1: the parity is a third of the data (and block checksums).
	if got := inBucket() - before; got < total*3/10 {
		t.Errorf("after the re-layout the remote bucket holds %d bytes more, want the parity of %d bytes (at least %d)", got, total, total*3/10)
	} else {
		t.Logf("remote bucket: %d bytes more for %d bytes of artifacts; the walk moved %d of %d", got, total, done.Moved, len(written))
	}
	for i := range c.nodes {
		checkAll(t, c.s3Client(i, root), "data", written)
	}
}

// coldMinIO starts a MinIO with the buckets cold1 and cold2, and returns
// it, a client of it, the environment of a node whose --remote drives
// cold1 and cold2 are those buckets (with policyRoot's keys), and four
// local drive directories.
func coldMinIO(t *testing.T) (m *minioServer, bc *awss3.Client, env map[string]string, local []string) {
	t.Helper()
	m = startMinIO(t)
	bc = remoteTestClient(m.endpoint, m.ak, m.sk)
	for _, b := range []string{"cold1", "cold2"} {
		if _, err := bc.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	env = map[string]string{
		"VAULT_REMOTE_COLD1_ACCESS_KEY": m.ak, "VAULT_REMOTE_COLD1_SECRET_KEY": m.sk,
		"VAULT_REMOTE_COLD2_ACCESS_KEY": m.ak, "VAULT_REMOTE_COLD2_SECRET_KEY": m.sk,
	}
	maps.Copy(env, policyRoot)
	dir := t.TempDir()
	return m, bc, env, []string{dir + "/a", dir + "/b", dir + "/c", dir + "/d"}
}
