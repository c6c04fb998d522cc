package s3

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestReviewAuthenticateFoldedHeader (SIGREVIEW): fasthttp's AllInOrder
// unfolds obs-folded header lines in place in rawHeaders, so successive
// passes over it can yield values of different lengths. authenticate must
// not assume they agree: an unauthenticated request with a header folded
// over 3+ lines must be refused, not panic (a panic in a fasthttp handler
// kills the process).
func TestReviewAuthenticateFoldedHeader(t *testing.T) {
	now := time.Now().UTC()
	date := now.Format("20060102T150405Z")
	raw := "GET /b/k HTTP/1.1\r\nHost: h\r\nX-Amz-Meta-A: a\r\n b\r\n c\r\n d\r\nX-Amz-Date: " + date +
		"\r\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\nAuthorization: AWS4-HMAC-SHA256 Credential=ROOTKEY/" + date[:8] +
		"/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date;x-amz-meta-a, Signature=" + strings.Repeat("0", 64) + "\r\n\r\n"
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: Config{Root: Credential{AccessKey: "ROOTKEY", Secret: "rootsecret"}, Now: func() time.Time { return now }}}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("authenticate panicked on a folded header: %v", r)
		}
	}()
	if _, _, err := s.authenticate(context.Background(), &h, "h", "/b/k", "", "/b/k"); err == nil {
		t.Fatal("a zero signature was accepted")
	}
}
