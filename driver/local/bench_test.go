package local

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

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

// benchIndex fills a drive with n records of 0.5–32 KiB (the inline shards
// of 1–64 KiB artifacts in a 2+2 set), flushed into index.db, for each page
// size, and runs f on it.
func benchIndex(b *testing.B, n int, f func(b *testing.B, d *Driver, keys []string)) {
	for _, ps := range []int{4096, 1024} {
		b.Run(fmt.Sprintf("page%d", ps), func(b *testing.B) {
			old := indexPageSize
			indexPageSize = ps
			defer func() { indexPageSize = old }()
			dir := b.TempDir()
			cfg := Config{Dir: dir, ID: "bench", ClusterID: "bench", NoSync: true}
			d, err := Open(b.Context(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			rnd := rand.New(rand.NewPCG(1, 2))
			keys := make([]string, n)
			for i := range keys {
				keys[i] = fmt.Sprintf("t1/bucket/%08x", rnd.Uint32())
				data := make([]byte, 512+rnd.IntN(32<<10-512))
				r := driver.Record{Key: keys[i], Version: driver.Version{15: 1}, Data: data}
				if _, _, err := d.PutRecord(b.Context(), r); err != nil {
					b.Fatal(err)
				}
			}
			if err := d.Close(); err != nil { // flushes the record log
				b.Fatal(err)
			}
			if d, err = Open(b.Context(), cfg); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			rnd.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			b.ReportAllocs()
			f(b, d, keys)
		})
	}
}

// BenchmarkGetRecordIndex reads records at random from a flushed index
// (a small GET's record lookup).
func BenchmarkGetRecordIndex(b *testing.B) {
	benchIndex(b, 20000, func(b *testing.B, d *Driver, keys []string) {
		i := 0
		for b.Loop() {
			if _, err := d.GetRecord(b.Context(), keys[i%len(keys)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkListRecordsIndex lists 100 records at a time from random
// points of a flushed index.
func BenchmarkListRecordsIndex(b *testing.B) {
	benchIndex(b, 20000, func(b *testing.B, d *Driver, keys []string) {
		i := 0
		for b.Loop() {
			rs, err := d.ListRecords(b.Context(), "t1/bucket/", keys[i%len(keys)], 100)
			if err != nil {
				b.Fatal(err)
			}
			if len(rs) == 0 && keys[i%len(keys)] < "t1/bucket/f" {
				b.Fatal("empty listing")
			}
			i++
		}
	})
}

// BenchmarkListRecordsHeld lists 100 records at a time from random points
// while the record log holds 16,000 records in memory (a drive under
// writes, before its flush): review 19 L6, each listing scanned and
// sorted all of them.
func BenchmarkListRecordsHeld(b *testing.B) {
	oldOps, oldBytes, oldIdle := flushOps, flushBytes, flushIdle
	flushOps, flushBytes, flushIdle = 1<<20, 1<<30, time.Hour
	defer func() { flushOps, flushBytes, flushIdle = oldOps, oldBytes, oldIdle }()
	d, err := Open(b.Context(), Config{Dir: b.TempDir(), ID: "bench", ClusterID: "bench", NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	rnd := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, 16000)
	for i := range keys {
		keys[i] = fmt.Sprintf("t1/bucket/%08x", rnd.Uint32())
		r := driver.Record{Key: keys[i], Version: driver.Version{15: 1}, Data: make([]byte, 200)}
		if _, _, err := d.PutRecord(b.Context(), r); err != nil {
			b.Fatal(err)
		}
	}
	if d.commit.mem.len() < len(keys)/2 {
		b.Fatalf("%d records held, want most of %d", d.commit.mem.len(), len(keys))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := d.ListRecords(b.Context(), "t1/bucket/", keys[i%len(keys)], 100); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
