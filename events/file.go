package events

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// stampLayout names rotated files: fixed width, so that names sort in
// time order.
const stampLayout = "20060102T150405.000000000Z"

// rotatedName is the name a file of the given kind ("access", "txn")
// gets when it is rotated at t.
func rotatedName(kind string, t time.Time) string {
	return kind + "-" + t.UTC().Format(stampLayout) + ".log"
}

// rotatedStamp returns the rotation time in a rotated file's name.
func rotatedStamp(kind, name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, kind+"-")
	if !ok {
		return time.Time{}, false
	}
	if s, ok = strings.CutSuffix(s, ".log"); !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(stampLayout, s)
	return t, err == nil
}

// listRotated returns the names of kind's rotated files in dir, oldest
// first.
func listRotated(dir, kind string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if _, ok := rotatedStamp(kind, e.Name()); ok && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// rotFile is a log file that rotates by size. It is used by one
// goroutine at a time.
type rotFile struct {
	dir      string
	kind     string // "access" or "txn": the file is kind.log
	maxBytes int64
	keep     int    // rotated files kept
	syncDir  bool   // fsync the directory after creating or renaming the file
	rotated  func() // called after each rotation, if set
	now      func() time.Time
	log      *slog.Logger

	f    *os.File // nil until opened, and after a failure
	w    *bufio.Writer
	size int64 // bytes in the file, buffered ones included
}

func (r *rotFile) path() string { return filepath.Join(r.dir, r.kind+".log") }

// open opens (or creates) the current file for appending. If the file
// ends in a partial line, as a crash can leave it, a newline is written
// first so the next line starts clean.
func (r *rotFile) open() error {
	f, err := os.OpenFile(r.path(), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("events: open %s: %w", r.kind, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("events: open %s: %w", r.kind, err)
	}
	size := st.Size()
	if size > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err != nil {
			f.Close()
			return fmt.Errorf("events: open %s: %w", r.kind, err)
		}
		if last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				f.Close()
				return fmt.Errorf("events: open %s: %w", r.kind, err)
			}
			size++
		}
	}
	if r.syncDir {
		syncDir(r.dir)
	}
	if r.w == nil {
		r.w = bufio.NewWriterSize(f, 64<<10)
	} else {
		r.w.Reset(f)
	}
	r.f, r.size = f, size
	return nil
}

// write appends one line, rotating first if the line would take the
// file past maxBytes. After a failure the file is closed and reopened on
// the next write.
func (r *rotFile) write(line []byte) error {
	if r.f == nil {
		if err := r.open(); err != nil {
			return err
		}
	}
	if r.size > 0 && r.size+int64(len(line)) > r.maxBytes {
		if err := r.rotate(); err != nil {
			return err
		}
	}
	n, err := r.w.Write(line)
	r.size += int64(n)
	if err != nil {
		r.abandon()
		return fmt.Errorf("events: write %s: %w", r.kind, err)
	}
	return nil
}

// flush writes buffered lines to the file.
func (r *rotFile) flush() error {
	if r.f == nil {
		return nil
	}
	if err := r.w.Flush(); err != nil {
		r.abandon()
		return fmt.Errorf("events: write %s: %w", r.kind, err)
	}
	return nil
}

// sync flushes and fsyncs.
func (r *rotFile) sync() error {
	if err := r.flush(); err != nil || r.f == nil {
		return err
	}
	if err := r.f.Sync(); err != nil {
		r.abandon()
		return fmt.Errorf("events: sync %s: %w", r.kind, err)
	}
	return nil
}

// close flushes, fsyncs and closes the current file.
func (r *rotFile) close() error {
	if r.f == nil {
		return nil
	}
	err := r.sync()
	if r.f != nil {
		if cerr := r.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("events: close %s: %w", r.kind, cerr)
		}
		r.f = nil
	}
	return err
}

// abandon closes the file after a failed write, dropping what is
// buffered; the next write reopens it.
func (r *rotFile) abandon() {
	r.f.Close()
	r.f = nil
	r.w.Reset(io.Discard)
}

// rotate closes the current file, renames it with the time of rotation,
// deletes the oldest rotated files beyond keep and starts a new file.
func (r *rotFile) rotate() error {
	if err := r.close(); err != nil {
		return err
	}
	names, err := listRotated(r.dir, r.kind)
	if err != nil {
		return fmt.Errorf("events: rotate %s: %w", r.kind, err)
	}
	t := r.now().UTC()
	if len(names) > 0 {
		// Keep names in time order even if the clock stepped back.
		if last, _ := rotatedStamp(r.kind, names[len(names)-1]); !t.After(last) {
			t = last.Add(time.Nanosecond)
		}
	}
	name := rotatedName(r.kind, t)
	if err := os.Rename(r.path(), filepath.Join(r.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("events: rotate %s: %w", r.kind, err)
	}
	names = append(names, name)
	for _, old := range names[:max(0, len(names)-r.keep)] {
		if err := os.Remove(filepath.Join(r.dir, old)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("events: cannot delete an old log", "file", old, "err", err)
		}
	}
	if r.rotated != nil {
		r.rotated()
	}
	return r.open()
}

// syncDir fsyncs a directory so that a created or renamed file survives a
// crash. Errors are ignored: not every platform can sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
