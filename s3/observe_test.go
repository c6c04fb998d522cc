package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/s3"
)

type recorder struct {
	mu  sync.Mutex
	evs []s3.RequestEvent
}

func (r *recorder) ObserveRequest(ev *s3.RequestEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, *ev)
}

func (r *recorder) last(t *testing.T) s3.RequestEvent {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.evs) == 0 {
		t.Fatal("no event")
	}
	return r.evs[len(r.evs)-1]
}

// denyAfter admits n requests per tenant, then refuses.
type denyAfter struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *denyAfter) Allow(_ context.Context, tenant string) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n[tenant]--
	return 1500 * time.Millisecond, d.n[tenant] >= 0
}

type capQuota struct{ left int64 }

func (q capQuota) Admit(ctx context.Context, tenant string, bytes, artifacts int64) (int64, func(), error) {
	if bytes > q.left {
		return 0, nil, fmt.Errorf("%w: %d bytes over", s3.ErrQuotaExceeded, bytes-q.left)
	}
	return q.left, func() {}, nil
}

func TestObserverLimiterQuota(t *testing.T) {
	rec := &recorder{}
	lim := &denyAfter{n: map[string]int{"alice": 4, "bob": 100}}
	e := startServerWith(t, func(c *s3.Config) {
		c.Observer = rec
		c.Limiter = lim
		c.Quota = capQuota{left: 1000}
		c.Node = "n7"
	})
	ctx := context.Background()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("obs")}); err != nil {
		t.Fatal(err)
	}
	if ev := rec.last(t); ev.Operation != "CreateBucket" || ev.Tenant != "alice" || ev.Status != 200 || ev.Bucket != "obs" || ev.Node != "n7" || ev.RequestID == "" || !ev.Mutation() {
		t.Errorf("create bucket event %+v", ev)
	}
	body := bytes.Repeat([]byte("x"), 600)
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("obs"), Key: aws.String("k"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	ev := rec.last(t)
	if ev.Operation != "PutObject" || ev.Key != "k" || ev.BytesIn != 600 || ev.ObjectSize != 600 || ev.ETag == "" || len(ev.VersionID) != 32 || ev.UserAgent == "" || ev.RemoteAddr == "" {
		t.Errorf("put event %+v", ev)
	}
	// Over the quota: refused up front, nothing stored.
	_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("obs"), Key: aws.String("big"), Body: bytes.NewReader(make([]byte, 2000))})
	wantCode(t, "put over quota", err, "QuotaExceeded")
	if ev := rec.last(t); ev.Status != http.StatusForbidden || ev.ErrorCode != "QuotaExceeded" || ev.Mutation() {
		t.Errorf("quota event %+v", ev)
	}
	if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("obs"), Key: aws.String("big")}); err == nil {
		t.Error("refused upload was stored")
	}
	// alice has used her 4 requests: SlowDown with Retry-After; bob is not affected.
	_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("obs"), Key: aws.String("k")})
	wantCode(t, "rate limited get", err, "SlowDown")
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && (re.HTTPStatusCode() != 503 || re.Response.Header.Get("Retry-After") != "2") {
		t.Errorf("slow down: status %d Retry-After %q", re.HTTPStatusCode(), re.Response.Header.Get("Retry-After"))
	}
	if ev := rec.last(t); ev.Operation != "GetObject" || ev.ErrorCode != "SlowDown" || ev.Status != 503 {
		t.Errorf("slow down event %+v", ev)
	}
	b := e.client("BOBKEY", "bobsecret")
	if _, err := b.ListBuckets(ctx, &awss3.ListBucketsInput{}); err != nil {
		t.Errorf("bob was limited: %v", err)
	}
}

// TestMetricsAuth: /_vault/metrics names tenants, so it is served only
// to the metrics token, to root's signed requests, or to anyone when the
// operator opened it explicitly; no credentials, a wrong token, a token
// when none is configured, and another tenant's signature are refused.
func TestMetricsAuth(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("vaultaire_up 1\n")) })
	root := testnode.Root
	for _, tc := range []struct {
		name           string
		token          string // MetricsToken
		open           bool   // MetricsOpen
		bearer         string // Authorization: Bearer ...
		access, secret string // SigV4 signer
		want           int
	}{
		{name: "no credentials", want: http.StatusForbidden},
		{name: "no credentials, token set", token: "s3cr3t", want: http.StatusForbidden},
		{name: "wrong token", token: "s3cr3t", bearer: "wrong", want: http.StatusForbidden},
		{name: "token prefix", token: "s3cr3t", bearer: "s3cr3", want: http.StatusForbidden},
		{name: "a token when none is set", bearer: "s3cr3t", want: http.StatusForbidden},
		{name: "token", token: "s3cr3t", bearer: "s3cr3t", want: http.StatusOK},
		{name: "root signed", access: root.AccessKey, secret: root.Secret, want: http.StatusOK},
		{name: "root signed, token set", token: "s3cr3t", access: root.AccessKey, secret: root.Secret, want: http.StatusOK},
		{name: "tenant signed", access: "ALICEKEY", secret: "alicesecret", want: http.StatusForbidden},
		{name: "bad signature", access: root.AccessKey, secret: "not-the-secret", want: http.StatusForbidden},
		{name: "open", open: true, want: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startServerWith(t, func(c *s3.Config) { c.Metrics, c.MetricsToken, c.MetricsOpen = metrics, tc.token, tc.open })
			var code int
			var body string
			if tc.access != "" {
				code, body = adminDo(t, e.endpoint, http.MethodGet, "/_vault/metrics", tc.access, tc.secret)
			} else {
				code, body = metricsScrape(t, e.endpoint, tc.bearer)
			}
			if code != tc.want {
				t.Fatalf("status %d, want %d (body %q)", code, tc.want, body)
			}
			if want := code == http.StatusOK; strings.Contains(body, "vaultaire_up") != want {
				t.Fatalf("body %q: metrics served %v, want %v", body, !want, want)
			}
		})
	}
}

// metricsScrape GETs endpoint's /_vault/metrics as Prometheus does, with
// "Authorization: Bearer token" unless token is empty.
func metricsScrape(t *testing.T, endpoint, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, endpoint+"/_vault/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestBytesOutOfCutOffGet: a GET whose client goes away mid-body is
// logged with the bytes sent, not the object's size.
func TestBytesOutOfCutOffGet(t *testing.T) {
	rec := &recorder{}
	e := startServerWith(t, func(c *s3.Config) { c.Observer = rec })
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("cut")}); err != nil {
		t.Fatal(err)
	}
	const size = 48 << 20
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("cut"), Key: aws.String("big"), Body: bytes.NewReader(make([]byte, size))}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, rawSigned(t, e.endpoint, "GET", "/cut/big", 0, nil))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.CopyN(io.Discard, conn, 1<<20); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	conn.Close()
	// The event comes when the server's write fails.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ev := rec.last(t); ev.Operation == "GetObject" {
			if ev.BytesOut >= size || ev.BytesOut < 1<<20 || ev.ObjectSize != size {
				t.Errorf("cut-off GET: bytes_out %d, object_size %d; want at least 1 MiB and less than %d", ev.BytesOut, ev.ObjectSize, size)
			}
			t.Logf("cut-off GET after 1 MiB read: bytes_out %d of %d", ev.BytesOut, size)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no GetObject event")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A GET read to its end counts every byte.
	out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("cut"), Key: aws.String("big"), Range: aws.String("bytes=0-999")})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, out.Body)
	out.Body.Close()
	time.Sleep(50 * time.Millisecond)
	if ev := rec.last(t); ev.Operation != "GetObject" || ev.BytesOut != 1000 {
		t.Errorf("ranged GET: %s bytes_out %d, want 1000", ev.Operation, ev.BytesOut)
	}
}
