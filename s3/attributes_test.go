package s3_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestGetObjectAttributes: ETag (unquoted), size, storage class and the
// stored checksum of a PutObject; the parts of a multipart object, paged;
// errors with their codes.
func TestGetObjectAttributes(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "attrs")
	ctx := t.Context()
	b := aws.String("attrs")
	all := []types.ObjectAttributes{types.ObjectAttributesEtag, types.ObjectAttributesChecksum, types.ObjectAttributesObjectParts,
		types.ObjectAttributesStorageClass, types.ObjectAttributesObjectSize}
	put, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("one"), Body: strings.NewReader("attributes"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: b, Key: aws.String("one"), ObjectAttributes: all})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.ETag) != strings.Trim(aws.ToString(put.ETag), `"`) || aws.ToInt64(out.ObjectSize) != 10 || out.StorageClass != types.StorageClassStandard {
		t.Fatalf("attributes = ETag %q size %v class %q; want %s, 10, STANDARD", aws.ToString(out.ETag), out.ObjectSize, out.StorageClass, aws.ToString(put.ETag))
	}
	if out.Checksum == nil || aws.ToString(out.Checksum.ChecksumSHA256) != aws.ToString(put.ChecksumSHA256) || out.Checksum.ChecksumType != types.ChecksumTypeFullObject {
		t.Fatalf("checksum = %+v, want SHA-256 %s FULL_OBJECT", out.Checksum, aws.ToString(put.ChecksumSHA256))
	}
	if out.ObjectParts != nil || out.LastModified == nil {
		t.Fatalf("single PUT: parts %+v, Last-Modified %v", out.ObjectParts, out.LastModified)
	}
	only, err := c.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: b, Key: aws.String("one"), ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesObjectSize}})
	if err != nil || only.ETag != nil || only.Checksum != nil || aws.ToInt64(only.ObjectSize) != 10 {
		t.Fatalf("ObjectSize only = %+v, %v", only, err)
	}

	// A multipart object of three parts, with CRC32 part checksums: S3
	// lists an object's parts only if it has an additional checksum
	// (TestS3Low27AttributesPartsWithoutChecksum).
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{5 << 20, 5 << 20, 7}
	var parts []types.CompletedPart
	for i, n := range sizes {
		data := randBytes(uint64(i), n)
		pr, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(data),
			ChecksumCRC32: aws.String(crc32Base64(data))})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: pr.ETag, ChecksumCRC32: pr.ChecksumCRC32})
	}
	done, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		t.Fatal(err)
	}
	out, err = c.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: b, Key: aws.String("mp"), ObjectAttributes: all, MaxParts: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	p := out.ObjectParts
	if aws.ToString(out.ETag) != strings.Trim(aws.ToString(done.ETag), `"`) || p == nil || aws.ToInt32(p.TotalPartsCount) != 3 || !aws.ToBool(p.IsTruncated) ||
		len(p.Parts) != 2 || aws.ToString(p.NextPartNumberMarker) != "2" || aws.ToInt64(p.Parts[1].Size) != 5<<20 {
		t.Fatalf("multipart attributes: ETag %q parts %+v", aws.ToString(out.ETag), p)
	}
	out, err = c.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: b, Key: aws.String("mp"), ObjectAttributes: all, PartNumberMarker: aws.String("2")})
	if err != nil {
		t.Fatal(err)
	}
	if p := out.ObjectParts; len(p.Parts) != 1 || aws.ToInt32(p.Parts[0].PartNumber) != 3 || aws.ToInt64(p.Parts[0].Size) != 7 || aws.ToBool(p.IsTruncated) {
		t.Fatalf("parts after marker 2: %+v", p)
	}

	_, err = c.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: b, Key: aws.String("missing"), ObjectAttributes: all})
	wantCode(t, "missing object", err, "NoSuchKey")
	_, err = c.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: b, Key: aws.String("one"), ObjectAttributes: []types.ObjectAttributes{"Bogus"}})
	wantCode(t, "unknown attribute", err, "InvalidArgument")
	if status, body := signed(t, "GET", e.endpoint+"/attrs/one?attributes", "", time.Now()); status != 400 || !strings.Contains(body, "<Code>InvalidArgument</Code>") {
		t.Fatalf("no x-amz-object-attributes: %d %s", status, body)
	}
}

// TestGetObjectAttributesVersion: with a versionId, GetObjectAttributes
// answers for that version, not the current one (probe M4), with its
// x-amz-version-id.
func TestGetObjectAttributesVersion(t *testing.T) {
	e := startConfigServer(t)
	c := e.client("ALICEKEY", "alicesecret")
	ctx := t.Context()
	b := aws.String("vattrs")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: b, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, body := range []string{"old", "newer body"} {
		put, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(put.VersionId))
	}
	for i, want := range []int64{3, 10} {
		out, err := c.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(ids[i]),
			ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesObjectSize}})
		if err != nil || aws.ToInt64(out.ObjectSize) != want || aws.ToString(out.VersionId) != ids[i] {
			t.Fatalf("version %d: %+v, %v; want size %d, version %s", i, out, err, want, ids[i])
		}
	}
}
