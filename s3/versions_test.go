package s3_test

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// TestListObjectVersionsUnversioned: ListObjectVersions on an unversioned
// bucket lists every object once as version "null", the latest, paging
// with key and version-id markers, with prefix and delimiter.
func TestListObjectVersionsUnversioned(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("vers")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	var want []string // top-level keys
	for i := range 12 {
		key := fmt.Sprintf("k%02d", i)
		want = append(want, key)
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: strings.NewReader(key)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"dir/a", "dir/b", "other/x"} {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: strings.NewReader(key)}); err != nil {
			t.Fatal(err)
		}
	}

	// aws-sdk-go-v2's paginator, 5 per page, with a delimiter.
	p := awss3.NewListObjectVersionsPaginator(c, &awss3.ListObjectVersionsInput{Bucket: b, Delimiter: aws.String("/"), MaxKeys: aws.Int32(5)})
	var keys, prefixes []string
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if n := len(out.Versions) + len(out.CommonPrefixes); n > 5 || (aws.ToBool(out.IsTruncated) && n != 5) {
			t.Errorf("page %d: %d entries, truncated %v", pages, n, aws.ToBool(out.IsTruncated))
		}
		if len(out.DeleteMarkers) != 0 {
			t.Errorf("delete markers %v", out.DeleteMarkers)
		}
		for _, v := range out.Versions {
			if aws.ToString(v.VersionId) != "null" || !aws.ToBool(v.IsLatest) || aws.ToInt64(v.Size) != int64(len(aws.ToString(v.Key))) || aws.ToString(v.ETag) == "" {
				t.Errorf("version %+v", v)
			}
			keys = append(keys, aws.ToString(v.Key))
		}
		for _, cp := range out.CommonPrefixes {
			prefixes = append(prefixes, aws.ToString(cp.Prefix))
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(keys, want) || !slices.Equal(prefixes, []string{"dir/", "other/"}) || pages != 3 {
		t.Errorf("listed keys %v, prefixes %v in %d pages; want %v, [dir/ other/] in 3", keys, prefixes, pages, want)
	}

	// A prefix, and explicit markers.
	out, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, Prefix: aws.String("dir/")})
	if err != nil || len(out.Versions) != 2 || aws.ToString(out.Versions[1].Key) != "dir/b" || aws.ToBool(out.IsTruncated) {
		t.Fatalf("prefix dir/: %+v, %v", out, err)
	}
	out, err = c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, KeyMarker: aws.String("k10"), VersionIdMarker: aws.String("null"), MaxKeys: aws.Int32(1)})
	if err != nil || len(out.Versions) != 1 || aws.ToString(out.Versions[0].Key) != "k11" || !aws.ToBool(out.IsTruncated) ||
		aws.ToString(out.NextKeyMarker) != "k11" || aws.ToString(out.NextVersionIdMarker) != "null" || aws.ToString(out.KeyMarker) != "k10" {
		t.Fatalf("after k10: %+v, %v", out, err)
	}
	_, err = c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, VersionIdMarker: aws.String("null")})
	wantCode(t, "version-id-marker without key-marker", err, "InvalidArgument")
	_, err = c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, KeyMarker: aws.String("k01"), VersionIdMarker: aws.String("3HL4kqtJlcpXroDTDmJ")})
	wantCode(t, "a version-id-marker that is not null", err, "InvalidArgument")
	_, err = c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String("nope")})
	wantCode(t, "versions of a missing bucket", err, "NoSuchBucket")

	// minio-go, recursive listing with versions.
	mc, err := minio.New(strings.TrimPrefix(e.endpoint, "http://"), &minio.Options{Creds: miniocreds.NewStaticV4("ALICEKEY", "alicesecret", ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	var mkeys []string
	for o := range mc.ListObjects(ctx, "vers", minio.ListObjectsOptions{WithVersions: true, Recursive: true, MaxKeys: 4}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.VersionID != "null" || !o.IsLatest || o.IsDeleteMarker || o.Size != int64(len(o.Key)) {
			t.Errorf("minio-go version %+v", o)
		}
		mkeys = append(mkeys, o.Key)
	}
	wantAll := append(slices.Clone(want), "dir/a", "dir/b", "other/x")
	slices.Sort(wantAll)
	if !slices.Equal(mkeys, wantAll) {
		t.Errorf("minio-go listed %v, want %v", mkeys, wantAll)
	}
	// The aws cli, as bucket-emptying scripts use it (it pages by itself).
	if _, err := exec.LookPath("aws"); err == nil {
		cmd := exec.CommandContext(ctx, "aws", "--endpoint-url", e.endpoint, "s3api", "list-object-versions", "--bucket", "vers",
			"--page-size", "4", "--query", "Versions[].[Key,VersionId,IsLatest]", "--output", "text")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=ALICEKEY", "AWS_SECRET_ACCESS_KEY=alicesecret", "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		out, err := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil || len(lines) != 15 || lines[0] != "dir/a\tnull\tTrue" {
			t.Errorf("aws s3api list-object-versions: %v\n%s", err, out)
		}
	}
	// minio-go's non-recursive listing: prefixes.
	var top []string
	for o := range mc.ListObjects(ctx, "vers", minio.ListObjectsOptions{WithVersions: true, Prefix: "o"}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		top = append(top, o.Key)
	}
	if !slices.Equal(top, []string{"other/"}) {
		t.Errorf("minio-go non-recursive listing: %v", top)
	}
}

// TestListEncodingTypeURL: with encoding-type=url every listing encodes
// keys, prefixes, delimiters and markers as S3 does, '/' unescaped.
func TestListEncodingTypeURL(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("enc")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a b/c+d", "a b/é~*", "foo/bar&baz=1"}
	for _, k := range keys {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	enc := map[string]string{
		"a b/c+d":       "a+b/c%2Bd",
		"a b/é~*":       "a+b/%C3%A9%7E*",
		"foo/bar&baz=1": "foo/bar%26baz%3D1",
		"a b/":          "a+b/",
		"foo/":          "foo/",
	}
	// Each decodes back with a query unescape, as clients do.
	for raw, e := range enc {
		if got, err := url.QueryUnescape(e); err != nil || got != raw {
			t.Fatalf("test table: %q decodes to %q", e, got)
		}
	}

	v2, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: b, EncodingType: types.EncodingTypeUrl, Prefix: aws.String("a b/")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(v2.Prefix) != "a+b/" || len(v2.Contents) != 2 || aws.ToString(v2.Contents[0].Key) != enc["a b/c+d"] || aws.ToString(v2.Contents[1].Key) != enc["a b/é~*"] {
		t.Errorf("ListObjectsV2: prefix %q, keys %v", aws.ToString(v2.Prefix), v2.Contents)
	}
	v1, err := c.ListObjects(ctx, &awss3.ListObjectsInput{Bucket: b, EncodingType: types.EncodingTypeUrl, Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(v1.Delimiter) != "/" || len(v1.CommonPrefixes) != 1 || aws.ToString(v1.CommonPrefixes[0].Prefix) != "a+b/" || aws.ToString(v1.NextMarker) != "a+b/" {
		t.Errorf("ListObjects: delimiter %q prefixes %v next %q", aws.ToString(v1.Delimiter), v1.CommonPrefixes, aws.ToString(v1.NextMarker))
	}
	v1, err = c.ListObjects(ctx, &awss3.ListObjectsInput{Bucket: b, EncodingType: types.EncodingTypeUrl, Delimiter: aws.String("/"), Marker: aws.String("a b/")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(v1.Marker) != "a+b/" || len(v1.CommonPrefixes) != 1 || aws.ToString(v1.CommonPrefixes[0].Prefix) != "foo/" {
		t.Errorf("ListObjects after a b/: marker %q prefixes %v", aws.ToString(v1.Marker), v1.CommonPrefixes)
	}
	vs, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, EncodingType: types.EncodingTypeUrl, KeyMarker: aws.String("a b/c+d"), MaxKeys: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(vs.KeyMarker) != enc["a b/c+d"] || len(vs.Versions) != 1 || aws.ToString(vs.Versions[0].Key) != enc["a b/é~*"] || aws.ToString(vs.NextKeyMarker) != enc["a b/é~*"] {
		t.Errorf("ListObjectVersions: marker %q versions %v next %q", aws.ToString(vs.KeyMarker), vs.Versions, aws.ToString(vs.NextKeyMarker))
	}
	top, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b, EncodingType: types.EncodingTypeUrl, Delimiter: aws.String("/")})
	if err != nil || len(top.CommonPrefixes) != 2 || aws.ToString(top.CommonPrefixes[0].Prefix) != "a+b/" || aws.ToString(top.CommonPrefixes[1].Prefix) != "foo/" {
		t.Errorf("ListObjectVersions prefixes: %+v, %v", top, err)
	}
}

// TestCopySourceVersionAnywhere copies from a source naming a version
// after another query parameter (found by FuzzCopySource): any version
// but "null" is refused wherever it stands, never read as the current one.
func TestCopySourceVersionAnywhere(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "cpv")
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("cpv"), Key: aws.String("src"), Body: strings.NewReader("v1")}); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"cpv/src?x=1&versionId=3HL4kqtJlcpXroDTDmJ", "cpv/src?versionId=3HL4kqtJlcpXroDTDmJ"} {
		_, err := c.CopyObject(t.Context(), &awss3.CopyObjectInput{Bucket: aws.String("cpv"), Key: aws.String("dst"), CopySource: aws.String(src)})
		wantCode(t, src, err, "InvalidArgument")
		if headMeta(t, c, "cpv", "dst") != nil {
			t.Fatalf("copy from %s stored dst", src)
		}
	}
	if _, err := c.CopyObject(t.Context(), &awss3.CopyObjectInput{Bucket: aws.String("cpv"), Key: aws.String("dst"), CopySource: aws.String("cpv/src?x=1&versionId=null")}); err != nil {
		t.Fatalf("copy of version null: %v", err)
	}
}
