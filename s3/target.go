package s3

import (
	"net"
	"strings"

	"github.com/valyala/fasthttp"
)

// requestTarget returns the host, raw path and raw query of a request
// exactly as fasthttp's URI parsing finds them (URI().Host(),
// PathOriginal(), QueryString()), which is what the request is routed and
// its query read by: from the request line (origin or absolute form) and
// the Host header, the host lowercased.
func requestTarget(h *fasthttp.RequestHeader) (host, path, query string) {
	uri := string(h.RequestURI())
	host = string(h.Host())
	if host == "" || strings.Contains(uri, "://") {
		// fasthttp's splitHostURI.
		if n := strings.Index(uri, "//"); n >= 0 && !strings.Contains(uri[:n], "/") {
			rest := uri[n+2:]
			end := -1
			for _, c := range "/?#" {
				if i := strings.IndexRune(rest, c); i >= 0 && (end < 0 || i < end) {
					end = i
				}
			}
			if end < 0 {
				host, uri = rest, "/"
			} else {
				host, uri = rest[:end], rest[end:]
			}
		}
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	host = strings.ToLower(host)
	q, f := strings.IndexByte(uri, '?'), strings.IndexByte(uri, '#')
	switch {
	case q >= 0 && (f < 0 || q < f):
		path, query = uri[:q], uri[q+1:]
		if f >= 0 {
			query = uri[q+1 : f]
		}
	case f >= 0:
		path = uri[:f]
	default:
		path = uri
	}
	return host, path, query
}

// route splits the request into bucket and key, from the Host header for
// virtual-host-style requests and from the path otherwise.
func (s *Server) route(host, rawPath string) (bucket, key string, vhost bool, err error) {
	if !strings.HasPrefix(rawPath, "/") {
		return "", "", false, ErrInvalidRequest
	}
	rest := rawPath[1:]
	if bucket, vhost = s.vhostBucket(host); !vhost {
		var slash bool
		bucket, rest, slash = strings.Cut(rest, "/")
		if bucket, err = unescapePath(bucket); err != nil {
			return "", "", false, err
		}
		if bucket == "" && slash {
			// "//b/k" names no bucket; it is not the service's root.
			return "", "", false, ErrInvalidBucketName
		}
	}
	if key, err = unescapePath(rest); err != nil {
		return "", "", false, err
	}
	return bucket, key, vhost, nil
}

// unescapePath decodes %XX escapes; '+' stays a plus, as S3 does in paths.
func unescapePath(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", ErrInvalidArgument
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// vhostBucket returns the bucket a virtual-host-style Host header names
// (BUCKET.DOMAIN, with --domain), and whether it names one.
func (s *Server) vhostBucket(host string) (string, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if d := s.cfg.Domain; d != "" && strings.HasSuffix(host, "."+d) {
		return strings.TrimSuffix(host, "."+d), true
	}
	return "", false
}
