package s3_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/limits"
	"github.com/vaultaire/vaultaire/s3"
)

// usageStore is a limits.UsageStore in memory.
type usageStore struct {
	mu     sync.Mutex
	limits map[string]cluster.Limits
	used   map[string]cluster.Usage
}

func (f *usageStore) TenantLimits(tenant string) (cluster.Limits, cluster.Usage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limits[tenant], f.used[tenant], true
}

func (f *usageStore) AddUsage(ctx context.Context, ds []cluster.UsageDelta) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range ds {
		u := f.used[d.Tenant]
		u.Bytes += d.Bytes
		u.Artifacts += d.Artifacts
		f.used[d.Tenant] = u
	}
	return nil
}

func (f *usageStore) set(tenant string, l cluster.Limits) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits[tenant] = l
}

// wantStatus checks an S3 error's code and HTTP status.
func wantStatus(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var re *smithyhttp.ResponseError
	if apiCode(err) != code || !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Fatalf("%s: %v, want %d %s", what, err, status, code)
	}
}

// TestMultipartQuota: UploadPartCopy admits the bytes it copies through
// the tenant's quota, as PutObject and CopyObject do, and
// CompleteMultipartUpload admits the artifact it creates.
func TestMultipartQuota(t *testing.T) {
	store := &usageStore{limits: map[string]cluster.Limits{"alice": {MaxBytes: 10 << 20}}, used: map[string]cluster.Usage{}}
	u := limits.NewUsage(store, nil)
	n := testnode.StartWith(t, func(c *engine.Config) { c.OnUsage = u.Record }, func(c *s3.Config) { c.Quota = u })
	e := &env{endpoint: n.Endpoint, eng: n.Engine}
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("mpq")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	src := randBytes(7, 6<<20)
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("src"), Body: bytes.NewReader(src)}); err != nil {
		t.Fatal(err)
	}
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	// 6 MiB more do not fit in 10 MiB with 6 MiB stored.
	for i := range 3 {
		_, err = c.UploadPartCopy(ctx, &awss3.UploadPartCopyInput{Bucket: b, Key: aws.String("dst"), UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), CopySource: aws.String("mpq/src")})
		wantStatus(t, "UploadPartCopy of 6 MiB over a 10 MiB quota", err, 403, "QuotaExceeded")
	}
	parts, err := c.ListParts(ctx, &awss3.ListPartsInput{Bucket: b, Key: aws.String("dst"), UploadId: up.UploadId})
	if err != nil || len(parts.Parts) != 0 {
		t.Fatalf("parts after refused copies: %v, %v", parts, err)
	}
	if got := u.Current("alice"); got.Bytes != 6<<20 {
		t.Errorf("usage %+v after refused copies, want 6 MiB", got)
	}
	// A range that fits is copied.
	pc, err := c.UploadPartCopy(ctx, &awss3.UploadPartCopyInput{Bucket: b, Key: aws.String("dst"), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), CopySource: aws.String("mpq/src"), CopySourceRange: aws.String("bytes=0-1048575")})
	if err != nil {
		t.Fatalf("UploadPartCopy of 1 MiB within the quota: %v", err)
	}

	// The artifact quota: alice stores 1 artifact of at most 1.
	store.set("alice", cluster.Limits{MaxArtifacts: 1})
	_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("dst"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: pc.CopyPartResult.ETag}}}})
	wantStatus(t, "CompleteMultipartUpload over the artifact quota", err, 403, "QuotaExceeded")
	if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("dst")}); apiCode(err) != "NotFound" {
		t.Errorf("refused Complete stored the object: %v", err)
	}
	// The upload is as it was: with room, it completes.
	store.set("alice", cluster.Limits{MaxArtifacts: 2})
	if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("dst"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: pc.CopyPartResult.ETag}}}}); err != nil {
		t.Fatalf("Complete within the quota: %v", err)
	}
	out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	var got bytes.Buffer
	got.ReadFrom(out.Body)
	if !bytes.Equal(got.Bytes(), src[:1<<20]) {
		t.Errorf("completed object: %d bytes, want the first MiB of src", got.Len())
	}
}
