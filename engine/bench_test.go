package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
)

// BenchmarkPut stores artifacts through the engine on durable local drives
// (every commit fsynced), one fresh key per iteration.
func BenchmarkPut(b *testing.B) {
	for _, drives := range []int{1, 4} {
		for _, size := range []int{1 << 20, 64 << 20} {
			b.Run(fmt.Sprintf("drives%d/%dMiB", drives, size>>20), func(b *testing.B) {
				r := newRig(b, rigOptions{drives: drives})
				data := randBytes(1, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					if _, err := r.e.Put(context.Background(), "t", "c", fmt.Sprint("k", i), bytes.NewReader(data), PutOptions{Size: int64(size)}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkGet reads a whole artifact through the engine.
func BenchmarkGet(b *testing.B) {
	for _, drives := range []int{1, 4} {
		for _, size := range []int{1 << 20, 64 << 20} {
			b.Run(fmt.Sprintf("drives%d/%dMiB", drives, size>>20), func(b *testing.B) {
				r := newRig(b, rigOptions{drives: drives})
				r.put(b, "k", randBytes(1, size), int64(size))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					a, err := r.e.Open(context.Background(), "t", "c", "k")
					if err != nil {
						b.Fatal(err)
					}
					if err := a.WriteRange(context.Background(), io.Discard, 0, a.Info.Size); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPutSmall16 puts 4 KiB artifacts (inline) through the engine on
// 4 durable drives, 16 in flight on 2 cores: one key rewritten (as
// bench/limit.sh's PUT row) and a fresh key per put.
func BenchmarkPutSmall16(b *testing.B) {
	for _, keys := range []string{"same", "distinct"} {
		b.Run(keys, func(b *testing.B) {
			r := newRig(b, rigOptions{drives: 4})
			data := randBytes(1, 4<<10)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.SetParallelism(8)
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := "k"
					if keys == "distinct" {
						key = fmt.Sprint("k", next.Add(1))
					}
					if _, err := r.e.Put(context.Background(), "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(len(data))}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
