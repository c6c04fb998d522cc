package s3

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// rateReader reads a request body from the connection, failing with
// RequestTimeout when fewer than min bytes arrive in a window of time spent
// waiting for them, and with IncompleteBody when the connection fails
// otherwise (closed early, broken HTTP chunked framing). Only time blocked
// in Read counts: a server slow to consume the body (a busy disk) never
// fails its client. It counts the bytes read.
type rateReader struct {
	r      io.Reader
	conn   net.Conn // its read deadline ends the window
	window time.Duration
	min    int64
	got    int64         // bytes in the current window
	waited time.Duration // time spent in Read in the current window
	total  int64         // bytes read, in bytes
	// shape, if set, waits after each read for the tenant's inbound
	// bandwidth (Bandwidth); that wait is the server's, not counted
	// against the client's minimum rate.
	shape func(n int) error
	// until, if set, ends every read by then too: a POST form's fields,
	// read before the form is authenticated, get no more time than
	// headers (postObject).
	until time.Time
}

func (b *rateReader) Read(p []byte) (int, error) {
	start := time.Now()
	if b.conn != nil {
		deadline := start.Add(b.window - b.waited)
		if !b.until.IsZero() && b.until.Before(deadline) {
			deadline = b.until
		}
		b.conn.SetReadDeadline(deadline) // a timer update, no system call
	}
	n, err := b.r.Read(p)
	b.waited += time.Since(start)
	b.total += int64(n)
	if n > 0 && b.shape != nil {
		if serr := b.shape(n); serr != nil && (err == nil || err == io.EOF) {
			return n, fmt.Errorf("s3: request body: bandwidth: %w", serr)
		}
	}
	if b.got += int64(n); b.got >= b.min {
		b.got, b.waited = 0, 0
	}
	switch {
	case err == nil, err == io.EOF:
	case isTimeout(err):
		err = fmt.Errorf("s3: request body: fewer than %d bytes in %v: %w", b.min, b.window, ErrRequestTimeout)
	default:
		// The connection ended early or its chunked framing is broken:
		// the client's doing, not a server error.
		err = fmt.Errorf("s3: request body: %w: %w", ErrIncompleteBody, err)
	}
	return n, err
}

// isTimeout reports whether err is a network timeout. (Apart from Read
// so that its error variable escapes only on this path.)
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bodyStream returns the request body as received, read under the
// minimum rate. Only authenticated requests read their bodies.
func (r *request) bodyStream(s *Server) io.Reader {
	if r.body == nil {
		r.body = &rateReader{r: r.fctx.RequestBodyStream(), conn: r.fctx.Conn(), window: s.cfg.BodyRateWindow, min: s.cfg.BodyRateMin, shape: r.shapeIn}
	}
	return r.body
}

// hasBody reports whether a request declares a body.
func hasBody(h *fasthttp.RequestHeader) bool {
	n := h.ContentLength()
	return n > 0 || n == -1
}

// readXMLBody reads and verifies a small XML request body into v: its
// signature or x-amz-checksum-* as the request declared, and its
// Content-MD5 if one was sent.
func (op *operation) readXMLBody(v any) error {
	want, err := contentMD5(&op.r.fctx.Request.Header)
	if err != nil {
		return err
	}
	body := op.auth.Body(op.r.bodyStream(op.s))
	data, err := io.ReadAll(io.LimitReader(body, maxXMLBody+1))
	if err != nil {
		return err
	}
	if len(data) > maxXMLBody {
		return ErrMalformedXML // the rest is unread: the connection closes
	}
	op.r.bodyDone = true
	if sum := md5.Sum(data); want != nil && !bytes.Equal(sum[:], want) {
		return ErrBadDigest
	}
	if err := xml.Unmarshal(data, v); err != nil {
		return ErrMalformedXML
	}
	return nil
}

// contentMD5 returns the request's Content-MD5, nil if it has none, or
// ErrInvalidDigest if it is not the base64 of 16 bytes (an empty header
// included).
func contentMD5(h *fasthttp.RequestHeader) ([]byte, error) {
	v := h.Peek("Content-MD5")
	if len(v) == 0 {
		if hasHeader(h, "Content-MD5") {
			return nil, ErrInvalidDigest
		}
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(string(v))
	if err != nil || len(b) != md5.Size {
		return nil, ErrInvalidDigest
	}
	return b, nil
}

// hasHeader reports whether the request has the header name, even empty.
func hasHeader(h *fasthttp.RequestHeader, name string) bool {
	for k := range h.All() {
		if strings.EqualFold(string(k), name) {
			return true
		}
	}
	return false
}

// drainBody reads and verifies a body the operation ignores, up to limit.
func (op *operation) drainBody(limit int64) error {
	if op.r.fctx.Request.Header.ContentLength() == 0 {
		op.r.bodyDone = true
		return nil
	}
	body := op.auth.Body(op.r.bodyStream(op.s))
	n, err := io.Copy(io.Discard, io.LimitReader(body, limit+1))
	if err != nil {
		return err
	}
	if n > limit {
		return ErrMalformedXML
	}
	op.r.bodyDone = true
	return nil
}
