package sigv4

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// authParams are the parsed parts of an Authorization header or presigned query.
type authParams struct {
	accessKey     string
	date, region  string // of the scope
	scope         string
	signedHeaders []string
	signature     string
}

func checkSkew(t, now time.Time) error {
	if d := now.Sub(t); d > MaxClockSkew || d < -MaxClockSkew {
		return fmt.Errorf("%w: request time %s, server time %s", ErrRequestTimeTooSkewed, t.UTC().Format(timeFormat), now.UTC().Format(timeFormat))
	}
	return nil
}

// headerTime returns the request time from X-Amz-Date, or from Date, and
// its spelling in the string to sign.
func headerTime(r *Request) (time.Time, string, error) {
	if v := r.Header("X-Amz-Date"); v != "" {
		t, err := parseTime(timeFormat, v)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("%w: invalid X-Amz-Date", ErrAccessDenied)
		}
		return t, v, nil
	}
	if v := r.Header("Date"); v != "" {
		t, err := http.ParseTime(v)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("%w: invalid Date", ErrAccessDenied)
		}
		t = t.UTC()
		return t, t.Format(timeFormat), nil
	}
	return time.Time{}, "", fmt.Errorf("%w: missing X-Amz-Date or Date", ErrAccessDenied)
}

// parseAuthorization parses
// "AWS4-HMAC-SHA256 Credential=AK/date/region/s3/aws4_request, SignedHeaders=a;b, Signature=hex".
func parseAuthorization(auth string) (authParams, error) {
	alg, rest, ok := strings.Cut(auth, " ")
	if !ok || alg != Algorithm {
		return authParams{}, fmt.Errorf("%w: unsupported algorithm", ErrAuthorizationMalformed)
	}
	var cred, signed, sig string
	var seen int
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return authParams{}, fmt.Errorf("%w: component without '='", ErrAuthorizationMalformed)
		}
		var dst *string
		var bit int
		switch k {
		case "Credential":
			dst, bit = &cred, 1
		case "SignedHeaders":
			dst, bit = &signed, 2
		case "Signature":
			dst, bit = &sig, 4
		default:
			return authParams{}, fmt.Errorf("%w: unknown component %.40q", ErrAuthorizationMalformed, k)
		}
		if seen&bit != 0 {
			return authParams{}, fmt.Errorf("%w: repeated %s", ErrAuthorizationMalformed, k)
		}
		seen |= bit
		*dst = v
	}
	if seen != 7 {
		return authParams{}, fmt.Errorf("%w: want Credential, SignedHeaders and Signature", ErrAuthorizationMalformed)
	}
	return parseAuthParts(cred, signed, sig, ErrAuthorizationMalformed)
}

// parseAuthParts validates the credential, signed headers and signature
// shared by header and query authentication; errors wrap sentinel.
func parseAuthParts(cred, signed, sig string, sentinel error) (authParams, error) {
	var p authParams
	// The scope is the last four '/'-separated fields; the access key is
	// the rest. Cut by index, not split and joined again (three
	// allocations of every request).
	var parts [4]string // date, region, service, terminator
	rest := cred
	for i := len(parts) - 1; i >= 0; i-- {
		j := strings.LastIndexByte(rest, '/')
		if j < 0 {
			return p, fmt.Errorf("%w: credential must be key/date/region/service/aws4_request", sentinel)
		}
		rest, parts[i] = rest[:j], rest[j+1:]
	}
	p.accessKey = rest
	p.date, p.region = parts[0], parts[1]
	if p.accessKey == "" {
		return p, fmt.Errorf("%w: empty access key", sentinel)
	}
	if _, err := parseTime(dateFormat, p.date); err != nil || len(p.date) != 8 {
		return p, fmt.Errorf("%w: invalid credential date %.20q", sentinel, p.date)
	}
	if p.region == "" {
		return p, fmt.Errorf("%w: empty region", sentinel)
	}
	if parts[2] != Service {
		return p, fmt.Errorf("%w: service must be %q, got %.20q", sentinel, Service, parts[2])
	}
	if parts[3] != terminator {
		return p, fmt.Errorf("%w: credential must end with %s", sentinel, terminator)
	}
	p.scope = cred[len(rest)+1:]
	if signed == "" {
		return p, fmt.Errorf("%w: empty SignedHeaders", sentinel)
	}
	p.signedHeaders = strings.Split(signed, ";")
	hasHost := false
	for i, h := range p.signedHeaders {
		if h == "" || h != strings.ToLower(h) || strings.ContainsAny(h, " \t:") {
			return p, fmt.Errorf("%w: invalid SignedHeaders", sentinel)
		}
		if i > 0 && h <= p.signedHeaders[i-1] {
			return p, fmt.Errorf("%w: SignedHeaders not sorted or repeated", sentinel)
		}
		hasHost = hasHost || h == "host"
	}
	if !hasHost {
		return p, fmt.Errorf("%w: host must be signed", sentinel)
	}
	if len(sig) != 64 || !isHex(sig) {
		return p, fmt.Errorf("%w: signature must be 64 hex digits", sentinel)
	}
	p.signature = strings.ToLower(sig)
	return p, nil
}

// checkHeaders refuses signed headers that are absent and x-amz-* headers
// that are present but not signed.
func checkHeaders(r *Request, signed []string, sentinel error) error {
	if r.Host == "" {
		return fmt.Errorf("%w: missing Host", sentinel)
	}
	present := func(h string) bool {
		return slices.ContainsFunc(r.HeaderNames, func(n string) bool { return strings.EqualFold(n, h) })
	}
	if len(signed)*len(r.HeaderNames) > 256 {
		// Thousands of signed headers and header lines fit in 64 KiB of
		// headers: no quadratic scan before the signature is checked.
		set := make(map[string]bool, len(r.HeaderNames))
		for _, n := range r.HeaderNames {
			set[strings.ToLower(n)] = true
		}
		present = func(h string) bool { return set[h] }
	}
	for _, h := range signed {
		if h != "host" && !present(h) {
			return fmt.Errorf("%w: signed header %.80q is absent", ErrSignatureDoesNotMatch, h)
		}
	}
	for _, n := range r.HeaderNames {
		if len(n) < 6 || !strings.EqualFold(n[:6], "x-amz-") {
			continue
		}
		if _, found := slices.BinarySearch(signed, strings.ToLower(n)); !found {
			return fmt.Errorf("%w: header %.80q is present but not signed", ErrAccessDenied, n)
		}
	}
	return nil
}
