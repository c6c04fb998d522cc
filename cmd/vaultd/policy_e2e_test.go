package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

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

// remoteGets returns the GET requests each remote drive sent so far, from
// the node's metrics.
func remoteGets(t *testing.T, endpoint string, drives ...string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(endpoint + "/_vault/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exp, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, d := range drives {
		v, ok := metricValue(string(exp), `vaultaire_remote_requests_total{drive="`+d+`",method="GET"}`)
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
	m := startMinIO(t)
	bc := remoteTestClient(m.endpoint, m.ak, m.sk)
	ctx := t.Context()
	for _, b := range []string{"cold1", "cold2"} {
		if _, err := bc.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	env := map[string]string{
		"VAULT_REMOTE_COLD1_ACCESS_KEY": m.ak, "VAULT_REMOTE_COLD1_SECRET_KEY": m.sk,
		"VAULT_REMOTE_COLD2_ACCESS_KEY": m.ak, "VAULT_REMOTE_COLD2_SECRET_KEY": m.sk,
	}
	for k, v := range policyRoot {
		env[k] = v
	}
	local := []string{dir + "/a", dir + "/b", dir + "/c", dir + "/d"}
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
	// A container holding artifacts keeps its layout: hybrid is refused,
	// tier (which writes like local) is not.
	if _, err := vaultctl(ctx, ep, "container", "set-policy", "plain", "hybrid"); err == nil || !strings.Contains(err.Error(), "BucketNotEmpty") {
		t.Errorf("set-policy hybrid on a container with artifacts: %v, want BucketNotEmpty", err)
	}
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
}
