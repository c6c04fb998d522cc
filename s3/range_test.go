package s3_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// TestRangeRFC9110 sends Range headers whose positions have a sign or do
// not fit in int64 (found by FuzzParseRange). Positions are digits only,
// of any length: a signed position makes the header invalid, so the whole
// object is served; a huge last position is cut to the end; a huge first
// or suffix position is past the end or the whole object.
func TestRangeRFC9110(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "rng")
	data := []byte("0123456789")
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("rng"), Key: aws.String("k"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rng    string
		status int
		body   string
		crange string
		code   string
	}{
		{"bytes=0-99999999999999999999", 206, "0123456789", "bytes 0-9/10", ""},
		{"bytes=3-18446744073709551615", 206, "3456789", "bytes 3-9/10", ""},
		{"bytes=-99999999999999999999", 206, "0123456789", "bytes 0-9/10", ""},
		{"bytes=99999999999999999999-", 416, "", "", "InvalidRange"},
		{"bytes=+1-2", 200, "0123456789", "", ""},
		{"bytes=-+3", 200, "0123456789", "", ""},
		{"bytes=1-+2", 200, "0123456789", "", ""},
		{"bytes=1-2", 206, "12", "bytes 1-2/10", ""},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			out, err := c.GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String("rng"), Key: aws.String("k"), Range: aws.String(tc.rng)},
				func(o *awss3.Options) { o.APIOptions = append(o.APIOptions, captureStatus) })
			if tc.code != "" {
				wantCode(t, tc.rng, err, tc.code)
				return
			}
			if err != nil {
				t.Fatalf("GetObject: %v", err)
			}
			defer out.Body.Close()
			got, err := io.ReadAll(out.Body)
			if err != nil {
				t.Fatal(err)
			}
			status := out.ResultMetadata.Get(statusKey{}).(int)
			if status != tc.status || string(got) != tc.body || aws.ToString(out.ContentRange) != tc.crange {
				t.Fatalf("got %d %q Content-Range %q, want %d %q %q", status, got, aws.ToString(out.ContentRange), tc.status, tc.body, tc.crange)
			}
		})
	}
}

type statusKey struct{}

// captureStatus records the HTTP status in the output's ResultMetadata.
func captureStatus(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("captureStatus", func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleDeserialize(ctx, in)
		if resp, ok := out.RawResponse.(*smithyhttp.Response); ok {
			md.Set(statusKey{}, resp.StatusCode)
		}
		return out, md, err
	}), middleware.After)
}

// TestRangedGetChecksumMode: a ranged GET with checksum mode enabled
// carries no checksum (the stored one covers the whole object, and the SDK
// would validate the range against it and fail the read); a whole GET
// carries the stored one.
func TestRangedGetChecksumMode(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "ckk")
	ctx := t.Context()
	put, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("ckk"), Key: aws.String("k"), Body: strings.NewReader("0123456789"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rng, body, crc32 string
	}{
		{"bytes=2-4", "234", ""},
		{"", "0123456789", aws.ToString(put.ChecksumCRC32)},
	} {
		in := &awss3.GetObjectInput{Bucket: aws.String("ckk"), Key: aws.String("k"), ChecksumMode: types.ChecksumModeEnabled}
		if tc.rng != "" {
			in.Range = aws.String(tc.rng)
		}
		out, err := c.GetObject(ctx, in)
		if err != nil {
			t.Fatalf("GET %q: %v", tc.rng, err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || string(got) != tc.body {
			t.Fatalf("GET %q with checksum mode: read %q, %v; want %q", tc.rng, got, err, tc.body)
		}
		if crc := aws.ToString(out.ChecksumCRC32); crc != tc.crc32 {
			t.Fatalf("GET %q: x-amz-checksum-crc32 %q, want %q", tc.rng, crc, tc.crc32)
		}
	}
}

// TestIfRange: a Range is honoured only while its If-Range validator holds
// (the object's strong ETag or its Last-Modified date); otherwise the whole
// object is served with 200, so a resumed download never splices versions.
// A weak ETag fails If-Match, which compares strongly.
func TestIfRange(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "ifrange")
	put, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("ifrange"), Key: aws.String("k"), Body: bytes.NewReader([]byte("0123456789"))})
	if err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: aws.String("ifrange"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	etag := aws.ToString(put.ETag)
	date := head.LastModified.UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name, ifRange string
		status        int
		body          string
	}{
		{"matching etag", etag, 206, "12"},
		{"other etag", `"0123"`, 200, "0123456789"},
		{"weak etag", "W/" + etag, 200, "0123456789"},
		{"matching date", date, 206, "12"},
		{"earlier date", head.LastModified.Add(-time.Hour).UTC().Format(http.TimeFormat), 200, "0123456789"},
		{"garbage", "yesterday", 200, "0123456789"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String("ifrange"), Key: aws.String("k"), Range: aws.String("bytes=1-2")},
				func(o *awss3.Options) {
					o.APIOptions = append(o.APIOptions, captureStatus, smithyhttp.AddHeaderValue("If-Range", tc.ifRange))
				})
			if err != nil {
				t.Fatalf("GetObject: %v", err)
			}
			defer out.Body.Close()
			got, err := io.ReadAll(out.Body)
			if err != nil {
				t.Fatal(err)
			}
			if status := out.ResultMetadata.Get(statusKey{}).(int); status != tc.status || string(got) != tc.body {
				t.Fatalf("got %d %q, want %d %q", status, got, tc.status, tc.body)
			}
		})
	}
	_, err = c.GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String("ifrange"), Key: aws.String("k"), IfMatch: aws.String("W/" + etag)})
	wantCode(t, "weak If-Match", err, "PreconditionFailed")
}

// TestObjectsSandboxed: an object opened in a browser cannot act on the
// node's origin, which the web console shares: GET and HEAD answers carry
// Content-Security-Policy: sandbox and nosniff, even for text/html.
func TestObjectsSandboxed(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "sandbox")
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("sandbox"), Key: aws.String("page.html"),
		ContentType: aws.String("text/html"), Body: bytes.NewReader([]byte("<script>alert(1)</script>"))}); err != nil {
		t.Fatal(err)
	}
	ps := awss3.NewPresignClient(c)
	get, err := ps.PresignGetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String("sandbox"), Key: aws.String("page.html"), ResponseContentType: aws.String("text/html")})
	if err != nil {
		t.Fatal(err)
	}
	head, err := ps.PresignHeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: aws.String("sandbox"), Key: aws.String("page.html")})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct{ method, url string }{{http.MethodGet, get.URL}, {http.MethodHead, head.URL}} {
		resp, err := http.DefaultClient.Do(must(http.NewRequestWithContext(t.Context(), req.method, req.url, nil)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != "sandbox" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d, Content-Security-Policy %q, X-Content-Type-Options %q; want 200, sandbox, nosniff", req.method, resp.StatusCode,
				resp.Header.Get("Content-Security-Policy"), resp.Header.Get("X-Content-Type-Options"))
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
