package s3

import (
	"strings"
	"testing"
)

func TestHasPrefixFold(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		want         bool
	}{
		{"x-amz-meta-a", "x-amz-meta-", true},
		{"X-Amz-Meta-A", "x-amz-meta-", true},
		{"X-AMZ-META-", "x-amz-meta-", true},
		{"X-Amz-Meta", "x-amz-meta-", false},
		{"X-Amz-Metb-A", "x-amz-meta-", false},
		{"If-Match", "if-", true},
		{"", "if-", false},
		{"X-Amz-Grant-Read", "x-amz-grant-", true},
		{"x-amz-grant\u212a", "x-amz-grantk", false}, // ASCII case only: the Kelvin sign is no k (fasthttp's Peek agrees)
		{"Content-Type", "x-amz-", false},
	} {
		if got := hasPrefixFold([]byte(tc.name), tc.prefix); got != tc.want {
			t.Errorf("hasPrefixFold(%q, %q) = %v, want %v", tc.name, tc.prefix, got, tc.want)
		}
		ascii := strings.IndexFunc(tc.name, func(r rune) bool { return r >= 0x80 }) < 0
		if old := strings.HasPrefix(strings.ToLower(tc.name), tc.prefix); ascii && old != tc.want {
			t.Errorf("%q, %q: the lowercase copy gives %v, the table %v", tc.name, tc.prefix, old, tc.want)
		}
	}
}
