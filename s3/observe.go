package s3

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/vaultaire/vaultaire/tenant"
)

// RequestEvent describes one served request. The server hands it to the
// configured Observer once the handler has returned: metrics and the
// access-event log are built from it. Byte counts are what was actually
// read and sent: BytesIn counts the request body bytes the server read
// (as received, aws-chunked framing included; none for a request refused
// before its body), BytesOut the response body bytes it sent (for a
// download cut off mid-body, what was taken to send, never the declared
// length). For a streamed download Latency is the time to the response
// headers, and the event is handed over when the body ends.
type RequestEvent struct {
	Time       time.Time     `json:"time"` // when the request arrived
	Node       string        `json:"node"`
	RequestID  string        `json:"request_id"`
	Tenant     string        `json:"tenant,omitempty"`     // "" when not authenticated; the bucket's owner for an anonymous read
	Anonymous  bool          `json:"anonymous,omitempty"`  // an unsigned read of a public bucket (anonymous.go), served as Tenant
	Operation  string        `json:"operation"`            // its route (routes.go), such as "PutObject"; "Unknown" if no route serves it
	Bucket     string        `json:"bucket,omitempty"`     // container
	Key        string        `json:"key,omitempty"`        // artifact key; for Admin* operations, the tenant acted on
	BytesIn    int64         `json:"bytes_in"`             // request body bytes read
	BytesOut   int64         `json:"bytes_out"`            // response body bytes sent
	ObjectSize int64         `json:"object_size"`          // size of the artifact read or written; -1 if none
	Status     int           `json:"status"`               // HTTP status
	ErrorCode  string        `json:"error_code,omitempty"` // S3 error code, "" on success
	Latency    time.Duration `json:"latency_ns"`
	RemoteAddr string        `json:"client"`
	UserAgent  string        `json:"user_agent,omitempty"`
	ETag       string        `json:"etag,omitempty"`       // of an artifact written
	VersionID  string        `json:"version_id,omitempty"` // version written or deleted (hex)
	Source     string        `json:"source,omitempty"`     // CopyObject, UploadPartCopy: "bucket/key" copied from
	Keys       []string      `json:"keys,omitempty"`       // DeleteObjects: the keys deleted
}

// Mutation reports whether the event changed stored state: a successful
// operation whose route says it changes state (put, copy, delete,
// completed multipart upload, bucket and tenant changes).
func (e *RequestEvent) Mutation() bool { return e.Status < 300 && mutations[e.Operation] }

// RateLimited reports whether the request was refused by the Limiter.
func (e *RequestEvent) RateLimited() bool { return e.ErrorCode == ErrSlowDown.Code }

// QuotaRefused reports whether the request was refused by the Quota.
func (e *RequestEvent) QuotaRefused() bool { return e.ErrorCode == errQuota.Code }

// Observer receives the event of every request. ObserveRequest is called
// on the request's goroutine and must not block; it must not keep ev.
type Observer interface {
	ObserveRequest(ev *RequestEvent)
}

// Observers fans events out to several observers in order.
type Observers []Observer

// ObserveRequest calls every observer.
func (os Observers) ObserveRequest(ev *RequestEvent) {
	for _, o := range os {
		o.ObserveRequest(ev)
	}
}

// Limiter decides whether a tenant may make another request now. Allow
// is called once per authenticated request before its body is read; it
// may wait a little (a shaping limiter) but must return when ctx ends.
// When it refuses, retryAfter says when to try again.
type Limiter interface {
	Allow(ctx context.Context, tenant string) (retryAfter time.Duration, ok bool)
}

// Bandwidth is implemented by a Limiter that also shapes tenants' bytes
// per second. The server calls WaitIn with the size of each piece of an
// authenticated request body it has read, and WaitOut with each piece of
// a response body it is about to send; they delay (never refuse) until
// the bytes fit the tenant's bandwidth, and return early with ctx's error.
type Bandwidth interface {
	WaitIn(ctx context.Context, tenant string, n int) error
	WaitOut(ctx context.Context, tenant string, n int) error
}

// Quota admits new bytes and artifacts for a tenant. Admit is called
// before an upload's body is read with its declared size (-1 if unknown)
// and the number of artifacts it may add (1 for a put or copy, 0 for a
// part). It returns an error wrapping ErrQuotaExceeded to refuse, or the
// most bytes the upload may store (-1: no limit), which caps a body whose
// size was not declared, and a release function that the server calls
// once when the request has ended (the upload stored or failed), so that
// the Quota can hold what it admitted against concurrent uploads until
// the write's usage is recorded.
type Quota interface {
	Admit(ctx context.Context, tenant string, bytes, artifacts int64) (maxBytes int64, release func(), err error)
}

// ErrQuotaExceeded is returned by Quota implementations (wrapped, with a
// message for the client) to refuse an upload. It is
// tenant.ErrQuotaExceeded, which tenant.Meter returns.
var ErrQuotaExceeded = tenant.ErrQuotaExceeded

// quotaError carries the Quota's message to the client.
func quotaError(err error) *Error {
	return withMessage(errQuota, err.Error())
}

// isQuotaError reports whether err is the Quota's refusal. (Apart from
// admitUpload so that its error variable escapes only on this path.)
func isQuotaError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == errQuota.Code
}

// admitUpload is admit for an upload of size bytes (-1: unknown) adding
// artifacts. When the Quota refuses a whole object (artifacts 1) of known
// size and op.key already holds one, it admits the difference instead:
// an overwrite replaces what the key stores (a delete racing with it can
// make the tenant overshoot by the replaced size). The limit returned then
// counts the replaced bytes back in.
func (op *operation) admitUpload(size, artifacts int64) (int64, error) {
	limit, err := op.admit(size, artifacts)
	if err == nil || artifacts != 1 || size < 0 || !isQuotaError(err) {
		return limit, err
	}
	old, herr := op.s.cfg.Engine.Head(op.ctx, op.tenant, op.bucket, op.key)
	if herr != nil {
		return limit, err
	}
	limit, nerr := op.admit(max(0, size-old.Size), 0)
	if nerr != nil {
		return 0, err
	}
	if limit >= 0 {
		limit += old.Size
	}
	return limit, nil
}

// releaseQuota releases what admit reserved.
func (op *operation) releaseQuota() {
	for _, release := range op.release {
		release()
	}
	op.release = nil
}

// slowDown is the answer to a rate-limited request.
func slowDown(r *request, retryAfter time.Duration) error {
	secs := max(1, int((retryAfter+time.Second-1)/time.Second))
	r.fctx.Response.Header.Set("Retry-After", strconv.Itoa(secs))
	return ErrSlowDown
}

// admit asks the Quota whether the tenant may add bytes and artifacts,
// and returns how many bytes the upload may add at most (-1: no limit).
// What it admits stays reserved until dispatch returns (releaseQuota).
func (op *operation) admit(bytes, artifacts int64) (int64, error) {
	q := op.s.cfg.Quota
	if q == nil {
		return -1, nil
	}
	limit, release, err := q.Admit(op.ctx, op.tenant, bytes, artifacts)
	if release != nil {
		op.release = append(op.release, release)
	}
	if err != nil {
		if errors.Is(err, ErrQuotaExceeded) {
			return 0, quotaError(err)
		}
		return 0, err
	}
	return limit, nil
}
