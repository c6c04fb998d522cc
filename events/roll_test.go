package events

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// parquetIDs returns the request ids of a Parquet copy of a log file.
func parquetIDs(t *testing.T, kind, path string) []string {
	t.Helper()
	var ids []string
	if kind == "txn" {
		rows, err := parquet.ReadFile[TxnRow](path)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			ids = append(ids, *r.RequestID)
		}
		return ids
	}
	rows, err := parquet.ReadFile[AccessRow](path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		ids = append(ids, *r.RequestID)
	}
	return ids
}

// waitConverted waits until every rotated file of kind in dir has its
// Parquet copy, and returns the rotated files.
func waitConverted(t *testing.T, dir, kind string) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		names, err := listRotated(dir, kind)
		if err != nil {
			t.Fatal(err)
		}
		missing := ""
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, parquetName(n))); err != nil {
				missing = n
			}
		}
		if missing == "" {
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not converted to Parquet after 30s", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkParquetCopies checks that dir holds exactly one Parquet copy per
// rotated file of kind, with the same lines, and nothing else but the
// logs.
func checkParquetCopies(t *testing.T, dir, kind string, rotated []string) {
	t.Helper()
	for _, n := range rotated {
		got, want := parquetIDs(t, kind, filepath.Join(dir, parquetName(n))), requestIDs(t, kind, filepath.Join(dir, n))
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: Parquet copy has %v, want %v", n, got, want)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var pq []string
	for _, e := range ents {
		switch name := e.Name(); {
		case strings.HasPrefix(name, "."):
			t.Errorf("temporary file left: %s", name)
		case strings.HasPrefix(name, kind+"-") && strings.HasSuffix(name, ".parquet"):
			pq = append(pq, name)
		}
	}
	var want []string
	for _, n := range rotated {
		want = append(want, parquetName(n))
	}
	if !slices.Equal(pq, want) {
		t.Errorf("%s Parquet files %v, want %v", kind, pq, want)
	}
}

// TestParquetRoll checks Config.Parquet: each rotated file gets a Parquet
// copy with the same lines, old copies go with the old logs, and a copy
// missing at Open (lost in a crash, or the option newly on) is made then.
func TestParquetRoll(t *testing.T) {
	lineSize := len(appendAccess(nil, ptr(sampleEvent(100))))
	dir := t.TempDir()
	cfg := Config{Dir: dir, MaxFileBytes: int64(10 * lineSize), MaxFiles: 2, MaxTxnFiles: 3, Parquet: true}
	l := openTest(t, cfg, hooks{})
	for i := range 75 {
		ev := sampleEvent(100 + i)
		if i%2 == 0 {
			ev = mutationEvent(100 + i)
		}
		l.ObserveRequest(&ev)
	}
	// Wait until the writers have rotated, then for the copies.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if w, _ := l.Stats(); w == 75 {
			if tw, _ := l.TxnStats(); tw == 38 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("events not written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	access := waitConverted(t, dir, "access")
	txn := waitConverted(t, dir, "txn")
	if len(access) != 2 || len(txn) != 3 {
		t.Fatalf("rotated files: %v %v", access, txn)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkParquetCopies(t, dir, "access", access)
	checkParquetCopies(t, dir, "txn", txn)

	// A copy lost: the next Open makes it again.
	lost := filepath.Join(dir, parquetName(txn[1]))
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, cfg, hooks{})
	waitConverted(t, dir, "txn")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkParquetCopies(t, dir, "txn", txn)

	// Off by default: no copies.
	dir2 := t.TempDir()
	cfg.Dir, cfg.Parquet = dir2, false
	l = openTest(t, cfg, hooks{})
	for i := range 35 {
		l.ObserveRequest(ptr(sampleEvent(i)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir2, "*.parquet")); len(m) != 0 {
		t.Errorf("Parquet files with the option off: %v", m)
	}
}
