package s3_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/events"
	"github.com/vaultaire/vaultaire/s3"
)

// TestAnonymousReadMarked: an unsigned read of a public bucket is served
// as the bucket's owner, and its event, and so its access-log line, says
// it was anonymous; the owner's own signed read of the same object does
// not.
func TestAnonymousReadMarked(t *testing.T) {
	rec := &recorder{}
	dir := t.TempDir()
	log, err := events.Open(events.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := startConfigServerWith(t, func(c *s3.Config) { c.Observer = s3.Observers{rec, log} })
	ctx := t.Context()
	alice := e.client("ALICEKEY", "alicesecret")
	b := aws.String("pubev")
	if _, err := alice.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b, ACL: types.BucketCannedACLPublicRead}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("public bytes")}); err != nil {
		t.Fatal(err)
	}

	if code, body := anonymous(t, http.MethodGet, e.endpoint+"/pubev/k", map[string]string{"User-Agent": "anon-reader"}, ""); code != http.StatusOK || body != "public bytes" {
		t.Fatalf("anonymous GET: %d %q", code, body)
	}
	if ev := rec.last(t); ev.Operation != "GetObject" || ev.Tenant != "alice" || !ev.Anonymous {
		t.Fatalf("anonymous GET event: operation %s, tenant %q, anonymous %v; want GetObject as alice, anonymous", ev.Operation, ev.Tenant, ev.Anonymous)
	}
	out, err := alice.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if ev := rec.last(t); ev.Operation != "GetObject" || ev.Tenant != "alice" || ev.Anonymous {
		t.Fatalf("signed GET event: operation %s, tenant %q, anonymous %v; want GetObject as alice, not anonymous", ev.Operation, ev.Tenant, ev.Anonymous)
	}

	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var anon, signed int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct {
			Operation string `json:"operation"`
			Tenant    string `json:"tenant"`
			UserAgent string `json:"user_agent"`
			Anonymous *bool  `json:"anonymous"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("access line %q: %v", sc.Text(), err)
		}
		if l.Anonymous == nil {
			t.Fatalf("access line without the anonymous field: %s", sc.Text())
		}
		if l.Operation != "GetObject" {
			continue
		}
		switch {
		case *l.Anonymous && l.Tenant == "alice" && l.UserAgent == "anon-reader":
			anon++
		case !*l.Anonymous && l.Tenant == "alice" && l.UserAgent != "anon-reader":
			signed++
		default:
			t.Errorf("GetObject line marked wrong: %s", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if anon != 1 || signed != 1 {
		t.Fatalf("GetObject lines: %d anonymous, %d signed; want 1 and 1", anon, signed)
	}
}
