package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits and constants of the protocol.
const (
	// Algorithm is the only signing algorithm accepted.
	Algorithm = "AWS4-HMAC-SHA256"
	// Service is the only service accepted in the credential scope.
	Service = "s3"
	// MaxClockSkew is how far the request time may be from the server clock.
	MaxClockSkew = 15 * time.Minute
	// MaxPresignExpiry is the longest X-Amz-Expires accepted (7 days).
	MaxPresignExpiry = 7 * 24 * time.Hour

	timeFormat = "20060102T150405Z"
	dateFormat = "20060102"
	terminator = "aws4_request"

	unsignedPayload          = "UNSIGNED-PAYLOAD"
	streamingSigned          = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingSignedTrailer   = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	emptySHA256              = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// Request is what verification needs of an HTTP request. The S3 front end
// fills it from its server library's request without copying the body.
type Request struct {
	// Method is the HTTP method, e.g. "PUT".
	Method string
	// RawPath is the request path exactly as sent: still percent-encoded
	// and never cleaned (e.g. "/bucket/a%20b/../c"). With fasthttp use
	// URI().PathOriginal(), not Path().
	RawPath string
	// RawQuery is the query exactly as sent, without the '?'.
	RawQuery string
	// Host is the value of the Host header (or the authority of an
	// absolute-form request target).
	Host string
	// Header returns the value of the named header, looked up
	// case-insensitively, or "" if absent. If a header occurs more than
	// once, Header must return the values, each trimmed, joined with ","
	// in the order received, and the front end must store that joined
	// value too: the signature covers it. HeaderList.Get does this.
	Header func(name string) string
	// HeaderNames lists the names of all headers present, each once, in
	// any case, including headers present with an empty value (a signed
	// "Content-Type:" is part of the canonical request). It is used to
	// refuse signed-but-absent headers and unsigned x-amz-* headers, and
	// to find x-amz-checksum-* headers. HeaderList.Names returns it.
	HeaderNames []string
}

// Credentials looks up the secret key of an access key.
// Implementations must be safe for concurrent use.
type Credentials interface {
	// Secret returns the secret key of accessKey, or an error wrapping
	// ErrUnknownAccessKey if there is none.
	Secret(ctx context.Context, accessKey string) (string, error)
}

// PayloadMode says how a request's payload is protected, from
// x-amz-content-sha256. Its values are append-only.
type PayloadMode uint8

// Payload modes.
const (
	// PayloadUnsigned is UNSIGNED-PAYLOAD (always for presigned URLs).
	PayloadUnsigned PayloadMode = iota + 1
	// PayloadSignedHash is a hex SHA-256 of the whole body (Result.PayloadHash).
	PayloadSignedHash
	// PayloadStreamingSigned is STREAMING-AWS4-HMAC-SHA256-PAYLOAD.
	PayloadStreamingSigned
	// PayloadStreamingUnsignedTrailer is STREAMING-UNSIGNED-PAYLOAD-TRAILER.
	PayloadStreamingUnsignedTrailer
	// PayloadStreamingSignedTrailer is STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.
	PayloadStreamingSignedTrailer
)

// String returns the x-amz-content-sha256 spelling of m.
func (m PayloadMode) String() string {
	switch m {
	case PayloadUnsigned:
		return unsignedPayload
	case PayloadSignedHash:
		return "SIGNED-HASH"
	case PayloadStreamingSigned:
		return streamingSigned
	case PayloadStreamingUnsignedTrailer:
		return streamingUnsignedTrailer
	case PayloadStreamingSignedTrailer:
		return streamingSignedTrailer
	}
	return "PayloadMode(" + strconv.Itoa(int(m)) + ")"
}

// chunked reports whether the body is aws-chunked encoded.
func (m PayloadMode) chunked() bool {
	return m == PayloadStreamingSigned || m == PayloadStreamingUnsignedTrailer || m == PayloadStreamingSignedTrailer
}

// Result is the outcome of a successful Verify. It holds what is needed to
// verify chunk and trailer signatures; it never holds the secret key, and
// its String and LogValue omit the signing key.
type Result struct {
	// AccessKey is the access key that signed the request.
	AccessKey string
	// Region is the region of the credential scope, as sent.
	Region string
	// Time is the signing time (X-Amz-Date, or Date).
	Time time.Time
	// Mode says how the payload is protected.
	Mode PayloadMode
	// PayloadHash is the lowercase hex SHA-256 for PayloadSignedHash, else "".
	PayloadHash string
	// Presigned reports query-string (presigned URL) authentication.
	Presigned bool
	// DecodedLength is x-amz-decoded-content-length in bytes for
	// aws-chunked modes, else -1.
	DecodedLength int64
	// Checksum is the flexible checksum algorithm ("CRC32", "CRC32C",
	// "CRC64NVME", "SHA1", "SHA256") sent in a header or declared as a
	// trailer, or "".
	Checksum string
	// ChecksumValue is the base64 value of the checksum header, or "" when
	// the checksum comes in the trailer.
	ChecksumValue string
	// Trailers lists the lowercase trailer names declared in x-amz-trailer.
	Trailers []string

	key     []byte // signing key; never printed
	seed    string // seed signature (hex), chained by chunk signatures
	amzDate string // signing time as in the string to sign
	scope   string // date/region/s3/aws4_request
}

// String describes res without its signing key.
func (res *Result) String() string {
	return fmt.Sprintf("sigv4.Result{AccessKey:%s Region:%s Mode:%s Presigned:%t}", res.AccessKey, res.Region, res.Mode, res.Presigned)
}

// LogValue implements slog.LogValuer without the signing key.
func (res *Result) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("access_key", res.AccessKey),
		slog.String("region", res.Region),
		slog.String("mode", res.Mode.String()),
		slog.Bool("presigned", res.Presigned),
	)
}

// Verify checks the SigV4 authentication of r against the secret that
// creds returns for its access key, at time now. It returns an error
// wrapping one of the package's sentinels; a request with neither an
// Authorization header nor X-Amz-* query authentication gets
// ErrAccessDenied. Verify does not read the body: use Result.Body.
func Verify(ctx context.Context, r *Request, creds Credentials, now time.Time) (*Result, error) {
	auth := r.Header("Authorization")
	query, err := parseQuery(r.RawQuery)
	if err != nil {
		if auth != "" {
			return nil, fmt.Errorf("%w: %v", ErrSignatureDoesNotMatch, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrAuthQueryMalformed, err)
	}
	presigned := query.has("X-Amz-Algorithm") || query.has("X-Amz-Credential") || query.has("X-Amz-Signature")
	switch {
	case auth != "" && presigned:
		return nil, fmt.Errorf("%w: both Authorization header and X-Amz-* query authentication", ErrAuthorizationMalformed)
	case auth != "":
		return verifyHeader(ctx, r, auth, query, creds, now)
	case presigned:
		return verifyPresigned(ctx, r, query, creds, now)
	}
	return nil, fmt.Errorf("%w: anonymous request", ErrAccessDenied)
}

func verifyHeader(ctx context.Context, r *Request, auth string, query queryParams, creds Credentials, now time.Time) (*Result, error) {
	p, err := parseAuthorization(auth)
	if err != nil {
		return nil, err
	}
	t, amzDate, err := headerTime(r)
	if err != nil {
		return nil, err
	}
	if err := checkSkew(t, now); err != nil {
		return nil, err
	}
	if r.Header("X-Amz-Date") == "" {
		if _, signed := slices.BinarySearch(p.signedHeaders, "date"); !signed {
			return nil, fmt.Errorf("%w: Date must be signed when X-Amz-Date is absent", ErrAuthorizationMalformed)
		}
	}
	if p.date != amzDate[:8] {
		return nil, fmt.Errorf("%w: credential scope date %s differs from request date %s", ErrAuthorizationMalformed, p.date, amzDate[:8])
	}
	contentSHA := r.Header("X-Amz-Content-Sha256")
	if contentSHA == "" {
		return nil, fmt.Errorf("%w: missing x-amz-content-sha256", ErrInvalidContentSHA256)
	}
	res := &Result{AccessKey: p.accessKey, Region: p.region, Time: t, amzDate: amzDate, scope: p.scope, DecodedLength: -1}
	if err := res.setMode(contentSHA); err != nil {
		return nil, err
	}
	if err := res.setPayloadHeaders(r); err != nil {
		return nil, err
	}
	if err := checkHeaders(r, p.signedHeaders, ErrAuthorizationMalformed); err != nil {
		return nil, err
	}
	if err := res.check(ctx, r, p, query, false, contentSHA, creds); err != nil {
		return nil, err
	}
	return res, nil
}

func verifyPresigned(ctx context.Context, r *Request, query queryParams, creds Credentials, now time.Time) (*Result, error) {
	get := func(name string) (string, error) {
		v, n := query.get(name)
		if n != 1 {
			return "", fmt.Errorf("%w: want exactly one %s, got %d", ErrAuthQueryMalformed, name, n)
		}
		return v, nil
	}
	var vals [6]string
	for i, name := range [...]string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		v, err := get(name)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	if vals[0] != Algorithm {
		return nil, fmt.Errorf("%w: unsupported algorithm %q", ErrAuthQueryMalformed, vals[0])
	}
	p, err := parseAuthParts(vals[1], vals[4], vals[5], ErrAuthQueryMalformed)
	if err != nil {
		return nil, err
	}
	t, err := parseTime(timeFormat, vals[2])
	if err != nil {
		return nil, fmt.Errorf("%w: invalid X-Amz-Date", ErrAuthQueryMalformed)
	}
	// As AWS: a malformed or too long X-Amz-Expires is a malformed query
	// (400); 0 is valid and already expired (403 AccessDenied).
	expires, err := strconv.ParseInt(vals[3], 10, 64)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: X-Amz-Expires should be a number", ErrAuthQueryMalformed)
	case expires < 0:
		return nil, fmt.Errorf("%w: X-Amz-Expires must be non-negative", ErrAuthQueryMalformed)
	case expires > int64(MaxPresignExpiry/time.Second):
		return nil, fmt.Errorf("%w: X-Amz-Expires must be less than a week (in seconds) that is %d", ErrAuthQueryMalformed, int64(MaxPresignExpiry/time.Second))
	}
	if t.Sub(now) > MaxClockSkew {
		return nil, fmt.Errorf("%w: presigned request dated %s in the future", ErrRequestTimeTooSkewed, vals[2])
	}
	if expires == 0 || now.After(t.Add(time.Duration(expires)*time.Second)) {
		return nil, fmt.Errorf("%w: expired at %s", ErrExpiredPresign, t.Add(time.Duration(expires)*time.Second).Format(time.RFC3339))
	}
	if p.date != vals[2][:8] {
		return nil, fmt.Errorf("%w: credential scope date %s differs from X-Amz-Date", ErrAuthQueryMalformed, p.date)
	}
	payload := unsignedPayload
	if v, n := query.get("X-Amz-Content-Sha256"); n > 0 {
		payload = v
	}
	res := &Result{AccessKey: p.accessKey, Region: p.region, Time: t, amzDate: vals[2], scope: p.scope, Presigned: true, DecodedLength: -1}
	if err := res.setMode(payload); err != nil {
		return nil, err
	}
	if res.Mode != PayloadUnsigned && res.Mode != PayloadSignedHash {
		return nil, fmt.Errorf("%w: streaming payload with a presigned URL", ErrInvalidContentSHA256)
	}
	if err := res.setPayloadHeaders(r); err != nil {
		return nil, err
	}
	if err := checkHeaders(r, p.signedHeaders, ErrAuthQueryMalformed); err != nil {
		return nil, err
	}
	if err := res.check(ctx, r, p, query, true, payload, creds); err != nil {
		return nil, err
	}
	return res, nil
}

// check computes the signature of r and compares it with p.signature; on a
// match it records the signing key and seed signature in res.
func (res *Result) check(ctx context.Context, r *Request, p authParams, query queryParams, presigned bool, payload string, creds Credentials) error {
	secret, err := creds.Secret(ctx, p.accessKey)
	if err != nil {
		if errors.Is(err, ErrUnknownAccessKey) {
			return fmt.Errorf("%w: %s", ErrUnknownAccessKey, p.accessKey)
		}
		return fmt.Errorf("sigv4: credentials for %s: %w", p.accessKey, err)
	}
	sc := scratches.Get().(*scratch)
	defer func() {
		if cap(sc.creq) <= scratchMax && cap(sc.sts) <= scratchMax {
			sc.wipe()
			scratches.Put(sc)
		}
	}()
	creq, err := canonicalRequest(sc.creq[:0], r, query, presigned, p.signedHeaders, payload)
	if err != nil {
		return err
	}
	sc.creq = creq
	sum := sha256.Sum256(creq)
	sts := append(sc.sts[:0], Algorithm...)
	sts = append(sts, '\n')
	sts = append(sts, res.amzDate...)
	sts = append(sts, '\n')
	sts = append(sts, p.scope...)
	sts = append(sts, '\n')
	sts = hex.AppendEncode(sts, sum[:])
	sc.sts = sts
	key := signingKey(secret, p.date, p.region)
	want := sc.mac.sum(sc.want[:0], key, sts)
	// p.signature is 64 hex digits (parseAuthParts): decoded in place.
	got, ok := sc.got[:], len(p.signature) == 2*len(sc.got) && isHex(p.signature)
	for i := 0; ok && i < len(got); i++ {
		got[i] = unhex(p.signature[2*i])<<4 | unhex(p.signature[2*i+1])
	}
	if !ok || !hmac.Equal(got, want) {
		return fmt.Errorf("%w: access key %s", ErrSignatureDoesNotMatch, p.accessKey)
	}
	res.key = key
	res.seed = p.signature
	return nil
}

// setMode sets res.Mode and res.PayloadHash from an x-amz-content-sha256 value.
func (res *Result) setMode(v string) error {
	switch v {
	case unsignedPayload:
		res.Mode = PayloadUnsigned
	case streamingSigned:
		res.Mode = PayloadStreamingSigned
	case streamingSignedTrailer:
		res.Mode = PayloadStreamingSignedTrailer
	case streamingUnsignedTrailer:
		res.Mode = PayloadStreamingUnsignedTrailer
	default:
		if len(v) != 64 || !isHex(v) {
			return fmt.Errorf("%w: unsupported value %.80q", ErrInvalidContentSHA256, v)
		}
		res.Mode = PayloadSignedHash
		res.PayloadHash = strings.ToLower(v)
	}
	return nil
}

// setPayloadHeaders reads x-amz-decoded-content-length, x-amz-trailer and
// x-amz-checksum-* into res.
func (res *Result) setPayloadHeaders(r *Request) error {
	if res.Mode.chunked() {
		v := r.Header("X-Amz-Decoded-Content-Length")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: missing or invalid x-amz-decoded-content-length", ErrMalformedChunk)
		}
		res.DecodedLength = n
	}
	if v := r.Header("X-Amz-Trailer"); v != "" {
		if res.Mode != PayloadStreamingSignedTrailer && res.Mode != PayloadStreamingUnsignedTrailer {
			return fmt.Errorf("%w: x-amz-trailer without a trailer payload mode", ErrInvalidContentSHA256)
		}
		for name := range strings.SplitSeq(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" || slices.Contains(res.Trailers, name) {
				return fmt.Errorf("%w: invalid x-amz-trailer %.80q", ErrMalformedChunk, v)
			}
			res.Trailers = append(res.Trailers, name)
			if alg, ok := strings.CutPrefix(name, "x-amz-checksum-"); ok {
				if err := res.setChecksum(alg, ""); err != nil {
					return err
				}
			}
		}
	}
	for _, name := range r.HeaderNames {
		const prefix = "x-amz-checksum-"
		if len(name) <= len(prefix) || !strings.EqualFold(name[:len(prefix)], prefix) {
			continue // most headers: no lowercase copy
		}
		alg := strings.ToLower(name[len(prefix):])
		if alg == "type" || alg == "algorithm" || alg == "mode" {
			continue
		}
		if err := res.setChecksum(alg, r.Header(name)); err != nil {
			return err
		}
	}
	return nil
}

func (res *Result) setChecksum(alg, value string) error {
	a, ok := checksumAlgorithm(alg)
	if !ok {
		return fmt.Errorf("%w: algorithm %.40q", ErrUnsupportedChecksum, alg)
	}
	if res.Checksum != "" {
		return fmt.Errorf("%w: more than one checksum", ErrUnsupportedChecksum)
	}
	if value != "" {
		if err := checkChecksumValue(a, value); err != nil {
			return err
		}
	}
	res.Checksum, res.ChecksumValue = a.name, value
	return nil
}
