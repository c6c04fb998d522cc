package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/s3"
)

type env struct {
	endpoint string
	eng      *engine.Engine
	dirs     []string // drive directories
	srv      *s3.Server
}

var root = testnode.Root

// startServer runs a node on 4 local drives (2+2) on a loopback port.
func startServer(t testing.TB) *env {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith is startServer with a hook to adjust the config.
func startServerWith(t testing.TB, tweak func(*s3.Config)) *env {
	t.Helper()
	n := testnode.Start(t, tweak)
	return &env{endpoint: n.Endpoint, eng: n.Engine, dirs: n.Dirs, srv: n.Server}
}

func (e *env) client(access, secret string) *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint:     aws.String(e.endpoint),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(access, secret, ""),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
	})
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := apiCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestBucketsAndErrors(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("photos")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("photos")})
	wantCode(t, "second CreateBucket", err, "BucketAlreadyOwnedByYou")
	_, err = c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("Bad_Name")})
	wantCode(t, "CreateBucket Bad_Name", err, "InvalidBucketName")
	if _, err := c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("photos")}); err != nil {
		t.Fatalf("HeadBucket: %v", err)
	}
	loc, err := c.GetBucketLocation(ctx, &awss3.GetBucketLocationInput{Bucket: aws.String("photos")})
	if err != nil || loc.LocationConstraint != "" {
		t.Fatalf("GetBucketLocation = %v, %v", loc, err)
	}
	_, err = c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("nope")})
	wantCode(t, "list missing bucket", err, "NoSuchBucket")
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("a"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("photos")})
	wantCode(t, "DeleteBucket non-empty", err, "BucketNotEmpty")
	_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("missing")})
	wantCode(t, "GetObject missing", err, "NoSuchKey")
	_, err = c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String(strings.Repeat("k", 1025)), Body: strings.NewReader("x")})
	wantCode(t, "PutObject 1025-byte key", err, "KeyTooLongError")

	bad := e.client("ALICEKEY", "wrongsecret")
	_, err = bad.ListBuckets(ctx, &awss3.ListBucketsInput{})
	wantCode(t, "wrong secret", err, "SignatureDoesNotMatch")
	unknown := e.client("NOBODY", "x")
	_, err = unknown.ListBuckets(ctx, &awss3.ListBucketsInput{})
	wantCode(t, "unknown key", err, "InvalidAccessKeyId")
	_, err = c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String("photos"), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
	wantCode(t, "PutBucketVersioning", err, "NotImplemented")

	resp, err := http.Get(e.endpoint + "/photos/a")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "<Code>AccessDenied</Code>") || resp.Header.Get("x-amz-request-id") == "" {
		t.Fatalf("anonymous GET: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(e.endpoint + "/_vault/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestObjectsRoundTrip(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("data")}); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1, 100_000, 128 << 10, 3<<20 + 7} {
		key := fmt.Sprintf("dir/obj %d+ü", size)
		data := randBytes(uint64(size), size)
		_, err := c.PutObject(ctx, &awss3.PutObjectInput{
			Bucket: aws.String("data"), Key: aws.String(key), Body: bytes.NewReader(data),
			ContentType: aws.String("application/x-test"), Metadata: map[string]string{"color": "blue"},
			CacheControl: aws.String("max-age=60"),
		})
		if err != nil {
			t.Fatalf("PutObject %d: %v", size, err)
		}
		out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("GetObject %d: %v", size, err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GetObject %d: %d bytes, err %v", size, len(got), err)
		}
		if aws.ToString(out.ContentType) != "application/x-test" || out.Metadata["color"] != "blue" || aws.ToString(out.CacheControl) != "max-age=60" {
			t.Fatalf("GetObject headers: %v %v %v", aws.ToString(out.ContentType), out.Metadata, aws.ToString(out.CacheControl))
		}
		head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String(key)})
		if err != nil || aws.ToInt64(head.ContentLength) != int64(size) {
			t.Fatalf("HeadObject %d: %v, %v", size, head, err)
		}
		if size > 10 {
			out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String(key), Range: aws.String("bytes=5-9")})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if !bytes.Equal(got, data[5:10]) || aws.ToString(out.ContentRange) != fmt.Sprintf("bytes 5-9/%d", size) {
				t.Fatalf("range: %q %v", got, aws.ToString(out.ContentRange))
			}
			out, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String(key), Range: aws.String("bytes=-3")})
			if err != nil {
				t.Fatal(err)
			}
			got, _ = io.ReadAll(out.Body)
			out.Body.Close()
			if !bytes.Equal(got, data[size-3:]) {
				t.Fatalf("suffix range: %q", got)
			}
		}
	}
	_, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/obj 1+ü"), Range: aws.String("bytes=5-9")})
	wantCode(t, "range past end", err, "InvalidRange")
	ov, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/obj 1+ü"),
		ResponseContentType: aws.String("text/x-override"), ResponseContentDisposition: aws.String("attachment")})
	if err != nil || aws.ToString(ov.ContentType) != "text/x-override" || aws.ToString(ov.ContentDisposition) != "attachment" {
		t.Fatalf("response-* overrides: %v %v, %v", aws.ToString(ov.ContentType), aws.ToString(ov.ContentDisposition), err)
	}
	ov.Body.Close()
	// An override with a control character would be copied into a
	// response header (found by a hostile probe: a NUL was).
	for _, bad := range []string{"a\x00b", "text/plain\r\nX-Injected: 1", "a\x7fb"} {
		_, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/obj 1+ü"), ResponseContentType: aws.String(bad)})
		wantCode(t, fmt.Sprintf("response-content-type %q", bad), err, "InvalidArgument")
		_, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/obj 1+ü"), ResponseContentDisposition: aws.String(bad)})
		if err == nil {
			t.Fatalf("HEAD with response-content-disposition %q answered", bad)
		}
	}

	// Flexible checksums: sent by the SDK, verified, returned on request.
	for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmSha256, types.ChecksumAlgorithmCrc64nvme} {
		key := "sum-" + string(alg)
		put, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String(key), Body: bytes.NewReader(randBytes(2, 70_000)), ChecksumAlgorithm: alg})
		if err != nil {
			t.Fatalf("PutObject with %s: %v", alg, err)
		}
		h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		got := map[types.ChecksumAlgorithm]*string{types.ChecksumAlgorithmCrc32: h.ChecksumCRC32, types.ChecksumAlgorithmCrc32c: h.ChecksumCRC32C,
			types.ChecksumAlgorithmSha256: h.ChecksumSHA256, types.ChecksumAlgorithmCrc64nvme: h.ChecksumCRC64NVME}[alg]
		want := map[types.ChecksumAlgorithm]*string{types.ChecksumAlgorithmCrc32: put.ChecksumCRC32, types.ChecksumAlgorithmCrc32c: put.ChecksumCRC32C,
			types.ChecksumAlgorithmSha256: put.ChecksumSHA256, types.ChecksumAlgorithmCrc64nvme: put.ChecksumCRC64NVME}[alg]
		if aws.ToString(got) == "" || aws.ToString(got) != aws.ToString(want) {
			t.Fatalf("%s checksum on HEAD = %q, PUT said %q", alg, aws.ToString(got), aws.ToString(want))
		}
	}

	head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/obj 1+ü")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/obj 1+ü"), IfMatch: aws.String(`"nope"`)})
	wantCode(t, "If-Match mismatch", err, "PreconditionFailed")
	_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/obj 1+ü"), IfNoneMatch: head.ETag})
	if err == nil || !strings.Contains(err.Error(), "304") {
		t.Fatalf("If-None-Match match: err = %v, want 304", err)
	}
	if _, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/obj 1+ü"), IfMatch: head.ETag}); err != nil {
		t.Fatalf("If-Match match: %v", err)
	}

	// Copy with COPY and REPLACE directives.
	cp, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("data"), Key: aws.String("copy"), CopySource: aws.String("data/dir/obj%20100000%2B%C3%BC")})
	if err != nil {
		t.Fatalf("CopyObject: %v", err)
	}
	h2, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String("copy")})
	if err != nil || aws.ToString(h2.ETag) != aws.ToString(cp.CopyObjectResult.ETag) || h2.Metadata["color"] != "blue" {
		t.Fatalf("copy head = %v %v, %v", aws.ToString(h2.ETag), h2.Metadata, err)
	}
	_, err = c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("data"), Key: aws.String("copy"), CopySource: aws.String("data/copy")})
	wantCode(t, "self copy without REPLACE", err, "InvalidRequest")
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("data"), Key: aws.String("copy"), CopySource: aws.String("data/copy"), MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"color": "red"}}); err != nil {
		t.Fatalf("self copy with REPLACE: %v", err)
	}
	h3, _ := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String("copy")})
	if h3.Metadata["color"] != "red" {
		t.Fatalf("REPLACE metadata = %v", h3.Metadata)
	}

	// Multi-delete, quiet and not.
	del, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("data"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("copy")}, {Key: aws.String("never-was")}}}})
	if err != nil || len(del.Deleted) != 2 {
		t.Fatalf("DeleteObjects = %+v, %v", del, err)
	}
	if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String("copy")}); err == nil {
		t.Fatalf("HeadObject after DeleteObjects succeeded")
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/obj 0+ü")}); err != nil {
		t.Fatal(err)
	}
}

func TestListObjects(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("list")}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range 120 {
		keys = append(keys, fmt.Sprintf("p%d/k%03d", i%3, i), fmt.Sprintf("top%03d", i))
	}
	for _, k := range keys {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("list"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(keys)
	var got []string
	p := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String("list"), MaxKeys: aws.Int32(37)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			got = append(got, aws.ToString(o.Key))
		}
	}
	if !slices.Equal(got, keys) {
		t.Fatalf("ListObjectsV2 paged: %d keys, want %d", len(got), len(keys))
	}
	out, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("list"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1000)})
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, cp := range out.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(cp.Prefix))
	}
	if !slices.Equal(prefixes, []string{"p0/", "p1/", "p2/"}) || len(out.Contents) != 120 {
		t.Fatalf("delimiter listing: prefixes %v, %d contents", prefixes, len(out.Contents))
	}
	v1, err := c.ListObjects(ctx, &awss3.ListObjectsInput{Bucket: aws.String("list"), Prefix: aws.String("p1/"), Marker: aws.String("p1/k050"), MaxKeys: aws.Int32(5)})
	if err != nil || len(v1.Contents) != 5 || aws.ToString(v1.Contents[0].Key) <= "p1/k050" || !aws.ToBool(v1.IsTruncated) {
		t.Fatalf("ListObjects v1 = %+v, %v", v1, err)
	}
}

func TestTenantIsolation(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	alice, bob := e.client("ALICEKEY", "alicesecret"), e.client("BOBKEY", "bobsecret")
	for _, c := range []*awss3.Client{alice, bob} {
		if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("photos")}); err != nil {
			t.Fatalf("both tenants create photos: %v", err)
		}
	}
	if _, err := alice.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("cat"), Body: strings.NewReader("alice's cat")}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("alice-only")}); err != nil {
		t.Fatal(err)
	}
	_, err := bob.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("cat")})
	wantCode(t, "bob reads alice's key", err, "NoSuchKey")
	_, err = bob.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("alice-only")})
	wantCode(t, "bob lists alice's bucket", err, "NoSuchBucket")
	_, err = bob.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("alice-only"), Key: aws.String("x"), Body: strings.NewReader("x")})
	wantCode(t, "bob writes alice's bucket", err, "NoSuchBucket")
	_, err = bob.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("alice-only")})
	wantCode(t, "bob deletes alice's bucket", err, "NoSuchBucket")
	_, err = bob.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String("photos"), Key: aws.String("stolen"), CopySource: aws.String("alice-only/x")})
	wantCode(t, "bob copies from alice's bucket", err, "NoSuchBucket")
	lb, err := bob.ListBuckets(ctx, &awss3.ListBucketsInput{})
	if err != nil || len(lb.Buckets) != 1 || aws.ToString(lb.Buckets[0].Name) != "photos" {
		t.Fatalf("bob's ListBuckets = %+v, %v", lb, err)
	}
	out, err := bob.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("photos")})
	if err != nil || len(out.Contents) != 0 {
		t.Fatalf("bob's photos lists %d objects, %v", len(out.Contents), err)
	}
}

func TestPresignAndMinioStreaming(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("share")}); err != nil {
		t.Fatal(err)
	}
	// minio-go sends STREAMING-AWS4-HMAC-SHA256-PAYLOAD (signed chunks) over HTTP.
	mc, err := minio.New(strings.TrimPrefix(e.endpoint, "http://"), &minio.Options{Creds: miniocreds.NewStaticV4("ALICEKEY", "alicesecret", ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(9, 300_000)
	if _, err := mc.PutObject(ctx, "share", "streamed", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("minio-go PutObject: %v", err)
	}
	ps := awss3.NewPresignClient(c)
	req, err := ps.PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("share"), Key: aws.String("streamed")}, awss3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("presigned GET: %d, %d bytes", resp.StatusCode, len(got))
	}
	// A tampered presigned URL is refused.
	resp, err = http.Get(strings.Replace(req.URL, "streamed", "streamed2", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("tampered presigned GET: %d", resp.StatusCode)
	}
}

// TestRefusedBodyNotSmuggled sends an unauthenticated PUT whose body holds
// a second request: it must not be executed.
func TestRefusedBodyNotSmuggled(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("smuggle")}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	inner := "DELETE /smuggle HTTP/1.1\r\nHost: x\r\n\r\n"
	fmt.Fprintf(conn, "PUT /smuggle/k HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(inner), inner)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, _ := io.ReadAll(conn)
	if n := strings.Count(string(resp), "HTTP/1.1 "); n != 1 {
		t.Fatalf("got %d responses, want 1:\n%s", n, resp)
	}
	if _, err := c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("smuggle")}); err != nil {
		t.Fatalf("bucket gone: %v", err)
	}
}

// TestUnsupportedHeadersRefused: a write or delete asking for what the
// server does not do (encryption, object lock, some conditions) is
// refused with NotImplemented and changes nothing (conditional writes,
// tags: conditional_test.go, tagging_test.go); silently ignoring the
// header would leave the client believing its object is protected.
// Headers that ask for nothing (tagging directive COPY, object lock
// "false") are served.
func TestUnsupportedHeadersRefused(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "hdrs")
	ctx := t.Context()
	b, k := aws.String("hdrs"), aws.String("keep")
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("first")}); err != nil {
		t.Fatal(err)
	}
	src := aws.String("hdrs/keep")
	until := time.Now().Add(24 * time.Hour)
	refused := []struct {
		name string
		call func() error
	}{
		{"PutObject If-None-Match ETAG", func() error {
			_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("inm"), IfNoneMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
			return err
		}},
		{"DeleteObject If-Match-Size", func() error {
			_, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: k, IfMatchSize: aws.Int64(5)})
			return err
		}},
		{"PutObject SSE-S3", func() error {
			_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("sse"), ServerSideEncryption: types.ServerSideEncryptionAes256})
			return err
		}},
		{"PutObject SSE-KMS", func() error {
			_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("kms"), Body: strings.NewReader("sse"), ServerSideEncryption: types.ServerSideEncryptionAwsKms})
			return err
		}},
		{"PutObject SSE-C", func() error {
			_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("ssec"),
				SSECustomerAlgorithm: aws.String("AES256"), SSECustomerKey: aws.String("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="), SSECustomerKeyMD5: aws.String("tN8yOlthBxl0JFdzwM5Z/w==")})
			return err
		}},
		{"GetObject SSE-C", func() error {
			_, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: k,
				SSECustomerAlgorithm: aws.String("AES256"), SSECustomerKey: aws.String("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="), SSECustomerKeyMD5: aws.String("tN8yOlthBxl0JFdzwM5Z/w==")})
			return err
		}},
		{"CreateBucket object lock", func() error {
			_, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("locked"), ObjectLockEnabledForBucket: aws.Bool(true)})
			return err
		}},
	}
	for _, tc := range refused {
		wantCode(t, tc.name, tc.call(), "NotImplemented")
	}
	// Object lock headers on a bucket without object lock (objectlock_test.go).
	_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("lock"), ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: &until})
	wantCode(t, "PutObject object lock", err, "InvalidRequest")
	_, err = c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("hold"), Body: strings.NewReader("lock"), ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
	wantCode(t, "PutObject legal hold", err, "InvalidRequest")
	if got := getString(t, c, "hdrs", "keep"); got != "first" {
		t.Fatalf("keep = %q after refused writes, want %q", got, "first")
	}
	for _, key := range []string{"copy", "kms", "hold"} {
		if headMeta(t, c, "hdrs", key) != nil {
			t.Fatalf("a refused write created %s", key)
		}
	}
	if _, err := c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("locked")}); apiCode(err) != "NotFound" {
		t.Fatalf("HeadBucket locked: %v, want NotFound (a refused CreateBucket created it)", err)
	}
	ups, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: b})
	if err != nil || len(ups.Uploads) != 0 {
		t.Fatalf("uploads after a refused create: %v, %v", ups, err)
	}

	// Asking for nothing is served.
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: src, TaggingDirective: types.TaggingDirectiveCopy}); err != nil {
		t.Fatalf("CopyObject tagging COPY: %v", err)
	}
	if got := getString(t, c, "hdrs", "copy"); got != "first" {
		t.Fatalf("copy = %q, want %q", got, "first")
	}
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("unlocked"), ObjectLockEnabledForBucket: aws.Bool(false)}); err != nil {
		t.Fatalf("CreateBucket object lock false: %v", err)
	}
}

// getString returns the bytes of bucket/key.
func getString(t *testing.T, c *awss3.Client, bucket, key string) string {
	t.Helper()
	out, err := c.GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	return string(b)
}
