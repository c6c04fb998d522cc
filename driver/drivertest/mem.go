// Package drivertest provides a conformance suite for driver.Driver
// implementations (Run) and two test doubles: Mem, an in-memory Driver whose
// zero value is ready to use, and Faulty, a wrapper that injects faults
// (offline drive, corrupt reads, failing writes, latency) into any Driver.
//
// A Driver implementation's tests call Run:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, func(t *testing.T) driver.Driver {
//			d, err := mydriver.Open(...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { d.Close() })
//			return d
//		})
//	}
package drivertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/vaultaire/vaultaire/driver"
)

// Mem is an in-memory driver.Driver. Its zero value is ready to use and it
// is safe for concurrent use. Shard commits are atomic; nothing is durable
// beyond the life of the value. Info reports the ID "mem" unless MemID is
// set, and Usage.Used as the bytes of shards and record data held (Total and
// Free are 0, unknown).
//
// Mem behaves like the local driver where the contract leaves room: reading
// past the end of a shard returns what there is and then
// io.ErrUnexpectedEOF, ListRecords rejects a limit below 1, and records and
// shards returned never alias Mem's memory.
type Mem struct {
	// MemID is the drive id Info reports; "mem" if empty. Set it before
	// first use.
	MemID driver.DriveID
	// ClusterID is the cluster id Info reports. Set it before first use.
	ClusterID string

	mu      sync.RWMutex // guards the following fields
	shards  map[driver.Shard][]byte
	records map[string]driver.Record
}

var _ driver.Driver = (*Mem)(nil)

// Info returns the drive's identity and the bytes it holds.
func (m *Mem) Info(ctx context.Context) (driver.Info, error) {
	if err := ctx.Err(); err != nil {
		return driver.Info{}, fmt.Errorf("drivertest: mem: info: %w", err)
	}
	id := m.MemID
	if id == "" {
		id = "mem"
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var used uint64
	for _, b := range m.shards {
		used += uint64(len(b))
	}
	for _, r := range m.records {
		used += uint64(len(r.Key) + driver.VersionSize + len(r.Data))
	}
	return driver.Info{ID: id, ClusterID: m.ClusterID, Class: driver.ClassMem, Usage: driver.Usage{Used: used}}, nil
}

// CreateShard starts writing shard s into a buffer. Write checks ctx too.
func (m *Mem) CreateShard(ctx context.Context, s driver.Shard) (driver.ShardWriter, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("drivertest: mem: create shard %04x: %w", s.PG, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("drivertest: mem: create shard %04x/%s: %w", s.PG, s.Name, err)
	}
	return &memWriter{m: m, ctx: ctx, s: s}, nil
}

// memWriter buffers a shard until Commit.
type memWriter struct {
	m   *Mem
	ctx context.Context // from CreateShard, checked by Write
	s   driver.Shard

	mu    sync.Mutex // guards the following fields
	buf   []byte
	state int // 0 writing, 1 committed, 2 aborted
}

func (w *memWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != 0 {
		return 0, fmt.Errorf("drivertest: mem: write shard %04x/%s: writer closed", w.s.PG, w.s.Name)
	}
	if err := w.ctx.Err(); err != nil {
		return 0, fmt.Errorf("drivertest: mem: write shard %04x/%s: %w", w.s.PG, w.s.Name, err)
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *memWriter) Commit(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != 0 {
		return fmt.Errorf("drivertest: mem: commit shard %04x/%s: writer closed", w.s.PG, w.s.Name)
	}
	if err := ctx.Err(); err != nil {
		w.state, w.buf = 2, nil
		return fmt.Errorf("drivertest: mem: commit shard %04x/%s: %w", w.s.PG, w.s.Name, err)
	}
	w.state = 1
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	if w.m.shards == nil {
		w.m.shards = make(map[driver.Shard][]byte)
	}
	w.m.shards[w.s] = w.buf
	w.buf = nil
	return nil
}

func (w *memWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == 0 {
		w.state, w.buf = 2, nil
	}
	return nil
}

// ReadShard returns length bytes of shard s from off (length -1: to the end).
func (m *Mem) ReadShard(ctx context.Context, s driver.Shard, off, length int64) (io.ReadCloser, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("drivertest: mem: read shard %04x: %w", s.PG, err)
	}
	if off < 0 || length < -1 {
		return nil, fmt.Errorf("drivertest: mem: read shard %04x/%s: invalid range off %d length %d", s.PG, s.Name, off, length)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("drivertest: mem: read shard %04x/%s: %w", s.PG, s.Name, err)
	}
	m.mu.RLock()
	b, ok := m.shards[s]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("drivertest: mem: read shard %04x/%s: %w", s.PG, s.Name, driver.ErrNotFound)
	}
	// Committed buffers are never modified, so b can be read without the
	// lock; the reader only ever hands out copies.
	size := int64(len(b))
	end := off + length
	if length == -1 {
		end = max(size, off)
	}
	var r io.Reader = bytes.NewReader(b[min(off, size):min(end, size)])
	if end > size {
		r = io.MultiReader(r, errReader{io.ErrUnexpectedEOF})
	}
	return io.NopCloser(r), nil
}

// errReader is an io.Reader that always fails with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// DeleteShard removes shard s, or returns driver.ErrNotFound.
func (m *Mem) DeleteShard(ctx context.Context, s driver.Shard) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("drivertest: mem: delete shard %04x: %w", s.PG, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("drivertest: mem: delete shard %04x/%s: %w", s.PG, s.Name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.shards[s]; !ok {
		return fmt.Errorf("drivertest: mem: delete shard %04x/%s: %w", s.PG, s.Name, driver.ErrNotFound)
	}
	delete(m.shards, s)
	return nil
}

// cloneRecord returns a copy of r that shares no memory with it.
func cloneRecord(r driver.Record) driver.Record {
	r.Data = append([]byte{}, r.Data...)
	return r
}

// PutRecord stores r unless a newer version is stored (driver.ErrStale).
func (m *Mem) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if err := driver.ValidateKey(r.Key); err != nil {
		return driver.Record{}, false, fmt.Errorf("drivertest: mem: put record: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return driver.Record{}, false, fmt.Errorf("drivertest: mem: put record: %w", err)
	}
	r = cloneRecord(r)
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, ok := m.records[r.Key]
	if ok && prev.Version.Compare(r.Version) > 0 {
		return driver.Record{}, false, fmt.Errorf("drivertest: mem: put record version %v: %w", r.Version, driver.ErrStale)
	}
	if m.records == nil {
		m.records = make(map[string]driver.Record)
	}
	m.records[r.Key] = r
	if !ok {
		return driver.Record{}, false, nil
	}
	return cloneRecord(prev), true, nil
}

// GetRecord returns the record under key or driver.ErrNotFound.
func (m *Mem) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	if err := driver.ValidateKey(key); err != nil {
		return driver.Record{}, fmt.Errorf("drivertest: mem: get record: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return driver.Record{}, fmt.Errorf("drivertest: mem: get record: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.records[key]
	if !ok {
		return driver.Record{}, fmt.Errorf("drivertest: mem: get record: %w", driver.ErrNotFound)
	}
	return cloneRecord(r), nil
}

// DeleteRecord removes the record under key if its version is v, or any
// version if v is zero.
func (m *Mem) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	if err := driver.ValidateKey(key); err != nil {
		return fmt.Errorf("drivertest: mem: delete record: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("drivertest: mem: delete record: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[key]
	switch {
	case !ok:
		return fmt.Errorf("drivertest: mem: delete record: %w", driver.ErrNotFound)
	case !v.IsZero() && r.Version != v:
		return fmt.Errorf("drivertest: mem: delete record version %v: %w", v, driver.ErrStale)
	}
	delete(m.records, key)
	return nil
}

// ListRecords returns up to limit records whose keys start with prefix and
// sort after after, in ascending byte order. It sorts the matching keys on
// every call: fine for tests, not for large indexes.
func (m *Mem) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("drivertest: mem: list records: limit %d is not positive", limit)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("drivertest: mem: list records: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var keys []string
	for k := range m.records {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []driver.Record
	for _, k := range keys[:min(limit, len(keys))] {
		out = append(out, cloneRecord(m.records[k]).CutForList())
	}
	return out, nil
}
