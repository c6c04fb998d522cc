package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/s3"
	"github.com/vaultaire/vaultaire/tenant"
)

// usageStore is a tenant.Store in memory.
type usageStore struct {
	mu     sync.Mutex
	limits map[string]tenant.Limits
	used   map[string]tenant.Usage
}

func (f *usageStore) TenantLimits(tenant string) (tenant.Limits, tenant.Usage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limits[tenant], f.used[tenant], true
}

func (f *usageStore) AddUsage(ctx context.Context, ds []tenant.UsageDelta) error {
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

func (f *usageStore) set(tenant string, l tenant.Limits) {
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
// the tenant's quota, as PutObject and CopyObject do, and an upload in
// progress counts as an artifact from CreateMultipartUpload on.
func TestMultipartQuota(t *testing.T) {
	store := &usageStore{limits: map[string]tenant.Limits{"alice": {MaxBytes: 10 << 20}}, used: map[string]tenant.Usage{}}
	u := tenant.NewMeter(store, nil)
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

	// The artifact quota: an upload in progress is an artifact, so alice
	// (src and the open upload) stores 2 of at most 2 and cannot open
	// another upload, while the open one completes: its artifact was
	// counted when it began.
	if got := u.Current("alice"); got.Artifacts != 2 {
		t.Errorf("usage %+v with one object and one open upload, want 2 artifacts", got)
	}
	store.set("alice", tenant.Limits{MaxArtifacts: 2})
	_, err = c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("more")})
	wantStatus(t, "CreateMultipartUpload over the artifact quota", err, 403, "QuotaExceeded")
	if lu, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: b}); err != nil || len(lu.Uploads) != 1 {
		t.Fatalf("uploads after a refused CreateMultipartUpload: %+v, %v", lu, err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("dst"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: pc.CopyPartResult.ETag}}}}); err != nil {
		t.Fatalf("Complete within the quota: %v", err)
	}
	if got := u.Current("alice"); got.Artifacts != 2 || got.Bytes != 7<<20 {
		t.Errorf("usage %+v after Complete, want 2 artifacts, 7 MiB", got)
	}
	// An aborted upload gives its artifact back.
	store.set("alice", tenant.Limits{MaxArtifacts: 3})
	ab, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("gone")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("gone"), UploadId: ab.UploadId}); err != nil {
		t.Fatal(err)
	}
	if got := u.Current("alice"); got.Artifacts != 2 {
		t.Errorf("usage %+v after an aborted upload, want 2 artifacts", got)
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

// TestQuotaConcurrentPuts: uploads admitted at the same moment are held
// against each other, so 16 parallel 1 MiB PUTs against a 2 MiB quota
// store at most 2 MiB; the others are refused with 403 QuotaExceeded.
// (Before admission reserved the declared bytes, all 16 could pass
// admission before the first one's usage was recorded.)
func TestQuotaConcurrentPuts(t *testing.T) {
	const (
		quota = 2 << 20
		size  = 1 << 20
		puts  = 16
	)
	store := &usageStore{limits: map[string]tenant.Limits{"alice": {MaxBytes: quota}}, used: map[string]tenant.Usage{}}
	u := tenant.NewMeter(store, nil)
	n := testnode.StartWith(t, func(c *engine.Config) { c.OnUsage = u.Record }, func(c *s3.Config) { c.Quota = u })
	e := &env{endpoint: n.Endpoint, eng: n.Engine}
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("conc")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	body := randBytes(11, size)
	errs := make([]error, puts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range puts {
		wg.Go(func() {
			<-start
			_, errs[i] = c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(fmt.Sprintf("o%02d", i)), Body: bytes.NewReader(body)})
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		if err == nil {
			ok++
			continue
		}
		wantStatus(t, fmt.Sprintf("PUT %d", i), err, 403, "QuotaExceeded")
	}
	if ok < 1 || ok > quota/size {
		t.Errorf("%d of %d PUTs stored, want 1 to %d", ok, puts, quota/size)
	}
	var stored int64
	objs := 0
	p := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: b})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			stored += aws.ToInt64(o.Size)
			objs++
		}
	}
	if stored > quota || objs != ok {
		t.Errorf("stored %d bytes in %d objects (%d PUTs succeeded), want at most %d bytes", stored, objs, ok, quota)
	}
	if got := u.Current("alice"); got.Bytes != stored {
		t.Errorf("usage %+v, want %d bytes", got, stored)
	}
	// Nothing stays reserved: with the quota raised, a PUT of what is
	// left fits exactly.
	store.set("alice", tenant.Limits{MaxBytes: stored + size})
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("last"), Body: bytes.NewReader(body)}); err != nil {
		t.Errorf("PUT into the rest of the quota: %v", err)
	}
}

// TestQuotaOverwrite: an overwrite replaces what its key stores, so near
// the quota an overwrite that does not grow the tenant is admitted, by
// PutObject and CopyObject alike, while one that grows it past the quota
// and a new object are refused.
func TestQuotaOverwrite(t *testing.T) {
	const size = 1 << 20
	store := &usageStore{limits: map[string]tenant.Limits{"alice": {MaxBytes: 2 * size, MaxArtifacts: 2}}, used: map[string]tenant.Usage{}}
	m := tenant.NewMeter(store, nil)
	n := testnode.StartWith(t, func(c *engine.Config) { c.OnUsage = m.Record }, func(c *s3.Config) { c.Quota = m })
	e := &env{endpoint: n.Endpoint, eng: n.Engine}
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("over")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	put := func(key string, data []byte) error {
		_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: bytes.NewReader(data)})
		return err
	}
	for _, key := range []string{"a", "b"} {
		if err := put(key, randBytes(1, size)); err != nil {
			t.Fatal(err)
		}
	}
	// The quota is full, in bytes and in artifacts.
	newer := randBytes(2, size)
	tests := []struct {
		name string
		call func() error
		ok   bool
	}{
		{"overwrite at the same size", func() error { return put("a", newer) }, true},
		{"overwrite with a smaller object", func() error { return put("b", randBytes(3, size/2)) }, true},
		{"overwrite growing past the quota", func() error { return put("a", randBytes(4, size+size/2+1)) }, false},
		{"new object", func() error { return put("c", []byte("x")) }, false},
		{"copy over an existing key", func() error {
			_, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("b"), CopySource: aws.String("over/a")})
			return err
		}, true},
		{"copy to a new key", func() error {
			_, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("d"), CopySource: aws.String("over/a")})
			return err
		}, false},
	}
	for _, tc := range tests {
		err := tc.call()
		if tc.ok && err != nil {
			t.Errorf("%s: %v, want it stored", tc.name, err)
		}
		if !tc.ok {
			wantStatus(t, tc.name, err, 403, "QuotaExceeded")
		}
	}
	for _, key := range []string{"a", "b"} {
		out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		got.ReadFrom(out.Body)
		out.Body.Close()
		if !bytes.Equal(got.Bytes(), newer) {
			t.Errorf("%s: %d bytes, want the overwrite's %d", key, got.Len(), len(newer))
		}
	}
	for _, key := range []string{"c", "d"} {
		if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String(key)}); apiCode(err) != "NotFound" {
			t.Errorf("refused %s was stored: %v", key, err)
		}
	}
	if got := m.Current("alice"); got.Bytes != 2*size || got.Artifacts != 2 {
		t.Errorf("usage %+v, want 2 MiB in 2 artifacts", got)
	}
}
