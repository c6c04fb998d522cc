package s3_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// TestOwnerOnlyACLs: canned ACLs that mean "the owner only" are accepted
// where S3 takes them, ACL requests granting the owner FULL_CONTROL alone
// succeed, the ACLs read back as that, and anything granting more is
// AccessControlListNotSupported (400) with nothing stored.
func TestOwnerOnlyACLs(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("acl")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b, ACL: types.BucketCannedACLPrivate}); err != nil {
		t.Fatalf("CreateBucket with x-amz-acl: private: %v", err)
	}
	for _, acl := range []types.ObjectCannedACL{types.ObjectCannedACLPrivate, types.ObjectCannedACLBucketOwnerFullControl, types.ObjectCannedACLBucketOwnerRead} {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("x"), ACL: acl}); err != nil {
			t.Errorf("PutObject with %s: %v", acl, err)
		}
	}
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: aws.String("acl/k"), ACL: types.ObjectCannedACLBucketOwnerFullControl}); err != nil {
		t.Errorf("CopyObject with bucket-owner-full-control: %v", err)
	}
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp"), ACL: types.ObjectCannedACLPrivate})
	if err != nil {
		t.Fatalf("CreateMultipartUpload with private: %v", err)
	}
	if _, err := c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId}); err != nil {
		t.Fatalf("abort the upload: %v", err)
	}

	notImplemented := func(what string, err error) {
		t.Helper()
		var re *smithyhttp.ResponseError
		if apiCode(err) != "AccessControlListNotSupported" || !errors.As(err, &re) || re.HTTPStatusCode() != 400 {
			t.Errorf("%s: %v, want 400 AccessControlListNotSupported", what, err)
		}
	}
	_, err = c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("public"), Body: strings.NewReader("x"), ACL: types.ObjectCannedACLPublicRead})
	notImplemented("PutObject public-read", err)
	_, err = c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("public"), Body: strings.NewReader("x"), GrantRead: aws.String(`uri="http://acs.amazonaws.com/groups/global/AllUsers"`)})
	notImplemented("PutObject x-amz-grant-read", err)
	_, err = c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("acl-public"), ACL: types.BucketCannedACLPublicReadWrite})
	notImplemented("CreateBucket public-read-write", err)
	if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("public")}); apiCode(err) != "NotFound" {
		t.Errorf("a public-read PutObject stored the object: %v", err)
	}
	if _, err := c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("acl-public")}); err == nil {
		t.Error("a public-read-write CreateBucket created the bucket")
	}

	// The ACLs read back as the owner's FULL_CONTROL.
	checkPolicy := func(what string, owner *types.Owner, grants []types.Grant) {
		t.Helper()
		if aws.ToString(owner.ID) != "alice" || len(grants) != 1 || grants[0].Permission != types.PermissionFullControl ||
			grants[0].Grantee.Type != types.TypeCanonicalUser || aws.ToString(grants[0].Grantee.ID) != "alice" {
			t.Errorf("%s: owner %v grants %+v", what, aws.ToString(owner.ID), grants)
		}
	}
	bacl, err := c.GetBucketAcl(ctx, &awss3.GetBucketAclInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	checkPolicy("GetBucketAcl", bacl.Owner, bacl.Grants)
	oacl, err := c.GetObjectAcl(ctx, &awss3.GetObjectAclInput{Bucket: b, Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	checkPolicy("GetObjectAcl", oacl.Owner, oacl.Grants)
	_, err = c.GetObjectAcl(ctx, &awss3.GetObjectAclInput{Bucket: b, Key: aws.String("missing")})
	wantCode(t, "GetObjectAcl of a missing key", err, "NoSuchKey")

	// Setting an owner-only ACL succeeds, canned or as a policy.
	if _, err := c.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPrivate}); err != nil {
		t.Errorf("PutBucketAcl private: %v", err)
	}
	if _, err := c.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: b, Key: aws.String("k"), ACL: types.ObjectCannedACLBucketOwnerFullControl}); err != nil {
		t.Errorf("PutObjectAcl bucket-owner-full-control: %v", err)
	}
	policy := &types.AccessControlPolicy{Owner: oacl.Owner, Grants: oacl.Grants}
	if _, err := c.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: b, Key: aws.String("k"), AccessControlPolicy: policy}); err != nil {
		t.Errorf("PutObjectAcl with the owner's policy: %v", err)
	}
	if _, err := c.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, AccessControlPolicy: &types.AccessControlPolicy{Owner: bacl.Owner, Grants: bacl.Grants}}); err != nil {
		t.Errorf("PutBucketAcl with the owner's policy: %v", err)
	}
	// Anything more is not.
	_, err = c.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: b, Key: aws.String("k"), ACL: types.ObjectCannedACLPublicRead})
	notImplemented("PutObjectAcl public-read", err)
	wider := &types.AccessControlPolicy{Owner: oacl.Owner, Grants: append(oacl.Grants, types.Grant{
		Grantee:    &types.Grantee{Type: types.TypeGroup, URI: aws.String("http://acs.amazonaws.com/groups/global/AllUsers")},
		Permission: types.PermissionRead,
	})}
	_, err = c.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: b, Key: aws.String("k"), AccessControlPolicy: wider})
	notImplemented("PutObjectAcl granting AllUsers READ", err)
	_, err = c.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, AccessControlPolicy: &types.AccessControlPolicy{Owner: bacl.Owner, Grants: []types.Grant{{
		Grantee: &types.Grantee{Type: types.TypeCanonicalUser, ID: aws.String("bob")}, Permission: types.PermissionFullControl}}}})
	notImplemented("PutBucketAcl granting another user", err)
	_, err = c.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: b, Key: aws.String("missing"), ACL: types.ObjectCannedACLPrivate})
	wantCode(t, "PutObjectAcl of a missing key", err, "NoSuchKey")
}
