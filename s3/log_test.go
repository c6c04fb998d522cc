package s3_test

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/s3"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDebugLogRedactsCredentials: at debug level, requests the server
// cannot parse are logged without their Authorization header or presigned
// signature.
func TestDebugLogRedactsCredentials(t *testing.T) {
	var logs syncBuffer
	e := startServerWith(t, func(c *s3.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	const sig = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	auth := "Authorization: AWS4-HMAC-SHA256 Credential=ALICEKEY/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + sig + "\r\n"
	for _, req := range []string{
		"GET /b/k HTTP/1.1\r\nHost: x\r\n" + auth + "Bad Header Line\r\n\r\n",
		"GET /b/k?X-Amz-Signature=" + sig + "&X-Amz-Credential=x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
		"PUT /b/k HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: gzip\r\n\r\n",
		"PUT /b/k HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"GET /b/k HTTP/1.1\r\nHost: x\r\n" + auth + "X-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n",
	} {
		conn := dial(t, e.endpoint)
		io.WriteString(conn, req)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%.40q: %v", req, err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%.40q: status %d, want 4xx", req, resp.StatusCode)
		}
	}
	time.Sleep(100 * time.Millisecond)
	out := logs.String()
	if !strings.Contains(out, "level=DEBUG") {
		t.Fatalf("nothing logged at debug level:\n%s", out)
	}
	if strings.Contains(out, sig) {
		t.Errorf("the debug log holds a request signature:\n%s", out)
	}
	// And a well-formed request is served and logged as usual.
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String("logged")}); err != nil {
		t.Fatal(err)
	}
}
