package remote

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/vaultaire/vaultaire/driver"
)

// Stats counts what the driver sent to its backend: every HTTP attempt
// (retries included), as providers bill them.
type Stats struct {
	Puts      uint64 // PUT requests: log objects, single-PUT shards, multipart parts, format.json
	Posts     uint64 // POST requests: multipart create and complete
	Gets      uint64 // GET requests of objects (shard ranges, log indexes)
	Lists     uint64 // GET requests listing the bucket
	Heads     uint64 // HEAD requests
	Deletes   uint64 // DELETE requests (objects, aborted uploads)
	BytesSent uint64 // request bodies
	BytesRecv uint64 // response bodies
	Retries   uint64 // attempts after the first of a call
	Failures  uint64 // calls that failed after their retries
	Opens     uint64 // times the circuit breaker opened
}

// Requests returns the total number of requests.
func (s Stats) Requests() uint64 { return s.Puts + s.Posts + s.Gets + s.Lists + s.Heads + s.Deletes }

// Sub returns s - o, field by field.
func (s Stats) Sub(o Stats) Stats {
	return Stats{s.Puts - o.Puts, s.Posts - o.Posts, s.Gets - o.Gets, s.Lists - o.Lists, s.Heads - o.Heads,
		s.Deletes - o.Deletes, s.BytesSent - o.BytesSent, s.BytesRecv - o.BytesRecv, s.Retries - o.Retries,
		s.Failures - o.Failures, s.Opens - o.Opens}
}

type counters struct {
	puts, posts, gets, lists, heads, deletes, sent, recv, retries, failures atomic.Uint64
}

// fencedTransport asks Config.Fence again right before each attempt of a
// request that changes the bucket (anything but GET and HEAD) is sent: the
// check in backend.write comes before the wait for a request slot and the
// SDK's retries with backoff, and a process paused (SIGSTOP) in between
// must not send once its permission has expired. A refused attempt is not
// sent, not retried, and not counted.
type fencedTransport struct {
	next  http.RoundTripper
	fence Fencer
}

func (t *fencedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := t.fence.Fence(r.Context()); err != nil {
			if r.Body != nil {
				r.Body.Close()
			}
			return nil, &fencedError{err: err}
		}
	}
	return t.next.RoundTrip(r)
}

// fencedError is an attempt fencedTransport refused; the SDK's retryer
// does not retry it.
type fencedError struct{ err error }

func (e *fencedError) Error() string        { return ErrFenced.Error() + ": " + e.err.Error() }
func (e *fencedError) Unwrap() []error      { return []error{ErrFenced, e.err} }
func (e *fencedError) RetryableError() bool { return false }

// countingTransport counts requests and body bytes of every attempt.
type countingTransport struct {
	next http.RoundTripper
	c    *counters
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.Method {
	case http.MethodPut:
		t.c.puts.Add(1)
	case http.MethodPost:
		t.c.posts.Add(1)
	case http.MethodHead:
		t.c.heads.Add(1)
	case http.MethodDelete:
		t.c.deletes.Add(1)
	case http.MethodGet:
		if isListing(r) {
			t.c.lists.Add(1)
		} else {
			t.c.gets.Add(1)
		}
	}
	// The SDK numbers its attempts in amz-sdk-request: "attempt=2; max=5".
	if a := r.Header.Get("amz-sdk-request"); a != "" && !strings.HasPrefix(a, "attempt=1;") {
		t.c.retries.Add(1)
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingBody{ReadCloser: r.Body, n: &t.c.sent}
	}
	resp, err := t.next.RoundTrip(r)
	if err == nil && resp.Body != nil {
		var body io.ReadCloser = &countingBody{ReadCloser: resp.Body, n: &t.c.recv}
		if limit := responseLimit(r, resp.StatusCode); limit >= 0 {
			body = &cappedBody{ReadCloser: body, left: limit}
		}
		resp.Body = body
	}
	return resp, err
}

// Response bodies the SDK reads whole (XML answers and errors) are capped,
// so that a broken or hostile backend cannot grow the node's memory by
// answering with an endless body; object bodies are read by the driver
// in the ranges it asked for.
const (
	maxErrorBody   = 64 << 10 // an S3 error document
	maxListingBody = 16 << 20 // a page of 1,000 keys of up to 1 KiB each, and more
	maxAnswerBody  = 1 << 20  // PUT, POST, DELETE, HEAD answers: empty or a short XML document
)

// errBodyTooLarge fails a capped response body read past its cap.
var errBodyTooLarge = errors.New("driver/remote: backend response body too large")

// responseLimit returns the cap on the body of the answer to r with
// status, or -1 for none (a successful object GET).
func responseLimit(r *http.Request, status int) int64 {
	switch {
	case status >= 300:
		return maxErrorBody
	case r.Method == http.MethodGet && isListing(r):
		return maxListingBody
	case r.Method == http.MethodGet:
		return -1
	default:
		return maxAnswerBody
	}
}

// isListing reports whether GET r lists (path style: /bucket is a
// listing, /bucket/key an object).
func isListing(r *http.Request) bool {
	q := r.URL.Query()
	return q.Has("list-type") || q.Has("uploads") || !strings.Contains(strings.Trim(r.URL.Path, "/"), "/")
}

// cappedBody fails with errBodyTooLarge once more than left bytes came.
type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, errBodyTooLarge
	}
	return n, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Uint64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(uint64(n))
	return n, err
}

// newClient builds the S3 client for c.
func newClient(c *Config, cnt *counters) *s3.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: c.AttemptTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          2 * c.MaxConcurrent,
		MaxIdleConnsPerHost:   2 * c.MaxConcurrent,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: c.AttemptTimeout,
		TLSHandshakeTimeout:   c.AttemptTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	var rt http.RoundTripper = &countingTransport{next: tr, c: cnt}
	if c.Fence != nil {
		rt = &fencedTransport{next: rt, fence: c.Fence}
	}
	hc := &http.Client{Transport: rt}
	return s3.New(s3.Options{
		BaseEndpoint:               aws.String(c.Endpoint),
		Region:                     c.Region,
		Credentials:                credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, ""),
		UsePathStyle:               true,
		HTTPClient:                 hc,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = c.MaxAttempts
			o.MaxBackoff = c.MaxBackoff
			o.RateLimiter = ratelimit.None
		}),
		APIOptions: nil,
	})
}

// backend wraps the S3 client with the driver's limits: the concurrency
// cap, the call timeout and the circuit breaker.
type backend struct {
	s3      *s3.Client
	bucket  string
	sem     chan struct{}
	br      *breaker
	timeout time.Duration
	cnt     *counters
	closed  <-chan struct{}
	lastOK  atomic.Int64 // unix nanoseconds of the last answered call
	fence   Fencer       // Config.Fence; nil: none
	prefix  string       // Config.Prefix
	// keys is an encrypted drive's keyring (crypt.go), set by Open before
	// any object but format.json is read or written; nil: plaintext.
	keys atomic.Pointer[keyring]
}

// sealed returns the keyring and the AEAD of the object key, or nil if
// it is stored in the clear (a plaintext drive, or format.json).
func (b *backend) sealed(key string) (*keyring, cipher.AEAD) {
	k := b.keys.Load()
	if k == nil || key == b.prefix+"format.json" {
		return nil, nil
	}
	return k, k.object(strings.TrimPrefix(key, b.prefix))
}

// sizeOf is the size of the plaintext an object of stored bytes holds.
func (b *backend) sizeOf(key string, stored int64) int64 {
	if b.keys.Load() == nil || key == b.prefix+"format.json" {
		return stored
	}
	return plainSize(stored)
}

// body is the request body storing plaintext p at key.
func (b *backend) body(key string, p []byte) (io.ReadSeeker, int64) {
	if k, aead := b.sealed(key); k != nil {
		r := newSealReader(aead, k.header, p, 0, true)
		return r, r.Len()
	}
	return bytes.NewReader(p), int64(len(p))
}

// isInvalidRange reports an answer 416: a range the object does not hold.
func isInvalidRange(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
		return true
	}
	var hs interface{ HTTPStatusCode() int }
	return errors.As(err, &hs) && hs.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable
}

// ErrFenced marks a write refused because Config.Fence said this driver may
// no longer write the bucket (another node owns the drive). It comes
// wrapped with driver.ErrOffline.
var ErrFenced = errors.New("driver/remote: fenced: this node may not write the drive")

// write is call for a request that changes the bucket: Config.Fence is
// asked first, so the request is sent within the call timeout of a
// passed check, or not at all.
func (b *backend) write(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	if b.fence != nil {
		if err := b.fence.Fence(ctx); err != nil {
			return fmt.Errorf("%w: %s: %w: %w", driver.ErrOffline, what, ErrFenced, err)
		}
	}
	return b.call(ctx, what, fn)
}

// errBreakerOpen is the cause of calls refused while the breaker is open.
var errBreakerOpen = errors.New("backend unavailable (circuit breaker open)")

// call runs fn against the backend with the call timeout, holding a
// concurrency slot. Errors: the caller's ctx error; driver.ErrNotFound for
// a missing object; driver.ErrOffline for everything else (breaker open,
// timeout, failures after retries).
func (b *backend) call(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	// The call timeout covers the wait for a concurrency slot too.
	cctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	release, trial, err := b.acquire(cctx, what)
	if err != nil {
		if ctx.Err() == nil && cctx.Err() != nil {
			return fmt.Errorf("%w: %s: no free request slot within %v", driver.ErrOffline, what, b.timeout)
		}
		return err
	}
	defer release()
	err = fn(cctx)
	return b.outcome(ctx, what, trial, err)
}

// acquire checks the breaker and takes a concurrency slot.
func (b *backend) acquire(ctx context.Context, what string) (release func(), trial bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	ok, trial := b.br.allow()
	if !ok {
		return nil, false, fmt.Errorf("%w: %s: %w", driver.ErrOffline, what, errBreakerOpen)
	}
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		b.br.release(trial)
		return nil, false, ctx.Err()
	case <-b.closed:
		b.br.release(trial)
		return nil, false, fmt.Errorf("%w: %s: driver closed", driver.ErrOffline, what)
	}
	return func() { <-b.sem }, trial, nil
}

// outcome classifies err of a call and feeds the breaker.
func (b *backend) outcome(ctx context.Context, what string, trial bool, err error) error {
	switch {
	case err == nil:
		b.answered(trial)
		return nil
	case isNotFound(err):
		b.answered(trial)
		return fmt.Errorf("%s: %w", what, driver.ErrNotFound)
	case errors.Is(err, errPrecondition):
		b.answered(trial)
		return err
	case errors.Is(err, driver.ErrCorrupt):
		b.answered(trial) // an encrypted object that does not read back
		return fmt.Errorf("%s: %w", what, err)
	case ctx.Err() != nil:
		b.br.release(trial)
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case errors.Is(err, ErrFenced):
		b.br.release(trial) // not the backend's fault
		return fmt.Errorf("%w: %s: %w", driver.ErrOffline, what, err)
	}
	b.cnt.failures.Add(1)
	b.br.failure(trial)
	return fmt.Errorf("%w: %s: %w", driver.ErrOffline, what, err)
}

// answered records a call the backend answered.
func (b *backend) answered(trial bool) {
	b.lastOK.Store(time.Now().UnixNano())
	b.br.success(trial)
}

// isNotFound reports a missing object or upload.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			return true
		}
	}
	return false
}

// put writes key, sealed if the drive is encrypted.
func (b *backend) put(ctx context.Context, key string, p []byte) error {
	return b.write(ctx, "put "+key, func(ctx context.Context) error {
		body, n := b.body(key, p)
		_, err := b.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: &key, Body: body, ContentLength: aws.Int64(n)})
		return err
	})
}

// errPrecondition is a conditional write refused: the object exists.
var errPrecondition = errors.New("driver/remote: precondition failed")

// putIfAbsent writes key only if no object has that name (If-None-Match:
// *); errPrecondition if one has. A provider that ignores the header
// writes it unconditionally.
func (b *backend) putIfAbsent(ctx context.Context, key string, p []byte) error {
	err := b.write(ctx, "put "+key, func(ctx context.Context) error {
		body, n := b.body(key, p)
		_, err := b.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: &key, Body: body, ContentLength: aws.Int64(n), IfNoneMatch: aws.String("*")})
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
			return errPrecondition
		}
		return err
	})
	if errors.Is(err, errPrecondition) {
		return errPrecondition
	}
	return err
}

// getBytes reads n bytes of key from off (n > 0) into memory: of its
// plaintext, with one GET of the chunks covering them if it is sealed.
func (b *backend) getBytes(ctx context.Context, key string, off, n int64) ([]byte, error) {
	k, aead := b.sealed(key)
	if k == nil {
		return b.getRaw(ctx, key, off, n)
	}
	soff, sn, _ := storedRange(off, n)
	var out []byte
	err := b.call(ctx, "get "+key, func(ctx context.Context) error {
		resp, err := b.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key, Range: aws.String(fmt.Sprintf("bytes=%d-%d", soff, soff+sn-1))})
		if isInvalidRange(err) {
			return errTruncated
		} else if err != nil {
			return err
		}
		defer resp.Body.Close()
		// Decrypted as it comes: no more than the plaintext is held.
		r := newOpenReader(io.NopCloser(cutBody{io.LimitReader(resp.Body, sn)}), aead, off, n)
		out = make([]byte, n)
		if _, err := io.ReadFull(r, out); err == io.EOF || err == io.ErrUnexpectedEOF {
			return errTruncated
		} else if err != nil {
			return err
		}
		return nil
	})
	return out, err
}

// errBodyCut is an answer's body cut before its Content-Length.
var errBodyCut = errors.New("response body cut short")

// cutBody reports a body cut before its Content-Length (net/http's
// io.ErrUnexpectedEOF) as errBodyCut, so that decryption does not take
// it for the object's end: that is a failed call, not a corrupt object.
type cutBody struct{ io.Reader }

func (b cutBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.ErrUnexpectedEOF {
		err = errBodyCut
	}
	return n, err
}

// getRaw reads n bytes of key from off as stored.
func (b *backend) getRaw(ctx context.Context, key string, off, n int64) ([]byte, error) {
	var out []byte
	err := b.call(ctx, "get "+key, func(ctx context.Context) error {
		resp, err := b.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key, Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		out, err = io.ReadAll(io.LimitReader(resp.Body, n))
		return err
	})
	return out, err
}

func (b *backend) head(ctx context.Context, key string) (int64, error) {
	var size int64
	err := b.call(ctx, "head "+key, func(ctx context.Context) error {
		resp, err := b.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &key})
		if err != nil {
			return err
		}
		size = b.sizeOf(key, aws.ToInt64(resp.ContentLength))
		return nil
	})
	return size, err
}

func (b *backend) delete(ctx context.Context, key string) error {
	return b.write(ctx, "delete "+key, func(ctx context.Context) error {
		_, err := b.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &key})
		return err
	})
}

// object is a listed object.
type object struct {
	Key  string
	Size int64
}

// list returns every object under prefix, in key order.
func (b *backend) list(ctx context.Context, prefix string) ([]object, error) {
	var out []object
	var token *string
	for {
		var resp *s3.ListObjectsV2Output
		err := b.call(ctx, "list "+prefix, func(ctx context.Context) error {
			var err error
			resp, err = b.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix, ContinuationToken: token})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, o := range resp.Contents {
			out = append(out, object{Key: aws.ToString(o.Key), Size: b.sizeOf(aws.ToString(o.Key), aws.ToInt64(o.Size))})
		}
		if !aws.ToBool(resp.IsTruncated) || resp.NextContinuationToken == nil {
			return out, nil
		}
		token = resp.NextContinuationToken
	}
}

// getRange opens a stream of n bytes of key from off; see rangeReader. A
// sealed object's stream reads the chunks covering the range with one
// ranged GET and decrypts them as they come.
func (b *backend) getRange(ctx context.Context, key string, off, n int64, progress time.Duration) (io.ReadCloser, error) {
	k, aead := b.sealed(key)
	if k == nil {
		r := &rangeReader{b: b, ctx: ctx, key: key, off: off, left: n, progress: progress}
		if err := r.open(); err != nil {
			return nil, err
		}
		return r, nil
	}
	soff, sn, _ := storedRange(off, n)
	r := &rangeReader{b: b, ctx: ctx, key: key, off: soff, left: sn, progress: progress, sealed: true}
	if err := r.open(); err != nil {
		return nil, err
	}
	return newOpenReader(r, aead, off, n), nil
}

// rangeReader streams a byte range of an object. Each Read must make
// progress within the progress timeout; a stream that fails or ends early
// is resumed with a ranged GET from where it stopped, a few times.
type rangeReader struct {
	b        *backend
	ctx      context.Context
	key      string
	off      int64 // next byte to read
	left     int64 // bytes still to read
	progress time.Duration
	resumes  int
	// sealed: the range covers an encrypted object's chunks and may run
	// past its end (the last chunk is asked for as if full): the answer's
	// length bounds it, and a range the object does not hold at all (416)
	// is errTruncated.
	sealed bool

	body    io.ReadCloser
	cancel  context.CancelFunc
	timer   *time.Timer
	stalled atomic.Bool
}

const maxResumes = 5

func (r *rangeReader) open() error {
	// The call timeout bounds the wait for a request slot and the answer's
	// headers: the body is bounded per Read by the progress timeout. The
	// slot is held until the headers arrive only, so streams that a slow
	// consumer leaves unread never starve other calls.
	rctx, cancel := context.WithCancel(r.ctx)
	t := time.AfterFunc(r.b.timeout, cancel)
	release, trial, err := r.b.acquire(rctx, "get "+r.key)
	if err != nil {
		t.Stop()
		cancel()
		if r.ctx.Err() == nil && rctx.Err() != nil {
			return fmt.Errorf("%w: get %s: no free request slot within %v", driver.ErrOffline, r.key, r.b.timeout)
		}
		return err
	}
	resp, err := r.b.s3.GetObject(rctx, &s3.GetObjectInput{Bucket: &r.b.bucket, Key: &r.key, Range: aws.String(fmt.Sprintf("bytes=%d-%d", r.off, r.off+r.left-1))})
	release()
	if !t.Stop() && err == nil {
		resp.Body.Close()
		err = errNoAnswer
	}
	if err != nil {
		cancel()
		if r.sealed && isInvalidRange(err) {
			err = errTruncated
		}
		return r.b.outcome(r.ctx, "get "+r.key, trial, err)
	}
	if r.sealed && resp.ContentLength != nil && *resp.ContentLength >= 0 {
		r.left = min(r.left, *resp.ContentLength)
	}
	r.b.answered(trial)
	r.body, r.cancel = resp.Body, cancel
	return nil
}

// errNoAnswer is the cause of a call cut by the call timeout.
var errNoAnswer = errors.New("no answer within the call timeout")

func (r *rangeReader) Read(p []byte) (int, error) {
	for {
		if r.left <= 0 {
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.ctx.Err(); err != nil {
				return 0, err
			}
			if err := r.open(); err != nil {
				return 0, err
			}
		}
		if int64(len(p)) > r.left {
			p = p[:r.left]
		}
		t := time.AfterFunc(r.progress, func() { r.stalled.Store(true); r.cancel() })
		n, err := r.body.Read(p)
		t.Stop()
		r.off += int64(n)
		r.left -= int64(n)
		if n > 0 && (err == nil || r.left == 0) {
			return n, nil
		}
		if err == nil {
			continue
		}
		if r.left == 0 {
			return n, io.EOF
		}
		// Cut short (EOF before the range ended, reset, stall): resume.
		r.closeBody()
		if r.ctx.Err() != nil {
			return n, r.ctx.Err()
		}
		r.b.cnt.retries.Add(1)
		if r.resumes++; r.resumes > maxResumes {
			return n, fmt.Errorf("%w: get %s: stream failed %d times: %w", driver.ErrOffline, r.key, r.resumes, err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *rangeReader) closeBody() {
	if r.body != nil {
		r.body.Close()
		r.cancel()
		r.body = nil
	}
}

func (r *rangeReader) Close() error {
	r.closeBody()
	r.left = 0
	return nil
}

// s3HeadDirect is a HEAD that bypasses the breaker and the concurrency
// cap: the probe of an open breaker.
func (b *backend) s3HeadDirect(ctx context.Context, key string) (int64, error) {
	resp, err := b.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return 0, err
	}
	return aws.ToInt64(resp.ContentLength), nil
}
