package remote

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// endless yields an XML document whose text never ends.
type endless struct{ started bool }

func (e *endless) Read(p []byte) (int, error) {
	if !e.started {
		e.started = true
		return copy(p, "<?xml version=\"1.0\"?><Error><Code>"), nil
	}
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestResponseBodiesCapped: a backend answering with an endless body
// (a broken proxy, a captive portal, a hostile server) fails the call
// with errBodyTooLarge after a bounded read, for a PUT's answer, an
// error answer and a listing; the SDK would otherwise buffer all of it.
func TestResponseBodiesCapped(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			io.CopyN(w, &endless{}, 200<<20) // cut by the client long before
		}
	}))
	defer srv.Close()
	c := Config{Endpoint: srv.URL, Bucket: "b", AccessKey: "AK", SecretKey: "SK", MaxAttempts: 1, ID: "remote-x", ClusterID: "c"}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	cnt := &counters{}
	cl := newClient(&c, cnt)
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		status int
		call   func() error
		limit  int64
	}{
		{"put answer", 200, func() error {
			_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: bytes.NewReader([]byte("data"))})
			return err
		}, maxAnswerBody},
		{"error answer", 500, func() error {
			_, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
			return err
		}, maxErrorBody},
		{"listing", 200, func() error {
			_, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("b")})
			return err
		}, maxListingBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status = tc.status
			before := cnt.recv.Load()
			err := tc.call()
			if !errors.Is(err, errBodyTooLarge) && (err == nil || !strings.Contains(err.Error(), errBodyTooLarge.Error())) {
				t.Fatalf("call: %v, want %v", err, errBodyTooLarge)
			}
			if read := int64(cnt.recv.Load() - before); read > tc.limit+64<<10 {
				t.Fatalf("read %d bytes of the answer, cap %d", read, tc.limit)
			}
		})
	}
}
