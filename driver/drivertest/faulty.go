package drivertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// ErrInjected is wrapped by the errors Faulty injects that are not one of
// the driver sentinels (failed shard writes).
var ErrInjected = errors.New("drivertest: injected fault")

// CorruptEvery is the stride of the bytes Faulty flips in ReadShard streams
// when corrupt reads are on: the bytes at offsets 0, CorruptEvery,
// 2*CorruptEvery, ... of each returned stream.
const CorruptEvery = 4096

// Faulty wraps a Driver and injects faults into the calls made through it.
// The faults can be changed at any time, also while calls are in flight;
// Faulty is safe for concurrent use if the wrapped Driver is. Create it with
// NewFaulty; it starts with no faults.
type Faulty struct {
	driver.Driver

	offline   atomic.Bool
	corrupt   atomic.Bool
	failAfter atomic.Int64 // n+1 of SetFailWritesAfter(n); 0 disables
	latency   atomic.Int64 // nanoseconds
	hang      atomic.Bool
	onGet     atomic.Pointer[func(ctx context.Context, key string)]
	read      atomic.Int64 // bytes returned by ReadShard streams
}

// ShardBytesRead returns how many bytes ReadShard streams have returned so
// far through f.
func (f *Faulty) ShardBytesRead() int64 { return f.read.Load() }

var _ driver.Driver = (*Faulty)(nil)

// NewFaulty returns a Faulty wrapping d, injecting no faults.
func NewFaulty(d driver.Driver) *Faulty { return &Faulty{Driver: d} }

// SetOffline makes every call, including ShardWriter.Write and Commit and
// reads from open ReadShard streams, fail with an error wrapping
// driver.ErrOffline, without reaching the wrapped Driver. ShardWriter.Abort
// still reaches it, so aborted writes are cleaned up.
func (f *Faulty) SetOffline(on bool) { f.offline.Store(on) }

// SetCorruptReads makes reads return corrupted data: in ReadShard streams the
// bytes at stream offsets that are multiples of CorruptEvery are inverted
// (XOR 0xff), and in records returned by GetRecord and ListRecords the byte at
// index len(Data)/2 is inverted (records with empty Data are unchanged). It
// applies to streams opened while it is on.
func (f *Faulty) SetCorruptReads(on bool) { f.corrupt.Store(on) }

// SetFailWritesAfter makes ShardWriter.Write fail with ErrInjected once more
// than n bytes in total have been written to a shard: the Write that crosses
// the limit writes the bytes up to it and fails, like a full disk. n < 0
// disables the fault.
func (f *Faulty) SetFailWritesAfter(n int64) {
	if n < 0 {
		f.failAfter.Store(0)
		return
	}
	f.failAfter.Store(n + 1)
}

// SetLatency makes every call (and every ShardWriter.Write and Commit) wait
// d first, returning early with the context's error if it is done.
func (f *Faulty) SetLatency(d time.Duration) { f.latency.Store(int64(d)) }

// SetHang makes every call, including ShardWriter.Write and Commit and
// reads from open ReadShard streams, block until its ctx is done and then
// fail with the ctx's error, like a hung disk or a paused peer. (Write and
// stream reads are bound to the ctx given to CreateShard and ReadShard.)
// Calls already waiting return once it is turned off. ShardWriter.Abort
// still reaches the wrapped Driver at once.
func (f *Faulty) SetHang(on bool) { f.hang.Store(on) }

// SetBeforeGetRecord makes every GetRecord call fn with its ctx and key
// first, before any other fault; nil removes it. Tests use it to
// interleave other work between the reads of one operation.
func (f *Faulty) SetBeforeGetRecord(fn func(ctx context.Context, key string)) {
	if fn == nil {
		f.onGet.Store(nil)
		return
	}
	f.onGet.Store(&fn)
}

// hung blocks while the hang fault is on and ctx is not done.
func (f *Faulty) hung(ctx context.Context) error {
	if !f.hang.Load() {
		return nil
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for f.hang.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// before injects latency, the hang and the offline fault ahead of a call.
func (f *Faulty) before(ctx context.Context) error {
	if err := f.hung(ctx); err != nil {
		return err
	}
	if d := time.Duration(f.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if f.offline.Load() {
		return driver.ErrOffline
	}
	return nil
}

// Info returns the wrapped Driver's Info.
func (f *Faulty) Info(ctx context.Context) (driver.Info, error) {
	if err := f.before(ctx); err != nil {
		return driver.Info{}, fmt.Errorf("drivertest: faulty: info: %w", err)
	}
	return f.Driver.Info(ctx)
}

// CreateShard starts a shard write on the wrapped Driver.
func (f *Faulty) CreateShard(ctx context.Context, s driver.Shard) (driver.ShardWriter, error) {
	if err := f.before(ctx); err != nil {
		return nil, fmt.Errorf("drivertest: faulty: create shard %04x/%s: %w", s.PG, s.Name, err)
	}
	w, err := f.Driver.CreateShard(ctx, s)
	if err != nil {
		return nil, err
	}
	return &faultyWriter{f: f, w: w, ctx: ctx, s: s}, nil
}

// faultyWriter injects faults into a ShardWriter.
type faultyWriter struct {
	f   *Faulty
	w   driver.ShardWriter
	ctx context.Context // from CreateShard, for Write's latency
	s   driver.Shard
	n   atomic.Int64 // bytes written
}

func (w *faultyWriter) errorf(op string, err error) error {
	return fmt.Errorf("drivertest: faulty: %s shard %04x/%s: %w", op, w.s.PG, w.s.Name, err)
}

func (w *faultyWriter) Write(p []byte) (int, error) {
	if err := w.f.before(w.ctx); err != nil {
		return 0, w.errorf("write", err)
	}
	if limit := w.f.failAfter.Load() - 1; limit >= 0 {
		if room := limit - w.n.Load(); int64(len(p)) > room {
			n := 0
			if room > 0 {
				var err error
				n, err = w.w.Write(p[:room])
				w.n.Add(int64(n))
				if err != nil {
					return n, err
				}
			}
			return n, w.errorf("write", ErrInjected)
		}
	}
	n, err := w.w.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func (w *faultyWriter) Commit(ctx context.Context) error {
	if err := w.f.before(ctx); err != nil {
		w.w.Abort()
		return w.errorf("commit", err)
	}
	return w.w.Commit(ctx)
}

func (w *faultyWriter) Abort() error { return w.w.Abort() }

// ReadShard reads shard s from the wrapped Driver.
func (f *Faulty) ReadShard(ctx context.Context, s driver.Shard, off, length int64) (io.ReadCloser, error) {
	if err := f.before(ctx); err != nil {
		return nil, fmt.Errorf("drivertest: faulty: read shard %04x/%s: %w", s.PG, s.Name, err)
	}
	r, err := f.Driver.ReadShard(ctx, s, off, length)
	if err != nil {
		return nil, err
	}
	return &faultyReader{f: f, r: r, ctx: ctx, corrupt: f.corrupt.Load()}, nil
}

// faultyReader injects faults into a ReadShard stream.
type faultyReader struct {
	f       *Faulty
	r       io.ReadCloser
	ctx     context.Context // from ReadShard, for the hang
	corrupt bool
	off     int64 // stream offset of the next byte
}

func (r *faultyReader) Read(p []byte) (int, error) {
	if err := r.f.hung(r.ctx); err != nil {
		return 0, fmt.Errorf("drivertest: faulty: read shard: %w", err)
	}
	if r.f.offline.Load() {
		return 0, fmt.Errorf("drivertest: faulty: read shard: %w", driver.ErrOffline)
	}
	n, err := r.r.Read(p)
	if r.corrupt {
		// First multiple of CorruptEvery at or after r.off.
		first := (r.off + CorruptEvery - 1) / CorruptEvery * CorruptEvery
		for i := first - r.off; i < int64(n); i += CorruptEvery {
			p[i] ^= 0xff
		}
	}
	r.off += int64(n)
	r.f.read.Add(int64(n))
	return n, err
}

func (r *faultyReader) Close() error { return r.r.Close() }

// DeleteShard deletes shard s on the wrapped Driver.
func (f *Faulty) DeleteShard(ctx context.Context, s driver.Shard) error {
	if err := f.before(ctx); err != nil {
		return fmt.Errorf("drivertest: faulty: delete shard %04x/%s: %w", s.PG, s.Name, err)
	}
	return f.Driver.DeleteShard(ctx, s)
}

// PutRecord puts r on the wrapped Driver.
func (f *Faulty) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if err := f.before(ctx); err != nil {
		return driver.Record{}, false, fmt.Errorf("drivertest: faulty: put record: %w", err)
	}
	return f.Driver.PutRecord(ctx, r)
}

// corruptRecord inverts the middle byte of r.Data. The wrapped Driver must
// not return records aliasing its memory.
func corruptRecord(r *driver.Record) {
	if len(r.Data) > 0 {
		r.Data[len(r.Data)/2] ^= 0xff
	}
}

// GetRecord gets a record from the wrapped Driver.
func (f *Faulty) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	if fn := f.onGet.Load(); fn != nil {
		(*fn)(ctx, key)
	}
	if err := f.before(ctx); err != nil {
		return driver.Record{}, fmt.Errorf("drivertest: faulty: get record: %w", err)
	}
	r, err := f.Driver.GetRecord(ctx, key)
	if err == nil && f.corrupt.Load() {
		corruptRecord(&r)
	}
	return r, err
}

// PeekRecord is the wrapped Driver's PeekRecord (an optional method:
// driver/local answers record reads from memory with it), while no fault
// that GetRecord injects is on; otherwise, or if the wrapped Driver has
// none, it answers nothing (ok false), so that the caller asks GetRecord
// and meets the fault.
func (f *Faulty) PeekRecord(key string) (driver.Record, bool, error) {
	if f.offline.Load() || f.corrupt.Load() || f.hang.Load() || f.latency.Load() != 0 || f.onGet.Load() != nil {
		return driver.Record{}, false, nil
	}
	p, ok := f.Driver.(interface {
		PeekRecord(key string) (driver.Record, bool, error)
	})
	if !ok {
		return driver.Record{}, false, nil
	}
	return p.PeekRecord(key)
}

// DeleteRecord deletes a record on the wrapped Driver.
func (f *Faulty) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	if err := f.before(ctx); err != nil {
		return fmt.Errorf("drivertest: faulty: delete record: %w", err)
	}
	return f.Driver.DeleteRecord(ctx, key, v)
}

// ListRecords lists records of the wrapped Driver.
func (f *Faulty) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	if err := f.before(ctx); err != nil {
		return nil, fmt.Errorf("drivertest: faulty: list records: %w", err)
	}
	rs, err := f.Driver.ListRecords(ctx, prefix, after, limit)
	if err == nil && f.corrupt.Load() {
		for i := range rs {
			corruptRecord(&rs[i])
		}
	}
	return rs, err
}
