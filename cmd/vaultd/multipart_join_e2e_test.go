package main

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3"
)

// TestClusterMultipartAcrossJoin: a multipart upload is started and two
// parts are written through n1 and n2 of a three-node cluster; a fourth
// node joins (a new map, a new erasure policy for eight drives); part 2 is
// then replaced by two concurrent uploads through n3 and the new n4 (part
// commits are serialized cluster-wide per upload: the listed ETag must be
// one of the two bodies, whole), part 3 is written through n4, and the
// upload is completed through n3. Before those, once the new map has
// settled, the leader has moved the open upload into it and dropped the
// older maps. The object reads back identical through every node.
func TestClusterMultipartAcrossJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts vaultd processes")
	}
	c := prepareCluster(t, 4)
	for _, n := range c.nodes {
		// An upload active within this long held its map before the
		// migrator moved uploads: it no longer holds it.
		n.extra = append(n.extra, "--upload-hold", "10m")
	}
	for _, n := range c.nodes[:3] {
		n.start(t)
		n.waitHealthy(t, 60*time.Second)
	}
	drivesIs := func(want int) func(cluster.Status) string {
		return func(st cluster.Status) string {
			if st.Map.Drives != want {
				return fmt.Sprintf("map has %d drives, want %d", st.Map.Drives, want)
			}
			return ""
		}
	}
	if _, err := waitStatus(t, c, 0, 90*time.Second, drivesIs(6)); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	root := s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}
	cl := func(i int) *awss3.Client { return c.s3Client(i, root) }
	const bucket, key = "mpjoin", "across/join.bin"
	if _, err := cl(0).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	body := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	etagOf := func(b []byte) string { s := md5.Sum(b); return `"` + hex.EncodeToString(s[:]) + `"` }
	up, err := cl(0).CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	id := up.UploadId
	put := func(node int, num int32, b []byte) error {
		_, err := cl(node).UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: id,
			PartNumber: aws.Int32(num), Body: bytes.NewReader(b)})
		return err
	}
	parts := map[int32][]byte{1: body(5 << 20), 2: body(5 << 20)}
	if err := put(0, 1, parts[1]); err != nil {
		t.Fatalf("part 1 through n1: %v", err)
	}
	if err := put(1, 2, parts[2]); err != nil {
		t.Fatalf("part 2 through n2: %v", err)
	}
	before, err := waitStatus(t, c, 0, 10*time.Second, drivesIs(6))
	if err != nil {
		t.Fatal(err)
	}

	// The fourth node joins: a new map.
	c.nodes[3].start(t)
	c.nodes[3].waitHealthy(t, 60*time.Second)
	after, err := waitStatus(t, c, 3, 90*time.Second, drivesIs(8))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("map epoch %d (%s) → %d (%s)", before.Map.Epoch, before.Map.Policy, after.Map.Epoch, after.Map.Policy)
	// Once the map has settled, the leader's migrator moves the upload
	// into the current map (engine.MoveUploads) and drops the older maps
	// while the upload is still open: it is neither lost nor holding them
	// (its --upload-hold would have held them 10 minutes).
	if _, err := waitStatus(t, c, 0, engine.MapSettle+120*time.Second, func(st cluster.Status) string {
		if len(st.Map.Older) > 0 || st.Map.UploadsHolding != 0 {
			return fmt.Sprintf("older maps %v, %d uploads holding them", st.Map.Older, st.Map.UploadsHolding)
		}
		return ""
	}); err != nil {
		t.Fatalf("with the upload open, the older maps: %v", err)
	}
	if lp, err := cl(3).ListParts(ctx, &awss3.ListPartsInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: id}); err != nil || len(lp.Parts) != 2 {
		t.Fatalf("ListParts through n4 after the older maps went: %+v, %v; want parts 1 and 2", lp, err)
	}

	// Part 2 replaced by two concurrent uploads through n3 and n4.
	alt := [2][]byte{body(5 << 20), body(5 << 20)}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { errs[i] = put(2+i, 2, alt[i]) })
	}
	wg.Wait()
	if errs[0] != nil && errs[1] != nil {
		t.Fatalf("both replacements of part 2 failed: %v; %v", errs[0], errs[1])
	}
	parts[3] = body(1 << 20)
	if err := put(3, 3, parts[3]); err != nil {
		t.Fatalf("part 3 through n4: %v", err)
	}
	lp, err := cl(1).ListParts(ctx, &awss3.ListPartsInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(lp.Parts) != 3 {
		t.Fatalf("ListParts through n2 lists %d parts, want 3", len(lp.Parts))
	}
	var done []types.CompletedPart
	for _, p := range lp.Parts {
		num, etag := aws.ToInt32(p.PartNumber), aws.ToString(p.ETag)
		if num == 2 {
			switch etag {
			case etagOf(alt[0]):
				parts[2] = alt[0]
			case etagOf(alt[1]):
				parts[2] = alt[1]
			default:
				t.Fatalf("part 2 lists ETag %s: neither replacement (errors %v, %v)", etag, errs[0], errs[1])
			}
		}
		if etag != etagOf(parts[num]) {
			t.Fatalf("part %d lists ETag %s, want %s", num, etag, etagOf(parts[num]))
		}
		done = append(done, types.CompletedPart{PartNumber: p.PartNumber, ETag: p.ETag})
	}
	if _, err := cl(2).CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
		UploadId: id, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatalf("Complete through n3: %v", err)
	}
	want := bytes.Join([][]byte{parts[1], parts[2], parts[3]}, nil)
	check := func(when string) {
		t.Helper()
		for i := range c.nodes {
			got, err := getAll(ctx, cl(i), bucket, key)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: GET through n%d = %d bytes, %v; want the %d bytes of parts 1, 2, 3", when, i+1, len(got), err, len(want))
			}
		}
	}
	check("after Complete")
	if _, err := waitStatus(t, c, 0, 180*time.Second, func(st cluster.Status) string {
		if len(st.Map.Older) > 0 {
			return fmt.Sprintf("older maps %v still in use", st.Map.Older)
		}
		if st.Map.UploadsHolding != 0 {
			return fmt.Sprintf("%d uploads holding no older map", st.Map.UploadsHolding)
		}
		return ""
	}); err != nil {
		t.Fatal(err)
	}
	check("after migration")
}
