package engine

import (
	"bytes"
	"context"
	"io"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// roPeek hands the engine every peeked record's Data in memory mapped
// read-only: a write into it anywhere in the engine (or in what the engine
// passes it to: erasure, the pipes, a writer) is a fault that kills the
// test binary, where TestPeekedRecordsStayUnwritten only sees writes that
// changed the bytes and survived to its end. The mappings are never
// unmapped (a record may be kept for as long as its artifact).
type roPeek struct {
	driver.Driver
	peeks *atomic.Int64
}

func (d roPeek) PeekRecord(key string) (driver.Record, bool, error) {
	rec, ok, err := d.Driver.(recordPeeker).PeekRecord(key)
	if !ok || err != nil || len(rec.Data) == 0 {
		return rec, ok, err
	}
	m, merr := syscall.Mmap(-1, 0, len(rec.Data), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if merr != nil {
		panic(merr)
	}
	copy(m, rec.Data)
	if merr := syscall.Mprotect(m, syscall.PROT_READ); merr != nil {
		panic(merr)
	}
	rec.Data = m[:len(rec.Data):len(rec.Data)]
	d.peeks.Add(1)
	return rec, ok, err
}

// TestReview29qPeekedRecordsReadOnly runs the engine's operations that
// read an inline artifact's records (peeked: held in the drives' memory
// or cached) with every peeked record read-only: GETs whole, ranged,
// streamed (a range over syncReadMax goes through the block pipe and its
// WriteTo) and degraded (a shard rebuilt from parity, the record written
// back), HEAD, a copy, a metadata update and a legal hold (both reuse the
// peeked inline shards for the new record), a versioned overwrite
// (adopt), a part copied from it, a light and a full heal, a delete.
// Coverage for 255676b (PeekRecord's Data aliases the drive's memory):
// passes on 04a8063.
func TestReview29qPeekedRecordsReadOnly(t *testing.T) {
	ctx := context.Background()
	var peeks atomic.Int64
	r := newRig(t, rigOptions{drives: 4, noSync: true, wrap: func(d driver.Driver) driver.Driver { return roPeek{d, &peeks} }})
	data := randBytes(29, 100<<10) // inline (at most 128 KiB), each shard ~50 KiB: cached
	r.put(t, "k", data, int64(len(data)))
	{
		// The guard itself: a write into a peeked record faults.
		m := r.e.mapOf()
		ds, _ := r.e.pgDrives(m, pgOf(m, "t", "c", "k"))
		rec, ok, err := ds[0].(recordPeeker).PeekRecord(indexPrefix("t", "c") + "k")
		if !ok || err != nil || len(rec.Data) == 0 {
			t.Fatalf("the fresh record is not peeked: %v, %v", ok, err)
		}
		faulted := func() (f bool) {
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			defer func() { f = recover() != nil }()
			rec.Data[0]++
			return false
		}()
		if !faulted {
			t.Fatal("a write into a peeked record did not fault")
		}
	}

	check := func(what string, off, length int64, stream bool) {
		t.Helper()
		a, err := r.e.Open(ctx, "t", "c", "k")
		if err != nil {
			t.Fatalf("%s: open: %v", what, err)
		}
		if length < 0 {
			length = a.Info.Size - off
		}
		rd := a.Reader(ctx, off, length)
		defer rd.Close()
		var got []byte
		if stream {
			var buf bytes.Buffer
			_, err = io.Copy(&buf, rd) // the block pipe's WriteTo
			got = buf.Bytes()
		} else {
			got, err = io.ReadAll(struct{ io.Reader }{rd})
		}
		if err != nil || !bytes.Equal(got, data[off:off+length]) {
			t.Fatalf("%s: read %d bytes, %v", what, len(got), err)
		}
	}
	check("whole, streamed", 0, -1, true)
	check("whole, read", 0, -1, false)
	check("range at once", 100, 1000, false)
	check("long range", 1, 60<<10, true)
	if _, err := r.e.Head(ctx, "t", "c", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.Copy(ctx, "t", "c", "k", "c", "k2", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.UpdateMetadata(ctx, "t", "c", "k", "", func(cur ArtifactInfo) (map[string]string, error) {
		return map[string]string{"a": "b"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	check("after a metadata update", 0, -1, true)
	if err := r.e.SetLegalHold(ctx, "t", "c", "k", "", true); err != nil {
		t.Fatal(err)
	}
	if err := r.e.SetLegalHold(ctx, "t", "c", "k", "", false); err != nil {
		t.Fatal(err)
	}
	check("after a legal hold", 0, -1, false)

	// Degraded: one drive loses its record (a data shard's), the read
	// rebuilds from parity and writes the record back.
	m := r.e.mapOf()
	ds, _ := r.e.pgDrives(m, pgOf(m, "t", "c", "k"))
	ikey := indexPrefix("t", "c") + "k"
	if err := ds[0].DeleteRecord(ctx, ikey, driver.Version{}); err != nil {
		t.Fatal(err)
	}
	check("degraded", 0, -1, true)
	if _, err := r.e.Heal(ctx, "t", "c", "k"); err != nil {
		t.Fatal(err)
	}

	// A part copied from the inline artifact.
	id, err := r.e.CreateUpload(ctx, "t", "c", "mp", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.e.Open(ctx, "t", "c", "k")
	if err != nil {
		t.Fatal(err)
	}
	rd := a.Reader(ctx, 0, a.Info.Size)
	if _, err := r.e.PutPart(ctx, "t", "c", "mp", id, 1, rd, PutOptions{Size: a.Info.Size}); err != nil {
		t.Fatal(err)
	}
	rd.Close()
	if err := r.e.AbortUpload(ctx, "t", "c", "mp", id); err != nil {
		t.Fatal(err)
	}

	// A versioned overwrite adopts the plain record as the null version
	// (its bytes read through the peeked records).
	if _, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader([]byte("v2")), PutOptions{Size: 2, Versioning: VersioningEnabled}); err != nil {
		t.Fatal(err)
	}
	a, err = r.e.OpenVersion(ctx, "t", "c", "k", NullVersion)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.WriteRange(ctx, &buf, 0, a.Info.Size); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("the null version: %d bytes, %v", buf.Len(), err)
	}
	if err := r.e.Delete(ctx, "t", "c", "k2"); err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	if peeks.Load() == 0 {
		t.Fatal("no record was peeked")
	}
	t.Logf("%d records peeked read-only", peeks.Load())
}
