package erasure

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// placeWriter checks that every block it is given starts at an address
// congruent to its shard offset modulo BlockAlign.
type placeWriter struct {
	t   *testing.T
	j   int
	pos int64
}

func (w *placeWriter) Write(p []byte) (int, error) {
	addr := int64(uintptr(unsafe.Pointer(unsafe.SliceData(p))) % BlockAlign)
	if got, want := addr, w.pos%BlockAlign; got != want {
		w.t.Errorf("shard %d: block at shard offset %d lies at address %% %d = %d, want %d", w.j, w.pos, BlockAlign, got, want)
	}
	w.pos += int64(len(p))
	return len(p), nil
}

func TestEncodeBlockAlignment(t *testing.T) {
	for _, cfg := range []Config{
		{Data: 2, Parity: 2, StripeSize: 1 << 20},
		{Data: 4, Parity: 2, StripeSize: 1 << 20},
		{Data: 3, Parity: 2, StripeSize: 100_000},
	} {
		for _, size := range []int{1, 5000, 1 << 20, 3<<20 + 12345} {
			t.Run(fmt.Sprintf("%d+%d/%d/%d", cfg.Data, cfg.Parity, cfg.StripeSize, size), func(t *testing.T) {
				c, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				ws := make([]io.Writer, cfg.Data+cfg.Parity)
				for j := range ws {
					ws[j] = &placeWriter{t: t, j: j}
				}
				body := make([]byte, size)
				for i := range body {
					body[i] = byte(rand.IntN(256))
				}
				if _, err := c.Encode(t.Context(), bytes.NewReader(body), ws, EncodeOptions{}); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
