package main

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/driver/faulty"
	"github.com/vaultaire/vaultaire/internal/testnet"
)

// TestRemoteDriveSingleToCluster (issue 13): a single node with 4 local
// drives and a remote drive (a real MinIO), holding a hybrid container's
// parity there, restarted as the first node of a cluster (the cluster
// secret, --gossip, --rpc) keeps its remote drive: the drive's format.json
// is re-stamped from the node's own cluster id to the cluster's, the drive
// is online in the cluster map attached to the node, and with any local
// drive offline every artifact reads back byte-identical (which needs the
// remote parity).
func TestRemoteDriveSingleToCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node twice and a MinIO")
	}
	began := time.Now()
	defer func() { t.Logf("TestRemoteDriveSingleToCluster took %v", time.Since(began).Round(time.Millisecond)) }()
	m := startMinIO(t)
	ctx := t.Context()
	mc := remoteTestClient(m.endpoint, m.ak, m.sk)
	if _, err := mc.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("cold")}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	faults := filepath.Join(dir, "faults.json")
	if err := os.WriteFile(faults, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"VAULT_ROOT_ACCESS_KEY": "PROMOTEROOTKEY", "VAULT_ROOT_SECRET_KEY": "promote-root-secret-1",
		"VAULT_REMOTE_COLD_ACCESS_KEY": m.ak, "VAULT_REMOTE_COLD_SECRET_KEY": m.sk,
		faultsEnv: faults, faultsEnableEnv: faultsEnableVal,
	}
	root := aws.Credentials{AccessKeyID: env["VAULT_ROOT_ACCESS_KEY"], SecretAccessKey: env["VAULT_ROOT_SECRET_KEY"]}
	data := strings.Join([]string{dir + "/a", dir + "/b", dir + "/c", dir + "/d"}, ",")
	args := []string{"--data", data, "--heal-interval", "1s", "--remote", "cold=" + m.endpoint + "/cold/drive?timeout=5s"}
	n, err := startRemoteNode(t, args, env)
	if err != nil {
		t.Fatal(err)
	}
	cl := remoteTestClient("http://"+n.s3Addr, root.AccessKeyID, root.SecretAccessKey)
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("hot")}); err != nil {
		t.Fatal(err)
	}
	ctlEnv := map[string]string{"VAULT_ENDPOINT": "http://" + n.s3Addr}
	maps.Copy(ctlEnv, env)
	if err := run(ctx, []string{"container", "set-policy", "hot", "hybrid"}, func(k string) string { return ctlEnv[k] }, io.Discard, io.Discard); err != nil {
		t.Fatalf("container set-policy hot hybrid: %v", err)
	}
	arts := append(newArtifacts("single/", 7), newArtifact("single/large", 5<<20+1))
	putAll(t, cl, "hot", arts)
	checkAll(t, cl, "hot", arts)
	formatID := func() string {
		t.Helper()
		out, err := mc.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("cold"), Key: aws.String("drive/format.json")})
		if err != nil {
			t.Fatalf("get format.json: %v", err)
		}
		defer out.Body.Close()
		var f struct {
			ClusterID string `json:"cluster_id"`
		}
		if err := json.NewDecoder(out.Body).Decode(&f); err != nil {
			t.Fatal(err)
		}
		return f.ClusterID
	}
	single := formatID()
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}

	// The same node, now the first node of a cluster.
	env["VAULT_CLUSTER_SECRET"] = "promote-cluster-secret-0123456789"
	cargs := append(args[:len(args):len(args)], "--gossip", testnet.Addr(t), "--rpc", testnet.Addr(t))
	n, err = startRemoteNode(t, cargs, env)
	if err != nil {
		t.Fatal(err)
	}
	admin := &adminClient{endpoint: "http://" + n.s3Addr, creds: root, http: &http.Client{Timeout: 30 * time.Second}}
	waitFor(t, 60*time.Second, func() string {
		var st cluster.Status
		if err := admin.do(ctx, http.MethodGet, "/_vault/admin/cluster", &st); err != nil {
			return err.Error()
		}
		for _, d := range st.Drives {
			if d.ID == "remote-cold" {
				if d.State != "ok" || d.Node != "solo" {
					return "remote-cold on " + d.Node + ": " + d.State + " " + d.Error
				}
				return ""
			}
		}
		return "no remote-cold in the map"
	})
	if got := formatID(); got == single || got != clusterDriveID([]byte(env["VAULT_CLUSTER_SECRET"])) {
		t.Errorf("format.json names cluster %q (the single node's was %q), want the cluster's %q", got, single, clusterDriveID([]byte(env["VAULT_CLUSTER_SECRET"])))
	}
	// Reads below need the remote drive's parity with a local drive
	// offline: under CI's load the backend can be slow enough for a read
	// to answer 503 (retryable) three times in a row (session 18), so the
	// client retries longer than the SDK's default 3 attempts.
	cl = awss3.New(remoteTestClient("http://"+n.s3Addr, root.AccessKeyID, root.SecretAccessKey).Options(), func(o *awss3.Options) { o.RetryMaxAttempts = 10 })
	more := newArtifacts("cluster/", 7)
	putAll(t, cl, "hot", more)
	all := append(arts, more...)
	checkAll(t, cl, "hot", all)
	// One remote drive beside 4 local ones makes hybrid 2+1: with a local
	// drive offline, the stripes it held a data shard of need the remote
	// parity. Each local drive in turn.
	off := faulty.Plan{Rules: []faulty.Rule{{Op: faulty.OpAll, Fault: faulty.Offline}}}
	for _, id := range []string{"solo-d0", "solo-d1", "solo-d2", "solo-d3"} {
		b, _ := json.Marshal(faultsFile{Seed: 1, Drives: map[string]faulty.Plan{id: off}})
		applied := strings.Count(n.err.String(), "TEST-ONLY disk-fault rules applied")
		if err := os.WriteFile(faults+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(faults+".tmp", faults); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, func() string {
			if strings.Count(n.err.String(), "TEST-ONLY disk-fault rules applied") > applied {
				return ""
			}
			return "faults not applied"
		})
		checkAll(t, cl, "hot", all)
	}
}
