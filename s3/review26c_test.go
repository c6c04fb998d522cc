package s3_test

// Review 26c of 5a157c3 (the review 26s fixes).

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestReview26cSelfCopyKeepsPartsChecksum: R4 made an in-place copy with
// a storage class legal (aws s3 cp --storage-class, rclone settier). Of a
// multipart object, the copy is a single-part object (its ETag has no
// "-N"), yet it keeps the source's composite checksum "<crc>-2"
// (COMPOSITE): HEAD/GET with checksum mode and GetObjectAttributes answer
// a checksum of parts the object no longer has. A CopyObject asking for
// another algorithm (x-amz-checksum-algorithm CRC32C) gets the source's
// CRC32 instead. S3 computes the copy's checksum. Older than 5a157c3 (any
// CopyObject does it); R4 puts it on the in-place class change path.
func TestReview26cSelfCopyKeepsPartsChecksum(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "selfck")
	id, parts, _ := review26sUpload(t, c, "selfck", "m", "")
	if _, err := c.CompleteMultipartUpload(t.Context(), &awss3.CompleteMultipartUploadInput{Bucket: aws.String("selfck"), Key: aws.String("m"),
		UploadId: id, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CopyObject(t.Context(), &awss3.CopyObjectInput{Bucket: aws.String("selfck"), Key: aws.String("m"),
		CopySource: aws.String("selfck/m"), StorageClass: types.StorageClassStandardIa}); err != nil {
		t.Fatal(err)
	}
	h, err := c.HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: aws.String("selfck"), Key: aws.String("m"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	etag, sum := aws.ToString(h.ETag), aws.ToString(h.ChecksumCRC32)
	if !strings.Contains(etag, "-") && strings.Contains(sum, "-") {
		t.Errorf("after an in-place copy with a storage class: ETag %s (one part), checksum %s %s (of 2 parts)", etag, sum, h.ChecksumType)
	}
	if _, err := c.CopyObject(t.Context(), &awss3.CopyObjectInput{Bucket: aws.String("selfck"), Key: aws.String("m"),
		CopySource: aws.String("selfck/m"), StorageClass: types.StorageClassStandard, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c}); err != nil {
		t.Fatal(err)
	}
	h, err = c.HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: aws.String("selfck"), Key: aws.String("m"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if h.ChecksumCRC32C == nil {
		t.Errorf("copy with x-amz-checksum-algorithm CRC32C: no CRC32C (CRC32 %s)", aws.ToString(h.ChecksumCRC32))
	}
}
