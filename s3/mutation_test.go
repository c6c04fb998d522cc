package s3_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3"
)

// TestMutationMeansStateChanged drives every S3 operation with the AWS SDK
// and checks, from the engine's own view of the tenant's buckets and
// objects, that an event is a mutation (what the transaction log records)
// exactly when the request changed what is stored; and that the requests
// between them are labelled with every S3 operation of the route table.
func TestMutationMeansStateChanged(t *testing.T) {
	rec := &recorder{}
	e, st := startConfigServerWith(t, func(c *s3.Config) { c.Observer = rec })
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	state := func() string {
		t.Helper()
		var b strings.Builder
		cs, err := e.eng.Containers(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		for _, cn := range cs {
			res, err := e.eng.ListVersions(ctx, "alice", cn.Name, engine.VersionListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cors, _ := st.LocalBucketConfig("alice", cn.Name, "cors")
			tags, _ := st.LocalBucketConfig("alice", cn.Name, "tagging")
			vers, _ := st.LocalBucketConfig("alice", cn.Name, "versioning")
			lock, _ := st.LocalBucketConfig("alice", cn.Name, "objectlock")
			life, _ := st.LocalBucketConfig("alice", cn.Name, "lifecycle")
			acl, _ := st.LocalBucketConfig("alice", cn.Name, "acl")
			pol, _ := st.LocalBucketConfig("alice", cn.Name, "policy")
			fmt.Fprintf(&b, "%s (cors %q, tags %q, versioning %q, lock %q, lifecycle %q, acl %q, policy %q):", cn.Name, cors, tags, vers, lock, life, acl, pol)
			for _, a := range res.Versions {
				fmt.Fprintf(&b, " %s@%s=%s/%v", a.Key, a.VersionID, a.ETag, a.IsLatest)
				if o, err := e.eng.OpenVersion(ctx, "alice", cn.Name, a.Key, a.VersionID); err == nil {
					fmt.Fprintf(&b, "/%+v (tags %q)", o.RetentionOf(), o.Info.Metadata[engine.ReservedMetadataPrefix+"tags"])
				}
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	bk := aws.String("state")
	var uploadID, copyUploadID *string
	var seen []string
	steps := []struct {
		want string // operation
		do   func() error
	}{
		{"ListBuckets", func() error { _, err := c.ListBuckets(ctx, &awss3.ListBucketsInput{}); return err }},
		{"CreateBucket", func() error { _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: bk}); return err }},
		{"HeadBucket", func() error { _, err := c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: bk}); return err }},
		{"GetBucketLocation", func() error {
			_, err := c.GetBucketLocation(ctx, &awss3.GetBucketLocationInput{Bucket: bk})
			return err
		}},
		{"PutObject", func() error {
			_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: bk, Key: aws.String("a"), Body: strings.NewReader("alpha")})
			return err
		}},
		{"HeadObject", func() error {
			_, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: bk, Key: aws.String("a")})
			return err
		}},
		{"GetObject", func() error {
			out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: bk, Key: aws.String("a")})
			if err == nil {
				var got bytes.Buffer
				got.ReadFrom(out.Body)
				out.Body.Close()
				if got.String() != "alpha" {
					return fmt.Errorf("got %q", got.String())
				}
			}
			return err
		}},
		{"CopyObject", func() error {
			_, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: bk, Key: aws.String("b"), CopySource: aws.String("state/a")})
			return err
		}},
		{"GetBucketAcl", func() error { _, err := c.GetBucketAcl(ctx, &awss3.GetBucketAclInput{Bucket: bk}); return err }},
		{"PutBucketAcl", func() error {
			_, err := c.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: bk, ACL: types.BucketCannedACLPrivate})
			return err
		}},
		{"GetObjectAcl", func() error {
			_, err := c.GetObjectAcl(ctx, &awss3.GetObjectAclInput{Bucket: bk, Key: aws.String("a")})
			return err
		}},
		{"PutObjectAcl", func() error {
			_, err := c.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: bk, Key: aws.String("a"), ACL: types.ObjectCannedACLPrivate})
			return err
		}},
		{"PutBucketCors", func() error {
			_, err := c.PutBucketCors(ctx, &awss3.PutBucketCorsInput{Bucket: bk, CORSConfiguration: &types.CORSConfiguration{
				CORSRules: []types.CORSRule{{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"GET"}}}}})
			return err
		}},
		{"GetBucketCors", func() error { _, err := c.GetBucketCors(ctx, &awss3.GetBucketCorsInput{Bucket: bk}); return err }},
		{"PutBucketVersioning", func() error {
			_, err := c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: bk,
				VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
			return err
		}},
		{"PutObjectLockConfiguration", func() error {
			_, err := c.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: bk,
				ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled}})
			return err
		}},
		{"GetObjectLockConfiguration", func() error {
			_, err := c.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: bk})
			return err
		}},
		{"GetBucketVersioning", func() error {
			out, err := c.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: bk})
			if err == nil && out.Status != types.BucketVersioningStatusEnabled {
				return fmt.Errorf("versioning %q", out.Status)
			}
			return err
		}},
		{"PreflightCors", func() error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodOptions, e.endpoint+"/state/a", nil)
			req.Header.Set("Origin", "https://x.test")
			req.Header.Set("Access-Control-Request-Method", "GET")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("preflight: %s", resp.Status)
			}
			return nil
		}},
		{"PutBucketPolicy", func() error {
			_, err := c.PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: bk, Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::state/*"}]}`)})
			return err
		}},
		{"GetBucketPolicy", func() error { _, err := c.GetBucketPolicy(ctx, &awss3.GetBucketPolicyInput{Bucket: bk}); return err }},
		{"GetBucketPolicyStatus", func() error {
			_, err := c.GetBucketPolicyStatus(ctx, &awss3.GetBucketPolicyStatusInput{Bucket: bk})
			return err
		}},
		{"DeleteBucketPolicy", func() error {
			_, err := c.DeleteBucketPolicy(ctx, &awss3.DeleteBucketPolicyInput{Bucket: bk})
			return err
		}},
		{"DeleteBucketCors", func() error { _, err := c.DeleteBucketCors(ctx, &awss3.DeleteBucketCorsInput{Bucket: bk}); return err }},
		{"PutBucketLifecycleConfiguration", func() error {
			_, err := c.PutBucketLifecycleConfiguration(ctx, &awss3.PutBucketLifecycleConfigurationInput{Bucket: bk, LifecycleConfiguration: &types.BucketLifecycleConfiguration{
				Rules: []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("tmp/")}, Expiration: &types.LifecycleExpiration{Days: aws.Int32(30)}}}}})
			return err
		}},
		{"GetBucketLifecycleConfiguration", func() error {
			_, err := c.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: bk})
			return err
		}},
		{"DeleteBucketLifecycle", func() error {
			_, err := c.DeleteBucketLifecycle(ctx, &awss3.DeleteBucketLifecycleInput{Bucket: bk})
			return err
		}},
		{"PutBucketTagging", func() error {
			_, err := c.PutBucketTagging(ctx, &awss3.PutBucketTaggingInput{Bucket: bk, Tagging: tagSet("k", "v")})
			return err
		}},
		{"GetBucketTagging", func() error { _, err := c.GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: bk}); return err }},
		{"DeleteBucketTagging", func() error {
			_, err := c.DeleteBucketTagging(ctx, &awss3.DeleteBucketTaggingInput{Bucket: bk})
			return err
		}},
		{"PutObjectTagging", func() error {
			_, err := c.PutObjectTagging(ctx, &awss3.PutObjectTaggingInput{Bucket: bk, Key: aws.String("a"), Tagging: tagSet("k", "v")})
			return err
		}},
		{"GetObjectTagging", func() error {
			_, err := c.GetObjectTagging(ctx, &awss3.GetObjectTaggingInput{Bucket: bk, Key: aws.String("a")})
			return err
		}},
		{"DeleteObjectTagging", func() error {
			_, err := c.DeleteObjectTagging(ctx, &awss3.DeleteObjectTaggingInput{Bucket: bk, Key: aws.String("a")})
			return err
		}},
		{"GetObjectAttributes", func() error {
			_, err := c.GetObjectAttributes(ctx, &awss3.GetObjectAttributesInput{Bucket: bk, Key: aws.String("a"), ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesEtag}})
			return err
		}},
		{"PostObject", func() error {
			status, _, body := postForm(t, e.endpoint+"/state", signedForm(t, "state", "posted", time.Now()), "p", strings.NewReader("posted"))
			if status != http.StatusNoContent {
				return fmt.Errorf("POST: %d %s", status, body)
			}
			return nil
		}},
		{"ListObjects", func() error { _, err := c.ListObjects(ctx, &awss3.ListObjectsInput{Bucket: bk}); return err }},
		{"ListObjectsV2", func() error { _, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: bk}); return err }},
		{"ListObjectVersions", func() error {
			_, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: bk})
			return err
		}},
		{"CreateMultipartUpload", func() error {
			out, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: bk, Key: aws.String("m")})
			if err == nil {
				uploadID = out.UploadId
			}
			return err
		}},
		{"UploadPart", func() error {
			_, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: bk, Key: aws.String("m"), UploadId: uploadID, PartNumber: aws.Int32(1), Body: strings.NewReader("part one")})
			return err
		}},
		{"ListParts", func() error {
			_, err := c.ListParts(ctx, &awss3.ListPartsInput{Bucket: bk, Key: aws.String("m"), UploadId: uploadID})
			return err
		}},
		{"ListMultipartUploads", func() error {
			_, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: bk})
			return err
		}},
		{"CompleteMultipartUpload", func() error {
			parts, err := c.ListParts(ctx, &awss3.ListPartsInput{Bucket: bk, Key: aws.String("m"), UploadId: uploadID})
			if err != nil {
				return err
			}
			_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: bk, Key: aws.String("m"), UploadId: uploadID,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: parts.Parts[0].ETag}}}})
			return err
		}},
		{"UploadPartCopy", func() error {
			out, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: bk, Key: aws.String("n")})
			if err != nil {
				return err
			}
			copyUploadID = out.UploadId
			_, err = c.UploadPartCopy(ctx, &awss3.UploadPartCopyInput{Bucket: bk, Key: aws.String("n"), UploadId: copyUploadID, PartNumber: aws.Int32(1), CopySource: aws.String("state/a")})
			return err
		}},
		{"AbortMultipartUpload", func() error {
			_, err := c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: bk, Key: aws.String("n"), UploadId: copyUploadID})
			return err
		}},
		{"PutObjectRetention", func() error {
			_, err := c.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{Bucket: bk, Key: aws.String("a"),
				Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(time.Now().Add(time.Hour))}})
			return err
		}},
		{"GetObjectRetention", func() error {
			_, err := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: bk, Key: aws.String("a")})
			return err
		}},
		{"PutObjectLegalHold", func() error {
			_, err := c.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: bk, Key: aws.String("a"),
				LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn}})
			return err
		}},
		{"GetObjectLegalHold", func() error {
			out, err := c.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: bk, Key: aws.String("a")})
			if err == nil && out.LegalHold.Status != types.ObjectLockLegalHoldStatusOn {
				return fmt.Errorf("legal hold %q", out.LegalHold.Status)
			}
			return err
		}},
		{"PutObjectLegalHold", func() error { // released, so that the bucket can be emptied
			_, err := c.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: bk, Key: aws.String("a"),
				LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOff}})
			return err
		}},
		{"DeleteObject", func() error {
			_, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: bk, Key: aws.String("a")})
			return err
		}},
		{"DeleteObjects", func() error {
			_, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: bk, Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("b")}, {Key: aws.String("m")}, {Key: aws.String("posted")}}}})
			return err
		}},
		{"DeleteObjects", func() error { // every version left
			out, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: bk})
			if err != nil {
				return err
			}
			var ids []types.ObjectIdentifier
			for _, v := range out.Versions {
				ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
			}
			for _, v := range out.DeleteMarkers {
				ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
			}
			_, err = c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: bk, Delete: &types.Delete{Objects: ids}, BypassGovernanceRetention: aws.Bool(true)})
			return err
		}},
		{"DeleteBucket", func() error { _, err := c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: bk}); return err }},
	}
	for _, s := range steps {
		before := state()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.want, err)
		}
		changed := state() != before
		ev := rec.last(t)
		if ev.Operation != s.want {
			t.Errorf("%s: last event is %s", s.want, ev.Operation)
		}
		if ev.Mutation() != changed {
			t.Errorf("%s: Mutation() = %v, but the stored state changed: %v", s.want, ev.Mutation(), changed)
		}
		seen = append(seen, s.want)
	}
	for _, op := range s3.Operations() {
		if !slices.Contains(seen, op) && op != "Unknown" && op != "Health" && op != "Metrics" && op != "Console" && !strings.HasPrefix(op, "Admin") {
			t.Errorf("operation %s of the route table is not driven by this test: add a step", op)
		}
	}
}
