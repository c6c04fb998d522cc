package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/s3"
)

// corsScript drives bucket CORS with boto3 against one node: it puts a
// configuration, reads it back, checks the errors of a bad one and of a
// missing one, and deletes it. argv: endpoint access secret bucket.
const corsScript = `
import sys, boto3, botocore
ep, ak, sk, bucket = sys.argv[1:5]
c = boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk, region_name="us-east-1",
    config=botocore.config.Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
def code(f):
    try:
        f()
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    return 200, ""
assert code(lambda: c.get_bucket_cors(Bucket=bucket)) == (404, "NoSuchCORSConfiguration"), "get missing"
bad = {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]}
assert code(lambda: c.put_bucket_cors(Bucket=bucket, CORSConfiguration=bad)) == (400, "InvalidRequest"), "bad method"
rules = {"CORSRules": [{"AllowedOrigins": ["https://boto.example"], "AllowedMethods": ["GET", "POST"], "AllowedHeaders": ["*"], "MaxAgeSeconds": 30}]}
c.put_bucket_cors(Bucket=bucket, CORSConfiguration=rules)
got = c.get_bucket_cors(Bucket=bucket)["CORSRules"]
assert got[0]["AllowedOrigins"] == ["https://boto.example"] and got[0]["AllowedMethods"] == ["GET", "POST"] and got[0]["MaxAgeSeconds"] == 30, got
print("ok")
`

// TestClusterCors sets bucket CORS through one node of a 3-node cluster
// (with the AWS SDK, boto3 and the aws cli) and checks that preflights
// and GetBucketCors on the other nodes answer from it at once.
func TestClusterCors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t, 3)
	c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	var tn s3.NewTenant
	if err := c.admin(0).do(ctx, http.MethodPut, "/_vault/admin/tenants/cors-tenant", &tn); err != nil {
		t.Fatal(err)
	}
	b := aws.String("web")
	if _, err := c.s3Client(0, tn).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s3Client(1, tn).PutBucketCors(ctx, &awss3.PutBucketCorsInput{Bucket: b, CORSConfiguration: &types.CORSConfiguration{
		CORSRules: []types.CORSRule{{AllowedOrigins: []string{"https://app.example"}, AllowedMethods: []string{"PUT"}, MaxAgeSeconds: aws.Int32(99)}}}}); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		preflight(t, c.nodes[i].s3, "https://app.example", "PUT", http.StatusOK, "https://app.example")
		got, err := c.s3Client(i, tn).GetBucketCors(ctx, &awss3.GetBucketCorsInput{Bucket: b})
		if err != nil || len(got.CORSRules) != 1 || aws.ToInt32(got.CORSRules[0].MaxAgeSeconds) != 99 {
			t.Fatalf("n%d GetBucketCors = %+v, %v", i+1, got, err)
		}
	}
	if _, err := c.s3Client(2, tn).DeleteBucketCors(ctx, &awss3.DeleteBucketCorsInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		preflight(t, c.nodes[i].s3, "https://app.example", "PUT", http.StatusForbidden, "")
	}

	// boto3 through n3, then preflights on n1 and n2.
	out, err := exec.CommandContext(ctx, "python3", "-c", corsScript, "http://"+c.nodes[2].s3, tn.AccessKey, tn.SecretKey, "web").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("boto3: %v\n%s", err, out)
	}
	for i := range 2 {
		preflight(t, c.nodes[i].s3, "https://boto.example", "POST", http.StatusOK, "https://boto.example")
		preflight(t, c.nodes[i].s3, "https://boto.example", "DELETE", http.StatusForbidden, "")
	}

	// The aws cli through n1: delete, then get is 404 NoSuchCORSConfiguration on n2.
	cli := func(node int, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "aws", append([]string{"s3api", "--endpoint-url", "http://" + c.nodes[node].s3, "--region", "us-east-1"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+tn.AccessKey, "AWS_SECRET_ACCESS_KEY="+tn.SecretKey, "AWS_MAX_ATTEMPTS=1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		o, err := cmd.CombinedOutput()
		return string(o), err
	}
	if o, err := cli(0, "delete-bucket-cors", "--bucket", "web"); err != nil {
		t.Fatalf("aws delete-bucket-cors: %v\n%s", err, o)
	}
	if o, err := cli(1, "get-bucket-cors", "--bucket", "web"); err == nil || !strings.Contains(o, "NoSuchCORSConfiguration") {
		t.Fatalf("aws get-bucket-cors after delete: %v\n%s", err, o)
	}
	if o, err := cli(1, "put-bucket-cors", "--bucket", "web", "--cors-configuration",
		`{"CORSRules":[{"AllowedOrigins":["https://cli.example"],"AllowedMethods":["GET"]}]}`); err != nil {
		t.Fatalf("aws put-bucket-cors: %v\n%s", err, o)
	}
	preflight(t, c.nodes[2].s3, "https://cli.example", "GET", http.StatusOK, "https://cli.example")
	// Deleted with the bucket: a new bucket of the name has none.
	if _, err := c.s3Client(0, tn).DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s3Client(1, tn).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if o, err := cli(2, "get-bucket-cors", "--bucket", "web"); err == nil || !strings.Contains(o, "NoSuchCORSConfiguration") {
		t.Fatalf("aws get-bucket-cors on a recreated bucket: %v\n%s", err, o)
	}
}

// preflight sends an anonymous CORS preflight for /web/obj to a node.
func preflight(t *testing.T, addr, origin, method string, status int, allow string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, "http://"+addr+"/web/obj", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", method)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status || resp.Header.Get("Access-Control-Allow-Origin") != allow {
		t.Fatalf("%s: OPTIONS %s %s: %d (Allow-Origin %q) %s; want %d (%q)", addr, origin, method, resp.StatusCode,
			resp.Header.Get("Access-Control-Allow-Origin"), body, status, allow)
	}
}
