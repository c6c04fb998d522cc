package sigv4

import "testing"

// TestCanonicalRaw: a query part canonicalRaw accepts is exactly its own
// canonical encoding, and one it refuses is not.
func TestCanonicalRaw(t *testing.T) {
	for _, raw := range []string{
		"", "abc", "A-Z_a.z~09", "AKID%2F20261207%2Fus-east-1%2Fs3%2Faws4_request",
		"%2f", "%2F", "%41", "%7E", "%7e", "a+b", "a%20b", "%20", "a b", "%", "%2", "%G1", "x%", "%C3%A9",
		"host%3Bx-amz-date", "a=b", "caf\u00e9", "%00", "%FF", "%ff",
	} {
		d, ok := unescapeQuery(raw)
		if !ok {
			if canonicalRaw(raw) {
				t.Errorf("canonicalRaw(%q) = true for an invalid escape", raw)
			}
			continue
		}
		if got, want := canonicalRaw(raw), encode(d) == raw; got != want {
			t.Errorf("canonicalRaw(%q) = %v, want %v (encode gives %q)", raw, got, want, encode(d))
		}
	}
}

// TestCanonicalRawExhaustive checks canonicalRaw against the oracle
// encode(unescapeQuery(raw)) == raw on every string of up to four
// characters of an alphabet that makes escapes of every kind.
func TestCanonicalRawExhaustive(t *testing.T) {
	const alphabet = "%2F7Eaf+ ~G"
	var walk func(s string)
	walk = func(s string) {
		d, ok := unescapeQuery(s)
		if want := ok && encode(d) == s; canonicalRaw(s) != want {
			t.Fatalf("canonicalRaw(%q) = %v, want %v", s, !want, want)
		}
		if len(s) == 4 {
			return
		}
		for i := range len(alphabet) {
			walk(s + alphabet[i:i+1])
		}
	}
	walk("")
}
