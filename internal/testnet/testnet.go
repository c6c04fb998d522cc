// Package testnet hands tests free loopback addresses for the servers they
// start. It is for tests only.
//
// A port the kernel picks for a listener on port 0 lies in Linux's
// ephemeral range (32768 and up), where any outgoing connection of the
// machine may take it between the pick and the server's bind. Addresses
// from here lie below that range, are free for TCP (and UDP on request,
// as memberlist listens on both) when handed out, and are never handed
// out twice in one test binary.
package testnet

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// handedOut are the addresses returned in this test binary: a later call
// never returns one again, though its listener was closed and the server
// that owns it may not have started yet.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// Addrs returns n distinct free loopback addresses ("127.0.0.1:port").
// All of them are held open until every one is picked, so they differ;
// with udp each is also free for UDP.
func Addrs(t testing.TB, n int, udp bool) []string {
	t.Helper()
	var addrs []string
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for tries := 0; len(addrs) < n; tries++ {
		if tries > 10_000 {
			t.Fatal("testnet: no free loopback ports below the ephemeral range")
		}
		addr := fmt.Sprintf("127.0.0.1:%d", 20_000+rand.IntN(12_000))
		handedOut.Lock()
		taken := handedOut.addrs[addr]
		handedOut.addrs[addr] = true
		handedOut.Unlock()
		if taken {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		closers = append(closers, ln)
		if udp {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				continue // taken for UDP: pick another
			}
			closers = append(closers, pc)
		}
		addrs = append(addrs, addr)
	}
	return addrs
}

// Addr returns one free loopback address, free for TCP and UDP.
func Addr(t testing.TB) string {
	t.Helper()
	return Addrs(t, 1, true)[0]
}
