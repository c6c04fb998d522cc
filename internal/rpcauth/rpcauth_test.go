package rpcauth

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

var (
	testSecret  = []byte("0123456789abcdef-test-secret")
	otherSecret = []byte("fedcba9876543210-other-secret")
	testNow     = time.Unix(1_700_000_000, 0)
)

// fixedClock returns a clock stopped at t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// signed returns a request signed with secret at time at.
func signed(t *testing.T, method, url string, secret []byte, at time.Time) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	Sign(r, secret, at)
	return r
}

func TestCheck(t *testing.T) {
	const url = "http://peer:1/v1/drives/d%2F1/records?key=a%2Bb&version=00"
	tests := []struct {
		name   string
		secret []byte // the Verifier's
		req    func(t *testing.T) *http.Request
		want   error
	}{
		{"valid", testSecret, func(t *testing.T) *http.Request {
			return signed(t, "GET", url, testSecret, testNow)
		}, nil},
		{"wrong secret", testSecret, func(t *testing.T) *http.Request {
			return signed(t, "GET", url, otherSecret, testNow)
		}, errBadMAC},
		{"method changed", testSecret, func(t *testing.T) *http.Request {
			r := signed(t, "GET", url, testSecret, testNow)
			r.Method = "DELETE"
			return r
		}, errBadMAC},
		{"path changed", testSecret, func(t *testing.T) *http.Request {
			r := signed(t, "GET", url, testSecret, testNow)
			r.URL.Path, r.URL.RawPath = "/v1/drives/d2/records", ""
			return r
		}, errBadMAC},
		{"query changed", testSecret, func(t *testing.T) *http.Request {
			r := signed(t, "GET", url, testSecret, testNow)
			r.URL.RawQuery = "key=other"
			return r
		}, errBadMAC},
		{"time changed", testSecret, func(t *testing.T) *http.Request {
			r := signed(t, "GET", url, testSecret, testNow)
			r.Header.Set(HeaderTime, "1700000001000000000")
			return r
		}, errBadMAC},
		{"nonce changed", testSecret, func(t *testing.T) *http.Request {
			r := signed(t, "GET", url, testSecret, testNow)
			r.Header.Set(HeaderNonce, "another-nonce")
			return r
		}, errBadMAC},
		{"missing signature", testSecret, func(t *testing.T) *http.Request {
			r := signed(t, "GET", url, testSecret, testNow)
			r.Header.Del(HeaderAuth)
			return r
		}, errMissing},
		{"unsigned", testSecret, func(t *testing.T) *http.Request {
			r, _ := http.NewRequest("GET", url, nil)
			return r
		}, errMissing},
		{"malformed signature", testSecret, func(t *testing.T) *http.Request {
			r := signed(t, "GET", url, testSecret, testNow)
			r.Header.Set(HeaderAuth, "not hex")
			return r
		}, errMalformed},
		{"nonce too long", testSecret, func(t *testing.T) *http.Request {
			r, _ := http.NewRequest("GET", url, nil)
			ts, nonce := "1700000000000000000", strings.Repeat("n", maxNonceSize+1)
			r.Header.Set(HeaderTime, ts)
			r.Header.Set(HeaderNonce, nonce)
			r.Header.Set(HeaderAuth, Signature(testSecret, "GET", r.URL.EscapedPath(), r.URL.RawQuery, ts, nonce))
			return r
		}, errLongNonce},
		{"malformed time", testSecret, func(t *testing.T) *http.Request {
			r, _ := http.NewRequest("GET", url, nil)
			ts, nonce := "yesterday", "n1"
			r.Header.Set(HeaderTime, ts)
			r.Header.Set(HeaderNonce, nonce)
			r.Header.Set(HeaderAuth, Signature(testSecret, "GET", r.URL.EscapedPath(), r.URL.RawQuery, ts, nonce))
			return r
		}, errBadTime},
		{"at the skew limit", testSecret, func(t *testing.T) *http.Request {
			return signed(t, "GET", url, testSecret, testNow.Add(-DefaultMaxSkew))
		}, nil},
		{"too old", testSecret, func(t *testing.T) *http.Request {
			return signed(t, "GET", url, testSecret, testNow.Add(-DefaultMaxSkew-time.Second))
		}, errSkew},
		{"from the future", testSecret, func(t *testing.T) *http.Request {
			return signed(t, "GET", url, testSecret, testNow.Add(DefaultMaxSkew+time.Second))
		}, errSkew},
		{"verifier secret too short", testSecret[:MinSecretSize-1], func(t *testing.T) *http.Request {
			return signed(t, "GET", url, testSecret[:MinSecretSize-1], testNow)
		}, errShortSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVerifier(tt.secret, 0, fixedClock(testNow))
			err := v.Check(tt.req(t))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Check: got err %v, want %v", err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), string(testSecret)) || strings.Contains(err.Error(), string(otherSecret))) {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
}

func TestCheckReplay(t *testing.T) {
	v := NewVerifier(testSecret, time.Minute, fixedClock(testNow))
	r := signed(t, "DELETE", "http://peer:1/v1/drives/d1/records?key=a", testSecret, testNow)
	if err := v.Check(r); err != nil {
		t.Fatalf("first Check: %v", err)
	}
	if err := v.Check(r.Clone(t.Context())); !errors.Is(err, errReplayed) {
		t.Errorf("replayed request: got err %v, want %v", err, errReplayed)
	}
	// Sign picks a fresh nonce, so the same request signed again passes.
	if err := v.Check(signed(t, "DELETE", "http://peer:1/v1/drives/d1/records?key=a", testSecret, testNow)); err != nil {
		t.Errorf("same request signed again: %v", err)
	}
}

func TestSignFreshNonce(t *testing.T) {
	a := signed(t, "GET", "http://peer:1/x", testSecret, testNow)
	b := signed(t, "GET", "http://peer:1/x", testSecret, testNow)
	for _, h := range []string{HeaderTime, HeaderNonce, HeaderAuth} {
		if a.Header.Get(h) == "" {
			t.Errorf("Sign did not set %s", h)
		}
	}
	if got, want := a.Header.Get(HeaderTime), "1700000000000000000"; got != want {
		t.Errorf("%s = %q, want %q", HeaderTime, got, want)
	}
	if a.Header.Get(HeaderNonce) == b.Header.Get(HeaderNonce) {
		t.Errorf("two signatures share the nonce %q", a.Header.Get(HeaderNonce))
	}
}

func TestReplayCacheExpiry(t *testing.T) {
	now := testNow
	v := NewVerifier(testSecret, time.Minute, fixedClock(now))
	if err := v.remember("a", now); err != nil {
		t.Fatal(err)
	}
	if err := v.remember("a", now.Add(time.Minute)); !errors.Is(err, errReplayed) {
		t.Errorf("nonce reused within the window: got err %v, want %v", err, errReplayed)
	}
	if err := v.remember("a", now.Add(2*time.Minute+time.Second)); err != nil {
		t.Errorf("nonce reused after the window: %v", err)
	}
	if len(v.seen) != 1 {
		t.Errorf("cache holds %d nonces, want 1", len(v.seen))
	}
}

func TestReplayFull(t *testing.T) {
	now := testNow
	v := NewVerifier(testSecret, time.Minute, fixedClock(now))
	v.maxSeen = 2
	for i, n := range []string{"a", "b"} {
		if err := v.remember(n, now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.remember("c", now.Add(time.Second)); !errors.Is(err, ErrReplayFull) {
		t.Errorf("third nonce: got err %v, want ErrReplayFull", err)
	}
	// Once "a" expires there is room again; "b" is still remembered.
	later := now.Add(2*time.Minute + time.Millisecond)
	if err := v.remember("c", later); err != nil {
		t.Errorf("nonce after an expiry: %v", err)
	}
	if err := v.remember("b", later); !errors.Is(err, errReplayed) {
		t.Errorf("live nonce: got err %v, want %v", err, errReplayed)
	}
}
