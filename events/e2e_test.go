package events

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/s3"
)

// wire records the status and Content-Length of every response by
// request id, as the client saw them.
type wire struct {
	mu   sync.Mutex
	resp map[string]wireResp
}

type wireResp struct {
	status int
	length int64
}

func (w *wire) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		w.mu.Lock()
		w.resp[resp.Header.Get("x-amz-request-id")] = wireResp{resp.StatusCode, resp.ContentLength}
		w.mu.Unlock()
	}
	return resp, err
}

// recorder keeps the events the server hands out, by request id, so the
// lines can be compared with them field by field.
type recorder struct {
	mu  sync.Mutex
	evs map[string]s3.RequestEvent
}

func (r *recorder) ObserveRequest(ev *s3.RequestEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs[ev.RequestID] = *ev
}

func requestID(t *testing.T, md middleware.Metadata, err error) string {
	t.Helper()
	var withID interface{ ServiceRequestID() string }
	if errors.As(err, &withID) {
		return withID.ServiceRequestID()
	}
	id, ok := awsmiddleware.GetRequestIDMetadata(md)
	if !ok || id == "" {
		t.Fatalf("no request id (err %v)", err)
	}
	return id
}

// TestEndToEnd serves requests through a real S3 server and client and
// checks that each appears exactly once in access.log with the right
// fields, and each mutation exactly once in txn.log.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir}, hooks{})
	evs := &recorder{evs: map[string]s3.RequestEvent{}}
	node := testnode.Start(t, func(c *s3.Config) { c.Observer = s3.Observers{evs, l}; c.Node = "n1" })
	rec := &wire{resp: map[string]wireResp{}}
	c := awss3.New(awss3.Options{
		BaseEndpoint:     aws.String(node.Endpoint),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("ALICEKEY", "alicesecret", ""),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
		HTTPClient:       &http.Client{Transport: rec},
	})
	ctx := context.Background()
	body := bytes.Repeat([]byte("v"), 1000)

	type want struct {
		op, bucket, key, code string
		status                int
		bytesIn, objectSize   int64
		mutation              bool
	}
	type call struct {
		want want
		do   func() (middleware.Metadata, error)
	}
	calls := []call{
		{want{"CreateBucket", "evb", "", "", 200, 0, -1, true}, func() (middleware.Metadata, error) {
			out, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("evb")})
			return meta(out, func() middleware.Metadata { return out.ResultMetadata }), err
		}},
		{want{"PutObject", "evb", "dir/k1", "", 200, 1000, 1000, true}, func() (middleware.Metadata, error) {
			out, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("evb"), Key: aws.String("dir/k1"), Body: bytes.NewReader(body)})
			return meta(out, func() middleware.Metadata { return out.ResultMetadata }), err
		}},
		{want{"GetObject", "evb", "dir/k1", "", 200, 0, 1000, false}, func() (middleware.Metadata, error) {
			out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("evb"), Key: aws.String("dir/k1")})
			if err != nil {
				return middleware.Metadata{}, err
			}
			defer out.Body.Close()
			if got, err := io.ReadAll(out.Body); err != nil || !bytes.Equal(got, body) {
				t.Errorf("get: %d bytes, %v", len(got), err)
			}
			return out.ResultMetadata, nil
		}},
		{want{"HeadObject", "evb", "dir/k1", "", 200, 0, 1000, false}, func() (middleware.Metadata, error) {
			out, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("evb"), Key: aws.String("dir/k1")})
			return meta(out, func() middleware.Metadata { return out.ResultMetadata }), err
		}},
		{want{"ListObjectsV2", "evb", "", "", 200, 0, -1, false}, func() (middleware.Metadata, error) {
			out, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("evb")})
			if err == nil && len(out.Contents) != 1 {
				t.Errorf("list: %d objects", len(out.Contents))
			}
			return meta(out, func() middleware.Metadata { return out.ResultMetadata }), err
		}},
		{want{"DeleteObject", "evb", "dir/k1", "", 204, 0, 0, true}, func() (middleware.Metadata, error) {
			out, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("evb"), Key: aws.String("dir/k1")})
			return meta(out, func() middleware.Metadata { return out.ResultMetadata }), err
		}},
		{want{"GetObject", "evb", "dir/k1", "NoSuchKey", 404, 0, -1, false}, func() (middleware.Metadata, error) {
			out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("evb"), Key: aws.String("dir/k1")})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchKey" {
				t.Errorf("get of a deleted key: %v, want NoSuchKey", err)
			}
			return meta(out, func() middleware.Metadata { return out.ResultMetadata }), err
		}},
	}
	byID := map[string]want{}
	var order []string
	for _, cl := range calls {
		md, err := cl.do()
		if err != nil && cl.want.code == "" {
			t.Fatalf("%s: %v", cl.want.op, err)
		}
		id := requestID(t, md, err)
		if _, dup := byID[id]; dup {
			t.Fatalf("request id %s twice", id)
		}
		byID[id] = cl.want
		order = append(order, id)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	evs.mu.Lock()
	defer evs.mu.Unlock()
	rec.mu.Lock()
	defer rec.mu.Unlock()

	lines := decodeLines[accessLine](t, filepath.Join(dir, "access.log"))
	if len(lines) != len(calls) {
		t.Errorf("access.log has %d lines, want %d", len(lines), len(calls))
	}
	seen := map[string]int{}
	for _, got := range lines {
		seen[got.RequestID]++
		w, ok := byID[got.RequestID]
		if !ok {
			t.Errorf("unexpected request in access.log: %+v", got)
			continue
		}
		// The line says exactly what the server's event said.
		ev := evs.evs[got.RequestID]
		fromEvent := accessLine{Time: ev.Time, Node: ev.Node, RequestID: ev.RequestID, Tenant: ev.Tenant, Operation: ev.Operation,
			Bucket: ev.Bucket, Key: ev.Key, BytesIn: ev.BytesIn, BytesOut: ev.BytesOut, ObjectSize: ev.ObjectSize, Status: ev.Status,
			ErrorCode: ev.ErrorCode, LatencyMS: float64(ev.Latency) / 1e6, Client: ev.RemoteAddr, UserAgent: ev.UserAgent}
		if !got.Time.Equal(ev.Time) || !equalJSON(withTime(got, ev.Time), fromEvent) {
			t.Errorf("%s: line %+v\nevent %+v", w.op, got, fromEvent)
		}
		// And the event is what the client saw.
		r := rec.resp[got.RequestID]
		wantOut := r.length
		switch {
		case w.op == "HeadObject":
			wantOut = 0 // Content-Length describes the object, no body is sent
		}
		switch {
		case got.Operation != w.op, got.Tenant != "alice", got.Node != "n1", got.Bucket != w.bucket, got.Key != w.key:
			t.Errorf("%s: line %+v, want %+v", w.op, got, w)
		case got.Status != w.status || got.Status != r.status, got.ErrorCode != w.code:
			t.Errorf("%s: status %d %q, want %d %q (client saw %d)", w.op, got.Status, got.ErrorCode, w.status, w.code, r.status)
		case got.BytesIn != w.bytesIn, got.BytesOut != wantOut, got.ObjectSize != w.objectSize:
			t.Errorf("%s: bytes in %d out %d size %d, want %d %d %d", w.op, got.BytesIn, got.BytesOut, got.ObjectSize, w.bytesIn, wantOut, w.objectSize)
		case got.LatencyMS <= 0, got.Time.IsZero(), !strings.HasPrefix(got.Client, "127.0.0.1:"), !strings.Contains(got.UserAgent, "aws-sdk-go-v2"):
			t.Errorf("%s: latency %v time %v client %q agent %q", w.op, got.LatencyMS, got.Time, got.Client, got.UserAgent)
		}
	}
	for _, id := range order {
		if seen[id] != 1 {
			t.Errorf("%s (%s) in access.log %d times, want once", id, byID[id].op, seen[id])
		}
	}

	var wantTxn []string
	for _, id := range order {
		if byID[id].mutation {
			wantTxn = append(wantTxn, id)
		}
	}
	txn := decodeLines[txnLine](t, filepath.Join(dir, "txn.log"))
	if len(txn) != len(wantTxn) {
		t.Errorf("txn.log has %d lines, want %d: %+v", len(txn), len(wantTxn), txn)
	}
	for i, got := range txn {
		if i >= len(wantTxn) || got.RequestID != wantTxn[i] {
			t.Errorf("txn line %d: %+v, want request %v", i, got, wantTxn)
			continue
		}
		w := byID[got.RequestID]
		if got.Operation != w.op || got.Tenant != "alice" || got.Bucket != w.bucket || got.Key != w.key || got.Node != "n1" || got.Time.IsZero() {
			t.Errorf("txn line %+v, want %+v", got, w)
		}
		if w.op == "PutObject" && (len(got.VersionID) != 32 || got.ETag == "" || got.ObjectSize != 1000) {
			t.Errorf("put: version %q etag %q size %d", got.VersionID, got.ETag, got.ObjectSize)
		}
		if ev := evs.evs[got.RequestID]; got.VersionID != ev.VersionID || got.ETag != ev.ETag || got.ObjectSize != ev.ObjectSize || !got.Time.Equal(ev.Time) {
			t.Errorf("%s: txn line %+v, event %+v", w.op, got, ev)
		}
	}
	if w, d := l.Stats(); w != uint64(len(calls)) || d != 0 {
		t.Errorf("Stats() = %d, %d; want %d, 0", w, d, len(calls))
	}
	if w, d := l.TxnStats(); w != uint64(len(wantTxn)) || d != 0 {
		t.Errorf("TxnStats() = %d, %d; want %d, 0", w, d, len(wantTxn))
	}
}

func withTime(l accessLine, t time.Time) accessLine {
	l.Time = t
	return l
}

// meta returns an output's metadata, or nil if the call failed and out
// is nil.
func meta[T any](out *T, md func() middleware.Metadata) middleware.Metadata {
	if out == nil {
		return middleware.Metadata{}
	}
	return md()
}
