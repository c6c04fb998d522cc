package sigv4

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Limits of the aws-chunked decoder.
const (
	// MaxChunkHeader is the longest chunk header line accepted, in bytes.
	MaxChunkHeader = 4 << 10
	// MaxChunkSize is the largest chunk accepted, in bytes. A signed chunk
	// is buffered whole before its signature is checked.
	MaxChunkSize = 16 << 20
	// MaxTrailerSize is the largest trailer section accepted, in bytes.
	MaxTrailerSize = 16 << 10
)

const trailerSignatureName = "x-amz-trailer-signature"

// PayloadReader reads the decoded payload of a request and verifies it as
// it streams, according to the Result it came from. Read returns io.EOF only
// after everything the signature and checksum cover has been verified; any
// other error means the payload must be discarded. Errors are sticky.
// A PayloadReader is not safe for concurrent use.
type PayloadReader struct {
	res *Result
	r   io.Reader     // the encoded body, for non-chunked modes
	br  *bufio.Reader // the encoded body, for aws-chunked modes, until the end

	chunked bool // aws-chunked mode

	sha hash.Hash // PayloadSignedHash: SHA-256 of the body
	sum hash.Hash // flexible checksum, or nil

	buf       []byte   // verified chunk bytes not yet returned
	chunk     *[]byte  // backing store of buf, at most MaxChunkSize; pooled when chunkPoolSize
	remaining int64    // unsigned chunk bytes still to read from br
	afterData bool     // a chunk's data was read; its CRLF was not
	prevSig   [32]byte // previous chunk signature, starting with the seed
	total     int64    // decoded bytes so far, in bytes
	done      bool     // the final chunk and trailer were verified
	trailer   map[string]string
	err       error

	// Scratch space of sign, here rather than on the stack, where the
	// hash's interface calls would make it escape to the heap.
	mac  mac       // computes the chunk and trailer signatures
	sts  [384]byte // a string to sign: the usual scope fits
	want [32]byte  // a signature computed
}

// Buffers of the aws-chunked decoder, reused across requests: a reader's
// buffers go back to their pools when it returns io.EOF or an error,
// never while it may still return their bytes. A reader dropped before
// then leaves its buffers to the garbage collector.
var (
	// headerReaders holds *bufio.Reader of MaxChunkHeader bytes.
	headerReaders sync.Pool
	// chunkBufs holds *[]byte of chunkPoolSize bytes.
	chunkBufs sync.Pool
)

// chunkPoolSize is the size of pooled chunk buffers, in bytes: the chunk
// size of minio-go (and so of warp). A signed chunk is read straight into
// the caller's buffer when it fits, so only readers with smaller buffers
// (io.ReadAll's first 512 bytes, bufio) need one.
const chunkPoolSize = 64 << 10

// release gives the reader's buffers back to their pools. It is called
// once the reader will read no more: at io.EOF or a sticky error.
func (p *PayloadReader) release() {
	if p.br != nil {
		p.br.Reset(nil)
		headerReaders.Put(p.br)
		p.br = nil
	}
	if p.chunk != nil {
		p.buf = nil
		if cap(*p.chunk) == chunkPoolSize {
			chunkBufs.Put(p.chunk)
		}
		p.chunk = nil
	}
}

// Body returns a reader of the decoded payload of body, the request body as
// received (still aws-chunked for streaming modes), verifying it as
// described in the package documentation.
func (res *Result) Body(body io.Reader) *PayloadReader {
	p := &PayloadReader{res: res}
	if res.Checksum != "" {
		a, _ := checksumAlgorithm(res.Checksum)
		p.sum = a.new()
	}
	if res.Mode.chunked() {
		if br, ok := headerReaders.Get().(*bufio.Reader); ok {
			br.Reset(body)
			p.br = br
		} else {
			p.br = bufio.NewReaderSize(body, MaxChunkHeader)
		}
		p.chunked = true
		if res.Mode != PayloadStreamingUnsignedTrailer && len(res.seed) != 2*len(p.prevSig) {
			// Only Verify makes a Result of a signed streaming mode.
			p.err = fmt.Errorf("%w: no seed signature", ErrChunkSignature)
			p.release()
			return p
		}
		for i := 0; i+1 < len(res.seed); i += 2 { // a valid seed: 64 hex digits
			p.prevSig[i/2] = unhex(res.seed[i])<<4 | unhex(res.seed[i+1])
		}
		return p
	}
	p.r = body
	if res.Mode == PayloadSignedHash {
		p.sha = sha256.New()
	}
	return p
}

// Trailer returns the trailer headers (lowercase names, without
// x-amz-trailer-signature) once Read has returned io.EOF, else nil. The
// caller must not modify the map.
func (p *PayloadReader) Trailer() map[string]string {
	if !p.done {
		return nil
	}
	return p.trailer
}

// Read implements io.Reader.
func (p *PayloadReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var err error
	if p.chunked {
		n, err = p.readChunked(b)
		if err != nil {
			p.release()
		}
	} else {
		n, err = p.readPlain(b)
	}
	if err != nil {
		p.err = err
	}
	return n, err
}

func (p *PayloadReader) readPlain(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.sha != nil {
		p.sha.Write(b[:n])
	}
	if p.sum != nil {
		p.sum.Write(b[:n])
	}
	p.total += int64(n)
	if err != io.EOF {
		if err != nil {
			// The connection, not the server, failed: a client error.
			err = fmt.Errorf("%w: %w", ErrIncompleteBody, err)
		}
		return n, err
	}
	if p.sha != nil {
		got := hex.EncodeToString(p.sha.Sum(nil))
		if !hmac.Equal([]byte(got), []byte(p.res.PayloadHash)) {
			return n, fmt.Errorf("%w: got %s, want %s", ErrContentSHA256Mismatch, got, p.res.PayloadHash)
		}
	}
	if err := p.checkSum(p.res.ChecksumValue); err != nil {
		return n, err
	}
	p.done = true
	return n, io.EOF
}

func (p *PayloadReader) checkSum(want string) error {
	if p.sum == nil {
		return nil
	}
	if want == "" {
		return fmt.Errorf("%w: x-amz-checksum-%s declared but not sent", ErrMalformedChunk, strings.ToLower(p.res.Checksum))
	}
	return CheckChecksum(p.sum, want)
}

func (p *PayloadReader) readChunked(b []byte) (int, error) {
	for len(p.buf) == 0 && p.remaining == 0 {
		if p.done {
			return 0, io.EOF
		}
		n, err := p.nextChunk(b)
		if err != nil || n > 0 {
			return n, err
		}
	}
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	// Unsigned chunk: stream it through.
	if int64(len(b)) > p.remaining {
		b = b[:p.remaining]
	}
	n, err := p.br.Read(b)
	if n == 0 {
		if err == nil {
			return 0, nil
		}
		return 0, malformed("truncated chunk data", err)
	}
	if p.sum != nil {
		p.sum.Write(b[:n])
	}
	p.remaining -= int64(n)
	return n, nil
}

func malformed(what string, err error) error {
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if errors.Is(err, ErrMalformedChunk) {
		return err
	}
	return fmt.Errorf("%w: %s: %v", ErrMalformedChunk, what, err)
}

// readCRLF consumes the CRLF that ends chunk data.
func (p *PayloadReader) readCRLF() error {
	for _, want := range [2]byte{'\r', '\n'} {
		c, err := p.br.ReadByte()
		if err != nil {
			return malformed("missing CRLF after chunk data", err)
		}
		if c != want {
			return fmt.Errorf("%w: missing CRLF after chunk data", ErrMalformedChunk)
		}
	}
	return nil
}

// nextChunk reads the next chunk header and, for signed modes, the whole
// chunk, verifying its signature before making it available: in b if it
// fits (n is then its size), else in p.buf (n is 0). Bytes in b are
// returned (n > 0) only once verified.
func (p *PayloadReader) nextChunk(b []byte) (n int, err error) {
	if p.afterData {
		if err := p.readCRLF(); err != nil {
			return 0, err
		}
		p.afterData = false
	}
	line, err := p.br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return 0, fmt.Errorf("%w: chunk header longer than %d bytes", ErrMalformedChunk, MaxChunkHeader)
		}
		return 0, malformed("truncated chunk header", err)
	}
	line, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok {
		return 0, fmt.Errorf("%w: chunk header not ended by CRLF", ErrMalformedChunk)
	}
	sizeHex, ext, hasExt := bytes.Cut(line, []byte(";"))
	if len(sizeHex) == 0 || len(sizeHex) > 16 || !isHex(sizeHex) {
		return 0, fmt.Errorf("%w: invalid chunk size", ErrMalformedChunk)
	}
	size, err := strconv.ParseUint(string(sizeHex), 16, 64)
	if err != nil || size > MaxChunkSize {
		return 0, fmt.Errorf("%w: chunk size over %d bytes", ErrMalformedChunk, MaxChunkSize)
	}
	if p.total+int64(size) > p.res.DecodedLength {
		return 0, fmt.Errorf("%w: payload longer than x-amz-decoded-content-length %d", ErrMalformedChunk, p.res.DecodedLength)
	}
	signed := p.res.Mode != PayloadStreamingUnsignedTrailer
	var sigBuf [32]byte
	var sig []byte
	if signed {
		v, ok := bytes.CutPrefix(ext, []byte("chunk-signature="))
		if !hasExt || !ok || len(v) != 64 || !isHex(v) {
			return 0, fmt.Errorf("%w: missing or invalid chunk-signature", ErrMalformedChunk)
		}
		sig = sigBuf[:]
		hex.Decode(sig, v)
	} else if hasExt {
		return 0, fmt.Errorf("%w: unexpected chunk extension in unsigned payload", ErrMalformedChunk)
	}

	if size == 0 {
		return 0, p.finish(sig)
	}
	if !signed {
		p.remaining = int64(size)
		p.afterData = true
		p.total += int64(size)
		return 0, nil
	}
	// Read the chunk where it is going if it fits: no buffer, no copy.
	data := b
	if len(b) < int(size) {
		data = p.chunkBuf(int(size))
	}
	data = data[:size]
	if _, err := io.ReadFull(p.br, data); err != nil {
		return 0, malformed("truncated chunk data", err)
	}
	if err := p.readCRLF(); err != nil {
		return 0, err
	}
	if err := p.verifyChunk(data, sig); err != nil {
		return 0, err
	}
	if p.sum != nil {
		p.sum.Write(data)
	}
	p.total += int64(size)
	if len(b) < int(size) {
		p.buf = data
		return 0, nil
	}
	return int(size), nil
}

// chunkBuf returns the reader's chunk buffer with room for size bytes.
func (p *PayloadReader) chunkBuf(size int) []byte {
	if p.chunk != nil && cap(*p.chunk) >= size {
		return *p.chunk
	}
	if size <= chunkPoolSize {
		if c, ok := chunkBufs.Get().(*[]byte); ok {
			p.chunk = c
			return *c
		}
		c := make([]byte, chunkPoolSize)
		p.chunk = &c
		return c
	}
	if p.chunk != nil && cap(*p.chunk) == chunkPoolSize {
		chunkBufs.Put(p.chunk)
	}
	c := make([]byte, size)
	p.chunk = &c
	return c
}

// verifyChunk checks the signature of one chunk, chained from the previous.
func (p *PayloadReader) verifyChunk(data, sig []byte) error {
	sum := sha256.Sum256(data)
	want := p.sign("AWS4-HMAC-SHA256-PAYLOAD", emptySHA256, sum[:])
	if !hmac.Equal(sig, want) {
		return fmt.Errorf("%w at decoded offset %d", ErrChunkSignature, p.total)
	}
	p.prevSig = [32]byte(want)
	return nil
}

// sign computes the signature of a chunk or trailer string to sign. The
// result is valid until the next call.
func (p *PayloadReader) sign(alg, extra string, sum []byte) []byte {
	res := p.res
	sts := p.sts[:0]
	sts = append(sts, alg...)
	sts = append(sts, '\n')
	sts = append(sts, res.amzDate...)
	sts = append(sts, '\n')
	sts = append(sts, res.scope...)
	sts = append(sts, '\n')
	sts = hex.AppendEncode(sts, p.prevSig[:])
	sts = append(sts, '\n')
	if extra != "" {
		sts = append(sts, extra...)
		sts = append(sts, '\n')
	}
	sts = hex.AppendEncode(sts, sum)
	return p.mac.sum(p.want[:0], res.key, sts)
}

// finish handles the final (zero-size) chunk, the trailer, and the checks
// at the end of the payload.
func (p *PayloadReader) finish(sig []byte) error {
	if sig != nil {
		if err := p.verifyChunk(nil, sig); err != nil {
			return err
		}
	}
	if p.total != p.res.DecodedLength {
		return fmt.Errorf("%w: decoded %d bytes, x-amz-decoded-content-length is %d", ErrMalformedChunk, p.total, p.res.DecodedLength)
	}
	want := p.res.ChecksumValue
	if p.res.Mode == PayloadStreamingSigned {
		if err := p.readCRLF(); err != nil {
			return err
		}
		if err := p.expectEOF(); err != nil {
			return err
		}
	} else {
		if err := p.readTrailer(); err != nil {
			return err
		}
		if want == "" && p.sum != nil {
			want = p.trailer["x-amz-checksum-"+strings.ToLower(p.res.Checksum)]
		}
	}
	if err := p.checkSum(want); err != nil {
		return err
	}
	p.done = true
	return nil
}

func (p *PayloadReader) expectEOF() error {
	if _, err := p.br.ReadByte(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("%w: data after the final chunk", ErrMalformedChunk)
		}
		return malformed("reading after final chunk", err)
	}
	return nil
}

// readTrailer parses the trailer section up to the end of the body: lines
// "name:value" ended by CRLF or LF, and for the signed trailer mode a final
// x-amz-trailer-signature line. The section must end with an empty line;
// extra empty lines are ignored (minio-go sends one before the signature
// and one after unsigned trailers). Every trailer must be
// declared in x-amz-trailer and every declared trailer sent.
func (p *PayloadReader) readTrailer() error {
	p.trailer = make(map[string]string, len(p.res.Trailers))
	var canon []byte // trailers as signed: "name:value\n" each
	var sig []byte
	size := 0
	ended := false // an empty line ends the section; a truncated one lacks it
	for {
		line, err := p.br.ReadSlice('\n')
		if err == io.EOF && len(line) == 0 {
			if !ended {
				return malformed("truncated trailer", nil)
			}
			break
		}
		if err != nil {
			return malformed("truncated trailer", err)
		}
		if size += len(line); size > MaxTrailerSize {
			return fmt.Errorf("%w: trailer longer than %d bytes", ErrMalformedChunk, MaxTrailerSize)
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		if len(line) == 0 {
			ended = true
			continue
		}
		ended = false
		if sig != nil {
			return fmt.Errorf("%w: data after x-amz-trailer-signature", ErrMalformedChunk)
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		name := strings.ToLower(strings.TrimSpace(string(k)))
		value := strings.TrimSpace(string(v))
		if !ok || name == "" {
			return fmt.Errorf("%w: invalid trailer line", ErrMalformedChunk)
		}
		if name == trailerSignatureName {
			if p.res.Mode != PayloadStreamingSignedTrailer || len(value) != 64 || !isHex(value) {
				return fmt.Errorf("%w: unexpected or invalid x-amz-trailer-signature", ErrMalformedChunk)
			}
			sig, _ = hex.DecodeString(value)
			continue
		}
		if !slices.Contains(p.res.Trailers, name) {
			return fmt.Errorf("%w: trailer %.80q not declared in x-amz-trailer", ErrMalformedChunk, name)
		}
		if _, dup := p.trailer[name]; dup {
			return fmt.Errorf("%w: repeated trailer %.80q", ErrMalformedChunk, name)
		}
		p.trailer[name] = value
		canon = append(canon, name...)
		canon = append(canon, ':')
		canon = append(canon, value...)
		canon = append(canon, '\n')
	}
	for _, name := range p.res.Trailers {
		if _, ok := p.trailer[name]; !ok {
			return fmt.Errorf("%w: declared trailer %.80q not sent", ErrMalformedChunk, name)
		}
	}
	if p.res.Mode == PayloadStreamingSignedTrailer {
		if sig == nil {
			return fmt.Errorf("%w: missing x-amz-trailer-signature", ErrMalformedChunk)
		}
		sum := sha256.Sum256(canon)
		if !hmac.Equal(sig, p.sign("AWS4-HMAC-SHA256-TRAILER", "", sum[:])) {
			return fmt.Errorf("%w: trailer", ErrChunkSignature)
		}
	}
	return nil
}
