package events

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// parquetName is the Parquet copy of a rotated log file.
func parquetName(rotated string) string {
	return strings.TrimSuffix(rotated, ".log") + ".parquet"
}

// ExportFile writes one log file of the given kind ("access" or "txn")
// as Parquet to path, through a temporary file renamed into place, so
// that path is either absent or complete. opt.Log is ignored.
func ExportFile(ctx context.Context, kind, src, path string, opt ExportOptions) (ExportStats, error) {
	opt.Log = kind
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return ExportStats{}, fmt.Errorf("events: export: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	st, err := exportOne(ctx, src, tmp, opt)
	if err == nil {
		err = tmp.Chmod(0o640)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("events: export: %w", cerr)
	}
	if err == nil {
		if err = os.Rename(tmp.Name(), path); err != nil {
			err = fmt.Errorf("events: export: %w", err)
		}
	}
	return st, err
}

// roller converts each rotated log file into a Parquet file beside it
// (access-STAMP.log → access-STAMP.parquet), in the background, and
// keeps as many Parquet files per log as rotated files are kept. It runs
// until ctx is done.
type roller struct {
	dir   string
	keep  map[string]int // per kind
	opt   ExportOptions
	kick  chan struct{}
	fails map[string]int // conversions that failed, per file: retried a few times
	warn  func(msg string, args ...any)
}

// maxRollTries is how many times a rotated file that fails to convert is
// tried before it is left as JSON only.
const maxRollTries = 3

// notify asks the roller to look for new rotated files. It never blocks.
func (r *roller) notify() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run converts at start (files rotated before, or while the option was
// off) and after each notify.
func (r *roller) run(ctx context.Context) {
	for {
		for _, kind := range []string{"access", "txn"} {
			r.convert(ctx, kind)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
	}
}

// convert converts kind's rotated files that have no Parquet copy, oldest
// first, then deletes the oldest Parquet files beyond keep.
func (r *roller) convert(ctx context.Context, kind string) {
	names, err := listRotated(r.dir, kind)
	if err != nil {
		r.warn("events: cannot list logs to convert to Parquet", "err", err)
		return
	}
	keep := r.keep[kind]
	for _, name := range names[max(0, len(names)-keep):] {
		if ctx.Err() != nil {
			return
		}
		dst := filepath.Join(r.dir, parquetName(name))
		if _, err := os.Stat(dst); err == nil || r.fails[name] >= maxRollTries {
			continue
		}
		if _, err := ExportFile(ctx, kind, filepath.Join(r.dir, name), dst, r.opt); err != nil {
			if errors.Is(err, fs.ErrNotExist) || ctx.Err() != nil {
				continue // deleted by retention meanwhile, or closing
			}
			r.fails[name]++
			r.warn("events: cannot convert a rotated log to Parquet", "file", name, "err", err)
		}
	}
	r.prune(kind, keep)
}

// prune deletes kind's Parquet files beyond the newest keep.
func (r *roller) prune(kind string, keep int) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return
	}
	var pq []string
	for _, e := range ents {
		if s, ok := strings.CutSuffix(e.Name(), ".parquet"); ok && e.Type().IsRegular() {
			if _, ok := rotatedStamp(kind, s+".log"); ok {
				pq = append(pq, e.Name())
			}
		}
	}
	slices.Sort(pq)
	for _, old := range pq[:max(0, len(pq)-keep)] {
		if err := os.Remove(filepath.Join(r.dir, old)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.warn("events: cannot delete an old Parquet log", "file", old, "err", err)
		}
	}
}
