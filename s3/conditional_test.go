package s3_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// TestConditionalWrites: If-None-Match: * and If-Match on PutObject,
// CopyObject and CompleteMultipartUpload, If-Match on DeleteObject, with
// AWS's answers; a refused write changes nothing.
func TestConditionalWrites(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "cond")
	ctx := t.Context()
	b := aws.String("cond")
	putIf := func(key, body string, ifNone, ifMatch *string) (*awss3.PutObjectOutput, error) {
		return c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: strings.NewReader(body), IfNoneMatch: ifNone, IfMatch: ifMatch})
	}
	first, err := putIf("k", "first", aws.String("*"), nil)
	if err != nil {
		t.Fatalf("If-None-Match * on a new key: %v", err)
	}
	_, err = putIf("k", "second", aws.String("*"), nil)
	wantCode(t, "If-None-Match * over an object", err, "PreconditionFailed")
	if httpStatusOf(err) != http.StatusPreconditionFailed {
		t.Fatalf("status %d, want 412", httpStatusOf(err))
	}
	_, err = putIf("k", "second", nil, aws.String(`"0123456789abcdef0123456789abcdef"`))
	wantCode(t, "If-Match with another ETag", err, "PreconditionFailed")
	_, err = putIf("k", "second", nil, aws.String("W/"+aws.ToString(first.ETag)))
	wantCode(t, "If-Match with the weak ETag", err, "PreconditionFailed")
	if got := getString(t, c, "cond", "k"); got != "first" {
		t.Fatalf("k = %q after refused conditional PUTs, want first", got)
	}
	second, err := putIf("k", "second", nil, first.ETag)
	if err != nil {
		t.Fatalf("If-Match with the ETag: %v", err)
	}
	if got := getString(t, c, "cond", "k"); got != "second" {
		t.Fatalf("k = %q, want second", got)
	}
	if _, err := putIf("k", "third", nil, aws.String("*")); err != nil {
		t.Fatalf("If-Match * over an object: %v", err)
	}
	_, err = putIf("new", "x", nil, second.ETag)
	wantCode(t, "If-Match on a missing key", err, "NoSuchKey")
	if headMeta(t, c, "cond", "new") != nil {
		t.Fatal("a refused If-Match PUT created the key")
	}
	// A deleted key is a missing key.
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k")}); err != nil {
		t.Fatal(err)
	}
	if _, err := putIf("k", "again", aws.String("*"), nil); err != nil {
		t.Fatalf("If-None-Match * on a deleted key: %v", err)
	}

	// CopyObject: the condition is on the destination.
	_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("k"), CopySource: aws.String("cond/k"), MetadataDirective: types.MetadataDirectiveReplace, IfNoneMatch: aws.String("*")})
	wantCode(t, "CopyObject If-None-Match * onto an object", err, "PreconditionFailed")
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: aws.String("cond/k"), IfNoneMatch: aws.String("*")}); err != nil {
		t.Fatalf("CopyObject If-None-Match * onto a new key: %v", err)
	}

	// CompleteMultipartUpload.
	complete := func(key string, ifNone, ifMatch *string) (*awss3.CompleteMultipartUploadOutput, error) {
		t.Helper()
		up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		pr, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("multipart")})
		if err != nil {
			t.Fatal(err)
		}
		return c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String(key), UploadId: up.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: pr.ETag}}}, IfNoneMatch: ifNone, IfMatch: ifMatch})
	}
	_, err = complete("k", aws.String("*"), nil)
	wantCode(t, "Complete If-None-Match * over an object", err, "PreconditionFailed")
	if got := getString(t, c, "cond", "k"); got != "again" {
		t.Fatalf("k = %q after a refused conditional complete, want again", got)
	}
	_, err = complete("k", nil, aws.String(`"0123456789abcdef0123456789abcdef"`))
	wantCode(t, "Complete If-Match with another ETag", err, "PreconditionFailed")
	_, err = complete("mpnew", nil, aws.String(`"0123456789abcdef0123456789abcdef"`))
	wantCode(t, "Complete If-Match on a missing key", err, "NoSuchKey")
	if _, err := complete("mp", aws.String("*"), nil); err != nil {
		t.Fatalf("Complete If-None-Match * on a new key: %v", err)
	}
	head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := complete("k", nil, head.ETag); err != nil {
		t.Fatalf("Complete If-Match with the ETag: %v", err)
	}
	if got := getString(t, c, "cond", "k"); got != "multipart" {
		t.Fatalf("k = %q, want multipart", got)
	}

	// DeleteObject If-Match.
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
	wantCode(t, "DeleteObject If-Match with another ETag", err, "PreconditionFailed")
	if got := getString(t, c, "cond", "k"); got != "multipart" {
		t.Fatalf("k = %q after a refused conditional delete", got)
	}
	head, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), IfMatch: head.ETag}); err != nil {
		t.Fatalf("DeleteObject If-Match with the ETag: %v", err)
	}
	if headMeta(t, c, "cond", "k") != nil {
		t.Fatal("k survived its conditional delete")
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), IfMatch: head.ETag}); err != nil {
		t.Fatalf("DeleteObject If-Match of a missing key: %v, want 204", err)
	}

	// minio-go's conditional PUT.
	mc, err := minio.New(strings.TrimPrefix(e.endpoint, "http://"), &minio.Options{Creds: miniocreds.NewStaticV4("ALICEKEY", "alicesecret", "")})
	if err != nil {
		t.Fatal(err)
	}
	opts := minio.PutObjectOptions{}
	opts.SetMatchETagExcept("*")
	if _, err := mc.PutObject(ctx, "cond", "mc", strings.NewReader("m1"), 2, opts); err != nil {
		t.Fatalf("minio-go If-None-Match *: %v", err)
	}
	_, err = mc.PutObject(ctx, "cond", "mc", strings.NewReader("m2"), 2, opts)
	if r := minio.ToErrorResponse(err); r.Code != "PreconditionFailed" || r.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("minio-go If-None-Match * over an object: %v", err)
	}
}

// TestConditionalCreateRace: many If-None-Match: * PUTs of one key at once
// produce exactly one winner; the others get 412 (or 409, retryable), and
// the stored object is the winner's.
func TestConditionalCreateRace(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "race")
	const writers = 8
	for round := range 5 {
		key := fmt.Sprintf("k%d", round)
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() {
				_, errs[i] = c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("race"), Key: aws.String(key),
					Body: strings.NewReader(fmt.Sprintf("writer %d", i)), IfNoneMatch: aws.String("*")})
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch code := apiCode(err); {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: writers %d and %d both created %s", round, winner, i, key)
			case err == nil:
				winner = i
			case code != "PreconditionFailed" && code != "ConditionalRequestConflict":
				t.Fatalf("round %d: writer %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer created %s", round, key)
		}
		if got, want := getString(t, c, "race", key), fmt.Sprintf("writer %d", winner); got != want {
			t.Fatalf("round %d: %s = %q, want the winner's %q", round, key, got, want)
		}
	}
}
