package s3_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// postForm sends a browser-style form upload, streamed: the fields, then
// the file.
func postForm(t *testing.T, url string, fields map[string]string, filename string, file io.Reader) (int, http.Header, string) {
	t.Helper()
	return postFormWith(t, url, nil, fields, filename, file)
}

// postFormWith is postForm with extra request headers.
func postFormWith(t *testing.T, url string, hdr map[string]string, fields map[string]string, filename string, file io.Reader) (int, http.Header, string) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			for k, v := range fields {
				if err := mw.WriteField(k, v); err != nil {
					return err
				}
			}
			fw, err := mw.CreateFormFile("file", filename)
			if err != nil {
				return err
			}
			if _, err := io.Copy(fw, file); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// signPolicy signs a POST policy as SigV4 does, for a policy no client
// library would make.
func signPolicy(secret, credential, policy string) string {
	scope := strings.Split(credential, "/") // key/date/region/s3/aws4_request
	mac := func(key []byte, data string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(data))
		return h.Sum(nil)
	}
	k := mac([]byte("AWS4"+secret), scope[1])
	k = mac(k, scope[2])
	k = mac(k, "s3")
	k = mac(k, "aws4_request")
	return hex.EncodeToString(mac(k, policy))
}

// signedForm returns the fields of a form uploading to bucket/key, with
// a policy signed by alice at now, valid for an hour.
func signedForm(t *testing.T, bucket, key string, now time.Time) map[string]string {
	t.Helper()
	cred := "ALICEKEY/" + now.UTC().Format("20060102") + "/us-east-1/s3/aws4_request"
	date := now.UTC().Format("20060102T150405Z")
	policy := fmt.Sprintf(`{"expiration": %q, "conditions": [{"bucket": %q}, ["eq", "$key", %q], {"x-amz-algorithm": "AWS4-HMAC-SHA256"}, {"x-amz-credential": %q}, {"x-amz-date": %q}]}`,
		now.Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z"), bucket, key, cred, date)
	b64 := base64.StdEncoding.EncodeToString([]byte(policy))
	return map[string]string{"key": key, "policy": b64, "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": cred,
		"x-amz-date": date, "x-amz-signature": signPolicy("alicesecret", cred, b64)}
}

// presignedPost returns the URL and fields of a minio-go POST policy for
// bucket "forms": keys under uploads/, 1 byte to 4 MiB, text/plain, one
// user metadata entry; adjust may add conditions.
func presignedPost(t *testing.T, mc *minio.Client, expires time.Time, adjust func(*minio.PostPolicy)) (string, map[string]string) {
	t.Helper()
	p := minio.NewPostPolicy()
	for _, err := range []error{p.SetBucket("forms"), p.SetKeyStartsWith("uploads/"), p.SetExpires(expires),
		p.SetContentLengthRange(1, 4<<20), p.SetContentType("text/plain"), p.SetUserMetadata("origin", "browser")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if adjust != nil {
		adjust(p)
	}
	u, fields, err := mc.PresignedPostPolicy(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	return u.String(), fields
}

// TestPostObject: minio-go's presigned POST policies upload through a
// form; the object streams into the store with the policy's metadata;
// success_action_status and _redirect answer as AWS; every refusal
// (signature, expiry, conditions, sizes, fields) stores nothing.
func TestPostObject(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "forms")
	ctx := t.Context()
	mc, err := minio.New(strings.TrimPrefix(e.endpoint, "http://"), &minio.Options{Creds: miniocreds.NewStaticV4("ALICEKEY", "alicesecret", "")})
	if err != nil {
		t.Fatal(err)
	}
	url, fields := presignedPost(t, mc, time.Now().Add(time.Hour), nil)
	form := func(kv ...string) map[string]string {
		f := maps.Clone(fields)
		for i := 0; i+1 < len(kv); i += 2 {
			f[kv[i]] = kv[i+1]
		}
		return f
	}

	// A 3 MiB file (shard files, several stripes) under the filename.
	data := randBytes(11, 3<<20)
	status, hdr, body := postForm(t, url, form("key", "uploads/${filename}"), "photo one.txt", bytes.NewReader(data))
	if status != http.StatusNoContent || hdr.Get("ETag") == "" {
		t.Fatalf("POST: %d %s", status, body)
	}
	got, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("forms"), Key: aws.String("uploads/photo one.txt")})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil || !bytes.Equal(stored, data) || aws.ToString(got.ContentType) != "text/plain" || got.Metadata["origin"] != "browser" || aws.ToString(got.ETag) != hdr.Get("ETag") {
		t.Fatalf("stored: %d bytes (want %d), type %q, metadata %v, ETag %s (POST said %s), %v", len(stored), len(data), aws.ToString(got.ContentType), got.Metadata, aws.ToString(got.ETag), hdr.Get("ETag"), err)
	}

	// success_action_status 201 and success_action_redirect.
	url2, fields2 := presignedPost(t, mc, time.Now().Add(time.Hour), func(p *minio.PostPolicy) {
		if err := p.SetSuccessStatusAction("201"); err != nil {
			t.Fatal(err)
		}
	})
	status, _, body = postForm(t, url2, fields2, "ignored", strings.NewReader("created"))
	if status != http.StatusCreated || !strings.Contains(body, "<Key>uploads/</Key>") || !strings.Contains(body, "<Bucket>forms</Bucket>") || !strings.Contains(body, "<ETag>") {
		t.Fatalf("201: %d %s", status, body)
	}
	url3, fields3 := presignedPost(t, mc, time.Now().Add(time.Hour), func(p *minio.PostPolicy) {
		if err := p.SetSuccessActionRedirect("https://app.example/done?x=1"); err != nil {
			t.Fatal(err)
		}
	})
	f3 := maps.Clone(fields3)
	f3["key"] = "uploads/redirected"
	status, hdr, body = postForm(t, url3, f3, "r.txt", strings.NewReader("redirect me"))
	if loc := hdr.Get("Location"); status != http.StatusSeeOther || !strings.HasPrefix(loc, "https://app.example/done?") ||
		!strings.Contains(loc, "key=uploads%2Fredirected") || !strings.Contains(loc, "bucket=forms") || !strings.Contains(loc, "etag=") || !strings.Contains(loc, "x=1") {
		t.Fatalf("redirect: %d %v %s", status, hdr, body)
	}
	if getString(t, c, "forms", "uploads/redirected") != "redirect me" {
		t.Fatal("redirected upload not stored")
	}

	// A checksum declared in the form is verified and stored.
	content := []byte("checked content")
	crc := crc32.Checksum(content, crc32.MakeTable(crc32.Castagnoli))
	good := minio.NewChecksum(minio.ChecksumCRC32C, binary.BigEndian.AppendUint32(nil, crc))
	bad := minio.NewChecksum(minio.ChecksumCRC32C, binary.BigEndian.AppendUint32(nil, crc+1))
	for _, tc := range []struct {
		name   string
		sum    minio.Checksum
		status int
	}{{"good", good, http.StatusNoContent}, {"bad", bad, http.StatusBadRequest}} {
		u, f := presignedPost(t, mc, time.Now().Add(time.Hour), func(p *minio.PostPolicy) {
			if err := p.SetChecksum(tc.sum); err != nil {
				t.Fatal(err)
			}
		})
		f["key"] = "uploads/sum-" + tc.name
		status, _, body := postForm(t, u, f, "s", bytes.NewReader(content))
		if status != tc.status || tc.status == http.StatusBadRequest && !strings.Contains(body, "<Code>BadDigest</Code>") {
			t.Fatalf("checksum %s: %d %s", tc.name, status, body)
		}
	}
	if headMeta(t, c, "forms", "uploads/sum-bad") != nil {
		t.Fatal("a form with a wrong checksum was stored")
	}
	h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("forms"), Key: aws.String("uploads/sum-good"), ChecksumMode: "ENABLED"})
	if err != nil || aws.ToString(h.ChecksumCRC32C) != good.Encoded() {
		t.Fatalf("stored checksum %v, %v; want %s", h.ChecksumCRC32C, err, good.Encoded())
	}

	expiredURL, expired := presignedPost(t, mc, time.Now().Add(-time.Minute), nil)
	badSig := form("key", "uploads/badsig")
	badSig["x-amz-signature"] = strings.Repeat("0", 64)
	otherKey := form("key", "uploads/otherkey")
	otherKey["x-amz-credential"] = strings.Replace(otherKey["x-amz-credential"], "ALICEKEY", "BOBKEY", 1)
	anonymous := form("key", "uploads/anon")
	delete(anonymous, "policy")
	delete(anonymous, "x-amz-signature")
	badPolicy := form("key", "uploads/badpolicy", "policy", base64.StdEncoding.EncodeToString([]byte(`{"expiration": "soon"`)))
	badPolicy["x-amz-signature"] = signPolicy("alicesecret", badPolicy["x-amz-credential"], badPolicy["policy"])
	expiredForm := maps.Clone(expired)
	expiredForm["key"] = "uploads/expired"
	for _, tc := range []struct {
		name   string
		url    string
		fields map[string]string
		file   string
		size   int
		status int
		code   string
		key    string // must not exist afterwards
	}{
		{"bad signature", url, badSig, "f", 10, 403, "SignatureDoesNotMatch", "uploads/badsig"},
		{"another key's credential", url, otherKey, "f", 10, 403, "SignatureDoesNotMatch", "uploads/otherkey"},
		{"anonymous", url, anonymous, "f", 10, 403, "AccessDenied", "uploads/anon"},
		{"expired policy", expiredURL, expiredForm, "f", 10, 403, "AccessDenied", "uploads/expired"},
		{"key outside the policy", url, form("key", "elsewhere/x"), "f", 10, 403, "AccessDenied", "elsewhere/x"},
		{"content type outside the policy", url, form("key", "uploads/ct", "Content-Type", "text/html"), "f", 10, 403, "AccessDenied", "uploads/ct"},
		{"metadata outside the policy", url, form("key", "uploads/meta", "x-amz-meta-origin", "server"), "f", 10, 403, "AccessDenied", "uploads/meta"},
		{"extra field", url, form("key", "uploads/extra", "x-amz-meta-extra", "1"), "f", 10, 403, "AccessDenied", "uploads/extra"},
		{"too large", url, form("key", "uploads/large"), "f", 4<<20 + 1, 400, "EntityTooLarge", "uploads/large"},
		{"too small", url, form("key", "uploads/small"), "f", 0, 400, "EntityTooSmall", "uploads/small"},
		{"no key", url, form("key", ""), "nokey", 10, 400, "InvalidArgument", "nokey"},
		{"malformed policy", url, badPolicy, "f", 10, 400, "InvalidPolicyDocument", "uploads/badpolicy"},
		{"fields too large", url, form("key", "uploads/huge", "x-ignore-pad", strings.Repeat("p", 70<<10)), "f", 10, 400, "MaxPostPreDataLengthExceededError", "uploads/huge"},
		{"encryption asked", url, form("key", "uploads/sse", "x-amz-server-side-encryption", "AES256"), "f", 10, 501, "NotImplemented", "uploads/sse"},
		{"public ACL asked", url, form("key", "uploads/acl", "acl", "public-read"), "f", 10, 400, "AccessControlListNotSupported", "uploads/acl"},
		{"bad success_action_status", url, form("key", "uploads/status", "success_action_status", "302"), "f", 10, 403, "AccessDenied", "uploads/status"},
	} {
		status, _, body := postForm(t, tc.url, tc.fields, tc.file, bytes.NewReader(randBytes(5, tc.size)))
		if status != tc.status || !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
			t.Fatalf("%s: %d %s; want %d %s", tc.name, status, body, tc.status, tc.code)
		}
		if headMeta(t, c, "forms", tc.key) != nil {
			t.Fatalf("%s: %s was stored", tc.name, tc.key)
		}
	}

	// A part header of 1 MiB before the file: refused before it is read
	// whole.
	var huge bytes.Buffer
	mw := multipart.NewWriter(&huge)
	if _, err := mw.CreatePart(map[string][]string{"Content-Disposition": {`form-data; name="x-ignore-a"`}, "X-Pad": {strings.Repeat("p", 1<<20)}}); err != nil {
		t.Fatal(err)
	}
	mw.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, &huge)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "MaxPostPreDataLengthExceededError") {
		t.Fatalf("1 MiB part header: %d %s", resp.StatusCode, b)
	}

	// Not a form.
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("key=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionFailed || !strings.Contains(string(b), "PreconditionFailed") {
		t.Fatalf("urlencoded POST: %d %s", resp.StatusCode, b)
	}
	// A bucket of another tenant: the form's signer must own it.
	bobURL := strings.Replace(url, "/forms", "/bobs", 1)
	bob := e.client("BOBKEY", "bobsecret")
	if _, err := bob.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("bobs")}); err != nil {
		t.Fatal(err)
	}
	status, _, body = postForm(t, bobURL, form("key", "uploads/x"), "f", strings.NewReader("x"))
	if status != http.StatusForbidden {
		t.Fatalf("POST to another tenant's bucket: %d %s", status, body)
	}
}

// TestPostObjectCORS: a browser's form upload from an origin the bucket's
// CORS rules allow gets Access-Control-Allow-Origin (it could not read the
// answer otherwise); another origin gets none.
func TestPostObjectCORS(t *testing.T) {
	e := startConfigServer(t)
	c := createBucket(t, e, "forms")
	ctx := t.Context()
	if _, err := c.PutBucketCors(ctx, &awss3.PutBucketCorsInput{Bucket: aws.String("forms"), CORSConfiguration: &types.CORSConfiguration{
		CORSRules: []types.CORSRule{{AllowedOrigins: []string{"https://app.example"}, AllowedMethods: []string{"POST"}}}}}); err != nil {
		t.Fatal(err)
	}
	mc, err := minio.New(strings.TrimPrefix(e.endpoint, "http://"), &minio.Options{Creds: miniocreds.NewStaticV4("ALICEKEY", "alicesecret", "")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ origin, allow string }{{"https://app.example", "https://app.example"}, {"https://evil.example", ""}} {
		url, fields := presignedPost(t, mc, time.Now().Add(time.Hour), nil)
		fields["key"] = "uploads/cors"
		status, hdr, body := postFormWith(t, url, map[string]string{"Origin": tc.origin}, fields, "c", strings.NewReader("cors"))
		if status != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != tc.allow {
			t.Fatalf("origin %s: %d, Access-Control-Allow-Origin %q (want %q) %s", tc.origin, status, hdr.Get("Access-Control-Allow-Origin"), tc.allow, body)
		}
	}
}

// TestPostObjectVersionedLocked: a POST into a bucket with object lock is
// a versioned write that takes the bucket's default retention, like a
// PutObject; it never replaces a version (probe H2: POSTs wrote
// unversioned, unlocked objects, and a second POST destroyed the first).
func TestPostObjectVersionedLocked(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("vault")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: b, ObjectLockConfiguration: &types.ObjectLockConfiguration{
		ObjectLockEnabled: types.ObjectLockEnabledEnabled,
		Rule:              &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeCompliance, Days: aws.Int32(1)}}}}); err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{"first", "second"} {
		if status, _, resp := postForm(t, e.endpoint+"/vault", signedForm(t, "vault", "k", time.Now()), "f.txt", strings.NewReader(body)); status != http.StatusNoContent {
			t.Fatalf("POST %d: status %d: %s", i, status, resp)
		}
	}
	vs, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b})
	if err != nil || len(vs.Versions) != 2 {
		t.Fatalf("ListObjectVersions: %+v, %v; want both POSTs' versions", vs, err)
	}
	for _, v := range vs.Versions {
		if aws.ToString(v.VersionId) == "null" {
			t.Fatalf("a POST wrote the null version: %+v", v)
		}
		r, err := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: b, Key: aws.String("k"), VersionId: v.VersionId})
		if err != nil || r.Retention.Mode != types.ObjectLockRetentionModeCompliance {
			t.Fatalf("retention of POSTed version %s: %+v, %v; want the default COMPLIANCE", aws.ToString(v.VersionId), r, err)
		}
		_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), VersionId: v.VersionId})
		wantVStatus(t, "delete of a POSTed COMPLIANCE version", err, 403, "AccessDenied", "", "")
	}
}
