package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestMultipart(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("mpu")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	src := randBytes(5, 3<<20)
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("src"), Body: bytes.NewReader(src)}); err != nil {
		t.Fatal(err)
	}
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("big"), ContentType: aws.String("application/zip"), Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	p1 := randBytes(1, 5<<20)
	r1, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: aws.String("big"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(p1)})
	if err != nil {
		t.Fatalf("UploadPart 1: %v", err)
	}
	r2, err := c.UploadPartCopy(ctx, &awss3.UploadPartCopyInput{Bucket: b, Key: aws.String("big"), UploadId: up.UploadId, PartNumber: aws.Int32(2), CopySource: aws.String("mpu/src"), CopySourceRange: aws.String("bytes=100-1099")})
	if err != nil {
		t.Fatalf("UploadPartCopy: %v", err)
	}
	ups, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: b})
	if err != nil || len(ups.Uploads) != 1 || aws.ToString(ups.Uploads[0].UploadId) != aws.ToString(up.UploadId) {
		t.Fatalf("ListMultipartUploads = %+v, %v", ups, err)
	}
	lp, err := c.ListParts(ctx, &awss3.ListPartsInput{Bucket: b, Key: aws.String("big"), UploadId: up.UploadId})
	if err != nil || len(lp.Parts) != 2 || aws.ToInt64(lp.Parts[1].Size) != 1000 {
		t.Fatalf("ListParts = %+v, %v", lp, err)
	}
	complete := func(parts ...types.CompletedPart) (*awss3.CompleteMultipartUploadOutput, error) {
		return c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("big"), UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	}
	part := func(n int32, etag *string) types.CompletedPart {
		return types.CompletedPart{PartNumber: aws.Int32(n), ETag: etag}
	}
	_, err = complete(part(2, r2.CopyPartResult.ETag), part(1, r1.ETag))
	wantCode(t, "out of order", err, "InvalidPartOrder")
	_, err = complete(part(1, r1.ETag), part(2, aws.String(`"0000"`)))
	wantCode(t, "wrong etag", err, "InvalidPart")
	_, err = complete(part(2, r2.CopyPartResult.ETag), part(3, r2.CopyPartResult.ETag))
	wantCode(t, "missing part", err, "InvalidPart")
	done, err := complete(part(1, r1.ETag), part(2, r2.CopyPartResult.ETag))
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if etag := aws.ToString(done.ETag); len(etag) < 4 || etag[len(etag)-3:] != `-2"` {
		t.Fatalf("multipart ETag = %s", etag)
	}
	out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if want := append(bytes.Clone(p1), src[100:1100]...); !bytes.Equal(got, want) || aws.ToString(out.ContentType) != "application/zip" || out.Metadata["k"] != "v" {
		t.Fatalf("assembled object: %d bytes (want %d), %s %v", len(got), len(want), aws.ToString(out.ContentType), out.Metadata)
	}
	_, err = c.ListParts(ctx, &awss3.ListPartsInput{Bucket: b, Key: aws.String("big"), UploadId: up.UploadId})
	wantCode(t, "ListParts after complete", err, "NoSuchUpload")

	// Too-small parts and abort.
	up2, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("small")})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for n := int32(1); n <= 2; n++ {
		r, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: aws.String("small"), UploadId: up2.UploadId, PartNumber: aws.Int32(n), Body: bytes.NewReader([]byte("tiny"))})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, part(n, r.ETag))
	}
	_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("small"), UploadId: up2.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	wantCode(t, "small parts", err, "EntityTooSmall")
	if _, err := c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("small"), UploadId: up2.UploadId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("small"), UploadId: up2.UploadId})
	wantCode(t, "second abort", err, "NoSuchUpload")
}

func TestMultipartChecksums(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("sums")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg types.ChecksumAlgorithm
		typ types.ChecksumType
	}{
		{types.ChecksumAlgorithmCrc32, types.ChecksumTypeFullObject},
		{types.ChecksumAlgorithmCrc32c, types.ChecksumTypeComposite},
		{types.ChecksumAlgorithmCrc64nvme, types.ChecksumTypeFullObject},
		{types.ChecksumAlgorithmSha256, types.ChecksumTypeComposite},
	} {
		key := aws.String("obj-" + string(tc.alg))
		up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key, ChecksumAlgorithm: tc.alg, ChecksumType: tc.typ})
		if err != nil {
			t.Fatalf("%s: create: %v", tc.alg, err)
		}
		var parts []types.CompletedPart
		var whole []byte
		for n, size := range []int{5 << 20, 123_457} {
			data := randBytes(uint64(n+7), size)
			whole = append(whole, data...)
			out, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(n + 1)), Body: bytes.NewReader(data), ChecksumAlgorithm: tc.alg})
			if err != nil {
				t.Fatalf("%s: part %d: %v", tc.alg, n+1, err)
			}
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(n + 1)), ETag: out.ETag,
				ChecksumCRC32: out.ChecksumCRC32, ChecksumCRC32C: out.ChecksumCRC32C, ChecksumCRC64NVME: out.ChecksumCRC64NVME, ChecksumSHA256: out.ChecksumSHA256})
		}
		done, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		if err != nil {
			t.Fatalf("%s: complete: %v", tc.alg, err)
		}
		// A retried Complete answers the same checksum.
		again, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		if err != nil {
			t.Fatalf("%s: retried complete: %v", tc.alg, err)
		}
		for _, pair := range [][2]*string{{done.ChecksumCRC32, again.ChecksumCRC32}, {done.ChecksumCRC32C, again.ChecksumCRC32C},
			{done.ChecksumCRC64NVME, again.ChecksumCRC64NVME}, {done.ChecksumSHA256, again.ChecksumSHA256}} {
			if aws.ToString(pair[0]) != aws.ToString(pair[1]) {
				t.Fatalf("%s: complete said checksum %q, its retry %q", tc.alg, aws.ToString(pair[0]), aws.ToString(pair[1]))
			}
		}
		if done.ChecksumType != again.ChecksumType || aws.ToString(done.ETag) != aws.ToString(again.ETag) {
			t.Fatalf("%s: complete said %s %s, its retry %s %s", tc.alg, done.ChecksumType, aws.ToString(done.ETag), again.ChecksumType, aws.ToString(again.ETag))
		}
		// The SDK validates a full-object checksum against the body it reads.
		get, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: key, ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatalf("%s: get: %v", tc.alg, err)
		}
		got, err := io.ReadAll(get.Body)
		get.Body.Close()
		if err != nil || !bytes.Equal(got, whole) {
			t.Fatalf("%s: body: %d bytes, %v", tc.alg, len(got), err)
		}
		sent := map[types.ChecksumAlgorithm][2]*string{
			types.ChecksumAlgorithmCrc32:     {done.ChecksumCRC32, get.ChecksumCRC32},
			types.ChecksumAlgorithmCrc32c:    {done.ChecksumCRC32C, get.ChecksumCRC32C},
			types.ChecksumAlgorithmCrc64nvme: {done.ChecksumCRC64NVME, get.ChecksumCRC64NVME},
			types.ChecksumAlgorithmSha256:    {done.ChecksumSHA256, get.ChecksumSHA256},
		}[tc.alg]
		if aws.ToString(sent[0]) == "" || aws.ToString(sent[0]) != aws.ToString(sent[1]) {
			t.Fatalf("%s: complete said %q, GET says %q", tc.alg, aws.ToString(sent[0]), aws.ToString(sent[1]))
		}
		composite := bytes.HasSuffix([]byte(aws.ToString(sent[0])), []byte("-2"))
		if composite != (tc.typ == types.ChecksumTypeComposite) {
			t.Fatalf("%s %s: checksum %q", tc.alg, tc.typ, aws.ToString(sent[0]))
		}
	}
}

func TestGetByPartNumber(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("parts")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("single"), Body: bytes.NewReader([]byte("0123456789"))}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("single"), PartNumber: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(got) != "0123456789" || out.PartsCount != nil {
		t.Fatalf("part 1 of a single-part object: %q, parts count %v", got, out.PartsCount)
	}
	_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("single"), PartNumber: aws.Int32(2)})
	wantCode(t, "part 2 of a single-part object", err, "InvalidPartNumber")

	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("multi")})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := randBytes(1, 5<<20), randBytes(2, 777)
	var parts []types.CompletedPart
	for n, data := range [][]byte{p1, p2} {
		r, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: aws.String("multi"), UploadId: up.UploadId, PartNumber: aws.Int32(int32(n + 1)), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(n + 1)), ETag: r.ETag})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("multi"), UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	out, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("multi"), PartNumber: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(got, p2) || aws.ToInt32(out.PartsCount) != 2 || aws.ToString(out.ContentRange) != fmt.Sprintf("bytes %d-%d/%d", len(p1), len(p1)+len(p2)-1, len(p1)+len(p2)) {
		t.Fatalf("part 2: %d bytes, parts count %v, range %v", len(got), aws.ToInt32(out.PartsCount), aws.ToString(out.ContentRange))
	}
	h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("multi"), PartNumber: aws.Int32(1)})
	if err != nil || aws.ToInt64(h.ContentLength) != int64(len(p1)) {
		t.Fatalf("HEAD part 1: %v, %v", h, err)
	}
}

// TestDeleteBucketEndsItsUploads: deleting a bucket ends its multipart
// uploads, so a later bucket of the same name (the same tenant's, or a
// new tenant's reusing the name) neither lists nor completes them.
func TestDeleteBucketEndsItsUploads(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := createBucket(t, e, "mpu")
	b, key := aws.String("mpu"), aws.String("secret")
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("old owner's data")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: b}); err != nil {
		t.Fatalf("delete a bucket with an upload in progress: %v", err)
	}
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	lu, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(lu.Uploads) != 0 {
		t.Fatalf("the new bucket lists %d uploads of the deleted one", len(lu.Uploads))
	}
	_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: pr.ETag}}}})
	wantCode(t, "complete an upload of the deleted bucket", err, "NoSuchUpload")
	if headMeta(t, c, "mpu", "secret") != nil {
		t.Fatal("the deleted bucket's upload became an object of the new one")
	}
}

// TestCompleteAbortRace completes and aborts the same upload at once, as
// an SDK upload manager does when its complete times out: whichever wins,
// an acknowledged complete leaves the whole object readable, and a
// refused one leaves no object.
func TestCompleteAbortRace(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := createBucket(t, e, "race")
	b, key := aws.String("race"), aws.String("k")
	data := randBytes(1, 300<<10) // not inline
	rounds := 60
	if testing.Short() {
		rounds = 15
	}
	completed := 0
	for i := range rounds {
		up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		pr, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var cerr, aerr error
		wg.Go(func() {
			_, cerr = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: pr.ETag}}}})
		})
		wg.Go(func() {
			_, aerr = c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId})
		})
		wg.Wait()
		if cerr != nil {
			if code := apiCode(cerr); code != "NoSuchUpload" {
				t.Fatalf("round %d: complete lost to abort (%v) with %v, want NoSuchUpload", i, aerr, cerr)
			}
			if aerr != nil {
				t.Fatalf("round %d: both complete (%v) and abort (%v) failed", i, cerr, aerr)
			}
			if headMeta(t, c, "race", "k") != nil {
				t.Fatalf("round %d: refused complete left an object", i)
			}
			continue
		}
		completed++
		if aerr != nil && apiCode(aerr) != "NoSuchUpload" {
			t.Fatalf("round %d: abort after complete: %v, want success or NoSuchUpload", i, aerr)
		}
		if got := getString(t, c, "race", "k"); got != string(data) {
			t.Fatalf("round %d: acknowledged multipart object reads %d bytes, want %d", i, len(got), len(data))
		}
		if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d of %d completes won the race", completed, rounds)
}

// TestUploadsQueryNeverTouchesTheObject: ?uploads names an object's
// multipart collection, so a PUT or DELETE of key?uploads is refused with
// InvalidRequest and leaves the object as it was (found by a hostile
// probe: it overwrote or deleted the object).
func TestUploadsQueryNeverTouchesTheObject(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "upq")
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("upq"), Key: aws.String("k"), Body: strings.NewReader("original")}); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"PUT", "DELETE"} {
		body := ""
		if method == "PUT" {
			body = "overwritten"
		}
		sum := sha256.Sum256([]byte(body))
		w := sdkSigned(t, e.endpoint, method, "/upq/k?uploads", hex.EncodeToString(sum[:]), nil).withBody(body)
		status, got := roundTrip(t, e.endpoint, w.bytes())
		if status != 400 || !strings.Contains(got, "<Code>InvalidRequest</Code>") {
			t.Errorf("%s /upq/k?uploads: %d %s, want 400 InvalidRequest", method, status, got)
		}
		if got := getString(t, c, "upq", "k"); got != "original" {
			t.Fatalf("after %s /upq/k?uploads the object reads %q, want %q", method, got, "original")
		}
	}
}

// TestListMultipartUploadsDelimiter: with a delimiter, uploads whose key
// has the delimiter after the prefix fold into one common prefix each, and
// paging one entry at a time visits every upload and prefix once, in key
// order, resuming after a common prefix without listing its uploads again.
func TestListMultipartUploadsDelimiter(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("mpudelim")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a/1", "a/2", "a/2", "b", "c/x/y", "c/z", "d"} {
		if _, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, prefix string
		max          int32
		want         []string // uploads by key, common prefixes ending in "/"
	}{
		{"whole page", "", 1000, []string{"a/", "b", "c/", "d"}},
		{"one at a time", "", 1, []string{"a/", "b", "c/", "d"}},
		{"two at a time", "", 2, []string{"a/", "b", "c/", "d"}},
		{"under a prefix", "c/", 1, []string{"c/x/", "c/z"}},
		{"prefix without delimiter after it", "a/", 1, []string{"a/1", "a/2", "a/2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			in := &awss3.ListMultipartUploadsInput{Bucket: b, Delimiter: aws.String("/"), Prefix: aws.String(tc.prefix), MaxUploads: aws.Int32(tc.max)}
			for page := 0; ; page++ {
				if page > 20 {
					t.Fatalf("listing does not end: %v", got)
				}
				out, err := c.ListMultipartUploads(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				if n := len(out.Uploads) + len(out.CommonPrefixes); n > int(tc.max) {
					t.Fatalf("page of %d entries, max %d", n, tc.max)
				}
				// Entries of one page come back in two lists; merge them in key order.
				var entries []string
				for _, u := range out.Uploads {
					entries = append(entries, aws.ToString(u.Key))
				}
				for _, p := range out.CommonPrefixes {
					entries = append(entries, aws.ToString(p.Prefix))
				}
				slices.Sort(entries)
				got = append(got, entries...)
				if !aws.ToBool(out.IsTruncated) {
					break
				}
				in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("listed %q, want %q", got, tc.want)
			}
		})
	}
}
