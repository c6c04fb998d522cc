package s3_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestObjectLock drives object lock with aws-sdk-go-v2: a bucket created
// with it, COMPLIANCE and GOVERNANCE retentions and a legal hold against
// DeleteObject, DeleteObjects, overwrites, retention changes and bucket
// deletion.
func TestObjectLock(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("locked")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: b}); err != nil || v.Status != types.BucketVersioningStatusEnabled {
		t.Fatalf("versioning of a locked bucket: %+v, %v", v, err)
	}
	if l, err := c.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: b}); err != nil || l.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		t.Fatalf("GetObjectLockConfiguration: %+v, %v", l, err)
	}
	_, err := c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: b, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}})
	wantVStatus(t, "suspending a locked bucket", err, 409, "InvalidBucketState", "", "")

	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	put, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("c"), Body: strings.NewReader("keep"),
		ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: &until})
	if err != nil {
		t.Fatal(err)
	}
	cv := put.VersionId
	h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("c")})
	if err != nil || h.ObjectLockMode != types.ObjectLockModeCompliance || !aws.ToTime(h.ObjectLockRetainUntilDate).Equal(until) || len(h.Metadata) != 0 {
		t.Fatalf("HEAD of a locked object: %+v, %v", h, err)
	}
	if r, err := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: b, Key: aws.String("c"), VersionId: cv}); err != nil || r.Retention.Mode != types.ObjectLockRetentionModeCompliance {
		t.Fatalf("GetObjectRetention: %+v, %v", r, err)
	}
	// COMPLIANCE: no delete by id, with or without the bypass; no
	// shortening; overwrites and delete markers leave the version.
	for _, bypass := range []bool{false, true} {
		_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("c"), VersionId: cv, BypassGovernanceRetention: aws.Bool(bypass)})
		wantVStatus(t, "delete of a COMPLIANCE version", err, 403, "AccessDenied", "", "")
	}
	dout, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("c"), VersionId: cv}}}})
	if err != nil || len(dout.Errors) != 1 || aws.ToString(dout.Errors[0].Code) != "AccessDenied" {
		t.Fatalf("DeleteObjects of a COMPLIANCE version: %+v, %v", dout, err)
	}
	_, err = c.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{Bucket: b, Key: aws.String("c"), VersionId: cv, BypassGovernanceRetention: aws.Bool(true),
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(until.Add(time.Hour))}})
	wantVStatus(t, "COMPLIANCE to GOVERNANCE", err, 403, "AccessDenied", "", "")
	_, err = c.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{Bucket: b, Key: aws.String("c"), VersionId: cv,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: aws.Time(until.Add(-time.Minute))}})
	wantVStatus(t, "shortening COMPLIANCE", err, 403, "AccessDenied", "", "")
	if _, err := c.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{Bucket: b, Key: aws.String("c"), VersionId: cv,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: aws.Time(until.Add(time.Hour))}}); err != nil {
		t.Fatalf("extending COMPLIANCE: %v", err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("c"), Body: strings.NewReader("over")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("c")}); err != nil {
		t.Fatalf("delete marker over a locked version: %v", err)
	}
	if got, _ := getBody(t, c, "locked", "c", aws.ToString(cv)); got != "keep" {
		t.Fatalf("locked version after overwrite and delete: %q", got)
	}
	_, err = c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: b})
	wantCode(t, "DeleteBucket with a locked version", err, "BucketNotEmpty")
	// A copy's lock is its own: none here (no headers, no default yet).
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("c2"), CopySource: aws.String("locked/c?versionId=" + aws.ToString(cv))}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: b, Key: aws.String("c2")})
	wantVStatus(t, "retention of a copy of a locked version", err, 404, "NoSuchObjectLockConfiguration", "", "")

	// GOVERNANCE by default retention: yields to the bypass only.
	if _, err := c.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: b, ObjectLockConfiguration: &types.ObjectLockConfiguration{
		ObjectLockEnabled: types.ObjectLockEnabledEnabled,
		Rule:              &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeGovernance, Days: aws.Int32(1)}}}}); err != nil {
		t.Fatal(err)
	}
	gput, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("g"), Body: strings.NewReader("gov")})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: b, Key: aws.String("g")}); err != nil || r.Retention.Mode != types.ObjectLockRetentionModeGovernance || aws.ToTime(r.Retention.RetainUntilDate).Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("default retention: %+v, %v", r, err)
	}
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("g"), VersionId: gput.VersionId})
	wantVStatus(t, "delete of a GOVERNANCE version", err, 403, "AccessDenied", "", "")
	// A legal hold holds against the bypass too.
	if _, err := c.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: b, Key: aws.String("g"), VersionId: gput.VersionId,
		LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("g"), VersionId: gput.VersionId, BypassGovernanceRetention: aws.Bool(true)})
	wantVStatus(t, "delete of a version on legal hold", err, 403, "AccessDenied", "", "")
	if _, err := c.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: b, Key: aws.String("g"), VersionId: gput.VersionId,
		LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOff}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("g"), VersionId: gput.VersionId, BypassGovernanceRetention: aws.Bool(true)}); err != nil {
		t.Fatalf("delete of a GOVERNANCE version with the bypass: %v", err)
	}

	// A retention that ended lets the version go.
	short := time.Now().Add(2 * time.Second).UTC()
	sput, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("s"), Body: strings.NewReader("brief"),
		ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: &short})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("s"), VersionId: sput.VersionId})
	wantVStatus(t, "delete before the retention ends", err, 403, "AccessDenied", "", "")
	time.Sleep(time.Until(short) + time.Second)
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("s"), VersionId: sput.VersionId}); err != nil {
		t.Fatalf("delete once the retention ended: %v", err)
	}

	// A bucket without object lock.
	nb := aws.String("plain")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: nb}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: nb})
	wantVStatus(t, "GetObjectLockConfiguration without one", err, 404, "ObjectLockConfigurationNotFoundError", "", "")
	_, err = c.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: nb, ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled}})
	wantVStatus(t, "object lock on an unversioned bucket", err, 409, "InvalidBucketState", "", "")
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: nb, Key: aws.String("k"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{Bucket: nb, Key: aws.String("k"),
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(until)}})
	wantVStatus(t, "retention in a bucket without object lock", err, 400, "InvalidRequest", "", "")
}

// TestRetainUntilBeyond2262: a retain-until date later than the engine can
// store (int64 nanoseconds end in April 2262) is refused on PutObject and
// PutObjectRetention; before the fix such a COMPLIANCE date was stored
// wrapped into 1715 and the version could be deleted at once (probe H1).
func TestRetainUntilBeyond2262(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("far")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	far := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("x"),
		ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: &far})
	wantVStatus(t, "PutObject retained until 2300", err, 400, "InvalidArgument", "", "")

	soon := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	put, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("x"),
		ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: &soon})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{Bucket: b, Key: aws.String("k"), VersionId: put.VersionId,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: &far}})
	wantVStatus(t, "extending the retention to 2300", err, 400, "MalformedXML", "", "")
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), VersionId: put.VersionId})
	wantVStatus(t, "delete of the COMPLIANCE version", err, 403, "AccessDenied", "", "")
}
