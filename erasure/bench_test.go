package erasure

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
)

var benchConfigs = []Config{{Data: 2, Parity: 2}, {Data: 4, Parity: 2}, {Data: 8, Parity: 4}}

// BenchmarkEncode measures encoding 64 MiB from memory to discarding
// writers, checksums included.
func BenchmarkEncode(b *testing.B) {
	const size = 64 << 20
	data := randBytes(1, size)
	for _, cfg := range benchConfigs {
		c, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%d+%d", cfg.Data, cfg.Parity), func(b *testing.B) {
			ws := make([]io.Writer, cfg.Data+cfg.Parity)
			for j := range ws {
				ws[j] = io.Discard
			}
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Encode(context.Background(), bytes.NewReader(data), ws, EncodeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode measures decoding 64 MiB from in-memory shards, healthy
// and with one data shard lost (reconstruction on every stripe).
func BenchmarkDecode(b *testing.B) {
	const size = 64 << 20
	data := randBytes(1, size)
	for _, cfg := range benchConfigs {
		c, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		s := encode(b, c, data)
		for _, degraded := range []bool{false, true} {
			name := fmt.Sprintf("%d+%d/healthy", cfg.Data, cfg.Parity)
			if degraded {
				name = fmt.Sprintf("%d+%d/degraded", cfg.Data, cfg.Parity)
			}
			b.Run(name, func(b *testing.B) {
				s.lost = map[int]bool{0: degraded}
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Decode(context.Background(), io.Discard, size, 0, size, s.open); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
