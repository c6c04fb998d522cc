package main

// End-to-end test of a node resumed from a pause (SIGSTOP) while the
// versioning and object lock of a bucket were changed through another
// node (probe round 6, H5). Skipped with -short.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/s3"
)

// TestClusterResumedNodeFreshConfig: a follower is stopped; through
// another node versioning is enabled on a bucket (whose keys hold
// unversioned objects) and a default GOVERNANCE retention is set on an
// object lock bucket, and each change returns. PUTs sent to the stopped
// node after that (they wait in its socket) are served when it resumes:
// each must write a new version, keeping the key's null version and the
// version written meanwhile, and the lock bucket's PUT must get the
// default retention. Before the fix the resumed node wrote unversioned
// over the key's pointer and without retention.
func TestClusterResumedNodeFreshConfig(t *testing.T) {
	const keys = 3
	c := startCluster(t, 3)
	st := c.waitFormed(t, 60*time.Second)
	var tenant s3.NewTenant
	if err := c.admin(0).do(t.Context(), "PUT", "/_vault/admin/tenants/stale-tenant", &tenant); err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	victim := slices.IndexFunc(c.nodes, func(n *e2eNode) bool { return n.name != st.Leader })
	other := (victim + 1) % len(c.nodes)
	cv, co := c.s3Client(victim, tenant), c.s3Client(other, tenant)
	ctx := t.Context()
	const bucket, lockBucket = "stale-vers", "stale-lock"
	if _, err := co.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := co.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(lockBucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	key := func(i int) string { return fmt.Sprintf("k%d", i) }
	put := func(ctx context.Context, cl *awss3.Client, b, k, body string) (*awss3.PutObjectOutput, error) {
		return cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(k), Body: bytes.NewReader([]byte(body))})
	}
	for i := range keys {
		// Through the victim: it has seen the bucket, unversioned.
		if _, err := put(ctx, cv, bucket, key(i), "v0"); err != nil {
			t.Fatalf("put v0 of %s: %v", key(i), err)
		}
	}
	if _, err := put(ctx, cv, lockBucket, "locked", "before"); err != nil {
		t.Fatal(err)
	}

	vp := c.nodes[victim].proc.cmd.Process
	t.Cleanup(func() { vp.Signal(syscall.SIGCONT) }) // before the kill of startCluster's cleanup
	if err := vp.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := vp.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer resume()
	if _, err := co.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatalf("enable versioning through %s: %v", c.nodes[other].name, err)
	}
	if _, err := co.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: aws.String(lockBucket),
		ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled,
			Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeGovernance, Days: aws.Int32(1)}}}}); err != nil {
		t.Fatalf("set default retention through %s: %v", c.nodes[other].name, err)
	}
	v1 := make([]string, keys)
	for i := range keys {
		out, err := put(ctx, co, bucket, key(i), "v1")
		if err != nil || aws.ToString(out.VersionId) == "" {
			t.Fatalf("put v1 of %s through %s: %v (version %v)", key(i), c.nodes[other].name, err, out)
		}
		v1[i] = aws.ToString(out.VersionId)
	}

	// The PUTs to the stopped node are sent now, after the changes
	// returned; they wait in its sockets until it resumes.
	var wg sync.WaitGroup
	outs, errs := make([]*awss3.PutObjectOutput, keys+1), make([]error, keys+1)
	for i := range keys + 1 {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			if i == keys {
				outs[i], errs[i] = put(pctx, cv, lockBucket, "locked", "after")
				return
			}
			outs[i], errs[i] = put(pctx, cv, bucket, key(i), "v2")
		})
	}
	time.Sleep(500 * time.Millisecond)
	resume()
	wg.Wait()

	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("put v2 of %s through the resumed node: %v", key(i), errs[i])
		}
		if aws.ToString(outs[i].VersionId) == "" {
			t.Errorf("put v2 of %s through the resumed node: no version id: written unversioned", key(i))
		}
		// Read through a third node: every version is there, with its bytes.
		lv, err := co.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(key(i))})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range lv.Versions {
			got = append(got, aws.ToString(v.VersionId))
		}
		if len(got) != 3 || !slices.Contains(got, "null") || !slices.Contains(got, v1[i]) {
			t.Errorf("%s: versions %v, want 3: null, %s and the resumed node's", key(i), got, v1[i])
		}
		for vid, want := range map[string]string{"null": "v0", v1[i]: "v1"} {
			o, err := co.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key(i)), VersionId: aws.String(vid)})
			if err != nil {
				t.Errorf("%s version %s: %v", key(i), vid, err)
				continue
			}
			b, err := io.ReadAll(o.Body)
			o.Body.Close()
			if err != nil || string(b) != want {
				t.Errorf("%s version %s: %q, %v; want %q", key(i), vid, b, err, want)
			}
		}
	}
	if errs[keys] != nil {
		t.Fatalf("put into the lock bucket through the resumed node: %v", errs[keys])
	}
	h, err := co.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(lockBucket), Key: aws.String("locked"), VersionId: outs[keys].VersionId})
	if err != nil {
		t.Fatal(err)
	}
	if h.ObjectLockMode != types.ObjectLockModeGovernance || h.ObjectLockRetainUntilDate == nil {
		t.Errorf("the resumed node's put into the lock bucket has lock mode %q until %v, want the default GOVERNANCE retention", h.ObjectLockMode, h.ObjectLockRetainUntilDate)
	}
}
