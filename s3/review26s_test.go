package s3_test

// Review 26s of 6b30fba (the DIFF26 fixes): CompleteMultipartUpload's
// whole-object checksum, storage classes, continuation tokens.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// review26sUpload creates a CRC32 upload of type typ ("" for the default,
// COMPOSITE) with two parts and returns its id, the parts to complete with
// and the CRC32 of the whole object.
func review26sUpload(t *testing.T, c *awss3.Client, bucket, key string, typ types.ChecksumType) (*string, []types.CompletedPart, string) {
	t.Helper()
	up, err := c.CreateMultipartUpload(t.Context(), &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32, ChecksumType: typ})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := randBytes(11, 5<<20), randBytes(12, 777)
	var parts []types.CompletedPart
	for n, data := range [][]byte{p1, p2} {
		out, err := c.UploadPart(t.Context(), &awss3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(n + 1)), Body: bytes.NewReader(data), ChecksumCRC32: aws.String(crc32Base64(data))})
		if err != nil {
			t.Fatalf("part %d: %v", n+1, err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(n + 1)), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	}
	return up.UploadId, parts, crc32Base64(append(append([]byte{}, p1...), p2...))
}

// TestReview26sCompleteChecksumTypeMismatch (R1): CompleteMultipartUpload's
// x-amz-checksum-type (ChecksumType, which s3transfer sends with
// FULL_OBJECT whenever a caller gives a whole checksum) "If the checksum
// type doesn't match the checksum type that was specified for the object
// during the CreateMultipartUpload request, it'll result in a BadDigest
// error" (API reference). Vaultaire ignores the header: a COMPOSITE upload
// completed "as FULL_OBJECT" answers 200 with a composite checksum.
func TestReview26sCompleteChecksumTypeMismatch(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "ctype")
	id, parts, _ := review26sUpload(t, c, "ctype", "comp", "")
	_, err := c.CompleteMultipartUpload(t.Context(), &awss3.CompleteMultipartUploadInput{Bucket: aws.String("ctype"), Key: aws.String("comp"),
		UploadId: id, ChecksumType: types.ChecksumTypeFullObject, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	wantCode(t, "FULL_OBJECT Complete of a COMPOSITE upload", err, "BadDigest")

	id, parts, whole := review26sUpload(t, c, "ctype", "full", types.ChecksumTypeFullObject)
	_, err = c.CompleteMultipartUpload(t.Context(), &awss3.CompleteMultipartUploadInput{Bucket: aws.String("ctype"), Key: aws.String("full"),
		UploadId: id, ChecksumCRC32: aws.String(whole), ChecksumType: types.ChecksumTypeComposite, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	wantCode(t, "COMPOSITE Complete of a FULL_OBJECT upload", err, "BadDigest")
}

// TestReview26sRetriedCompleteIgnoresAssertions (R2): a Complete retried
// after the upload completed answers 200 with the stored checksum whatever
// x-amz-checksum-crc32 or x-amz-mp-object-size it asserts: finish (where
// checkWholeChecksum and the size check run) is not called on the retry
// path, and the answer carries a checksum other than the one the request
// declared. The first Complete refuses the same assertions.
func TestReview26sRetriedCompleteIgnoresAssertions(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "retry")
	id, parts, whole := review26sUpload(t, c, "retry", "k", types.ChecksumTypeFullObject)
	in := func(sum string, size int64) *awss3.CompleteMultipartUploadInput {
		in := &awss3.CompleteMultipartUploadInput{Bucket: aws.String("retry"), Key: aws.String("k"), UploadId: id,
			ChecksumCRC32: aws.String(sum), ChecksumType: types.ChecksumTypeFullObject, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}
		if size >= 0 {
			in.MpuObjectSize = aws.Int64(size)
		}
		return in
	}
	wrong := crc32Base64([]byte("not the object"))
	if _, err := c.CompleteMultipartUpload(t.Context(), in(wrong, -1)); apiCode(err) != "BadDigest" {
		t.Fatalf("first Complete with a wrong whole CRC32: %v, want BadDigest", err)
	}
	if _, err := c.CompleteMultipartUpload(t.Context(), in(whole, -1)); err != nil {
		t.Fatal(err)
	}
	out, err := c.CompleteMultipartUpload(t.Context(), in(wrong, -1))
	if err == nil {
		t.Fatalf("retried Complete declaring CRC32 %s answered 200 with CRC32 %s", wrong, aws.ToString(out.ChecksumCRC32))
	}
	wantCode(t, "retried Complete with a wrong whole CRC32", err, "BadDigest")
	_, err = c.CompleteMultipartUpload(t.Context(), in(whole, 1))
	wantCode(t, "retried Complete with a wrong x-amz-mp-object-size", err, "InvalidRequest")
}

// TestReview26sPostObjectStorageClass (R3): 6b30fba refuses an unknown
// x-amz-storage-class on PutObject, CopyObject and CreateMultipartUpload
// (headerRules), but a POST form's x-amz-storage-class field is not
// checked (refusedField): BOGUS is stored with 204.
func TestReview26sPostObjectStorageClass(t *testing.T) {
	e := startServer(t)
	createBucket(t, e, "postsc")
	now := time.Now()
	cred := "ALICEKEY/" + now.UTC().Format("20060102") + "/us-east-1/s3/aws4_request"
	date := now.UTC().Format("20060102T150405Z")
	policy := fmt.Sprintf(`{"expiration": %q, "conditions": [{"bucket": "postsc"}, ["eq", "$key", "k"], {"x-amz-storage-class": "BOGUS"}, {"x-amz-algorithm": "AWS4-HMAC-SHA256"}, {"x-amz-credential": %q}, {"x-amz-date": %q}]}`,
		now.Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z"), cred, date)
	b64 := base64.StdEncoding.EncodeToString([]byte(policy))
	fields := map[string]string{"key": "k", "policy": b64, "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": cred,
		"x-amz-date": date, "x-amz-signature": signPolicy("alicesecret", cred, b64), "x-amz-storage-class": "BOGUS"}
	status, _, body := postForm(t, e.endpoint+"/postsc", fields, "f", strings.NewReader("hello"))
	if status != http.StatusBadRequest || !strings.Contains(body, "InvalidStorageClass") {
		t.Fatalf("POST form with x-amz-storage-class BOGUS: %d %s, want 400 InvalidStorageClass", status, body)
	}
}

// TestReview26sSelfCopyStorageClass (R4, older than 6b30fba): copying an
// object onto itself to change its storage class is how the aws cli (`aws
// s3 cp s3://b/k s3://b/k --storage-class STANDARD_IA`), rclone settier
// and boto3 copy_object(StorageClass=...) change a class; S3 allows it
// (its own error text: "without changing the object's metadata, storage
// class, ..."). Vaultaire now accepts S3's classes but refuses this copy
// with InvalidRequest.
func TestReview26sSelfCopyStorageClass(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "selfsc")
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("selfsc"), Key: aws.String("k"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CopyObject(t.Context(), &awss3.CopyObjectInput{Bucket: aws.String("selfsc"), Key: aws.String("k"),
		CopySource: aws.String("selfsc/k"), StorageClass: types.StorageClassStandardIa})
	if err != nil {
		t.Fatalf("CopyObject onto itself with x-amz-storage-class STANDARD_IA: %v (S3 allows it)", err)
	}
}
