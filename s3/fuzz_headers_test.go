package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

var (
	contentRange = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+)$`)
	copyRange    = regexp.MustCompile(`^bytes=(\d+)-(\d+)$`)
)

// headerValue reports whether s can be sent as a header value.
func headerValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzObjectHeaders sends GetObject with fuzzed Range and conditional
// headers, and UploadPartCopy and CopyObject with fuzzed x-amz-copy-source,
// x-amz-copy-source-range and x-amz-copy-source-if-* headers, to a real
// server. No answer is a 5xx; a 200 GET is the whole object, a 206 is the
// bytes its Content-Range names, a 416 names the size; a copied part is
// exactly the requested range, which lies within the source; a copied
// object has the source's bytes.
func FuzzObjectHeaders(f *testing.F) {
	e := startServer(f)
	c := e.client("ALICEKEY", "alicesecret")
	ctx := context.Background()
	data := make([]byte, 100)
	for i := range data {
		data[i] = byte(i)
	}
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("rngb")}); err != nil {
		f.Fatal(err)
	}
	put, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("rngb"), Key: aws.String("obj"), Body: bytes.NewReader(data)})
	if err != nil {
		f.Fatal(err)
	}
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("rngb"), Key: aws.String("mp")})
	if err != nil {
		f.Fatal(err)
	}
	etag := aws.ToString(put.ETag)
	hc := &http.Client{Timeout: 30 * time.Second}
	f.Cleanup(hc.CloseIdleConnections)
	date := time.Now().UTC().Format(http.TimeFormat)
	for _, s := range []struct {
		op                                        uint8
		rng, ifMatch, ifNone, ifMod, ifUnmod, src string
	}{
		{0, "bytes=0-9", "", "", "", "", ""},
		{0, "bytes=-10", etag, "", "", "", ""},
		{0, "bytes=90-", "", etag, "", "", ""},
		{0, "bytes=100-", "", "", date, "", ""},
		{0, "bytes=0-99999999999999999999", "", "", "", date, ""},
		{0, "bytes=5-1", `"nope"`, "", "", "", ""},
		{0, "bytes=1-2,4-5", "*", "*", "garbage", "garbage", ""},
		{1, "bytes=0-9", "", "", "", "", ""},
		{1, "bytes=0-99", etag, "", "", "", "/rngb/obj"},
		{1, "bytes=0-100", "", "", "", "", ""},
		{1, "bytes=-10", "", "", "", "", ""},
		{1, "bytes=10-", "", "", "", "", ""},
		{1, "bytes=+1-2", "", "", "", "", ""},
		{1, "", "", etag, "", "", "rngb/obj?versionId=null"},
		{1, "bytes=0-0", "", "", "", "", "rngb/obj?versionId=1"},
		{1, "bytes=0-0", "", "", "", "", "rngb/%zz"},
		{1, "bytes=0-0", "", "", "", "", "nobucket/obj"},
		{2, "", "", "", "", "", "/rngb/obj"},
		{2, "", `"nope"`, "", "", "", "/rngb/obj"},
		{2, "", "", "", "", "", "/rngb/dst"},
		{2, "", "", "", "", "", "/rngb"},
		{2, "", "", "", "", "", "rngb/o%62j"},
	} {
		f.Add(s.op, s.rng, s.ifMatch, s.ifNone, s.ifMod, s.ifUnmod, s.src)
	}
	f.Fuzz(func(t *testing.T, op uint8, rng, ifMatch, ifNone, ifMod, ifUnmod, src string) {
		for _, v := range []*string{&rng, &ifMatch, &ifNone, &ifMod, &ifUnmod, &src} {
			if !headerValue(*v) {
				return
			}
			*v = strings.Trim(*v, " \t") // as HTTP reads a header value
		}
		op %= 3
		method, path, prefix := "GET", "/rngb/obj", ""
		switch op {
		case 1:
			method, path, prefix = "PUT", "/rngb/mp?partNumber=1&uploadId="+aws.ToString(up.UploadId), "x-amz-copy-source-"
		case 2:
			method, path, prefix = "PUT", "/rngb/dst", "x-amz-copy-source-"
		}
		if op != 0 && src == "" {
			src = "/rngb/obj"
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, method, e.endpoint+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]string{"If-Match": ifMatch, "If-None-Match": ifNone, "If-Modified-Since": ifMod, "If-Unmodified-Since": ifUnmod} {
			if v != "" {
				req.Header.Set(prefix+name, v)
			}
		}
		if rng != "" {
			if op == 0 {
				req.Header.Set("Range", rng)
			} else {
				req.Header.Set("x-amz-copy-source-range", rng)
			}
		}
		if op != 0 {
			req.Header.Set("x-amz-copy-source", src)
		}
		const emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
		req.Header.Set("X-Amz-Content-Sha256", emptySHA)
		if err := v4.NewSigner().SignHTTP(rctx, aliceCreds, req, emptySHA, "s3", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("reading the response: %v", err)
		}
		what := fmt.Sprintf("op %d range %q if %q/%q/%q/%q source %q", op, rng, ifMatch, ifNone, ifMod, ifUnmod, src)
		status := resp.StatusCode
		if status >= 500 {
			t.Fatalf("%s: %d %.300s", what, status, body)
		}
		switch {
		case op == 0 && status == 200:
			if !bytes.Equal(body, data) {
				t.Fatalf("%s: 200 with %d bytes", what, len(body))
			}
		case op == 0 && status == 206:
			m := contentRange.FindStringSubmatch(resp.Header.Get("Content-Range"))
			if m == nil || m[3] != "100" {
				t.Fatalf("%s: 206 with Content-Range %q", what, resp.Header.Get("Content-Range"))
			}
			a, _ := strconv.Atoi(m[1])
			b, _ := strconv.Atoi(m[2])
			if a > b || b >= 100 || !bytes.Equal(body, data[a:b+1]) {
				t.Fatalf("%s: 206 %s with %d bytes", what, m[0], len(body))
			}
		case op == 0 && status == 416:
			if resp.Header.Get("Content-Range") != "bytes */100" {
				t.Fatalf("%s: 416 with Content-Range %q", what, resp.Header.Get("Content-Range"))
			}
		case op == 0 && (status == 304 || status == 412):
		case op == 0:
			t.Fatalf("%s: GET answered %d %.300s", what, status, body)
		case op == 1 && status == 200:
			want := int64(len(data))
			if rng != "" {
				m := copyRange.FindStringSubmatch(rng)
				if m == nil {
					t.Fatalf("%s: copied a part for a range that is not bytes=first-last", what)
				}
				a, _ := strconv.ParseInt(m[1], 10, 64)
				b, _ := strconv.ParseInt(m[2], 10, 64)
				if a > b || b >= int64(len(data)) {
					t.Fatalf("%s: copied a part for a range outside the source", what)
				}
				want = b - a + 1
			}
			parts, err := c.ListParts(ctx, &awss3.ListPartsInput{Bucket: aws.String("rngb"), Key: aws.String("mp"), UploadId: up.UploadId})
			if err != nil || len(parts.Parts) != 1 || aws.ToInt64(parts.Parts[0].Size) != want {
				t.Fatalf("%s: copied part is %+v, %v; want %d bytes", what, parts, err, want)
			}
		case op == 2 && status == 200:
			out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("rngb"), Key: aws.String("dst")})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: copy holds %d bytes, %v", what, len(got), err)
			}
			if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("rngb"), Key: aws.String("dst")}); err != nil {
				t.Fatal(err)
			}
		case status < 400:
			t.Fatalf("%s: answered %d %.300s", what, status, body)
		}
	})
}
