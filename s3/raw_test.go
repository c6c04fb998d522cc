package s3_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/s3"
)

// signed sends a request signed by the AWS SDK's SigV4 signer at time at.
func signed(t *testing.T, method, url, body string, at time.Time) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("x-amz-content-sha256", hash)
	if body != "" {
		sum := md5.Sum([]byte(body))
		req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
	}
	creds := aws.Credentials{AccessKeyID: "ALICEKEY", SecretAccessKey: "alicesecret"}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "s3", "us-east-1", at); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProtocolErrors(t *testing.T) {
	e := startServer(t)
	now := time.Now()
	if code, body := signed(t, "PUT", e.endpoint+"/raw", "", now); code != 200 {
		t.Fatalf("create bucket: %d %s", code, body)
	}
	for _, tc := range []struct {
		name, method, path, body string
		at                       time.Time
		status                   int
		code                     string
	}{
		{"skewed clock", "GET", "/raw", "", now.Add(-20 * time.Minute), 403, "RequestTimeTooSkewed"},
		{"malformed multi-delete", "POST", "/raw?delete", "<Delete><Object>", now, 400, "MalformedXML"},
		{"method not allowed", "PATCH", "/raw", "", now, 405, "MethodNotAllowed"},
		{"post to service", "POST", "/", "", now, 405, "MethodNotAllowed"},
		{"unknown upload", "GET", "/raw/k?uploadId=0123456789abcdef0123456789abcdef", "", now, 404, "NoSuchUpload"},
		{"bad part number", "PUT", "/raw/k?uploadId=x&partNumber=0", "x", now, 400, "InvalidArgument"},
		{"unknown version id", "GET", "/raw/k?versionId=3HL4kqtJlcpXroDTDmJ", "", now, 400, "InvalidArgument"},
		{"empty bucket segment", "GET", "//raw/k", "", now, 400, "InvalidBucketName"},
		{"truncated bucket configuration", "PUT", "/raw2", "<CreateBucketConfiguration><Loc", now, 400, "MalformedXML"},
		{"bucket configuration of another name", "PUT", "/raw2", "<Delete><Object/></Delete>", now, 400, "MalformedXML"},
		{"refused configuration creates nothing", "GET", "/raw2", "", now, 404, "NoSuchBucket"},
		{"empty bucket segment, put", "PUT", "//raw/k", "x", now, 400, "InvalidBucketName"},
	} {
		code, body := signed(t, tc.method, e.endpoint+tc.path, tc.body, tc.at)
		if code != tc.status || !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, body, tc.status, tc.code)
		}
	}
	conf := `<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>`
	if code, body := signed(t, "PUT", e.endpoint+"/raw3", conf, now); code != 200 {
		t.Fatalf("create bucket with a configuration: %d %s", code, body)
	}
}

// TestVirtualHostStyle addresses buckets as BUCKET.DOMAIN.
func TestVirtualHostStyle(t *testing.T) {
	e := startServerWith(t, func(c *s3.Config) { c.Domain = "s3.test" })
	addr := strings.TrimPrefix(e.endpoint, "http://")
	_, port, _ := net.SplitHostPort(addr)
	dialer := &net.Dialer{}
	httpc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr) // every *.s3.test is this node
	}}}
	c := awss3.New(awss3.Options{
		BaseEndpoint: aws.String("http://s3.test:" + port), Region: "us-east-1", HTTPClient: httpc,
		Credentials: credentials.NewStaticCredentialsProvider("ALICEKEY", "alicesecret", ""),
	})
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("vhost")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("vhost"), Key: aws.String("a/b.txt"), Body: strings.NewReader("vhosted")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("vhost"), Key: aws.String("a/b.txt")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(got) != "vhosted" {
		t.Fatalf("virtual-host GET = %q", got)
	}
	// The same object through path style.
	p := e.client("ALICEKEY", "alicesecret")
	if _, err := p.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("vhost"), Key: aws.String("a/b.txt")}); err != nil {
		t.Fatalf("path-style HEAD of a vhost-written object: %v", err)
	}

	// On a bucket's host a path under /_vault/ is a key, never one of the
	// node's reserved routes (it was: GET answered the health JSON, DELETE
	// claimed success and deleted nothing; found by a hostile probe).
	for _, key := range []string{"_vault/health", "_vault/admin/tenants/x"} {
		if _, err := p.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("vhost"), Key: aws.String(key), Body: strings.NewReader("key " + key)}); err != nil {
			t.Fatal(err)
		}
		out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("vhost"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("virtual-host GET %s: %v", key, err)
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(got) != "key "+key {
			t.Fatalf("virtual-host GET %s = %q, want the object's bytes", key, got)
		}
		if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("vhost"), Key: aws.String(key)}); err != nil {
			t.Fatalf("virtual-host DELETE %s: %v", key, err)
		}
		if _, err := p.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("vhost"), Key: aws.String(key)}); apiCode(err) != "NotFound" {
			t.Fatalf("after a virtual-host DELETE, %s: %v, want NotFound", key, err)
		}
	}
	// The reserved paths still answer on the node's own host.
	resp, err := http.Get(e.endpoint + "/_vault/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/_vault/health: %s", resp.Status)
	}
}

// TestGetUnreadableIs503: when too many shards are gone to read an object,
// GET answers 503 ServiceUnavailable instead of dropping the connection.
func TestGetUnreadableIs503(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("lost")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("lost"), Key: aws.String("k"), Body: bytes.NewReader(randBytes(1, 1<<20))}); err != nil {
		t.Fatal(err)
	}
	// 2+2: remove the shard files of three drives.
	for _, dir := range e.dirs[:3] {
		if err := os.RemoveAll(filepath.Join(dir, "shards")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("lost"), Key: aws.String("k")})
	wantCode(t, "GET with 3 of 4 shards gone", err, "ServiceUnavailable")
}
