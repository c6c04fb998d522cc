package s3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// request is one request in flight. It must not outlive the handler, but
// for the response body stream.
type request struct {
	fctx     *fasthttp.RequestCtx
	id       string
	start    time.Time
	bodyDone bool // the request body was read to its end
	keepCtx  bool // a response body stream owns the context
	ev       RequestEvent
	auth     *sigv4.Result     // set by authorizeRoot for admin requests
	body     *rateReader       // the request body as read, once asked for
	sent     *sentCounter      // the response body stream, if any
	shapeIn  func(n int) error // waits for the tenant's inbound bandwidth (Bandwidth), if any
	stopIn   func()            // ends shapeIn's context; called by end

	// deadline is the request's context, made by handle and passed to
	// every call from there as ctx (never read from here): it lives as
	// long as the request, and so it costs no allocation of its own.
	deadline lazyDeadline
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	// Upper-case hex in one allocation (hex.EncodeToString then
	// strings.ToUpper took two).
	const digits = "0123456789ABCDEF"
	var id [2 * len(b)]byte
	for i, c := range b {
		id[2*i], id[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(id[:])
}

// addrString returns a.String() in one allocation for a TCP address (its
// String takes two or three).
func addrString(a net.Addr) string {
	t, ok := a.(*net.TCPAddr)
	if !ok || t.Zone != "" {
		return a.String()
	}
	ip, ok := netip.AddrFromSlice(t.IP)
	if !ok || t.Port < 0 || t.Port > 0xffff {
		return a.String()
	}
	var buf [64]byte
	return string(netip.AddrPortFrom(ip.Unmap(), uint16(t.Port)).AppendTo(buf[:0]))
}

// begin starts serving fctx's request.
func (s *Server) begin(fctx *fasthttp.RequestCtx) *request {
	r := &request{fctx: fctx, id: newRequestID(), start: time.Now()}
	// S3 clients read x-amz-meta-* names as sent: keep our spelling.
	fctx.Response.Header.DisableNormalizing()
	fctx.Response.Header.Set("x-amz-request-id", r.id)
	r.ev = RequestEvent{Time: r.start, Node: s.cfg.Node, RequestID: r.id, Operation: unknownOperation, ObjectSize: -1,
		RemoteAddr: addrString(fctx.RemoteAddr()), UserAgent: string(fctx.UserAgent())}
	return r
}

func (s *Server) handle(fctx *fasthttp.RequestCtx) {
	r := s.begin(fctx)
	r.deadline.deadline = r.start.Add(s.cfg.RequestTimeout)
	ctx := &r.deadline
	pf := s.takePreflight(ctx, fctx)
	err := s.serve(ctx, r, r.deadline.stop, pf)
	if err != nil {
		s.writeError(r, err)
	}
	if !r.keepCtx {
		r.deadline.stop()
	}
	s.end(r)
}

// end finishes a request whose response is set: it closes the connection
// if the request body was not read to its end, and hands the request's
// event to the Observer (for a streamed response, once the stream is
// closed, with the bytes actually sent).
func (s *Server) end(r *request) {
	fctx := r.fctx
	if hasBody(&fctx.Request.Header) && !r.bodyDone {
		// Never let an unread body be parsed as the next request, and
		// never wait for it: answer, then close.
		s.closeAfter(r)
	}
	if r.body != nil {
		r.ev.BytesIn = r.body.total
	}
	if r.stopIn != nil {
		r.stopIn()
	}
	if bw, ok := s.cfg.Limiter.(Bandwidth); ok && r.sent != nil && r.ev.Tenant != "" {
		// The body streams after the handler returned: the waits get
		// a context of their own, bounded as the stream is (its timer
		// made only if a wait needs it).
		r.sent.bw, r.sent.tenant = bw, r.ev.Tenant
		r.sent.deadline.deadline = time.Now().Add(s.cfg.BodyTimeout)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) { // the arguments cost allocations
		s.log.Debug("request", "id", r.id, "method", string(fctx.Method()), "status", fctx.Response.StatusCode(), "took", time.Since(r.start))
	}
	if s.cfg.Observer == nil {
		return
	}
	r.ev.Status = fctx.Response.StatusCode()
	r.ev.Latency = time.Since(r.start)
	switch {
	case fctx.IsHead():
		r.ev.BytesOut = 0
	case r.sent != nil:
		// The stream may still add to the event (DeleteObjects' keys).
		r.sent.done = func(n int64) {
			r.ev.BytesOut = n
			s.cfg.Observer.ObserveRequest(&r.ev)
		}
		return
	case !fctx.Response.IsBodyStream():
		r.ev.BytesOut = int64(len(fctx.Response.Body()))
	}
	s.cfg.Observer.ObserveRequest(&r.ev)
}

// sentCounter counts the bytes of a response body stream that the server
// took to send, and reports them when the stream is closed (fasthttp
// closes it when the response is written or the write failed). A client
// that goes away mid-body is charged what was taken, at most the server's
// write buffer (64 KiB) more than what reached the socket.
type sentCounter struct {
	io.Reader
	io.Closer
	n      int64
	done   func(n int64) // set by end; called once on Close
	bw     Bandwidth     // set by end: shapes the stream to tenant's outbound bandwidth
	tenant string
	// deadline is the context of bw's waits (the stream's own: its
	// BodyTimeout), stopped on Close; kept here, it costs no allocation.
	deadline lazyDeadline
	release  func() // if set, called once on Close after Closer
}

func (c *sentCounter) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.n += int64(n)
	if n > 0 && c.bw != nil {
		if serr := c.bw.WaitOut(&c.deadline, c.tenant, n); serr != nil {
			return n, serr
		}
	}
	return n, err
}

// WriteTo passes the stream to w in the stream's own pieces when it can
// (an artifact's decoded blocks: a few large socket writes, not one per
// write buffer), counting and shaping them as Read does; fasthttp prefers
// it to Read.
func (c *sentCounter) WriteTo(w io.Writer) (int64, error) {
	wt, ok := c.Reader.(io.WriterTo)
	if !ok {
		return io.Copy(w, struct{ io.Reader }{c}) // Read's path, without this method
	}
	return wt.WriteTo(sentWriter{w: w, c: c})
}

// sentWriter is a sentCounter's view of the writer its WriteTo writes to.
type sentWriter struct {
	w io.Writer
	c *sentCounter
}

func (s sentWriter) Write(p []byte) (int, error) {
	if s.c.bw != nil {
		if err := s.c.bw.WaitOut(&s.c.deadline, s.c.tenant, len(p)); err != nil {
			return 0, err
		}
	}
	n, err := s.w.Write(p)
	s.c.n += int64(n)
	return n, err
}

func (c *sentCounter) Close() error {
	if c.bw != nil {
		c.deadline.stop()
	}
	err := c.Closer.Close()
	if c.release != nil {
		c.release()
		c.release = nil
	}
	if c.done != nil {
		c.done(c.n)
		c.done = nil
	}
	return err
}

// lingerTimeout is how long a connection closed with its request body
// unread keeps reading (and discarding) after the answer was sent, so
// that the client reads the answer instead of a reset; lingerIdle ends it
// sooner when nothing more arrives, and maxDrain caps the bytes read.
const (
	lingerTimeout = 2 * time.Second
	lingerIdle    = 500 * time.Millisecond
	maxDrain      = 8 << 20
)

// closeAfter makes the request's connection close after its answer
// without reading the rest of its body first. The answer is written at
// once; then the server shuts its side down and discards what the client
// still sends for at most lingerTimeout (a "lingering close": closing a
// socket with unread input makes the kernel send a reset, which can
// destroy the answer before the client read it).
func (s *Server) closeAfter(r *request) {
	fctx := r.fctx
	fctx.Response.SetConnectionClose()
	if fctx.Response.IsBodyStream() {
		return // rare (a GET with a body): fasthttp writes it, then closes
	}
	if fctx.IsHead() {
		fctx.Response.SkipBody = true
	}
	var answer bytes.Buffer
	w := bufio.NewWriter(&answer)
	if err := fctx.Response.Write(w); err != nil || w.Flush() != nil {
		return
	}
	raw := fctx.Conn()
	fctx.HijackSetNoResponse(true)
	fctx.Hijack(func(c net.Conn) {
		c.SetWriteDeadline(time.Now().Add(s.cfg.HeaderTimeout))
		if _, err := c.Write(answer.Bytes()); err != nil {
			return
		}
		if cw, ok := raw.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		end := time.Now().Add(lingerTimeout)
		buf := make([]byte, 16<<10)
		for n := 0; n < maxDrain; {
			// A client that sends nothing more has read the answer by now.
			d := time.Now().Add(lingerIdle)
			if d.After(end) {
				d = end
			}
			c.SetReadDeadline(d)
			m, err := c.Read(buf)
			if err != nil {
				return
			}
			n += m
		}
	})
}

// bodyReaders pool the buffered readers GET bodies stream through: one of
// 4 KiB for bodies up to 4 KiB, one of 64 KiB for the others. Allocating
// (and zeroing) one per GET was a sixth of the bytes a 4 KiB GET allocated
// (pprof, bench/RESULTS.md).
var bodyReaders [2]sync.Pool

// acquireBodyReader returns a pooled buffered reader of r for a body of
// length bytes, and the function that gives it back once r is closed.
func acquireBodyReader(r io.Reader, length int64) (*bufio.Reader, func()) {
	i, size := 0, 4<<10
	if length > 4<<10 {
		i, size = 1, 64<<10
	}
	br, _ := bodyReaders[i].Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(r, size)
	} else {
		br.Reset(r)
	}
	return br, func() {
		br.Reset(nil)
		bodyReaders[i].Put(br)
	}
}
