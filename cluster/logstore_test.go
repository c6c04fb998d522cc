package cluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

func storeEntries(t *testing.T, ls raft.LogStore, from, to, term uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry %d term %d", i, term)})
	}
	if err := ls.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
}

func wantEntries(t *testing.T, ls raft.LogStore, first, last uint64, term func(i uint64) uint64) {
	t.Helper()
	f, err := ls.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ls.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if f != first || l != last {
		t.Fatalf("log holds %d..%d, want %d..%d", f, l, first, last)
	}
	for i := first; i <= last; i++ {
		var e raft.Log
		if err := ls.GetLog(i, &e); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if want := fmt.Appendf(nil, "entry %d term %d", i, term(i)); e.Term != term(i) || !bytes.Equal(e.Data, want) {
			t.Fatalf("entry %d = term %d %q, want term %d %q", i, e.Term, e.Data, term(i), want)
		}
	}
}

// TestLogStoreTailTruncationRestart: raft clears a conflicting log suffix
// after a leader change (DeleteRange at the tail) and appends the new
// leader's entries; the node must start again afterwards. raft-wal v0.4.0,
// the log store before, could not reopen such a log and the node panicked
// at every start (found by the crash suite).
func TestLogStoreTailTruncationRestart(t *testing.T) {
	dir := t.TempDir()
	ls, err := openLogStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	storeEntries(t, ls, 1, 10, 1)
	if err := ls.DeleteRange(8, 10); err != nil {
		t.Fatal(err)
	}
	storeEntries(t, ls, 8, 12, 2)
	if err := ls.SetUint64([]byte("CurrentTerm"), 2); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(); err != nil {
		t.Fatal(err)
	}
	ls, err = openLogStore(dir)
	if err != nil {
		t.Fatalf("reopen after a tail truncation: %v", err)
	}
	defer ls.Close()
	wantEntries(t, ls, 1, 12, func(i uint64) uint64 { return map[bool]uint64{true: 1, false: 2}[i < 8] })
	if v, err := ls.GetUint64([]byte("CurrentTerm")); err != nil || v != 2 {
		t.Fatalf("CurrentTerm = %d, %v; want 2", v, err)
	}
}

// TestLogStoreMigratesWAL: a node whose log is still in raft-wal's
// DIR/wal gets every entry and its term and vote in DIR/raft.db on its
// first start, and the old log is kept aside, not read again.
func TestLogStoreMigratesWAL(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, oldWALDir)
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(old, wal.WithMetaStore(meta))
	if err != nil {
		t.Fatal(err)
	}
	storeEntries(t, w, 1, 700, 3) // more than one copy batch
	if err := w.DeleteRange(1, 100); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]uint64{"CurrentTerm": 3, "LastVoteTerm": 3} {
		if err := w.SetUint64([]byte(k), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := meta.Close(); err != nil {
		t.Fatal(err)
	}

	ls, err := openLogStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantEntries(t, ls, 101, 700, func(uint64) uint64 { return 3 })
	for _, k := range []string{"CurrentTerm", "LastVoteTerm"} {
		if v, err := ls.GetUint64([]byte(k)); err != nil || v != 3 {
			t.Errorf("%s = %d, %v; want 3", k, v, err)
		}
	}
	if v, err := ls.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
		t.Errorf("LastVoteCand = %q, %v; want n2", v, err)
	}
	if err := ls.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("old log still at %s (%v)", old, err)
	}
	if _, err := os.Stat(old + ".migrated"); err != nil {
		t.Fatalf("old log not kept aside: %v", err)
	}
	// Later starts open the migrated log as it is.
	ls, err = openLogStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	wantEntries(t, ls, 101, 700, func(uint64) uint64 { return 3 })
}
