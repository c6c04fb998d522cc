package sigv4_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

func TestHeaderList(t *testing.T) {
	lines := [][2]string{
		{"Host", "s3.test"},
		{"X-Amz-Meta-Owner", " alice "},
		{"Content-Type", ""},
		{"x-amz-meta-owner", "mallory"},
		{"X-AMZ-META-OWNER", "\teve  x "},
		{"X-Amz-Meta-Empty", ""},
		{"X-Amz-Meta-Empty", ""},
	}
	tests := []struct{ name, want string }{
		{"x-amz-meta-owner", "alice,mallory,eve  x"},
		{"Content-Type", ""},
		{"x-amz-meta-empty", ","},
		{"host", "s3.test"},
		{"absent", ""},
	}
	want := []string{"Host", "X-Amz-Meta-Owner", "Content-Type", "X-Amz-Meta-Empty"}
	// Short lists are searched, long ones indexed: the same answers.
	for _, filler := range []int{0, 30} {
		var hl sigv4.HeaderList
		for _, l := range lines {
			hl.Add(l[0], l[1])
		}
		for i := range filler {
			hl.Add(fmt.Sprintf("X-Filler-%d", i), "f")
		}
		for _, tt := range tests {
			if got := hl.Get(tt.name); got != tt.want {
				t.Errorf("%d lines: Get(%q) = %q, want %q", len(lines)+filler, tt.name, got, tt.want)
			}
		}
		if got := hl.Names()[:len(want)]; !slices.Equal(got, want) {
			t.Errorf("%d lines: Names() = %q, want %q", len(lines)+filler, got, want)
		}
		hl.Add("x-amz-meta-owner", "added")
		if got := hl.Get("X-Amz-Meta-Owner"); got != tests[0].want+",added" {
			t.Errorf("%d lines: Get after Add = %q", len(lines)+filler, got)
		}
	}
}

// TestVerifyManyHeaders sends thousands of signed headers, as 64 KiB of
// headers allows: refusing the request must stay cheap (no quadratic work
// before the signature is checked). It compares the cost of 6,000 headers
// with that of 750, not against a clock: eight times the headers is about
// eight times the work when linear, 64 times when quadratic, however
// loaded the machine is (1,500 against 6,000 with a bound of 9x left too
// little room: the race detector's run once measured 9.1x).
func TestVerifyManyHeaders(t *testing.T) {
	small, large := manyHeaders(t, 750), manyHeaders(t, 6000)
	// The fastest of interleaved runs, so a burst of load hits both sizes.
	fastSmall, fastLarge := time.Hour, time.Hour
	// 15 rounds and a bound of 32x, half the quadratic 64x: under a
	// load average of 17, seven rounds measured 24.8x and 28.4x.
	for range 15 {
		fastSmall = min(fastSmall, refuseTime(t, small))
		fastLarge = min(fastLarge, refuseTime(t, large))
	}
	if ratio := float64(fastLarge) / float64(fastSmall); ratio > 32 {
		t.Fatalf("refusing 6000 signed headers took %v, 750 took %v: %.1fx for 8x the headers (quadratic?)",
			fastLarge, fastSmall, ratio)
	}
}

// manyHeaders is a request signing n filler headers with a wrong signature.
func manyHeaders(t *testing.T, n int) *sigv4.Request {
	t.Helper()
	names := []string{"host", "x-amz-content-sha256", "x-amz-date"}
	var hl sigv4.HeaderList
	for i := range n {
		names = append(names, fmt.Sprintf("h%04d", i))
		hl.Add(names[len(names)-1], "")
	}
	slices.Sort(names)
	auth := "AWS4-HMAC-SHA256 Credential=" + testAccessKey + "/" + signTime.Format("20060102") + "/us-east-1/s3/aws4_request, SignedHeaders=" +
		strings.Join(names, ";") + ", Signature=" + strings.Repeat("0", 64)
	hl.Add("Authorization", auth)
	hl.Add("X-Amz-Date", signTime.Format("20060102T150405Z"))
	hl.Add("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	return &sigv4.Request{Method: "GET", RawPath: "/b/k", Host: "x", Header: hl.Get, HeaderNames: hl.Names()}
}

// refuseTime is how long Verify takes to refuse r.
func refuseTime(t *testing.T, r *sigv4.Request) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := sigv4.Verify(t.Context(), r, creds, signTime); !errors.Is(err, sigv4.ErrSignatureDoesNotMatch) {
		t.Fatalf("Verify: got %v, want ErrSignatureDoesNotMatch", err)
	}
	return time.Since(start)
}

// headerList is the HeaderList of a client request as sent, the Host
// header first, then extra lines appended after signing.
func headerList(req *http.Request, extra ...[2]string) *sigv4.HeaderList {
	hl := &sigv4.HeaderList{}
	hl.Add("Host", req.URL.Host)
	for k, vs := range req.Header {
		for _, v := range vs {
			hl.Add(k, v)
		}
	}
	for _, l := range extra {
		hl.Add(l[0], l[1])
	}
	return hl
}

// TestVerifyRepeatedAndEmptyHeaders signs with the AWS SDK requests with a
// repeated header and an empty one and checks Verify over a HeaderList: the
// signature covers every value of a repeated header, so a value added
// after signing is refused.
func TestVerifyRepeatedAndEmptyHeaders(t *testing.T) {
	tests := []struct {
		name    string
		signed  http.Header
		extra   [][2]string
		presign bool
		wantErr error
	}{
		{name: "repeated, all signed", signed: http.Header{"X-Amz-Meta-Owner": {"alice", "mallory"}}},
		{name: "repeated, value added", signed: http.Header{"X-Amz-Meta-Owner": {"alice"}},
			extra: [][2]string{{"x-amz-meta-owner", "mallory"}}, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "repeated, empty value added", signed: http.Header{"X-Amz-Meta-Owner": {"alice"}},
			extra: [][2]string{{"X-Amz-Meta-Owner", ""}}, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "empty Content-Type", signed: http.Header{"Content-Type": {""}}},
		{name: "empty x-amz-meta", signed: http.Header{"X-Amz-Meta-Note": {""}}},
		{name: "empty Content-Type added", signed: http.Header{"Content-Type": {"text/plain"}},
			extra: [][2]string{{"Content-Type", ""}}, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "presigned repeated, all signed", presign: true, signed: http.Header{"X-Amz-Meta-Owner": {"alice", "mallory"}}},
		{name: "presigned repeated, value added", presign: true, signed: http.Header{"X-Amz-Meta-Owner": {"alice"}},
			extra: [][2]string{{"X-Amz-Meta-Owner", "mallory"}}, wantErr: sigv4.ErrSignatureDoesNotMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t, "PUT", "/bucket/key", "", nil)
			for k, vs := range tt.signed {
				req.Header[k] = slices.Clone(vs)
			}
			if tt.presign {
				req = awsPresign(t, req, 300, signTime)
			} else {
				awsSign(t, req, testSecret, sha256Hex(nil), signTime)
			}
			hl := headerList(req, tt.extra...)
			r := &sigv4.Request{Method: "PUT", RawPath: req.URL.EscapedPath(), RawQuery: req.URL.RawQuery,
				Host: req.URL.Host, Header: hl.Get, HeaderNames: hl.Names()}
			_, err := sigv4.Verify(t.Context(), r, creds, signTime)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify: got %v, want %v", err, tt.wantErr)
			}
		})
	}
}
