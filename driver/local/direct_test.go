package local

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/vaultaire/vaultaire/driver"
)

// placed returns a copy of p at a memory address congruent to pos modulo
// directAlign, as erasure.Encode places the blocks it writes, or anywhere
// else if odd.
func placed(p []byte, pos int, odd bool) []byte {
	b := make([]byte, len(p)+2*directAlign)
	r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % directAlign)
	start := ((pos-r)%directAlign + directAlign) % directAlign
	if odd {
		start += 8
	}
	return append(b[start:start], p...)
}

// TestShardSizes writes shards of sizes around the O_DIRECT alignment and
// staging buffer boundaries, in writes of awkward sizes placed in memory
// like Encode's blocks or not, and reads them back.
func TestShardSizes(t *testing.T) {
	d := open(t, testConfig(t, false))
	sizes := []int{0, 1, directAlign - 1, directAlign, directAlign + 1,
		directBufSize - 1, directBufSize, directBufSize + 16, 3*directBufSize + 17}
	for _, size := range sizes {
		for _, tc := range []struct {
			chunk int
			odd   bool
		}{{7, false}, {directAlign + 16, false}, {directAlign + 16, true}, {directBufSize + 16, false}, {directBufSize + 16, true}, {4 << 20, true}} {
			chunk := tc.chunk
			t.Run(fmt.Sprintf("%d/%d/%v", size, chunk, tc.odd), func(t *testing.T) {
				want := make([]byte, size)
				for i := range want {
					want[i] = byte(rand.IntN(256))
				}
				s := driver.Shard{PG: 1, Name: fmt.Sprintf("%064x", rand.Uint64())}
				w, err := d.CreateShard(t.Context(), s)
				if err != nil {
					t.Fatal(err)
				}
				for p, pos := want, 0; len(p) > 0; {
					c := min(chunk, len(p))
					if n, err := w.Write(placed(p[:c], pos, tc.odd)); err != nil || n != c {
						t.Fatalf("Write = %d, %v; want %d, nil", n, err, c)
					}
					p = p[c:]
					pos += c
				}
				if err := w.Commit(t.Context()); err != nil {
					t.Fatal(err)
				}
				r, err := d.ReadShard(t.Context(), s, 0, -1)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("read back %d bytes, want the %d written", len(got), len(want))
				}
			})
		}
	}
}
