package s3

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestRequestTarget: the path and query a request is authenticated with
// are those fasthttp routes it by.
func TestRequestTarget(t *testing.T) {
	for _, raw := range []string{
		"GET /b/k?x=1 HTTP/1.1\r\nHost: Example.COM\r\n\r\n",
		"GET /b/k?x=http://h/y HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /b//k#f?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /b/k?a=1#f HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET http://other.host/b/k?acl HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET http://user@other.host?acl HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET http://other.host HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET http://other.host#x/y HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET //b/k?x HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /b/k HTTP/1.0\r\n\r\n",
		"GET //h2/b/k?x HTTP/1.0\r\n\r\n",
	} {
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		host, path, query := requestTarget(&req.Header)
		u := req.URI()
		if host != string(u.Host()) || path != string(u.PathOriginal()) || query != string(u.QueryString()) {
			t.Errorf("%q: (%q, %q, %q), fasthttp (%q, %q, %q)", raw, host, path, query, u.Host(), u.PathOriginal(), u.QueryString())
		}
	}
}
