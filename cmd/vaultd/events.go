package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/vaultaire/vaultaire/events"
)

// runEvents reads a node's access and transaction logs:
//
//	vaultd events tail [--data DIR] [--dir DIR] [--txn] [-n 20] [-f]
func runEvents(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "tail" {
		return errors.New("events: want tail (vaultd events tail [--data DIR] [--dir DIR] [--txn] [-n 20] [-f])")
	}
	fs := flag.NewFlagSet("vaultd events tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./data", "the node's data directories (comma-separated); the logs are in the first one's events/")
	dir := fs.String("dir", "", "the events directory (overrides --data)")
	txn := fs.Bool("txn", false, "show the transaction log instead of the access log")
	n := fs.Int("n", 20, "lines to show first (-1: all that are kept)")
	follow := fs.Bool("f", false, "keep showing lines as they are written, until interrupted")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	d := *dir
	if d == "" {
		first, _, _ := strings.Cut(*data, ",")
		if first = strings.TrimSpace(first); first == "" {
			return errors.New("--data names no directory")
		}
		d = filepath.Join(first, "events")
	}
	file := "access"
	if *txn {
		file = "txn"
	}
	return events.Tail(ctx, d, file, *n, *follow, stdout)
}
