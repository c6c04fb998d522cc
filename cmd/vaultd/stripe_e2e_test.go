package main

// End-to-end test of striping across placement groups (issue 14.1).
// Skipped with -short.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/s3"
)

// countShardFiles returns the committed shard files under a node's data
// directory dir, found on disk.
func countShardFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() && slices.Contains(strings.Split(filepath.ToSlash(p), "/"), "shards") {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClusterStriping: three nodes with two drives each, `vaultd cluster
// set-erasure 2+1 --width 8`: one 256 MiB artifact has shard files on at
// least 5 of the 6 drives (one PG's set is 3), and reads back identical,
// whole through another node and by a range across parts; so does a
// multipart upload of eight 5 MiB parts; deleting either leaves no shard
// file.
func TestClusterStriping(t *testing.T) {
	c := startCluster(t, 3)
	st := c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": c.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": c.root.SecretAccessKey}[k]
	}
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"cluster", "set-erasure", "2+1", "--width", "8", "--endpoint", "http://" + c.nodes[0].s3}, getenv, &out, &errb); err != nil {
		t.Fatalf("set-erasure: %v (%s%s)", err, out.String(), errb.String())
	}
	for i := range c.nodes {
		if _, err := waitStatus(t, c, i, 60*time.Second, func(s cluster.Status) string {
			if s.Map.Epoch <= st.Map.Epoch || s.Map.Policy != "2+1" || s.Map.Width != 8 {
				return fmt.Sprintf("map epoch %d %s width %d", s.Map.Epoch, s.Map.Policy, s.Map.Width)
			}
			return ""
		}); err != nil {
			t.Fatalf("%s: %v", c.nodes[i].name, err)
		}
	}
	root := s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}
	const bucket = "striped"
	if _, err := c.s3Client(0, root).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	a := newArtifact("big", 256<<20)
	body := a.body()
	began := time.Now()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	put, err := c.s3Client(1, root).PutObject(pctx, &awss3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(a.key),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(a.size)),
	})
	if err != nil {
		t.Fatalf("put 256 MiB: %v", err)
	}
	if aws.ToString(put.ETag) != a.etag {
		t.Fatalf("ETag %s, want %s", aws.ToString(put.ETag), a.etag)
	}
	t.Logf("256 MiB put in %v", time.Since(began).Round(time.Millisecond))
	var counts []int
	drives := 0
	for _, n := range c.nodes {
		for _, dir := range n.dirs {
			k := countShardFiles(t, dir)
			counts = append(counts, k)
			if k > 0 {
				drives++
			}
		}
	}
	t.Logf("shard files per drive: %v", counts)
	if drives < 5 {
		t.Fatalf("shard files on %d of 6 drives (%v), want at least 5", drives, counts)
	}
	began = time.Now()
	got, err := c.s3Client(2, root).GetObject(pctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(a.key)})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, got.Body)
	got.Body.Close()
	if err != nil || n != int64(a.size) || !bytes.Equal(h.Sum(nil), a.sum[:]) {
		t.Fatalf("get: %d bytes, err %v, sha256 equal %v", n, err, bytes.Equal(h.Sum(nil), a.sum[:]))
	}
	t.Logf("256 MiB get in %v", time.Since(began).Round(time.Millisecond))
	const off, length = 8<<20 - 17, 40<<20 + 33 // across several 4 MiB parts
	rg, err := c.s3Client(0, root).GetObject(pctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(a.key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))})
	if err != nil {
		t.Fatal(err)
	}
	part, err := io.ReadAll(rg.Body)
	rg.Body.Close()
	if err != nil || !bytes.Equal(part, body[off:off+length]) {
		t.Fatalf("range get: %d bytes, err %v, equal %v", len(part), err, bytes.Equal(part, body[off:off+length]))
	}
	if _, err := c.s3Client(0, root).DeleteObject(pctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(a.key)}); err != nil {
		t.Fatal(err)
	}
	shardFilesLeft := func() ([]int, int) {
		var counts []int
		drives := 0
		for _, n := range c.nodes {
			for _, dir := range n.dirs {
				k := countShardFiles(t, dir)
				counts = append(counts, k)
				if k > 0 {
					drives++
				}
			}
		}
		return counts, drives
	}
	waitNoShards := func(when string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			counts, drives := shardFilesLeft()
			if drives == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: shard files left %v", when, counts)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitNoShards("after deleting the striped put")

	// A multipart upload is striped too (issue 14.1): eight 5 MiB parts,
	// uploaded through every node, completed through another.
	const mpKey = "multipart/striped"
	up, err := c.s3Client(0, root).CreateMultipartUpload(pctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(mpKey)})
	if err != nil {
		t.Fatal(err)
	}
	var whole []byte
	var done []types.CompletedPart
	for n := range int32(8) {
		b := newArtifact(fmt.Sprint("part", n), 5<<20).body()
		whole = append(whole, b...)
		pr, err := c.s3Client(int(n)%3, root).UploadPart(pctx, &awss3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(mpKey),
			UploadId: up.UploadId, PartNumber: aws.Int32(n + 1), Body: bytes.NewReader(b)})
		if err != nil {
			t.Fatalf("part %d: %v", n+1, err)
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(n + 1), ETag: pr.ETag})
	}
	if _, err := c.s3Client(2, root).CompleteMultipartUpload(pctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(mpKey),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if counts, drives := shardFilesLeft(); drives < 5 {
		t.Fatalf("multipart: shard files on %d of 6 drives (%v), want at least 5", drives, counts)
	}
	mg, err := c.s3Client(1, root).GetObject(pctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(mpKey)})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := io.ReadAll(mg.Body)
	mg.Body.Close()
	if err != nil || !bytes.Equal(mb, whole) {
		t.Fatalf("multipart get: %d bytes, err %v, equal %v", len(mb), err, bytes.Equal(mb, whole))
	}
	if _, err := c.s3Client(0, root).DeleteObject(pctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(mpKey)}); err != nil {
		t.Fatal(err)
	}
	waitNoShards("after deleting the striped multipart artifact")
}
