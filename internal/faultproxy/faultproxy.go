// Package faultproxy is a fault-injecting HTTP proxy for tests: it forwards
// requests to one backend (an S3 server) and, as told at run time, adds
// latency, answers 5xx or 429 itself, resets connections (before forwarding,
// or after forwarding so that the request took effect but its answer is
// lost), refuses everything (a full outage) or trickles response bodies.
// It listens on loopback only and is for tests only; it imports nothing of
// this module.
package faultproxy

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Faults says what the proxy does to each request. The rates are
// probabilities from 0 to 1, drawn independently per request in this
// order: Reset, then Error, then Throttle, then LostAnswer.
type Faults struct {
	// Latency is added before each request is forwarded.
	Latency time.Duration
	// ResetRate: the connection is reset (TCP RST) before the request is
	// forwarded.
	ResetRate float64
	// ErrorRate: answered with ErrorStatus (default 503, S3 code
	// ServiceUnavailable; 500 InternalError) without forwarding.
	ErrorRate   float64
	ErrorStatus int
	// ThrottleRate: answered 503 SlowDown or 429 TooManyRequests (half
	// each) without forwarding.
	ThrottleRate float64
	// LostAnswerRate: the request is forwarded and takes effect, then the
	// connection is reset instead of answering.
	LostAnswerRate float64
	// CutRate: the request is forwarded and the answer's body is cut
	// after about half of it (the connection is dropped).
	CutRate float64
	// Outage: every connection is reset as soon as it is accepted.
	Outage bool
	// TrickleBPS, if positive, sends response bodies at about this many
	// bytes per second.
	TrickleBPS int
	// Hang: requests are held (not forwarded, not answered) until the
	// client gives up or Hang is cleared.
	Hang bool
}

// Counts are what the proxy has done.
type Counts struct {
	Requests, Forwarded, Resets, Errors, Throttled, LostAnswers, Cuts, Refused int64
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	// URL is the proxy's base URL, "http://127.0.0.1:port".
	URL string

	ln      net.Listener
	srv     *http.Server
	rp      *httputil.ReverseProxy
	mu      sync.Mutex
	faults  Faults
	rng     *rand.Rand
	changed chan struct{} // closed and replaced on every Set

	requests, forwarded, resets, errs, throttled, lost, cuts, refused atomic.Int64
}

// Start starts a proxy to target ("http://host:port") on a free loopback
// port. seed makes the fault draws reproducible.
func Start(target string, seed uint64) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: target: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{URL: "http://" + ln.Addr().String(), rng: rand.New(rand.NewPCG(seed, 0xfa17)), changed: make(chan struct{})}
	p.ln = &outageListener{Listener: ln, p: p}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // the signature covers Host
		},
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true},
		ModifyResponse: func(resp *http.Response) error {
			if bps := p.Faults().TrickleBPS; bps > 0 {
				resp.Body = &trickle{ReadCloser: resp.Body, bps: bps}
			}
			return nil
		},
		ErrorLog: nil,
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 30 * time.Second}
	go p.srv.Serve(p.ln)
	return p, nil
}

// Set replaces the faults; requests already held by Hang re-check.
func (p *Proxy) Set(f Faults) {
	p.mu.Lock()
	p.faults = f
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// Faults returns the faults in force.
func (p *Proxy) Faults() Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// Counts returns what the proxy has done so far.
func (p *Proxy) Counts() Counts {
	return Counts{p.requests.Load(), p.forwarded.Load(), p.resets.Load(), p.errs.Load(), p.throttled.Load(), p.lost.Load(), p.cuts.Load(), p.refused.Load()}
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p.Set(Faults{})
	p.srv.Shutdown(ctx)
	return p.srv.Close()
}

// draw returns the faults and which of the rate-based faults hit this
// request.
func (p *Proxy) draw() (f Faults, reset, fail, throttle, lose, cut, coin bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f = p.faults
	reset = p.rng.Float64() < f.ResetRate
	fail = p.rng.Float64() < f.ErrorRate
	throttle = p.rng.Float64() < f.ThrottleRate
	lose = p.rng.Float64() < f.LostAnswerRate
	cut = p.rng.Float64() < f.CutRate
	coin = p.rng.IntN(2) == 0
	return
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	for {
		p.mu.Lock()
		hang, ch := p.faults.Hang, p.changed
		p.mu.Unlock()
		if !hang {
			break
		}
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
	}
	f, reset, fail, throttle, lose, cut, coin := p.draw()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	switch {
	case f.Outage:
		p.refused.Add(1)
		resetConn(w)
		return
	case reset:
		p.resets.Add(1)
		resetConn(w)
		return
	case fail:
		p.errs.Add(1)
		status, code := f.ErrorStatus, "ServiceUnavailable"
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		if status == http.StatusInternalServerError {
			code = "InternalError"
		}
		s3Error(w, r, status, code)
		return
	case throttle:
		p.throttled.Add(1)
		if coin {
			s3Error(w, r, http.StatusServiceUnavailable, "SlowDown")
		} else {
			s3Error(w, r, http.StatusTooManyRequests, "TooManyRequests")
		}
		return
	case lose:
		p.lost.Add(1)
		p.forwarded.Add(1)
		rec := &discard{h: http.Header{}}
		p.rp.ServeHTTP(rec, r)
		resetConn(w)
		return
	case cut:
		p.cuts.Add(1)
		p.forwarded.Add(1)
		p.rp.ServeHTTP(&cutter{ResponseWriter: w}, r)
		return
	}
	p.forwarded.Add(1)
	p.rp.ServeHTTP(w, r)
}

// s3Error answers with an S3 error document, after draining a little of
// the request body so the client sees the answer rather than a broken pipe
// where it can.
func s3Error(w http.ResponseWriter, r *http.Request, status int, code string) {
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by faultproxy</Message><Resource>%s</Resource></Error>`, code, r.URL.Path)
}

// resetConn closes the client connection with a TCP RST.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	c, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// cutter passes on about half of a response body, then drops the
// connection.
type cutter struct {
	http.ResponseWriter
	left int64 // bytes still passed on; -1 until the headers are written
	set  bool
}

func (c *cutter) WriteHeader(status int) {
	n, _ := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64)
	c.left, c.set = n/2, true
	c.ResponseWriter.WriteHeader(status)
}

func (c *cutter) Write(b []byte) (int, error) {
	if !c.set {
		c.WriteHeader(http.StatusOK)
	}
	if int64(len(b)) > c.left {
		c.ResponseWriter.Write(b[:c.left])
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	c.left -= int64(len(b))
	return c.ResponseWriter.Write(b)
}

// discard is a ResponseWriter that drops the answer.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// outageListener resets connections accepted during an outage.
type outageListener struct {
	net.Listener
	p *Proxy
}

func (l *outageListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.p.Faults().Outage {
			return c, nil
		}
		l.p.refused.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

// trickle slows a response body to about bps bytes per second.
type trickle struct {
	io.ReadCloser
	bps int
}

func (t *trickle) Read(b []byte) (int, error) {
	chunk := max(t.bps/10, 1)
	if len(b) > chunk {
		b = b[:chunk]
	}
	n, err := t.ReadCloser.Read(b)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(t.bps))
	return n, err
}
