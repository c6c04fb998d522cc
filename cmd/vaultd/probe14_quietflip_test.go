package main

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/s3"
)

// TestProbe14QuietFlip (VAULT_PROBE14=1): on the README's example cluster
// (3 nodes x 2 local drives, 2 remote drives: local and hybrid are both
// 4+2), set-policy local -> hybrid -> local on a quiet container: does the
// walk move anything, and where do the bytes end up?
func TestProbe14QuietFlip(t *testing.T) {
	if os.Getenv("VAULT_PROBE14") != "1" {
		t.Skip("VAULT_PROBE14=1")
	}
	rc := p14StartRemote(t, "--relayout-interval", "200ms")
	ctx := t.Context()
	cl := rc.s3Client(0, rc.rootTenant)
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(p14bucket)}); err != nil {
		t.Fatal(err)
	}
	const n, size = 16, 1 << 20
	for i := range n {
		k := fmt.Sprintf("q%02d", i)
		if err := p14put2(ctx, cl, k, p13body(k, 1, size)); err != nil {
			t.Fatal(err)
		}
	}
	localBytes := func() (sum int64) {
		for _, nd := range rc.nodes {
			for _, d := range nd.dirs {
				filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
					if err == nil && !e.IsDir() {
						if fi, err := e.Info(); err == nil {
							sum += fi.Size()
						}
					}
					return nil
				})
			}
		}
		return sum
	}
	remoteBytes := func() (sum int64) {
		for _, v := range rc.bucketObjects(t) {
			sum += v
		}
		return sum
	}
	t.Logf("local: %d B on local drives, %d B in the bucket (data %d B)", localBytes(), remoteBytes(), n*size)
	for _, pol := range []string{"hybrid", "local"} {
		env := map[string]string{"VAULT_ENDPOINT": "http://" + rc.nodes[1].s3, "VAULT_ROOT_ACCESS_KEY": rc.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": rc.root.SecretAccessKey}
		if err := run(ctx, []string{"container", "set-policy", p14bucket, pol}, func(k string) string { return env[k] }, os.Stderr, os.Stderr); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var cs []s3.ContainerStatus
			err := rc.admin(0).do(ctx, http.MethodGet, "/_vault/admin/containers", &cs)
			i := slices.IndexFunc(cs, func(c s3.ContainerStatus) bool { return c.Name == p14bucket })
			if err == nil && i >= 0 && cs[i].Relayout != nil && cs[i].Relayout.Done && cs[i].Relayout.Layout == pol {
				t.Logf("re-layout to %s: %+v", pol, *cs[i].Relayout)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not done")
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Logf("%s done: %d B on local drives, %d B in the bucket", pol, localBytes(), remoteBytes())
		time.Sleep(20 * time.Second) // heal (1 s interval), clean-ups
		t.Logf("%s +20s: %d B on local drives, %d B in the bucket", pol, localBytes(), remoteBytes())
		for i := range n {
			k := fmt.Sprintf("q%02d", i)
			if got, err := p14get(ctx, rc.s3Client(2, rc.rootTenant), k); err != nil || string(got) != string(p13body(k, 1, size)) {
				t.Errorf("%s: %s: %d B %v", pol, k, len(got), err)
			}
		}
	}
}
