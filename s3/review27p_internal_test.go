package s3

import (
	"bufio"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestReview27pRouteQueryIsSignedQuery (40813c8): a request without a body
// is now routed by fctx.QueryArgs, while its signature covers
// requestTarget's query. For every request fasthttp's server lets through
// (it refuses one whose URI does not parse, server.go parseURI), the two
// are the same string, so routing and signature cannot disagree.
func TestReview27pRouteQueryIsSignedQuery(t *testing.T) {
	for _, c := range []struct{ target, host string }{
		{"/b/k?acl", "s3.test"},
		{"/b/k?tagging#frag", "s3.test"},
		{"/b/k#x?acl", "s3.test"},
		{"/b/k?a=1&acl&a=2", "s3.test"},
		{"/b/k?x=%3Facl%26acl", "s3.test"},
		{"/b/k?x=?acl&y", "s3.test"},
		{"http://s3.test/b/k?acl", "other"},
		{"http://s3.test?acl", ""},
		{"http://s3.test#x?acl", ""},
		{"http://u:p@s3.test/b/k?uploads", "x"},
		{"//s3.test/b/k?acl", "s3.test"},
		{"/b//k?versionId=1#?delete", "s3.test"},
		{"/b/k?;acl", "s3.test"},
		{"/b/k?acl=&acl", "s3.test"},
	} {
		raw := "GET " + c.target + " HTTP/1.1\r\n"
		if c.host != "" {
			raw += "Host: " + c.host + "\r\n"
		}
		raw += "\r\n"
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			continue // refused before any handler
		}
		u := req.URI()
		if u == nil || req.Header.Host() == nil && c.host != "" {
			continue
		}
		_, _, signed := requestTarget(&req.Header)
		if got := string(u.QueryString()); got != signed {
			t.Errorf("%s (Host %q): routed by query %q, signature covers %q", c.target, c.host, got, signed)
		}
	}
}

// TestReview27pAddrStringRandom (0a1fb58): addrString is a.String() for
// random IPv4, IPv6 (runs of zero groups in every place), IPv4-mapped and
// IPv4-compatible addresses and ports.
func TestReview27pAddrStringRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(27, 0))
	for range 100000 {
		var ip net.IP
		switch rnd.IntN(4) {
		case 0:
			ip = net.IP{byte(rnd.IntN(256)), byte(rnd.IntN(256)), byte(rnd.IntN(256)), byte(rnd.IntN(256))}
		case 1:
			ip = net.IPv4(byte(rnd.IntN(256)), byte(rnd.IntN(256)), byte(rnd.IntN(256)), byte(rnd.IntN(256)))
		default:
			ip = make(net.IP, 16)
			for g := range 8 {
				if rnd.IntN(2) == 0 { // zero groups often, to make runs
					ip[2*g], ip[2*g+1] = byte(rnd.IntN(256)), byte(rnd.IntN(256))
				}
			}
		}
		a := &net.TCPAddr{IP: ip, Port: rnd.IntN(1 << 16)}
		if got, want := addrString(a), a.String(); got != want {
			t.Fatalf("addrString(%v) = %q, want %q", []byte(ip), got, want)
		}
	}
}
