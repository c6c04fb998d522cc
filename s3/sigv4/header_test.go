package sigv4_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

func TestHeaderList(t *testing.T) {
	hl := sigv4.HeaderList{
		{"Host", "s3.test"},
		{"X-Amz-Meta-Owner", " alice "},
		{"Content-Type", ""},
		{"x-amz-meta-owner", "mallory"},
		{"X-AMZ-META-OWNER", "\teve  x "},
		{"X-Amz-Meta-Empty", ""},
		{"X-Amz-Meta-Empty", ""},
	}
	for _, tt := range []struct{ name, want string }{
		{"x-amz-meta-owner", "alice,mallory,eve  x"},
		{"Content-Type", ""},
		{"x-amz-meta-empty", ","},
		{"host", "s3.test"},
		{"absent", ""},
	} {
		if got := hl.Get(tt.name); got != tt.want {
			t.Errorf("Get(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	want := []string{"Host", "X-Amz-Meta-Owner", "Content-Type", "X-Amz-Meta-Empty"}
	if got := hl.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	// Past the linear-scan size the result is the same.
	for range 20 {
		hl = append(hl, sigv4.HeaderField{Name: "x-amz-meta-owner", Value: "z"})
	}
	if got := hl.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() of %d lines = %q, want %q", len(hl), got, want)
	}
}

// headerList is the HeaderList of a client request as sent, the Host
// header first, then extra lines appended after signing.
func headerList(req *http.Request, extra ...sigv4.HeaderField) sigv4.HeaderList {
	hl := sigv4.HeaderList{{Name: "Host", Value: req.URL.Host}}
	for k, vs := range req.Header {
		for _, v := range vs {
			hl = append(hl, sigv4.HeaderField{Name: k, Value: v})
		}
	}
	return append(hl, extra...)
}

// TestVerifyRepeatedAndEmptyHeaders signs with the AWS SDK requests with a
// repeated header and an empty one and checks Verify over a HeaderList: the
// signature covers every value of a repeated header, so a value added
// after signing is refused.
func TestVerifyRepeatedAndEmptyHeaders(t *testing.T) {
	tests := []struct {
		name    string
		signed  http.Header
		extra   []sigv4.HeaderField
		presign bool
		wantErr error
	}{
		{name: "repeated, all signed", signed: http.Header{"X-Amz-Meta-Owner": {"alice", "mallory"}}},
		{name: "repeated, value added", signed: http.Header{"X-Amz-Meta-Owner": {"alice"}},
			extra: []sigv4.HeaderField{{Name: "x-amz-meta-owner", Value: "mallory"}}, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "repeated, empty value added", signed: http.Header{"X-Amz-Meta-Owner": {"alice"}},
			extra: []sigv4.HeaderField{{Name: "X-Amz-Meta-Owner", Value: ""}}, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "empty Content-Type", signed: http.Header{"Content-Type": {""}}},
		{name: "empty x-amz-meta", signed: http.Header{"X-Amz-Meta-Note": {""}}},
		{name: "empty Content-Type added", signed: http.Header{"Content-Type": {"text/plain"}},
			extra: []sigv4.HeaderField{{Name: "Content-Type", Value: ""}}, wantErr: sigv4.ErrSignatureDoesNotMatch},
		{name: "presigned repeated, all signed", presign: true, signed: http.Header{"X-Amz-Meta-Owner": {"alice", "mallory"}}},
		{name: "presigned repeated, value added", presign: true, signed: http.Header{"X-Amz-Meta-Owner": {"alice"}},
			extra: []sigv4.HeaderField{{Name: "X-Amz-Meta-Owner", Value: "mallory"}}, wantErr: sigv4.ErrSignatureDoesNotMatch},
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
