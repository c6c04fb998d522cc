package rpcauth

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzVerifierCheck checks request authentication with fuzzed fields:
// Check never panics, accepts a request only when its X-Vault-Auth is the
// HMAC of exactly its method, path, query, time and nonce under the
// secret and its time is within the skew, refuses the same request a
// second time, and never accepts under another secret. With sign set the
// fuzzer's fields are signed correctly, so the checks after the MAC
// (time, nonce, replay) are reached.
func FuzzVerifierCheck(f *testing.F) {
	ns := strconv.FormatInt(testNow.UnixNano(), 10)
	for _, s := range []struct {
		method, path, query, ts, nonce, mac string
		sign                                bool
	}{
		{"GET", "/v1/drives/d1/info", "", ns, "n1", "", true},
		{"PUT", "/v1/drives/d1/records", "key=a2V5&version=00", ns, "n2", "", true},
		{"GET", "/x", "", "+" + ns, "n3", "", true},
		{"GET", "/x", "", "0" + ns, "n4", "", true},
		{"GET", "/x", "", ns + "0", "n5", "", true},
		{"GET", "/x", "", "-9223372036854775808", "n6", "", true},
		{"GET", "/x", "", ns, strings.Repeat("n", maxNonceSize+1), "", true},
		{"GET", "/x", "", ns, "n7", "zz", false},
		{"GET", "/x", "", ns, "n8", strings.Repeat("00", 32), false},
		{"GET", "/x", "", "", "", "", false},
		{"GET", "/a%2Fb", "q=%00", ns, "n9", "", true},
	} {
		f.Add(s.method, s.path, s.query, s.ts, s.nonce, s.mac, s.sign)
	}
	f.Fuzz(func(t *testing.T, method, path, query, ts, nonce, mac string, sign bool) {
		u, err := url.Parse("http://peer" + path + "?" + query)
		if err != nil || u.Path == "" {
			return
		}
		u.RawQuery = query
		if strings.ContainsAny(query, "# \x7f") || strings.IndexFunc(query, func(r rune) bool { return r < 0x20 }) >= 0 {
			return // not a request target
		}
		if strings.ContainsAny(ts+nonce+mac, "\r\n\x00") || !validMethod(method) {
			return // not sendable
		}
		if sign {
			mac = Signature(testSecret, method, u.EscapedPath(), u.RawQuery, ts, nonce)
		}
		r := &http.Request{Method: method, URL: u, Header: http.Header{}}
		for k, v := range map[string]string{HeaderTime: ts, HeaderNonce: nonce, HeaderAuth: mac} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		v := NewVerifier(testSecret, 0, fixedClock(testNow))
		other := NewVerifier(otherSecret, 0, fixedClock(testNow))
		if err := other.Check(r); err == nil {
			t.Fatalf("accepted under another secret: %s %s %q %q %q", method, u, ts, nonce, mac)
		}
		err = v.Check(r)
		if err != nil {
			return
		}
		want := Signature(testSecret, method, u.EscapedPath(), u.RawQuery, r.Header.Get(HeaderTime), r.Header.Get(HeaderNonce))
		if !strings.EqualFold(r.Header.Get(HeaderAuth), want) {
			t.Fatalf("accepted X-Vault-Auth %q, want %q", mac, want)
		}
		n, perr := strconv.ParseInt(r.Header.Get(HeaderTime), 10, 64)
		if d := testNow.Sub(time.Unix(0, n)); perr != nil || d > DefaultMaxSkew || d < -DefaultMaxSkew {
			t.Fatalf("accepted time %q (%v away)", ts, d)
		}
		if len(r.Header.Get(HeaderNonce)) > maxNonceSize || r.Header.Get(HeaderNonce) == "" {
			t.Fatalf("accepted nonce %q", nonce)
		}
		if err := v.Check(r); !errors.Is(err, errReplayed) {
			t.Fatalf("a replay got %v, want errReplayed", err)
		}
	})
}

// validMethod reports whether m is an HTTP token, as a request line needs.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range []byte(m) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
