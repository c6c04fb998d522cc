package s3

import (
	"net"
	"regexp"
	"testing"
)

// TestAddrString: addrString formats an address as its String method does.
func TestAddrString(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 45678},
		&net.TCPAddr{IP: net.IP{10, 1, 2, 3}, Port: 80},
		&net.TCPAddr{IP: net.ParseIP("::1"), Port: 9000},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::5"), Port: 0},
		&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 443, Zone: "eth0"},
		&net.TCPAddr{Port: 8080},
		&net.UnixAddr{Name: "/tmp/s.sock", Net: "unix"},
	} {
		if got, want := addrString(a), a.String(); got != want {
			t.Errorf("addrString(%#v) = %q, want %q", a, got, want)
		}
	}
}

// TestNewRequestID: sixteen upper-case hex digits, different each time.
func TestNewRequestID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9A-F]{16}$`)
	a, b := newRequestID(), newRequestID()
	if !re.MatchString(a) || !re.MatchString(b) || a == b {
		t.Fatalf("newRequestID() = %q, %q; want two different 16-digit upper-case hex ids", a, b)
	}
}
