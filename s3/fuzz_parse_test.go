package s3

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"github.com/vaultaire/vaultaire/engine"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// rfcRange is the oracle for parseRange: RFC 9110 section 14.1.2 for one
// byte-range-spec (ranges are digits only, a suffix-length of 0 or a
// first-pos at or past the end is unsatisfiable, a last-pos past the end
// is cut to it), with S3's choices where the RFC leaves one: a header that
// is not a single valid byte range is ignored and the whole object served.
// Positions past what int64 holds count as MaxInt64: past every object.
func rfcRange(v string, size int64) (off, length int64, ok, unsatisfiable bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found {
		return 0, size, false, false
	}
	first, last, found := strings.Cut(spec, "-")
	if !found || last != "" && !allDigits(last) || first != "" && !allDigits(first) || first == "" && last == "" {
		return 0, size, false, false
	}
	if first == "" {
		n := digitsValue(last)
		if n == 0 || size == 0 {
			return 0, 0, true, true
		}
		n = min(n, size)
		return size - n, n, true, false
	}
	a, b := digitsValue(first), int64(math.MaxInt64)
	if last != "" {
		if b = digitsValue(last); b < a {
			return 0, size, false, false
		}
	}
	if a >= size {
		return 0, 0, true, true
	}
	b = min(b, size-1)
	return a, b - a + 1, true, false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// digitsValue is the value of a digit string, saturated at MaxInt64.
func digitsValue(s string) int64 {
	var n int64
	for i := 0; i < len(s); i++ {
		d := int64(s[i] - '0')
		if n > (math.MaxInt64-d)/10 {
			return math.MaxInt64
		}
		n = n*10 + d
	}
	return n
}

// FuzzParseRange checks the Range (and x-amz-copy-source-range) parser
// against the RFC 9110 oracle: a served range lies within the object, is
// never empty, and is the one the RFC names for bytes=a-b, a- and -n.
func FuzzParseRange(f *testing.F) {
	for _, tc := range []struct {
		v    string
		size int64
	}{
		{"bytes=0-0", 10}, {"bytes=0-", 10}, {"bytes=-1", 10}, {"bytes=-0", 10}, {"bytes=5-3", 10}, {"bytes=10-", 10},
		{"bytes=9-100", 10}, {"bytes=-100", 10}, {"bytes=0-1,3-4", 10}, {"bytes=", 10}, {"bytes=-", 10}, {"bytes=1", 10},
		{"bytes=+1-2", 10}, {"bytes=-+1", 10}, {"bytes=1-+2", 10}, {"bytes= 1-2", 10}, {"Bytes=1-2", 10}, {"items=1-2", 10},
		{"bytes=99999999999999999999-", 10}, {"bytes=-99999999999999999999", 10}, {"bytes=0-99999999999999999999", 10},
		{"bytes=9223372036854775807-9223372036854775807", math.MaxInt64}, {"bytes=-1", 0}, {"bytes=0-", 0}, {"bytes=--1", 10},
		{"bytes=0000000000000000000000001-2", 10}, {"bytes=1-2-3", 10}, {"", 10},
	} {
		f.Add(tc.v, tc.size)
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		off, length, ok, err := parseRange(v, size)
		wOff, wLen, wOK, wUnsat := rfcRange(v, size)
		if wUnsat {
			if !ok || !errors.Is(err, ErrInvalidRange) {
				t.Fatalf("parseRange(%q, %d) = %d, %d, %v, %v; want InvalidRange", v, size, off, length, ok, err)
			}
			return
		}
		if err != nil || ok != wOK || off != wOff || length != wLen {
			t.Fatalf("parseRange(%q, %d) = %d, %d, %v, %v; want %d, %d, %v", v, size, off, length, ok, err, wOff, wLen, wOK)
		}
		if ok && (off < 0 || length <= 0 || off > size-length) {
			t.Fatalf("parseRange(%q, %d) = [%d, +%d) outside the object", v, size, off, length)
		}
	})
}

// rfcPreconditions is the oracle for preconditions: RFC 9110 section 13.2.2
// evaluation order, dates at one-second resolution, invalid dates ignored.
func rfcPreconditions(h map[string]string, etag string, modified time.Time) int {
	date := func(name string) (time.Time, bool) {
		t, err := http.ParseTime(h[name])
		return t, h[name] != "" && err == nil
	}
	modified = modified.Truncate(time.Second)
	switch {
	case h["If-Match"] != "":
		if !etagMatches(h["If-Match"], etag, true) {
			return http.StatusPreconditionFailed
		}
	default:
		if t, ok := date("If-Unmodified-Since"); ok && modified.After(t) {
			return http.StatusPreconditionFailed
		}
	}
	switch {
	case h["If-None-Match"] != "":
		if etagMatches(h["If-None-Match"], etag, false) {
			return http.StatusNotModified
		}
	default:
		if t, ok := date("If-Modified-Since"); ok && !modified.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// FuzzPreconditions checks the conditional headers: no panic, the RFC
// order, and an entity tag list matches exactly when it names the ETag
// (quoted, unquoted, or weak for If-None-Match only) or is "*".
func FuzzPreconditions(f *testing.F) {
	const etag = "5d41402abc4b2a76b9719d911017c592"
	mod := time.Date(2026, 11, 29, 12, 0, 0, 500, time.UTC)
	for _, h := range [][4]string{
		{`"` + etag + `"`, "", "", ""}, {`"other"`, "", "", ""}, {"*", "", "", ""}, {`W/"` + etag + `"`, "", "", ""},
		{"", `"` + etag + `"`, "", ""}, {"", `"a", "` + etag + `"`, "", ""}, {"", "", "Sun, 29 Nov 2026 12:00:00 GMT", ""},
		{"", "", "", "Sun, 29 Nov 2026 11:59:59 GMT"}, {"", "", "Sunday, 29-Nov-26 12:00:00 GMT", "Sun Nov 29 12:00:00 2026"},
		{`"x"`, "", "", "garbage"}, {"", `"x"`, "Sun, 29 Nov 2026 13:00:00 GMT", ""}, {",,,", ",", "", ""}, {`""`, `"`, "", ""},
	} {
		f.Add(h[0], h[1], h[2], h[3], mod.Unix())
	}
	f.Fuzz(func(t *testing.T, ifMatch, ifNoneMatch, ifModified, ifUnmodified string, modUnix int64) {
		h := map[string]string{"If-Match": ifMatch, "If-None-Match": ifNoneMatch, "If-Modified-Since": ifModified, "If-Unmodified-Since": ifUnmodified}
		modified := time.Unix(modUnix%(1<<40), 123)
		got := preconditions(func(name string) string { return h[name] }, etag, modified)
		if want := rfcPreconditions(h, etag, modified); got != want {
			t.Fatalf("preconditions(%q) = %d, want %d", h, got, want)
		}
		for _, list := range []string{ifMatch, ifNoneMatch} {
			named, strong := false, false
			for _, t := range strings.Split(list, ",") {
				t = strings.TrimSpace(t)
				switch t {
				case "*", etag, `"` + etag + `"`:
					named, strong = true, true
				case `W/"` + etag + `"`:
					named = true
				}
			}
			if named && !etagMatches(list, etag, false) {
				t.Fatalf("weak etagMatches(%q) = false, but the list names the ETag", list)
			}
			if !named && etagMatches(list, etag, false) && !strings.Contains(list, etag) && !strings.Contains(list, "*") {
				t.Fatalf("weak etagMatches(%q) = true for a list without the ETag", list)
			}
			if strong && !etagMatches(list, etag, true) {
				t.Fatalf("strong etagMatches(%q) = false, but the list names the ETag strongly", list)
			}
			if !strong && etagMatches(list, etag, true) && !strings.Contains(list, etag) && !strings.Contains(list, "*") {
				t.Fatalf("strong etagMatches(%q) = true for a list without the ETag", list)
			}
		}
	})
}

// FuzzCopySource checks the x-amz-copy-source parser against url's path
// unescaping: no panic, the bucket and key it returns are what the header
// names, both non-empty, and it fails only with a 400.
func FuzzCopySource(f *testing.F) {
	for _, s := range []string{
		"/bucket/key", "bucket/key", "bucket/a%2Fb", "/bucket/k%3Fq?versionId=null", "bucket/key?versionId=abc", "bucket/key?x=1&versionId=abc", "bucket",
		"bucket/", "/", "", "%", "bucket/%zz", "bucket/%2", "b%2Fk", "bucket/k%00", "bucket/%E6%97%A5", "/bucket//key", "bucket/k?",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if strings.ContainsAny(src, "\r\n") {
			return // cannot be a header value
		}
		op := &operation{r: &request{fctx: &fasthttp.RequestCtx{}}}
		op.r.fctx.Request.Header.Set("x-amz-copy-source", src)
		got := string(op.r.fctx.Request.Header.Peek("x-amz-copy-source"))
		bucket, key, err := op.copySource()
		path, query, _ := strings.Cut(got, "?")
		want, uerr := url.PathUnescape(strings.TrimPrefix(path, "/"))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("copySource(%q): %v, want a 400 S3 error", got, err)
			}
			if uerr == nil && !errors.Is(err, ErrInvalidVersion) {
				if b, k, ok := strings.Cut(want, "/"); ok && b != "" && k != "" {
					t.Fatalf("copySource(%q) refused %q/%q: %v", got, b, k, err)
				}
			}
			return
		}
		for _, p := range strings.Split(query, "&") {
			if v, ok := strings.CutPrefix(p, "versionId="); ok && !engine.ValidVersionID(v) {
				t.Fatalf("copySource(%q) accepted versionId %q", got, v)
			}
		}
		if uerr != nil || bucket+"/"+key != want || bucket == "" || key == "" || strings.Contains(bucket, "/") {
			t.Fatalf("copySource(%q) = %q, %q; url.PathUnescape gives %q, %v", got, bucket, key, want, uerr)
		}
	})
}

// s3BucketName is the oracle for validBucketName, written from the S3
// naming rules this server applies: 3 to 63 characters of lower-case
// letters, digits, dots and hyphens, beginning and ending with a letter or
// digit, no two adjacent dots, not an IP address, and not the reserved
// xn-- prefix or -s3alias suffix.
func s3BucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	if strings.HasPrefix(name, "xn--") || strings.HasSuffix(name, "-s3alias") || strings.Contains(name, "..") {
		return false
	}
	edge := func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
	if !edge(name[0]) || !edge(name[len(name)-1]) {
		return false
	}
	if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
		return false
	}
	return !ipv4Formatted.MatchString(name)
}

// ipv4Formatted is how AWS and MinIO tell a bucket name formatted as an IP
// address.
var ipv4Formatted = regexp.MustCompile(`^(\d{1,3}\.){3}\d{1,3}$`)

// FuzzBucketName checks the bucket name rules against the oracle, and
// that every accepted name is a name the engine accepts for a container
// and one that fits in a virtual-hosted request's Host as one label run.
func FuzzBucketName(f *testing.F) {
	for _, s := range []string{
		"abc", "ab", "my-bucket.example", "My-Bucket", "a..b", "-abc", "abc-", "192.168.5.4", "192.168.05.4", "999.1.1.1", "1234.1.1.1", "1.2.3", "1.2.3.4.5", "xn--abc", "abc-s3alias",
		"a_b", "a\x00b", "a/b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "ü-bucket", "::1", "a.-b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := validBucketName(name)
		if want := s3BucketName(name); got != want {
			t.Fatalf("validBucketName(%q) = %v, want %v", name, got, want)
		}
		if !got {
			return
		}
		if u, err := url.Parse("http://" + name + ".s3.example.com/k"); err != nil || u.Hostname() != name+".s3.example.com" {
			t.Fatalf("bucket %q does not make a host name: %v", name, err)
		}
		if strings.ContainsAny(name, "/\x00%?#") {
			t.Fatalf("bucket %q holds a path or query character", name)
		}
	})
}

// xmlBodies are the request bodies s3 decodes, by the fuzz inputs'
// selector byte.
var xmlBodies = []func() any{
	func() any { return &completeRequest{} },
	func() any { return &deleteRequest{} },
	func() any { return &TenantLimits{} },
}

// FuzzXMLDecode decodes arbitrary bodies as each request document the
// server reads (CompleteMultipartUpload, Delete, the admin limits JSON):
// no panic, and time and memory stay bounded by the body size limit. The
// s3_test TestXMLCorpusNo5xx sends this corpus through a real server.
func FuzzXMLDecode(f *testing.F) {
	addXMLSeeds(f)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		if len(body) > maxXMLBody {
			body = body[:maxXMLBody]
		}
		v := xmlBodies[int(which)%len(xmlBodies)]()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		if _, ok := v.(*TenantLimits); ok {
			json.Unmarshal(body[:min(len(body), 4<<10)], v)
		} else {
			xml.Unmarshal(body, v)
		}
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20+64*uint64(len(body)) {
			t.Fatalf("decoding %d bytes allocated %d bytes", len(body), n)
		}
		if elapsed > 5*time.Second {
			t.Fatalf("decoding %d bytes took %v", len(body), elapsed)
		}
	})
}

func addXMLSeeds(f *testing.F) {
	for _, s := range []struct {
		which uint8
		body  string
	}{
		{0, `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>`},
		{0, `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><PartNumber>-1</PartNumber></Part></CompleteMultipartUpload>`},
		{0, `<CompleteMultipartUpload><Part><PartNumber>99999999999999999999</PartNumber></Part></CompleteMultipartUpload>`},
		{0, `<CompleteMultipartUpload></CompleteMultipartUpload>`},
		{0, `<Delete/>`},
		{1, `<Delete><Object><Key>a</Key></Object><Quiet>true</Quiet></Delete>`},
		{1, `<Delete><Object><Key></Key></Object></Delete>`},
		{1, `<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>`},
		{1, `<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><Delete><Object><Key>&b;</Key></Object></Delete>`},
		{1, strings.Repeat("<a>", 20000)},
		{2, `{"rps": 10, "burst": 20}`},
		{2, `{"max_bytes": -1}`},
		{2, `{"rps": 1e400}`},
		{2, `[` + strings.Repeat("[", 20000)},
	} {
		f.Add(s.which, []byte(s.body))
	}
}
