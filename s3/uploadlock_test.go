package s3_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestMultipartObjectLock: CreateMultipartUpload's object lock headers
// are applied to the version Complete makes, as AWS; they are refused on
// a bucket without object lock and when malformed.
func TestMultipartObjectLock(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b, plain := aws.String("mplocked"), aws.String("mpplain")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: plain}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	k := aws.String("big")
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: k,
		ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: &until, ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: k, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("locked parts")})
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p.ETag}}}})
	if err != nil {
		t.Fatal(err)
	}
	v := done.VersionId
	r, err := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: b, Key: k, VersionId: v})
	if err != nil || r.Retention.Mode != types.ObjectLockRetentionModeCompliance || !aws.ToTime(r.Retention.RetainUntilDate).Equal(until) {
		t.Fatalf("retention of the completed version: %+v, %v", r, err)
	}
	lh, err := c.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: b, Key: k, VersionId: v})
	if err != nil || lh.LegalHold.Status != types.ObjectLockLegalHoldStatusOn {
		t.Fatalf("legal hold of the completed version: %+v, %v", lh, err)
	}
	h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: k})
	if err != nil || h.ObjectLockMode != types.ObjectLockModeCompliance || h.ObjectLockLegalHoldStatus != types.ObjectLockLegalHoldStatusOn || len(h.Metadata) != 0 {
		t.Fatalf("HEAD: %+v, %v", h, err)
	}
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: k, VersionId: v, BypassGovernanceRetention: aws.Bool(true)})
	wantVStatus(t, "delete of the locked multipart version", err, 403, "AccessDenied", "", "")

	_, err = c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: plain, Key: k, ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
	wantVStatus(t, "lock headers on a bucket without object lock", err, 400, "InvalidRequest", "", "")
	_, err = c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: k, ObjectLockMode: "FOREVER", ObjectLockRetainUntilDate: &until})
	wantVStatus(t, "a bad mode", err, 400, "InvalidArgument", "", "")
}
