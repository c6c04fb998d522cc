package sigv4

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// canonicalRequest appends the SigV4 canonical request to b.
func canonicalRequest(b []byte, r *Request, query queryParams, presigned bool, signed []string, payload string) ([]byte, error) {
	b = append(b, r.Method...)
	b = append(b, '\n')
	b, err := appendCanonicalPath(b, r.RawPath)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	b = query.appendCanonical(b, presigned)
	b = append(b, '\n')
	for _, h := range signed {
		b = append(b, h...)
		b = append(b, ':')
		if h == "host" {
			b = appendTrimmed(b, r.Host)
		} else {
			b = appendTrimmed(b, r.Header(h))
		}
		b = append(b, '\n')
	}
	b = append(b, '\n')
	for i, h := range signed {
		if i > 0 {
			b = append(b, ';')
		}
		b = append(b, h...)
	}
	b = append(b, '\n')
	b = append(b, payload...)
	return b, nil
}

// appendTrimmed appends v without leading and trailing spaces and with
// runs of spaces collapsed to one.
func appendTrimmed(b []byte, v string) []byte {
	v = strings.Trim(v, " \t")
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b = append(b, c)
	}
	return b
}

// appendCanonicalPath appends the S3 canonical URI of a raw path: each
// '/'-separated segment is percent-decoded and URI-encoded once, so that
// "%2F" stays "%2F", "(" becomes "%28" and "%7e" becomes "~". The path is
// not cleaned: "..", "." and empty segments are kept as sent.
func appendCanonicalPath(b []byte, raw string) ([]byte, error) {
	if raw == "" {
		return append(b, '/'), nil
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '/':
			b = append(b, '/')
		case c == '%':
			if i+2 >= len(raw) || !isHexByte(raw[i+1]) || !isHexByte(raw[i+2]) {
				return nil, fmt.Errorf("%w: invalid percent-encoding in path", ErrSignatureDoesNotMatch)
			}
			b = appendEncoded(b, unhex(raw[i+1])<<4|unhex(raw[i+2]))
			i += 2
		default:
			b = appendEncoded(b, c)
		}
	}
	return b, nil
}

const upperHex = "0123456789ABCDEF"

// appendEncoded appends c URI-encoded the SigV4 way: unreserved characters
// as they are, everything else as %XX.
func appendEncoded(b []byte, c byte) []byte {
	if isUnreserved(c) {
		return append(b, c)
	}
	return append(b, '%', upperHex[c>>4], upperHex[c&15])
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~'
}

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isHex[S string | []byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if !isHexByte(s[i]) {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// signingKey returns the SigV4 signing key, derived once per secret, day
// and region: the derivation is four HMACs (eight SHA-256 passes over a
// block each), more than the rest of a small request's verification
// hashes. The returned slice is shared and must not be modified.
func signingKey(secret, date, region string) []byte {
	ck := keyCacheKey{secret, date, region}
	keyCache.mu.Lock()
	k, ok := keyCache.m[ck]
	keyCache.mu.Unlock()
	if ok {
		return k
	}
	k = deriveSigningKey(secret, date, region)
	keyCache.mu.Lock()
	if keyCache.m == nil || len(keyCache.m) >= keyCacheMax {
		// Bounded: at most keyCacheMax keys of live secrets; starting
		// over costs one derivation per key in use.
		keyCache.m = make(map[keyCacheKey][]byte)
	}
	keyCache.m[ck] = k
	keyCache.mu.Unlock()
	return k
}

type keyCacheKey struct{ secret, date, region string }

// keyCacheMax bounds the signing keys kept.
const keyCacheMax = 1024

// keyCache holds signing keys by secret, date and region. Secrets already
// live in the process's memory; the cache adds derived keys, valid for a
// day and one region, never logged.
var keyCache struct {
	mu sync.Mutex // guards m
	m  map[keyCacheKey][]byte
}

// deriveSigningKey derives the SigV4 signing key.
func deriveSigningKey(secret, date, region string) []byte {
	var m mac
	k := make([]byte, 0, 4+len(secret))
	k = append(append(k, "AWS4"...), secret...)
	k = m.sum(k[:0], k, []byte(date))
	k = m.sum(k[:0], k, []byte(region))
	k = m.sum(k[:0], k, []byte(Service))
	return m.sum(k[:0], k, []byte(terminator))
}

// scratch is the working memory of one signature check (Result.check),
// pooled: the canonical request, the string to sign, the HMAC state and
// both signatures were six allocations of every request.
type scratch struct {
	mac       mac
	creq, sts []byte
	want, got [sha256.Size]byte
}

// scratchMax bounds the buffers a scratch keeps for the next request: a
// request with a long query or many signed headers (a usual canonical
// request is under 1 KiB) does not pin its buffers in the pool, and
// pays for them as before (TestVerifyManyHeaders compares the cost of
// 750 and 6,000 headers: with 16 KiB kept, 750 headers ran on a kept
// buffer, 6,000 did not, and the ratio rose toward its bound).
const scratchMax = 4 << 10 // bytes

// wipe clears what a check left in sc before it goes back to the pool:
// the HMAC pads (the signing key XORed with constants), the digest state,
// both signatures, the canonical request (which may name a session token)
// and the string to sign. Nothing reads them after the check; wiped, a
// memory dump or a later bug cannot either.
func (sc *scratch) wipe() {
	sc.mac.ipad, sc.mac.opad, sc.mac.inner = [sha256.BlockSize]byte{}, [sha256.BlockSize]byte{}, [sha256.Size]byte{}
	if sc.mac.h != nil {
		sc.mac.h.Reset()
	}
	sc.want, sc.got = [sha256.Size]byte{}, [sha256.Size]byte{}
	clear(sc.creq[:cap(sc.creq)])
	clear(sc.sts[:cap(sc.sts)])
	sc.creq, sc.sts = sc.creq[:0], sc.sts[:0]
}

var scratches = sync.Pool{New: func() any {
	return &scratch{creq: make([]byte, 0, 512), sts: make([]byte, 0, 256)}
}}

func hmacSHA256(key, data []byte) []byte {
	var m mac
	return m.sum(nil, key, data)
}

// mac computes HMAC-SHA256 (RFC 2104) with one reusable digest, avoiding
// the allocations of crypto/hmac.New for each key of the derivation chain.
type mac struct {
	h          hash.Hash
	ipad, opad [sha256.BlockSize]byte
	inner      [sha256.Size]byte
}

// sum appends HMAC-SHA256(key, data) to dst; dst may alias key.
func (m *mac) sum(dst, key, data []byte) []byte {
	if m.h == nil {
		m.h = sha256.New()
	}
	if len(key) > sha256.BlockSize {
		m.h.Reset()
		m.h.Write(key)
		key = m.h.Sum(m.inner[:0])
	}
	m.ipad, m.opad = [sha256.BlockSize]byte{}, [sha256.BlockSize]byte{}
	copy(m.ipad[:], key)
	copy(m.opad[:], key)
	for i := range m.ipad {
		m.ipad[i] ^= 0x36
		m.opad[i] ^= 0x5c
	}
	m.h.Reset()
	m.h.Write(m.ipad[:])
	m.h.Write(data)
	inner := m.h.Sum(m.inner[:0])
	m.h.Reset()
	m.h.Write(m.opad[:])
	m.h.Write(inner)
	return m.h.Sum(dst)
}
