package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/vaultaire/vaultaire/events"
	"github.com/vaultaire/vaultaire/s3"
)

// writeEvents writes n access events an hour apart from t0, the even ones
// mutations, through a real events.Log, and returns its directory.
func writeEvents(t *testing.T, t0 time.Time, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data", "events")
	l, err := events.Open(events.Config{Dir: dir, MaxFileBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ev := s3.RequestEvent{
			Time: t0.Add(time.Duration(i) * time.Hour), Node: "n1", RequestID: "R" + string(rune('A'+i)),
			Tenant: "alice", Operation: "GetObject", Bucket: "b", Key: "k", BytesOut: int64(i), ObjectSize: int64(i), Status: 200,
		}
		if i%2 == 0 {
			ev.Operation, ev.BytesIn, ev.BytesOut, ev.VersionID, ev.ETag = "PutObject", int64(i), 0, "v", `"e"`
		}
		l.ObserveRequest(&ev)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestEventsExport(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 0, 30, 0, 0, time.UTC)
	dir := writeEvents(t, t0, 20)
	data := filepath.Dir(dir)
	tmp := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string // OUT is appended unless the args hold "OUT"
		rows int
		txn  bool
	}{
		{"all through --data", []string{"--data", data + ",/elsewhere"}, 20, false},
		{"flags after OUT", []string{"OUT", "--dir", dir, "--txn", "--compression", "snappy"}, 10, true},
		{"since a date, until RFC 3339", []string{"--dir", dir, "--since", "2026-05-01", "--until", "2026-05-01T05:30:00Z"}, 5, false},
		{"since inclusive", []string{"--dir", dir, "--since", "2026-05-01T18:30:00Z"}, 2, false},
		{"since a duration ago", []string{"--dir", dir, "--since", "1h"}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(tmp, strings.ReplaceAll(tc.name, " ", "_")+".parquet")
			args := []string{"events", "export", "--format", "parquet"}
			if tc.args[0] == "OUT" {
				args = append(append(args, out), tc.args[1:]...)
			} else {
				args = append(append(args, tc.args...), out)
			}
			var stdout, stderr bytes.Buffer
			if err := run(t.Context(), args, os.Getenv, &stdout, &stderr); err != nil {
				t.Fatalf("run %q: %v\n%s", args, err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "exported ") {
				t.Errorf("no summary: %q", stderr.String())
			}
			var n int
			if tc.txn {
				rows, err := parquet.ReadFile[events.TxnRow](out)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rows {
					if *r.Operation != "PutObject" {
						t.Errorf("txn row %+v", r)
					}
				}
				n = len(rows)
			} else {
				rows, err := parquet.ReadFile[events.AccessRow](out)
				if err != nil {
					t.Fatal(err)
				}
				n = len(rows)
			}
			if n != tc.rows {
				t.Errorf("%d rows, want %d", n, tc.rows)
			}
		})
	}

	// To stdout.
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"events", "export", "--dir", dir, "-"}, os.Getenv, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if rows, err := parquet.Read[events.AccessRow](bytes.NewReader(stdout.Bytes()), int64(stdout.Len())); err != nil || len(rows) != 20 {
		t.Errorf("stdout: %d rows, %v", len(rows), err)
	}
}

// TestEventsExportErrors checks refusals, and that a failed export
// leaves OUT as it was and no temporary file behind.
func TestEventsExportErrors(t *testing.T) {
	dir := writeEvents(t, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), 3)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "out.parquet")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"events"}, "want tail or export"},
		{[]string{"events", "rotate"}, "unknown command"},
		{[]string{"events", "export", "--dir", dir}, "want one output file"},
		{[]string{"events", "export", "--dir", dir, out, out}, "want one output file"},
		{[]string{"events", "export", "--dir", dir, "--format", "csv", out}, "unknown --format"},
		{[]string{"events", "export", "--dir", dir, "--since", "yesterday", out}, "--since"},
		{[]string{"events", "export", "--dir", dir, "--until", "-1h", out}, "--until"},
		{[]string{"events", "export", "--dir", dir, "--since", "2026-05-02", "--until", "2026-05-01", out}, "not after"},
		{[]string{"events", "export", "--dir", dir, "--compression", "lzo", out}, "unknown compression"},
		{[]string{"events", "export", "--dir", filepath.Join(dir, "missing"), out}, "events directory"},
		{[]string{"events", "export", "--dir", dir, filepath.Join(outDir, "no", "such", "dir.parquet")}, "no such file"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, os.Getenv, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "old" {
		t.Errorf("OUT after failed exports: %q, %v", b, err)
	}
	ents, err := os.ReadDir(outDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("files left in the output directory: %v", ents)
	}
}
