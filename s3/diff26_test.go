package s3_test

// Session 26's differential probe (bench/diff26): requests whose answers
// from Vaultaire differed from MinIO's and from the AWS S3 API reference.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func crc32Base64(b []byte) string {
	var s [4]byte
	binary.BigEndian.PutUint32(s[:], crc32.ChecksumIEEE(b))
	return base64.StdEncoding.EncodeToString(s[:])
}

// TestDiff26CompleteFullObjectChecksumHeader: CompleteMultipartUpload's
// x-amz-checksum-crc32 (ChecksumCRC32 in the SDKs) is the checksum of the
// whole object of a FULL_OBJECT upload, which S3 checks against the one it
// computes from the parts. Vaultaire's signature layer takes every
// x-amz-checksum-* header as the checksum of the request body, so it
// checks the value against the CompleteMultipartUpload XML and refuses the
// right value with BadDigest (MinIO also refuses it, with InvalidArgument).
func TestDiff26CompleteFullObjectChecksumHeader(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("fullsum")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	key := aws.String("obj")
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32, ChecksumType: types.ChecksumTypeFullObject})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := randBytes(1, 5<<20), randBytes(2, 1000)
	var parts []types.CompletedPart
	for n, data := range [][]byte{p1, p2} {
		out, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(n + 1)), Body: bytes.NewReader(data), ChecksumCRC32: aws.String(crc32Base64(data))})
		if err != nil {
			t.Fatalf("part %d: %v", n+1, err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(n + 1)), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	}
	whole := crc32Base64(append(append([]byte{}, p1...), p2...))
	_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
		ChecksumCRC32: aws.String(crc32Base64(p1)), ChecksumType: types.ChecksumTypeFullObject,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	wantCode(t, "complete with another object's CRC32", err, "BadDigest")
	_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
		ChecksumSHA256:  aws.String(base64.StdEncoding.EncodeToString(make([]byte, 32))),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	wantCode(t, "complete with a SHA-256 of a CRC32 upload", err, "InvalidRequest")
	done, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
		ChecksumCRC32: aws.String(whole), ChecksumType: types.ChecksumTypeFullObject,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		t.Fatalf("complete with the object's full CRC32 %s: %v (AWS accepts it)", whole, err)
	}
	if got := aws.ToString(done.ChecksumCRC32); got != whole {
		t.Fatalf("complete answered CRC32 %q, want %q", got, whole)
	}
}

// TestDiff26UploadPartCopyImproperRange: a malformed
// x-amz-copy-source-range (not "bytes=first-last") is a bad argument, 400
// InvalidArgument on AWS (ceph s3-tests test_multipart_copy_improper_range,
// which passes against AWS; MinIO agrees); Vaultaire answers 416
// InvalidRange, the answer for a range the object cannot satisfy.
func TestDiff26UploadPartCopyImproperRange(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("upcrange")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("src"), Body: bytes.NewReader([]byte("01234"))}); err != nil {
		t.Fatal(err)
	}
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	for _, rg := range []string{"0-2", "bytes=0", "bytes=hello-world", "bytes=0-bar", "bytes=hello-", "bytes=0-2,3-5"} {
		_, err := c.UploadPartCopy(ctx, &awss3.UploadPartCopyInput{Bucket: b, Key: aws.String("dst"), UploadId: up.UploadId,
			PartNumber: aws.Int32(1), CopySource: aws.String("upcrange/src"), CopySourceRange: aws.String(rg)})
		wantCode(t, "UploadPartCopy range "+rg, err, "InvalidArgument")
	}
}

// TestDiff26InvalidStorageClass: S3 refuses a storage class it does not
// know with 400 InvalidStorageClass (MinIO too); Vaultaire stores the
// object and drops the header.
func TestDiff26InvalidStorageClass(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("sclass")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: bytes.NewReader([]byte("x")),
		StorageClass: types.StorageClass("BOGUS")})
	wantCode(t, "PutObject with storage class BOGUS", err, "InvalidStorageClass")
}

// TestDiff26ChecksumPartsConsecutive: the API reference (CompletedPart):
// "when an additional checksum ... is applied to each part, the PartNumber
// must start at 1 and the part numbers must be consecutive. Otherwise,
// Amazon S3 generates an HTTP 400 Bad Request status code and an
// InvalidPartOrder error code." Vaultaire completes parts 1 and 3.
func TestDiff26ChecksumPartsConsecutive(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("consec")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	key := aws.String("obj")
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for _, n := range []int32{1, 3} {
		data := randBytes(uint64(n), 5<<20)
		out, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(n),
			Body: bytes.NewReader(data), ChecksumCRC32: aws.String(crc32Base64(data))})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	}
	_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	wantCode(t, "complete of CRC32 parts 1 and 3", err, "InvalidPartOrder")
}

// TestDiff26RetentionNoneCode: GetObjectRetention of an object without a
// retention is NoSuchObjectLockConfiguration ("The specified object does
// not have a ObjectLock configuration", 404) on AWS; Vaultaire answers the
// bucket-level ObjectLockConfigurationNotFoundError (MinIO issue 9943
// records the AWS code). objectlock_test.go asserts Vaultaire's code today.
func TestDiff26RetentionNoneCode(t *testing.T) {
	e := startConfigServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("retnone")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: bytes.NewReader([]byte("x"))}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: b, Key: aws.String("k")})
	wantCode(t, "GetObjectRetention without a retention", err, "NoSuchObjectLockConfiguration")
}

// TestDiff26MpObjectSize: CompleteMultipartUpload's x-amz-mp-object-size
// (MpuObjectSize in the SDKs) is the size the client expects; "a mismatch
// between the specified object size value and the actual object size value
// results in an HTTP 400 InvalidRequest error" (API reference). Vaultaire,
// like MinIO, ignores it and completes a 3-byte object declared as 999.
func TestDiff26MpObjectSize(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("mpsize")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	key := aws.String("obj")
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("abc"))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId, MpuObjectSize: aws.Int64(999),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: out.ETag}}}})
	wantCode(t, "complete of 3 bytes declared as 999", err, "InvalidRequest")
}

// TestDiff26AttributesPartChecksums: GetObjectAttributes of a multipart
// object uploaded with CRC32 part checksums lists each part with its
// ChecksumCRC32 (ObjectPart in the API reference; MinIO does); Vaultaire
// listed the parts' numbers and sizes only (D3).
func TestDiff26AttributesPartChecksums(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("attrsum")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	key := aws.String("obj")
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	var sums []string
	for n, data := range [][]byte{randBytes(1, 5<<20), randBytes(2, 100)} {
		sum := crc32Base64(data)
		sums = append(sums, sum)
		out, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(n + 1)),
			Body: bytes.NewReader(data), ChecksumCRC32: aws.String(sum)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(n + 1)), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	attrs, err := c.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: b, Key: key,
		ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesObjectParts}})
	if err != nil {
		t.Fatal(err)
	}
	if attrs.ObjectParts == nil || len(attrs.ObjectParts.Parts) != 2 {
		t.Fatalf("object parts %+v", attrs.ObjectParts)
	}
	for i, p := range attrs.ObjectParts.Parts {
		if got := aws.ToString(p.ChecksumCRC32); got != sums[i] {
			t.Errorf("part %d: ChecksumCRC32 %q, want %q", i+1, got, sums[i])
		}
	}
}

// TestDiff26GarbageContinuationToken: a ListObjectsV2 continuation token
// that the server never issued is refused by S3 (400 InvalidArgument, "The
// continuation token provided is incorrect"; MinIO too). Vaultaire decodes
// whatever it is given and lists from the position it happens to name.
func TestDiff26GarbageContinuationToken(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("ctoken")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "z"} {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: bytes.NewReader([]byte("x"))}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: b, ContinuationToken: aws.String("garbage")})
	if err == nil {
		t.Fatalf("continuation token %q accepted: %d keys listed", "garbage", len(out.Contents))
	}
	wantCode(t, "ListObjectsV2 with a garbage continuation token", err, "InvalidArgument")
}

// TestDiff26ChecksumTypeOnGet: GET and HEAD with x-amz-checksum-mode
// ENABLED of a PutObject stored with a CRC32 answer its type, FULL_OBJECT,
// beside the checksum, as S3 does (DIFF26 D10); they answered the checksum
// alone.
func TestDiff26ChecksumTypeOnGet(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("sumtype")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	data := []byte("checksummed")
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: bytes.NewReader(data), ChecksumCRC32: aws.String(crc32Base64(data))}); err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("k"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ChecksumCRC32) != crc32Base64(data) || head.ChecksumType != types.ChecksumTypeFullObject {
		t.Fatalf("HEAD: CRC32 %q type %q, want %q FULL_OBJECT", aws.ToString(head.ChecksumCRC32), head.ChecksumType, crc32Base64(data))
	}
}

// TestDiff26PartChecksumAlgorithm: a part of an upload created with CRC32
// that carries a SHA-256 checksum instead is refused at UploadPart, as S3
// refuses it (DIFF26 D8); it was stored, and the upload then could not
// be completed (its part lacks the upload's checksum).
func TestDiff26PartChecksumAlgorithm(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("partalg")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	key := aws.String("obj")
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("part one")
	_, err = c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(1),
		Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	wantCode(t, "a SHA-256 part of a CRC32 upload", err, "InvalidRequest")
	out, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(1),
		Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatalf("a CRC32 part of a CRC32 upload: %v", err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32}}}}); err != nil {
		t.Fatalf("complete: %v", err)
	}
}

// TestDiff26ListPartsChecksums: ListParts of a CRC32 upload answers each
// part's checksum, as S3 does (DIFF26 D9): a client resuming an upload
// rebuilds Complete's part list, checksums included, from it.
func TestDiff26ListPartsChecksums(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("lpsum")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	key := aws.String("obj")
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(3, 1000)
	if _, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(1),
		Body: bytes.NewReader(data), ChecksumCRC32: aws.String(crc32Base64(data))}); err != nil {
		t.Fatal(err)
	}
	lp, err := c.ListParts(ctx, &awss3.ListPartsInput{Bucket: b, Key: key, UploadId: up.UploadId})
	if err != nil {
		t.Fatal(err)
	}
	if len(lp.Parts) != 1 {
		t.Fatalf("ListParts: %d parts, want 1", len(lp.Parts))
	}
	if got := aws.ToString(lp.Parts[0].ChecksumCRC32); got != crc32Base64(data) {
		t.Fatalf("ListParts: part 1's CRC32 %q, want %q", got, crc32Base64(data))
	}
}
