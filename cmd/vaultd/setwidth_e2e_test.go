package main

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

// TestClusterSetWidthAlone: `vaultd cluster set-erasure --width 4`
// without K+M (probe F8 of session 17: refused) makes a new map epoch
// under the default policy that status shows as the operator's width;
// the migrator retires the older epoch and every artifact reads back;
// `--width auto` returns to the width that follows the drive count, and
// a width out of range is refused saying which widths are taken.
func TestClusterSetWidthAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t, 3)
	first := c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	root := s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}
	const bucket = "width"
	if _, err := c.s3Client(0, root).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	arts := append(newArtifacts("before/", 9), newArtifact("before/large", 9<<20))
	putAll(t, c.s3Client(1, root), bucket, arts)
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": c.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": c.root.SecretAccessKey}[k]
	}
	vaultd := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append(args, "--endpoint", "http://"+c.nodes[2].s3), getenv, &out, &errb)
		return out.String() + errb.String(), err
	}
	if out, err := vaultd("cluster", "set-erasure", "--width", "17"); err == nil || !strings.Contains(err.Error(), "stripe width 17 not in 1..16") {
		t.Errorf("--width 17: %v (%s), want a refusal saying the widths taken", err, out)
	}
	out, err := vaultd("cluster", "set-erasure", "--width", "4")
	if err != nil {
		t.Fatalf("set-erasure --width 4: %v (%s)", err, out)
	}
	if want := fmt.Sprintf("map epoch %d: erasure %s (follows the drive count), stripe width 4 (set by the operator)", first.Map.Epoch+1, first.Map.Policy); !strings.Contains(out, want) {
		t.Errorf("set-erasure --width 4 printed %q, want %q", out, want)
	}
	st, err := waitStatus(t, c, 0, 60*time.Second, func(st cluster.Status) string {
		if st.Map.Width != 4 || !st.Map.WidthSet || st.Map.PolicySet || st.Map.Policy != first.Map.Policy || len(st.Map.Older) > 0 {
			return fmt.Sprintf("map %+v", st.Map)
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if text, _ := vaultd("cluster", "status"); !strings.Contains(text, "stripe width:  4 (set by the operator;") {
		t.Errorf("status does not show the operator's width:\n%s", text)
	}
	more := []e2eArtifact{newArtifact("after/large", 9<<20)}
	putAll(t, c.s3Client(0, root), bucket, more)
	if out, err := vaultd("cluster", "set-erasure", "--width", "auto"); err != nil || !strings.Contains(out, "stripe width 1 (follows the drive count)") {
		t.Errorf("set-erasure --width auto: %v (%s), want width 1 following the drive count", err, out)
	}
	if _, err := waitStatus(t, c, 1, 10*time.Second, func(cur cluster.Status) string {
		if cur.Map.Epoch != st.Map.Epoch+1 || cur.Map.WidthSet || cur.Map.Width != 1 {
			return fmt.Sprintf("map %+v, want epoch %d, width 1 not set", cur.Map, st.Map.Epoch+1)
		}
		return ""
	}); err != nil {
		t.Errorf("after --width auto: %v", err)
	}
	for i := range 3 {
		checkAll(t, c.s3Client(i, root), bucket, append(arts, more...))
	}
}
