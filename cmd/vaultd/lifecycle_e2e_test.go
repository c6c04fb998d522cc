package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/s3"
)

// lifecycleFlags make a lifecycle "day" two seconds and passes frequent.
var lifecycleFlags = []string{"--lifecycle-day", "2s", "--lifecycle-interval", "300ms", "--lifecycle-rate", "500"}

// lifecycleNode is an in-process single node started with extra flags.
type lifecycleNode struct {
	s3Addr string
	root   aws.Credentials
	events string // its events directory
}

func startLifecycleNode(t *testing.T, extra ...string) *lifecycleNode {
	t.Helper()
	dir := t.TempDir()
	n := &lifecycleNode{s3Addr: testnet.Addr(t), events: filepath.Join(dir, "a", "events"),
		root: aws.Credentials{AccessKeyID: "LIFEROOTKEY", SecretAccessKey: "life-root-secret-1"}}
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": n.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": n.root.SecretAccessKey}[k]
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan error, 1)
	args := append([]string{"server", "--name", "solo", "--data", dir + "/a," + dir + "/b", "--s3", n.s3Addr, "--raft", testnet.Addr(t), "--log-level", "warn"}, extra...)
	go func() { done <- run(ctx, args, getenv, &out, &errb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server exit: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
		if t.Failed() {
			t.Logf("server stderr:\n%s", tail(errb.String(), 16<<10))
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(60 * time.Second); ; {
		select {
		case err := <-done:
			t.Fatalf("server exited before serving: %v\n%s", err, errb.String())
		default:
		}
		if resp, err := hc.Get("http://" + n.s3Addr + "/_vault/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("single node not healthy after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *lifecycleNode) tenant(t *testing.T, name string) (s3.NewTenant, *awss3.Client) {
	t.Helper()
	a := &adminClient{endpoint: "http://" + n.s3Addr, creds: n.root, http: &http.Client{Timeout: 30 * time.Second}}
	var tn s3.NewTenant
	if err := a.do(t.Context(), http.MethodPut, "/_vault/admin/tenants/"+name, &tn); err != nil {
		t.Fatal(err)
	}
	return tn, s3ClientAt(n.s3Addr, tn)
}

func s3ClientAt(addr string, tn s3.NewTenant) *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint: aws.String("http://" + addr), Region: "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(tn.AccessKey, tn.SecretKey, ""),
		UsePathStyle: true, RetryMaxAttempts: 1,
	})
}

func TestLifecycleConfigurationErrors(t *testing.T) {
	n := startLifecycleNode(t)
	ctx := t.Context()
	_, cl := n.tenant(t, "lc-errors")
	_, other := n.tenant(t, "lc-other")
	b := aws.String("rules")
	for _, c := range []*awss3.Client{cl, other} {
		if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := cl.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: b})
	if httpStatus(err) != 404 || errorCode(err) != "NoSuchLifecycleConfiguration" {
		t.Fatalf("get unset: %v", err)
	}
	days := func(d int32) *types.LifecycleExpiration { return &types.LifecycleExpiration{Days: aws.Int32(d)} }
	all := &types.LifecycleRuleFilter{Prefix: aws.String("")}
	noon := time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		rules  []types.LifecycleRule
		status int
		code   string
	}{
		{"zero days", []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: all, Expiration: days(0)}}, 400, "InvalidArgument"},
		{"date not midnight", []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: all, Expiration: &types.LifecycleExpiration{Date: &noon}}}, 400, "InvalidArgument"},
		{"duplicate id", []types.LifecycleRule{{ID: aws.String("a"), Status: types.ExpirationStatusEnabled, Filter: all, Expiration: days(1)}, {ID: aws.String("a"), Status: types.ExpirationStatusEnabled, Filter: all, Expiration: days(2)}}, 400, "InvalidArgument"},
		{"id too long", []types.LifecycleRule{{ID: aws.String(strings.Repeat("i", 256)), Status: types.ExpirationStatusEnabled, Filter: all, Expiration: days(1)}}, 400, "InvalidArgument"},
		{"no action", []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: all}}, 400, "InvalidRequest"},
		{"bad status", []types.LifecycleRule{{Status: "On", Filter: all, Expiration: days(1)}}, 400, "MalformedXML"},
		{"marker with days", []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: all, Expiration: &types.LifecycleExpiration{Days: aws.Int32(1), ExpiredObjectDeleteMarker: aws.Bool(true)}}}, 400, "InvalidRequest"},
		{"abort with tags", []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Tag: &types.Tag{Key: aws.String("k"), Value: aws.String("v")}},
			AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(1)}}}, 400, "InvalidRequest"},
		{"noncurrent zero days", []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: all, NoncurrentVersionExpiration: &types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(0)}}}, 400, "InvalidArgument"},
		{"newer versions too many", []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: all, NoncurrentVersionExpiration: &types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(1), NewerNoncurrentVersions: aws.Int32(101)}}}, 400, "InvalidArgument"},
		{"size bounds crossed", []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{And: &types.LifecycleRuleAndOperator{ObjectSizeGreaterThan: aws.Int64(100), ObjectSizeLessThan: aws.Int64(50)}}, Expiration: days(1)}}, 400, "InvalidRequest"},
		{"transition", []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: all, Transitions: []types.Transition{{Days: aws.Int32(30), StorageClass: types.TransitionStorageClassGlacier}}}}, 501, "NotImplemented"},
	} {
		_, err := cl.PutBucketLifecycleConfiguration(ctx, &awss3.PutBucketLifecycleConfigurationInput{Bucket: b, LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: tc.rules}})
		if httpStatus(err) != tc.status || errorCode(err) != tc.code {
			t.Errorf("%s: got %d %q (%v), want %d %s", tc.name, httpStatus(err), errorCode(err), err, tc.status, tc.code)
		}
	}
	if _, err := cl.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: b}); errorCode(err) != "NoSuchLifecycleConfiguration" {
		t.Fatalf("a refused configuration was stored: %v", err)
	}
	_, err = cl.PutBucketLifecycleConfiguration(ctx, &awss3.PutBucketLifecycleConfigurationInput{Bucket: aws.String("missing"), LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: all, Expiration: days(1)}}}})
	if httpStatus(err) != 404 || errorCode(err) != "NoSuchBucket" {
		t.Fatalf("put on a missing bucket: %v", err)
	}
	good := []types.LifecycleRule{
		{ID: aws.String("logs"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{And: &types.LifecycleRuleAndOperator{Prefix: aws.String("logs/"), Tags: []types.Tag{{Key: aws.String("class"), Value: aws.String("temp")}}, ObjectSizeGreaterThan: aws.Int64(10)}}, Expiration: days(7)},
		{ID: aws.String("old"), Status: types.ExpirationStatusDisabled, Filter: all, NoncurrentVersionExpiration: &types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(3), NewerNoncurrentVersions: aws.Int32(2)},
			AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(2)}},
		{ID: aws.String("markers"), Status: types.ExpirationStatusEnabled, Filter: all, Expiration: &types.LifecycleExpiration{ExpiredObjectDeleteMarker: aws.Bool(true)}},
		{ID: aws.String("date"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Tag: &types.Tag{Key: aws.String("k"), Value: aws.String("v")}}, Expiration: &types.LifecycleExpiration{Date: aws.Time(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))}},
	}
	if _, err := cl.PutBucketLifecycleConfiguration(ctx, &awss3.PutBucketLifecycleConfigurationInput{Bucket: b, LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: good}}); err != nil {
		t.Fatal(err)
	}
	got, err := cl.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Rules) != 4 {
		t.Fatalf("got %d rules", len(got.Rules))
	}
	r0, r1, r3 := got.Rules[0], got.Rules[1], got.Rules[3]
	if aws.ToString(r0.ID) != "logs" || r0.Filter.And == nil || aws.ToString(r0.Filter.And.Prefix) != "logs/" || len(r0.Filter.And.Tags) != 1 || aws.ToInt64(r0.Filter.And.ObjectSizeGreaterThan) != 10 || aws.ToInt32(r0.Expiration.Days) != 7 {
		t.Errorf("rule 0 read back as %+v", r0)
	}
	if r1.Status != types.ExpirationStatusDisabled || aws.ToInt32(r1.NoncurrentVersionExpiration.NewerNoncurrentVersions) != 2 || aws.ToInt32(r1.AbortIncompleteMultipartUpload.DaysAfterInitiation) != 2 {
		t.Errorf("rule 1 read back as %+v", r1)
	}
	if !aws.ToBool(got.Rules[2].Expiration.ExpiredObjectDeleteMarker) || !aws.ToTime(r3.Expiration.Date).Equal(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("rules 2 and 3 read back as %+v %+v", got.Rules[2], r3)
	}
	// Tenant-scoped: the other tenant's bucket of the same name has none.
	if _, err := other.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: b}); errorCode(err) != "NoSuchLifecycleConfiguration" {
		t.Fatalf("other tenant: %v", err)
	}
	if _, err := cl.DeleteBucketLifecycle(ctx, &awss3.DeleteBucketLifecycleInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: b}); errorCode(err) != "NoSuchLifecycleConfiguration" {
		t.Fatalf("get after delete: %v", err)
	}
}

// txnActions reads the lifecycle lines of transaction logs: operation
// and tenant/bucket/key/version to count.
func txnActions(t *testing.T, dirs ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, d := range dirs {
		f, err := os.Open(filepath.Join(d, "txn.log"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l struct{ Operation, Tenant, Bucket, Key, Version_ID string }
			if json.Unmarshal(sc.Bytes(), &l) != nil || !strings.HasPrefix(l.Operation, "Lifecycle") {
				continue
			}
			out[l.Operation+" "+l.Bucket+"/"+l.Key]++
		}
		f.Close()
	}
	return out
}

// versionsOf lists every version and marker of a bucket as "key#n" sorted
// lines "key latest|noncurrent marker?".
func versionsOf(ctx context.Context, cl *awss3.Client, b string) ([]string, error) {
	out, err := cl.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(b)})
	if err != nil {
		return nil, err
	}
	var s []string
	for _, v := range out.Versions {
		s = append(s, fmt.Sprintf("%s %s latest=%v", aws.ToString(v.Key), aws.ToString(v.VersionId), aws.ToBool(v.IsLatest)))
	}
	for _, v := range out.DeleteMarkers {
		s = append(s, fmt.Sprintf("%s %s marker latest=%v", aws.ToString(v.Key), aws.ToString(v.VersionId), aws.ToBool(v.IsLatest)))
	}
	slices.Sort(s)
	return s, nil
}

func keysOf(ctx context.Context, cl *awss3.Client, b string) ([]string, error) {
	out, err := cl.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(b)})
	if err != nil {
		return nil, err
	}
	var s []string
	for _, o := range out.Contents {
		s = append(s, aws.ToString(o.Key))
	}
	return s, nil
}

func uploadsOf(ctx context.Context, cl *awss3.Client, b string) ([]string, error) {
	out, err := cl.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(b)})
	if err != nil {
		return nil, err
	}
	var s []string
	for _, u := range out.Uploads {
		s = append(s, aws.ToString(u.Key))
	}
	return s, nil
}

// eventually polls check until it returns "" or timeout passes.
func eventually(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if last = check(); last == "" {
			return
		}
	}
	t.Fatalf("after %v: %s", timeout, last)
}

func put(t *testing.T, cl *awss3.Client, b, key, body, tags string) string {
	t.Helper()
	in := &awss3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(key), Body: strings.NewReader(body)}
	if tags != "" {
		in.Tagging = aws.String(tags)
	}
	out, err := cl.PutObject(t.Context(), in)
	if err != nil {
		t.Fatalf("put %s/%s: %v", b, key, err)
	}
	return aws.ToString(out.VersionId)
}

// TestLifecycleExpiry sets rules on a plain and a versioned bucket with
// object lock, with a lifecycle day of 2s, and checks that the worker
// removes exactly the objects, noncurrent versions, expired delete
// markers and incomplete uploads the rules select and nothing else (a
// disabled rule, a non-matching tag, size and prefix, another tenant's
// bucket of the same name, a version under legal hold), and that each
// action is in the transaction log once.
func TestLifecycleExpiry(t *testing.T) {
	n := startLifecycleNode(t, lifecycleFlags...)
	ctx := t.Context()
	_, cl := n.tenant(t, "lc-expiry")
	_, other := n.tenant(t, "lc-bystander")
	for _, c := range []*awss3.Client{cl, other} {
		if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("plain")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("vers"), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	// plain: what expires and what stays.
	for _, o := range []struct{ key, body, tags string }{
		{"logs/a", "a", ""}, {"logs/b", "b", "x=y"}, {"keep/c", "c", ""},
		{"tmp/t1", "t1", "class=temp"}, {"tmp/t2", "t2", "class=keep"}, {"tmp/t3", "t3", ""},
		{"big/x", strings.Repeat("x", 2000), ""}, {"big/y", "y", ""},
	} {
		put(t, cl, "plain", o.key, o.body, o.tags)
	}
	put(t, other, "plain", "logs/a", "bystander", "")
	for _, k := range []string{"up/u1", "other/u2"} {
		if _, err := cl.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("plain"), Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
	// vers: three versions of doc, a held old version, a marker over a
	// version, and a current version that expires into a marker.
	for i := range 3 {
		put(t, cl, "vers", "doc", fmt.Sprintf("doc%d", i), "")
	}
	held := put(t, cl, "vers", "held", "held0", "")
	if _, err := cl.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: aws.String("vers"), Key: aws.String("held"), VersionId: aws.String(held),
		LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn}}); err != nil {
		t.Fatal(err)
	}
	heldLatest := put(t, cl, "vers", "held", "held1", "")
	put(t, cl, "vers", "gone", "g", "")
	if _, err := cl.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("vers"), Key: aws.String("gone")}); err != nil {
		t.Fatal(err)
	}
	put(t, cl, "vers", "cur/x", "x", "")
	docLatest := put(t, cl, "vers", "doc", "doc3", "")

	all := &types.LifecycleRuleFilter{Prefix: aws.String("")}
	day := &types.LifecycleExpiration{Days: aws.Int32(1)}
	plainRules := []types.LifecycleRule{
		{ID: aws.String("logs"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("logs/")}, Expiration: day},
		{ID: aws.String("tmp"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{And: &types.LifecycleRuleAndOperator{Prefix: aws.String("tmp/"), Tags: []types.Tag{{Key: aws.String("class"), Value: aws.String("temp")}}}}, Expiration: day},
		{ID: aws.String("big"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{And: &types.LifecycleRuleAndOperator{Prefix: aws.String("big/"), ObjectSizeGreaterThan: aws.Int64(1000)}}, Expiration: day},
		{ID: aws.String("off"), Status: types.ExpirationStatusDisabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("keep/")}, Expiration: day},
		{ID: aws.String("uploads"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("up/")}, AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(1)}},
	}
	versRules := []types.LifecycleRule{
		{ID: aws.String("noncurrent"), Status: types.ExpirationStatusEnabled, Filter: all, NoncurrentVersionExpiration: &types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(1)}},
		{ID: aws.String("markers"), Status: types.ExpirationStatusEnabled, Filter: all, Expiration: &types.LifecycleExpiration{ExpiredObjectDeleteMarker: aws.Bool(true)}},
		{ID: aws.String("cur"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("cur/")}, Expiration: day},
	}
	for b, rules := range map[string][]types.LifecycleRule{"plain": plainRules, "vers": versRules} {
		if _, err := cl.PutBucketLifecycleConfiguration(ctx, &awss3.PutBucketLifecycleConfigurationInput{Bucket: aws.String(b), LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: rules}}); err != nil {
			t.Fatal(err)
		}
	}
	wantKeys := []string{"big/y", "keep/c", "tmp/t2", "tmp/t3"}
	wantVers := []string{
		"doc " + docLatest + " latest=true",
		"held " + held + " latest=false",
		"held " + heldLatest + " latest=true",
	}
	state := func() string {
		keys, err := keysOf(ctx, cl, "plain")
		if err != nil {
			return err.Error()
		}
		ups, err := uploadsOf(ctx, cl, "plain")
		if err != nil {
			return err.Error()
		}
		vers, err := versionsOf(ctx, cl, "vers")
		if err != nil {
			return err.Error()
		}
		if !slices.Equal(keys, wantKeys) || !slices.Equal(ups, []string{"other/u2"}) || !slices.Equal(vers, wantVers) {
			return fmt.Sprintf("plain %q uploads %q, vers %q", keys, ups, vers)
		}
		return ""
	}
	eventually(t, 90*time.Second, state)
	// Nothing else goes in later passes.
	time.Sleep(3 * time.Second)
	if s := state(); s != "" {
		t.Fatalf("later: %s", s)
	}
	if keys, err := keysOf(ctx, other, "plain"); err != nil || !slices.Equal(keys, []string{"logs/a"}) {
		t.Fatalf("another tenant's bucket changed: %q %v", keys, err)
	}
	want := map[string]int{
		"LifecycleExpiration plain/logs/a": 1, "LifecycleExpiration plain/logs/b": 1, "LifecycleExpiration plain/tmp/t1": 1, "LifecycleExpiration plain/big/x": 1,
		"LifecycleAbortIncompleteMultipartUpload plain/up/u1": 1,
		"LifecycleNoncurrentVersionExpiration vers/doc":       3, "LifecycleNoncurrentVersionExpiration vers/gone": 1, "LifecycleNoncurrentVersionExpiration vers/cur/x": 1,
		"LifecycleExpiredObjectDeleteMarker vers/gone": 1, "LifecycleExpiredObjectDeleteMarker vers/cur/x": 1,
		"LifecycleExpiration vers/cur/x": 1,
	}
	eventually(t, 10*time.Second, func() string {
		if got := txnActions(t, n.events); !maps.Equal(got, want) {
			return fmt.Sprintf("transaction log lifecycle actions %v, want %v", got, want)
		}
		return ""
	})
}

// lifecycleScript drives bucket lifecycle with boto3 against one node:
// the errors of a missing and of bad configurations, then a good one read
// back. argv: endpoint access secret bucket. It prints "ok".
const lifecycleScript = `
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
put = lambda rules: c.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
assert code(lambda: c.get_bucket_lifecycle_configuration(Bucket=bucket)) == (404, "NoSuchLifecycleConfiguration"), "get missing"
assert code(lambda: put([{"Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 0}}])) == (400, "InvalidArgument"), "zero days"
assert code(lambda: put([{"Status": "Enabled", "Filter": {"Prefix": ""}, "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}])) == (501, "NotImplemented"), "transition"
assert code(lambda: put([{"Status": "Enabled", "Filter": {"Prefix": ""}}])) == (400, "InvalidRequest"), "no action"
put([{"ID": "exp-rule", "Status": "Enabled", "Filter": {"Prefix": "exp/"}, "Expiration": {"Days": 1}},
     {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": "up/"}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}])
got = c.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
assert [r["ID"] for r in got] == ["exp-rule", "uploads"] and got[0]["Expiration"]["Days"] == 1 and got[0]["Filter"]["Prefix"] == "exp/", got
print("ok")
`

// TestClusterLifecycle sets lifecycle rules through one node of a 3-node
// cluster (boto3 and the aws cli included), reads them on the others, and
// checks that the worker, on the leader alone, expires each matching
// object and aborts the matching upload exactly once across the nodes'
// transaction logs.
func TestClusterLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := prepareCluster(t, 3)
	for _, n := range c.nodes {
		n.extra = lifecycleFlags
	}
	c.nodes[0].start(t)
	c.nodes[0].waitHealthy(t, 60*time.Second)
	for _, n := range c.nodes[1:] {
		n.start(t)
	}
	for _, n := range c.nodes[1:] {
		n.waitHealthy(t, 60*time.Second)
	}
	c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	var tn s3.NewTenant
	if err := c.admin(0).do(ctx, http.MethodPut, "/_vault/admin/tenants/life-tenant", &tn); err != nil {
		t.Fatal(err)
	}
	b := aws.String("life")
	if _, err := c.s3Client(0, tn).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, "python3", "-c", lifecycleScript, "http://"+c.nodes[2].s3, tn.AccessKey, tn.SecretKey, "life").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("boto3: %v\n%s", err, out)
	}
	cli := func(node int, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "aws", append([]string{"s3api", "--endpoint-url", "http://" + c.nodes[node].s3, "--region", "us-east-1"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+tn.AccessKey, "AWS_SECRET_ACCESS_KEY="+tn.SecretKey, "AWS_MAX_ATTEMPTS=1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		o, err := cmd.CombinedOutput()
		return string(o), err
	}
	if o, err := cli(0, "get-bucket-lifecycle-configuration", "--bucket", "life"); err != nil || !strings.Contains(o, "exp-rule") {
		t.Fatalf("aws get-bucket-lifecycle-configuration on n1: %v\n%s", err, o)
	}
	if o, err := cli(0, "put-bucket-lifecycle-configuration", "--bucket", "life", "--lifecycle-configuration",
		`{"Rules":[{"ID":"bad","Status":"Enabled","Filter":{"Prefix":""},"Expiration":{"Days":1,"ExpiredObjectDeleteMarker":true}}]}`); err == nil || !strings.Contains(o, "InvalidRequest") {
		t.Fatalf("aws put of a marker rule with days: %v\n%s", err, o)
	}
	got, err := c.s3Client(1, tn).GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: b})
	if err != nil || len(got.Rules) != 2 || aws.ToString(got.Rules[0].ID) != "exp-rule" {
		t.Fatalf("n2 GetBucketLifecycleConfiguration = %+v, %v", got, err)
	}
	var want []string
	for i := range 12 {
		put(t, c.s3Client(i%3, tn), "life", fmt.Sprintf("exp/%d", i), "x", "")
		put(t, c.s3Client(i%3, tn), "life", fmt.Sprintf("keep/%d", i), "x", "")
		want = append(want, fmt.Sprintf("keep/%d", i))
	}
	slices.Sort(want)
	for _, k := range []string{"up/a", "down/b"} {
		if _, err := c.s3Client(1, tn).CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
	state := func() string {
		keys, err := keysOf(ctx, c.s3Client(2, tn), "life")
		if err != nil {
			return err.Error()
		}
		ups, err := uploadsOf(ctx, c.s3Client(0, tn), "life")
		if err != nil {
			return err.Error()
		}
		if !slices.Equal(keys, want) || !slices.Equal(ups, []string{"down/b"}) {
			return fmt.Sprintf("keys %q uploads %q", keys, ups)
		}
		return ""
	}
	eventually(t, 90*time.Second, state)
	time.Sleep(3 * time.Second) // more passes: nothing else goes, nothing is done twice
	if s := state(); s != "" {
		t.Fatalf("later: %s", s)
	}
	wantLog := map[string]int{"LifecycleAbortIncompleteMultipartUpload life/up/a": 1}
	for i := range 12 {
		wantLog[fmt.Sprintf("LifecycleExpiration life/exp/%d", i)] = 1
	}
	var dirs []string
	for _, n := range c.nodes {
		dirs = append(dirs, filepath.Join(n.dirs[0], "events"))
	}
	eventually(t, 10*time.Second, func() string {
		if got := txnActions(t, dirs...); !maps.Equal(got, wantLog) {
			return fmt.Sprintf("transaction logs' lifecycle actions %v, want %v", got, wantLog)
		}
		return ""
	})
	// One node, the leader, did it all.
	var acted []string
	for i, d := range dirs {
		if len(txnActions(t, d)) > 0 {
			acted = append(acted, c.nodes[i].name)
		}
	}
	if len(acted) != 1 {
		t.Fatalf("nodes whose workers acted: %q, want one (the leader)", acted)
	}
}
