package local

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// The record log (write-ahead log) in front of the index.
//
// A batch of record mutations is appended to the log as one frame and
// fdatasynced: that is the batch's commit, one fsync of a sequential append
// where a bbolt commit costs two fsyncs and rewrites every page on the path
// to each record. The mutations are then held in memory (committer.mem) and
// served from there until a flush writes many batches into index.db in one
// bbolt transaction (fsynced as ever). The log's frames up to the last
// flushed one are then deleted.
//
// Frame: crc32c (4 bytes, over the rest) | length of the rest (4) | seq (8)
// | mutations, each op (1: put, 2: delete) | uvarint key length | key, and
// for a put | uvarint value length | value. seq numbers frames 1, 2, 3, …
// over the life of the drive; index.db stores the seq of the last frame it
// holds (walSeqKey). Open replays the frames after it, in order, stopping at
// the first that is torn, corrupt or out of sequence: that frame and any
// after it were never acknowledged (a frame is acknowledged only once it
// and every frame before it are on stable storage).
//
// The log is a series of segment files, wal-NNNNNNNNNNNNNNNNNNNN.log under
// the drive's root, numbered by the seq of their first frame. A flush
// starts a new segment, so appends go on while it runs, and deletes the
// older ones once index.db holds their frames. A segment is created and its
// directory entry fsynced before any frame in it is acknowledged.

const (
	walPrefix = "wal-"
	walSuffix = ".log"
	walHeader = 16 // crc, length, seq
	// walMaxFrame bounds a frame (its length is 32 bits): a batch
	// larger than this is logged one mutation at a time.
	walMaxFrame = 1 << 30
	walPut      = 1
	walDelete   = 2
	// walChunk is how far ahead of its frames a segment is filled with
	// zeros: an append then overwrites allocated blocks within the file's
	// size, and its fdatasync writes no file-system metadata (appending
	// past the end made each one a journal commit: 1.6x slower here).
	// Replay stops at the zeros (a frame of length 0). A new segment is
	// empty until its first append, so an idle drive's log takes no space.
	walChunk = 1 << 20
)

var zeroChunk = make([]byte, walChunk)

// walSeqKey is the key, in the meta bucket, of the seq of the last log
// frame whose mutations index.db holds.
var (
	metaBucket = []byte("meta")
	walSeqKey  = []byte("wal-seq")
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// mutation is one record change of a batch: a put of val, or a delete.
type mutation struct {
	key string
	val []byte // nil for a delete
	del bool
}

// wal is the drive's record log. It is used by one goroutine at a time:
// the committer's leader.
type wal struct {
	dir    string
	noSync bool
	f      *os.File              // the segment appended to
	off    int64                 // where the next frame goes in f
	size   int64                 // f's size: zeros from off on
	broken atomic.Pointer[error] // set when a failed frame could not be cut off
	buf    []byte                // frame being encoded
	segs   []string              // segment files, oldest first, the last being f's
}

// segName is the file name of the segment whose first frame is seq.
func segName(seq uint64) string {
	return fmt.Sprintf("%s%020d%s", walPrefix, seq, walSuffix)
}

// listSegments returns the drive's segment files, oldest first.
func listSegments(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list record log: %w", err)
	}
	var segs []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, walPrefix) || !strings.HasSuffix(n, walSuffix) {
			continue
		}
		if _, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, walPrefix), walSuffix), 10, 64); err != nil {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs) // fixed width: names sort by seq
	return segs, nil
}

// errTorn marks the end of a segment's frames: a torn, corrupt or
// zero (preallocated) frame, or the end of the file.
var errTorn = errors.New("torn frame")

// replayStop says where a replay stopped before the end of the log: in
// which segment, at what offset, with how many bytes after it there.
type replayStop struct {
	seg       string
	off, left int64
	why       string
}

// replayLog reads the frames after seq from the segments in dir and calls
// apply with each frame's mutations, in order. It returns the seq of the
// last frame applied (seq if none). It stops at the end of the log or at
// the first frame that is torn, corrupt or out of sequence: stop, if not
// nil, says where, if non-zero bytes follow (an unacknowledged write in
// flight at a crash leaves a torn frame; corruption mid-log loses the
// frames after it). A read error fails the replay: the frames it could
// not read may have been acknowledged.
func replayLog(dir string, segs []string, seq uint64, apply func(seq uint64, muts []mutation) error) (uint64, *replayStop, error) {
	for _, name := range segs {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return seq, nil, fmt.Errorf("replay record log: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return seq, nil, fmt.Errorf("replay record log: %w", err)
		}
		r := &frameReader{r: bufio.NewReaderSize(f, 256<<10), left: fi.Size()}
		var stop *replayStop
		for {
			at := fi.Size() - r.left
			fseq, muts, err := r.next()
			if errors.Is(err, errTorn) {
				if r.left > 0 && !zeroTail(f, at) {
					stop = &replayStop{seg: name, off: at, left: fi.Size() - at, why: err.Error()}
				}
				break // the end of this segment's frames
			}
			if err != nil {
				f.Close()
				return seq, nil, fmt.Errorf("replay record log %s at %d: %w", name, at, err)
			}
			if fseq <= seq {
				continue // index.db holds it
			}
			if fseq != seq+1 {
				f.Close()
				// Out of sequence: nothing after it was acknowledged.
				return seq, &replayStop{seg: name, off: at, left: fi.Size() - at, why: fmt.Sprintf("frame %d after %d", fseq, seq)}, nil
			}
			if err := apply(fseq, muts); err != nil {
				f.Close()
				return seq, nil, err
			}
			seq = fseq
		}
		f.Close()
		if stop != nil {
			return seq, stop, nil
		}
	}
	return seq, nil, nil
}

// zeroTail reports whether f holds only zeros from off on (the
// preallocated end of a segment).
func zeroTail(f *os.File, off int64) bool {
	buf := make([]byte, 64<<10)
	for {
		n, err := f.ReadAt(buf, off)
		for _, b := range buf[:n] {
			if b != 0 {
				return false
			}
		}
		off += int64(n)
		if err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}

// frameReader reads the frames of a segment with left bytes to go.
type frameReader struct {
	r    io.Reader
	left int64
}

// next reads one frame: its seq and mutations, errTorn at the end of the
// frames, or a read error.
func (fr *frameReader) next() (uint64, []mutation, error) {
	var h [walHeader]byte
	if fr.left < walHeader {
		return 0, nil, fmt.Errorf("%w: %d bytes at the end", errTorn, fr.left)
	}
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		return 0, nil, err
	}
	fr.left -= walHeader
	sum := binary.LittleEndian.Uint32(h[0:])
	n := int64(binary.LittleEndian.Uint32(h[4:]))
	if n < 8 || n-8 > fr.left {
		return 0, nil, fmt.Errorf("%w: length %d", errTorn, n)
	}
	body := make([]byte, n-8)
	if _, err := io.ReadFull(fr.r, body); err != nil {
		return 0, nil, err
	}
	fr.left -= n - 8
	crc := crc32.Update(crc32.Checksum(h[4:], crcTable), crcTable, body)
	if crc != sum {
		return 0, nil, fmt.Errorf("%w: checksum", errTorn)
	}
	muts, err := decodeMutations(body)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errTorn, err)
	}
	return binary.LittleEndian.Uint64(h[8:]), muts, nil
}

func decodeMutations(b []byte) ([]mutation, error) {
	var muts []mutation
	for len(b) > 0 {
		op := b[0]
		b = b[1:]
		kl, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < kl {
			return nil, errors.New("bad frame: key")
		}
		m := mutation{key: string(b[n : n+int(kl)])}
		b = b[n+int(kl):]
		switch op {
		case walDelete:
			m.del = true
		case walPut:
			vl, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < vl {
				return nil, errors.New("bad frame: value")
			}
			m.val = b[n : n+int(vl) : n+int(vl)]
			b = b[n+int(vl):]
		default:
			return nil, fmt.Errorf("bad frame: op %d", op)
		}
		muts = append(muts, m)
	}
	return muts, nil
}

// startSegment makes a new segment, whose first frame will be seq, the
// one appended to, and fsyncs the directory so it outlives a crash.
func (w *wal) startSegment(seq uint64) error {
	name := segName(seq)
	f, err := os.OpenFile(filepath.Join(w.dir, name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("record log: new segment: %w", err)
	}
	if !w.noSync {
		err = syncDirPath(w.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(filepath.Join(w.dir, name))
		return fmt.Errorf("record log: new segment: %w", err)
	}
	if w.f != nil {
		w.f.Close()
	}
	w.f, w.off, w.size = f, 0, 0 // filled by the first append
	w.segs = append(slices.DeleteFunc(w.segs, func(s string) bool { return s == name }), name)
	return nil
}

// errFrameTooLarge fails a batch whose frame would exceed walMaxFrame.
var errFrameTooLarge = errors.New("record log: batch larger than a frame")

// append writes the frame of muts numbered seq to the log and returns once
// it is on stable storage. On error the frame is not part of the log: it
// is cut off (truncated away, durably), so that the next frame, which
// takes its seq, is the only one of that seq. If even that fails the log
// is broken: every append fails until the drive is reopened (Probe takes
// it offline: see broken), and the replay then decides.
func (w *wal) append(seq uint64, muts []mutation) error {
	if b := w.broken.Load(); b != nil {
		return fmt.Errorf("record log: broken by an earlier failure: %w", *b)
	}
	b := append(w.buf[:0], make([]byte, walHeader)...)
	for _, m := range muts {
		if m.del {
			b = append(b, walDelete)
			b = binary.AppendUvarint(b, uint64(len(m.key)))
			b = append(b, m.key...)
			continue
		}
		b = append(b, walPut)
		b = binary.AppendUvarint(b, uint64(len(m.key)))
		b = append(b, m.key...)
		b = binary.AppendUvarint(b, uint64(len(m.val)))
		b = append(b, m.val...)
	}
	if cap(b) <= 1<<20 {
		w.buf = b
	}
	if len(b) > walMaxFrame {
		return errFrameTooLarge
	}
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[0:], crc32.Checksum(b[4:], crcTable))
	if err := w.write(b); err != nil {
		terr := w.f.Truncate(w.off)
		if terr == nil && !w.noSync {
			terr = fdatasync(w.f)
		}
		if terr != nil {
			broken := fmt.Errorf("%w (cutting the failed frame off: %w)", err, terr)
			w.broken.Store(&broken)
		}
		w.size = w.off
		return err
	}
	w.off += int64(len(b))
	w.size = max(w.size, w.off)
	return nil
}

// write writes frame b at w.off, zero-filling ahead first if it reaches
// past the filled part, and fdatasyncs it.
func (w *wal) write(b []byte) error {
	if end := w.off + int64(len(b)); end > w.size {
		// Zeros ahead again; this frame's fdatasync makes them durable.
		grow := max(walChunk, end-w.size)
		if err := zeroFill(w.f, w.size, grow); err == nil {
			w.size += grow
		} else if err := w.f.Truncate(w.size); err != nil {
			// No room ahead (a full disk): the frame goes past the
			// end (append sets size after it), unless that fails too.
			return fmt.Errorf("record log: extend: %w", err)
		}
	}
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		return fmt.Errorf("record log: write: %w", err)
	}
	if !w.noSync {
		if err := fdatasync(w.f); err != nil {
			return fmt.Errorf("record log: fdatasync: %w", err)
		}
	}
	return nil
}

// fdatasync syncs f's data (a variable for tests that make it fail).
var fdatasync = func(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// zeroFill writes n zero bytes to f at off.
func zeroFill(f *os.File, off, n int64) error {
	for n > 0 {
		c := min(n, int64(len(zeroChunk)))
		if _, err := f.WriteAt(zeroChunk[:c], off); err != nil {
			return err
		}
		off, n = off+c, n-c
	}
	return nil
}

// dropBefore deletes the segments older than the one appended to: index.db
// holds all their frames. A segment left by a failed delete is skipped by
// the next replay (its frames are not after index.db's seq) and deleted by
// the next flush.
func (w *wal) dropBefore() {
	keep := w.segs[:0]
	for i, name := range w.segs {
		if i < len(w.segs)-1 {
			if err := os.Remove(filepath.Join(w.dir, name)); err == nil || errors.Is(err, os.ErrNotExist) {
				continue
			}
		}
		keep = append(keep, name)
	}
	w.segs = keep
}

// close closes the segment appended to.
func (w *wal) close() error {
	if w == nil || w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// openLog replays the record log into index.db (the frames after the one
// index.db last took) and starts a fresh segment for c's batches.
func (c *committer) openLog(dir string, noSync bool, log *slog.Logger) error {
	c.logger = log
	var seq uint64
	if err := c.db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(metaBucket); m != nil {
			if v := m.Get(walSeqKey); len(v) == 8 {
				seq = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("record log: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	logged := make(map[string]mutation)
	last, stop, err := replayLog(dir, segs, seq, func(_ uint64, muts []mutation) error {
		for _, m := range muts {
			logged[m.key] = m
		}
		return nil
	})
	if err != nil {
		return err
	}
	if stop != nil {
		// A write in flight at a crash leaves a torn frame, never
		// acknowledged; a frame corrupted on the disk loses those after it.
		log.Warn("record log replay stopped before the end of the log: a torn frame of a write in flight at a crash, or corruption",
			"segment", stop.seg, "offset", stop.off, "bytes_after", stop.left, "why", stop.why, "replayed_through", last)
	}
	if last > seq {
		keys := slices.Sorted(maps.Keys(logged))
		var ch *packChanges
		if err := c.db.Update(func(tx *bolt.Tx) (err error) {
			ch, err = applyMutations(tx, keys, logged, last, c.packs)
			return err
		}); err != nil {
			return fmt.Errorf("record log: replay %d frames: %w", last-seq, err)
		}
		c.freePacks(ch)
	}
	w := &wal{dir: dir, noSync: noSync, segs: segs}
	if err := w.startSegment(last + 1); err != nil {
		return err
	}
	w.dropBefore() // index.db holds every frame of the older segments
	c.log, c.seq = w, last
	c.mem, c.memBytes = newHeld(), 0
	c.flushing, c.flushed, c.flushErr = nil, nil, nil
	c.cache = newRecordCache() // empty: index.db may have changed since the last open
	return nil
}
