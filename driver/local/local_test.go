package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
)

// testConfig returns a Config for a fresh drive in a temp directory.
func testConfig(t *testing.T, noSync bool) Config {
	return Config{Dir: t.TempDir(), ID: "d1", ClusterID: "c1", NoSync: noSync}
}

// open opens a Driver with c and closes it at the end of the test.
func open(t *testing.T, c Config) *Driver {
	t.Helper()
	d, err := Open(t.Context(), c)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver { return open(t, testConfig(t, true)) })
}

func TestConformanceDurable(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver { return open(t, testConfig(t, false)) })
}

func TestConfigValidate(t *testing.T) {
	good := Config{Dir: "/x", ID: "d1", ClusterID: "c1"}
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"complete", func(*Config) {}, true},
		{"no sync", func(c *Config) { c.NoSync = true }, true},
		{"no dir", func(c *Config) { c.Dir = "" }, false},
		{"no id", func(c *Config) { c.ID = "" }, false},
		{"no cluster", func(c *Config) { c.ClusterID = "" }, false},
	}
	for _, tt := range tests {
		c := good
		tt.modify(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
		if !tt.ok {
			if _, err := Open(t.Context(), c); err == nil {
				t.Errorf("%s: Open succeeded with an invalid config", tt.name)
			}
		}
	}
}

func TestFormatRecord(t *testing.T) {
	c := testConfig(t, false)
	d := open(t, c)
	b, err := os.ReadFile(filepath.Join(c.Dir, "format.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"version": 2.0, "cluster_id": "c1", "drive_id": "d1"} // 2: packs (pack.go)
	if !maps.Equal(f, want) {
		t.Errorf("format.json = %v, want %v", f, want)
	}
	info, err := d.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "d1" || info.ClusterID != "c1" || info.Class != "local" {
		t.Errorf("Info() = %+v, want ID d1, ClusterID c1, Class local", info)
	}
	if info.Usage.Total == 0 || info.Usage.Free == 0 || info.Usage.Free > info.Usage.Total {
		t.Errorf("Info().Usage = %+v: want 0 < Free <= Total", info.Usage)
	}
}

func TestForeignDrive(t *testing.T) {
	c := testConfig(t, true)
	d := open(t, c)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	other := c
	other.ClusterID = "c2"
	_, err := Open(t.Context(), other)
	if !errors.Is(err, driver.ErrForeignDrive) {
		t.Fatalf("Open of a drive of cluster c1 as c2: got err %v, want driver.ErrForeignDrive", err)
	}
	// The refused open changed nothing.
	open(t, c)
}

func TestDriveIDMismatch(t *testing.T) {
	c := testConfig(t, true)
	if err := open(t, c).Close(); err != nil {
		t.Fatal(err)
	}
	other := c
	other.ID = "d2"
	_, err := Open(t.Context(), other)
	if err == nil {
		t.Fatal("Open of drive d1 as d2 succeeded")
	}
	if errors.Is(err, driver.ErrForeignDrive) || !strings.Contains(err.Error(), "drive id") {
		t.Errorf("Open of drive d1 as d2: got err %v, want a drive id mismatch", err)
	}
}

func TestIndexWithoutFormat(t *testing.T) {
	c := testConfig(t, true)
	if err := open(t, c).Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(c.Dir, "format.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), c); err == nil {
		t.Fatal("Open of a drive with index.db but no format.json succeeded")
	}
}

func TestCorruptFormat(t *testing.T) {
	c := testConfig(t, true)
	if err := os.WriteFile(filepath.Join(c.Dir, "format.json"), []byte("{nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), c); !errors.Is(err, driver.ErrCorrupt) {
		t.Fatalf("Open with a corrupt format.json: got err %v, want driver.ErrCorrupt", err)
	}
}

func TestLocked(t *testing.T) {
	c := testConfig(t, true)
	open(t, c)
	_, err := Open(t.Context(), c)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open of an open drive: got err %v, want drive in use", err)
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	c := testConfig(t, false)
	d := open(t, c)
	s := driver.Shard{PG: 0x1a, Name: "abcdef0123456789"}
	data := bytes.Repeat([]byte("shard"), 100000)
	writeShard(t, d, s, data)
	rec := driver.Record{Key: "t/c/k", Version: driver.Version{15: 3}, Data: []byte("meta")}
	if _, _, err := d.PutRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d) // a record held by the log counts nowhere; a pack holds it once flushed
	before, err := d.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d = open(t, c)
	rc, err := d.ReadShard(ctx, s, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("shard after reopen: %d bytes, %v; want the %d written", len(got), err, len(data))
	}
	r, err := d.GetRecord(ctx, rec.Key)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != rec.Version || !bytes.Equal(r.Data, rec.Data) {
		t.Errorf("record after reopen = %+v, want %+v", r, rec)
	}
	after, err := d.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Usage.Used != before.Usage.Used {
		t.Errorf("Usage.Used = %d after reopen, %d before", after.Usage.Used, before.Usage.Used)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "shards", "001a", "ab", s.Name)); err != nil {
		t.Errorf("shard not at the documented path: %v", err)
	}
}

func TestTmpCleanedOnOpen(t *testing.T) {
	c := testConfig(t, true)
	d := open(t, c)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// Leftovers of a crash: a temp shard, a nested directory, a temp format.
	tmp := filepath.Join(c.Dir, "tmp")
	for _, name := range []string{"shard-123", "dir/shard-456"} {
		p := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "format.json.tmp123"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	open(t, c)
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("tmp/ holds %d entries after Open, want none", len(ents))
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "format.json.tmp123")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("format temp file left after Open: %v", err)
	}
}

func TestHostileKeysStayInIndex(t *testing.T) {
	ctx := t.Context()
	c := testConfig(t, true)
	root := filepath.Join(c.Dir, "drive")
	c.Dir = root
	d := open(t, c)
	keys := []string{
		"../../etc/passwd", "../x", "/etc/passwd", "a/../../b", "..", ".", "tmp/x", "shards/0000/aa/x",
		"format.json", "index.db", "a\x00b", "C:\\windows", strings.Repeat("../", 1000), "\xff\xfe",
	}
	for i, k := range keys {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: driver.Version{15: byte(i + 1)}, Data: []byte(k)}); err != nil {
			t.Fatalf("PutRecord(%q): %v", k, err)
		}
	}
	writeShard(t, d, driver.Shard{PG: 2, Name: "0123456789abcdef"}, []byte("x"))

	var got []string
	err := filepath.WalkDir(filepath.Dir(root), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(filepath.Dir(root), p)
		if err != nil {
			return err
		}
		got = append(got, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		".", "drive", "drive/format.json", "drive/index.db",
		"drive/packs", "drive/packs/pack-00000001.dat", // large record data (pack.go)
		"drive/shards", "drive/shards/0002",
		"drive/shards/0002/01", "drive/shards/0002/01/0123456789abcdef", "drive/tmp",
		"drive/wal-00000000000000000001.log", // the record log (wal.go)
	}
	if !slices.Equal(got, want) {
		t.Errorf("files after hostile keys:\n got %q\nwant %q", got, want)
	}
	for _, k := range keys {
		if r, err := d.GetRecord(ctx, k); err != nil || string(r.Data) != k {
			t.Errorf("GetRecord(%q) = %q, %v", k, r.Data, err)
		}
	}
}

func TestUsage(t *testing.T) {
	ctx := t.Context()
	d := open(t, testConfig(t, true))
	used := func() uint64 {
		t.Helper()
		info, err := d.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.Usage.Used
	}
	start := used()
	if start == 0 {
		t.Errorf("Usage.Used = 0 with an index file")
	}
	s := driver.Shard{PG: 1, Name: "0123456789abcdef"}
	writeShard(t, d, s, make([]byte, 1<<20))
	if got := used(); got != start+1<<20 {
		t.Errorf("Usage.Used = %d after a 1 MiB commit, want %d", got, start+1<<20)
	}
	writeShard(t, d, s, make([]byte, 1<<10)) // replaces
	if got := used(); got != start+1<<10 {
		t.Errorf("Usage.Used = %d after replacing with 1 KiB, want %d", got, start+1<<10)
	}
	if err := d.DeleteShard(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got := used(); got != start {
		t.Errorf("Usage.Used = %d after delete, want %d", got, start)
	}
}

func TestClose(t *testing.T) {
	ctx := t.Context()
	c := testConfig(t, true)
	d, err := Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	s := driver.Shard{PG: 1, Name: "0123456789abcdef"}
	writeShard(t, d, s, []byte("data"))
	w, err := d.CreateShard(ctx, driver.Shard{PG: 1, Name: "0123456789abcdee"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	rc, err := d.ReadShard(ctx, s, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, driver.ErrOffline) {
			t.Errorf("%s after Close: got err %v, want driver.ErrOffline", what, err)
		}
	}
	_, err = d.Info(ctx)
	check("Info", err)
	_, err = d.CreateShard(ctx, s)
	check("CreateShard", err)
	_, err = d.ReadShard(ctx, s, 0, -1)
	check("ReadShard", err)
	check("DeleteShard", d.DeleteShard(ctx, s))
	_, _, err = d.PutRecord(ctx, driver.Record{Key: "k"})
	check("PutRecord", err)
	_, err = d.GetRecord(ctx, "k")
	check("GetRecord", err)
	check("DeleteRecord", d.DeleteRecord(ctx, "k", driver.Version{}))
	_, err = d.ListRecords(ctx, "", "", 1)
	check("ListRecords", err)
	_, err = w.Write([]byte("more"))
	check("ShardWriter.Write", err)
	check("ShardWriter.Commit", w.Commit(ctx))
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Close: %v", err)
	}
	if ents, err := os.ReadDir(filepath.Join(c.Dir, "tmp")); err != nil || len(ents) != 0 {
		t.Errorf("tmp/ after Close: %d entries, %v; want none", len(ents), err)
	}
	// A stream opened before Close stays readable.
	if b, err := io.ReadAll(rc); err != nil || string(b) != "data" {
		t.Errorf("stream opened before Close: %q, %v", b, err)
	}
}

func TestWriteHonoursCreateContext(t *testing.T) {
	d := open(t, testConfig(t, true))
	ctx, cancel := context.WithCancel(t.Context())
	s := driver.Shard{PG: 1, Name: "0123456789abcdef"}
	w, err := d.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := w.Write([]byte("b")); !errors.Is(err, context.Canceled) {
		t.Errorf("Write after the create ctx is cancelled: got err %v, want context.Canceled", err)
	}
	if err := w.Commit(t.Context()); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit after a failed Write: got err %v, want context.Canceled", err)
	}
	if _, err := d.ReadShard(t.Context(), s, 0, -1); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("ReadShard after failed write: got err %v, want driver.ErrNotFound", err)
	}
}

func TestReadShardPastEnd(t *testing.T) {
	d := open(t, testConfig(t, true))
	s := driver.Shard{PG: 1, Name: "0123456789abcdef"}
	writeShard(t, d, s, []byte("0123456789"))
	tests := []struct {
		off, length int64
		want        string
		wantErr     error
	}{
		{8, 5, "89", io.ErrUnexpectedEOF},
		{10, 1, "", io.ErrUnexpectedEOF},
		{10, -1, "", nil},
		{11, -1, "", io.ErrUnexpectedEOF},
		{20, 0, "", nil},
	}
	for _, tt := range tests {
		rc, err := d.ReadShard(t.Context(), s, tt.off, tt.length)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if string(got) != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("ReadShard(%d, %d) read %q, %v; want %q, %v", tt.off, tt.length, got, err, tt.want, tt.wantErr)
		}
	}
	for _, r := range [][2]int64{{-1, 5}, {0, -2}} {
		if _, err := d.ReadShard(t.Context(), s, r[0], r[1]); err == nil {
			t.Errorf("ReadShard(%d, %d) succeeded", r[0], r[1])
		}
	}
}

// writeShard writes data to shard s and commits it.
func writeShard(t testing.TB, d driver.Driver, s driver.Shard, data []byte) {
	t.Helper()
	w, err := d.CreateShard(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestIndexKeepsItsPageSize: a drive formatted with another index page size
// (1 KiB, which session 20 made the default for a while) opens with it and
// keeps it, and its records stay readable and writable.
func TestIndexKeepsItsPageSize(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	cfg := Config{Dir: dir, ID: "d1", ClusterID: "c"}
	old := indexPageSize
	indexPageSize = 1024
	d, err := Open(ctx, cfg)
	indexPageSize = old
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		r := driver.Record{Key: fmt.Sprintf("t/c/k%02d", i), Version: driver.Version{15: 1}, Data: bytes.Repeat([]byte{byte(i)}, 3000)}
		if _, _, err := d.PutRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d, err = Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.db.Info().PageSize; got != 1024 {
		t.Fatalf("reopened index has %d-byte pages, want the 1024 it was created with", got)
	}
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "t/c/new", Version: driver.Version{15: 1}, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		r, err := d.GetRecord(ctx, fmt.Sprintf("t/c/k%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Data, bytes.Repeat([]byte{byte(i)}, 3000)) {
			t.Fatalf("record %d changed", i)
		}
	}
	fresh, err := Open(ctx, Config{Dir: t.TempDir(), ID: "d2", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if got := fresh.db.Info().PageSize; got != indexPageSize {
		t.Fatalf("new index has %d-byte pages, want %d", got, indexPageSize)
	}
}
