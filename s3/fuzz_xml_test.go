package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/s3"
)

// xmlTarget is a server with the state the request bodies act on: the
// object fxb/keep, an open multipart upload of fxb/done with one part, and
// no bucket fxnew.
type xmlTarget struct {
	e        *env
	c        *awss3.Client
	admin    *limitsAdmin
	http     *http.Client
	uploadID string
	partETag string
}

// xmlOps are the requests a fuzzed body is sent as, by selector byte:
// the five with their own checks (send), then the configuration PUTs
// (configOps).
var xmlOps = []string{"CompleteMultipartUpload", "DeleteObjects", "AdminSetRate", "AdminSetQuota", "CreateBucket",
	"PutBucketLifecycle", "PutBucketCors", "PutBucketTagging", "PutObjectTagging", "PutBucketVersioning", "PutBucketAcl",
	"PutObjectAcl", "PutObjectLockConfiguration", "PutObjectRetention", "PutObjectLegalHold", "PutBucketPolicy"}

// configOp is a configuration PUT: its path (with the subresource), and
// whether a DELETE of that path resets what an accepted body set (else
// send puts reset, if any, back).
type configOp struct {
	path   string
	delete bool
	reset  string // a body that puts the default back, when there is no DELETE
}

// configOps are the configuration PUTs by name. Their bodies set what a
// GET of the same path returns: a refused body must leave it unchanged.
var configOps = map[string]configOp{
	"PutBucketLifecycle":         {path: "/fxb?lifecycle=", delete: true},
	"PutBucketCors":              {path: "/fxb?cors=", delete: true},
	"PutBucketTagging":           {path: "/fxb?tagging=", delete: true},
	"PutObjectTagging":           {path: "/fxb/keep?tagging=", delete: true},
	"PutBucketVersioning":        {path: "/fxb?versioning="}, // once enabled, it stays (as on AWS)
	"PutBucketAcl":               {path: "/fxb?acl=", reset: aclPrivate},
	"PutObjectAcl":               {path: "/fxb/keep?acl=", reset: aclPrivate},
	"PutObjectLockConfiguration": {path: "/fxb?object-lock="}, // fxb was made without object lock: always refused
	"PutObjectRetention":         {path: "/fxb/keep?retention="},
	"PutObjectLegalHold":         {path: "/fxb/keep?legal-hold="},
	"PutBucketPolicy":            {path: "/fxb?policy=", delete: true},
}

// aclPrivate is the owner-only ACL the ACL PUTs are reset to.
const aclPrivate = `<AccessControlPolicy><Owner><ID>alice</ID></Owner><AccessControlList><Grant>` +
	`<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>alice</ID></Grantee>` +
	`<Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>`

func newXMLTarget(t testing.TB) *xmlTarget {
	t.Helper()
	x := &xmlTarget{admin: &limitsAdmin{}, http: &http.Client{Timeout: 30 * time.Second}}
	x.e, _ = startConfigServerWith(t, func(c *s3.Config) { c.Admin = x.admin })
	x.c = x.e.client("ALICEKEY", "alicesecret")
	ctx := context.Background()
	if _, err := x.c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("fxb")}); err != nil {
		t.Fatal(err)
	}
	x.putKeep(t)
	x.newUpload(t)
	t.Cleanup(x.http.CloseIdleConnections)
	return x
}

func (x *xmlTarget) putKeep(t testing.TB) {
	t.Helper()
	if _, err := x.c.PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String("fxb"), Key: aws.String("keep"), Body: strings.NewReader("kept")}); err != nil {
		t.Fatal(err)
	}
}

func (x *xmlTarget) newUpload(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	up, err := x.c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("fxb"), Key: aws.String("done")})
	if err != nil {
		t.Fatal(err)
	}
	p, err := x.c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("fxb"), Key: aws.String("done"), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: strings.NewReader("part")})
	if err != nil {
		t.Fatal(err)
	}
	x.uploadID, x.partETag = aws.ToString(up.UploadId), aws.ToString(p.ETag)
}

// exists reports whether fx/key is stored.
func (x *xmlTarget) exists(t testing.TB, key string) bool {
	t.Helper()
	_, err := x.c.HeadObject(context.Background(), &awss3.HeadObjectInput{Bucket: aws.String("fxb"), Key: aws.String(key)})
	if err != nil && apiCode(err) != "NotFound" {
		t.Fatalf("head fxb/%s: %v", key, err)
	}
	return err == nil
}

// do sends a request signed with its payload hash and returns the status
// and body of the answer.
func (x *xmlTarget) do(t testing.TB, access aws.Credentials, method, path string, body []byte) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, x.e.endpoint+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := v4.NewSigner().SignHTTP(ctx, access, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := x.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", method, path, err)
	}
	return resp.StatusCode, got
}

// send sends body, signed with its payload hash, as xmlOps[op] and checks
// the answer: never a server error, a refusal is an S3 error document
// with a 4xx code, and a refused body changed nothing.
func (x *xmlTarget) send(t testing.TB, op int, body []byte) {
	t.Helper()
	method, path, access := http.MethodPost, "/fxb/done?uploadId="+x.uploadID, aliceCreds
	cfg, isConfig := configOps[xmlOps[op]]
	var before []byte // a configuration's GET before the PUT
	switch xmlOps[op] {
	case "DeleteObjects":
		path = "/fxb?delete="
	case "AdminSetRate", "AdminSetQuota":
		method, path = http.MethodPut, "/_vault/admin/tenants/alice/rate"
		if xmlOps[op] == "AdminSetQuota" {
			path = "/_vault/admin/tenants/alice/quota"
		}
		access = aws.Credentials{AccessKeyID: root.AccessKey, SecretAccessKey: root.Secret}
	case "CreateBucket":
		method, path = http.MethodPut, "/fxnew"
	default:
		method, path = http.MethodPut, cfg.path
		before = x.config(t, cfg.path)
	}
	status, got := x.do(t, access, method, path, body)
	if isConfig && status == http.StatusNotImplemented && bytes.Contains(got, []byte("<Code>NotImplemented</Code>")) {
		status = http.StatusBadRequest // a valid document asking for what is not served (a policy's Deny)
	}
	if status >= 500 {
		t.Fatalf("%s of %.200q: %d %.300s", xmlOps[op], body, status, got)
	}
	refused := status >= 300
	if refused {
		var e struct {
			Code string `xml:"Code"`
		}
		if status >= 400 && (xml.Unmarshal(got, &e) != nil || e.Code == "" || e.Code == "InternalError") {
			t.Fatalf("%s of %.200q: %d with no S3 error code: %.300s", xmlOps[op], body, status, got)
		}
		if status < 400 {
			t.Fatalf("%s of %.200q: %d %.300s", xmlOps[op], body, status, got)
		}
	}
	if isConfig {
		after := x.config(t, cfg.path)
		switch {
		case refused && !bytes.Equal(before, after):
			t.Fatalf("a refused %s (%d) of %.200q changed the configuration from %.300s to %.300s", xmlOps[op], status, body, before, after)
		case !refused && cfg.delete:
			if st, got := x.do(t, aliceCreds, http.MethodDelete, cfg.path, nil); st >= 300 {
				t.Fatalf("resetting after %s: DELETE %s: %d %.300s", xmlOps[op], cfg.path, st, got)
			}
		case !refused && cfg.reset != "":
			if st, got := x.do(t, aliceCreds, http.MethodPut, cfg.path, []byte(cfg.reset)); st >= 300 {
				t.Fatalf("resetting after %s: PUT %s: %d %.300s", xmlOps[op], cfg.path, st, got)
			}
		}
		return
	}
	switch xmlOps[op] {
	case "CompleteMultipartUpload":
		done := x.exists(t, "done")
		if refused == done {
			t.Fatalf("complete answered %d but fxb/done exists = %v", status, done)
		}
		if !refused {
			if _, err := x.c.DeleteObject(context.Background(), &awss3.DeleteObjectInput{Bucket: aws.String("fxb"), Key: aws.String("done")}); err != nil {
				t.Fatal(err)
			}
			x.newUpload(t)
			return
		}
		if _, err := x.c.ListParts(context.Background(), &awss3.ListPartsInput{Bucket: aws.String("fxb"), Key: aws.String("done"), UploadId: aws.String(x.uploadID)}); err != nil {
			t.Fatalf("a refused complete (%d) ended the upload: %v", status, err)
		}
	case "DeleteObjects":
		if !x.exists(t, "keep") {
			if refused {
				t.Fatalf("a refused delete (%d) deleted fxb/keep", status)
			}
			var d struct {
				Objects []struct {
					Key       string `xml:"Key"`
					VersionID string `xml:"VersionId"`
				} `xml:"Object"`
			}
			xml.Unmarshal(body, &d)
			named := false
			for _, o := range d.Objects {
				named = named || o.Key == "keep" && (o.VersionID == "" || o.VersionID == "null")
			}
			x.putKeep(t)
			if !named {
				t.Fatalf("delete of %.200q deleted fxb/keep without naming its current version", body)
			}
		}
	case "AdminSetRate", "AdminSetQuota":
		calls := x.admin.take()
		if refused != (len(calls) == 0) {
			t.Fatalf("%s answered %d after %d calls", xmlOps[op], status, len(calls))
		}
		for _, l := range calls {
			if l.RPS < 0 || l.Burst < 0 || l.MaxBytes < 0 || l.MaxArtifacts < 0 {
				t.Fatalf("%s of %.200q set negative limits %+v", xmlOps[op], body, l)
			}
		}
	case "CreateBucket":
		_, err := x.c.HeadBucket(context.Background(), &awss3.HeadBucketInput{Bucket: aws.String("fxnew")})
		if refused != (err != nil) {
			t.Fatalf("create bucket answered %d, head bucket: %v", status, err)
		}
		if err == nil {
			if _, err := x.c.DeleteBucket(context.Background(), &awss3.DeleteBucketInput{Bucket: aws.String("fxnew")}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// config returns the status and body of a GET of a configuration's path.
func (x *xmlTarget) config(t testing.TB, path string) []byte {
	t.Helper()
	status, got := x.do(t, aliceCreds, http.MethodGet, path, nil)
	if status >= 500 {
		t.Fatalf("GET %s: %d %.300s", path, status, got)
	}
	got = requestIDs.ReplaceAll(got, nil) // differ per request
	return append([]byte(strconv.Itoa(status)+" "), got...)
}

// requestIDs matches the request ids of error documents.
var requestIDs = regexp.MustCompile(`<(RequestId|HostId)>[^<]*</(RequestId|HostId)>`)

// FuzzXMLBody sends fuzzed request bodies, correctly signed, to a real
// server as CompleteMultipartUpload, DeleteObjects, CreateBucket, the
// admin limits PUTs and every configuration PUT (configOps). No body may get a server error or an answer without
// an S3 error code, and a refused body must change nothing (see send).
// Its seeds are in testdata/fuzz/FuzzXMLBody.
func FuzzXMLBody(f *testing.F) {
	x := newXMLTarget(f)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		body = bytes.ReplaceAll(body, []byte("PARTETAG"), []byte(x.partETag))
		x.send(t, int(which)%len(xmlOps), body)
	})
}

// TestXMLCorpusNo5xx sends every body of the request body fuzz corpora
// (FuzzXMLBody here and s3's FuzzXMLDecode) as each request that reads a
// body, through a real server: never a 5xx, and nothing is completed,
// deleted or set by a body the server refuses.
func TestXMLCorpusNo5xx(t *testing.T) {
	x := newXMLTarget(t)
	n := 0
	for _, target := range []string{"FuzzXMLBody", "FuzzXMLDecode"} {
		for _, body := range bodyCorpus(t, filepath.Join("testdata", "fuzz", target)) {
			body = bytes.ReplaceAll(body, []byte("PARTETAG"), []byte(x.partETag))
			for op := range xmlOps {
				x.send(t, op, body)
				n++
			}
		}
	}
	// Bodies one byte over the limits: the XML limit and CreateBucket's.
	for _, size := range []int{64<<10 + 1, 2<<20 + 1} {
		body := bytes.Repeat([]byte("<Delete>"), size/8+1)[:size]
		for op := range xmlOps {
			x.send(t, op, body)
		}
	}
	if n < 100 {
		t.Fatalf("sent %d bodies, want the whole corpus", n)
	}
}

// bodyCorpus reads the []byte argument of each entry of a fuzz corpus
// directory whose entries are (uint8, []byte).
func bodyCorpus(t *testing.T, dir string) map[string][]byte { // by file name
	t.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 3 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[2], "[]byte(") {
			t.Fatalf("%s: not a (uint8, []byte) corpus entry", f.Name())
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[2], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		out[f.Name()] = []byte(s)
	}
	return out
}
