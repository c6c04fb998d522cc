package s3_test

// Session 24 attack tests (notes/ATTACK24.md): each fails on the code it
// was written against, for the reason its comment gives, and passes once
// the defect is fixed.

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/placement"
	"github.com/vaultaire/vaultaire/s3"
)

// presignV2For returns the query of a Signature Version 2 presigned URL
// for method on resource (/bucket/key), as the aws cli v1 and boto make
// it, with alice's key, valid for an hour.
func presignV2For(method, resource string) string {
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	mac := hmac.New(sha1.New, []byte("alicesecret"))
	mac.Write([]byte(method + "\n\n\n" + exp + "\n" + resource))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return "AWSAccessKeyId=ALICEKEY&Expires=" + exp + "&Signature=" + url.QueryEscape(sig)
}

// TestAttack24PresignV2UnsignedSubresource (ATTACK24 F1): a Signature
// Version 2 presigned URL signs the resource with only the subresources
// of v2Subresources, but the server routes by every query parameter. So
// whoever holds a URL shared for one operation can append a parameter
// the signature does not cover (tagging, retention, legal-hold, cors,
// object-lock, attributes, policyStatus) and the same signature then
// authorizes another operation: a PUT upload link rewrites the object's
// tags (PutObjectTagging), a GET download link reads its tags
// (GetObjectTagging). A parameter that selects the operation must either
// be signed or be refused under V2 authentication.
func TestAttack24PresignV2UnsignedSubresource(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "v2b")
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("v2b"), Key: aws.String("doc"),
		Body: strings.NewReader("doc"), Tagging: aws.String("class=secret")}); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(e.endpoint, "http://")

	// The link alice shares: upload v2b/upload.bin.
	put := presignV2For("PUT", "/v2b/upload.bin")
	w := wireRequest{method: "PUT", target: "/v2b/upload.bin?" + put, host: host}
	if status, body := roundTrip(t, e.endpoint, w.withBody("hello").bytes()); status != 200 {
		t.Fatalf("upload through the link: %d %s", status, body)
	}
	tags := `<Tagging><TagSet><Tag><Key>expire</Key><Value>now</Value></Tag></TagSet></Tagging>`
	w = wireRequest{method: "PUT", target: "/v2b/upload.bin?" + put + "&tagging", host: host}
	status, body := roundTrip(t, e.endpoint, w.withBody(tags).bytes())
	got, err := c.GetObjectTagging(t.Context(), &awss3.GetObjectTaggingInput{Bucket: aws.String("v2b"), Key: aws.String("upload.bin")})
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusForbidden || len(got.TagSet) != 0 {
		t.Errorf("PUT link + &tagging: %d %.200s; the object's tags are now %v: want 403 and no tags (the signature does not cover ?tagging)",
			status, body, tagList(got.TagSet))
	}

	// The link alice shares: download v2b/doc.
	get := presignV2For("GET", "/v2b/doc")
	w = wireRequest{method: "GET", target: "/v2b/doc?" + get + "&tagging", host: host}
	if status, body := roundTrip(t, e.endpoint, w.bytes()); status != http.StatusForbidden || strings.Contains(body, "secret") {
		t.Errorf("GET link + &tagging: %d %.300s, want 403 and no tag (GetObjectTagging is not what was signed)", status, body)
	}
}

func tagList(ts []types.Tag) []string {
	var out []string
	for _, t := range ts {
		out = append(out, aws.ToString(t.Key)+"="+aws.ToString(t.Value))
	}
	return out
}

// TestAttack24PresignV2LocksObject (ATTACK24 F1, its worst consequence):
// on a bucket with object lock, the holder of a V2 presigned upload link
// appends &retention and puts a COMPLIANCE retention on the object: the
// owner can then neither delete that version nor shorten its retention
// until the date the holder chose (up to engine.MaxRetainUntil). A
// SigV4 link cannot do this: its signature covers the whole query and
// the x-amz-object-lock-* headers.
func TestAttack24PresignV2LocksObject(t *testing.T) {
	e := startConfigServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("lockv2")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(e.endpoint, "http://")
	put := presignV2For("PUT", "/lockv2/drop.bin")
	w := wireRequest{method: "PUT", target: "/lockv2/drop.bin?" + put, host: host}
	if status, body := roundTrip(t, e.endpoint, w.withBody("hello").bytes()); status != 200 {
		t.Fatalf("upload through the link: %d %s", status, body)
	}
	until := time.Now().Add(50 * 365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	ret := fmt.Sprintf(`<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>%s</RetainUntilDate></Retention>`, until)
	w = wireRequest{method: "PUT", target: "/lockv2/drop.bin?" + put + "&retention", host: host}
	status, body := roundTrip(t, e.endpoint, w.withBody(ret).bytes())
	if status != http.StatusForbidden {
		t.Errorf("PUT link + &retention: %d %.200s, want 403 (the signature does not cover ?retention)", status, body)
	}
	h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("drop.bin")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String("drop.bin"), VersionId: h.VersionId})
	if err != nil {
		t.Errorf("the owner deleting the version uploaded through the link: %v (locked by the link's holder until %s)", err, until)
	}
}

// TestAttack24LargeLifecycleNot500 (ATTACK24 F2): a lifecycle
// configuration that passes every check (100 rules of 700-byte prefixes,
// AWS allows 1000 rules and 1024-byte prefixes) is larger than a bucket
// configuration document may be (cluster.MaxConfigSize, 64 KiB) once
// stored; the store's refusal is an error the error table does not know,
// so the client gets 500 InternalError (which SDKs retry) for its own
// oversized request. CORS checks the size first (maxCORSBody);
// lifecycle does not. Want a 4xx.
func TestAttack24LargeLifecycleNot500(t *testing.T) {
	e := startConfigServer(t)
	createBucket(t, e, "lcx")
	var b strings.Builder
	b.WriteString("<LifecycleConfiguration>")
	for i := range 100 {
		fmt.Fprintf(&b, "<Rule><ID>r%d</ID><Filter><Prefix>p%d-%s</Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
			i, i, strings.Repeat("x", 700))
	}
	b.WriteString("</LifecycleConfiguration>")
	status, body := signed(t, "PUT", e.endpoint+"/lcx?lifecycle", b.String(), time.Now())
	if status >= 500 {
		t.Fatalf("PutBucketLifecycleConfiguration of %d bytes: %d %.300s, want a 4xx", b.Len(), status, body)
	}
}

// gateTopology holds back the writes of multipart upload records while
// armed, until released: it makes a request that checked its bucket
// commit after a DeleteBucket that ran meanwhile, as a slow drive (or a
// slow node) does by chance.
type gateTopology struct {
	engine.Topology
	armed   atomic.Bool
	once    sync.Once
	reached chan struct{} // closed when the first gated write arrives
	release chan struct{}
}

func (g *gateTopology) Drive(id placement.DriveID) (driver.Driver, error) {
	d, err := g.Topology.Drive(id)
	if err != nil {
		return nil, err
	}
	return &gatedDrive{Driver: d, g: g}, nil
}

type gatedDrive struct {
	driver.Driver
	g *gateTopology
}

func (d *gatedDrive) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if d.g.armed.Load() && strings.HasPrefix(r.Key, "\x01U\x00") {
		d.g.once.Do(func() { close(d.g.reached) })
		select {
		case <-d.g.release:
		case <-time.After(20 * time.Second):
		}
	}
	return d.Driver.PutRecord(ctx, r)
}

// TestAttack24UploadOutlivesDeletedBucket (ATTACK24 F3): DeleteBucket
// aborts the bucket's uploads in progress so that "a container later made
// with the same name must not inherit them" (engine.DeleteContainer), and
// CreateBucket sweeps what a deleted bucket left, but only its artifacts.
// A CreateMultipartUpload that checked the bucket before the deletion and
// wrote its upload record after DeleteBucket listed the uploads succeeds
// (200, an upload id for a bucket that no longer exists), and the upload
// then belongs to the next bucket of that name: listed by
// ListMultipartUploads, its parts accepted and completable. With tenant
// deletion and a new tenant of the same name (the operator's reuse of a
// name), that next bucket is someone else's.
func TestAttack24UploadOutlivesDeletedBucket(t *testing.T) {
	g := &gateTopology{reached: make(chan struct{}), release: make(chan struct{})}
	n := testnode.StartWith(t, func(c *engine.Config) {
		g.Topology = c.Topology
		c.Topology = g
	}, nil)
	e := &env{endpoint: n.Endpoint, eng: n.Engine}
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("gone")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	g.armed.Store(true)
	type created struct {
		id  string
		err error
	}
	done := make(chan created, 1)
	go func() {
		out, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("k")})
		if err != nil {
			done <- created{err: err}
			return
		}
		done <- created{id: aws.ToString(out.UploadId)}
	}()
	select {
	case <-g.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("CreateMultipartUpload never wrote its record")
	}
	_, delErr := c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: b})
	g.armed.Store(false)
	close(g.release)
	up := <-done
	if delErr != nil {
		t.Logf("DeleteBucket during the upload's creation: %v", delErr)
		return // refused: nothing to inherit
	}
	if up.err != nil {
		return // the upload failed with its bucket: nothing to inherit
	}
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	l, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	_, partErr := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: aws.String("k"), UploadId: aws.String(up.id),
		PartNumber: aws.Int32(1), Body: strings.NewReader("inherited")})
	if len(l.Uploads) != 0 || partErr == nil {
		t.Fatalf("the new bucket %q lists %d upload(s) and UploadPart into upload %s of the deleted one: %v; want none listed and NoSuchUpload",
			*b, len(l.Uploads), up.id, partErr)
	}
}

// TestAttack24AttributesPartMarkerOverflow (ATTACK24 F4):
// GetObjectAttributes takes x-amz-part-number-marker as any non-negative
// int and walks the parts from marker+1; the largest int wraps marker+1
// to the smallest, and the answer lists up to max-parts parts numbered
// from -9223372036854775808, each of size 0, with IsTruncated true and a
// negative NextPartNumberMarker. A marker past the last part must list
// nothing (or be refused), as ListParts clamps it.
func TestAttack24AttributesPartMarkerOverflow(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "attr")
	ctx := t.Context()
	b, k := aws.String("attr"), aws.String("mp")
	cr, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: k, UploadId: cr.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("one part")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: cr.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p.ETag}}}}); err != nil {
		t.Fatal(err)
	}
	const emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	w := sdkSigned(t, e.endpoint, "GET", "/attr/mp?attributes", emptySHA, http.Header{
		"X-Amz-Object-Attributes":  {"ObjectParts"},
		"X-Amz-Part-Number-Marker": {"9223372036854775807"},
	})
	status, body := roundTrip(t, e.endpoint, w.bytes())
	if strings.Contains(body, "<PartNumber>-") || strings.Contains(body, "<IsTruncated>true</IsTruncated>") {
		t.Fatalf("GetObjectAttributes with the largest part-number marker: %d %.400s; want no parts listed (or 400)", status, body)
	}
}

// TestAttack24PostFormControlCharsInHeaders (ATTACK24 F5): a header a
// client sends with a control character or a malformed name is refused
// (fasthttp answers 400), and response-* overrides are checked for them
// (checkOverrides: "a NUL or line break there breaks, or splits, the
// response"), but POST Object stores its form fields as sent: a browser
// upload whose policy lets the uploader choose Content-Type and an
// x-amz-meta-* field (["starts-with", "$Content-Type", ""], the usual
// form) stores a NUL in the Content-Type, a control character in the
// metadata, and a metadata name with a space and a colon, and every GET
// and HEAD of the object then answers those bytes in its header section.
// HTTP parsers refuse such a response (Go's net/http: "malformed MIME
// header"), so the object can no longer be read by the owner's clients.
// (CR and LF are turned into spaces by fasthttp, so the response is not
// split.) Form fields that become headers must be checked as headers are.
func TestAttack24PostFormControlCharsInHeaders(t *testing.T) {
	e := startServer(t)
	createBucket(t, e, "forms24")
	now := time.Now()
	cred := "ALICEKEY/" + now.UTC().Format("20060102") + "/us-east-1/s3/aws4_request"
	date := now.UTC().Format("20060102T150405Z")
	policy := fmt.Sprintf(`{"expiration": %q, "conditions": [{"bucket": "forms24"}, ["starts-with", "$key", "up/"], {"x-amz-algorithm": "AWS4-HMAC-SHA256"}, {"x-amz-credential": %q}, {"x-amz-date": %q},`+
		` ["starts-with", "$Content-Type", ""], ["starts-with", "$x-amz-meta-note", ""], ["starts-with", "$x-amz-meta-a b:c", ""]]}`,
		now.Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z"), cred, date)
	b64 := base64.StdEncoding.EncodeToString([]byte(policy))
	fields := map[string]string{"key": "up/f", "policy": b64, "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": cred,
		"x-amz-date": date, "x-amz-signature": signPolicy("alicesecret", cred, b64),
		"Content-Type": "text/plain\x00", "x-amz-meta-note": "a\x01b", "x-amz-meta-a b:c": "v"}
	status, _, body := postForm(t, e.endpoint+"/forms24", fields, "f.txt", strings.NewReader("data"))
	if status >= 400 {
		return // refused: nothing stored
	}
	if status != http.StatusNoContent {
		t.Fatalf("POST: %d %s", status, body)
	}
	const emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	conn := dial(t, e.endpoint)
	w := sdkSigned(t, e.endpoint, "HEAD", "/forms24/up/f", emptySHA, nil)
	w.header = append(w.header, [2]string{"Connection", "close"})
	if _, err := io.WriteString(conn, w.bytes()); err != nil {
		t.Fatal(err)
	}
	answer, _ := readAnswer(t, conn, 5*time.Second)
	head, _, _ := strings.Cut(answer, "\r\n\r\n")
	var bad []string
	for i, line := range strings.Split(head, "\r\n") {
		name, _, _ := strings.Cut(line, ":")
		if strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) ||
			i > 0 && strings.ContainsAny(name, " \t") {
			bad = append(bad, strconv.Quote(line))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("HEAD of an object uploaded through a form answers malformed header lines %v; want the form refused (400) or its fields stored as valid header values", bad)
	}
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: aws.String("forms24"), Key: aws.String("up/f")}); err != nil {
		t.Fatalf("HeadObject with aws-sdk-go-v2: %v", err)
	}
}

// TestAttack24UnauthenticatedPostFormHeld (ATTACK24 F6): the server reads
// a request body only once the request is authenticated (Config: "A
// request body is read only once the request is authenticated"), so an
// unauthenticated client holds a connection for at most the header
// timeout. A POST form is routed without authentication (its signature
// is in the body) and its fields, up to 64 KiB before the file part,
// are read at the minimum body rate from anyone: an unauthenticated
// client trickling form fields to any bucket name holds the connection
// for six times the header timeout with the defaults (61 s against 10 s,
// measured on vaultd). Here with a header timeout of 1 s and a minimum
// rate of 1 KiB per 300 ms, the trickle is still being read after 4 s.
func TestAttack24UnauthenticatedPostFormHeld(t *testing.T) {
	e := startServerWith(t, func(c *s3.Config) {
		c.HeaderTimeout = time.Second
		c.BodyRateWindow = 300 * time.Millisecond
		c.BodyRateMin = 1024
	})
	conn := dial(t, e.endpoint)
	head := "POST /nobody-s-bucket HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=BB\r\nTransfer-Encoding: chunked\r\n\r\n"
	chunk := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }
	if _, err := io.WriteString(conn, head+chunk("--BB\r\nContent-Disposition: form-data; name=\"x-ignore-0\"\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 1; time.Since(start) < 4*time.Second; i++ {
		piece := strings.Repeat("a", 1200)
		if i%12 == 0 { // a new field before one reaches 20 KiB
			piece += fmt.Sprintf("\r\n--BB\r\nContent-Disposition: form-data; name=\"x-ignore-%d\"\r\n\r\n", i)
		}
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(conn, chunk(piece)); err != nil {
			return // cut off: the connection is not held
		}
		conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		var b [1]byte
		if n, err := conn.Read(b[:]); n > 0 || err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("an unauthenticated form was read for %v, past three header timeouts", took)
			}
			return
		}
	}
	t.Fatalf("an unauthenticated client trickling a form to a bucket it cannot sign for still holds its connection after %v (header timeout 1s)", time.Since(start))
}
