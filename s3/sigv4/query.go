package sigv4

import (
	"errors"
	"slices"
	"strings"
)

// queryParam is one query parameter, decoded, with its canonical encoding.
type queryParam struct {
	key, value       string // decoded
	encKey, encValue string // URI-encoded the SigV4 way
}

// queryParams are the parameters of a raw query in the order sent.
type queryParams []queryParam

var errQueryEscape = errors.New("invalid percent-encoding in query")

// parseQuery splits a raw query into decoded parameters. '+' decodes to a
// space, as in HTML forms and in every SDK's canonicalization.
func parseQuery(raw string) (queryParams, error) {
	if raw == "" {
		return nil, nil
	}
	// Sized once: a presigned URL has at least seven parameters, and
	// growing the slice by doubling took four allocations.
	q := make(queryParams, 0, strings.Count(raw, "&")+1)
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, ok := unescapeQuery(k)
		if !ok {
			return nil, errQueryEscape
		}
		dv, ok := unescapeQuery(v)
		if !ok {
			return nil, errQueryEscape
		}
		ek, ev := k, v
		if !canonicalRaw(k) {
			ek = encode(dk)
		}
		if !canonicalRaw(v) {
			ev = encode(dv)
		}
		q = append(q, queryParam{key: dk, value: dv, encKey: ek, encValue: ev})
	}
	return q, nil
}

// canonicalRaw reports whether raw, a query key or value as sent, is its
// own canonical encoding, encode(unescapeQuery(raw)): unreserved
// characters and upper-case %XX escapes of the others, as SDKs send them
// (X-Amz-Credential's %2F): then it is not encoded again.
func canonicalRaw(raw string) bool {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case isUnreserved(c):
		case c == '%' && i+2 < len(raw) && isUpperHex(raw[i+1]) && isUpperHex(raw[i+2]) &&
			!isUnreserved(unhex(raw[i+1])<<4|unhex(raw[i+2])):
			i += 2
		default:
			return false
		}
	}
	return true
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unescapeQuery(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b = append(b, ' ')
		case '%':
			if i+2 >= len(s) || !isHexByte(s[i+1]) || !isHexByte(s[i+2]) {
				return "", false
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}

func encode(s string) string {
	for i := 0; i < len(s); i++ {
		if !isUnreserved(s[i]) {
			b := make([]byte, 0, len(s)+16)
			b = append(b, s[:i]...)
			for j := i; j < len(s); j++ {
				b = appendEncoded(b, s[j])
			}
			return string(b)
		}
	}
	return s
}

// has reports whether a parameter named key is present.
func (q queryParams) has(key string) bool {
	_, n := q.get(key)
	return n > 0
}

// get returns the first value of key and how many times key occurs.
func (q queryParams) get(key string) (string, int) {
	var v string
	n := 0
	for _, p := range q {
		if p.key == key {
			if n == 0 {
				v = p.value
			}
			n++
		}
	}
	return v, n
}

// appendCanonical appends the canonical query string: parameters sorted by
// encoded key then encoded value, X-Amz-Signature left out when presigned.
func (q queryParams) appendCanonical(b []byte, presigned bool) []byte {
	if len(q) == 0 {
		return b
	}
	var buf [12]queryParam // on the stack for the usual few parameters
	sorted := append(buf[:0], q...)
	slices.SortFunc(sorted, func(a, b queryParam) int {
		if c := strings.Compare(a.encKey, b.encKey); c != 0 {
			return c
		}
		return strings.Compare(a.encValue, b.encValue)
	})
	first := true
	for _, p := range sorted {
		if presigned && p.key == "X-Amz-Signature" {
			continue
		}
		if !first {
			b = append(b, '&')
		}
		first = false
		b = append(b, p.encKey...)
		b = append(b, '=')
		b = append(b, p.encValue...)
	}
	return b
}
