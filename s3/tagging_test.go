package s3_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// tagsOf returns an object's tags as "k=v" strings, in order.
func tagsOf(t *testing.T, c *awss3.Client, bucket, key string) []string {
	t.Helper()
	out, err := c.GetObjectTagging(t.Context(), &awss3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObjectTagging %s/%s: %v", bucket, key, err)
	}
	var got []string
	for _, tg := range out.TagSet {
		got = append(got, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
	}
	return got
}

func wantTags(t *testing.T, c *awss3.Client, bucket, key string, want ...string) {
	t.Helper()
	if got := tagsOf(t, c, bucket, key); !slices.Equal(got, want) {
		t.Fatalf("tags of %s/%s = %q, want %q", bucket, key, got, want)
	}
}

func tagSet(kv ...string) *types.Tagging {
	var ts []types.Tag
	for i := 0; i+1 < len(kv); i += 2 {
		ts = append(ts, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return &types.Tagging{TagSet: ts}
}

// shardFiles lists the files of the drives' shard directories (names
// carry the data id: rewritten data gets new names) with their
// modification times.
func shardFiles(t *testing.T, dirs []string) map[string]time.Time {
	t.Helper()
	files := map[string]time.Time{}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() || !strings.Contains(p, string(filepath.Separator)+"shards"+string(filepath.Separator)) {
				return err
			}
			info, err := de.Info()
			if err != nil {
				return err
			}
			files[p] = info.ModTime()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// TestObjectTagging: tags set by x-amz-tagging on PutObject, CopyObject
// and CreateMultipartUpload, replaced and removed by the tagging calls,
// counted by GET and HEAD, never shown as metadata; changing them keeps
// the data, ETag and Last-Modified (only the metadata record is
// rewritten); AWS's limits answer InvalidTag.
func TestObjectTagging(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "tags")
	ctx := t.Context()
	b := aws.String("tags")
	big := randBytes(7, 300<<10) // stored in shard files, not inline
	put, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("obj"), Body: bytes.NewReader(big),
		Tagging: aws.String("a=1&b=two%20words&c%2Fd=%C3%A9"), Metadata: map[string]string{"m": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	wantTags(t, c, "tags", "obj", "a=1", "b=two words", "c/d=é")
	head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("obj")})
	if err != nil || aws.ToInt32(head.TagCount) != 3 {
		t.Fatalf("HeadObject TagCount = %v, %v; want 3", head.TagCount, err)
	}
	if len(head.Metadata) != 1 || head.Metadata["m"] != "v" {
		t.Fatalf("HeadObject metadata = %v, want only m=v", head.Metadata)
	}
	// minio-go shows every response header.
	mc, err := minio.New(strings.TrimPrefix(e.endpoint, "http://"), &minio.Options{Creds: miniocreds.NewStaticV4("ALICEKEY", "alicesecret", "")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := mc.StatObject(ctx, "tags", "obj", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, vs := range st.Metadata {
		if strings.ContainsAny(name+strings.Join(vs, ""), "\x00") || strings.Contains(strings.ToLower(name), "tags") && name != "X-Amz-Tagging-Count" {
			t.Fatalf("response header %q: %q shows the reserved tag entry", name, vs)
		}
	}
	if st.UserTagCount != 3 {
		t.Fatalf("minio-go UserTagCount = %d, want 3", st.UserTagCount)
	}

	before := shardFiles(t, e.dirs)
	if len(before) == 0 {
		t.Fatal("no shard files found")
	}
	if _, err := c.PutObjectTagging(ctx, &awss3.PutObjectTaggingInput{Bucket: b, Key: aws.String("obj"), Tagging: tagSet("x", "1", "y", "")}); err != nil {
		t.Fatal(err)
	}
	wantTags(t, c, "tags", "obj", "x=1", "y=")
	if after := shardFiles(t, e.dirs); len(after) != len(before) {
		t.Fatalf("shard files %d → %d: the data was rewritten", len(before), len(after))
	} else {
		for p, m := range before {
			if am, ok := after[p]; !ok || !am.Equal(m) {
				t.Fatalf("shard file %s changed: the data was rewritten", p)
			}
		}
	}
	got, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("obj")})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil || !bytes.Equal(data, big) {
		t.Fatalf("data after retagging: %d bytes, %v", len(data), err)
	}
	if aws.ToString(got.ETag) != aws.ToString(put.ETag) || !got.LastModified.Equal(*head.LastModified) || aws.ToInt32(got.TagCount) != 2 {
		t.Fatalf("GET after retagging: ETag %s (was %s), Last-Modified %v (was %v), TagCount %v", aws.ToString(got.ETag), aws.ToString(put.ETag), got.LastModified, head.LastModified, got.TagCount)
	}
	if m := headMeta(t, c, "tags", "obj"); m["m"] != "v" {
		t.Fatalf("metadata after retagging: %v", m)
	}
	if _, err := c.DeleteObjectTagging(ctx, &awss3.DeleteObjectTaggingInput{Bucket: b, Key: aws.String("obj")}); err != nil {
		t.Fatal(err)
	}
	wantTags(t, c, "tags", "obj")
	if h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("obj")}); err != nil || h.TagCount != nil {
		t.Fatalf("HeadObject after DeleteObjectTagging: TagCount %v, %v", h.TagCount, err)
	}

	// The largest tag set AWS allows: 10 tags of 128- and 256-character
	// keys and values, 3 bytes a character (more than the user metadata
	// limit, which tags do not count towards).
	var max []string
	for i := range 10 {
		max = append(max, string(rune('a'+i))+strings.Repeat("中", 127), strings.Repeat("中", 256))
	}
	if _, err := c.PutObjectTagging(ctx, &awss3.PutObjectTaggingInput{Bucket: b, Key: aws.String("obj"), Tagging: tagSet(max...)}); err != nil {
		t.Fatalf("largest tag set: %v", err)
	}
	if n := len(tagsOf(t, c, "tags", "obj")); n != 10 {
		t.Fatalf("%d tags, want 10", n)
	}

	// Copies take the source's tags unless told otherwise; multipart
	// uploads get theirs at completion.
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("src"), Body: strings.NewReader("s"), Tagging: aws.String("k=v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: aws.String("tags/src")}); err != nil {
		t.Fatal(err)
	}
	wantTags(t, c, "tags", "copy", "k=v")
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("copy2"), CopySource: aws.String("tags/src"),
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"n": "1"}}); err != nil {
		t.Fatal(err)
	}
	wantTags(t, c, "tags", "copy2", "k=v")
	if m := headMeta(t, c, "tags", "copy2"); len(m) != 1 || m["n"] != "1" {
		t.Fatalf("copy2 metadata = %v", m)
	}
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("copy3"), CopySource: aws.String("tags/src"),
		TaggingDirective: types.TaggingDirectiveReplace, Tagging: aws.String("r=1")}); err != nil {
		t.Fatal(err)
	}
	wantTags(t, c, "tags", "copy3", "r=1")
	if _, err := c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: b, Key: aws.String("src"), CopySource: aws.String("tags/src"),
		TaggingDirective: types.TaggingDirectiveReplace, Tagging: aws.String("self=1")}); err != nil {
		t.Fatalf("copy onto itself with new tags: %v", err)
	}
	wantTags(t, c, "tags", "src", "self=1")
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp"), Tagging: aws.String("mp=yes")})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: pr.ETag}}}}); err != nil {
		t.Fatal(err)
	}
	wantTags(t, c, "tags", "mp", "mp=yes")

	// Errors, as AWS answers them; none changes the tags.
	eleven := make([]string, 0, 22)
	for i := range 11 {
		eleven = append(eleven, string(rune('a'+i)), "v")
	}
	for _, tc := range []struct {
		name string
		tags *types.Tagging
		code string
	}{
		{"11 tags", tagSet(eleven...), "InvalidTag"},
		{"129-character key", tagSet(strings.Repeat("é", 129), "v"), "InvalidTag"},
		{"257-character value", tagSet("k", strings.Repeat("é", 257)), "InvalidTag"},
		{"duplicate key", tagSet("k", "1", "k", "2"), "InvalidTag"},
		{"empty key", tagSet("", "v"), "InvalidTag"},
		{"key with #", tagSet("a#b", "v"), "InvalidTag"},
		{"value with *", tagSet("k", "a*b"), "InvalidTag"},
		{"aws: prefix", tagSet("aws:k", "v"), "InvalidTag"},
	} {
		_, err := c.PutObjectTagging(ctx, &awss3.PutObjectTaggingInput{Bucket: b, Key: aws.String("src"), Tagging: tc.tags})
		wantCode(t, "PutObjectTagging "+tc.name, err, tc.code)
		if httpStatusOf(err) != http.StatusBadRequest {
			t.Fatalf("PutObjectTagging %s: status %d, want 400", tc.name, httpStatusOf(err))
		}
	}
	wantTags(t, c, "tags", "src", "self=1")
	for _, tc := range []struct{ name, header, code string }{
		{"duplicate key", "a=1&a=2", "InvalidArgument"},
		{"bad escape", "a=%zz", "InvalidArgument"},
		{"11 tags", "a=1&b=1&c=1&d=1&e=1&f=1&g=1&h=1&i=1&j=1&k=1", "InvalidTag"},
		{"bad character", "a=%2A", "InvalidTag"},
	} {
		_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("refused"), Body: strings.NewReader("x"), Tagging: aws.String(tc.header)})
		wantCode(t, "PutObject x-amz-tagging "+tc.name, err, tc.code)
	}
	if headMeta(t, c, "tags", "refused") != nil {
		t.Fatal("a PutObject with invalid tags stored the object")
	}
	_, err = c.GetObjectTagging(ctx, &awss3.GetObjectTaggingInput{Bucket: b, Key: aws.String("missing")})
	wantCode(t, "GetObjectTagging missing", err, "NoSuchKey")
	_, err = c.PutObjectTagging(ctx, &awss3.PutObjectTaggingInput{Bucket: b, Key: aws.String("missing"), Tagging: tagSet("k", "v")})
	wantCode(t, "PutObjectTagging missing", err, "NoSuchKey")
	if status, body := signed(t, http.MethodPut, e.endpoint+"/tags/src?tagging", "<Tagging><TagSet><Tag>", time.Now()); status != 400 || !strings.Contains(body, "MalformedXML") {
		t.Fatalf("malformed Tagging: %d %s", status, body)
	}
	// Another tenant sees no such bucket.
	_, err = e.client("BOBKEY", "bobsecret").GetObjectTagging(ctx, &awss3.GetObjectTaggingInput{Bucket: b, Key: aws.String("src")})
	wantCode(t, "GetObjectTagging of another tenant", err, "NoSuchBucket")
}

// httpStatusOf returns the HTTP status of an SDK error, 0 if none.
func httpStatusOf(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// TestBucketTagging: bucket tags are a replicated bucket configuration
// document, up to 50 tags.
func TestBucketTagging(t *testing.T) {
	e := startConfigServer(t)
	c := createBucket(t, e, "btags")
	ctx := t.Context()
	b := aws.String("btags")
	_, err := c.GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: b})
	wantCode(t, "GetBucketTagging before any", err, "NoSuchTagSet")
	if _, err := c.PutBucketTagging(ctx, &awss3.PutBucketTaggingInput{Bucket: b, Tagging: tagSet("team", "data", "cost center", "42")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: b})
	if err != nil || len(out.TagSet) != 2 || aws.ToString(out.TagSet[1].Key) != "cost center" || aws.ToString(out.TagSet[1].Value) != "42" {
		t.Fatalf("GetBucketTagging = %+v, %v", out, err)
	}
	var fifty, fiftyOne []string
	for i := range 51 {
		kv := []string{"k" + string(rune('A'+i%26)) + string(rune('a'+i/26)), "v"}
		if i < 50 {
			fifty = append(fifty, kv...)
		}
		fiftyOne = append(fiftyOne, kv...)
	}
	if _, err := c.PutBucketTagging(ctx, &awss3.PutBucketTaggingInput{Bucket: b, Tagging: tagSet(fifty...)}); err != nil {
		t.Fatalf("50 bucket tags: %v", err)
	}
	_, err = c.PutBucketTagging(ctx, &awss3.PutBucketTaggingInput{Bucket: b, Tagging: tagSet(fiftyOne...)})
	wantCode(t, "51 bucket tags", err, "InvalidTag")
	_, err = c.PutBucketTagging(ctx, &awss3.PutBucketTaggingInput{Bucket: b, Tagging: tagSet("k", "1", "k", "2")})
	wantCode(t, "duplicate bucket tag", err, "InvalidTag")
	if out, err := c.GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: b}); err != nil || len(out.TagSet) != 50 {
		t.Fatalf("after refused puts: %d tags, %v", len(out.TagSet), err)
	}
	_, err = e.client("BOBKEY", "bobsecret").GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: b})
	wantCode(t, "GetBucketTagging of another tenant", err, "NoSuchBucket")
	if _, err := c.DeleteBucketTagging(ctx, &awss3.DeleteBucketTaggingInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: b})
	wantCode(t, "GetBucketTagging after delete", err, "NoSuchTagSet")
	_, err = c.PutBucketTagging(ctx, &awss3.PutBucketTaggingInput{Bucket: aws.String("nope"), Tagging: tagSet("k", "v")})
	wantCode(t, "PutBucketTagging missing bucket", err, "NoSuchBucket")
}

// TestTaggingVersions: in a versioned bucket a tag change rewrites the
// version it names (the newest without versionId) and nothing else: the
// other versions keep their tags, the key still lists its versions with
// the same ids, and the bytes read back.
func TestTaggingVersions(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("tagvers")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, body := range []string{"first", "second"} {
		out, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(out.VersionId))
	}
	tagSet := func(k, v string) *types.Tagging {
		return &types.Tagging{TagSet: []types.Tag{{Key: aws.String(k), Value: aws.String(v)}}}
	}
	out, err := c.PutObjectTagging(ctx, &awss3.PutObjectTaggingInput{Bucket: b, Key: aws.String("k"), Tagging: tagSet("which", "newest")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.VersionId) != ids[1] {
		t.Errorf("PutObjectTagging tagged version %q, want the newest %q", aws.ToString(out.VersionId), ids[1])
	}
	if _, err := c.PutObjectTagging(ctx, &awss3.PutObjectTaggingInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(ids[0]), Tagging: tagSet("which", "oldest")}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"oldest", "newest"} {
		got, err := c.GetObjectTagging(ctx, &awss3.GetObjectTaggingInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(ids[i])})
		if err != nil || len(got.TagSet) != 1 || aws.ToString(got.TagSet[0].Value) != want {
			t.Fatalf("tags of version %d: %+v, %v; want which=%s", i, got, err, want)
		}
		obj, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(ids[i])})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		if string(body) != []string{"first", "second"}[i] || aws.ToInt32(obj.TagCount) != 1 {
			t.Fatalf("version %d: %q with %d tags", i, body, aws.ToInt32(obj.TagCount))
		}
	}
	lv, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(lv.Versions) != 2 || aws.ToString(lv.Versions[0].VersionId) != ids[1] || !aws.ToBool(lv.Versions[0].IsLatest) || aws.ToString(lv.Versions[1].VersionId) != ids[0] {
		t.Fatalf("versions after tagging: %+v", lv.Versions)
	}
	cur, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(cur.Body)
	cur.Body.Close()
	if string(body) != "second" || aws.ToString(cur.VersionId) != ids[1] {
		t.Fatalf("the key reads %q version %q, want second %s", body, aws.ToString(cur.VersionId), ids[1])
	}
}
