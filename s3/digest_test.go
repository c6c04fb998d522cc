package s3_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// signedWith sends a request signed by the AWS SDK's signer with extra
// headers (signed too); a header set to "" is sent empty.
func signedWith(t *testing.T, method, url, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("x-amz-content-sha256", hash)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	creds := aws.Credentials{AccessKeyID: "ALICEKEY", SecretAccessKey: "alicesecret"}
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
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

func b64MD5(s string) string {
	sum := md5.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func b64CRC32(s string) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE([]byte(s))))
}

// TestDeleteObjectsAndCompleteDigests: DeleteObjects and
// CompleteMultipartUpload check Content-MD5 (and DeleteObjects a flexible
// checksum) before they delete or complete anything; DeleteObjects needs
// one of them; an empty Content-MD5 is InvalidDigest on any request.
func TestDeleteObjectsAndCompleteDigests(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("digest")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("keep"), Body: strings.NewReader("data")}); err != nil {
		t.Fatal(err)
	}
	exists := func(key string) bool {
		_, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String(key)})
		return err == nil
	}
	del := `<Delete><Object><Key>keep</Key></Object></Delete>`
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp")})
	if err != nil {
		t.Fatal(err)
	}
	part, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part")})
	if err != nil {
		t.Fatal(err)
	}
	complete := fmt.Sprintf(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>`, aws.ToString(part.ETag))
	completeURL := e.endpoint + "/digest/mp?uploadId=" + aws.ToString(up.UploadId)

	for _, tc := range []struct {
		name, method, url, body string
		header                  map[string]string
		status                  int
		code                    string
	}{
		{"delete, wrong Content-MD5", "POST", "/digest?delete", del, map[string]string{"Content-MD5": b64MD5("other")}, 400, "BadDigest"},
		{"delete, malformed Content-MD5", "POST", "/digest?delete", del, map[string]string{"Content-MD5": "bm90IG1kNQ=="}, 400, "InvalidDigest"},
		{"delete, empty Content-MD5", "POST", "/digest?delete", del, map[string]string{"Content-MD5": ""}, 400, "InvalidDigest"},
		{"delete, no digest", "POST", "/digest?delete", del, nil, 400, "InvalidRequest"},
		{"delete, algorithm without checksum", "POST", "/digest?delete", del, map[string]string{"x-amz-sdk-checksum-algorithm": "CRC32"}, 400, "InvalidRequest"},
		{"delete, wrong CRC32", "POST", "/digest?delete", del, map[string]string{"x-amz-sdk-checksum-algorithm": "CRC32", "x-amz-checksum-crc32": b64CRC32("other")}, 400, "BadDigest"},
		{"complete, wrong Content-MD5", "POST", completeURL, complete, map[string]string{"Content-MD5": b64MD5("other")}, 400, "BadDigest"},
		{"complete, empty Content-MD5", "POST", completeURL, complete, map[string]string{"Content-MD5": ""}, 400, "InvalidDigest"},
		{"GET, empty Content-MD5", "GET", "/digest/keep", "", map[string]string{"Content-MD5": ""}, 400, "InvalidDigest"},
		{"PUT, empty Content-MD5", "PUT", "/digest/new", "x", map[string]string{"Content-MD5": ""}, 400, "InvalidDigest"},
	} {
		url := tc.url
		if strings.HasPrefix(url, "/") {
			url = e.endpoint + url
		}
		status, body := signedWith(t, tc.method, url, tc.body, tc.header)
		if status != tc.status || !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
		if tc.name == "delete, no digest" && !strings.Contains(body, "Missing required header for this request: Content-MD5") {
			t.Errorf("%s: message %s", tc.name, body)
		}
	}
	if !exists("keep") {
		t.Fatal("a refused DeleteObjects deleted the object")
	}
	if exists("mp") || exists("new") {
		t.Fatal("a refused Complete or PUT stored an object")
	}
	// The right digests are accepted.
	if status, body := signedWith(t, "POST", completeURL, complete, map[string]string{"Content-MD5": b64MD5(complete)}); status != 200 || !exists("mp") {
		t.Fatalf("complete with the right Content-MD5: %d %s", status, body)
	}
	if status, body := signedWith(t, "POST", e.endpoint+"/digest?delete", del, map[string]string{"x-amz-checksum-crc32": b64CRC32(del)}); status != 200 || exists("keep") {
		t.Fatalf("delete with the right CRC32: %d %s", status, body)
	}
}

// TestDeleteObjectsClients: the S3 clients' DeleteObjects (Content-MD5 or
// a CRC32 checksum, as each sends) are accepted.
func TestDeleteObjectsClients(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("clients")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	put := func(keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	gone := func(client string, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String(k)}); apiCode(err) != "NotFound" {
				t.Errorf("%s: %s not deleted: %v", client, k, err)
			}
		}
	}

	put("sdk1", "sdk2")
	out, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("sdk1")}, {Key: aws.String("sdk2")}}}})
	if err != nil || len(out.Deleted) != 2 || len(out.Errors) != 0 {
		t.Fatalf("aws-sdk-go-v2 DeleteObjects: %v, %v", out, err)
	}
	gone("aws-sdk-go-v2", "sdk1", "sdk2")

	put("minio1", "minio2")
	mc, err := minio.New(strings.TrimPrefix(e.endpoint, "http://"), &minio.Options{Creds: miniocreds.NewStaticV4("ALICEKEY", "alicesecret", ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	objs := make(chan minio.ObjectInfo, 2)
	objs <- minio.ObjectInfo{Key: "minio1"}
	objs <- minio.ObjectInfo{Key: "minio2"}
	close(objs)
	for rerr := range mc.RemoveObjects(ctx, "clients", objs, minio.RemoveObjectsOptions{}) {
		t.Errorf("minio-go RemoveObjects: %v", rerr.Err)
	}
	gone("minio-go", "minio1", "minio2")

	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=ALICEKEY", "AWS_SECRET_ACCESS_KEY=alicesecret", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	run := func(name string, args ...string) {
		t.Helper()
		if _, err := exec.LookPath(args[0]); err != nil {
			t.Logf("%s: %v; not tried", name, err)
			return
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
	put("boto1", "boto2")
	run("boto3", "python3", "-c", `
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], config=Config(s3={"addressing_style": "path"}))
r = s3.delete_objects(Bucket="clients", Delete={"Objects": [{"Key": "boto1"}, {"Key": "boto2"}]})
assert len(r.get("Deleted", [])) == 2 and not r.get("Errors"), r
`, e.endpoint)
	gone("boto3", "boto1", "boto2")

	put("cli1", "cli2")
	run("aws cli", "aws", "--endpoint-url", e.endpoint, "s3api", "delete-objects", "--bucket", "clients",
		"--delete", `{"Objects":[{"Key":"cli1"},{"Key":"cli2"}]}`)
	gone("aws cli", "cli1", "cli2")
}
