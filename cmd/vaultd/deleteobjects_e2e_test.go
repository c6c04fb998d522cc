package main

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
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

// TestClusterDeleteObjectsVersions: one DeleteObjects naming every
// version of one key, sent through a follower while other clients write
// other keys, deletes them all and takes the key's cluster-wide lock once
// (two Raft applies), not once per version: it used to cost two applies
// per version, and under load its entries answered 409 or 503.
func TestClusterDeleteObjectsVersions(t *testing.T) {
	c := startCluster(t, 3)
	st := c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	var tn s3.NewTenant
	if err := c.admin(0).do(ctx, http.MethodPut, "/_vault/admin/tenants/delv-tenant", &tn); err != nil {
		t.Fatal(err)
	}
	if err := c.admin(0).send(ctx, http.MethodPut, "/_vault/admin/tenants/delv-tenant/rate", []byte(`{"rps":100000,"burst":100000}`), nil); err != nil {
		t.Fatal(err)
	}
	leader := slices.IndexFunc(c.nodes, func(n *e2eNode) bool { return n.name == st.Leader })
	follower := (leader + 1) % len(c.nodes)
	cl := c.s3Client(follower, tn)
	const bucket, key, n = "versions", "hot/key", 300
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		vids []string
		errs []error
		next = make(chan int)
	)
	for w := range 8 {
		wg.Go(func() {
			pc := c.s3Client(w%3, tn)
			for i := range next {
				out, err := pc.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(fmt.Sprint("version ", i))})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					vids = append(vids, aws.ToString(out.VersionId))
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d puts failed, first: %v", len(errs), errs[0])
	}

	// Other clients write other keys throughout the delete.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	var bgErr error
	bg.Go(func() {
		pc := c.s3Client(leader, tn)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pc.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprint("other/", i%50)), Body: strings.NewReader("x")}); err != nil {
				bgErr = err
				return
			}
		}
	})
	applied := func() float64 {
		m, err := scrapeMetrics(ctx, "http://"+c.nodes[leader].s3+"/_vault/metrics", c.root)
		if err != nil {
			t.Fatalf("leader metrics: %v", err)
		}
		return m["vaultaire_raft_applied_index"]
	}
	before := applied()
	objs := make([]types.ObjectIdentifier, len(vids))
	for i, v := range vids {
		objs[i] = types.ObjectIdentifier{Key: aws.String(key), VersionId: aws.String(v)}
	}
	start := time.Now()
	out, err := cl.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: objs}})
	took := time.Since(start)
	close(stop)
	bg.Wait()
	if err != nil {
		t.Fatalf("DeleteObjects: %v", err)
	}
	if bgErr != nil {
		t.Fatalf("a write of another key during the delete: %v", bgErr)
	}
	if len(out.Deleted) != n || len(out.Errors) != 0 {
		t.Fatalf("DeleteObjects of %d versions: %d deleted, %d errors (first %s)", n, len(out.Deleted), len(out.Errors), firstDeleteError(out.Errors))
	}
	// Raft applies the delete made: the key's lock and its release (a
	// few more allowed for the cluster's own housekeeping), not 2 per version.
	if applies := applied() - before; applies > 20 {
		t.Fatalf("DeleteObjects of %d versions of one key made %v Raft applies, want a few (one lock of the key)", n, applies)
	}
	t.Logf("DeleteObjects of %d versions of one key through a follower: %v", n, took.Round(time.Millisecond))
	for i := range c.nodes {
		vs, err := c.s3Client(i, tn).ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if len(vs.Versions)+len(vs.DeleteMarkers) != 0 {
			t.Fatalf("%s lists %d versions and %d markers of %s after the delete, want none", c.nodes[i].name, len(vs.Versions), len(vs.DeleteMarkers), key)
		}
		if _, err := c.s3Client(i, tn).HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err == nil {
			t.Fatalf("%s: HEAD %s succeeds after every version was deleted", c.nodes[i].name, key)
		}
	}
}
