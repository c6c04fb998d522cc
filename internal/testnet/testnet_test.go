package testnet

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrs(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		for _, a := range Addrs(t, 5, true) {
			if seen[a] {
				t.Fatalf("%s handed out twice", a)
			}
			seen[a] = true
			host, port, err := net.SplitHostPort(a)
			if err != nil || host != "127.0.0.1" {
				t.Fatalf("address %q: %v", a, err)
			}
			if p, _ := strconv.Atoi(port); p < 20_000 || p >= 32_768 {
				t.Fatalf("port %d outside [20000, 32768)", p)
			}
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Fatalf("%s not free for TCP: %v", a, err)
			}
			ln.Close()
			pc, err := net.ListenPacket("udp", a)
			if err != nil {
				t.Fatalf("%s not free for UDP: %v", a, err)
			}
			pc.Close()
		}
	}
}
