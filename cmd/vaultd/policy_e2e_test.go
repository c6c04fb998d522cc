package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/s3"
)

// policyRoot are the root credentials of the storage policy tests' nodes.
var policyRoot = map[string]string{"VAULT_ROOT_ACCESS_KEY": "POLICYROOTKEY", "VAULT_ROOT_SECRET_KEY": "policy-root-secret-1"}

// vaultctl runs a vaultd client command against endpoint with the root
// keys and returns its output.
func vaultctl(ctx context.Context, endpoint string, args ...string) (string, error) {
	env := map[string]string{"VAULT_ENDPOINT": endpoint}
	for k, v := range policyRoot {
		env[k] = v
	}
	var out, errb bytes.Buffer
	err := run(ctx, args, func(k string) string { return env[k] }, &out, &errb)
	if err != nil {
		return out.String(), fmt.Errorf("%v (stderr %q)", err, errb.String())
	}
	return out.String(), nil
}

// listPolicies returns "tenant/name" → policy from `vaultd container list --json`.
func listPolicies(t *testing.T, endpoint string) map[string]string {
	t.Helper()
	out, err := vaultctl(t.Context(), endpoint, "container", "list", "--json")
	if err != nil {
		t.Fatalf("container list: %v", err)
	}
	var cs []s3.ContainerStatus
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("container list --json: %v: %q", err, out)
	}
	got := map[string]string{}
	for _, c := range cs {
		got[c.Tenant+"/"+c.Name] = c.Policy
	}
	return got
}

// TestStoragePolicyWithoutRemotes: on a node without remote drives,
// `vaultd container set-policy` sets local, refuses hybrid and tier with
// a clear error, refuses unknown policies and containers, and `container
// list` shows each container's policy, for the root tenant and another.
func TestStoragePolicyWithoutRemotes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	dir := t.TempDir()
	n, err := startRemoteNode(t, []string{"--data", dir + "/a," + dir + "/b"}, policyRoot)
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://" + n.s3Addr
	ctx := t.Context()
	cl := remoteTestClient(ep, policyRoot["VAULT_ROOT_ACCESS_KEY"], policyRoot["VAULT_ROOT_SECRET_KEY"])
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("plain")}); err != nil {
		t.Fatal(err)
	}
	out, err := vaultctl(ctx, ep, "tenant", "create", "alice", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var alice s3.NewTenant
	if err := json.Unmarshal([]byte(out), &alice); err != nil {
		t.Fatal(err)
	}
	ac := remoteTestClient(ep, alice.AccessKey, alice.SecretKey)
	if _, err := ac.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("alices")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		wantErr string // "" for success
	}{
		{[]string{"plain", "local"}, ""},
		{[]string{"--tenant", "alice", "alices", "local"}, ""},
		{[]string{"plain", "hybrid"}, "need remote drives"},
		{[]string{"plain", "tier"}, "need remote drives"},
		{[]string{"--tenant", "alice", "alices", "hybrid"}, "need remote drives"},
		{[]string{"plain", "cold"}, "InvalidArgument"},
		{[]string{"nosuch", "local"}, "NoSuchBucket"},
		{[]string{"alices", "local"}, "NoSuchBucket"}, // root has no container alices
		{[]string{"plain"}, "want BUCKET POLICY"},
	} {
		_, err := vaultctl(ctx, ep, append([]string{"container", "set-policy"}, tc.args...)...)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("set-policy %v: %v", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("set-policy %v: %v, want an error with %q", tc.args, err, tc.wantErr)
		}
	}
	got := listPolicies(t, ep)
	want := map[string]string{"root/plain": "local", "alice/alices": "local"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("container list: %s has policy %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	table, err := vaultctl(ctx, ep, "container", "list")
	if err != nil || !strings.Contains(table, "POLICY") || !strings.Contains(table, "alices") {
		t.Errorf("container list: %v\n%s", err, table)
	}
	// The admin API refuses other tenants' keys.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/_vault/admin/containers", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous GET /_vault/admin/containers: %s, want 403", resp.Status)
	}
}

// remoteBucketKeys lists the object keys of a bucket of the remote server.
func remoteBucketKeys(t *testing.T, c *awss3.Client, bucket string) []string {
	t.Helper()
	out, err := c.ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// rootMetrics scrapes endpoint's /_vault/metrics signed with policyRoot's
// keys.
func rootMetrics(t *testing.T, endpoint string) string {
	t.Helper()
	resp, err := metricsGet(t.Context(), endpoint+"/_vault/metrics", aws.Credentials{AccessKeyID: policyRoot["VAULT_ROOT_ACCESS_KEY"], SecretAccessKey: policyRoot["VAULT_ROOT_SECRET_KEY"]})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exp, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(exp)
}

// remoteGets returns the GET requests each remote drive sent so far, from
// the node's metrics.
func remoteGets(t *testing.T, endpoint string, drives ...string) map[string]float64 {
	t.Helper()
	exp := rootMetrics(t, endpoint)
	out := map[string]float64{}
	for _, d := range drives {
		v, ok := metricValue(exp, `vaultaire_remote_requests_total{drive="`+d+`",method="GET"}`)
		if !ok {
			t.Fatalf("no GET counter of remote drive %s in the metrics", d)
		}
		out[d] = v
	}
	return out
}

// TestStoragePolicyHybridMinIO: a single node with 4 local drives and 2
// remote drives (two buckets of one real MinIO). A local container (the
// default) puts nothing on the remote drives; a hybrid container puts its
// parity shards there, reads its artifacts without a single GET to the
// remote while the local drives are healthy, and reads every artifact
// back byte-identical with the MinIO killed.
func TestStoragePolicyHybridMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO and a server")
	}
	m, bc, env, local := coldMinIO(t)
	ctx := t.Context()
	n, err := startRemoteNode(t, []string{"--data", strings.Join(local, ","),
		"--remote", "cold1=" + m.endpoint + "/cold1?region=us-east-1",
		"--remote", "cold2=" + m.endpoint + "/cold2?region=us-east-1"}, env)
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://" + n.s3Addr
	cl := remoteTestClient(ep, policyRoot["VAULT_ROOT_ACCESS_KEY"], policyRoot["VAULT_ROOT_SECRET_KEY"])
	for _, b := range []string{"plain", "hot"} {
		if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string][]string{"cold1": remoteBucketKeys(t, bc, "cold1"), "cold2": remoteBucketKeys(t, bc, "cold2")}

	sizes := []int{0, 1000, 100 << 10, 300 << 10, 3<<20 + 7, 9 << 20}
	bodies := map[string][]byte{}
	for i, size := range sizes {
		key := fmt.Sprintf("art-%d", i)
		bodies[key] = bytes.Repeat([]byte{byte(i + 1), byte(i * 7), 3, 250}, size/4+1)[:size]
	}
	putAll := func(bucket string) {
		t.Helper()
		for key, body := range bodies {
			if _, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
				t.Fatalf("PUT %s/%s: %v", bucket, key, err)
			}
		}
	}
	check := func(when, bucket string) {
		t.Helper()
		for key, want := range bodies {
			if key == "mp" && bucket != "hot" {
				continue // uploaded to hot only
			}
			out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			if err != nil {
				t.Errorf("%s: GET %s/%s: %v", when, bucket, key, err)
				continue
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: GET %s/%s: %d bytes (want %d), %v", when, bucket, key, len(got), len(want), err)
			}
			if len(want) > 10 {
				rng := fmt.Sprintf("bytes=%d-%d", len(want)/3, len(want)/2)
				out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Range: aws.String(rng)})
				if err != nil {
					t.Errorf("%s: GET %s/%s %s: %v", when, bucket, key, rng, err)
					continue
				}
				got, err := io.ReadAll(out.Body)
				out.Body.Close()
				if err != nil || !bytes.Equal(got, want[len(want)/3:len(want)/2+1]) {
					t.Errorf("%s: GET %s/%s %s: wrong bytes, %v", when, bucket, key, rng, err)
				}
			}
		}
	}

	// A local container: nothing reaches the remote buckets.
	putAll("plain")
	check("local container", "plain")
	// Tier (which writes like local) on a container holding artifacts
	// moves nothing (hybrid re-lays them out: TestRelayoutMinIO).
	for _, p := range []string{"tier", "local"} {
		if _, err := vaultctl(ctx, ep, "container", "set-policy", "plain", p); err != nil {
			t.Errorf("set-policy %s on a container with artifacts: %v", p, err)
		}
	}
	for _, b := range []string{"cold1", "cold2"} {
		if got := remoteBucketKeys(t, bc, b); !slices.Equal(got, before[b]) {
			t.Errorf("a local container's writes reached remote bucket %s: %v, before %v", b, got, before[b])
		}
	}
	if _, err := vaultctl(ctx, ep, "container", "set-policy", "hot", "hybrid"); err != nil {
		t.Fatal(err)
	}
	if got := listPolicies(t, ep); got["root/hot"] != "hybrid" || got["root/plain"] != "local" {
		t.Errorf("container list: %v, want hot hybrid and plain local", got)
	}
	putAll("hot")
	// A multipart upload places like a put.
	mpBody := bytes.Repeat([]byte("multipart hybrid "), (5<<20+1000)/17+1)[:5<<20+1000]
	cu, err := cl.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("hot"), Key: aws.String("mp")})
	if err != nil {
		t.Fatal(err)
	}
	var done []types.CompletedPart
	for i, part := range [][]byte{mpBody[:5<<20], mpBody[5<<20:]} {
		up, err := cl.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("hot"), Key: aws.String("mp"), UploadId: cu.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(part)})
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	if _, err := cl.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String("hot"), Key: aws.String("mp"), UploadId: cu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatal(err)
	}
	bodies["mp"] = mpBody
	// The parity shards went to the remote buckets.
	for _, b := range []string{"cold1", "cold2"} {
		if got := remoteBucketKeys(t, bc, b); len(got) <= len(before[b]) {
			t.Errorf("a hybrid container's writes did not reach remote bucket %s: %v", b, got)
		}
	}
	// Reads with healthy local drives send no GET to the remote.
	gets := remoteGets(t, ep, "remote-cold1", "remote-cold2")
	check("hybrid, remote up", "hot")
	check("local, remote up", "plain")
	if after := remoteGets(t, ep, "remote-cold1", "remote-cold2"); !maps.Equal(after, gets) {
		t.Errorf("reads sent GETs to the remote drives: before %v, after %v", gets, after)
	}

	// The MinIO goes away: every artifact of both containers reads back.
	m.kill()
	check("hybrid, remote down", "hot")
	check("local, remote down", "plain")
	// Writes go on: one node's hybrid is 4+2, whose write quorum (4) the
	// local drives meet.
	for _, b := range []string{"plain", "hot"} {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		_, err := cl.PutObject(wctx, &awss3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("art-1"), Body: strings.NewReader("outage")})
		cancel()
		if err != nil {
			t.Errorf("PUT to %s with the remote down: %v", b, err)
		}
	}
	bodies["art-1"] = []byte("outage")
	check("hybrid, written with the remote down", "hot")
	check("local, written with the remote down", "plain")
}

// localFilesHolding returns how many of samples some file under dirs
// contains.
func localFilesHolding(t *testing.T, dirs []string, samples [][]byte) int {
	t.Helper()
	found := make([]bool, len(samples))
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed during the walk (a record log segment after a flush)
			}
			if err != nil {
				return err
			}
			for i, s := range samples {
				found[i] = found[i] || bytes.Contains(b, s)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, f := range found {
		if f {
			n++
		}
	}
	return n
}

// TestStoragePolicyTierMinIO: a tier container's artifacts of at least
// the size threshold move in the background to the remote drives (two
// buckets of a real MinIO): they read back byte-identical with their ETag
// and modification time, the local drives hold none of their bytes, the
// move shows in the metrics and the transaction log, and the artifacts
// below the threshold stay local. A tiered key can be overwritten and
// deleted like any other.
func TestStoragePolicyTierMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO and a server")
	}
	m, _, env, local := coldMinIO(t)
	ctx := t.Context()
	n, err := startRemoteNode(t, []string{"--data", strings.Join(local, ","), "--tier-interval", "300ms",
		"--remote", "cold1=" + m.endpoint + "/cold1?region=us-east-1",
		"--remote", "cold2=" + m.endpoint + "/cold2?region=us-east-1"}, env)
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://" + n.s3Addr
	cl := remoteTestClient(ep, policyRoot["VAULT_ROOT_ACCESS_KEY"], policyRoot["VAULT_ROOT_SECRET_KEY"])
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("arch")}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(13, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	const threshold = 200 << 10
	bodies := map[string][]byte{"small-1": random(1000), "small-2": random(60 << 10),
		"big-1": random(threshold), "big-2": random(3<<20 + 7), "big-3": random(9 << 20)}
	// samples are 64-byte pieces of an artifact at spread offsets.
	samples := func(b []byte) [][]byte {
		var out [][]byte
		for i := range 8 {
			off := i * (len(b) - 64) / 7
			out = append(out, b[off:off+64])
		}
		return out
	}
	type head struct {
		etag     string
		modified time.Time
	}
	heads := map[string]head{}
	for key, body := range bodies {
		if _, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("arch"), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("PUT %s: %v", key, err)
		}
		h, err := cl.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("arch"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		heads[key] = head{aws.ToString(h.ETag), aws.ToTime(h.LastModified)}
	}
	var bigSamples [][]byte
	for _, k := range []string{"big-1", "big-2", "big-3"} {
		bigSamples = append(bigSamples, samples(bodies[k])...)
	}
	// The check below can see the bytes: before the move they are local
	// (but for a sample that straddles two shards).
	if got := localFilesHolding(t, local, bigSamples); got < len(bigSamples)*3/4 {
		t.Fatalf("before tiering the local drives hold %d of %d samples of the large artifacts", got, len(bigSamples))
	}
	small := slices.Concat(samples(bodies["small-1"]), samples(bodies["small-2"]))
	smallBefore := localFilesHolding(t, local, small)

	if _, err := vaultctl(ctx, ep, "container", "set-policy", "arch", "tier", "--larger-than", "200KiB"); err != nil {
		t.Fatal(err)
	}
	if out, err := vaultctl(ctx, ep, "container", "list"); err != nil || !strings.Contains(out, "tier (from 200.0 KiB)") {
		t.Errorf("container list: %v\n%s", err, out)
	}
	metric := func(series string) float64 {
		resp, err := metricsGet(t.Context(), ep+"/_vault/metrics", aws.Credentials{AccessKeyID: policyRoot["VAULT_ROOT_ACCESS_KEY"], SecretAccessKey: policyRoot["VAULT_ROOT_SECRET_KEY"]})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		exp, _ := io.ReadAll(resp.Body)
		v, _ := metricValue(string(exp), series)
		return v
	}
	deadline := time.Now().Add(60 * time.Second)
	for metric("vaultaire_tier_moved_total") < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := metric("vaultaire_tier_moved_total"); got != 3 {
		t.Fatalf("vaultaire_tier_moved_total = %v after 60s, want 3", got)
	}
	if got, want := metric("vaultaire_tier_moved_bytes_total"), float64(len(bodies["big-1"])+len(bodies["big-2"])+len(bodies["big-3"])); got != want {
		t.Errorf("vaultaire_tier_moved_bytes_total = %v, want %v", got, want)
	}
	// A few more passes move nothing more.
	time.Sleep(time.Second)
	if got := metric("vaultaire_tier_moved_total"); got != 3 {
		t.Errorf("vaultaire_tier_moved_total = %v after more passes, want 3", got)
	}

	for key, want := range bodies {
		out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("arch"), Key: aws.String(key)})
		if err != nil {
			t.Errorf("GET %s: %v", key, err)
			continue
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("GET %s after tiering: %d bytes (want %d), %v", key, len(got), len(want), err)
		}
		if h := (head{aws.ToString(out.ETag), aws.ToTime(out.LastModified)}); h != heads[key] {
			t.Errorf("GET %s after tiering: ETag, Last-Modified %v, want %v", key, h, heads[key])
		}
		r := fmt.Sprintf("bytes=%d-%d", len(want)/3, len(want)/2)
		out, err = cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("arch"), Key: aws.String(key), Range: aws.String(r)})
		if err != nil {
			t.Errorf("GET %s %s: %v", key, r, err)
			continue
		}
		got, err = io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, want[len(want)/3:len(want)/2+1]) {
			t.Errorf("GET %s %s after tiering: wrong bytes, %v", key, r, err)
		}
	}
	// The local drives hold none of the tiered bytes; the small ones stay.
	if got := localFilesHolding(t, local, bigSamples); got != 0 {
		t.Errorf("after tiering the local drives still hold %d of %d samples of the large artifacts", got, len(bigSamples))
	}
	if got := localFilesHolding(t, local, small); got != smallBefore || got < len(small)*3/4 {
		t.Errorf("the local drives hold %d of %d samples of the small artifacts, before tiering %d", got, len(small), smallBefore)
	}
	// Listing shows every artifact.
	lo, err := cl.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("arch")})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, o := range lo.Contents {
		listed = append(listed, aws.ToString(o.Key))
	}
	if want := []string{"big-1", "big-2", "big-3", "small-1", "small-2"}; !slices.Equal(listed, want) {
		t.Errorf("list after tiering: %v, want %v", listed, want)
	}
	// The moves are in the transaction log.
	var txn []byte
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		txn, _ = os.ReadFile(filepath.Join(local[0], "events", "txn.log"))
		if bytes.Count(txn, []byte(`"operation":"TierArtifact"`)) >= 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, k := range []string{"big-1", "big-2", "big-3"} {
		if !bytes.Contains(txn, []byte(`"operation":"TierArtifact","bucket":"arch","key":"`+k+`"`)) {
			t.Errorf("transaction log has no TierArtifact line for %s:\n%s", k, txn)
		}
	}
	// Back to local: the tiered artifacts stay where they are and read
	// back; nothing more moves.
	if _, err := vaultctl(ctx, ep, "container", "set-policy", "arch", "local"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"big-2", "big-3"} {
		out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("arch"), Key: aws.String(key)})
		if err != nil {
			t.Errorf("GET %s after the policy went back to local: %v", key, err)
			continue
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, bodies[key]) {
			t.Errorf("GET %s after the policy went back to local: %d bytes, %v", key, len(got), err)
		}
	}
	// A tiered key is overwritten and deleted like any other.
	if _, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("arch"), Key: aws.String("big-1"), Body: strings.NewReader("new")}); err != nil {
		t.Fatal(err)
	}
	if out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("arch"), Key: aws.String("big-1")}); err != nil {
		t.Errorf("GET overwritten big-1: %v", err)
	} else {
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(got) != "new" {
			t.Errorf("GET overwritten big-1: %q, want %q", got, "new")
		}
	}
	if _, err := cl.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("arch"), Key: aws.String("big-2")}); err != nil {
		t.Fatal(err)
	}
	var nsk *types.NoSuchKey
	if _, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("arch"), Key: aws.String("big-2")}); !errors.As(err, &nsk) {
		t.Errorf("GET deleted big-2: %v, want NoSuchKey", err)
	}
}
