package local

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

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
	walPrefix  = "wal-"
	walSuffix  = ".log"
	walHeader  = 16       // crc, length, seq
	walMaxBody = 64 << 20 // a frame larger than this is corrupt
	walPut     = 1
	walDelete  = 2
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
	f      *os.File // the segment appended to
	off    int64    // where the next frame goes in f
	size   int64    // f's size: zeros from off on
	buf    []byte   // frame being encoded
	segs   []string // segment files, oldest first, the last being f's
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

// replayLog reads the frames after seq from the segments in dir and calls
// apply with each frame's mutations, in order. It returns the seq of the
// last frame applied (seq if none). It stops at the end of the log or at
// the first frame that is torn, corrupt or out of sequence.
func replayLog(dir string, segs []string, seq uint64, apply func(seq uint64, muts []mutation) error) (uint64, error) {
	for _, name := range segs {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return seq, fmt.Errorf("replay record log: %w", err)
		}
		r := bufio.NewReaderSize(f, 256<<10)
		for {
			fseq, muts, err := readFrame(r)
			if err != nil {
				break // the end of this segment, or a torn frame
			}
			if fseq <= seq {
				continue // index.db holds it
			}
			if fseq != seq+1 {
				f.Close()
				return seq, nil // out of sequence: nothing after it was acknowledged
			}
			if err := apply(fseq, muts); err != nil {
				f.Close()
				return seq, err
			}
			seq = fseq
		}
		f.Close()
	}
	return seq, nil
}

// readFrame reads one frame from r.
func readFrame(r io.Reader) (uint64, []mutation, error) {
	var h [walHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	sum := binary.LittleEndian.Uint32(h[0:])
	n := binary.LittleEndian.Uint32(h[4:])
	if n < 8 || n-8 > walMaxBody {
		return 0, nil, errors.New("bad frame length")
	}
	body := make([]byte, n-8)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	crc := crc32.Update(crc32.Checksum(h[4:], crcTable), crcTable, body)
	if crc != sum {
		return 0, nil, errors.New("bad frame checksum")
	}
	muts, err := decodeMutations(body)
	return binary.LittleEndian.Uint64(h[8:]), muts, err
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

// append writes the frame of muts numbered seq to the log and returns once
// it is on stable storage. On error the frame is not part of the log: the
// next one is written over it.
func (w *wal) append(seq uint64, muts []mutation) error {
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
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[0:], crc32.Checksum(b[4:], crcTable))
	if cap(b) <= 1<<20 {
		w.buf = b
	}
	if end := w.off + int64(len(b)); end > w.size {
		// Zeros ahead again; this frame's fdatasync makes them durable.
		grow := max(walChunk, end-w.size)
		if err := zeroFill(w.f, w.size, grow); err == nil {
			w.size += grow
		} else if err := w.f.Truncate(w.size); err != nil {
			// No room ahead (a full disk): the frame is appended
			// past the end, unless that fails too.
			return fmt.Errorf("record log: extend: %w", err)
		}
	}
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		return fmt.Errorf("record log: write: %w", err)
	}
	if !w.noSync {
		if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
			return fmt.Errorf("record log: fdatasync: %w", err)
		}
	}
	w.off += int64(len(b))
	return nil
}

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
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// syncDirPath fsyncs the directory dir.
func syncDirPath(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// openLog replays the record log into index.db (the frames after the one
// index.db last took) and starts a fresh segment for c's batches.
func (c *committer) openLog(dir string, noSync bool) error {
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
	last, err := replayLog(dir, segs, seq, func(_ uint64, muts []mutation) error {
		for _, m := range muts {
			logged[m.key] = m
		}
		return nil
	})
	if err != nil {
		return err
	}
	if last > seq {
		keys := slices.Sorted(maps.Keys(logged))
		if err := c.db.Update(func(tx *bolt.Tx) error { return applyMutations(tx, keys, logged, last) }); err != nil {
			return fmt.Errorf("record log: replay %d frames: %w", last-seq, err)
		}
	}
	w := &wal{dir: dir, noSync: noSync, segs: segs}
	if err := w.startSegment(last + 1); err != nil {
		return err
	}
	w.dropBefore() // index.db holds every frame of the older segments
	c.log, c.seq = w, last
	c.mem, c.memBytes = make(map[string]mutation), 0
	c.flushing, c.flushed, c.flushErr = nil, nil, nil
	return nil
}
