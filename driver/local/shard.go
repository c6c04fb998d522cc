package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"github.com/vaultaire/vaultaire/driver"
)

// shardDirs returns the directories holding shard s: shards/<pg> and
// shards/<pg>/<nn>. s must be valid.
func (d *Driver) shardDirs(s driver.Shard) (pgDir, dir string) {
	pgDir = filepath.Join(d.dir, shardsDir, fmt.Sprintf("%04x", s.PG))
	return pgDir, filepath.Join(pgDir, s.Name[:2])
}

// shardPath returns the path of committed shard s. s must be valid.
func (d *Driver) shardPath(s driver.Shard) string {
	_, dir := d.shardDirs(s)
	return filepath.Join(dir, s.Name)
}

// CreateShard starts writing shard s into a temp file under tmp/. Write
// checks ctx too, so cancelling it fails the write; Commit takes its own ctx.
func (d *Driver) CreateShard(ctx context.Context, s driver.Shard) (driver.ShardWriter, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("driver/local: create shard %04x: %w", s.PG, err)
	}
	end, err := d.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("driver/local: create shard %04x/%s: %w", s.PG, s.Name, err)
	}
	defer end()
	if d.lowOnSpace() {
		return nil, fmt.Errorf("driver/local: create shard %04x/%s: %w: less than %d MiB free, kept for deletes", s.PG, s.Name, driver.ErrNoSpace, spaceReserve>>20)
	}
	direct := !d.noSync && oDirect != 0
	tmp := filepath.Join(d.dir, tmpDir)
	f, err := createTemp(tmp, direct)
	if errors.Is(err, fs.ErrNotExist) {
		// tmp/ was removed behind our back: recreate it. (A drive that
		// lost more than that is taken offline and reformatted by Probe.)
		if merr := os.Mkdir(tmp, 0o700); merr == nil || errors.Is(merr, fs.ErrExist) {
			f, err = createTemp(tmp, direct)
		}
	}
	if errors.Is(err, syscall.EINVAL) && direct {
		direct = false // the file system has no O_DIRECT
		f, err = createTemp(tmp, false)
	}
	if err != nil {
		return nil, fmt.Errorf("driver/local: create shard %04x/%s: %w", s.PG, s.Name, noSpace(err))
	}
	w := &shardWriter{d: d, ctx: ctx, s: s, f: f, tmp: f.Name()}
	w.odirect = direct
	d.wmu.Lock()
	d.writers[w] = struct{}{}
	d.wmu.Unlock()
	return w, nil
}

// createTemp creates a new temp file in dir for writing, with O_DIRECT if
// direct is set.
func createTemp(dir string, direct bool) (*os.File, error) {
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if direct {
		flag |= oDirect
	}
	for try := 0; ; try++ {
		name := filepath.Join(dir, "shard-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, flag, 0o600)
		if errors.Is(err, fs.ErrExist) && try < 100 {
			continue
		}
		return f, err
	}
}

// Shards are written with O_DIRECT where the file system allows it. On the
// machines we measured, buffered writes of new shard files cost the kernel
// 1 to 2.5 s of CPU per GB (fresh page-cache pages, then writeback from
// fsync), several times the hashing and erasure coding of the same bytes,
// and they push other data out of the page cache. A shard is fsynced at
// commit anyway, so nothing is lost by skipping the cache.
//
// O_DIRECT needs aligned buffers, lengths and offsets. A block from
// erasure.Encode lies in memory at the same offset modulo 4 KiB as in its
// shard (erasure.BlockAlign), so a writer copies only the bytes that
// complete the page left partial by the previous block and the block's own
// last partial page, into a small aligned staging buffer, and writes the
// rest from where it lies, in one pwritev. A writer given other buffers
// stages everything in a large one and writes it out whenever it fills.
// The unaligned tail goes through the page cache at commit, just before the
// fsync.
const (
	directAlign   = 4096            // alignment O_DIRECT asks for, in bytes
	directBufSize = 512 << 10       // large staging buffer, in bytes
	smallBufSize  = 2 * directAlign // small staging buffer, in bytes
)

// directBufs and smallBufs hold staging buffers of directBufSize and
// smallBufSize bytes aligned to directAlign.
var (
	directBufs = sync.Pool{New: func() any { return alignedBuf(directBufSize) }}
	smallBufs  = sync.Pool{New: func() any { return alignedBuf(smallBufSize) }}
)

func alignedBuf(size int) *[]byte {
	b := make([]byte, size+directAlign)
	off := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % directAlign); r != 0 {
		off = directAlign - r
	}
	b = b[off : off+size : off+size]
	return &b
}

// Writer states.
const (
	writing = iota
	committed
	aborted
)

// shardWriter writes one shard to a temp file and renames it into place on
// Commit.
type shardWriter struct {
	d *Driver
	// ctx is the context given to CreateShard. io.Writer has no ctx
	// parameter, so Write checks this one.
	ctx context.Context
	s   driver.Shard
	tmp string // path of the temp file

	mu sync.Mutex // guards the following fields
	f  *os.File
	n  int64 // bytes written
	// odirect is set if f was opened with O_DIRECT: it is then written
	// at explicit offsets, through the staging buffer direct (taken at
	// the first Write), of which nd bytes are staged, to go at file offset
	// off, a multiple of directAlign. buffered is set if the file system
	// refused O_DIRECT after all. Without odirect, f.Write is used.
	odirect  bool
	direct   []byte
	nd       int
	off      int64
	buffered bool
	state    int
	err      error // first write error; Commit fails with it
}

func (w *shardWriter) errorf(op string, err error) error {
	return fmt.Errorf("driver/local: %s shard %04x/%s: %w", op, w.s.PG, w.s.Name, noSpace(err))
}

// Write appends p to the shard. It fails once the drive is closed, the ctx
// given to CreateShard is done, or an earlier Write failed.
func (w *shardWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.state == committed:
		return 0, w.errorf("write", errors.New("already committed"))
	case w.d.closed.Load():
		return 0, w.errorf("write", driver.ErrOffline)
	case w.state == aborted:
		return 0, w.errorf("write", errors.New("aborted"))
	case w.err != nil:
		return 0, w.err
	}
	if err := w.ctx.Err(); err != nil {
		w.err = w.errorf("write", err)
		return 0, w.err
	}
	if w.d.lowOnSpace() {
		w.err = w.errorf("write", fmt.Errorf("%w: less than %d MiB free, kept for deletes", driver.ErrNoSpace, spaceReserve>>20))
		return 0, w.err
	}
	n, err := w.write(p)
	w.n += int64(n)
	if err != nil {
		w.err = w.errorf("write", err)
		return n, w.err
	}
	return n, nil
}

// write writes p to f, or stages it for an O_DIRECT write. When p lies
// in memory as Encode lays blocks out (see erasure.BlockAlign), only the
// bytes that complete the staged partial page and the last partial page of
// p are copied; the aligned middle is written from where it lies.
func (w *shardWriter) write(p []byte) (int, error) {
	if !w.odirect {
		return w.f.Write(p)
	}
	if w.direct == nil {
		if uintptr(unsafe.Pointer(unsafe.SliceData(p)))%directAlign == uintptr(w.off%directAlign) {
			w.direct = *smallBufs.Get().(*[]byte)
		} else {
			w.direct = *directBufs.Get().(*[]byte)
		}
	}
	n := 0
	for len(p) > 0 {
		pos := w.off + int64(w.nd) // where p goes in the file
		addr := int64(uintptr(unsafe.Pointer(unsafe.SliceData(p))) % directAlign)
		if h := (directAlign - w.nd%directAlign) % directAlign; addr == pos%directAlign && len(p) >= h+directAlign {
			w.nd += copy(w.direct[w.nd:], p[:h])
			mid := (len(p) - h) &^ (directAlign - 1)
			if err := w.writeAligned(w.direct[:w.nd], p[h:h+mid]); err != nil {
				return n, err
			}
			w.nd = 0
			n += h + mid
			p = p[h+mid:]
			continue
		}
		c := copy(w.direct[w.nd:], p)
		w.nd += c
		n += c
		p = p[c:]
		if w.nd == len(w.direct) {
			if err := w.writeAligned(w.direct[:w.nd], nil); err != nil {
				return n, err
			}
			w.nd = 0
		}
	}
	return n, nil
}

// writeAligned writes a then b, whose lengths and addresses are multiples
// of directAlign, at w.off. If the file system refuses O_DIRECT, the writer
// goes on through the page cache.
func (w *shardWriter) writeAligned(a, b []byte) error {
	if !w.buffered {
		err := writev(w.f, w.off, a, b)
		if err == nil {
			w.off += int64(len(a) + len(b))
			return nil
		}
		if !errors.Is(err, syscall.EINVAL) {
			return err
		}
		if err := clearDirect(w.f); err != nil {
			return err
		}
		w.buffered = true
	}
	for _, p := range [][]byte{a, b} {
		if _, err := w.f.WriteAt(p, w.off); err != nil {
			return err
		}
		w.off += int64(len(p))
	}
	return nil
}

// flush writes the staged bytes out, the unaligned tail through the page
// cache, and gives the staging buffer back.
func (w *shardWriter) flush() error {
	if aligned := w.nd &^ (directAlign - 1); aligned > 0 {
		if err := w.writeAligned(w.direct[:aligned], nil); err != nil {
			return err
		}
		w.nd = copy(w.direct, w.direct[aligned:w.nd])
	}
	if w.nd > 0 {
		if !w.buffered {
			if err := clearDirect(w.f); err != nil {
				return err
			}
			w.buffered = true
		}
		if _, err := w.f.WriteAt(w.direct[:w.nd], w.off); err != nil {
			return err
		}
		w.off += int64(w.nd)
		w.nd = 0
	}
	w.release()
	return nil
}

// release gives the staging buffer back, if w has one.
func (w *shardWriter) release() {
	if w.direct == nil {
		return
	}
	b := w.direct[:cap(w.direct)]
	w.direct = nil
	if len(b) == smallBufSize {
		smallBufs.Put(&b)
	} else {
		directBufs.Put(&b)
	}
}

// Commit makes the shard visible under its name, replacing any existing
// file, and returns once it is on stable storage (unless NoSync). On error,
// including a done ctx, the write is aborted. If the final directory fsync
// fails the new file may already be visible; Commit still reports the error.
func (w *shardWriter) Commit(ctx context.Context) error {
	end, err := w.d.begin(ctx)
	if err != nil {
		w.Abort()
		return w.errorf("commit", err)
	}
	defer end()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.state == committed:
		return w.errorf("commit", errors.New("already committed"))
	case w.state == aborted:
		return w.errorf("commit", errors.New("aborted"))
	case w.err != nil:
		w.abortLocked()
		return w.err
	}
	err = w.commitLocked(ctx)
	if err != nil {
		w.abortLocked() // a no-op if the rename happened
	}
	w.forget()
	if err != nil {
		return w.errorf("commit", err)
	}
	return nil
}

func (w *shardWriter) commitLocked(ctx context.Context) error {
	d := w.d
	if w.odirect {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if !d.noSync {
		if err := w.f.Sync(); err != nil {
			return err
		}
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return err
	}
	pgDir, dir := d.shardDirs(w.s)
	final := filepath.Join(dir, w.s.Name)
	var old int64
	for try := 0; ; try++ {
		if err := d.ensureDir(filepath.Join(d.dir, shardsDir), pgDir); err != nil {
			return err
		}
		if err := d.ensureDir(pgDir, dir); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err // the last moment the write can still be cancelled
		}
		old = 0
		if fi, err := os.Lstat(final); err == nil {
			old = fi.Size()
		}
		err := os.Rename(w.tmp, final)
		if err == nil {
			break
		}
		if try > 0 || !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if _, serr := os.Lstat(w.tmp); serr != nil {
			return err
		}
		// The shard directories were removed behind our back (the
		// temp file is still there): forget them and create them again.
		d.syncedDirs.Delete(pgDir)
		d.syncedDirs.Delete(dir)
	}
	w.state = committed // the temp file is gone: nothing left to abort
	d.shardBytes.Add(w.n - old)
	return d.syncDir(dir)
}

// ensureDir creates dir inside parent if missing and makes sure its entry is
// durable by fsyncing parent, once per directory per Driver.
func (d *Driver) ensureDir(parent, dir string) error {
	if _, ok := d.syncedDirs.Load(dir); ok {
		return nil
	}
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrNotExist) && parent == filepath.Join(d.dir, shardsDir) {
		// shards/ itself was removed behind our back.
		if err = os.Mkdir(parent, 0o700); err == nil || errors.Is(err, fs.ErrExist) {
			err = os.Mkdir(dir, 0o700)
		}
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	// Sync even if another writer created dir: it may not have synced yet.
	if err := d.syncDir(parent); err != nil {
		return err
	}
	d.syncedDirs.Store(dir, struct{}{})
	return nil
}

// Abort discards the write. It is a no-op after Commit or a previous Abort.
func (w *shardWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != writing {
		return nil
	}
	if err := w.abortLocked(); err != nil {
		return w.errorf("abort", err)
	}
	return nil
}

func (w *shardWriter) abortLocked() error {
	if w.state != writing {
		return nil
	}
	w.state = aborted
	w.forget()
	w.release()
	var errs []error
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if err := os.Remove(w.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// forget removes w from the Driver's set of open writers.
func (w *shardWriter) forget() {
	w.d.wmu.Lock()
	delete(w.d.writers, w)
	w.d.wmu.Unlock()
}

// ReadShard returns length bytes of shard s from off (length -1: to the
// end). The size of the file is taken when ReadShard is called. If the file
// holds fewer than off+length bytes, the reader returns what there is and
// then io.ErrUnexpectedEOF; with length -1 and off beyond the end it returns
// io.ErrUnexpectedEOF at once, and with off exactly at the end an empty
// stream. A missing shard is driver.ErrNotFound.
func (d *Driver) ReadShard(ctx context.Context, s driver.Shard, off, length int64) (io.ReadCloser, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("driver/local: read shard %04x: %w", s.PG, err)
	}
	if off < 0 || length < -1 {
		return nil, fmt.Errorf("driver/local: read shard %04x/%s: invalid range off %d length %d", s.PG, s.Name, off, length)
	}
	end, err := d.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("driver/local: read shard %04x/%s: %w", s.PG, s.Name, err)
	}
	defer end()
	f, err := os.Open(d.shardPath(s))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("driver/local: read shard %04x/%s: %w", s.PG, s.Name, driver.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("driver/local: read shard %04x/%s: %w", s.PG, s.Name, err)
	}
	r := &shardReader{f: f, off: off, end: off + length}
	if length == -1 {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("driver/local: read shard %04x/%s: %w", s.PG, s.Name, err)
		}
		r.end = fi.Size()
		r.short = off > r.end
	}
	return r, nil
}

// shardReader reads bytes [off, end) of a shard file.
type shardReader struct {
	f        *os.File
	off, end int64
	short    bool // the range starts beyond the end of the file
}

func (r *shardReader) Read(p []byte) (int, error) {
	if r.short {
		return 0, io.ErrUnexpectedEOF
	}
	if r.off >= r.end {
		return 0, io.EOF
	}
	if rest := r.end - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	if errors.Is(err, io.EOF) {
		if n == len(p) {
			err = nil
		} else {
			err = io.ErrUnexpectedEOF
		}
	}
	return n, err
}

func (r *shardReader) Close() error { return r.f.Close() }

// DeleteShard removes shard s, or returns driver.ErrNotFound.
func (d *Driver) DeleteShard(ctx context.Context, s driver.Shard) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("driver/local: delete shard %04x: %w", s.PG, err)
	}
	end, err := d.begin(ctx)
	if err != nil {
		return fmt.Errorf("driver/local: delete shard %04x/%s: %w", s.PG, s.Name, err)
	}
	defer end()
	_, dir := d.shardDirs(s)
	path := filepath.Join(dir, s.Name)
	var size int64
	if fi, err := os.Lstat(path); err == nil {
		size = fi.Size()
	}
	if err := os.Remove(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("driver/local: delete shard %04x/%s: %w", s.PG, s.Name, driver.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("driver/local: delete shard %04x/%s: %w", s.PG, s.Name, err)
	}
	d.shardBytes.Add(-size)
	if err := d.syncDir(dir); err != nil {
		return fmt.Errorf("driver/local: delete shard %04x/%s: %w", s.PG, s.Name, err)
	}
	return nil
}
