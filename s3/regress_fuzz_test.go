package s3_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/s3"
)

// TestAdminLimitsBodyOverLimit sends an admin limits PUT whose body runs
// far past the 4 KiB the handler reads (found by FuzzXMLBody), then a
// second request on the same connection. The PUT is refused and sets
// nothing, and the unread rest of its body is never parsed as a request:
// the second request gets its own answer (or the connection is closed).
func TestAdminLimitsBodyOverLimit(t *testing.T) {
	admin := &limitsAdmin{}
	e := startServerWith(t, func(c *s3.Config) { c.Admin = admin })
	body := `{"rps": 1, "pad": "` + strings.Repeat("x", 64<<10) + `"}`
	sum := sha256.Sum256([]byte(body))
	put := sdkSignedAs(t, e.endpoint, "PUT", "/_vault/admin/tenants/alice/rate", hex.EncodeToString(sum[:]), root.AccessKey, root.Secret).withBody(body)
	health := wireRequest{method: "GET", target: "/_vault/health", host: strings.TrimPrefix(e.endpoint, "http://")}

	conn, err := net.Dial("tcp", strings.TrimPrefix(e.endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	read := func(method string) (int, string, error) {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(got), err
	}
	if _, err := io.WriteString(conn, put.bytes()); err != nil {
		t.Fatal(err)
	}
	status, got, err := read("PUT")
	if err != nil || status != 400 || !strings.Contains(got, "<Code>InvalidArgument</Code>") {
		t.Fatalf("oversize limits body: %d %s %v, want 400 InvalidArgument", status, got, err)
	}
	if calls := admin.take(); len(calls) != 0 {
		t.Fatalf("oversize limits body set %+v", calls)
	}
	if _, err := io.WriteString(conn, health.bytes()); err != nil {
		return // closed: fine
	}
	if status, got, err := read("GET"); err == nil && (status != 200 || !strings.Contains(got, `"status":"ok"`)) {
		t.Fatalf("the request after the oversize body got %d %s: its unread body was parsed as a request", status, got)
	}
}

// sdkSignedAs is sdkSigned with the given credentials.
func sdkSignedAs(t *testing.T, endpoint, method, path, payloadHash, access, secret string) wireRequest {
	t.Helper()
	req, err := http.NewRequest(method, endpoint+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	creds := aws.Credentials{AccessKeyID: access, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, payloadHash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return wireRequest{method: method, target: req.URL.RequestURI(), host: req.URL.Host, header: headerLines(req.Header)}
}

// limitsAdmin is an s3.LimitsAdmin that records the limits it is given.
type limitsAdmin struct {
	tenantAdmin
	mu    sync.Mutex // guards calls
	calls []s3.TenantLimits
}

func (a *limitsAdmin) SetRate(ctx context.Context, name string, rps float64, burst int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, s3.TenantLimits{RPS: rps, Burst: burst})
	return nil
}

func (a *limitsAdmin) SetQuota(ctx context.Context, name string, maxBytes, maxArtifacts int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, s3.TenantLimits{MaxBytes: maxBytes, MaxArtifacts: maxArtifacts})
	return nil
}

// take returns and forgets the recorded calls.
func (a *limitsAdmin) take() []s3.TenantLimits {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.calls
	a.calls = nil
	return c
}

// TestDeleteObjectsVersionID deletes with DeleteObjects naming a version
// of an object that is not its current one (found by FuzzXMLBody): buckets
// are unversioned, so any version but "null" is refused for that key, as
// DeleteObject refuses it, and the object stays.
func TestDeleteObjectsVersionID(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "dov")
	for _, k := range []string{"keep", "gone"} {
		if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("dov"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := c.DeleteObjects(t.Context(), &awss3.DeleteObjectsInput{Bucket: aws.String("dov"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("keep"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")},
		{Key: aws.String("gone"), VersionId: aws.String("null")},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Errors) != 1 || aws.ToString(out.Errors[0].Key) != "keep" || aws.ToString(out.Errors[0].Code) != "InvalidArgument" {
		t.Fatalf("errors %+v, want InvalidArgument for keep", out.Errors)
	}
	if len(out.Deleted) != 1 || aws.ToString(out.Deleted[0].Key) != "gone" {
		t.Fatalf("deleted %+v, want gone", out.Deleted)
	}
	if headMeta(t, c, "dov", "keep") == nil {
		t.Fatal("keep was deleted by a request for another version")
	}
	if headMeta(t, c, "dov", "gone") != nil {
		t.Fatal("gone (version null) was not deleted")
	}
}

// TestCopySourceVersionAnywhere copies from a source naming a version
// after another query parameter (found by FuzzCopySource): any version
// but "null" is refused wherever it stands, never read as the current one.
func TestCopySourceVersionAnywhere(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "cpv")
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("cpv"), Key: aws.String("src"), Body: strings.NewReader("v1")}); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"cpv/src?x=1&versionId=3HL4kqtJlcpXroDTDmJ", "cpv/src?versionId=3HL4kqtJlcpXroDTDmJ"} {
		_, err := c.CopyObject(t.Context(), &awss3.CopyObjectInput{Bucket: aws.String("cpv"), Key: aws.String("dst"), CopySource: aws.String(src)})
		wantCode(t, src, err, "InvalidArgument")
		if headMeta(t, c, "cpv", "dst") != nil {
			t.Fatalf("copy from %s stored dst", src)
		}
	}
	if _, err := c.CopyObject(t.Context(), &awss3.CopyObjectInput{Bucket: aws.String("cpv"), Key: aws.String("dst"), CopySource: aws.String("cpv/src?x=1&versionId=null")}); err != nil {
		t.Fatalf("copy of version null: %v", err)
	}
}
