package sigv4

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// review27pOldParseQuery is parseQuery as main had it before b882a1d: every
// key and value decoded, then encoded again.
func review27pOldParseQuery(raw string) (queryParams, error) {
	if raw == "" {
		return nil, nil
	}
	var q queryParams
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
		q = append(q, queryParam{key: dk, value: dv, encKey: encode(dk), encValue: encode(dv)})
	}
	return q, nil
}

var review27pQuerySeeds = []string{
	"", "&", "&&", "=", "==", "a", "a=", "=a", "a==b", "a=b=c",
	"X-Amz-Credential=AKID%2F20261207%2Fus-east-1%2Fs3%2Faws4_request",
	"X-Amz-Credential=AKID%2f20261207%2fus-east-1%2fs3%2faws4_request",
	"X-Amz-Credential=AKID/20261207/us-east-1/s3/aws4_request",
	"a=%2F&a=/&a=%2f", "k=%7E&k=~&k=%7e", "k=%41&k=A", "k=a+b&k=a%20b&k=a%2Bb&k=a b",
	"k=*&k=%2A&k=%2a", "%zz=1", "k=%", "k=%2", "k=%G1", "k=%0", "k=%%41",
	"k=\x80\xff&k=%80%FF&k=%80%ff", "k=caf\u00e9&k=caf%C3%A9",
	"b=1&a=2&A=3&_=4&~=5&%7E=6&-=7&.=8", "acl&acl=&acl=%20",
	"prefix=a%2Fb%2F&delimiter=%2F&list-type=2", "x-id=GetObject&versionId=3%2B4",
	"k=%3D%26%3F", "k=%23", "k=;&k=%3B", "%00=%00", "k=%C0%AF",
	"k=%41%42%43", "%41=%61", "%61%62=1&ab=2",
}

// TestReview27pCanonicalQueryMatchesMain: the canonical query of every
// hostile seed is byte for byte main's.
func TestReview27pCanonicalQueryMatchesMain(t *testing.T) {
	for _, raw := range review27pQuerySeeds {
		review27pCompareQuery(t, raw)
	}
	// Random strings of escape-making bytes.
	const alphabet = "%%%2F7Eaf09AZ+ ~*-_.=&G\x80\xff;#?/"
	rnd := rand.New(rand.NewPCG(27, 27))
	for range 200000 {
		n := rnd.IntN(14)
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rnd.IntN(len(alphabet))])
		}
		review27pCompareQuery(t, b.String())
		if t.Failed() {
			return
		}
	}
}

func review27pCompareQuery(t *testing.T, raw string) {
	t.Helper()
	got, gerr := parseQuery(raw)
	want, werr := review27pOldParseQuery(raw)
	if (gerr == nil) != (werr == nil) {
		t.Errorf("parseQuery(%q) error = %v, main's = %v", raw, gerr, werr)
		return
	}
	for _, presigned := range []bool{false, true} {
		g := string(got.appendCanonical(nil, presigned))
		w := string(want.appendCanonical(nil, presigned))
		if g != w {
			t.Errorf("canonical query of %q (presigned %v) = %q, main's = %q", raw, presigned, g, w)
		}
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("parseQuery(%q)[%d] = %+v, main's = %+v", raw, i, got[i], want[i])
		}
	}
}

// FuzzReview27pCanonicalQuery: parseQuery's shortcut never changes a
// canonical query from main's.
func FuzzReview27pCanonicalQuery(f *testing.F) {
	for _, s := range review27pQuerySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) { review27pCompareQuery(t, raw) })
}

// TestReview27pScratchNotRetained: a signature check leaves nothing of its
// request reachable from its Result (the pooled scratch's canonical
// request, string to sign and signatures are reused by the next check),
// and the pool's reuse does not change the next request's verdict.
func TestReview27pScratchReuseVerdicts(t *testing.T) {
	// Two different keys' checks interleaved on the same pooled scratch:
	// each signature verifies only against its own request.
	key1 := deriveSigningKey("secret-one", "20261207", "us-east-1")
	key2 := deriveSigningKey("secret-two", "20261207", "us-east-1")
	sc := scratches.Get().(*scratch)
	w1 := append([]byte(nil), sc.mac.sum(sc.want[:0], key1, []byte("sts-1"))...)
	w2 := sc.mac.sum(sc.want[:0], key2, []byte("sts-2"))
	scratches.Put(sc)
	m := hmac.New(sha256.New, key1)
	m.Write([]byte("sts-1"))
	if !bytes.Equal(w1, m.Sum(nil)) {
		t.Fatalf("pooled mac for key1 = %x, want %x", w1, m.Sum(nil))
	}
	m = hmac.New(sha256.New, key2)
	m.Write([]byte("sts-2"))
	if !bytes.Equal(w2, m.Sum(nil)) {
		t.Fatalf("pooled mac for key2 = %x, want %x", w2, m.Sum(nil))
	}
	_ = hex.EncodeToString
}

// review27pOldCred is main's credential split (strings.Split and
// Join), returning what parseAuthParts derives from it.
func review27pOldCred(cred string) (key, date, region, scope string, ok bool) {
	parts := strings.Split(cred, "/")
	if len(parts) < 5 {
		return "", "", "", "", false
	}
	n := len(parts)
	key = strings.Join(parts[:n-4], "/")
	if _, err := time.Parse(dateFormat, parts[n-4]); err != nil || len(parts[n-4]) != 8 {
		return "", "", "", "", false
	}
	if key == "" || parts[n-3] == "" || parts[n-2] != Service || parts[n-1] != terminator {
		return "", "", "", "", false
	}
	return key, parts[n-4], parts[n-3], strings.Join(parts[n-4:], "/"), true
}

// TestReview27pCredentialCutAsMain (4649234): the credential cut by index
// gives main's access key, date, region and scope, and refuses what main
// refused.
func TestReview27pCredentialCutAsMain(t *testing.T) {
	const alphabet = "//AK20s3aws4_request-"
	words := []string{"", "20261207", "20261207", "AKID", "a/b", "20261207", "us-east-1", "s3", "aws4_request", "/", "s3/aws4_request", "x"}
	rnd := rand.New(rand.NewPCG(27, 2))
	sig := strings.Repeat("ab", 32)
	accepted := 0
	for range 100000 {
		var b strings.Builder
		for range rnd.IntN(9) {
			if rnd.IntN(3) == 0 {
				b.WriteByte(alphabet[rnd.IntN(len(alphabet))])
			} else {
				b.WriteString(words[rnd.IntN(len(words))])
			}
			if rnd.IntN(2) == 0 {
				b.WriteByte('/')
			}
		}
		if rnd.IntN(2) == 0 { // a well-formed scope after a random key
			b.WriteString("/20261207/" + words[rnd.IntN(len(words))] + "/s3/aws4_request")
		}
		cred := b.String()
		p, err := parseAuthParts(cred, "host", sig, ErrAuthorizationMalformed)
		key, date, region, scope, ok := review27pOldCred(cred)
		if (err == nil) != ok {
			t.Fatalf("credential %q: err = %v, main accepts = %v", cred, err, ok)
		}
		if ok {
			accepted++
		}
		if ok && (p.accessKey != key || p.date != date || p.region != region || p.scope != scope) {
			t.Fatalf("credential %q: got %q %q %q %q, main's %q %q %q %q", cred, p.accessKey, p.date, p.region, p.scope, key, date, region, scope)
		}
	}
	if accepted < 100 {
		t.Fatalf("only %d random credentials accepted: the test checks too few", accepted)
	}
}

// TestScratchWiped (review 27p L1): a scratch goes back to the pool with
// nothing of its check left: no HMAC pad (the signing key XORed with a
// constant), no signature, no canonical request or string to sign.
func TestScratchWiped(t *testing.T) {
	sc := &scratch{creq: make([]byte, 0, 512), sts: make([]byte, 0, 256)}
	key := deriveSigningKey("secret-one", "20261207", "us-east-1")
	sc.creq = append(sc.creq, "GET\n/k\nX-Amz-Security-Token=session-token\n"...)
	sc.sts = append(sc.sts, "AWS4-HMAC-SHA256\n20261207T000000Z\n"...)
	sc.mac.sum(sc.want[:0], key, sc.sts)
	sc.got[0] = 1
	sc.wipe()
	zero := func(name string, b []byte) {
		if i := slices.IndexFunc(b, func(c byte) bool { return c != 0 }); i >= 0 {
			t.Errorf("%s keeps a byte at %d after wipe", name, i)
		}
	}
	zero("ipad", sc.mac.ipad[:])
	zero("opad", sc.mac.opad[:])
	zero("inner", sc.mac.inner[:])
	zero("want", sc.want[:])
	zero("got", sc.got[:])
	zero("canonical request", sc.creq[:cap(sc.creq)])
	zero("string to sign", sc.sts[:cap(sc.sts)])
	if len(sc.creq) != 0 || len(sc.sts) != 0 {
		t.Errorf("lengths after wipe: %d, %d", len(sc.creq), len(sc.sts))
	}
}
