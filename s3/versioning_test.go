package s3_test

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// wantStatus checks an SDK error's status, code and, if set, one response
// header.
func wantVStatus(t *testing.T, what string, err error, status int, code, header, value string) {
	t.Helper()
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != status || code != "" && apiCode(err) != code {
		t.Fatalf("%s: %v, want %d %s", what, err, status, code)
	}
	if header != "" && re.Response.Header.Get(header) != value {
		t.Fatalf("%s: header %s = %q, want %q", what, header, re.Response.Header.Get(header), value)
	}
}

func getBody(t *testing.T, c *awss3.Client, bucket, key, vid string) (string, *awss3.GetObjectOutput) {
	t.Helper()
	in := &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if vid != "" {
		in.VersionId = aws.String(vid)
	}
	out, err := c.GetObject(t.Context(), in)
	if err != nil {
		t.Fatalf("GetObject %s@%s: %v", key, vid, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), out
}

// TestBucketVersioning drives versioning end to end with aws-sdk-go-v2:
// the bucket state, version ids on writes, reads, copies and deletes by
// version id, delete markers, listings, suspension and emptying a bucket.
func TestBucketVersioning(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("ver")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	st, err := c.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: b})
	if err != nil || st.Status != "" {
		t.Fatalf("GetBucketVersioning of a new bucket: %+v, %v", st, err)
	}
	put := func(key, body string) *awss3.PutObjectOutput {
		t.Helper()
		out, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	setVersioning := func(s types.BucketVersioningStatus) error {
		_, err := c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: b, VersioningConfiguration: &types.VersioningConfiguration{Status: s}})
		return err
	}
	if out := put("k", "v0"); out.VersionId != nil {
		t.Fatalf("unversioned put answered version %q", *out.VersionId)
	}
	for _, tc := range []struct {
		status types.BucketVersioningStatus
		code   string
	}{{"Bogus", "IllegalVersioningConfigurationException"}, {"", "IllegalVersioningConfigurationException"}} {
		wantVStatus(t, "PutBucketVersioning "+string(tc.status), setVersioning(tc.status), 400, tc.code, "", "")
	}
	_, err = c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String("nope"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
	wantCode(t, "PutBucketVersioning of a missing bucket", err, "NoSuchBucket")
	if err := setVersioning(types.BucketVersioningStatusEnabled); err != nil {
		t.Fatal(err)
	}
	if st, err := c.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: b}); err != nil || st.Status != types.BucketVersioningStatusEnabled {
		t.Fatalf("GetBucketVersioning: %+v, %v", st, err)
	}

	v1, v2 := aws.ToString(put("k", "v1").VersionId), aws.ToString(put("k", "v22").VersionId)
	if len(v1) != 32 || len(v2) != 32 || v1 == v2 {
		t.Fatalf("version ids %q %q", v1, v2)
	}
	for _, tc := range []struct{ vid, want, wantVID string }{
		{"", "v22", v2}, {v2, "v22", v2}, {v1, "v1", v1}, {"null", "v0", "null"},
	} {
		got, out := getBody(t, c, "ver", "k", tc.vid)
		if got != tc.want || aws.ToString(out.VersionId) != tc.wantVID {
			t.Errorf("GET k@%q: %q version %q, want %q %q", tc.vid, got, aws.ToString(out.VersionId), tc.want, tc.wantVID)
		}
	}
	if h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(v1)}); err != nil || aws.ToInt64(h.ContentLength) != 2 || aws.ToString(h.VersionId) != v1 {
		t.Fatalf("HEAD k@v1: %+v, %v", h, err)
	}
	_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(strings.Repeat("0", 32))})
	wantVStatus(t, "GET of a missing version", err, 404, "NoSuchVersion", "", "")
	_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String("not-a-version")})
	wantVStatus(t, "GET of a malformed version id", err, 400, "InvalidArgument", "", "")

	// CopyObject from a version.
	cp, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("c"), CopySource: aws.String("ver/k?versionId=" + v1)})
	if err != nil || aws.ToString(cp.CopySourceVersionId) != v1 || len(aws.ToString(cp.VersionId)) != 32 {
		t.Fatalf("copy of v1: %+v, %v", cp, err)
	}
	if got, _ := getBody(t, c, "ver", "c", ""); got != "v1" {
		t.Fatalf("copy holds %q", got)
	}

	// A delete marker.
	del, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k")})
	if err != nil || !aws.ToBool(del.DeleteMarker) || len(aws.ToString(del.VersionId)) != 32 {
		t.Fatalf("delete: %+v, %v", del, err)
	}
	dm := aws.ToString(del.VersionId)
	_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("k")})
	wantVStatus(t, "GET of a deleted key", err, 404, "NoSuchKey", "x-amz-delete-marker", "true")
	_, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("k")})
	wantVStatus(t, "HEAD of a deleted key", err, 404, "", "x-amz-delete-marker", "true")
	_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(dm)})
	wantVStatus(t, "GET of the delete marker", err, 405, "MethodNotAllowed", "x-amz-delete-marker", "true")
	if got, _ := getBody(t, c, "ver", "k", v1); got != "v1" {
		t.Fatalf("v1 after the delete: %q", got)
	}
	lo, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: b})
	if err != nil || len(lo.Contents) != 1 || aws.ToString(lo.Contents[0].Key) != "c" {
		t.Fatalf("ListObjectsV2 after the delete: %+v, %v", lo.Contents, err)
	}
	lv, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, Prefix: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range lv.Versions {
		got = append(got, fmt.Sprintf("%s:%d:%v", aws.ToString(v.VersionId), aws.ToInt64(v.Size), aws.ToBool(v.IsLatest)))
	}
	if want := []string{v2 + ":3:false", v1 + ":2:false", "null:2:false"}; !slices.Equal(got, want) {
		t.Fatalf("versions %v, want %v", got, want)
	}
	if len(lv.DeleteMarkers) != 1 || aws.ToString(lv.DeleteMarkers[0].VersionId) != dm || !aws.ToBool(lv.DeleteMarkers[0].IsLatest) {
		t.Fatalf("delete markers %+v", lv.DeleteMarkers)
	}

	// Deleting the marker by id brings v2 back.
	del, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(dm)})
	if err != nil || !aws.ToBool(del.DeleteMarker) || aws.ToString(del.VersionId) != dm {
		t.Fatalf("delete of the marker: %+v, %v", del, err)
	}
	if got, _ := getBody(t, c, "ver", "k", ""); got != "v22" {
		t.Fatalf("after the marker's removal: %q", got)
	}

	// Multipart completion makes a version.
	mp, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	part, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: aws.String("k"), UploadId: mp.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("mpu")})
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("k"), UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}})
	if err != nil || len(aws.ToString(done.VersionId)) != 32 {
		t.Fatalf("complete: %+v, %v", done, err)
	}
	if got, out := getBody(t, c, "ver", "k", ""); got != "mpu" || aws.ToString(out.VersionId) != aws.ToString(done.VersionId) {
		t.Fatalf("after complete: %q", got)
	}
	if got, _ := getBody(t, c, "ver", "k", v2); got != "v22" {
		t.Fatalf("v2 after complete: %q", got)
	}

	// Suspended: writes replace the null version.
	if err := setVersioning(types.BucketVersioningStatusSuspended); err != nil {
		t.Fatal(err)
	}
	if out := put("k", "s1"); aws.ToString(out.VersionId) != "null" {
		t.Fatalf("suspended put: version %q", aws.ToString(out.VersionId))
	}
	if got, _ := getBody(t, c, "ver", "k", "null"); got != "s1" {
		t.Fatalf("null version %q", got)
	}
	lv, err = c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, Prefix: aws.String("k")})
	if err != nil || len(lv.Versions) != 4 || aws.ToString(lv.Versions[0].VersionId) != "null" || !aws.ToBool(lv.Versions[0].IsLatest) {
		t.Fatalf("versions when suspended: %+v, %v", lv.Versions, err)
	}

	// Suspended, a delete makes the null version a delete marker.
	del, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k")})
	if err != nil || !aws.ToBool(del.DeleteMarker) || aws.ToString(del.VersionId) != "null" {
		t.Fatalf("suspended delete: %+v, %v", del, err)
	}
	lv, err = c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, Prefix: aws.String("k")})
	if err != nil || len(lv.Versions) != 3 || len(lv.DeleteMarkers) != 1 || aws.ToString(lv.DeleteMarkers[0].VersionId) != "null" || !aws.ToBool(lv.DeleteMarkers[0].IsLatest) {
		t.Fatalf("versions after a suspended delete: %+v %+v, %v", lv.Versions, lv.DeleteMarkers, err)
	}

	// A bucket with versions is not empty; deleting them all empties it.
	_, err = c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: b})
	wantCode(t, "DeleteBucket with versions", err, "BucketNotEmpty")
	emptyBucket(t, c, "ver", 1000)
	if _, err := c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: b}); err != nil {
		t.Fatalf("DeleteBucket once empty: %v", err)
	}
}

// emptyBucket deletes every version and delete marker, a listing page
// (of max keys) at a time, as boto3's "delete all versions" loop does,
// and returns how many it deleted.
func emptyBucket(t *testing.T, c *awss3.Client, bucket string, max int32) int {
	t.Helper()
	n := 0
	for range 1000 {
		lv, err := c.ListObjectVersions(t.Context(), &awss3.ListObjectVersionsInput{Bucket: aws.String(bucket), MaxKeys: aws.Int32(max)})
		if err != nil {
			t.Fatal(err)
		}
		var ids []types.ObjectIdentifier
		for _, v := range lv.Versions {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, v := range lv.DeleteMarkers {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		if len(ids) == 0 {
			return n
		}
		out, err := c.DeleteObjects(t.Context(), &awss3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil || len(out.Errors) != 0 {
			t.Fatalf("DeleteObjects: %v %+v", err, out.Errors)
		}
		n += len(ids)
	}
	t.Fatal("bucket does not empty")
	return n
}

// TestVersioningMinio: minio-go's versioning calls.
func TestVersioningMinio(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	mc, err := minio.New(strings.TrimPrefix(e.endpoint, "http://"), &minio.Options{Creds: miniocreds.NewStaticV4("ALICEKEY", "alicesecret", ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(ctx, "mver", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := mc.EnableVersioning(ctx, "mver"); err != nil {
		t.Fatal(err)
	}
	if cfg, err := mc.GetBucketVersioning(ctx, "mver"); err != nil || !cfg.Enabled() {
		t.Fatalf("GetBucketVersioning: %+v, %v", cfg, err)
	}
	var ids []string
	for i := range 3 {
		body := strings.Repeat("x", i+1)
		info, err := mc.PutObject(ctx, "mver", "obj", strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
		if err != nil || info.VersionID == "" {
			t.Fatalf("put: %+v, %v", info, err)
		}
		ids = append(ids, info.VersionID)
	}
	o, err := mc.GetObject(ctx, "mver", "obj", minio.GetObjectOptions{VersionID: ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(o); err != nil || string(b) != "x" {
		t.Fatalf("first version: %q, %v", b, err)
	}
	o.Close()
	var listed []string
	for oi := range mc.ListObjects(ctx, "mver", minio.ListObjectsOptions{WithVersions: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		listed = append(listed, oi.VersionID)
	}
	if want := []string{ids[2], ids[1], ids[0]}; !slices.Equal(listed, want) {
		t.Fatalf("listed %v, want %v", listed, want)
	}
	if err := mc.RemoveObject(ctx, "mver", "obj", minio.RemoveObjectOptions{VersionID: ids[2]}); err != nil {
		t.Fatal(err)
	}
	st, err := mc.StatObject(ctx, "mver", "obj", minio.StatObjectOptions{})
	if err != nil || st.VersionID != ids[1] || st.Size != 2 {
		t.Fatalf("stat after removing the newest: %+v, %v", st, err)
	}
}

// TestVersioningScale: 10,000 versions of 100 keys list correctly page by
// page with both markers, and a delete-all-versions loop empties the
// bucket.
func TestVersioningScale(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 versions: not with -short")
	}
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("scale")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	const keys, versions = 100, 100
	began := time.Now()
	want := make([][]string, keys) // per key, version ids oldest first
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for k := range keys {
		wg.Go(func() {
			key := fmt.Sprintf("dir%d/key%03d", k%3, k)
			for v := range versions {
				body := fmt.Sprintf("%s#%d", key, v)
				out, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: strings.NewReader(body)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want[k] = append(want[k], aws.ToString(out.VersionId))
				mu.Unlock()
			}
		})
		if k%8 == 7 {
			wg.Wait() // 8 writers at a time
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d versioned puts in %v", keys*versions, time.Since(began))

	// Page by page with both markers (the SDK's paginator sends
	// key-marker and version-id-marker), 337 a page so pages split keys.
	listed := map[string][]string{}
	latest := map[string]int{}
	var order []string
	p := awss3.NewListObjectVersionsPaginator(c, &awss3.ListObjectVersionsInput{Bucket: b, MaxKeys: aws.Int32(337)})
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if n := len(out.Versions); n > 337 || aws.ToBool(out.IsTruncated) && n != 337 {
			t.Fatalf("page %d: %d versions, truncated %v", pages, n, aws.ToBool(out.IsTruncated))
		}
		for _, v := range out.Versions {
			k := aws.ToString(v.Key)
			if len(order) == 0 || order[len(order)-1] != k {
				order = append(order, k)
			}
			listed[k] = append(listed[k], aws.ToString(v.VersionId))
			if aws.ToBool(v.IsLatest) {
				latest[k]++
			}
		}
		if pages > 100 {
			t.Fatal("paging does not end")
		}
	}
	if pages != (keys*versions+336)/337 {
		t.Errorf("%d pages", pages)
	}
	if !slices.IsSorted(order) || len(order) != keys {
		t.Fatalf("keys listed out of order or more than once: %d runs", len(order))
	}
	for k := range keys {
		key := fmt.Sprintf("dir%d/key%03d", k%3, k)
		w := slices.Clone(want[k])
		slices.Reverse(w)
		if !slices.Equal(listed[key], w) || latest[key] != 1 {
			t.Fatalf("%s: listed %d versions (%d latest), want %d newest first", key, len(listed[key]), latest[key], len(w))
		}
	}
	// A delimiter rolls the keys up.
	lv, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, Delimiter: aws.String("/")})
	if err != nil || len(lv.CommonPrefixes) != 3 || len(lv.Versions) != 0 {
		t.Fatalf("delimiter: %d prefixes %d versions, %v", len(lv.CommonPrefixes), len(lv.Versions), err)
	}
	if n := emptyBucket(t, c, "scale", 1000); n != keys*versions {
		t.Fatalf("deleted %d versions, want %d", n, keys*versions)
	}
	if _, err := c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: b}); err != nil {
		t.Fatalf("DeleteBucket once emptied: %v", err)
	}
}

// TestConditionalVersioned: conditional writes in a versioned bucket test
// the key's current version: If-None-Match: * fails while one is live and
// succeeds once a delete marker is the newest; If-Match on DeleteObject
// adds the marker only for the current ETag.
func TestConditionalVersioned(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("condvers")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	put := func(body string) (*awss3.PutObjectOutput, error) {
		return c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader(body), IfNoneMatch: aws.String("*")})
	}
	first, err := put("one")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	_, err = put("two")
	wantCode(t, "If-None-Match: * over a live version", err, "PreconditionFailed")
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), IfMatch: aws.String(`"0123"`)})
	wantCode(t, "If-Match delete with another ETag", err, "PreconditionFailed")
	del, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), IfMatch: first.ETag})
	if err != nil || !aws.ToBool(del.DeleteMarker) {
		t.Fatalf("If-Match delete with the ETag: %+v, %v; want a delete marker", del, err)
	}
	if _, err := put("three"); err != nil {
		t.Fatalf("If-None-Match: * over a delete marker: %v", err)
	}
	lv, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b})
	if err != nil || len(lv.Versions) != 2 || len(lv.DeleteMarkers) != 1 {
		t.Fatalf("versions %+v, markers %+v, %v; want 2 and 1", lv.Versions, lv.DeleteMarkers, err)
	}
}
