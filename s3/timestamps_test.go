package s3_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestListingTimesMatchHead: listings report LastModified in whole
// seconds, as HEAD and GET do (AWS lists ".000Z"), so a sync comparing
// the two sees no change; `aws s3 sync --exact-timestamps` run twice
// transfers nothing the second time.
func TestListingTimesMatchHead(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("stamps")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	for i := range n {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(fmt.Sprintf("f%d", i)), Body: strings.NewReader(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(7 * time.Millisecond) // spread the times over the second
	}
	listed := map[string]time.Time{}
	v2, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := c.ListObjects(ctx, &awss3.ListObjectsInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(v2.Contents) != n || len(v1.Contents) != n || len(vs.Versions) != n {
		t.Fatalf("listed %d, %d and %d objects, want %d", len(v2.Contents), len(v1.Contents), len(vs.Versions), n)
	}
	for i := range n {
		listed["v2 "+aws.ToString(v2.Contents[i].Key)] = aws.ToTime(v2.Contents[i].LastModified)
		listed["v1 "+aws.ToString(v1.Contents[i].Key)] = aws.ToTime(v1.Contents[i].LastModified)
		listed["versions "+aws.ToString(vs.Versions[i].Key)] = aws.ToTime(vs.Versions[i].LastModified)
	}
	for what, lm := range listed {
		_, key, _ := strings.Cut(what, " ")
		h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if head := aws.ToTime(h.LastModified); !lm.Equal(head) {
			t.Errorf("%s: listed LastModified %v, HEAD %v", what, lm.Format(time.RFC3339Nano), head.Format(time.RFC3339Nano))
		}
	}

	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("no aws cli")
	}
	down := t.TempDir()
	sync := func() string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "aws", "--endpoint-url", e.endpoint, "s3", "sync", "s3://stamps", down, "--exact-timestamps", "--no-progress")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=ALICEKEY", "AWS_SECRET_ACCESS_KEY=alicesecret", "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("aws s3 sync: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := sync(); strings.Count(out, "download:") != n {
		t.Fatalf("first aws s3 sync --exact-timestamps: want %d downloads, got\n%s", n, out)
	}
	if out := sync(); strings.TrimSpace(out) != "" {
		t.Errorf("second aws s3 sync --exact-timestamps transferred:\n%s", out)
	}
	for i := range n {
		got, err := os.ReadFile(filepath.Join(down, fmt.Sprintf("f%d", i)))
		if err != nil || !bytes.Equal(got, []byte(fmt.Sprint(i))) {
			t.Errorf("f%d synced down: %q, %v", i, got, err)
		}
	}
}
