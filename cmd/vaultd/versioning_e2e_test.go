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

// versioningScript drives a versioned bucket with boto3 against one
// node: versions, reads by version id, a delete marker and its errors,
// then boto3's "delete all versions" loop, which must empty the bucket.
// argv: endpoint access secret bucket. It prints the id of the first
// version of "doc", deleted by then, and "ok".
const versioningScript = `
import sys, boto3, botocore
ep, ak, sk, bucket = sys.argv[1:5]
c = boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk, region_name="us-east-1",
    config=botocore.config.Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
def err(f):
    try:
        f()
    except botocore.exceptions.ClientError as e:
        r = e.response
        return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker", "")
    return 200, "", ""
assert c.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled", "versioning not seen"
ids = [c.put_object(Bucket=bucket, Key="doc", Body=b"v%d" % i)["VersionId"] for i in range(3)]
assert len(set(ids)) == 3, ids
assert c.get_object(Bucket=bucket, Key="doc", VersionId=ids[0])["Body"].read() == b"v0"
assert c.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"v2"
d = c.delete_object(Bucket=bucket, Key="doc")
assert d["DeleteMarker"] and d["VersionId"], d
assert err(lambda: c.get_object(Bucket=bucket, Key="doc")) == (404, "NoSuchKey", "true"), "get after delete"
assert err(lambda: c.head_object(Bucket=bucket, Key="doc", VersionId=d["VersionId"]))[0] == 405, "head of the marker"
assert err(lambda: c.get_object(Bucket=bucket, Key="doc", VersionId="0" * 32))[:2] == (404, "NoSuchVersion"), "missing version"
v = c.list_object_versions(Bucket=bucket, Prefix="doc")
assert [x["VersionId"] for x in v["Versions"]] == ids[::-1] and v["DeleteMarkers"][0]["IsLatest"], v
assert "Contents" not in c.list_objects_v2(Bucket=bucket, Prefix="doc")
for i in range(30):
    c.put_object(Bucket=bucket, Key="many/%02d" % (i % 7), Body=b"x" * i)
n = 0
for page in c.get_paginator("list_object_versions").paginate(Bucket=bucket, PaginationConfig={"PageSize": 8}):
    objs = [{"Key": x["Key"], "VersionId": x["VersionId"]} for x in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    if objs:
        out = c.delete_objects(Bucket=bucket, Delete={"Objects": objs})
        assert not out.get("Errors"), out
        n += len(objs)
assert n == 36, n
v = c.list_object_versions(Bucket=bucket)
assert not v.get("Versions") and not v.get("DeleteMarkers"), v
print(ids[0])
print("ok")
`

// lockScript writes a COMPLIANCE-locked version with boto3 and checks
// that no one can delete it, with or without the governance bypass.
// argv: endpoint access secret bucket. It prints the version id and "ok".
const lockScript = `
import sys, datetime, boto3, botocore
ep, ak, sk, bucket = sys.argv[1:5]
c = boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk, region_name="us-east-1",
    config=botocore.config.Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
assert c.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
v = c.put_object(Bucket=bucket, Key="ledger", Body=b"immutable", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)["VersionId"]
assert c.get_object_retention(Bucket=bucket, Key="ledger", VersionId=v)["Retention"]["Mode"] == "COMPLIANCE"
for bypass in (False, True):
    try:
        c.delete_object(Bucket=bucket, Key="ledger", VersionId=v, BypassGovernanceRetention=bypass)
        raise SystemExit("a COMPLIANCE version was deleted")
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "AccessDenied", e.response
out = c.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "ledger", "VersionId": v}]})
assert out["Errors"][0]["Code"] == "AccessDenied", out
print(v)
print("ok")
`

// TestClusterVersioning sets bucket versioning through one node of a
// 3-node cluster and checks that the others see it at once: boto3 writes
// versions through another node and empties the bucket with the "delete
// all versions" loop, and the aws cli suspends versioning through a
// third, after which a write anywhere makes the null version.
func TestClusterVersioning(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t, 3)
	c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	var tn s3.NewTenant
	if err := c.admin(0).do(ctx, http.MethodPut, "/_vault/admin/tenants/vers-tenant", &tn); err != nil {
		t.Fatal(err)
	}
	b := aws.String("vers")
	if _, err := c.s3Client(0, tn).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s3Client(1, tn).PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		got, err := c.s3Client(i, tn).GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: b})
		if err != nil || got.Status != types.BucketVersioningStatusEnabled {
			t.Fatalf("n%d GetBucketVersioning = %+v, %v", i+1, got, err)
		}
	}
	// A version written through n1 reads by id through n3.
	put, err := c.s3Client(0, tn).PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("first")})
	if err != nil || len(aws.ToString(put.VersionId)) != 32 {
		t.Fatalf("put through n1: %+v, %v", put, err)
	}
	if _, err := c.s3Client(1, tn).PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("second")}); err != nil {
		t.Fatal(err)
	}
	got, err := c.s3Client(2, tn).GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("k"), VersionId: put.VersionId})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if string(body) != "first" {
		t.Fatalf("first version through n3: %q", body)
	}

	out, err := exec.CommandContext(ctx, "python3", "-c", versioningScript, "http://"+c.nodes[2].s3, tn.AccessKey, tn.SecretKey, "vers").CombinedOutput()
	lines := strings.Fields(string(out))
	if err != nil || len(lines) != 2 || lines[1] != "ok" {
		t.Fatalf("boto3: %v\n%s", err, out)
	}
	// The version boto3 deleted through n3 is gone through n1 too.
	_, err = c.s3Client(0, tn).GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("doc"), VersionId: aws.String(lines[0])})
	if err == nil || !strings.Contains(err.Error(), "NoSuchVersion") {
		t.Fatalf("deleted version through n1: %v", err)
	}

	cli := func(node int, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "aws", append([]string{"s3api", "--endpoint-url", "http://" + c.nodes[node].s3, "--region", "us-east-1"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+tn.AccessKey, "AWS_SECRET_ACCESS_KEY="+tn.SecretKey, "AWS_MAX_ATTEMPTS=1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		o, err := cmd.CombinedOutput()
		return string(o), err
	}
	if o, err := cli(0, "put-bucket-versioning", "--bucket", "vers", "--versioning-configuration", "Status=Suspended"); err != nil {
		t.Fatalf("aws put-bucket-versioning: %v\n%s", err, o)
	}
	if o, err := cli(2, "get-bucket-versioning", "--bucket", "vers"); err != nil || !strings.Contains(o, `"Suspended"`) {
		t.Fatalf("aws get-bucket-versioning through n3: %v\n%s", err, o)
	}
	if o, err := cli(2, "put-bucket-versioning", "--bucket", "vers", "--versioning-configuration", "Status=Off"); err == nil || !strings.Contains(o, "IllegalVersioningConfigurationException") {
		t.Fatalf("aws put-bucket-versioning Off: %v\n%s", err, o)
	}
	p, err := c.s3Client(1, tn).PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("s"), Body: strings.NewReader("suspended")})
	if err != nil || aws.ToString(p.VersionId) != "null" {
		t.Fatalf("put through n2 when suspended: %+v, %v", p, err)
	}

	// Object lock: a bucket made with it through n1, a COMPLIANCE version
	// written through n3 (boto3), refused deletion through n1 and n2.
	lb := aws.String("vault")
	if _, err := c.s3Client(0, tn).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: lb, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	out, err = exec.CommandContext(ctx, "python3", "-c", lockScript, "http://"+c.nodes[2].s3, tn.AccessKey, tn.SecretKey, "vault").CombinedOutput()
	lines = strings.Fields(string(out))
	if err != nil || len(lines) != 2 || lines[1] != "ok" {
		t.Fatalf("boto3 object lock: %v\n%s", err, out)
	}
	_, err = c.s3Client(0, tn).DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: lb, Key: aws.String("ledger"), VersionId: aws.String(lines[0]), BypassGovernanceRetention: aws.Bool(true)})
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("delete of the locked version through n1: %v", err)
	}
	if o, err := cli(1, "put-bucket-versioning", "--bucket", "vault", "--versioning-configuration", "Status=Suspended"); err == nil || !strings.Contains(o, "InvalidBucketState") {
		t.Fatalf("aws suspend a locked bucket through n2: %v\n%s", err, o)
	}
	if o, err := cli(1, "delete-bucket", "--bucket", "vault"); err == nil || !strings.Contains(o, "BucketNotEmpty") {
		t.Fatalf("aws delete-bucket of a locked bucket through n2: %v\n%s", err, o)
	}
}
