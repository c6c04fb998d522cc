package sigv4_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// Review tests (SIGREVIEW): aws-chunked bodies re-encoded with arbitrary
// chunk sizes, signed with the request's seed signature, read with many
// buffer sizes through readers that split the encoded body anywhere.

func hm(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// chunkSigner signs chunks of one request, chained from its seed.
type chunkSigner struct {
	key            []byte
	amzDate, scope string
	prev           string
}

func newChunkSigner(t testing.TB, r *sigv4.Request) *chunkSigner {
	t.Helper()
	auth := r.Header("Authorization")
	i := strings.Index(auth, "Signature=")
	j := strings.Index(auth, "Credential=")
	if i < 0 || j < 0 {
		t.Fatalf("authorization %q", auth)
	}
	cred := auth[j+len("Credential="):]
	cred = cred[:strings.IndexByte(cred, ',')]
	parts := strings.SplitN(cred, "/", 2) // access key / scope
	scope := parts[1]
	sp := strings.Split(scope, "/")
	k := hm([]byte("AWS4"+testSecret), sp[0])
	k = hm(k, sp[1])
	k = hm(k, sp[2])
	k = hm(k, "aws4_request")
	return &chunkSigner{key: k, amzDate: r.Header("X-Amz-Date"), scope: scope, prev: auth[i+len("Signature="):][:64]}
}

func (s *chunkSigner) chunk(data []byte) []byte {
	sum := sha256.Sum256(data)
	empty := sha256.Sum256(nil)
	sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + s.amzDate + "\n" + s.scope + "\n" + s.prev + "\n" + hex.EncodeToString(empty[:]) + "\n" + hex.EncodeToString(sum[:])
	s.prev = hex.EncodeToString(hm(s.key, sts))
	return []byte(fmt.Sprintf("%x;chunk-signature=%s\r\n%s\r\n", len(data), s.prev, data))
}

// encode signs data as chunks of the given sizes (the rest in the last),
// then the final chunk (its CRLF ends the body).
func encode(t testing.TB, r *sigv4.Request, data []byte, sizes []int) (enc []byte, chunkEnds []int) {
	s := newChunkSigner(t, r)
	off := 0
	for _, n := range sizes {
		if off+n > len(data) {
			n = len(data) - off
		}
		if n == 0 {
			break
		}
		enc = append(enc, s.chunk(data[off:off+n])...)
		off += n
		chunkEnds = append(chunkEnds, off)
	}
	if off < len(data) {
		enc = append(enc, s.chunk(data[off:])...)
		chunkEnds = append(chunkEnds, len(data))
	}
	enc = append(enc, s.chunk(nil)...) // "0;chunk-signature=...\r\n\r\n"
	return enc, chunkEnds
}

type splitter struct {
	name string
	wrap func(io.Reader) io.Reader
}

var splitters = []splitter{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one-byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data-err", iotest.DataErrReader},
}

// readSized reads with buffers of varying size (sizes cycled), poisoning
// each buffer first, and checks that everything reported is a prefix of
// want as it goes (verified bytes only, never more).
func readSized(t *testing.T, r io.Reader, sizes []int, want []byte) ([]byte, error) {
	var out []byte
	poison := make([]byte, slices.Max(sizes))
	for i := 0; ; i++ {
		buf := poison[:sizes[i%len(sizes)]]
		for j := range buf {
			buf[j] = 0xee
		}
		n, err := r.Read(buf)
		if n < 0 || n > len(buf) {
			t.Fatalf("Read returned n=%d for a %d-byte buffer", n, len(buf))
		}
		if len(out)+n > len(want) || !bytes.Equal(buf[:n], want[len(out):len(out)+n]) {
			t.Fatalf("released %d bytes that are not the signed prefix", len(out)+n)
		}
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			if n != 0 {
				t.Errorf("n=%d with error %v", n, err)
			}
			return out, err
		}
		if i > 10_000_000 {
			t.Fatal("no progress")
		}
	}
}

func TestReviewChunkedReadPatterns(t *testing.T) {
	const total = 200_003
	data := payload(total)
	r, _, at := streamRequest(t, signedStream, data, nil)
	res, err := sigv4.Verify(t.Context(), r, creds, at)
	if err != nil {
		t.Fatal(err)
	}
	chunkings := [][]int{
		{64 << 10},
		{1, 1, 1, 4096, 4095, 65536, 65537},
		{7, 512, 513, 32 << 10, 1 << 20},
		{total},
		{16 << 10, 100_000},
	}
	readSizes := [][]int{{1}, {7}, {512}, {4096}, {65535}, {65536}, {65537}, {1 << 20}, {1, 65536, 3, 200_003}, {100_000, 5}}
	for ci, ch := range chunkings {
		enc, ends := encode(t, r, data, ch)
		for _, sp := range splitters {
			for _, rs := range readSizes {
				name := fmt.Sprintf("chunking %d, %s, reads %v", ci, sp.name, rs)
				got, err := readSized(t, res.Body(sp.wrap(bytes.NewReader(enc))), rs, data)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s: clean: got %d bytes, %v", name, len(got), err)
				}
				// Tamper the last byte of each chunk's data: exactly the
				// chunks before it may be released.
				for k, end := range ends {
					pos := encOffsetOfData(enc, end-1)
					bad := flip(enc, pos)
					got, err := readSized(t, res.Body(sp.wrap(bytes.NewReader(bad))), rs, data)
					want := 0
					if k > 0 {
						want = ends[k-1]
					}
					if !errors.Is(err, sigv4.ErrChunkSignature) || len(got) != want {
						t.Fatalf("%s: chunk %d tampered: got %d bytes, %v; want %d and ErrChunkSignature", name, k, len(got), err, want)
					}
				}
				// Final chunk missing / truncated anywhere in the last chunk:
				// never io.EOF.
				for _, cut := range []int{len(enc) - 2, len(enc) - 90, len(enc) - 120} {
					got, err := readSized(t, res.Body(sp.wrap(bytes.NewReader(enc[:cut]))), rs, data)
					if err == nil {
						t.Fatalf("%s: cut at %d: EOF after %d bytes", name, cut, len(got))
					}
				}
			}
		}
	}
}

// encOffsetOfData maps a decoded offset to its offset in enc.
func encOffsetOfData(enc []byte, off int) int {
	pos, dec := 0, 0
	for {
		nl := bytes.Index(enc[pos:], []byte("\r\n"))
		hdr := string(enc[pos : pos+nl])
		var n int
		fmt.Sscanf(strings.SplitN(hdr, ";", 2)[0], "%x", &n)
		start := pos + nl + 2
		if off < dec+n {
			return start + off - dec
		}
		dec += n
		pos = start + n + 2
	}
}

// TestReviewChunkedHostileHeaders: hostile chunk-size lines never panic,
// never release unsigned bytes, never end in io.EOF.
func TestReviewChunkedHostileHeaders(t *testing.T) {
	data := payload(1000)
	r, _, at := streamRequest(t, signedStream, data, nil)
	res, err := sigv4.Verify(t.Context(), r, creds, at)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := encode(t, r, data, []int{400})
	sigLine := enc[bytes.IndexByte(enc, ';'):bytes.Index(enc, []byte("\r\n"))]
	for _, h := range []string{
		"-190", "+190", "0x190", "190 ", " 190", "00000000000000190", "ffffffffffffffff", "10000000000000000",
		"1000001", "fffffff", "7fffffffffffffff", "", "g", "190\x00",
	} {
		bad := append([]byte(h), enc[bytes.IndexByte(enc, ';'):]...)
		got, err := io.ReadAll(res.Body(bytes.NewReader(bad)))
		if err == nil || len(got) != 0 {
			t.Errorf("size %q: got %d bytes, %v", h, len(got), err)
		}
	}
	// An oversize header line.
	long := append([]byte("190;chunk-signature="+strings.Repeat("a", 5000)), enc[bytes.Index(enc, []byte("\r\n")):]...)
	if got, err := io.ReadAll(res.Body(bytes.NewReader(long))); err == nil || len(got) != 0 {
		t.Errorf("long header: got %d bytes, %v", len(got), err)
	}
	_ = sigLine
	// x-amz-decoded-content-length mismatch: the same signed chunks for a
	// Result expecting one byte fewer / more.
	for _, d := range []int64{-1, 1} {
		res2 := *res
		res2.DecodedLength += d
		got, err := readSized(t, res2.Body(bytes.NewReader(enc)), []int{1 << 20}, data)
		if err == nil {
			t.Errorf("decoded length %+d: EOF after %d bytes", d, len(got))
		}
	}
}

// TestReviewChunkPoolNoCrossTalk: many readers, random read sizes, some
// tampered so they end in an error mid-stream, concurrently: every
// reader's output is its own payload's prefix.
func TestReviewChunkPoolNoCrossTalk(t *testing.T) {
	type st struct {
		res       *sigv4.Result
		enc, data []byte
		ends      []int
	}
	var sts []st
	for i, size := range []int{3000, 70_000, 140_001} {
		data := payload(size)
		for j := range data {
			data[j] ^= byte(i * 37) // distinct payloads
		}
		r, _, at := streamRequest(t, signedStream, data, nil)
		res, err := sigv4.Verify(t.Context(), r, creds, at)
		if err != nil {
			t.Fatal(err)
		}
		enc, ends := encode(t, r, data, []int{1000, 65536, 65536})
		sts = append(sts, st{res, enc, data, ends})
	}
	done := make(chan bool)
	for g := range 6 {
		go func() {
			defer func() { done <- true }()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 60 {
				s := sts[rng.IntN(len(sts))]
				enc := s.enc
				tampered := rng.IntN(3) == 0
				if tampered {
					enc = flip(enc, encOffsetOfData(enc, rng.IntN(len(s.data))))
				}
				body := s.res.Body(iotest.HalfReader(bytes.NewReader(enc)))
				var out []byte
				var err error
				for {
					buf := make([]byte, 1+rng.IntN(80_000))
					var n int
					n, err = body.Read(buf)
					out = append(out, buf[:n]...)
					if err != nil {
						break
					}
				}
				if !bytes.HasPrefix(s.data, out) {
					t.Errorf("reader released bytes not its own")
					return
				}
				if tampered == (err == io.EOF) {
					t.Errorf("tampered=%v, err=%v", tampered, err)
					return
				}
			}
		}()
	}
	for range 6 {
		<-done
	}
}
