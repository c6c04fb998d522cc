package main

import (
	"bytes"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// TestBareServer checks that the bare server answers GETs with the size
// named in the path and reads PUT bodies whole, as bench/limit.sh expects.
func TestBareServer(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	s := newBareServer([]int{4 << 10, 1 << 20, 32 << 10})
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	for _, tc := range []struct {
		method, path string
		body         []byte
		status, size int
	}{
		{"GET", "/limit/obj-4096?X-Amz-Signature=x", nil, 200, 4096},
		{"GET", "/limit/obj-1048576", nil, 200, 1 << 20},
		{"GET", "/limit/obj-32768", nil, 200, 32 << 10},
		{"GET", "/limit/obj-7", nil, 404, -1},
		{"PUT", "/limit/obj-4096", bytes.Repeat([]byte("y"), 100_000), 200, 0},
		{"GET", "/other", nil, 404, -1},
	} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://bare" + tc.path)
		req.Header.SetMethod(tc.method)
		req.SetBody(tc.body)
		if err := c.Do(req, resp); err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if resp.StatusCode() != tc.status || tc.size >= 0 && len(resp.Body()) != tc.size {
			t.Errorf("%s %s: status %d, %d bytes; want %d, %d", tc.method, tc.path, resp.StatusCode(), len(resp.Body()), tc.status, tc.size)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}
