package remote

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/vaultaire/vaultaire/driver"
)

// Encryption at the provider.
//
// With Config.KEK set, a drive formatted by this driver is encrypted: every
// object it writes under the prefix except format.json is sealed, so the
// provider holds neither record keys, metadata nor shard bytes in the
// clear. format.json holds a random 32-byte data key (DEK) wrapped with
// AES-256-GCM under the KEK (random nonce, AAD "vaultaire dek v1" and the
// drive id), the KEK's id (the first 8 bytes of HMAC-SHA256(KEK,
// "vaultaire kek id")), the scheme and the chunk size.
//
// An object is
//
//	"VLTENC01" | KEK id (8) | wrapped DEK: nonce (12) | ciphertext (32) | tag (16)   = encHeader (76) bytes
//	chunk 0 | chunk 1 | ... | chunk n
//
// where each chunk is nonce (12, random) | AES-256-GCM ciphertext | tag (16)
// of up to encChunk (16 KiB) plaintext bytes, under the object's key
// HKDF-SHA256(DEK, info "vaultaire object v1\x00" + the object's key
// relative to the prefix), with AAD the chunk's index (uint64, big endian)
// and a final flag (one byte). Every chunk but the last holds exactly
// encChunk bytes; the last holds 0 to encChunk-1 (an empty one follows a
// plaintext of a multiple of encChunk), so a chunk is final if and only
// if it is short, and an object cut at a chunk boundary, or cut within
// one, fails authentication where it is read. Stored and plaintext sizes
// are functions of each other (storedSize, plainSize), and a plaintext
// range maps to the stored range of the chunks covering it: a read is one
// ranged GET, as unencrypted, of at most two chunks' worth more (the
// header is never read but by Open recovering a lost format.json).
//
// The overhead is 28 bytes per 16 KiB chunk (0.17%) plus 76 + 28 bytes an
// object. 16 KiB keeps the bytes fetched for a small ranged read (an
// inline shard in a log object, a 4 KiB read of a large shard) at most
// 2 × (16 KiB + 28) more than asked; a larger chunk would multiply that.
// A chunk failing authentication, or a range the object does not hold, is
// driver.ErrCorrupt: the engine reads the other drives and heals this one.
const (
	encMagic    = "VLTENC01"
	encScheme   = "aes256gcm-chunk16k-v1"
	encChunk    = 16 << 10 // plaintext bytes of a full chunk
	encOverhead = 12 + 16  // nonce and tag of a chunk
	encFull     = encChunk + encOverhead
	wrappedLen  = 12 + 32 + 16
	encHeader   = len(encMagic) + 8 + wrappedLen
	kekIDLen    = 8
	dekLabel    = "vaultaire dek v1\x00"
	objLabel    = "vaultaire object v1\x00"
)

// errTampered is a chunk that fails authentication; errTruncated an
// object shorter than the range read says it must be. Both wrap
// driver.ErrCorrupt.
var (
	errTampered  = fmt.Errorf("%w: encrypted chunk fails authentication", driver.ErrCorrupt)
	errTruncated = fmt.Errorf("%w: encrypted object cut short", driver.ErrCorrupt)
)

// kekID names a KEK without revealing it.
func kekID(kek []byte) [kekIDLen]byte {
	m := hmac.New(sha256.New, kek)
	m.Write([]byte("vaultaire kek id"))
	var id [kekIDLen]byte
	copy(id[:], m.Sum(nil))
	return id
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are 32 bytes, checked by Config
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

func dekAAD(id driver.DriveID) []byte { return append([]byte(dekLabel), id...) }

// wrapDEK seals dek under kek for drive id.
func wrapDEK(kek, dek []byte, id driver.DriveID) []byte {
	out := make([]byte, 12, wrappedLen)
	rand.Read(out)
	return newGCM(kek).Seal(out, out[:12], dek, dekAAD(id))
}

// unwrapDEK opens a wrapped DEK with the KEK or one of the old ones; old
// reports that it took an old one. The error names the KEK ids.
func unwrapDEK(c *Config, wrapped []byte, want string) (dek []byte, old bool, err error) {
	if len(wrapped) != wrappedLen {
		return nil, false, fmt.Errorf("wrapped data key: %d bytes: %w", len(wrapped), driver.ErrCorrupt)
	}
	keks := append([]Key{c.KEK}, c.OldKEKs...)
	var tried []string
	for i, k := range keks {
		if k == nil {
			continue
		}
		id := kekID(k)
		tried = append(tried, hex.EncodeToString(id[:]))
		dek, err := newGCM(k).Open(nil, wrapped[:12], wrapped[12:], dekAAD(c.ID))
		if err == nil {
			return dek, i > 0, nil
		}
	}
	return nil, false, fmt.Errorf("%w: the drive's data key is wrapped under KEK id %s; no configured KEK unwraps it (tried %s): give its KEK (or list it in the old KEKs)",
		ErrWrongKEK, want, strings.Join(tried, ", "))
}

// Key is a secret key (Config.KEK). It prints, formats and logs as
// "REDACTED", so that a Config printed or logged whole shows no key.
type Key []byte

func (Key) String() string               { return "REDACTED" }
func (Key) GoString() string             { return "remote.Key(REDACTED)" }
func (k Key) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }
func (Key) LogValue() slog.Value         { return slog.StringValue("REDACTED") }

// ErrDowngraded is a drive known to be encrypted (Config.RequireEncrypted)
// whose bucket now says it is stored in plaintext.
var ErrDowngraded = errors.New("driver/remote: the drive was encrypted but its bucket now holds a plaintext format (format.json or the objects left were replaced at the provider); refusing to store it in plaintext (to format it afresh, encrypted, for the healer to refill: --remote-encrypt)")

// ErrWrongKEK is an encrypted drive whose data key no configured KEK
// unwraps: it stays offline, untouched.
var ErrWrongKEK = errors.New("driver/remote: wrong key-encryption key")

// encFormat is the encryption part of format.json.
type encFormat struct {
	Scheme string `json:"scheme"`
	Chunk  int64  `json:"chunk"`
	KEKID  string `json:"kek_id"` // hex
	DEK    []byte `json:"dek"`    // wrapped: nonce | ciphertext | tag
}

// keyring is an encrypted drive's data key and the header its objects
// begin with. It is never modified once built.
type keyring struct {
	dek    []byte
	format encFormat
	header []byte // encHeader bytes
}

// newKeyring builds the keyring of dek wrapped (under the KEK of id kid)
// as wrapped.
func newKeyring(dek, wrapped []byte, kid [kekIDLen]byte) *keyring {
	h := make([]byte, 0, encHeader)
	h = append(h, encMagic...)
	h = append(h, kid[:]...)
	h = append(h, wrapped...)
	return &keyring{dek: dek, header: h,
		format: encFormat{Scheme: encScheme, Chunk: encChunk, KEKID: hex.EncodeToString(kid[:]), DEK: wrapped}}
}

// parseHeader returns the KEK id and wrapped DEK of an object's header,
// or ok false if h does not begin one.
func parseEncHeader(h []byte) (kid string, wrapped []byte, ok bool) {
	if len(h) < encHeader || !bytes.Equal(h[:len(encMagic)], []byte(encMagic)) {
		return "", nil, false
	}
	h = h[len(encMagic):encHeader]
	return hex.EncodeToString(h[:kekIDLen]), h[kekIDLen:], true
}

// object returns the AEAD of the object at rel (its key under the prefix).
func (k *keyring) object(rel string) cipher.AEAD {
	key, err := hkdf.Key(sha256.New, k.dek, nil, objLabel+rel, 32)
	if err != nil {
		panic(err)
	}
	return newGCM(key)
}

// storedSize is the size of the object holding p plaintext bytes.
func storedSize(p int64) int64 {
	return int64(encHeader) + p/encChunk*encFull + p%encChunk + encOverhead
}

// plainSize is the plaintext size of an object of s bytes. A size no
// plaintext has (a cut object) gives the most plaintext it could hold:
// reading its end fails authentication.
func plainSize(s int64) int64 {
	k := s - int64(encHeader)
	if k < encOverhead {
		return 0
	}
	n, rem := k/encFull, k%encFull
	if rem < encOverhead {
		return n*encChunk - 1
	}
	return n*encChunk + rem - encOverhead
}

// chunkAAD is the AAD of chunk i.
func chunkAAD(buf *[9]byte, i uint64, final bool) []byte {
	binary.BigEndian.PutUint64(buf[:8], i)
	buf[8] = 0
	if final {
		buf[8] = 1
	}
	return buf[:]
}

// storedRange maps the plaintext range [off, off+n) (n > 0) to the stored
// range of the chunks covering it, [soff, soff+sn), and the first chunk's
// index. The range runs to the end of the last chunk as if it were full,
// and encOverhead bytes further: a provider answers a range past the
// object's end with the bytes there are, so the final chunk comes whole,
// and a range whose last chunk is full shows that at least a chunk's
// overhead follows it (an object never ends with a full chunk, nor with
// less than a whole chunk after one: one that does was cut).
func storedRange(off, n int64) (soff, sn int64, first uint64) {
	c0, c1 := off/encChunk, (off+n-1)/encChunk
	return int64(encHeader) + c0*encFull, (c1-c0+1)*encFull + encOverhead, uint64(c0)
}

// openReader decrypts a stream of whole stored chunks, from chunk first,
// into the plaintext range [skip, skip+n) of those chunks' plaintext.
type openReader struct {
	src   io.ReadCloser
	aead  cipher.AEAD
	next  uint64 // index of the next chunk
	skip  int64  // plaintext bytes still to drop (the range's start in its first chunk)
	left  int64  // plaintext bytes still to return
	buf   []byte // a stored chunk
	plain []byte // decrypted bytes not yet returned
	err   error  // sticky
}

func newOpenReader(src io.ReadCloser, aead cipher.AEAD, off, n int64) *openReader {
	return &openReader{src: src, aead: aead, next: uint64(off / encChunk), skip: off % encChunk, left: n, buf: make([]byte, encFull)}
}

func (r *openReader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.left <= 0 {
			return 0, io.EOF
		}
		r.plain, r.err = r.chunk()
		if r.err == nil && len(r.plain) == 0 {
			r.err = errTruncated
		}
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// chunk reads, checks and decrypts the next chunk, trimmed to the range.
func (r *openReader) chunk() ([]byte, error) {
	n, err := io.ReadFull(r.src, r.buf)
	final := false
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		final = true
	case err != nil:
		return nil, err
	}
	pt, err := openChunk(r.aead, r.next, final, r.buf[:n])
	if err != nil {
		return nil, err
	}
	r.next++
	if r.skip > 0 {
		if r.skip > int64(len(pt)) {
			return nil, errTruncated
		}
		pt, r.skip = pt[r.skip:], 0
	}
	if int64(len(pt)) > r.left {
		pt = pt[:r.left]
	} else if final && int64(len(pt)) < r.left {
		r.err = errTruncated // returned after pt
	}
	r.left -= int64(len(pt))
	if r.left == 0 && !final {
		// The range ends with a full chunk: at least a chunk's overhead
		// must follow (asked for too), or the object was cut there.
		var next [encOverhead]byte
		if m, _ := io.ReadFull(r.src, next[:]); m < encOverhead {
			return nil, errTruncated
		}
	}
	return pt, nil
}

func (r *openReader) Close() error { return r.src.Close() }

// openChunk checks and decrypts stored chunk i in place.
func openChunk(aead cipher.AEAD, i uint64, final bool, c []byte) ([]byte, error) {
	if len(c) < encOverhead {
		return nil, errTruncated
	}
	var ab [9]byte
	pt, err := aead.Open(c[12:12], c[:12], c[12:], chunkAAD(&ab, i, final))
	if err != nil {
		return nil, fmt.Errorf("chunk %d: %w", i, errTampered)
	}
	return pt, nil
}

// sealReader is the stored form of plaintext pt as an io.ReadSeeker that
// encrypts a chunk at a time (the SDK reads a body more than once: to
// sign it, to send it, to retry): the header if header is set, then the
// chunks of pt numbered from first, and, if final, the short final chunk.
// Without final, len(pt) must be a multiple of encChunk (a multipart
// upload's part but the last). It holds one stored chunk beyond pt.
type sealReader struct {
	aead   cipher.AEAD
	header []byte
	pt     []byte
	first  uint64
	final  bool
	nonces []byte // 12 per chunk, drawn once so that every pass sends the same bytes
	size   int64
	pos    int64
	cidx   int // the chunk in cbuf; -1: none
	cbuf   []byte
}

func newSealReader(aead cipher.AEAD, header, pt []byte, first uint64, final bool) *sealReader {
	n := len(pt) / encChunk
	if final {
		n++
	}
	s := &sealReader{aead: aead, header: header, pt: pt, first: first, final: final, nonces: make([]byte, 12*n), cidx: -1}
	rand.Read(s.nonces)
	s.size = int64(len(header)) + int64(len(pt)) + int64(n)*encOverhead
	return s
}

func (s *sealReader) Len() int64 { return s.size }

func (s *sealReader) Read(p []byte) (int, error) {
	if s.pos >= s.size {
		return 0, io.EOF
	}
	if s.pos < int64(len(s.header)) {
		n := copy(p, s.header[s.pos:])
		s.pos += int64(n)
		return n, nil
	}
	rel := s.pos - int64(len(s.header))
	i, within := int(rel/encFull), rel%encFull
	if s.cidx != i {
		lo := i * encChunk
		hi := min(lo+encChunk, len(s.pt))
		final := s.final && hi-lo < encChunk
		var ab [9]byte
		nonce := s.nonces[12*i : 12*i+12]
		s.cbuf = append(s.cbuf[:0], nonce...)
		s.cbuf = s.aead.Seal(s.cbuf, nonce, s.pt[lo:hi], chunkAAD(&ab, s.first+uint64(i), final))
		s.cidx = i
	}
	n := copy(p, s.cbuf[within:])
	s.pos += int64(n)
	return n, nil
}

func (s *sealReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += s.pos
	case io.SeekEnd:
		off += s.size
	}
	if off < 0 {
		return 0, errors.New("driver/remote: seek before start")
	}
	s.pos = off
	return off, nil
}
