package sigv4

import (
	"bytes"
	"fmt"
	"testing"
)

// TestSigningKeyCache checks that cached signing keys equal derived ones,
// differ when the secret, day or region does (a rotated secret never
// verifies with the old one's key), and that the cache stays bounded.
func TestSigningKeyCache(t *testing.T) {
	for _, tc := range []struct{ secret, date, region string }{
		{"s1", "20260101", "us-east-1"},
		{"s2", "20260101", "us-east-1"},
		{"s1", "20260102", "us-east-1"},
		{"s1", "20260101", "eu-west-1"},
	} {
		want := deriveSigningKey(tc.secret, tc.date, tc.region)
		for range 2 { // derived, then cached
			if got := signingKey(tc.secret, tc.date, tc.region); !bytes.Equal(got, want) {
				t.Fatalf("signingKey(%v) = %x, want %x", tc, got, want)
			}
		}
	}
	if bytes.Equal(signingKey("s1", "20260101", "us-east-1"), signingKey("s2", "20260101", "us-east-1")) {
		t.Fatal("two secrets share a signing key")
	}
	for i := range 3 * keyCacheMax {
		signingKey(fmt.Sprint("secret", i), "20260101", "us-east-1")
	}
	keyCache.mu.Lock()
	n := len(keyCache.m)
	keyCache.mu.Unlock()
	if n > keyCacheMax {
		t.Fatalf("cache holds %d keys, want at most %d", n, keyCacheMax)
	}
}
