package drivertest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// Run runs the conformance suite against Drivers made by newDriver. Each
// subtest calls newDriver for a fresh, empty Driver; newDriver registers any
// cleanup with t.Cleanup. The suite checks the contract in package driver
// and nothing beyond it, except that ListRecords is only called with a
// positive limit.
func Run(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d driver.Driver)
	}{
		{"Info", testInfo},
		{"ShardReadRanges", testShardReadRanges},
		{"ShardSizes", testShardSizes},
		{"ShardInvisibleBeforeCommit", testShardInvisibleBeforeCommit},
		{"ShardAbort", testShardAbort},
		{"ShardAbortAfterCommit", testShardAbortAfterCommit},
		{"ShardReplace", testShardReplace},
		{"ShardMissing", testShardMissing},
		{"ShardDelete", testShardDelete},
		{"ShardInvalidName", testShardInvalidName},
		{"ShardCommitCancelled", testShardCommitCancelled},
		{"ShardConcurrent", testShardConcurrent},
		{"RecordPutGet", testRecordPutGet},
		{"RecordNoAliasing", testRecordNoAliasing},
		{"RecordLastWriterWins", testRecordLastWriterWins},
		{"RecordDelete", testRecordDelete},
		{"RecordInvalidKey", testRecordInvalidKey},
		{"RecordConcurrentPut", testRecordConcurrentPut},
		{"ListOrder", testListOrder},
		{"ListPrefixAfter", testListPrefixAfter},
		{"ListPagination", testListPagination},
		{"ListCutsLargeData", testListCutsLargeData},
		{"ContextCancelled", testContextCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newDriver(t))
		})
	}
}

// version returns a Version holding n big-endian in its last 8 bytes.
func version(n uint64) driver.Version {
	var v driver.Version
	binary.BigEndian.PutUint64(v[8:], n)
	return v
}

// shardName returns a valid shard name derived from i.
func shardName(i int) string { return fmt.Sprintf("%016x", 0xa0000000+i) }

// payload returns n deterministic pseudo-random bytes derived from seed.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeShard writes data to shard s in chunks and commits it.
func writeShard(t *testing.T, d driver.Driver, s driver.Shard, data []byte) {
	t.Helper()
	w, err := d.CreateShard(t.Context(), s)
	if err != nil {
		t.Fatalf("CreateShard(%v): %v", s, err)
	}
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 256<<10+3)
		m, err := w.Write(rest[:n])
		if err != nil || m != n {
			w.Abort()
			t.Fatalf("Write(%v, %d bytes) = %d, %v", s, n, m, err)
		}
		rest = rest[n:]
	}
	if err := w.Commit(t.Context()); err != nil {
		t.Fatalf("Commit(%v): %v", s, err)
	}
}

// readShard reads a range of shard s and returns the bytes read and the
// error of ReadShard or of reading the stream.
func readShard(t *testing.T, d driver.Driver, s driver.Shard, off, length int64) ([]byte, error) {
	t.Helper()
	rc, err := d.ReadShard(t.Context(), s, off, length)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := rc.Close(); err != nil {
			t.Errorf("Close of ReadShard(%v) stream: %v", s, err)
		}
	}()
	b, err := io.ReadAll(rc)
	return b, err
}

// mustReadShard reads all of shard s and fails the test on error.
func mustReadShard(t *testing.T, d driver.Driver, s driver.Shard) []byte {
	t.Helper()
	b, err := readShard(t, d, s, 0, -1)
	if err != nil {
		t.Fatalf("ReadShard(%v, 0, -1): %v", s, err)
	}
	return b
}

// checkNotFound fails the test unless err wraps driver.ErrNotFound.
func checkNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("%s: got err %v, want driver.ErrNotFound", what, err)
	}
}

func testInfo(t *testing.T, d driver.Driver) {
	a, err := d.Info(t.Context())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if a.ID == "" {
		t.Errorf("Info().ID is empty")
	}
	if a.Class == "" {
		t.Errorf("Info().Class is empty")
	}
	writeShard(t, d, driver.Shard{PG: 1, Name: shardName(1)}, payload(1000, 1))
	b, err := d.Info(t.Context())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if b.ID != a.ID || b.ClusterID != a.ClusterID || b.Class != a.Class {
		t.Errorf("Info changed identity: %+v, then %+v", a, b)
	}
}

func testShardReadRanges(t *testing.T, d driver.Driver) {
	const size = 10007
	s := driver.Shard{PG: 7, Name: shardName(1)}
	data := payload(size, 1)
	writeShard(t, d, s, data)
	tests := []struct {
		off, length int64
	}{
		{0, -1},
		{0, size},
		{0, 0},
		{0, 1},
		{1, 10},
		{4096, 4096},
		{5000, -1},
		{size - 1, -1},
		{size - 1, 1},
		{size, -1},
		{size, 0},
		{size / 2, 0},
		{size - 100, 100},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("off=%d,length=%d", tt.off, tt.length), func(t *testing.T) {
			end := tt.off + tt.length
			if tt.length == -1 {
				end = size
			}
			want := data[tt.off:end]
			got, err := readShard(t, d, s, tt.off, tt.length)
			if err != nil {
				t.Fatalf("ReadShard(%d, %d): %v", tt.off, tt.length, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("ReadShard(%d, %d) returned %d bytes, want %d other bytes", tt.off, tt.length, len(got), len(want))
			}
		})
	}

	// Past the end the contract allows io.ErrUnexpectedEOF or a short
	// stream, but never bytes that are not in the file, and never fewer
	// than the file holds from off on (erasure's Present reads the last
	// byte and one more to tell a shard at its full length).
	past := []struct {
		off, length int64
	}{
		{size - 5, 10},
		{size - 1, 2},
		{size, 1},
		{size + 10, 5},
		{size + 10, -1},
	}
	for _, tt := range past {
		t.Run(fmt.Sprintf("past/off=%d,length=%d", tt.off, tt.length), func(t *testing.T) {
			got, err := readShard(t, d, s, tt.off, tt.length)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("ReadShard(%d, %d): got err %v, want nil or io.ErrUnexpectedEOF", tt.off, tt.length, err)
			}
			want := data[min(tt.off, size):]
			if !bytes.Equal(got, want) {
				t.Errorf("ReadShard(%d, %d) returned %d bytes, want the %d bytes to the end", tt.off, tt.length, len(got), len(want))
			}
		})
	}
}

func testShardSizes(t *testing.T, d driver.Driver) {
	for i, size := range []int{0, 1, 4095, 1 << 20, 3<<20 + 17} {
		s := driver.Shard{PG: uint32(i), Name: shardName(i)}
		data := payload(size, uint64(i))
		writeShard(t, d, s, data)
		if got := mustReadShard(t, d, s); !bytes.Equal(got, data) {
			t.Errorf("shard of %d bytes read back as %d different bytes", size, len(got))
		}
	}
}

func testShardInvisibleBeforeCommit(t *testing.T, d driver.Driver) {
	ctx := t.Context()
	s := driver.Shard{PG: 3, Name: shardName(1)}
	w, err := d.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	data := payload(300<<10, 1)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	_, err = readShard(t, d, s, 0, -1)
	checkNotFound(t, "ReadShard before Commit", err)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustReadShard(t, d, s); !bytes.Equal(got, data) {
		t.Errorf("after Commit read %d bytes, want the %d written", len(got), len(data))
	}

	// A second write of the same name does not show until it commits.
	w2, err := d.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Abort()
	data2 := payload(1000, 2)
	if _, err := w2.Write(data2); err != nil {
		t.Fatal(err)
	}
	if got := mustReadShard(t, d, s); !bytes.Equal(got, data) {
		t.Errorf("uncommitted replacement is visible: read %d bytes", len(got))
	}
	if err := w2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustReadShard(t, d, s); !bytes.Equal(got, data2) {
		t.Errorf("after replacing Commit read %d bytes, want the %d written", len(got), len(data2))
	}
}

func testShardAbort(t *testing.T, d driver.Driver) {
	ctx := t.Context()
	s := driver.Shard{PG: 3, Name: shardName(1)}
	w, err := d.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(payload(5000, 1)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := w.Abort(); err != nil {
			t.Errorf("Abort #%d: %v", i+1, err)
		}
	}
	_, err = readShard(t, d, s, 0, -1)
	checkNotFound(t, "ReadShard after Abort", err)
	if err := w.Commit(ctx); err == nil {
		t.Errorf("Commit after Abort succeeded")
	}
	_, err = readShard(t, d, s, 0, -1)
	checkNotFound(t, "ReadShard after Abort and Commit", err)

	// Aborting a replacement keeps the committed shard.
	data := payload(100, 2)
	writeShard(t, d, s, data)
	w, err = d.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(payload(200, 3)); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := mustReadShard(t, d, s); !bytes.Equal(got, data) {
		t.Errorf("after aborted replacement read %d bytes, want the %d committed", len(got), len(data))
	}
}

func testShardAbortAfterCommit(t *testing.T, d driver.Driver) {
	ctx := t.Context()
	s := driver.Shard{PG: 3, Name: shardName(1)}
	data := payload(5000, 1)
	w, err := d.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := w.Abort(); err != nil {
			t.Errorf("Abort #%d after Commit: %v", i+1, err)
		}
	}
	if got := mustReadShard(t, d, s); !bytes.Equal(got, data) {
		t.Errorf("after Commit and Abort read %d bytes, want the %d committed", len(got), len(data))
	}
}

func testShardReplace(t *testing.T, d driver.Driver) {
	s := driver.Shard{PG: 9, Name: shardName(1)}
	for i, size := range []int{10000, 100, 0, 20000} {
		data := payload(size, uint64(i))
		writeShard(t, d, s, data)
		if got := mustReadShard(t, d, s); !bytes.Equal(got, data) {
			t.Errorf("replacement #%d: read %d bytes, want the %d written", i, len(got), len(data))
		}
	}
}

func testShardMissing(t *testing.T, d driver.Driver) {
	s := driver.Shard{PG: 1, Name: shardName(1)}
	_, err := readShard(t, d, s, 0, -1)
	checkNotFound(t, "ReadShard of missing shard", err)
	_, err = readShard(t, d, s, 10, 5)
	checkNotFound(t, "ReadShard of missing shard with range", err)
	checkNotFound(t, "DeleteShard of missing shard", d.DeleteShard(t.Context(), s))

	// The same name in another PG is another shard.
	writeShard(t, d, s, payload(10, 1))
	other := driver.Shard{PG: 2, Name: s.Name}
	_, err = readShard(t, d, other, 0, -1)
	checkNotFound(t, "ReadShard of the name in another PG", err)
	checkNotFound(t, "DeleteShard of the name in another PG", d.DeleteShard(t.Context(), other))
	// Names differing only in length are different shards.
	longer := driver.Shard{PG: 1, Name: s.Name + "0"}
	_, err = readShard(t, d, longer, 0, -1)
	checkNotFound(t, "ReadShard of a longer name", err)
}

func testShardDelete(t *testing.T, d driver.Driver) {
	ctx := t.Context()
	a := driver.Shard{PG: 1, Name: shardName(1)}
	b := driver.Shard{PG: 1, Name: shardName(2)}
	writeShard(t, d, a, payload(100, 1))
	writeShard(t, d, b, payload(100, 2))
	if err := d.DeleteShard(ctx, a); err != nil {
		t.Fatalf("DeleteShard: %v", err)
	}
	_, err := readShard(t, d, a, 0, -1)
	checkNotFound(t, "ReadShard after DeleteShard", err)
	checkNotFound(t, "second DeleteShard", d.DeleteShard(ctx, a))
	if got := mustReadShard(t, d, b); !bytes.Equal(got, payload(100, 2)) {
		t.Errorf("DeleteShard changed another shard")
	}
	// A deleted name can be written again.
	writeShard(t, d, a, payload(50, 3))
	if got := mustReadShard(t, d, a); !bytes.Equal(got, payload(50, 3)) {
		t.Errorf("rewritten shard reads back %d different bytes", len(got))
	}
}

func testShardInvalidName(t *testing.T, d driver.Driver) {
	ctx := t.Context()
	names := []string{
		"",
		"../x",
		"../../../../etc/passwd",
		"0123456789ABCDEF",                  // uppercase
		"0123456789abcdeF",                  // one uppercase
		"0123456789abcde",                   // 15: too short
		strings.Repeat("a", 129),            // too long
		"0123456789abcdef/0123456789abcdef", // slash
		"0123456789abcdef\x00",
		"0123456789abcdeg",
		"..0123456789abcdef",
		" 0123456789abcdef",
	}
	for _, name := range names {
		s := driver.Shard{PG: 1, Name: name}
		if w, err := d.CreateShard(ctx, s); !errors.Is(err, driver.ErrInvalidName) {
			t.Errorf("CreateShard(%q): got err %v, want driver.ErrInvalidName", name, err)
			if err == nil {
				w.Abort()
			}
		}
		if rc, err := d.ReadShard(ctx, s, 0, -1); !errors.Is(err, driver.ErrInvalidName) {
			t.Errorf("ReadShard(%q): got err %v, want driver.ErrInvalidName", name, err)
			if err == nil {
				rc.Close()
			}
		}
		if err := d.DeleteShard(ctx, s); !errors.Is(err, driver.ErrInvalidName) {
			t.Errorf("DeleteShard(%q): got err %v, want driver.ErrInvalidName", name, err)
		}
	}
	// The shortest and longest names are valid.
	for i, name := range []string{strings.Repeat("0", 16), strings.Repeat("f", 128)} {
		s := driver.Shard{PG: 1, Name: name}
		writeShard(t, d, s, payload(10, uint64(i)))
		if got := mustReadShard(t, d, s); !bytes.Equal(got, payload(10, uint64(i))) {
			t.Errorf("shard %q reads back different bytes", name)
		}
	}
}

func testShardCommitCancelled(t *testing.T, d driver.Driver) {
	s := driver.Shard{PG: 1, Name: shardName(1)}
	w, err := d.CreateShard(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(payload(1000, 1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Commit(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit with cancelled ctx: got err %v, want context.Canceled", err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after failed Commit: %v", err)
	}
	_, err = readShard(t, d, s, 0, -1)
	checkNotFound(t, "ReadShard after cancelled Commit", err)
}

func testShardConcurrent(t *testing.T, d driver.Driver) {
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s := driver.Shard{PG: uint32(i % 3), Name: shardName(i)}
			w, err := d.CreateShard(t.Context(), s)
			if err != nil {
				errs[i] = err
				return
			}
			data := payload(200<<10+i, uint64(i))
			for chunk := range slices.Chunk(data, 64<<10) {
				if _, err := w.Write(chunk); err != nil {
					w.Abort()
					errs[i] = err
					return
				}
			}
			errs[i] = w.Commit(t.Context())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	for i := range n {
		s := driver.Shard{PG: uint32(i % 3), Name: shardName(i)}
		if got := mustReadShard(t, d, s); !bytes.Equal(got, payload(200<<10+i, uint64(i))) {
			t.Errorf("shard %d: read back %d different bytes", i, len(got))
		}
	}
}

// checkRecord fails the test unless got equals want.
func checkRecord(t *testing.T, what string, got, want driver.Record) {
	t.Helper()
	if got.Key != want.Key || got.Version != want.Version || !bytes.Equal(got.Data, want.Data) {
		t.Errorf("%s: got record {%q %v %d bytes}, want {%q %v %d bytes}",
			what, got.Key, got.Version, len(got.Data), want.Key, want.Version, len(want.Data))
	}
}

func testRecordPutGet(t *testing.T, d driver.Driver) {
	ctx := t.Context()
	_, err := d.GetRecord(ctx, "a")
	checkNotFound(t, "GetRecord of missing key", err)

	recs := []driver.Record{
		{Key: "a", Version: version(1), Data: []byte("hello")},
		{Key: "b", Version: version(1)}, // empty data
		{Key: "c", Version: driver.Version{}, Data: []byte("zero version")},
		{Key: "big", Version: version(7), Data: payload(256<<10, 1)},
	}
	for _, r := range recs {
		prev, ok, err := d.PutRecord(ctx, r)
		if err != nil || ok {
			t.Fatalf("PutRecord(%q) of a new key = %v, %v, %v; want ok false, nil error", r.Key, prev, ok, err)
		}
	}
	for _, r := range recs {
		got, err := d.GetRecord(ctx, r.Key)
		if err != nil {
			t.Fatalf("GetRecord(%q): %v", r.Key, err)
		}
		checkRecord(t, "GetRecord", got, r)
	}

	// Replace with a newer version: the old record comes back as prev.
	newer := driver.Record{Key: "a", Version: version(2), Data: []byte("world!")}
	prev, ok, err := d.PutRecord(ctx, newer)
	if err != nil || !ok {
		t.Fatalf("PutRecord of newer version = %v, %v; want ok, nil error", ok, err)
	}
	checkRecord(t, "prev", prev, recs[0])
	got, err := d.GetRecord(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "GetRecord after replace", got, newer)
}

func testRecordNoAliasing(t *testing.T, d driver.Driver) {
	ctx := t.Context()
	data := []byte("original")
	r := driver.Record{Key: "k", Version: version(1), Data: data}
	if _, _, err := d.PutRecord(ctx, r); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X' // the caller's buffer after PutRecord
	want := driver.Record{Key: "k", Version: version(1), Data: []byte("original")}

	got, err := d.GetRecord(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "after mutating the put buffer", got, want)
	got.Data[0] = 'Y'
	got, err = d.GetRecord(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "after mutating GetRecord's data", got, want)

	list, err := d.ListRecords(ctx, "", "", 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListRecords = %d records, %v; want 1", len(list), err)
	}
	list[0].Data[0] = 'Z'
	list, err = d.ListRecords(ctx, "", "", 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListRecords = %d records, %v; want 1", len(list), err)
	}
	checkRecord(t, "after mutating ListRecords' data", list[0], want)

	prev, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: version(2), Data: []byte("second")})
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "prev", prev, want)
	prev.Data[0] = 'W'
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: version(2), Data: []byte("third")}); err != nil {
		t.Fatal(err)
	}
	got, err = d.GetRecord(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "after mutating prev", got, driver.Record{Key: "k", Version: version(2), Data: []byte("third")})
}

func testRecordLastWriterWins(t *testing.T, d driver.Driver) {
	ctx := t.Context()
	// Versions compare as big-endian byte strings: hi is newer than lo.
	lo := driver.Version{15: 0xff}
	hi := driver.Version{0: 0x01}
	mid := version(1 << 40)
	steps := []struct {
		name     string
		put      driver.Record
		wantErr  error
		wantPrev *driver.Record // nil: ok false
		want     driver.Record  // stored afterwards
	}{
		{
			name: "first",
			put:  driver.Record{Key: "k", Version: mid, Data: []byte("mid")},
			want: driver.Record{Key: "k", Version: mid, Data: []byte("mid")},
		},
		{
			name:    "older",
			put:     driver.Record{Key: "k", Version: lo, Data: []byte("lo")},
			wantErr: driver.ErrStale,
			want:    driver.Record{Key: "k", Version: mid, Data: []byte("mid")},
		},
		{
			name:    "zero version",
			put:     driver.Record{Key: "k", Data: []byte("zero")},
			wantErr: driver.ErrStale,
			want:    driver.Record{Key: "k", Version: mid, Data: []byte("mid")},
		},
		{
			name:     "equal",
			put:      driver.Record{Key: "k", Version: mid, Data: []byte("mid again")},
			wantPrev: &driver.Record{Key: "k", Version: mid, Data: []byte("mid")},
			want:     driver.Record{Key: "k", Version: mid, Data: []byte("mid again")},
		},
		{
			name:     "newer",
			put:      driver.Record{Key: "k", Version: hi, Data: []byte("hi")},
			wantPrev: &driver.Record{Key: "k", Version: mid, Data: []byte("mid again")},
			want:     driver.Record{Key: "k", Version: hi, Data: []byte("hi")},
		},
		{
			name:    "older after newer",
			put:     driver.Record{Key: "k", Version: mid, Data: []byte("late")},
			wantErr: driver.ErrStale,
			want:    driver.Record{Key: "k", Version: hi, Data: []byte("hi")},
		},
	}
	for _, st := range steps {
		prev, ok, err := d.PutRecord(ctx, st.put)
		switch {
		case st.wantErr != nil:
			if !errors.Is(err, st.wantErr) {
				t.Errorf("%s: PutRecord: got err %v, want %v", st.name, err, st.wantErr)
			}
		case err != nil:
			t.Errorf("%s: PutRecord: %v", st.name, err)
		case st.wantPrev == nil && ok:
			t.Errorf("%s: PutRecord returned prev %+v, want none", st.name, prev)
		case st.wantPrev != nil && !ok:
			t.Errorf("%s: PutRecord returned no prev, want %+v", st.name, *st.wantPrev)
		case st.wantPrev != nil:
			checkRecord(t, st.name+": prev", prev, *st.wantPrev)
		}
		got, err := d.GetRecord(ctx, "k")
		if err != nil {
			t.Fatalf("%s: GetRecord: %v", st.name, err)
		}
		checkRecord(t, st.name+": stored", got, st.want)
	}
}

func testRecordDelete(t *testing.T, d driver.Driver) {
	ctx := t.Context()
	put := func(key string, v driver.Version) {
		t.Helper()
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: key, Version: v, Data: []byte(key)}); err != nil {
			t.Fatal(err)
		}
	}
	put("a", version(5))
	put("b", version(5))
	put("c", version(5))
	tests := []struct {
		name     string
		key      string
		v        driver.Version
		wantErr  error
		wantGone bool
	}{
		{"missing", "x", driver.Version{}, driver.ErrNotFound, true},
		{"missing with version", "x", version(5), driver.ErrNotFound, true},
		{"older version", "a", version(4), driver.ErrStale, false},
		{"newer version", "a", version(6), driver.ErrStale, false},
		{"matching version", "a", version(5), nil, true},
		{"again", "a", version(5), driver.ErrNotFound, true},
		{"zero version", "b", driver.Version{}, nil, true},
	}
	for _, tt := range tests {
		err := d.DeleteRecord(ctx, tt.key, tt.v)
		if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: DeleteRecord(%q, %v): got err %v, want %v", tt.name, tt.key, tt.v, err, tt.wantErr)
		}
		_, err = d.GetRecord(ctx, tt.key)
		if tt.wantGone {
			checkNotFound(t, tt.name+": GetRecord", err)
		} else if err != nil {
			t.Errorf("%s: GetRecord after refused delete: %v", tt.name, err)
		}
	}
	if _, err := d.GetRecord(ctx, "c"); err != nil {
		t.Errorf("untouched record: %v", err)
	}
	// A deleted key takes any version again.
	put("a", version(1))
}

func testRecordInvalidKey(t *testing.T, d driver.Driver) {
	ctx := t.Context()
	for _, key := range []string{"", strings.Repeat("k", driver.MaxKeySize+1)} {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: key, Version: version(1)}); !errors.Is(err, driver.ErrInvalidName) {
			t.Errorf("PutRecord(key of %d bytes): got err %v, want driver.ErrInvalidName", len(key), err)
		}
		if _, err := d.GetRecord(ctx, key); !errors.Is(err, driver.ErrInvalidName) {
			t.Errorf("GetRecord(key of %d bytes): got err %v, want driver.ErrInvalidName", len(key), err)
		}
		if err := d.DeleteRecord(ctx, key, driver.Version{}); !errors.Is(err, driver.ErrInvalidName) {
			t.Errorf("DeleteRecord(key of %d bytes): got err %v, want driver.ErrInvalidName", len(key), err)
		}
	}
	longest := driver.Record{Key: strings.Repeat("k", driver.MaxKeySize), Version: version(1), Data: []byte("x")}
	if _, _, err := d.PutRecord(ctx, longest); err != nil {
		t.Fatalf("PutRecord(key of MaxKeySize bytes): %v", err)
	}
	got, err := d.GetRecord(ctx, longest.Key)
	if err != nil {
		t.Fatalf("GetRecord(key of MaxKeySize bytes): %v", err)
	}
	checkRecord(t, "longest key", got, longest)
}

func testRecordConcurrentPut(t *testing.T, d driver.Driver) {
	const n = 16
	for round := range 4 {
		key := fmt.Sprintf("key-%d", round)
		order := rand.Perm(n)
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				v := uint64(order[i] + 1)
				_, _, err := d.PutRecord(t.Context(), driver.Record{Key: key, Version: version(v), Data: fmt.Appendf(nil, "v%d", v)})
				if errors.Is(err, driver.ErrStale) {
					err = nil
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, writer %d: %v", round, i, err)
			}
		}
		got, err := d.GetRecord(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, fmt.Sprintf("round %d", round), got, driver.Record{Key: key, Version: version(n), Data: fmt.Appendf(nil, "v%d", n)})
	}
}

// orderKeys are keys whose byte order is easy to get wrong.
var orderKeys = []string{
	"a", "a\x00", "a\x00b", "a\x01", "a/", "a/b", "a/b/", "a/b/c", "ab", "a\xff",
	"b", "b/", "\x00", "\x00\x00", "\x01", "\xff", "\xff\xff", "\xff\x00",
	"../../etc/passwd", "../x", "./a", "/abs", "%2e%2e", "A", "Z", "é", "e\u0301",
	"日本語/キー", strings.Repeat("é", 512), strings.Repeat("é", 511) + "f",
	"x", "x/", "x//", "x/y", "x/y/", "x\\y", "x y", "\u00a0", "😀", "😀/",
}

// putKeys stores a record for each key, with the key as data.
func putKeys(t *testing.T, d driver.Driver, keys []string) {
	t.Helper()
	for i, k := range keys {
		if _, _, err := d.PutRecord(t.Context(), driver.Record{Key: k, Version: version(uint64(i + 1)), Data: []byte(k)}); err != nil {
			t.Fatalf("PutRecord(%q): %v", k, err)
		}
	}
}

// expectList returns what ListRecords(prefix, after, limit) must return for
// the keys, in order.
func expectList(keys []string, prefix, after string, limit int) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) && k > after {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out[:min(limit, len(out))]
}

// listKeys calls ListRecords and returns the keys, checking that each
// record's data is its key.
func listKeys(t *testing.T, d driver.Driver, prefix, after string, limit int) []string {
	t.Helper()
	recs, err := d.ListRecords(t.Context(), prefix, after, limit)
	if err != nil {
		t.Fatalf("ListRecords(%q, %q, %d): %v", prefix, after, limit, err)
	}
	keys := make([]string, len(recs))
	for i, r := range recs {
		keys[i] = r.Key
		if string(r.Data) != r.Key {
			t.Errorf("ListRecords(%q, %q, %d): record %q has data %q", prefix, after, limit, r.Key, r.Data)
		}
	}
	return keys
}

func testListOrder(t *testing.T, d driver.Driver) {
	putKeys(t, d, orderKeys)
	got := listKeys(t, d, "", "", len(orderKeys)+10)
	want := slices.Sorted(slices.Values(orderKeys))
	if !slices.Equal(got, want) {
		t.Errorf("ListRecords of all keys:\n got %q\nwant %q", got, want)
	}
	for _, k := range orderKeys {
		r, err := d.GetRecord(t.Context(), k)
		if err != nil {
			t.Errorf("GetRecord(%q): %v", k, err)
		} else if string(r.Data) != k {
			t.Errorf("GetRecord(%q) has data %q", k, r.Data)
		}
	}
}

func testListPrefixAfter(t *testing.T, d driver.Driver) {
	putKeys(t, d, orderKeys)
	prefixes := []string{"", "a", "a/", "a/b", "a\x00", "\x00", "\xff", "x", "x/", "é", "../", "zz", "a/b/c/d"}
	afters := []string{"", "a", "a\x00", "a/", "a/b", "a/bb", "b", "x/", "x/z", "\x00", "\xff", "\xff\xff\xff", "0", "é"}
	for _, prefix := range prefixes {
		for _, after := range afters {
			for _, limit := range []int{1, 2, 1000} {
				got := listKeys(t, d, prefix, after, limit)
				want := expectList(orderKeys, prefix, after, limit)
				if !slices.Equal(got, want) {
					t.Errorf("ListRecords(%q, %q, %d):\n got %q\nwant %q", prefix, after, limit, got, want)
				}
			}
		}
	}
}

func testListPagination(t *testing.T, d driver.Driver) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	keys := make([]string, 0, n)
	for i := range n {
		keys = append(keys, fmt.Sprintf("t/c%d/%d", i%3, i))
	}
	keys = append(keys, "t/c1", "t/c1/", "t/c10", "t/c1\x00")
	rand.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	putKeys(t, d, keys)
	for _, prefix := range []string{"", "t/", "t/c1", "t/c1/", "t/c2/1"} {
		for _, limit := range []int{1, 7, 100, n + 100} {
			want := expectList(keys, prefix, "", len(keys))
			var got []string
			after := ""
			for page := 0; ; page++ {
				if page > len(keys)+1 {
					t.Fatalf("prefix %q, limit %d: pagination does not end", prefix, limit)
				}
				ks := listKeys(t, d, prefix, after, limit)
				if len(ks) > limit {
					t.Fatalf("prefix %q, limit %d: page of %d keys", prefix, limit, len(ks))
				}
				if len(ks) == 0 {
					break
				}
				got = append(got, ks...)
				after = ks[len(ks)-1]
			}
			if !slices.Equal(got, want) {
				t.Errorf("prefix %q, limit %d: paginated %d keys, want %d (equal as sets: %v)",
					prefix, limit, len(got), len(want), slices.Equal(slices.Sorted(slices.Values(got)), want))
			}
		}
	}
}

func testContextCancelled(t *testing.T, d driver.Driver) {
	s := driver.Shard{PG: 1, Name: shardName(1)}
	writeShard(t, d, s, payload(100, 1))
	if _, _, err := d.PutRecord(t.Context(), driver.Record{Key: "k", Version: version(1)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with cancelled ctx: got err %v, want context.Canceled", what, err)
		}
	}
	_, err := d.Info(ctx)
	check("Info", err)
	w, err := d.CreateShard(ctx, driver.Shard{PG: 1, Name: shardName(2)})
	check("CreateShard", err)
	if err == nil {
		w.Abort()
	}
	rc, err := d.ReadShard(ctx, s, 0, -1)
	check("ReadShard", err)
	if err == nil {
		rc.Close()
	}
	check("DeleteShard", d.DeleteShard(ctx, s))
	_, _, err = d.PutRecord(ctx, driver.Record{Key: "k", Version: version(2)})
	check("PutRecord", err)
	_, err = d.GetRecord(ctx, "k")
	check("GetRecord", err)
	check("DeleteRecord", d.DeleteRecord(ctx, "k", driver.Version{}))
	_, err = d.ListRecords(ctx, "", "", 10)
	check("ListRecords", err)

	// Nothing changed.
	if got := mustReadShard(t, d, s); !bytes.Equal(got, payload(100, 1)) {
		t.Errorf("shard changed by cancelled calls")
	}
	r, err := d.GetRecord(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != version(1) {
		t.Errorf("record changed by cancelled calls: version %v", r.Version)
	}
}

// testListCutsLargeData: listings return at most ListDataMax bytes of each
// record's data, flagged Truncated; GetRecord returns it whole.
func testListCutsLargeData(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	big, small := payload(driver.ListDataMax+1000, 1), payload(driver.ListDataMax, 2)
	for key, data := range map[string][]byte{"big": big, "small": small} {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: key, Version: version(1), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := d.ListRecords(ctx, "", "", 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("ListRecords = %d records, %v", len(recs), err)
	}
	if got := recs[0]; got.Key != "big" || !got.Truncated || !bytes.Equal(got.Data, big[:driver.ListDataMax]) {
		t.Fatalf("listed big record: truncated %v, %d bytes", got.Truncated, len(got.Data))
	}
	if got := recs[1]; got.Key != "small" || got.Truncated || !bytes.Equal(got.Data, small) {
		t.Fatalf("listed small record: truncated %v, %d bytes", got.Truncated, len(got.Data))
	}
	full, err := d.GetRecord(ctx, "big")
	if err != nil || full.Truncated || !bytes.Equal(full.Data, big) {
		t.Fatalf("GetRecord of big: %d bytes, truncated %v, %v", len(full.Data), full.Truncated, err)
	}
}
