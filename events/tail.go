package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// maxTailLine is the longest line Tail holds whole; a longer one is
// written in pieces.
const maxTailLine = 16 << 20

// TailPoll is how often Tail looks for new lines when following.
const TailPoll = 200 * time.Millisecond

// Tail writes the last n lines of dir's access or transaction log (file
// is "access" or "txn") to w, oldest first, reading rotated files too when
// the current one holds fewer than n lines; n < 0 writes every line kept.
// With follow it then writes lines as they are appended, following the
// log across rotations, until ctx is done, and returns nil. Only complete
// lines are written.
func Tail(ctx context.Context, dir, file string, n int, follow bool, w io.Writer) error {
	if file != "access" && file != "txn" {
		return fmt.Errorf("events: tail: unknown log %q (want access or txn)", file)
	}
	t := &tailer{dir: dir, kind: file, w: w}
	defer t.closeCurrent()
	if err := t.last(n); err != nil {
		return err
	}
	if !follow {
		return nil
	}
	tick := time.NewTicker(TailPoll)
	defer tick.Stop()
	for {
		if err := t.poll(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// tailer follows one log.
type tailer struct {
	dir, kind string
	w         io.Writer
	f         *os.File // the current file as last opened, or nil
	pos       int64    // offset in f of the first byte not written
	seen      string   // newest rotated file already accounted for
	buf       []byte
}

func (t *tailer) path() string { return filepath.Join(t.dir, t.kind+".log") }

func (t *tailer) closeCurrent() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// last writes the last n complete lines and leaves t at the end of the
// current file.
func (t *tailer) last(n int) error {
	f, err := os.Open(t.path())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("events: tail: %w", err)
	}
	rotated, lerr := listRotated(t.dir, t.kind)
	if f == nil && lerr != nil {
		return fmt.Errorf("events: tail: %w", lerr)
	}
	if len(rotated) > 0 {
		t.seen = rotated[len(rotated)-1]
	}
	type span struct {
		f          *os.File
		start, end int64
	}
	var spans []span // newest first
	defer func() {
		for _, s := range spans {
			if s.f != f {
				s.f.Close()
			}
		}
	}()
	if f != nil {
		t.f = f
		start, end, got, err := lastLines(f, n)
		if err != nil {
			return fmt.Errorf("events: tail: %w", err)
		}
		spans = append(spans, span{f, start, end})
		t.pos = end
		n -= got
	}
	var cur fs.FileInfo
	if f != nil {
		cur, _ = f.Stat()
	}
	for i := len(rotated) - 1; i >= 0 && n != 0; i-- {
		rf, err := os.Open(filepath.Join(t.dir, rotated[i]))
		if err != nil {
			continue // deleted meanwhile
		}
		if st, err := rf.Stat(); err == nil && cur != nil && os.SameFile(st, cur) {
			rf.Close() // the current file, rotated since it was opened
			continue
		}
		start, end, got, err := lastLines(rf, n)
		if err != nil {
			rf.Close()
			return fmt.Errorf("events: tail: %w", err)
		}
		spans = append(spans, span{rf, start, end})
		n -= got
	}
	for i := len(spans) - 1; i >= 0; i-- {
		s := spans[i]
		if _, err := io.Copy(t.w, io.NewSectionReader(s.f, s.start, s.end-s.start)); err != nil {
			return err
		}
	}
	return nil
}

// lastLines finds the last n complete lines of f (all if n < 0): they
// are the bytes [start, end), end being just after the last newline, and
// there are got of them.
func lastLines(f *os.File, n int) (start, end int64, got int, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, err
	}
	buf := make([]byte, 64<<10)
	end = -1
	for off := st.Size(); off > 0; {
		size := min(off, int64(len(buf)))
		off -= size
		chunk := buf[:size]
		if _, err := f.ReadAt(chunk, off); err != nil && err != io.EOF {
			return 0, 0, 0, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				continue
			}
			if end < 0 {
				end = off + int64(i) + 1
				if n == 0 {
					return end, end, 0, nil
				}
				continue
			}
			if got++; got == n {
				return off + int64(i) + 1, end, got, nil
			}
		}
	}
	if end < 0 {
		return 0, 0, 0, nil
	}
	return 0, end, got + 1, nil
}

// poll writes what was appended since the last poll. If the file was
// rotated, it finishes the old file, writes any rotated file it missed
// entirely, and moves to the new file.
func (t *tailer) poll() error {
	for range 100 { // bounds a log that rotates faster than it can be read
		if t.f == nil {
			if err := t.catchUp(nil); err != nil {
				return err
			}
			f, err := os.Open(t.path())
			if err != nil {
				return nil // not created yet, or mid-rotation
			}
			t.f, t.pos = f, 0
		}
		cur, err := os.Stat(t.path())
		if err == nil {
			if st, serr := t.f.Stat(); serr == nil && os.SameFile(st, cur) {
				if st.Size() < t.pos { // truncated
					t.pos = 0
				}
				return t.copyLines(t.f, &t.pos, false)
			}
		}
		// Rotated: nothing more will be written to t.f.
		err = t.copyLines(t.f, &t.pos, true)
		if err == nil {
			err = t.catchUp(t.f)
		}
		t.closeCurrent()
		if err != nil {
			return err
		}
	}
	return nil
}

// catchUp writes the rotated files newer than t.seen that it has not
// read, skipping done (the file just finished, if any), and advances
// t.seen.
func (t *tailer) catchUp(done *os.File) error {
	rotated, err := listRotated(t.dir, t.kind)
	if err != nil {
		return nil
	}
	var doneSt fs.FileInfo
	if done != nil {
		doneSt, _ = done.Stat()
	}
	for _, name := range rotated {
		if name <= t.seen {
			continue
		}
		t.seen = name
		f, err := os.Open(filepath.Join(t.dir, name))
		if err != nil {
			continue // deleted meanwhile
		}
		if st, err := f.Stat(); err == nil && doneSt != nil && os.SameFile(st, doneSt) {
			f.Close()
			continue
		}
		var pos int64
		err = t.copyLines(f, &pos, true)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// copyLines writes the complete lines of f from *pos on, and advances
// *pos past them. With final, a trailing partial line is written too,
// ended by a newline.
func (t *tailer) copyLines(f *os.File, pos *int64, final bool) error {
	if t.buf == nil {
		t.buf = make([]byte, 64<<10)
	}
	for {
		n, err := f.ReadAt(t.buf, *pos)
		if err != nil && err != io.EOF {
			return fmt.Errorf("events: tail: %w", err)
		}
		chunk := t.buf[:n]
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			chunk = chunk[:i+1]
		} else if n == len(t.buf) && n < maxTailLine {
			// A line longer than the buffer: read more of it at once.
			t.buf = make([]byte, 2*len(t.buf))
			continue
		} else if n < len(t.buf) {
			if final && n > 0 {
				if _, err := t.w.Write(append(chunk, '\n')); err != nil {
					return err
				}
				*pos += int64(n)
			}
			return nil
		}
		if _, err := t.w.Write(chunk); err != nil {
			return err
		}
		*pos += int64(len(chunk))
		if n < len(t.buf) && len(chunk) == n {
			return nil
		}
	}
}
