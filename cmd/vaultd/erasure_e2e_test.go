package main

// End-to-end test of `vaultd cluster set-erasure` (issue 14.2). Skipped
// with -short.

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/s3"
)

// TestClusterSetErasure: three nodes with two drives each (4+2 by
// default) and data; `vaultd cluster set-erasure 2+1 --width 8` makes a new
// map epoch that status shows with the width; a policy the six drives
// cannot hold is refused with a message saying so; the migrator re-encodes
// the older data into 2+1 in the background until no older map is needed,
// and every artifact, older and newer, reads back identical through every
// node.
func TestClusterSetErasure(t *testing.T) {
	c := startCluster(t, 3)
	st := c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	root := s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}
	const bucket = "erasure"
	if _, err := c.s3Client(0, root).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	before := newArtifacts("before/", 21)
	putAll(t, c.s3Client(1, root), bucket, before)

	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": c.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": c.root.SecretAccessKey}[k]
	}
	vaultd := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append(args, "--endpoint", "http://"+c.nodes[2].s3), getenv, &out, &errb)
		return out.String() + errb.String(), err
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster", "set-erasure", "6+2"}, "policy 6+2 needs 8 drives, have 6"},
		{[]string{"cluster", "set-erasure", "2+1", "--width", "17"}, "stripe width 17 not in 1..16"},
		{[]string{"cluster", "set-erasure", "2-1"}, `want K+M`},
	} {
		out, err := vaultd(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("vaultd %s: %v (%s), want an error containing %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
	if cur, err := c.status(ctx, 0); err != nil || cur.Map.Epoch != st.Map.Epoch || cur.Map.Policy != "4+2" {
		t.Fatalf("after refused changes: map epoch %d %s (%v), want epoch %d 4+2", cur.Map.Epoch, cur.Map.Policy, err, st.Map.Epoch)
	}

	out, err := vaultd("cluster", "set-erasure", "2+1", "--width", "8")
	if err != nil {
		t.Fatalf("set-erasure 2+1 --width 8: %v (%s)", err, out)
	}
	if want := fmt.Sprintf("map epoch %d: erasure 2+1 (set by the operator), stripe width 8 (set by the operator)", st.Map.Epoch+1); !strings.Contains(out, want) {
		t.Fatalf("set-erasure printed %q, want it to contain %q", out, want)
	}
	text, err := vaultd("cluster", "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"policy:        2+1 (set by the operator)", "stripe width:  8 (set by the operator; large artifacts written now are striped over this many PGs)"} {
		if !strings.Contains(text, want) {
			t.Errorf("cluster status lacks %q:\n%s", want, text)
		}
	}
	after := newArtifacts("after/", 14)
	putAll(t, c.s3Client(0, root), bucket, after)

	// The migrator re-encodes the 4+2 data into the new map's 2+1 sets
	// and drops the older map once nothing lives only there.
	start := time.Now()
	for i := range c.nodes {
		if _, err := waitStatus(t, c, i, 180*time.Second, func(st cluster.Status) string {
			if st.Map.Policy != "2+1" || st.Map.Width != 8 || !st.Map.PolicySet || len(st.Map.Older) > 0 {
				return fmt.Sprintf("map %s width %d set %v, older maps %v", st.Map.Policy, st.Map.Width, st.Map.PolicySet, st.Map.Older)
			}
			return ""
		}); err != nil {
			t.Fatalf("%s: %v", c.nodes[i].name, err)
		}
	}
	t.Logf("older maps dropped %v after set-erasure", time.Since(start).Round(time.Second))
	all := append(before, after...)
	for i := range c.nodes {
		checkAll(t, c.s3Client(i, root), bucket, all)
	}
}
