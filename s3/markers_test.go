package s3_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestDeleteMarkerByVersion: calls that name a delete marker by version
// id answer as AWS: retention and legal hold reads and writes 405
// MethodNotAllowed with x-amz-delete-marker, a copy from it 400
// InvalidRequest; the version under the marker is untouched.
func TestDeleteMarkerByVersion(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("markers")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	k := aws.String("k")
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("under")}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: k})
	if err != nil || !aws.ToBool(d.DeleteMarker) {
		t.Fatalf("delete: %+v, %v", d, err)
	}
	m := d.VersionId
	_, err = c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: b, Key: k, VersionId: m})
	wantVStatus(t, "GetObjectRetention of a marker", err, 405, "MethodNotAllowed", "x-amz-delete-marker", "true")
	_, err = c.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: b, Key: k, VersionId: m})
	wantVStatus(t, "GetObjectLegalHold of a marker", err, 405, "MethodNotAllowed", "x-amz-delete-marker", "true")
	_, err = c.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: b, Key: k, VersionId: m, LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn}})
	wantVStatus(t, "PutObjectLegalHold of a marker", err, 405, "MethodNotAllowed", "x-amz-delete-marker", "true")
	_, err = c.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{Bucket: b, Key: k, VersionId: m,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(time.Now().Add(time.Hour))}})
	wantVStatus(t, "PutObjectRetention of a marker", err, 405, "MethodNotAllowed", "x-amz-delete-marker", "true")
	_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: aws.String("markers/k?versionId=" + aws.ToString(m))})
	wantVStatus(t, "CopyObject from a marker by version id", err, 400, "InvalidRequest", "", "")
	_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: aws.String("markers/k")})
	wantVStatus(t, "CopyObject from a key whose newest is a marker", err, 404, "NoSuchKey", "", "")
	v, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b})
	if err != nil || len(v.Versions) != 1 || len(v.DeleteMarkers) != 1 || aws.ToBool(v.Versions[0].IsLatest) {
		t.Fatalf("versions after: %+v, %v", v, err)
	}
}

// TestDeleteObjectsETag: a DeleteObjects entry with an ETag deletes only
// if the object's newest version has it, as AWS; a mismatch is that
// entry's PreconditionFailed and leaves the object.
func TestDeleteObjectsETag(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("etags")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	etags := map[string]string{}
	for _, k := range []string{"match", "mismatch", "plain"} {
		p, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: strings.NewReader("body of " + k)})
		if err != nil {
			t.Fatal(err)
		}
		etags[k] = aws.ToString(p.ETag)
	}
	out, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("match"), ETag: aws.String(etags["match"])},
		{Key: aws.String("mismatch"), ETag: aws.String(etags["match"])},
		{Key: aws.String("plain")},
		{Key: aws.String("absent"), ETag: aws.String(etags["match"])},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Errors) != 1 || aws.ToString(out.Errors[0].Key) != "mismatch" || aws.ToString(out.Errors[0].Code) != "PreconditionFailed" || len(out.Deleted) != 3 {
		t.Fatalf("DeleteObjects: deleted %d, errors %+v", len(out.Deleted), out.Errors)
	}
	l, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: b})
	if err != nil || len(l.Contents) != 1 || aws.ToString(l.Contents[0].Key) != "mismatch" {
		t.Fatalf("left: %+v, %v", l.Contents, err)
	}
}
