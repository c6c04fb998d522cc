package s3_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/lifecycle"
	"github.com/vaultaire/vaultaire/s3"
	"github.com/vaultaire/vaultaire/tenant"
)

// TestLifecycleNoncurrentBecameCurrent: the lifecycle worker listed v1 as
// noncurrent, then v2 was deleted by id, making v1 current again; the
// worker's deletion of v1 must then be refused as changed, not remove the
// key's only version (probe H3 of session 7: 25 of 200 keys lost every
// version). A version still noncurrent, and a delete marker that is
// current, are deleted as before.
func TestLifecycleNoncurrentBecameCurrent(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	st, err := cluster.Open(ctx, cluster.Config{Dir: t.TempDir(), NodeID: "n1", RaftAddr: "127.0.0.1:7", Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, name := range []string{"root", "alice"} {
		if _, _, err := st.CreateTenant(ctx, name); err != nil && !errors.Is(err, tenant.ErrTenantExists) {
			t.Fatal(err)
		}
	}
	n := testnode.StartWith(t, func(c *engine.Config) { c.Containers = st }, func(c *s3.Config) { c.Configs = st })
	e := &env{endpoint: n.Endpoint, eng: n.Engine, dirs: n.Dirs}
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("lcbucket")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: b, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	put := func(key, body string) string {
		t.Helper()
		out, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VersionId)
	}
	get := func(key string) (string, error) {
		out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			return "", err
		}
		defer out.Body.Close()
		data, err := io.ReadAll(out.Body)
		return string(data), err
	}
	store := n.Server.LifecycleStore(func(context.Context) ([]string, error) { return []string{"alice"}, nil })
	lc := lifecycle.Container{Tenant: "alice", Name: "lcbucket"}

	// k: v1, v2; v2 deleted by id after the worker listed v1 as noncurrent.
	v1 := put("k", "one")
	v2 := put("k", "two")
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(v2)}); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteVersion(ctx, lc, "k", v1); !errors.Is(err, lifecycle.ErrChanged) {
		t.Fatalf("deleting the version made current again: %v, want lifecycle.ErrChanged", err)
	}
	if got, err := get("k"); err != nil || got != "one" {
		t.Fatalf("GET k = %q, %v; want v1 kept", got, err)
	}

	// j: v1 still noncurrent under v2: deleted.
	w1 := put("j", "old")
	put("j", "new")
	if err := store.DeleteVersion(ctx, lc, "j", w1); err != nil {
		t.Fatalf("deleting a noncurrent version: %v", err)
	}
	if _, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("j"), VersionId: aws.String(w1)}); err == nil {
		t.Fatal("the noncurrent version is still there")
	}
	if got, err := get("j"); err != nil || got != "new" {
		t.Fatalf("GET j = %q, %v; want the current version", got, err)
	}

	// m: a lone delete marker, current, is removed (expired marker).
	del, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("m")})
	if err != nil || !aws.ToBool(del.DeleteMarker) {
		t.Fatalf("delete marker: %+v, %v", del, err)
	}
	if err := store.DeleteVersion(ctx, lc, "m", aws.ToString(del.VersionId)); err != nil {
		t.Fatalf("deleting the current delete marker: %v", err)
	}
	vs, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, Prefix: aws.String("m")})
	if err != nil || len(vs.DeleteMarkers) != 0 {
		t.Fatalf("markers of m after the deletion: %+v, %v", vs.DeleteMarkers, err)
	}
}
