package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// storedHeaders are the standard headers kept with an object and returned
// on GET and HEAD, by their lowercase names.
var storedHeaders = []string{"cache-control", "content-disposition", "content-encoding", "content-language", "expires"}

const (
	metaPrefix     = "x-amz-meta-"
	checksumPrefix = "x-amz-checksum-"
)

// joinedHeader returns the values of a repeated header joined with ",", as
// SigV4 signs them (sigv4.HeaderList.Get) and AWS stores them.
func joinedHeader(h *fasthttp.RequestHeader, name string) string {
	vs := h.PeekAll(name)
	if len(vs) == 1 {
		return string(vs[0])
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strings.Trim(string(v), " \t")
	}
	return strings.Join(out, ",")
}

// objectMetadata collects the metadata a PutObject or CopyObject REPLACE
// stores: x-amz-meta-* and the standard headers, by lowercase name.
func (op *operation) objectMetadata() map[string]string {
	h := &op.r.fctx.Request.Header
	var m map[string]string // allocated for the first value: most PUTs have none
	var vals map[string][]string
	for k, v := range h.All() {
		if hasPrefixFold(k, metaPrefix) {
			if vals == nil {
				vals = map[string][]string{}
			}
			name := strings.ToLower(string(k))
			vals[name] = append(vals[name], strings.Trim(string(v), " \t"))
		}
	}
	if len(vals) > 0 {
		m = make(map[string]string, len(vals))
	}
	for name, vs := range vals {
		// All values of a repeated header, as SigV4 signed them and AWS stores them.
		m[name] = strings.Join(vs, ",")
	}
	for _, name := range storedHeaders {
		if name == "content-encoding" && onlyAWSChunked(h) {
			continue // transfer framing, nothing to store; no copy
		}
		if v := joinedHeader(h, name); v != "" {
			if m == nil {
				m = map[string]string{}
			}
			m[name] = v
		}
	}
	// aws-chunked is transfer framing, not the object's encoding.
	if enc, ok := m["content-encoding"]; ok {
		var kept []string
		for _, e := range strings.Split(enc, ",") {
			if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "aws-chunked") {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			delete(m, "content-encoding")
		} else {
			m["content-encoding"] = strings.Join(kept, ",")
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// onlyAWSChunked reports whether the request's Content-Encoding is one
// "aws-chunked" and nothing else, as minio-go and warp send it.
func onlyAWSChunked(h *fasthttp.RequestHeader) bool {
	vs := h.PeekAll("Content-Encoding")
	return len(vs) == 1 && bytes.EqualFold(bytes.TrimSpace(vs[0]), []byte("aws-chunked"))
}

// upload is a request body ready to stream into the engine.
type upload struct {
	quotaCap bool // opts.MaxSize is the tenant's remaining quota
	body     io.Reader
	opts     engine.PutOptions
	checksum string  // x-amz-checksum-* header name, if one was sent
	value    *string // its value, known once the body is read
}

// uploadBody prepares the request body: its decoded length, Content-MD5,
// and the flexible checksum that must be stored with it.
func (op *operation) uploadBody(maxSize, artifacts int64) (*upload, error) {
	h := &op.r.fctx.Request.Header
	size := int64(h.ContentLength())
	if op.auth.DecodedLength >= 0 {
		size = op.auth.DecodedLength
	} else if size < 0 {
		size = -1 // chunked transfer encoding
	}
	if size > maxSize {
		return nil, ErrEntityTooLarge
	}
	limit, err := op.admitUpload(size, artifacts)
	if err != nil {
		return nil, err
	}
	u := &upload{opts: engine.PutOptions{Size: size, MaxSize: maxSize}, value: new(string)}
	if limit >= 0 && limit < maxSize {
		u.opts.MaxSize, u.quotaCap = limit, true
	}
	if u.opts.MD5, err = contentMD5(h); err != nil {
		return nil, err
	}
	body := op.auth.Body(op.r.bodyStream(op.s))
	u.body = body
	if op.auth.Checksum != "" {
		u.checksum = checksumPrefix + strings.ToLower(op.auth.Checksum)
		u.opts.AfterBody = func() (map[string]string, error) {
			v := op.auth.ChecksumValue
			if v == "" {
				v = body.Trailer()[u.checksum]
			}
			if v == "" {
				return nil, ErrInvalidRequest
			}
			*u.value = v
			return map[string]string{u.checksum: v}, nil
		}
	}
	return u, nil
}

// uploaded answers a stored PutObject or UploadPart.
func (op *operation) uploaded(etag string, u *upload) {
	op.r.bodyDone = true
	var quoted [80]byte // an MD5 or multipart ETag fits: no concatenated copy
	op.r.fctx.Response.Header.SetBytesV("ETag", append(append(append(quoted[:0], '"'), etag...), '"'))
	if u.checksum != "" {
		op.r.fctx.Response.Header.Set(u.checksum, *u.value)
	}
	op.r.fctx.SetStatusCode(http.StatusOK)
}

func (op *operation) putObject() error {
	h := &op.r.fctx.Request.Header
	retention, err := op.writeRetention()
	if err != nil {
		return err
	}
	u, err := op.uploadBody(MaxPutSize, 1)
	if err != nil {
		return err
	}
	u.opts.ContentType = string(h.ContentType())
	if u.opts.ContentType == "" {
		u.opts.ContentType = "binary/octet-stream"
	}
	tags, err := op.headerTags()
	if err != nil {
		return err
	}
	u.opts.Metadata = withTags(op.objectMetadata(), tags)
	if u.opts.Condition, err = op.writeCondition(false); err != nil {
		return err
	}
	if u.opts.Versioning, err = op.versioning(); err != nil {
		return err
	}
	u.opts.Retention = retention
	ctx, cancel := context.WithTimeout(context.Background(), op.s.cfg.BodyTimeout)
	defer cancel()
	info, err := op.s.cfg.Engine.Put(ctx, op.tenant, op.bucket, op.key, u.body, u.opts)
	if err != nil {
		return u.quotaErr(err)
	}
	op.wrote(info)
	op.versionHeader(info.VersionID)
	op.expirationHeader(info)
	op.uploaded(info.ETag, u)
	return nil
}

func (op *operation) deleteObject() error {
	if err := op.deleteVersioned(); err != nil {
		return err
	}
	op.r.ev.ObjectSize = 0
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

// wrote records the artifact a request stored in its event.
func (op *operation) wrote(info engine.ArtifactInfo) {
	op.r.ev.ObjectSize, op.r.ev.ETag, op.r.ev.VersionID = info.Size, info.ETag, hex.EncodeToString(info.Version[:])
	if info.VersionID != "" {
		op.r.ev.VersionID = info.VersionID // the S3 version id of a versioned bucket's object
	}
}

// quotaErr turns a body cut off at the tenant's remaining quota into
// QuotaExceeded.
func (u *upload) quotaErr(err error) error {
	if u.quotaCap && errors.Is(err, engine.ErrTooLarge) {
		return quotaError(fmt.Errorf("%w: the upload would exceed the tenant's storage quota", ErrQuotaExceeded))
	}
	return err
}

// etagMatches reports whether an If-Match / If-None-Match list matches etag.
// If-Match compares strongly (RFC 9110 section 13.1.1: a weak tag never
// matches); If-None-Match weakly (section 13.1.2).
func etagMatches(list, etag string, strong bool) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if w, ok := strings.CutPrefix(t, "W/"); ok {
			if strong {
				continue
			}
			t = w
		}
		if t == "*" || strings.Trim(t, `"`) == etag {
			return true
		}
	}
	return false
}

// ifRange reports whether an If-Range validator still holds (RFC 9110
// section 13.1.5): a strong ETag equal to etag, or an HTTP date equal to
// the last modification. When it does not, a Range is ignored and the
// whole object served, so a resumed download never splices two versions.
func ifRange(v, etag string, modified time.Time) bool {
	if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/") {
		return v == `"`+etag+`"`
	}
	t, err := http.ParseTime(v)
	return err == nil && t.Equal(modified.Truncate(time.Second))
}

// preconditions evaluates the conditional request headers (RFC 9110 order).
// It returns 0 to go on, or 304 / 412.
func preconditions(get func(string) string, etag string, modified time.Time) int {
	modified = modified.Truncate(time.Second)
	if v := get("If-Match"); v != "" {
		if !etagMatches(v, etag, true) {
			return http.StatusPreconditionFailed
		}
	} else if v := get("If-Unmodified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && modified.After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if v := get("If-None-Match"); v != "" {
		if etagMatches(v, etag, false) {
			return http.StatusNotModified
		}
	} else if v := get("If-Modified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && !modified.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// parseRange parses a single-range Range header against size. ok is false
// when the header is absent or not a byte range (S3 then serves it all).
// Positions are digits only, of any length (RFC 9110 section 14.1.2): one
// past what int64 holds is past the end of every object.
func parseRange(v string, size int64) (off, length int64, ok bool, err error) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, size, false, nil
	}
	first, last, found := strings.Cut(spec, "-")
	if !found {
		return 0, size, false, nil
	}
	pos := func(s string) (int64, bool) {
		if s == "" || strings.Trim(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil || errors.Is(err, strconv.ErrRange) // ErrRange: n is MaxInt64
	}
	switch {
	case first == "": // suffix: the last N bytes
		n, valid := pos(last)
		if !valid {
			return 0, size, false, nil
		}
		if n == 0 || size == 0 {
			return 0, 0, true, ErrInvalidRange
		}
		n = min(n, size)
		return size - n, n, true, nil
	default:
		a, valid := pos(first)
		if !valid {
			return 0, size, false, nil
		}
		b := size - 1
		if last != "" {
			if b, valid = pos(last); !valid || b < a {
				return 0, size, false, nil
			}
		}
		if a >= size {
			return 0, 0, true, ErrInvalidRange
		}
		b = min(b, size-1)
		return a, b - a + 1, true, nil
	}
}

// responseOverrides maps response-* query parameters to the headers they set.
var responseOverrides = map[string]string{
	"response-content-type":        "Content-Type",
	"response-content-language":    "Content-Language",
	"response-expires":             "Expires",
	"response-cache-control":       "Cache-Control",
	"response-content-disposition": "Content-Disposition",
	"response-content-encoding":    "Content-Encoding",
}

// setObjectHeaders sets the headers of a GET or HEAD response. Checksums
// cover the whole object, so a partial response carries none.
func (op *operation) setObjectHeaders(info engine.ArtifactInfo, partial bool) {
	rh := &op.r.fctx.Response.Header
	var buf [80]byte // an ETag or a date fits: no string built for either
	rh.SetBytesV("ETag", append(append(append(buf[:0], '"'), info.ETag...), '"'))
	rh.SetBytesV("Last-Modified", info.Modified.UTC().AppendFormat(buf[:0], http.TimeFormat))
	rh.Set("Accept-Ranges", "bytes")
	// Objects share the node's origin with the web console: one opened
	// in a browser renders in a sandbox (no script, no form, an opaque
	// origin), so a tenant's HTML can neither act as the console nor
	// read what the browser keeps for it. Fetching it (XHR, SDKs,
	// downloads) is unaffected.
	rh.Set("Content-Security-Policy", "sandbox")
	rh.Set("X-Content-Type-Options", "nosniff")
	rh.SetContentType(info.ContentType)
	withChecksum := !partial && strings.EqualFold(string(op.r.fctx.Request.Header.Peek("x-amz-checksum-mode")), "ENABLED")
	typed := false // a checksum stored without its type is a PutObject's, of the whole object
	for k, v := range info.Metadata {
		if strings.HasPrefix(k, checksumPrefix) && !withChecksum || engine.IsReservedMetadata(k) {
			continue
		}
		rh.Set(k, v)
		typed = typed || k == checksumTypeHeader
	}
	if withChecksum && !typed && storedChecksum(info) != nil {
		rh.Set(checksumTypeHeader, "FULL_OBJECT")
	}
	setTaggingCount(rh, info.Metadata)
	op.expirationHeader(info)
	for param, header := range responseOverrides {
		if v, ok := op.query(param); ok {
			rh.Set(header, v)
		}
	}
}

// checkOverrides refuses a response-* override holding a control
// character: it would be copied into a response header (a NUL or line
// break there breaks, or splits, the response for proxies).
func (op *operation) checkOverrides() error {
	for param := range responseOverrides {
		if v, _ := op.query(param); !validHeaderValue(v) {
			return ErrInvalidArgument
		}
	}
	return nil
}

func (op *operation) getObject() error {
	fctx := op.r.fctx
	if err := op.checkOverrides(); err != nil {
		return err
	}
	a, err := op.openObject()
	if err != nil {
		return err
	}
	info := a.Info
	op.r.ev.ObjectSize = info.Size
	get := func(name string) string { return string(fctx.Request.Header.Peek(name)) }
	switch preconditions(get, info.ETag, info.Modified) {
	case http.StatusNotModified:
		fctx.Response.Header.Set("ETag", `"`+info.ETag+`"`)
		fctx.Response.Header.Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
		fctx.SetStatusCode(http.StatusNotModified)
		fctx.Response.SkipBody = true
		return nil
	case http.StatusPreconditionFailed:
		return ErrPreconditionFailed
	}
	rng := get("Range")
	if v := get("If-Range"); v != "" && !ifRange(v, info.ETag, info.Modified) {
		rng = ""
	}
	off, length, partial, err := parseRange(rng, info.Size)
	if err != nil {
		fctx.Response.Header.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
		return err
	}
	if v, ok := op.query("partNumber"); ok {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > engine.MaxPartNum || partial {
			return ErrInvalidArgument
		}
		if off, length, ok = a.PartRange(n); !ok {
			return errInvalidPartNumber
		}
		partial = a.PartCount() > 0
		if c := a.PartCount(); c > 0 {
			fctx.Response.Header.Set("x-amz-mp-parts-count", strconv.Itoa(c))
		}
	}
	op.setObjectHeaders(info, partial)
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		fctx.Response.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+length-1, info.Size))
	}
	fctx.SetStatusCode(status)
	if fctx.IsHead() {
		fctx.Response.Header.SetContentLength(int(length))
		fctx.Response.SkipBody = true
		return nil
	}
	// The body streams after the handler returns: its own context, ended
	// when fasthttp closes the stream; a body read at once (a small
	// object's) is read under the request's.
	ctx, cancel := op.ctx, context.CancelFunc(func() {})
	if !a.ReadsAtOnce(length) {
		ctx, cancel = context.WithTimeout(context.Background(), op.s.cfg.BodyTimeout)
	}
	body := &cancelOnClose{ReadCloser: a.Reader(ctx, off, length), cancel: cancel}
	// Decode the first bytes before committing to a 200: a read that
	// cannot start gets a proper error response, not a dropped connection.
	// The buffer is pooled, and small for a small body (zeroing a fresh
	// 64 KiB one for a 4 KiB object was 5% of a small GET's CPU, pprof).
	br, release := acquireBodyReader(body, length)
	if length > 0 {
		if _, err := br.Peek(1); err != nil {
			body.Close()
			release()
			fctx.Response.Header.Reset()
			fctx.Response.Header.DisableNormalizing()
			fctx.Response.Header.Set("x-amz-request-id", op.r.id)
			return err
		}
	}
	op.r.sent = &sentCounter{Reader: br, Closer: body, release: release}
	fctx.SetBodyStream(op.r.sent, int(length))
	return nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// WriteTo is the stream's own WriteTo (an artifact's Reader has one).
func (c *cancelOnClose) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.ReadCloser.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c.ReadCloser})
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

type copyObjectResult struct {
	XMLName      xml.Name `xml:"CopyObjectResult"`
	Xmlns        string   `xml:"xmlns,attr"`
	LastModified string   `xml:"LastModified"`
	ETag         string   `xml:"ETag"`
	ChecksumType string   `xml:"ChecksumType,omitempty"`
	checksumValues
}

// copyChecksum prepares the checksum of a CopyObject's copy: S3 computes
// it from the copied bytes, with the algorithm the request names
// (x-amz-checksum-algorithm), else the source's, and none for a source
// without one. It is a FULL_OBJECT checksum (the copy is one part, even
// of a multipart source), stored as a PutObject's; the source's checksum
// entries (a composite one, its algorithm and type) are not carried
// (review 26c C3). It streams: opts.Digest sees the bytes as they are
// copied, and the value is stored by opts.AfterBody and set in res.
func copyChecksum(h *fasthttp.RequestHeader, src engine.ArtifactInfo, opts *engine.CopyOptions, res *copyObjectResult) error {
	alg := strings.ToLower(string(h.Peek(checksumAlgorithmHeader)))
	if alg == "" {
		alg = checksumAlgorithm(src.Metadata)
	}
	if alg == "" {
		return nil
	}
	sum, err := sigv4.NewChecksum(alg)
	if err != nil {
		return withMessage(ErrInvalidRequest, "Value for x-amz-checksum-algorithm header is invalid.")
	}
	opts.Digest = sum
	opts.AfterBody = func() (map[string]string, error) {
		v := base64.StdEncoding.EncodeToString(sum.Sum(nil))
		res.ChecksumType = "FULL_OBJECT"
		res.set(checksumPrefix+alg, v)
		return map[string]string{checksumPrefix + alg: v}, nil
	}
	return nil
}

// checksumAlgorithm returns the algorithm of the checksum stored with an
// object ("crc32", ...), "" if it has none.
func checksumAlgorithm(meta map[string]string) string {
	for _, alg := range []string{"crc32", "crc32c", "crc64nvme", "sha1", "sha256"} {
		if _, ok := meta[checksumPrefix+alg]; ok {
			return alg
		}
	}
	return ""
}

// withoutChecksums returns an object's metadata as a copy carries it:
// without reserved entries, nor its checksum's (copyChecksum).
func withoutChecksums(meta map[string]string) map[string]string {
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		if !strings.HasPrefix(k, checksumPrefix) && !engine.IsReservedMetadata(k) {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (op *operation) copyObject() error {
	h := &op.r.fctx.Request.Header
	srcBucket, srcKey, err := op.copySource()
	if err != nil {
		return err
	}
	if err := op.drainBody(0); err != nil {
		return err
	}
	opts := engine.CopyOptions{SourceVersionID: op.copySourceVersion()}
	if opts.Versioning, err = op.versioning(); err != nil {
		return err
	}
	if opts.Retention, err = op.writeRetention(); err != nil {
		return err
	}
	if opts.Condition, err = op.writeCondition(false); err != nil {
		return err
	}
	tagDirective := string(h.Peek("x-amz-tagging-directive"))
	switch tagDirective {
	case "", "COPY":
		if len(h.Peek("x-amz-tagging")) > 0 {
			return errTaggingDirective
		}
	case "REPLACE":
		if opts.Reserved, err = op.headerTags(); err != nil {
			return err
		}
	default:
		return errTaggingDirective
	}
	switch d := string(h.Peek("x-amz-metadata-directive")); d {
	case "", "COPY":
		// A storage class makes a copy onto itself legal (aws s3 cp
		// --storage-class, rclone settier), as on S3: every class is
		// stored alike, so it rewrites the object as it is.
		if srcBucket == op.bucket && srcKey == op.key && tagDirective != "REPLACE" && opts.SourceVersionID == "" && len(h.Peek("x-amz-storage-class")) == 0 {
			return errCopyToItself
		}
	case "REPLACE":
		opts.ReplaceMetadata = true
		opts.ContentType = string(h.ContentType())
		if opts.ContentType == "" {
			opts.ContentType = "binary/octet-stream"
		}
		opts.Metadata = op.objectMetadata()
	default:
		return ErrInvalidArgument
	}
	res := copyObjectResult{Xmlns: s3Namespace}
	if a, err := op.s.cfg.Engine.OpenVersion(op.ctx, op.tenant, srcBucket, srcKey, opts.SourceVersionID); err != nil {
		var dm *engine.DeleteMarkerError
		if errors.As(err, &dm) && dm.ByVersion {
			return errCopyFromMarker
		}
		return err
	} else {
		// The copy is of the version checked here (not one a
		// concurrent write put there since), its metadata that
		// version's but for the checksum, computed as it streams.
		opts.Source = a
		if !opts.ReplaceMetadata {
			opts.ReplaceMetadata, opts.ContentType, opts.Metadata = true, a.Info.ContentType, withoutChecksums(a.Info.Metadata)
		}
		if err := copyChecksum(h, a.Info, &opts, &res); err != nil {
			return err
		}
		get := func(name string) string { return string(h.Peek("x-amz-copy-source-" + name)) }
		if preconditions(get, a.Info.ETag, a.Info.Modified) != 0 {
			return ErrPreconditionFailed
		}
		if a.Info.Size > MaxPutSize {
			return errCopyTooLarge
		}
		if _, err := op.admitUpload(a.Info.Size, 1); err != nil {
			return err
		}
		if tagDirective != "REPLACE" {
			// The source's tags, as AWS copies them.
			if v, ok := a.Info.Metadata[tagsEntry]; ok {
				opts.Reserved = map[string]string{tagsEntry: v}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), op.s.cfg.BodyTimeout)
	defer cancel()
	info, err := op.s.cfg.Engine.Copy(ctx, op.tenant, srcBucket, srcKey, op.bucket, op.key, opts)
	if err != nil {
		return err
	}
	op.r.ev.Source = srcBucket + "/" + srcKey
	op.wrote(info)
	op.versionHeader(info.VersionID)
	op.expirationHeader(info)
	if opts.SourceVersionID != "" {
		op.r.fctx.Response.Header.Set("x-amz-copy-source-version-id", opts.SourceVersionID)
	}
	res.LastModified, res.ETag = isoTime(info.Modified), `"`+info.ETag+`"`
	writeXML(op.r.fctx, http.StatusOK, res)
	return nil
}
