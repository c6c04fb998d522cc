package s3_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/s3"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// rawSigned returns the bytes of a SigV4 (UNSIGNED-PAYLOAD) request head for
// method/path with the given Content-Length, ready to be followed by a body.
func rawSigned(t *testing.T, endpoint, method, path string, contentLength int, extra map[string]string) string {
	t.Helper()
	req, err := http.NewRequest(method, endpoint+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	creds := aws.Credentials{AccessKeyID: "ALICEKEY", SecretAccessKey: "alicesecret"}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, req.URL.RequestURI(), req.URL.Host)
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", contentLength)
	return b.String()
}

// An oversized XML body (DeleteObjects, CompleteMultipartUpload) is refused
// after reading 2 MiB+1, but readXMLBody marks the body as read, so the
// rest of the body is parsed as a new request on the same connection.
func TestRegressOversizedXMLSmuggles(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("smug")}); err != nil {
		t.Fatal(err)
	}
	smuggled := "GET /_vault/health HTTP/1.1\r\nHost: x\r\n\r\n"
	body := strings.Repeat(" ", 2<<20+1) + smuggled
	head := rawSigned(t, e.endpoint, "POST", "/smug?delete", len(body), nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go io.WriteString(conn, head+body)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, _ := io.ReadAll(conn)
	n := strings.Count(string(resp), "HTTP/1.1 ")
	t.Logf("responses on one connection: %d\n%s", n, resp)
	if n != 1 {
		t.Fatalf("smuggled request inside the body was executed: got %d responses", n)
	}
}

// Deleting a bucket leaves its multipart uploads (and their data) behind;
// a later bucket of the same name (same tenant, or a new tenant reusing a
// deleted tenant's name) inherits them and can complete them.
func TestRegressDeletedBucketKeepsUploads(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("mpu")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("secret")})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: aws.String("secret"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("old owner's data")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: b}); err != nil {
		t.Fatalf("delete bucket with an upload in progress: %v", err)
	}
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	lu, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("uploads in the NEW bucket: %d", len(lu.Uploads))
	_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("secret"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: pr.ETag}}}})
	if err == nil {
		out, _ := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("secret")})
		got, _ := io.ReadAll(out.Body)
		t.Fatalf("upload of the deleted bucket completed in the new bucket: %q", got)
	}
}

func rawDo(t *testing.T, endpoint, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, raw)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(raw)[0]})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	resp.Header.Write(&buf)
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%s\n%s\nbody=%q", resp.Status, buf.String(), body)
}

// PutObject with If-None-Match: * (S3 conditional write) must not overwrite.
func TestRegressConditionalPut(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("cond")
	c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b})
	c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("lock"), Body: strings.NewReader("first")})
	_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("lock"), Body: strings.NewReader("second"), IfNoneMatch: aws.String("*")})
	out, _ := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("lock")})
	got, _ := io.ReadAll(out.Body)
	if err == nil {
		t.Fatalf("If-None-Match: * PUT over an existing key succeeded; object now %q", got)
	}
}

// SigV2 presigned URLs sign only the path: with --domain, the bucket comes
// from the unsigned Host header, so a URL shared for one bucket reads the
// same key in any other bucket of the tenant.
func TestRegressSigV2PresignVhostReplay(t *testing.T) {
	e := startServerWith(t, func(c *s3_Config) { c.Domain = "s3.test" })
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	for _, bk := range []string{"public", "private"} {
		c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bk)})
		c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bk), Key: aws.String("report.pdf"), Body: strings.NewReader(bk + " contents")})
	}
	expires := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	// What this server verifies for https://public.s3.test/report.pdf:
	sts := "GET\n\n\n" + expires + "\n/report.pdf"
	mac := hmac.New(sha1.New, []byte("alicesecret"))
	mac.Write([]byte(sts))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	q := "/report.pdf?AWSAccessKeyId=ALICEKEY&Expires=" + expires + "&Signature=" + urlEsc(sig)
	for _, host := range []string{"public.s3.test", "private.s3.test"} {
		out := rawDo(t, e.endpoint, "GET "+q+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
		t.Logf("Host %s: %s", host, out)
	}
	// What real S3 / botocore sign for a vhost URL: "/public/report.pdf".
	sts = "GET\n\n\n" + expires + "\n/public/report.pdf"
	mac = hmac.New(sha1.New, []byte("alicesecret"))
	mac.Write([]byte(sts))
	sig = base64.StdEncoding.EncodeToString(mac.Sum(nil))
	q = "/report.pdf?AWSAccessKeyId=ALICEKEY&Expires=" + expires + "&Signature=" + urlEsc(sig)
	t.Logf("S3-style vhost V2 signature: %s", rawDo(t, e.endpoint, "GET "+q+" HTTP/1.1\r\nHost: public.s3.test\r\n\r\n"))
}

type s3_Config = s3.Config

func urlEsc(s string) string { return url.QueryEscape(s) }
