package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/events"
)

const eventsUsage = `vaultd events tail [--data DIR] [--dir DIR] [--txn] [-n 20] [-f]
vaultd events export --format parquet [--data DIR] [--dir DIR] [--txn] [--since T] [--until T] [--compression zstd|snappy] OUT`

// runEvents reads a node's access and transaction logs:
//
//	vaultd events tail [--data DIR] [--dir DIR] [--txn] [-n 20] [-f]
//	vaultd events export --format parquet [--data DIR] [--dir DIR] [--txn] [--since T] [--until T] OUT
func runEvents(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("events: want tail or export:\n%s", eventsUsage)
	}
	switch args[0] {
	case "tail":
		return runEventsTail(ctx, args[1:], stdout, stderr)
	case "export":
		return runEventsExport(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("events: unknown command %q; want:\n%s", args[0], eventsUsage)
}

// logDirFlags adds the flags that find a node's events directory.
func logDirFlags(fs *flag.FlagSet) func() (string, error) {
	data := fs.String("data", "./data", "the node's data directories (comma-separated); the logs are in the first one's events/")
	dir := fs.String("dir", "", "the events directory (overrides --data)")
	return func() (string, error) {
		if *dir != "" {
			return *dir, nil
		}
		first, _, _ := strings.Cut(*data, ",")
		if first = strings.TrimSpace(first); first == "" {
			return "", errors.New("--data names no directory")
		}
		return filepath.Join(first, "events"), nil
	}
}

func runEventsTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vaultd events tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logDir := logDirFlags(fs)
	txn := fs.Bool("txn", false, "show the transaction log instead of the access log")
	n := fs.Int("n", 20, "lines to show first (-1: all that are kept)")
	follow := fs.Bool("f", false, "keep showing lines as they are written, until interrupted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	d, err := logDir()
	if err != nil {
		return err
	}
	file := "access"
	if *txn {
		file = "txn"
	}
	return events.Tail(ctx, d, file, *n, *follow, stdout)
}

func runEventsExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vaultd events export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logDir := logDirFlags(fs)
	format := fs.String("format", "parquet", "output format (parquet)")
	txn := fs.Bool("txn", false, "export the transaction log instead of the access log")
	since := fs.String("since", "", "first time exported, inclusive: RFC 3339 (2026-01-02T15:04:05Z), a UTC date (2026-01-02), or a duration before now (24h)")
	until := fs.String("until", "", "end of the times exported, exclusive, in the same forms as --since")
	compression := fs.String("compression", "zstd", "column compression: zstd or snappy")
	rowGroupRows := fs.Int("row-group-rows", events.DefaultRowGroupRows, "rows per row group at most")
	// Flags may follow OUT: parse what follows each positional argument too.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return fmt.Errorf("want one output file (- for stdout):\n%s", eventsUsage)
	}
	if *format != "parquet" {
		return fmt.Errorf("unknown --format %q (want parquet)", *format)
	}
	d, err := logDir()
	if err != nil {
		return err
	}
	now := time.Now()
	opt := events.ExportOptions{Log: "access", Compression: *compression, RowGroupRows: *rowGroupRows}
	if *txn {
		opt.Log = "txn"
	}
	if opt.Since, err = parseWhen(*since, now); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if opt.Until, err = parseWhen(*until, now); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	if st, err := os.Stat(d); err != nil {
		return fmt.Errorf("events directory: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("events directory %s is not a directory", d)
	}
	var stats events.ExportStats
	if out := pos[0]; out == "-" {
		stats, err = events.Export(ctx, d, stdout, opt)
	} else {
		stats, err = exportToFile(ctx, d, out, opt)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported %d rows in %d row groups from %d files (%d outside the time range, %d malformed and %d unterminated lines skipped)\n",
		stats.Rows, stats.RowGroups, stats.Files, stats.Filtered, stats.Malformed, stats.Partial)
	return nil
}

// exportToFile writes the export to a temporary file beside out, then
// renames it: out is either the whole export or untouched.
func exportToFile(ctx context.Context, dir, out string, opt events.ExportOptions) (events.ExportStats, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return events.ExportStats{}, err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	// As private as the logs themselves (CreateTemp makes it 0600).
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return events.ExportStats{}, err
	}
	stats, err := events.Export(ctx, dir, tmp, opt)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	return stats, err
}

// parseWhen reads a --since or --until value; "" is the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("negative duration %q", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339, a date nor a duration", s)
}
