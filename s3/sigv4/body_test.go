package sigv4_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// sha256Hasher adapts crypto/sha256 to minio-go's md5simd.Hasher.
type sha256Hasher struct{ hash.Hash }

func (sha256Hasher) Close() {}

// payload returns n bytes of deterministic, position-dependent data.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/65536)
	}
	return b
}

func checksumB64(t testing.TB, alg string, data []byte) string {
	t.Helper()
	h, err := sigv4.NewChecksum(alg)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// streamMode selects the minio-go streaming signer to use.
type streamMode int

const (
	signedStream          streamMode = iota // StreamingSignV4
	signedTrailerStream                     // StreamingSignV4 with a trailer
	unsignedTrailerStream                   // SignV4Trailer
)

func (m streamMode) String() string {
	return [...]string{"signed", "signed-trailer", "unsigned-trailer"}[m]
}

// streamRequest signs a PUT of data with minio-go's aws-chunked signers and
// returns the request as the server sees it, the encoded body, and the time
// to verify at. trailer, if not nil, is sent as the trailer.
func streamRequest(t testing.TB, mode streamMode, data []byte, trailer http.Header) (*sigv4.Request, []byte, time.Time) {
	t.Helper()
	req := newRequest(t, "PUT", "/bucket/stream", "", data)
	at := signTime
	switch mode {
	case signedStream:
		req = signer.StreamingSignV4(req, testAccessKey, testSecret, "", testRegion, int64(len(data)), at, sha256Hasher{sha256.New()})
	case signedTrailerStream:
		req.Trailer = trailer
		req = signer.StreamingSignV4(req, testAccessKey, testSecret, "", testRegion, int64(len(data)), at, sha256Hasher{sha256.New()})
	case unsignedTrailerStream:
		req.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
		at = time.Now()
		req = signer.SignV4Trailer(*req, testAccessKey, testSecret, "", testRegion, trailer)
	}
	// minio-go computes Content-Length 0 for empty payloads; send the
	// stream with its real length.
	enc, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("encode body: %v", err)
	}
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(enc)), int64(len(enc))
	r, body := wire(t, req)
	return r, body, at
}

func crc32Trailer(t testing.TB, data []byte) http.Header {
	return http.Header{"x-amz-checksum-crc32": {checksumB64(t, "CRC32", data)}}
}

func TestBodyChunked(t *testing.T) {
	const chunk = 64 << 10
	for _, mode := range []streamMode{signedStream, signedTrailerStream, unsignedTrailerStream} {
		for _, size := range []int{0, 1, 1000, chunk, chunk + 1, 3*chunk + 5} {
			t.Run(fmt.Sprintf("%v/%d", mode, size), func(t *testing.T) {
				data := payload(size)
				var trailer http.Header
				if mode != signedStream {
					trailer = crc32Trailer(t, data)
				}
				r, enc, at := streamRequest(t, mode, data, trailer)
				res, err := sigv4.Verify(t.Context(), r, creds, at)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if res.DecodedLength != int64(size) {
					t.Errorf("DecodedLength = %d, want %d", res.DecodedLength, size)
				}
				body := res.Body(bytes.NewReader(enc))
				got, err := io.ReadAll(body)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("decoded %d bytes, want %d equal bytes", len(got), len(data))
				}
				if mode != signedStream {
					if got, want := body.Trailer()["x-amz-checksum-crc32"], trailer["x-amz-checksum-crc32"][0]; got != want {
						t.Errorf("trailer crc32 = %q, want %q", got, want)
					}
				}

				// Wrong decoded length.
				for _, d := range []int64{-1, 1} {
					if int64(size)+d < 0 {
						continue
					}
					bad := *res
					bad.DecodedLength += d
					got, err := io.ReadAll(bad.Body(bytes.NewReader(enc)))
					if !errors.Is(err, sigv4.ErrMalformedChunk) || !bytes.HasPrefix(data, got) {
						t.Errorf("decoded length %+d: got %d bytes, %v; want ErrMalformedChunk", d, len(got), err)
					}
				}

				// Truncated anywhere: an error, never EOF, and only data sent.
				for cut := 0; cut < len(enc); cut += 1 + len(enc)/50 {
					got, err := io.ReadAll(res.Body(bytes.NewReader(enc[:cut])))
					// minio-go ends an unsigned trailer with a redundant CRLF.
					redundant := mode == unsignedTrailerStream && cut == len(enc)-2 && bytes.Equal(got, data)
					if (err == nil && !redundant) || !bytes.HasPrefix(data, got) {
						t.Fatalf("truncated at %d of %d: got %d bytes, %v; want an error", cut, len(enc), len(got), err)
					}
				}
				got, err = io.ReadAll(res.Body(bytes.NewReader(enc[:len(enc)-1])))
				if mode == signedStream && (err == nil || !bytes.Equal(got, data)) {
					t.Errorf("last byte cut: got %d bytes, %v; want all data and an error", len(got), err)
				}

				// Trailing garbage.
				_, err = io.ReadAll(res.Body(io.MultiReader(bytes.NewReader(enc), bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n")))))
				if !errors.Is(err, sigv4.ErrMalformedChunk) {
					t.Errorf("trailing request: got %v, want ErrMalformedChunk", err)
				}
			})
		}
	}
}

// frames splits an aws-chunked body into its chunks (header, data, CRLF)
// and the rest (final chunk and trailer).
func frames(t *testing.T, enc []byte) (chunks [][]byte, rest []byte) {
	t.Helper()
	for {
		i := bytes.Index(enc, []byte("\r\n"))
		hdr, _, _ := bytes.Cut(enc[:i], []byte(";"))
		n, err := strconv.ParseInt(string(hdr), 16, 64)
		if err != nil {
			t.Fatalf("frame header %q: %v", enc[:i], err)
		}
		if n == 0 {
			return chunks, enc
		}
		end := i + 2 + int(n) + 2
		chunks = append(chunks, enc[:end:end])
		enc = enc[end:]
	}
}

func TestBodyChunkedTampered(t *testing.T) {
	const chunk = 64 << 10
	data := payload(3 * chunk)
	for _, mode := range []streamMode{signedStream, signedTrailerStream} {
		t.Run(mode.String(), func(t *testing.T) {
			r, enc, at := streamRequest(t, mode, data, crc32Trailer(t, data))
			res, err := sigv4.Verify(t.Context(), r, creds, at)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			chunks, rest := frames(t, enc)
			if len(chunks) != 3 {
				t.Fatalf("got %d chunks, want 3", len(chunks))
			}
			tests := []struct {
				name     string
				enc      []byte
				wantData int // verified bytes released before the error
			}{
				{"data of chunk 2", flip(enc, len(chunks[0])+len(chunks[1])/2), chunk},
				{"data of chunk 1", flip(enc, 200), 0},
				{"signature of chunk 3", flip(enc, len(chunks[0])+len(chunks[1])+30), 2 * chunk},
				{"final chunk signature", flip(enc, len(enc)-len(rest)+30), 3 * chunk},
				{"reordered", concat(chunks[1], chunks[0], chunks[2], rest), 0},
				{"chunk 2 dropped", concat(chunks[0], chunks[2], rest), chunk},
				{"chunk 2 repeated", concat(chunks[0], chunks[1], chunks[1], chunks[2], rest), 2 * chunk},
			}
			if mode == signedTrailerStream {
				tests = append(tests, struct {
					name     string
					enc      []byte
					wantData int
				}{"trailer value", bytes.Replace(enc, []byte("x-amz-checksum-crc32:"), []byte("x-amz-checksum-crc32:A"), 1), 3 * chunk})
			}
			for _, tt := range tests {
				for _, rd := range readers {
					got, err := rd.read(res.Body(bytes.NewReader(tt.enc)))
					if !errors.Is(err, sigv4.ErrMalformedChunk) {
						t.Errorf("%s, %s: got %v, want ErrMalformedChunk", tt.name, rd.name, err)
					}
					// Well-formed chunks whose signatures do not match (a
					// flipped signature digit may no longer be hex: framing).
					if !strings.HasPrefix(tt.name, "signature") && !strings.HasPrefix(tt.name, "final") && !errors.Is(err, sigv4.ErrChunkSignature) {
						t.Errorf("%s, %s: got %v, want ErrChunkSignature", tt.name, rd.name, err)
					}
					if !bytes.Equal(got, data[:tt.wantData]) {
						t.Errorf("%s, %s: released %d bytes, want the first %d", tt.name, rd.name, len(got), tt.wantData)
					}
				}
			}
		})
	}
}

// readers read a PayloadReader to its end in the ways that take its
// different paths: a chunk read straight into the caller's buffer when it
// fits, or through the reader's own chunk buffer. Each returns the bytes
// Read reported (never more) and the first error other than io.EOF.
var readers = []struct {
	name string
	read func(r io.Reader) ([]byte, error)
}{
	{"ReadAll", io.ReadAll},
	{"large reads", func(r io.Reader) ([]byte, error) { return readWith(r, 1<<20) }},
	{"chunk-size reads", func(r io.Reader) ([]byte, error) { return readWith(r, 64<<10) }},
	{"small reads", func(r io.Reader) ([]byte, error) { return readWith(r, 1000) }},
}

// readWith reads r to its end with a buffer of n bytes, poisoned before
// each Read so that bytes Read did not report are never counted.
func readWith(r io.Reader, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for {
		for i := range buf {
			buf[i] = 0xee
		}
		m, err := r.Read(buf)
		out = append(out, buf[:m]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestBodyChunkedReaders decodes signed streams of several sizes with every
// reader, many at once: the pooled header readers and chunk buffers must
// never mix two bodies up, and a reader used after its end (or error)
// must keep returning that end.
func TestBodyChunkedReaders(t *testing.T) {
	type stream struct {
		res  *sigv4.Result
		enc  []byte
		data []byte
	}
	var streams []stream
	for i, size := range []int{1, 4 << 10, 64 << 10, 64<<10 + 1, 200_000} {
		data := payload(size + i)
		r, enc, at := streamRequest(t, signedStream, data, nil)
		res, err := sigv4.Verify(t.Context(), r, creds, at)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, stream{res, enc, data})
	}
	// Interleaved in one goroutine, where a buffer given back too early
	// is the next one taken: the second reader must not overwrite what
	// the first still holds.
	a, b := streams[2], streams[3]
	ra, rb := a.res.Body(bytes.NewReader(a.enc)), b.res.Body(bytes.NewReader(b.enc))
	head := make([]byte, 1000)
	if _, err := io.ReadFull(ra, head); err != nil {
		t.Fatal(err)
	}
	if got, err := readWith(rb, 1000); err != nil || !bytes.Equal(got, b.data) {
		t.Fatalf("second reader: got %d bytes, %v", len(got), err)
	}
	if rest, err := readWith(ra, 1000); err != nil || !bytes.Equal(append(head, rest...), a.data) {
		t.Fatalf("first reader, interleaved: got %d bytes, %v; want its own %d", len(head)+len(rest), err, len(a.data))
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				s := streams[(g+i)%len(streams)]
				rd := readers[(g+i/len(streams))%len(readers)]
				body := s.res.Body(bytes.NewReader(s.enc))
				got, err := rd.read(body)
				if err != nil || !bytes.Equal(got, s.data) {
					t.Errorf("%s, %d bytes: got %d bytes, %v", rd.name, len(s.data), len(got), err)
					return
				}
				if n, err := body.Read(make([]byte, 10)); n != 0 || err != io.EOF {
					t.Errorf("%s: Read after the end = %d, %v; want 0, EOF", rd.name, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestBodyChunkedNoSeed checks that a Result of a signed streaming mode
// that Verify did not make (no seed signature, no key) verifies nothing.
func TestBodyChunkedNoSeed(t *testing.T) {
	data := payload(100)
	r, enc, at := streamRequest(t, signedStream, data, nil)
	res, err := sigv4.Verify(t.Context(), r, creds, at)
	if err != nil {
		t.Fatal(err)
	}
	forged := sigv4.Result{Mode: res.Mode, DecodedLength: res.DecodedLength}
	got, err := io.ReadAll(forged.Body(bytes.NewReader(enc)))
	if len(got) != 0 || !errors.Is(err, sigv4.ErrChunkSignature) {
		t.Fatalf("got %d bytes, %v; want none and ErrChunkSignature", len(got), err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestBodyTrailerChecksum(t *testing.T) {
	data := payload(100000)
	for _, mode := range []streamMode{signedTrailerStream, unsignedTrailerStream} {
		for _, alg := range []string{"CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"} {
			name := "x-amz-checksum-" + map[string]string{"CRC32": "crc32", "CRC32C": "crc32c", "CRC64NVME": "crc64nvme", "SHA1": "sha1", "SHA256": "sha256"}[alg]
			for _, right := range []bool{true, false} {
				t.Run(fmt.Sprintf("%v/%s/%t", mode, alg, right), func(t *testing.T) {
					sumOf := data
					if !right {
						sumOf = []byte("something else")
					}
					r, enc, at := streamRequest(t, mode, data, http.Header{name: {checksumB64(t, alg, sumOf)}})
					res, err := sigv4.Verify(t.Context(), r, creds, at)
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					if res.Checksum != alg {
						t.Errorf("Checksum = %q, want %q", res.Checksum, alg)
					}
					got, err := io.ReadAll(res.Body(bytes.NewReader(enc)))
					if right && (err != nil || !bytes.Equal(got, data)) {
						t.Errorf("got %d bytes, %v; want all, nil", len(got), err)
					}
					if !right && !errors.Is(err, sigv4.ErrBadDigest) {
						t.Errorf("got %v, want ErrBadDigest", err)
					}
				})
			}
		}
	}
}

// TestBodyHeaderChecksum sends the checksum as a header, signed by the AWS SDK.
func TestBodyHeaderChecksum(t *testing.T) {
	data := []byte("checksummed payload")
	for _, right := range []bool{true, false} {
		sumOf := data
		if !right {
			sumOf = []byte("other")
		}
		req := newRequest(t, "PUT", "/bucket/key", "", data)
		req.Header.Set("X-Amz-Checksum-Crc32c", checksumB64(t, "crc32c", sumOf))
		awsSign(t, req, testSecret, "UNSIGNED-PAYLOAD", signTime)
		r, body := wire(t, req)
		res, err := sigv4.Verify(t.Context(), r, creds, signTime)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		_, err = io.ReadAll(res.Body(bytes.NewReader(body)))
		if right != (err == nil) || (!right && !errors.Is(err, sigv4.ErrBadDigest)) {
			t.Errorf("right=%t: got %v", right, err)
		}
	}
}

func TestChecksumVectors(t *testing.T) {
	check := []byte("123456789")
	tests := []struct {
		alg  string
		want uint64
	}{
		{"CRC32", 0xcbf43926},
		{"x-amz-checksum-crc32c", 0xe3069283},
		{"crc64nvme", 0xae8b14860a799888},
	}
	for _, tt := range tests {
		h, err := sigv4.NewChecksum(tt.alg)
		if err != nil {
			t.Fatalf("NewChecksum(%q): %v", tt.alg, err)
		}
		h.Write(check)
		var got uint64
		for _, b := range h.Sum(nil) {
			got = got<<8 | uint64(b)
		}
		if got != tt.want {
			t.Errorf("%s(123456789) = %#x, want %#x", tt.alg, got, tt.want)
		}
	}
	if _, err := sigv4.NewChecksum("md5"); !errors.Is(err, sigv4.ErrUnsupportedChecksum) {
		t.Errorf("NewChecksum(md5): got %v, want ErrUnsupportedChecksum", err)
	}
	h, _ := sigv4.NewChecksum("crc32")
	h.Write(check)
	if err := sigv4.CheckChecksum(h, base64.StdEncoding.EncodeToString(crc32.NewIEEE().Sum(nil))); !errors.Is(err, sigv4.ErrBadDigest) {
		t.Errorf("CheckChecksum mismatch: got %v, want ErrBadDigest", err)
	}
}

// TestBodyReadError checks that a body that cannot be read to its end
// (broken HTTP framing, closed connection) is ErrIncompleteBody in the
// plain modes and ErrMalformedChunk in the aws-chunked ones.
func TestBodyReadError(t *testing.T) {
	broken := errors.New("broken chunked framing")
	data := payload(100)
	plain := newRequest(t, "PUT", "/bucket/key", "", data)
	awsSign(t, plain, testSecret, sha256Hex(data), signTime)
	pr, _ := wire(t, plain)
	r, enc, at := streamRequest(t, signedStream, data, nil)
	for _, tt := range []struct {
		name    string
		req     *sigv4.Request
		enc     []byte
		at      time.Time
		wantErr error
	}{
		{"signed hash", pr, data, signTime, sigv4.ErrIncompleteBody},
		{"aws-chunked", r, enc, at, sigv4.ErrMalformedChunk},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := sigv4.Verify(t.Context(), tt.req, creds, tt.at)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			body := io.MultiReader(bytes.NewReader(tt.enc[:len(tt.enc)/2]), iotest.ErrReader(broken))
			_, err = io.ReadAll(res.Body(body))
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, broken) && tt.wantErr == sigv4.ErrIncompleteBody {
				t.Fatalf("got %v, want %v wrapping %v", err, tt.wantErr, broken)
			}
		})
	}
}

// BenchmarkVerifyStreaming verifies a 4 KiB PUT signed as minio-go signs
// it over plain HTTP (STREAMING-AWS4-HMAC-SHA256-PAYLOAD: one data chunk
// and the final empty one) and reads its body to the end, as the S3 front
// end does for each such request.
func BenchmarkVerifyStreaming(b *testing.B) {
	data := payload(4 << 10)
	r, body, at := streamRequest(b, signedStream, data, nil)
	ctx := b.Context()
	dst := make([]byte, 32<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := sigv4.Verify(ctx, r, creds, at)
		if err != nil {
			b.Fatal(err)
		}
		p := res.Body(bytes.NewReader(body))
		n := 0
		for {
			m, err := p.Read(dst[n:])
			n += m
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if n != len(data) {
			b.Fatalf("read %d bytes, want %d", n, len(data))
		}
	}
}
