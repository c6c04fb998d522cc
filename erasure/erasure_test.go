package erasure

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
)

// shards holds encoded shard files in memory and opens them with faults.
type shards struct {
	files [][]byte
	lost  map[int]bool // open fails
}

func (s *shards) open(_ context.Context, j int, off, length int64) (io.ReadCloser, error) {
	if s.lost[j] {
		return nil, fmt.Errorf("shard %d lost", j)
	}
	f := s.files[j]
	if off > int64(len(f)) {
		off = int64(len(f))
	}
	end := min(off+length, int64(len(f)))
	return io.NopCloser(bytes.NewReader(f[off:end])), nil
}

func encode(t testing.TB, c *Codec, data []byte) *shards {
	t.Helper()
	n := c.cfg.Data + c.cfg.Parity
	bufs := make([]*bytes.Buffer, n)
	ws := make([]io.Writer, n)
	for j := range bufs {
		bufs[j] = new(bytes.Buffer)
		ws[j] = bufs[j]
	}
	h := md5.New()
	res, err := c.Encode(context.Background(), bytes.NewReader(data), ws, EncodeOptions{Hash: h})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if res.Size != int64(len(data)) {
		t.Fatalf("Encode size = %d, want %d", res.Size, len(data))
	}
	if got, want := h.Sum(nil), md5.Sum(data); !bytes.Equal(got, want[:]) {
		t.Fatalf("Encode hash = %x, want %x", got, want)
	}
	s := &shards{lost: map[int]bool{}}
	l := c.Layout(int64(len(data)))
	for j, b := range bufs {
		if int64(b.Len()) != l.ShardSize() {
			t.Fatalf("shard %d size = %d, want %d", j, b.Len(), l.ShardSize())
		}
		s.files = append(s.files, b.Bytes())
	}
	return s
}

func decode(c *Codec, s *shards, size, off, length int64) ([]byte, DecodeResult, error) {
	var out bytes.Buffer
	res, err := c.Decode(context.Background(), &out, size, off, length, s.open)
	return out.Bytes(), res, err
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	configs := []Config{
		{Data: 1, Parity: 0, StripeSize: 4096},
		{Data: 1, Parity: 1, StripeSize: 4096},
		{Data: 2, Parity: 2, StripeSize: 4096},
		{Data: 3, Parity: 2, StripeSize: 1000}, // k does not divide the stripe
		{Data: 4, Parity: 2, StripeSize: 64 << 10},
		{Data: 8, Parity: 4, StripeSize: 64 << 10},
	}
	sizes := []int{0, 1, 2, 999, 1000, 1001, 4095, 4096, 4097, 3*4096 + 17, 200_000}
	for _, cfg := range configs {
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%d+%d/stripe%d/size%d", cfg.Data, cfg.Parity, cfg.StripeSize, size), func(t *testing.T) {
				data := randBytes(uint64(size), size)
				s := encode(t, c, data)
				got, res, err := decode(c, s, int64(size), 0, int64(size))
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("Decode returned different bytes")
				}
				if len(res.Bad) != 0 {
					t.Fatalf("Bad = %v, want none", res.Bad)
				}
			})
		}
	}
}

// TestLostShards loses every combination of up to m shards.
func TestLostShards(t *testing.T) {
	for _, cfg := range []Config{{Data: 2, Parity: 2, StripeSize: 1 << 12}, {Data: 4, Parity: 2, StripeSize: 1 << 12}, {Data: 3, Parity: 3, StripeSize: 999}} {
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n := cfg.Data + cfg.Parity
		data := randBytes(7, 5*int(cfg.StripeSize)+123)
		s := encode(t, c, data)
		for mask := range 1 << n {
			lost := map[int]bool{}
			for j := range n {
				if mask&(1<<j) != 0 {
					lost[j] = true
				}
			}
			s.lost = lost
			got, _, err := decode(c, s, int64(len(data)), 0, int64(len(data)))
			if len(lost) <= cfg.Parity {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%d+%d lost %v: err %v, equal %v", cfg.Data, cfg.Parity, lost, err, bytes.Equal(got, data))
				}
				continue
			}
			if !errors.Is(err, ErrTooFewShards) {
				t.Fatalf("%d+%d lost %v: err = %v, want ErrTooFewShards", cfg.Data, cfg.Parity, lost, err)
			}
		}
	}
}

// TestCorruptByte flips one byte anywhere in any shard: it is detected,
// reported and the read still returns the original bytes.
func TestCorruptByte(t *testing.T) {
	c, err := New(Config{Data: 4, Parity: 2, StripeSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(3, 3*4096+555)
	s := encode(t, c, data)
	for j := range s.files {
		for _, pos := range []int{0, 15, 16, 17, 500, len(s.files[j]) / 2, len(s.files[j]) - 1} {
			orig := s.files[j]
			s.files[j] = bytes.Clone(orig)
			s.files[j][pos] ^= 0x40
			got, res, err := decode(c, s, int64(len(data)), 0, int64(len(data)))
			s.files[j] = orig
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("flip shard %d pos %d: err %v equal %v", j, pos, err, bytes.Equal(got, data))
			}
			// Parity shards are read only when needed, so only a data
			// shard's damage is necessarily seen.
			if j < 4 && (len(res.Bad) != 1 || res.Bad[0] != j) {
				t.Fatalf("flip shard %d pos %d: Bad = %v", j, pos, res.Bad)
			}
		}
	}
}

func TestRanges(t *testing.T) {
	c, err := New(Config{Data: 3, Parity: 2, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(9, 4321)
	s := encode(t, c, data)
	s.lost = map[int]bool{1: true}
	size := int64(len(data))
	for _, r := range [][2]int64{{0, 1}, {0, 0}, {999, 2}, {1000, 1000}, {1, size - 2}, {size - 1, 1}, {333, 334}, {4000, 321}} {
		got, _, err := decode(c, s, size, r[0], r[1])
		if err != nil {
			t.Fatalf("range %v: %v", r, err)
		}
		if want := data[r[0] : r[0]+r[1]]; !bytes.Equal(got, want) {
			t.Fatalf("range %v: got %d bytes, want %d", r, len(got), len(want))
		}
	}
	if _, _, err := decode(c, s, size, size-1, 2); err == nil {
		t.Fatalf("range past the end: no error")
	}
}

// TestRangeReadsOnlyCoveredStripes checks that a range opens shards at the
// covering stripes only.
func TestRangeReadsOnlyCoveredStripes(t *testing.T) {
	c, err := New(Config{Data: 2, Parity: 1, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(1, 10_000)
	s := encode(t, c, data)
	l := c.Layout(int64(len(data)))
	var mu sync.Mutex
	var opened [][2]int64
	open := func(ctx context.Context, j int, off, length int64) (io.ReadCloser, error) {
		mu.Lock()
		defer mu.Unlock()
		opened = append(opened, [2]int64{off, length})
		return s.open(ctx, j, off, length)
	}
	var out bytes.Buffer
	if _, err := c.Decode(context.Background(), &out, int64(len(data)), 5500, 1000, open); err != nil {
		t.Fatal(err)
	}
	for _, o := range opened {
		if o[0] != l.ShardOffset(5) || o[1] != l.ShardOffset(7)-l.ShardOffset(5) {
			t.Fatalf("opened %v, want stripes 5..6", o)
		}
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errors.New("disk on fire")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestEncodeWriterFailures(t *testing.T) {
	c, err := New(Config{Data: 2, Parity: 2, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(2, 10_000)
	mk := func(failing int) []io.Writer {
		ws := make([]io.Writer, 4)
		for j := range ws {
			ws[j] = io.Discard
			if j < failing {
				ws[j] = &failingWriter{n: 2000}
			}
		}
		return ws
	}
	res, err := c.Encode(context.Background(), bytes.NewReader(data), mk(1), EncodeOptions{Quorum: 3})
	if err != nil {
		t.Fatalf("one failing writer, quorum 3: %v", err)
	}
	if res.Errs[0] == nil || res.Errs[1] != nil {
		t.Fatalf("Errs = %v, want only writer 0 failed", res.Errs)
	}
	if _, err := c.Encode(context.Background(), bytes.NewReader(data), mk(2), EncodeOptions{Quorum: 3}); !errors.Is(err, ErrWriteQuorum) {
		t.Fatalf("two failing writers, quorum 3: err = %v, want ErrWriteQuorum", err)
	}
}

type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("client went away")
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestEncodeReaderFails(t *testing.T) {
	c, err := New(Config{Data: 2, Parity: 1, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ws := []io.Writer{io.Discard, io.Discard, io.Discard}
	_, err = c.Encode(context.Background(), &failingReader{r: bytes.NewReader(randBytes(1, 5000)), n: 2500}, ws, EncodeOptions{})
	if err == nil {
		t.Fatalf("Encode with failing reader: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Encode(ctx, bytes.NewReader(randBytes(1, 5000)), ws, EncodeOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Encode with cancelled ctx: err = %v", err)
	}
}

func TestRebuild(t *testing.T) {
	c, err := New(Config{Data: 4, Parity: 2, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(5, 7777)
	s := encode(t, c, data)
	want := [][]byte{s.files[1], s.files[5]}
	s.lost = map[int]bool{1: true, 5: true}
	var b1, b5 bytes.Buffer
	if _, err := c.Rebuild(context.Background(), int64(len(data)), s.open, map[int]io.Writer{1: &b1, 5: &b5}); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if !bytes.Equal(b1.Bytes(), want[0]) || !bytes.Equal(b5.Bytes(), want[1]) {
		t.Fatalf("rebuilt shards differ from the originals")
	}
}

// FuzzDecode damages shards arbitrarily: decoding must return the original
// bytes, or fail when more than m shards are damaged; never wrong bytes.
func FuzzDecode(f *testing.F) {
	f.Add(uint64(1), uint16(5000), uint8(4), uint8(2), uint16(0b000011), uint64(0), uint16(0), uint16(100))
	f.Add(uint64(2), uint16(1), uint8(1), uint8(1), uint16(0), uint64(1), uint16(1), uint16(1))
	f.Add(uint64(3), uint16(65535), uint8(3), uint8(3), uint16(0b101), uint64(99), uint16(60000), uint16(5000))
	f.Fuzz(func(t *testing.T, seed uint64, size uint16, k, m uint8, lostMask uint16, corruptSeed uint64, off, length uint16) {
		kk, mm := int(k%8)+1, int(m%5)
		c, err := New(Config{Data: kk, Parity: mm, StripeSize: 1024 + int64(seed%1000)})
		if err != nil {
			t.Fatal(err)
		}
		data := randBytes(seed, int(size))
		s := encode(t, c, data)
		n := kk + mm
		damaged := map[int]bool{}
		for j := range n {
			if lostMask&(1<<j) != 0 {
				s.lost[j] = true
				damaged[j] = true
			}
		}
		// Flip a few bytes in chosen shards.
		r := rand.New(rand.NewPCG(corruptSeed, 2))
		for range int(corruptSeed % 4) {
			j := r.IntN(n)
			if len(s.files[j]) == 0 {
				continue
			}
			s.files[j] = bytes.Clone(s.files[j])
			s.files[j][r.IntN(len(s.files[j]))] ^= byte(1 + r.IntN(255))
			damaged[j] = true
		}
		o := min(int64(off), int64(size))
		ln := min(int64(length), int64(size)-o)
		got, _, err := decode(c, s, int64(size), o, ln)
		if err != nil {
			if len(damaged) <= mm {
				t.Fatalf("%d+%d damaged %v: %v", kk, mm, damaged, err)
			}
			return
		}
		if !bytes.Equal(got, data[o:o+ln]) {
			t.Fatalf("%d+%d damaged %v: wrong bytes", kk, mm, damaged)
		}
	})
}

func TestVerify(t *testing.T) {
	c, err := New(Config{Data: 2, Parity: 1, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(4, 3333)
	s := encode(t, c, data)
	for j := range 3 {
		if err := c.Verify(context.Background(), int64(len(data)), j, s.open); err != nil {
			t.Fatalf("Verify(%d) of an intact shard: %v", j, err)
		}
	}
	s.files[1] = bytes.Clone(s.files[1])
	s.files[1][700] ^= 1
	if err := c.Verify(context.Background(), int64(len(data)), 1, s.open); err == nil {
		t.Fatalf("Verify of a corrupt shard: no error")
	}
	s.files[2] = s.files[2][:len(s.files[2])-1]
	if err := c.Verify(context.Background(), int64(len(data)), 2, s.open); err == nil {
		t.Fatalf("Verify of a truncated shard: no error")
	}
}

func TestVerifyLongShard(t *testing.T) {
	c, err := New(Config{Data: 2, Parity: 1, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(4, 3333)
	s := encode(t, c, data)
	s.files[0] = append(bytes.Clone(s.files[0]), 0)
	if err := c.Verify(context.Background(), int64(len(data)), 0, s.open); err == nil {
		t.Fatalf("Verify of a shard with a trailing byte: no error")
	}
}

// TestPresent: a shard is present at its full length, or not: missing,
// one byte short, one byte long. A flipped byte is not Present's to find.
func TestPresent(t *testing.T) {
	c, err := New(Config{Data: 2, Parity: 1, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(4, 3333)
	for _, tc := range []struct {
		name  string
		shard func(s *shards)
		ok    bool
	}{
		{"intact", func(*shards) {}, true},
		{"flipped byte", func(s *shards) { s.files[1] = bytes.Clone(s.files[1]); s.files[1][7] ^= 1 }, true},
		{"missing", func(s *shards) { s.lost = map[int]bool{1: true} }, false},
		{"empty", func(s *shards) { s.files[1] = nil }, false},
		{"one byte short", func(s *shards) { s.files[1] = s.files[1][:len(s.files[1])-1] }, false},
		{"one byte long", func(s *shards) { s.files[1] = append(bytes.Clone(s.files[1]), 0) }, false},
	} {
		s := encode(t, c, data)
		tc.shard(s)
		if err := c.Present(context.Background(), int64(len(data)), 1, s.open); (err == nil) != tc.ok {
			t.Errorf("%s: Present = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if err := c.Present(context.Background(), 0, 1, (&shards{lost: map[int]bool{1: true}}).open); err != nil {
		t.Errorf("an empty artifact has no shard bytes to find: %v", err)
	}
}

// endingReader returns its data, the last bytes together with err.
type endingReader struct {
	data []byte
	err  error
}

func (r *endingReader) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 {
		return n, r.err
	}
	return n, nil
}

func TestEncodeBodyErrors(t *testing.T) {
	c, err := New(Config{Data: 2, Parity: 1, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ws := []io.Writer{io.Discard, io.Discard, io.Discard}
	for _, size := range []int{1, 999, 1000, 2000, 2500} {
		for _, bodyErr := range []error{io.ErrUnexpectedEOF, errors.New("signature mismatch")} {
			r := &endingReader{data: randBytes(1, size), err: bodyErr}
			if _, err := c.Encode(context.Background(), r, ws, EncodeOptions{}); !errors.Is(err, bodyErr) {
				t.Errorf("size %d, body ends with %v: Encode err = %v", size, bodyErr, err)
			}
		}
		r := &endingReader{data: randBytes(1, size), err: io.EOF}
		if res, err := c.Encode(context.Background(), r, ws, EncodeOptions{}); err != nil || res.Size != int64(size) {
			t.Errorf("size %d, data with io.EOF: %d bytes, %v", size, res.Size, err)
		}
	}
}

func TestEncodeCancelledAlwaysFails(t *testing.T) {
	c, err := New(Config{Data: 2, Parity: 1, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ws := []io.Writer{io.Discard, io.Discard, io.Discard}
	for range 200 {
		if _, err := c.Encode(ctx, bytes.NewReader(randBytes(1, 100)), ws, EncodeOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Encode with a cancelled ctx: err = %v", err)
		}
	}
}

func TestDecodeCancelledIsNotDamage(t *testing.T) {
	c, err := New(Config{Data: 2, Parity: 1, StripeSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(1, 5000)
	s := encode(t, c, data)
	ctx, cancel := context.WithCancel(context.Background())
	open := func(octx context.Context, j int, off, length int64) (io.ReadCloser, error) {
		cancel()
		return nil, octx.Err()
	}
	res, err := c.Decode(ctx, io.Discard, int64(len(data)), 0, int64(len(data)), open)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTooFewShards) {
		t.Fatalf("cancelled Decode: err = %v, want context.Canceled", err)
	}
	if len(res.Bad) != 0 {
		t.Fatalf("cancelled Decode blamed shards %v", res.Bad)
	}
	_ = s
}
