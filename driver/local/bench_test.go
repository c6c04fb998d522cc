package local

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// benchDriver opens a durable (fsyncing) drive for a benchmark.
func benchDriver(b *testing.B) *Driver {
	b.Helper()
	d, err := Open(b.Context(), Config{Dir: b.TempDir(), ID: "bench", ClusterID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

func BenchmarkWriteShard1MiB(b *testing.B) {
	d := benchDriver(b)
	ctx := b.Context()
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s := driver.Shard{PG: uint32(i % 256), Name: fmt.Sprintf("%016x", i)}
		i++
		w, err := d.CreateShard(ctx, s)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadShard1MiB(b *testing.B) {
	d := benchDriver(b)
	ctx := b.Context()
	s := driver.Shard{PG: 1, Name: "0123456789abcdef"}
	writeShard(b, d, s, make([]byte, 1<<20))
	buf := make([]byte, 1<<20)
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		rc, err := d.ReadShard(ctx, s, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

func BenchmarkPutRecord512(b *testing.B) {
	d := benchDriver(b)
	ctx := b.Context()
	data := make([]byte, 512)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var v uint64
	for b.Loop() {
		v++
		r := driver.Record{Key: fmt.Sprintf("tenant/container/key-%d", v%10000), Data: data}
		r.Version[15], r.Version[14], r.Version[13] = byte(v), byte(v>>8), byte(v>>16)
		if _, _, err := d.PutRecord(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPutRecord512Parallel(b *testing.B) {
	d := benchDriver(b)
	ctx := b.Context()
	data := make([]byte, 512)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.SetParallelism(16) // many concurrent requests per CPU, as on a server
	var next atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v := next.Add(1)
			r := driver.Record{Key: fmt.Sprintf("tenant/container/key-%d", v), Data: data}
			r.Version[15] = 1
			if _, _, err := d.PutRecord(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPutRecord4KiBConcurrent16 measures 16 concurrent PutRecords of
// 4 KiB (an inline small PUT's record) on one durable drive, with group
// commit (as served) and with each record committed alone (what group
// commit saves). fsyncs/op is bbolt commits per record.
func BenchmarkPutRecord4KiBConcurrent16(b *testing.B) {
	for _, mode := range []string{"grouped", "single"} {
		b.Run(mode, func(b *testing.B) {
			d := benchDriver(b)
			d.commit.single = mode == "single"
			var commits atomic.Int64
			d.commit.committed = func(int, error) { commits.Add(1) }
			ctx := b.Context()
			data := make([]byte, 4096)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.SetParallelism(8) // 16 goroutines on 2 CPUs
			var next atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					v := next.Add(1)
					r := driver.Record{Key: fmt.Sprintf("tenant/container/key-%d", v%16), Data: data}
					r.Version[8], r.Version[9], r.Version[10] = byte(v>>16), byte(v>>8), byte(v)
					if _, _, err := d.PutRecord(ctx, r); err != nil && !errors.Is(err, driver.ErrStale) {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(commits.Load())/float64(b.N), "commits/op")
		})
	}
}
