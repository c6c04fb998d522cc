package drivertest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

func TestFaultyNoFaults(t *testing.T) {
	Run(t, func(t *testing.T) driver.Driver { return NewFaulty(&Mem{}) })
}

func TestFaultyOffline(t *testing.T) {
	ctx := t.Context()
	f := NewFaulty(&Mem{})
	s := driver.Shard{PG: 1, Name: shardName(1)}
	writeShard(t, f, s, payload(100, 1))
	if _, _, err := f.PutRecord(ctx, driver.Record{Key: "k", Version: version(1)}); err != nil {
		t.Fatal(err)
	}
	w, err := f.CreateShard(ctx, driver.Shard{PG: 1, Name: shardName(2)})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.ReadShard(ctx, s, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	f.SetOffline(true)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, driver.ErrOffline) {
			t.Errorf("%s while offline: got err %v, want driver.ErrOffline", what, err)
		}
	}
	_, err = f.Info(ctx)
	check("Info", err)
	_, err = f.CreateShard(ctx, s)
	check("CreateShard", err)
	_, err = f.ReadShard(ctx, s, 0, -1)
	check("ReadShard", err)
	_, err = rc.Read(make([]byte, 10))
	check("Read of open stream", err)
	check("DeleteShard", f.DeleteShard(ctx, s))
	_, _, err = f.PutRecord(ctx, driver.Record{Key: "k", Version: version(2)})
	check("PutRecord", err)
	_, err = f.GetRecord(ctx, "k")
	check("GetRecord", err)
	check("DeleteRecord", f.DeleteRecord(ctx, "k", driver.Version{}))
	_, err = f.ListRecords(ctx, "", "", 1)
	check("ListRecords", err)
	_, err = w.Write([]byte("x"))
	check("ShardWriter.Write", err)
	check("ShardWriter.Commit", w.Commit(ctx))
	if err := w.Abort(); err != nil {
		t.Errorf("Abort while offline: %v", err)
	}

	f.SetOffline(false)
	if _, err := f.GetRecord(ctx, "k"); err != nil {
		t.Errorf("GetRecord back online: %v", err)
	}
	if _, err := f.ReadShard(ctx, driver.Shard{PG: 1, Name: shardName(2)}, 0, -1); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("write failed while offline is visible: err %v", err)
	}
}

func TestFaultyCorruptReads(t *testing.T) {
	ctx := t.Context()
	f := NewFaulty(&Mem{})
	s := driver.Shard{PG: 1, Name: shardName(1)}
	data := payload(3*CorruptEvery+10, 1)
	writeShard(t, f, s, data)
	rec := driver.Record{Key: "k", Version: version(1), Data: []byte("abcdef")}
	if _, _, err := f.PutRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	f.SetCorruptReads(true)

	// Whatever the read sizes, the same bytes are flipped.
	for _, bufSize := range []int{1, 7, 4096, 5000, 1 << 20} {
		got := readInChunks(t, f, s, bufSize)
		if len(got) != len(data) {
			t.Fatalf("read %d bytes, want %d", len(got), len(data))
		}
		for i := range data {
			want := data[i]
			if i%CorruptEvery == 0 {
				want ^= 0xff
			}
			if got[i] != want {
				t.Fatalf("reads of %d bytes: byte %d = %#x, want %#x", bufSize, i, got[i], want)
			}
		}
	}
	// A ranged stream is corrupted at its own offsets.
	got, err := readShard(t, f, s, 1, 2*CorruptEvery)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != data[1]^0xff || got[1] != data[2] || got[CorruptEvery] != data[CorruptEvery+1]^0xff {
		t.Errorf("ranged stream not corrupted at stream offsets 0 and %d only", CorruptEvery)
	}

	r, err := f.GetRecord(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte("abc\x9bef"); !bytes.Equal(r.Data, want) {
		t.Errorf("corrupt GetRecord data = %q, want %q", r.Data, want)
	}
	rs, err := f.ListRecords(ctx, "", "", 10)
	if err != nil || len(rs) != 1 {
		t.Fatalf("ListRecords = %v, %v", rs, err)
	}
	if want := []byte("abc\x9bef"); !bytes.Equal(rs[0].Data, want) {
		t.Errorf("corrupt ListRecords data = %q, want %q", rs[0].Data, want)
	}

	f.SetCorruptReads(false)
	if got := mustReadShard(t, f, s); !bytes.Equal(got, data) {
		t.Errorf("data still corrupt after SetCorruptReads(false)")
	}
	r, err = f.GetRecord(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, "after SetCorruptReads(false)", r, rec)
}

// readInChunks reads all of shard s with Read calls of bufSize bytes.
func readInChunks(t *testing.T, d driver.Driver, s driver.Shard, bufSize int) []byte {
	t.Helper()
	rc, err := d.ReadShard(t.Context(), s, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []byte
	buf := make([]byte, bufSize)
	for {
		n, err := rc.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestFaultyFailWritesAfter(t *testing.T) {
	ctx := t.Context()
	f := NewFaulty(&Mem{})
	f.SetFailWritesAfter(100)
	s := driver.Shard{PG: 1, Name: shardName(1)}
	w, err := f.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(make([]byte, 60)); n != 60 || err != nil {
		t.Fatalf("first Write = %d, %v; want 60, nil", n, err)
	}
	if n, err := w.Write(make([]byte, 60)); n != 40 || !errors.Is(err, ErrInjected) {
		t.Fatalf("crossing Write = %d, %v; want 40, ErrInjected", n, err)
	}
	if n, err := w.Write(make([]byte, 1)); n != 0 || !errors.Is(err, ErrInjected) {
		t.Fatalf("Write after the limit = %d, %v; want 0, ErrInjected", n, err)
	}
	w.Abort()

	// Exactly n bytes are fine; the limit applies per shard.
	writeShard(t, f, s, make([]byte, 100))
	writeShard(t, f, driver.Shard{PG: 1, Name: shardName(2)}, make([]byte, 100))

	f.SetFailWritesAfter(-1)
	writeShard(t, f, s, make([]byte, 1000))
	f.SetFailWritesAfter(0)
	w, err = f.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write([]byte{1}); !errors.Is(err, ErrInjected) {
		t.Errorf("Write with limit 0: got err %v, want ErrInjected", err)
	}
}

func TestFaultyLatency(t *testing.T) {
	f := NewFaulty(&Mem{})
	f.SetLatency(50 * time.Millisecond)
	start := time.Now()
	if _, err := f.Info(t.Context()); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Errorf("Info took %v, want at least 50ms", el)
	}

	f.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := f.GetRecord(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetRecord with latency beyond deadline: got err %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("GetRecord took %v: latency does not honour ctx", el)
	}
	f.SetLatency(0)
	if _, err := f.GetRecord(t.Context(), "k"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("GetRecord without latency: got err %v, want driver.ErrNotFound", err)
	}
}

func TestFaultyHang(t *testing.T) {
	f := NewFaulty(&Mem{})
	s := driver.Shard{PG: 1, Name: shardName(1)}
	writeShard(t, f, s, payload(100, 1))
	rc, err := f.ReadShard(t.Context(), s, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f.SetHang(true)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"GetRecord", func() error { _, err := f.GetRecord(ctx, "k"); return err }},
		{"PutRecord", func() error { _, _, err := f.PutRecord(ctx, driver.Record{Key: "k", Version: version(1)}); return err }},
		{"CreateShard", func() error { _, err := f.CreateShard(ctx, driver.Shard{PG: 1, Name: shardName(2)}); return err }},
	} {
		if err := tc.call(); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s while hung: %v, want the ctx's deadline error", tc.name, err)
		}
	}
	// A stream opened before hangs until its ctx ends or the hang is off.
	done := make(chan error, 1)
	go func() { _, err := rc.Read(make([]byte, 10)); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("read from a hung stream returned %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.SetHang(false)
	if err := <-done; err != nil {
		t.Errorf("read after the hang ended: %v", err)
	}
}
