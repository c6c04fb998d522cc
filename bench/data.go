package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
)

// poolSize is the size of the random pool object content is cut from. It
// is not a power of two so that content does not line up with stripes.
const poolSize = 4<<20 + 4093

// pool is random bytes generated once per run; object content is a window
// of it, wrapping around. Safe for concurrent use (read only).
type pool struct {
	b []byte
}

func newPool(seed uint64) *pool {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, poolSize)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return &pool{b: b}
}

// offset is where the content of generation gen of key starts in the pool:
// FNV-1a of the key and generation, so the same seed gives the same bytes.
func (p *pool) offset(key string, gen uint32) int {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := range len(key) {
		h = (h ^ uint64(key[i])) * prime
	}
	for i := range 4 {
		h = (h ^ uint64(byte(gen>>(8*i)))) * prime
	}
	return int(h % uint64(len(p.b)))
}

// reader returns the content of generation gen of key, size bytes long,
// from byte start on (for multipart parts).
func (p *pool) reader(key string, gen uint32, start, size int64) *contentReader {
	return &contentReader{p: p.b, base: (p.offset(key, gen) + int(start%int64(len(p.b)))) % len(p.b), size: size}
}

// contentReader reads a window of the pool without allocating. It is
// seekable so that the SDK can hash the payload and rewind.
type contentReader struct {
	p    []byte
	base int   // pool offset of byte 0
	size int64 // bytes
	pos  int64
}

func (r *contentReader) Read(b []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), r.size-r.pos)]
	n := 0
	for n < len(b) {
		off := (r.base + int((r.pos+int64(n))%int64(len(r.p)))) % len(r.p)
		n += copy(b[n:], r.p[off:])
	}
	r.pos += int64(n)
	return n, nil
}

func (r *contentReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("bench: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("bench: negative seek")
	}
	r.pos = offset
	return offset, nil
}

// errVerify marks a read-back that differs from what was written.
var errVerify = errors.New("bench: verify failed")

// verify reads body to the end and compares it with want, using buf as
// scratch. It returns the number of bytes read.
func verify(body io.Reader, want *contentReader, buf []byte) (int64, error) {
	half := len(buf) / 2
	got, exp := buf[:half], buf[half:2*half]
	var n int64
	for {
		k, err := io.ReadFull(body, got)
		if k > 0 {
			e, _ := io.ReadFull(want, exp[:k])
			if e != k || !bytes.Equal(got[:k], exp[:k]) {
				return n, fmt.Errorf("%w: content differs in bytes %d-%d", errVerify, n, n+int64(k))
			}
			n += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	if n != want.size {
		return n, fmt.Errorf("%w: got %d bytes, want %d", errVerify, n, want.size)
	}
	return n, nil
}
