package main

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/s3"
)

// TestClusterDeleteObjects1000: DeleteObjects of 1,000 keys on a 3-node
// cluster deletes every one and says so, and its time is logged. Issue
// 17 wants it under 2 s on the development machine; with VAULT_E2E_LONG=1
// the test asserts it within twice that, since the shared machine's load
// varies (without, only a bound far from the aws cli's 60 s timeout).
func TestClusterDeleteObjects1000(t *testing.T) {
	c := startCluster(t, 3)
	c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	var tn s3.NewTenant
	if err := c.admin(0).do(ctx, http.MethodPut, "/_vault/admin/tenants/del-tenant", &tn); err != nil {
		t.Fatal(err)
	}
	if err := c.admin(0).send(ctx, http.MethodPut, "/_vault/admin/tenants/del-tenant/rate", []byte(`{"rps":100000,"burst":100000}`), nil); err != nil {
		t.Fatal(err)
	}
	cl := c.s3Client(1, tn)
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("many")}); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("dir/%04d", i)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		putErrs []error
		next    = make(chan string)
	)
	start := time.Now()
	for w := range 16 {
		wg.Go(func() {
			pc := c.s3Client(w%3, tn)
			for k := range next {
				if err := newArtifact(k, 100).put(ctx, pc, "many"); err != nil {
					mu.Lock()
					putErrs = append(putErrs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	if len(putErrs) > 0 {
		t.Fatalf("%d puts failed, first: %v", len(putErrs), putErrs[0])
	}
	t.Logf("put %d objects in %v", n, time.Since(start).Round(time.Millisecond))

	objs := make([]types.ObjectIdentifier, n)
	for i, k := range keys {
		objs[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	start = time.Now()
	out, err := cl.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("many"), Delete: &types.Delete{Objects: objs}})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("DeleteObjects: %v", err)
	}
	t.Logf("DeleteObjects of %d keys on 3 nodes: %v", n, took.Round(time.Millisecond))
	if len(out.Deleted) != n || len(out.Errors) != 0 {
		t.Fatalf("DeleteObjects: %d deleted, %d errors (first %s); want %d, 0", len(out.Deleted), len(out.Errors), firstDeleteError(out.Errors), n)
	}
	bound := 30 * time.Second
	if os.Getenv("VAULT_E2E_LONG") == "1" {
		bound = 4 * time.Second
	}
	if took > bound {
		t.Errorf("DeleteObjects of %d keys took %v, want under %v", n, took, bound)
	}
	for i := range c.nodes {
		left, err := listAll(ctx, c.s3Client(i, tn), "many")
		if err != nil || len(left) != 0 {
			t.Fatalf("node %d lists %d keys after the delete (%v), want none", i+1, len(left), err)
		}
	}
}

func firstDeleteError(es []types.Error) string {
	if len(es) == 0 {
		return ""
	}
	return aws.ToString(es[0].Key) + ": " + aws.ToString(es[0].Code) + ": " + aws.ToString(es[0].Message)
}
