package engine

import (
	"crypto/md5"
	"hash"
	"sync"
	"sync/atomic"

	md5simd "github.com/minio/md5-simd"
)

// md5Server hashes the ETags of streamed bodies when many are in flight:
// one md5-simd server per process, started by the first such Put, computes
// up to 16 MD5s at once in the lanes of AVX-512 (8 with AVX2, crypto/md5
// without either). One crypto/md5 stream runs at ~0.8 GB/s per core, so
// with many PUTs in flight the ETag would otherwise cost as much CPU as
// everything else in the engine. The server's one goroutine lives as long
// as the process, like the runtime's own workers; it idles on a channel
// between requests.
var md5Server = sync.OnceValue(md5simd.NewServer)

// simdMinStreams is the number of streamed bodies in flight, this one
// included, from which their ETags go to md5Server. With few lanes filled
// a stream hashes more slowly there than with crypto/md5 on its own
// goroutine (a lone 64 MiB Put: ~550 against ~700 MB/s on the 2-core
// machine), while with 16 PUTs in flight md5-simd is what lets the node
// keep up (put 1 MiB: 156 against 186 MiB/s, see bench/RESULTS.md).
const simdMinStreams = 4

// streamedBodies counts the streamed bodies being hashed.
var streamedBodies atomic.Int32

// newETagHash returns a hash for the ETag of a body and the function that
// releases it once its Sum has been taken. Small bodies (stored inline)
// use crypto/md5: handing a few KiB to the server's lanes costs more than
// hashing them in place; so do streamed bodies while few are in flight.
func newETagHash(streamed bool) (hash.Hash, func()) {
	if !streamed {
		return md5.New(), func() {}
	}
	if streamedBodies.Add(1) < simdMinStreams {
		return md5.New(), func() { streamedBodies.Add(-1) }
	}
	h := md5Server().NewHash()
	return h, func() {
		h.Close()
		streamedBodies.Add(-1)
	}
}
