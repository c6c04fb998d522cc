package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/s3"
)

// TestClusterPublicBucket: on a 3-node cluster, a bucket made public-read
// through one node is read anonymously through every other; a second
// tenant's public-read of the name is refused on another node; made
// private again through a third node, no node serves it anonymously.
func TestClusterPublicBucket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t, 3)
	c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	var alice, bob s3.NewTenant
	if err := c.admin(0).do(ctx, http.MethodPut, "/_vault/admin/tenants/pub-alice", &alice); err != nil {
		t.Fatal(err)
	}
	if err := c.admin(1).do(ctx, http.MethodPut, "/_vault/admin/tenants/pub-bob", &bob); err != nil {
		t.Fatal(err)
	}
	b := aws.String("site")
	for i, tn := range []s3.NewTenant{alice, bob} {
		if _, err := c.s3Client(i, tn).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.s3Client(2, alice).PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("index.html"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	get := func(node int) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.nodes[node].s3+"/site/index.html", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	for i := range c.nodes {
		if st, _ := get(i); st != http.StatusForbidden {
			t.Fatalf("node %d: anonymous GET of a private bucket: %d", i, st)
		}
	}
	if _, err := c.s3Client(0, alice).PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPublicRead}); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		if st, body := get(i); st != http.StatusOK || body != "hello" {
			t.Fatalf("node %d: anonymous GET of a public-read bucket: %d %q", i, st, body)
		}
	}
	_, err := c.s3Client(1, bob).PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPublicRead})
	if code := errorCode(err); code != "OperationAborted" {
		t.Fatalf("bob's public-read of alice's public name: %v", err)
	}
	if _, err := c.s3Client(2, alice).PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPrivate}); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		if st, _ := get(i); st != http.StatusForbidden {
			t.Fatalf("node %d: anonymous GET after private: %d", i, st)
		}
	}
}
