package erasure

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"testing"
)

// encodeSized encodes data with EncodeOptions.Size set to size.
func encodeSized(t *testing.T, c *Codec, data []byte, size int64) ([][]byte, error) {
	t.Helper()
	n := c.cfg.Data + c.cfg.Parity
	bufs := make([]bytes.Buffer, n)
	ws := make([]io.Writer, n)
	for j := range bufs {
		ws[j] = &bufs[j]
	}
	_, err := c.Encode(t.Context(), bytes.NewReader(data), ws, EncodeOptions{Size: size})
	out := make([][]byte, n)
	for j := range bufs {
		out[j] = bufs[j].Bytes()
	}
	return out, err
}

// TestEncodeSize checks that a known small size gives the same shards as
// an unknown one (from a buffer of that size), that a body longer than the
// size fails instead of being cut, and that a shorter one is encoded as
// what it is.
func TestEncodeSize(t *testing.T) {
	const stripe = 256 << 10
	for _, k := range []int{1, 2, 3} {
		c, err := New(Config{Data: k, Parity: 2, StripeSize: stripe})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name      string
			len, size int
			wantErr   bool
		}{
			{"1 byte", 1, 1, false},
			{"4 KiB", 4 << 10, 4 << 10, false},
			{"4 KiB + 1", 4<<10 + 1, 4<<10 + 1, false},
			{"100 KiB", 100 << 10, 100 << 10, false},
			{"stripe - 1", stripe - 1, stripe - 1, false},
			{"stripe (hint ignored)", stripe, stripe, false},
			{"body shorter than size", 3000, 5000, false},
			{"body longer than size", 5000, 3000, true},
			{"body one byte longer", 4097, 4096, true},
		} {
			data := randBytes(uint64(tc.len), tc.len)
			got, err := encodeSized(t, c, data, int64(tc.size))
			if tc.wantErr {
				if err == nil {
					t.Errorf("k=%d %s: Encode succeeded, want an error", k, tc.name)
				}
				continue
			}
			if err != nil {
				t.Fatalf("k=%d %s: Encode: %v", k, tc.name, err)
			}
			want := encode(t, c, data)
			for j := range got {
				if !bytes.Equal(got[j], want.files[j]) {
					t.Fatalf("k=%d %s: shard %d differs from the encoding without a size (%d vs %d bytes)", k, tc.name, j, len(got[j]), len(want.files[j]))
				}
			}
			back, _, err := decode(c, &shards{files: got}, int64(tc.len), 0, int64(tc.len))
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("k=%d %s: decode: %v, equal %v", k, tc.name, err, bytes.Equal(back, data))
			}
		}
	}
}

// TestSmallStripeBuffers checks that a small artifact's encode and decode
// take a stripe buffer of their size class, not a full stripe's.
func TestSmallStripeBuffers(t *testing.T) {
	c, err := New(Config{Data: 2, Parity: 2, StripeSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		bs        int64
		wantClass int
	}{{1, 0}, {2 << 10, 0}, {4 << 10, 0}, {4<<10 + 1, 1}, {64 << 10, 1}, {64<<10 + 1, 2}, {512 << 10, 2}} {
		s := c.getStripe(tc.bs)
		if s.class != tc.wantClass || s.max < tc.bs {
			t.Errorf("getStripe(%d): class %d max %d, want class %d", tc.bs, s.class, s.max, tc.wantClass)
		}
		s.shape(tc.bs, 12345) // must fit, aligned for any offset
		c.putStripe(s)
	}
	rd := c.newReader(c.Layout(4<<10), 0, 4<<10, nil, nil)
	if rd.s.class != 0 {
		t.Errorf("reader of 4 KiB: stripe class %d, want 0", rd.s.class)
	}
	rd.close()
	// Allocations of a 4 KiB encode stay far below a full stripe (2 MiB).
	data := randBytes(7, 4<<10)
	ws := []io.Writer{io.Discard, io.Discard, io.Discard, io.Discard}
	var before, after runtimeMem
	before.read()
	for range 20 {
		if _, err := c.Encode(context.Background(), bytes.NewReader(data), ws, EncodeOptions{Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
	}
	after.read()
	if per := (after.bytes - before.bytes) / 20; per > 256<<10 {
		t.Errorf("4 KiB encode with Size allocates %d bytes each, want well under a full stripe", per)
	}
}

// runtimeMem samples the bytes allocated so far.
type runtimeMem struct{ bytes uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.bytes = s.TotalAlloc
}

// TestEncodeBytes checks EncodeBytes against Encode, byte for byte.
func TestEncodeBytes(t *testing.T) {
	const stripe = 64 << 10
	for _, k := range []int{1, 2, 3, 4} {
		for _, m := range []int{0, 1, 2} {
			c, err := New(Config{Data: k, Parity: m, StripeSize: stripe})
			if err != nil {
				t.Fatal(err)
			}
			for _, size := range []int{1, 2, 3, 7, 100, 4095, 4096, 4097, 10_000, stripe - 1} {
				data := randBytes(uint64(size*10+k), size)
				got, err := c.EncodeBytes(data)
				if err != nil {
					t.Fatalf("%d+%d, %d bytes: EncodeBytes: %v", k, m, size, err)
				}
				want := encode(t, c, data)
				for j := range want.files {
					if !bytes.Equal(got[j], want.files[j]) {
						t.Fatalf("%d+%d, %d bytes: shard %d differs from Encode's", k, m, size, j)
					}
				}
			}
			for _, size := range []int{0, stripe, stripe + 1} {
				if _, err := c.EncodeBytes(make([]byte, size)); err == nil {
					t.Errorf("%d+%d: EncodeBytes of %d bytes succeeded, want an error", k, m, size)
				}
			}
		}
	}
}

// TestDecodeBytes checks DecodeBytes against the data for every range
// shape, with shards missing or corrupt up to the parity, and that it
// fails with ErrTooFewShards beyond, reporting the bad shards as Decode
// does.
func TestDecodeBytes(t *testing.T) {
	const stripe = 64 << 10
	for _, tc := range []struct{ k, m int }{{1, 0}, {2, 2}, {3, 1}, {4, 2}} {
		c, err := New(Config{Data: tc.k, Parity: tc.m, StripeSize: stripe})
		if err != nil {
			t.Fatal(err)
		}
		n := tc.k + tc.m
		for _, size := range []int{1, 3, 100, 4096, 10_001, stripe - 1} {
			data := randBytes(uint64(size+n), size)
			shards, err := c.EncodeBytes(data)
			if err != nil {
				t.Fatal(err)
			}
			// Each case damages shards: nil (missing), cut short, or one
			// byte flipped (a checksum mismatch).
			type damage struct {
				j    int
				kind string
			}
			cases := [][]damage{nil, {{0, "nil"}}, {{tc.k - 1, "flip"}}, {{0, "short"}, {n - 1, "nil"}}}
			for ci, dmg := range cases {
				if len(dmg) > tc.m {
					continue
				}
				in := make([][]byte, n)
				copy(in, shards)
				for _, d := range dmg {
					switch d.kind {
					case "nil":
						in[d.j] = nil
					case "short":
						in[d.j] = in[d.j][:len(in[d.j])-1]
					case "flip":
						b := bytes.Clone(in[d.j])
						b[len(b)-1] ^= 1
						in[d.j] = b
					}
				}
				for _, r := range [][2]int{{0, size}, {0, 1}, {size - 1, 1}, {size / 3, size / 2}, {size, 0}} {
					var out bytes.Buffer
					res, err := c.DecodeBytes(&out, in, int64(size), int64(r[0]), int64(r[1]))
					if err != nil {
						t.Fatalf("%d+%d, %d bytes, case %d, range %v: %v", tc.k, tc.m, size, ci, r, err)
					}
					if !bytes.Equal(out.Bytes(), data[r[0]:r[0]+r[1]]) {
						t.Fatalf("%d+%d, %d bytes, case %d, range %v: wrong bytes", tc.k, tc.m, size, ci, r)
					}
					for _, j := range res.Bad {
						if !slices.ContainsFunc(dmg, func(d damage) bool { return d.j == j }) {
							t.Fatalf("%d+%d, %d bytes, case %d: Bad %v names an intact shard", tc.k, tc.m, size, ci, res.Bad)
						}
					}
					if len(dmg) > 0 && dmg[0].j < tc.k && !slices.Contains(res.Bad, dmg[0].j) {
						t.Fatalf("%d+%d, %d bytes, case %d: Bad %v misses damaged data shard %d", tc.k, tc.m, size, ci, res.Bad, dmg[0].j)
					}
				}
			}
			// One shard more than the parity missing: too few.
			in := make([][]byte, n)
			copy(in, shards)
			for j := 0; j <= tc.m; j++ {
				in[j] = nil
			}
			if _, err := c.DecodeBytes(io.Discard, in, int64(size), 0, int64(size)); !errors.Is(err, ErrTooFewShards) {
				t.Fatalf("%d+%d, %d bytes, %d shards missing: %v, want ErrTooFewShards", tc.k, tc.m, size, tc.m+1, err)
			}
			// The caller's shards are never written.
			for j := range shards {
				if sum := checksum(shards[j][ChecksumSize:]); !bytes.Equal(sum[:], shards[j][:ChecksumSize]) {
					t.Fatalf("%d+%d, %d bytes: shard %d modified", tc.k, tc.m, size, j)
				}
			}
		}
		for _, bad := range []struct{ size, off, length int64 }{{0, 0, 0}, {stripe, 0, 1}, {10, 5, 6}, {10, -1, 2}} {
			if _, err := c.DecodeBytes(io.Discard, make([][]byte, n), bad.size, bad.off, bad.length); err == nil {
				t.Errorf("%d+%d: DecodeBytes(size %d, %d+%d) succeeded, want an error", tc.k, tc.m, bad.size, bad.off, bad.length)
			}
		}
	}
}
