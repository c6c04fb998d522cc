package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/s3"
)

// breadthScript drives tagging, conditional writes, GetObjectAttributes
// and a presigned POST with boto3 against one node, checking status and
// error codes. argv: endpoint access secret bucket.
const breadthScript = `
import sys, uuid, urllib.request, urllib.error, boto3, botocore
ep, ak, sk, bucket = sys.argv[1:5]
c = boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk, region_name="us-east-1",
    config=botocore.config.Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}, signature_version="s3v4"))
def code(f):
    try:
        f()
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    return 200, ""
c.put_object(Bucket=bucket, Key="boto", Body=b"hello", Tagging="a=1&b=2")
assert c.get_object_tagging(Bucket=bucket, Key="boto")["TagSet"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
assert c.head_object(Bucket=bucket, Key="boto")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2"
c.put_object_tagging(Bucket=bucket, Key="boto", Tagging={"TagSet": [{"Key": "z", "Value": "9"}]})
assert c.get_object_tagging(Bucket=bucket, Key="boto")["TagSet"] == [{"Key": "z", "Value": "9"}]
too_many = {"TagSet": [{"Key": "k%d" % i, "Value": "v"} for i in range(11)]}
assert code(lambda: c.put_object_tagging(Bucket=bucket, Key="boto", Tagging=too_many)) == (400, "InvalidTag")
c.delete_object_tagging(Bucket=bucket, Key="boto")
assert c.get_object_tagging(Bucket=bucket, Key="boto")["TagSet"] == []
assert code(lambda: c.put_object(Bucket=bucket, Key="boto", Body=b"again", IfNoneMatch="*")) == (412, "PreconditionFailed")
etag = c.head_object(Bucket=bucket, Key="boto")["ETag"]
c.put_object(Bucket=bucket, Key="boto", Body=b"swapped", IfMatch=etag)
assert code(lambda: c.put_object(Bucket=bucket, Key="boto", Body=b"lost", IfMatch=etag)) == (412, "PreconditionFailed")
assert code(lambda: c.delete_object(Bucket=bucket, Key="boto", IfMatch=etag)) == (412, "PreconditionFailed")
a = c.get_object_attributes(Bucket=bucket, Key="boto", ObjectAttributes=["ETag", "ObjectSize", "StorageClass"])
assert a["ObjectSize"] == 7 and a["StorageClass"] == "STANDARD" and a["ETag"] == c.head_object(Bucket=bucket, Key="boto")["ETag"].strip('"'), a
c.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "owner", "Value": "boto"}]})
assert c.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "owner", "Value": "boto"}]

post = c.generate_presigned_post(bucket, "forms/${filename}", Fields={"success_action_status": "201"},
    Conditions=[["starts-with", "$key", "forms/"], ["content-length-range", 1, 100], {"success_action_status": "201"}], ExpiresIn=300)
def form(fields, name, data):
    b = uuid.uuid4().hex
    body = b""
    for k, v in fields.items():
        body += b"--" + b.encode() + b'\r\nContent-Disposition: form-data; name="' + k.encode() + b'"\r\n\r\n' + v.encode() + b"\r\n"
    body += b"--" + b.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="' + name.encode() + b'"\r\nContent-Type: text/plain\r\n\r\n' + data + b"\r\n--" + b.encode() + b"--\r\n"
    req = urllib.request.Request(post["url"], data=body, method="POST", headers={"Content-Type": "multipart/form-data; boundary=" + b})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
st, body = form(post["fields"], "note.txt", b"posted by boto3")
assert st == 201 and "<Key>forms/note.txt</Key>" in body, (st, body)
assert c.get_object(Bucket=bucket, Key="forms/note.txt")["Body"].read() == b"posted by boto3"
st, body = form(post["fields"], "big.txt", b"x" * 101)
assert st == 400 and "EntityTooLarge" in body, (st, body)
bad = dict(post["fields"])
bad["x-amz-signature"] = "0" * 64
st, body = form(bad, "bad.txt", b"nope")
assert st == 403 and "SignatureDoesNotMatch" in body, (st, body)
assert code(lambda: c.head_object(Bucket=bucket, Key="forms/big.txt")) == (404, "404")
print("ok")
`

// TestClusterS3Breadth: on a 3-node cluster, If-None-Match: * PUTs of one
// key racing through every node produce exactly one winner (real
// processes: the check-and-write is serialised by a Raft lease); object
// tags set through one node are read through another; bucket tags set on
// one node are read on another; and boto3 and the aws cli drive tagging,
// conditional writes, GetObjectAttributes and a presigned POST.
func TestClusterS3Breadth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t, 3)
	c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	var tn s3.NewTenant
	if err := c.admin(0).do(ctx, http.MethodPut, "/_vault/admin/tenants/breadth-tenant", &tn); err != nil {
		t.Fatal(err)
	}
	if err := c.admin(0).send(ctx, http.MethodPut, "/_vault/admin/tenants/breadth-tenant/rate", []byte(`{"rps":100000,"burst":100000}`), nil); err != nil {
		t.Fatal(err)
	}
	var cl []*awss3.Client
	for i := range c.nodes {
		cl = append(cl, c.s3Client(i, tn))
	}
	b := aws.String("breadth")
	if _, err := cl[0].CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}

	// Two writers per node, all If-None-Match: * on one key.
	for round := range raceRounds(t) {
		key := fmt.Sprintf("race/%d", round)
		n := 2 * len(cl)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[i] = cl[i%len(cl)].PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(key),
					Body: strings.NewReader(fmt.Sprintf("writer %d", i)), IfNoneMatch: aws.String("*")})
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch code := errorCode(err); {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: writers %d (n%d) and %d (n%d) both created %s", round, winner, winner%len(cl)+1, i, i%len(cl)+1, key)
			case err == nil:
				winner = i
			case code != "PreconditionFailed" && code != "ConditionalRequestConflict":
				t.Fatalf("round %d: writer %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer created %s", round, key)
		}
		for i := range cl {
			got, err := getAll(ctx, cl[i], "breadth", key)
			if want := fmt.Sprintf("writer %d", winner); err != nil || string(got) != want {
				t.Fatalf("round %d: n%d reads %q, %v; want the winner's %q", round, i+1, got, err, want)
			}
		}
	}

	// Object tags through n1 and n2, read on n3.
	if _, err := cl[0].PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("tagged"), Body: strings.NewReader("t"), Tagging: aws.String("from=n1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl[1].PutObjectTagging(ctx, &awss3.PutObjectTaggingInput{Bucket: b, Key: aws.String("tagged"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("from"), Value: aws.String("n2")}}}}); err != nil {
		t.Fatal(err)
	}
	for i := range cl {
		out, err := cl[i].GetObjectTagging(ctx, &awss3.GetObjectTaggingInput{Bucket: b, Key: aws.String("tagged")})
		if err != nil || len(out.TagSet) != 1 || aws.ToString(out.TagSet[0].Value) != "n2" {
			t.Fatalf("n%d GetObjectTagging = %+v, %v", i+1, out, err)
		}
	}
	// Bucket tags set on n3, read on n1 and n2.
	if _, err := cl[2].PutBucketTagging(ctx, &awss3.PutBucketTaggingInput{Bucket: b,
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("env"), Value: aws.String("test")}}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		out, err := cl[i].GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: b})
		if err != nil || len(out.TagSet) != 1 || aws.ToString(out.TagSet[0].Value) != "test" {
			t.Fatalf("n%d GetBucketTagging = %+v, %v", i+1, out, err)
		}
	}

	// boto3 through n2.
	out, err := exec.CommandContext(ctx, "python3", "-c", breadthScript, "http://"+c.nodes[1].s3, tn.AccessKey, tn.SecretKey, "breadth").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("boto3: %v\n%s", err, out)
	}
	// The aws cli through n3: what boto3 stored, and an error.
	cli := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "aws", append([]string{"s3api", "--endpoint-url", "http://" + c.nodes[2].s3, "--region", "us-east-1"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+tn.AccessKey, "AWS_SECRET_ACCESS_KEY="+tn.SecretKey, "AWS_MAX_ATTEMPTS=1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		o, err := cmd.CombinedOutput()
		return string(o), err
	}
	if o, err := cli("get-bucket-tagging", "--bucket", "breadth"); err != nil || !strings.Contains(o, `"owner"`) {
		t.Fatalf("aws get-bucket-tagging: %v\n%s", err, o)
	}
	if o, err := cli("put-object-tagging", "--bucket", "breadth", "--key", "tagged", "--tagging", `{"TagSet":[{"Key":"cli","Value":"yes"}]}`); err != nil {
		t.Fatalf("aws put-object-tagging: %v\n%s", err, o)
	}
	if o, err := cli("get-object-tagging", "--bucket", "breadth", "--key", "tagged"); err != nil || !strings.Contains(o, `"cli"`) {
		t.Fatalf("aws get-object-tagging: %v\n%s", err, o)
	}
	if o, err := cli("put-object-tagging", "--bucket", "breadth", "--key", "tagged", "--tagging", `{"TagSet":[{"Key":"aws:x","Value":"1"}]}`); err == nil || !strings.Contains(o, "InvalidTag") {
		t.Fatalf("aws put-object-tagging aws:x: %v\n%s", err, o)
	}
	if o, err := cli("get-object-attributes", "--bucket", "breadth", "--key", "forms/note.txt", "--object-attributes", "ObjectSize"); err != nil || !strings.Contains(o, `"ObjectSize": 15`) {
		t.Fatalf("aws get-object-attributes: %v\n%s", err, o)
	}
}
