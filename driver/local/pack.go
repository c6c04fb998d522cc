package local

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Pack files hold the data of large records, outside index.db.
//
// bbolt stores a value larger than a page in whole pages, together with
// at least one neighbour: a record of 4–130 KiB (an inline shard) leaves
// 2 KiB of its last page empty on average. With an index of value format
// 2 (every index.db created since), a flush appends the data of each
// record of at least packMin bytes to the drive's active pack file,
// packs/pack-<id>.dat, back to back with no padding, and stores in
// index.db only a reference: pack id, offset, length and CRC-32C.
//
// Durability: the record log holds the whole record until the flush. The
// flush appends the data, fdatasyncs the pack (and the packs directory
// when it created the file) and only then commits the transaction holding
// the references and the pack's new committed end. Open truncates the
// active pack to its committed end: what a crash left after it was never
// referenced, and the replay of the log appends it again.
//
// Space: index.db's "extents" bucket lists the live extents of every
// pack. When a flush kills an extent (an overwrite or a delete), it
// punches out, after its commit, every whole 4 KiB block of the dead gap
// around it (from the end of the live extent before it to the start of
// the next); a pack with no live extent left that is not the active one
// is removed. A crash between the commit and the punch leaves that gap
// allocated until a neighbour dies.
//
// Readers: a reader holds packs.mu shared from before the bbolt
// transaction in which it finds a reference until it has read the data,
// and punching or removing holds it exclusively, after the commit that
// killed what it frees: so no reader ever reads a freed extent.

// packMin is the smallest record data that a flush moves to a pack file;
// smaller records stay in index.db (a 4 KiB GET reads no pack). A
// variable for tests.
var packMin = 4 << 10

// packMax is the size from which the active pack is sealed and the next
// append starts a new one. A variable for tests.
var packMax = int64(256 << 20)

// packsEnabled makes Open create new indexes with value format 2 (packs).
// A variable for tests of format 1.
var packsEnabled = true

const packsDir = "packs"

// Stored values of format 2: the Version, a kind byte, then the data
// (valInline) or a reference (valPacked).
const (
	valInline byte = 0
	valPacked byte = 1
	refSize        = 4 + 8 + 4 + 4 // pack id, offset, length, CRC-32C
	packBlock      = 4096          // what punching frees: whole blocks
)

var (
	valueFormatKey = []byte("value-format") // in metaBucket: 2 for packs
	packEndKey     = []byte("pack-end")     // in metaBucket: active id, committed end
	extentsBucket  = []byte("extents")      // pack id, offset → length
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// packRef is where a record's data lies in the packs.
type packRef struct {
	id       uint32
	off      int64
	n        uint32
	checksum uint32
}

func (r packRef) key() []byte {
	k := binary.BigEndian.AppendUint32(make([]byte, 0, 12), r.id)
	return binary.BigEndian.AppendUint64(k, uint64(r.off))
}

func (r packRef) end() int64 { return r.off + int64(r.n) }

// storedRef returns the reference a stored value of format 2 holds.
func storedRef(val []byte) (packRef, bool) {
	if len(val) != driver.VersionSize+1+refSize || val[driver.VersionSize] != valPacked {
		return packRef{}, false
	}
	b := val[driver.VersionSize+1:]
	return packRef{
		id:       binary.BigEndian.Uint32(b),
		off:      int64(binary.BigEndian.Uint64(b[4:])),
		n:        binary.BigEndian.Uint32(b[12:]),
		checksum: binary.BigEndian.Uint32(b[16:]),
	}, true
}

// beforePackRead, if set (tests), runs between finding a reference and
// reading its data: it widens the window in which a freed extent would be
// read.
var beforePackRead func()

// packs is a drive's pack files. Appends come from one flush at a time;
// reads from any number of callers.
type packs struct {
	dir    string
	noSync bool

	// mu is held shared by readers, from before the transaction that
	// finds a reference until its data is read, and exclusively while
	// freeing extents.
	mu sync.RWMutex

	fmu   sync.RWMutex        // guards files
	files map[uint32]*os.File // open packs: the active one and up to maxOpenPacks read

	// usage caches allocated's answer, at most usageAge old.
	usageMu sync.Mutex
	usage   int64
	usageAt time.Time

	// The flush's state.
	active uint32
	end    int64 // the active pack's size: its committed end, then appends
	// What index.db has committed: the active pack and its end.
	doneActive uint32
	doneEnd    int64
	f          *os.File
	w          *bufio.Writer
	created    bool // the active pack was created since the last sync
}

// packName is the file name of pack id.
func packName(id uint32) string { return fmt.Sprintf("pack-%08x.dat", id) }

// openPacks opens the packs of an index of format 2 whose meta bucket
// holds packEnd: it truncates the active pack to its committed end and
// removes packs created after it, never referenced.
func openPacks(dir string, noSync bool, tx *bolt.Tx) (*packs, error) {
	p := &packs{dir: filepath.Join(dir, packsDir), noSync: noSync, files: map[uint32]*os.File{}, active: 1}
	if err := os.Mkdir(p.dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("packs: %w", err)
	}
	if !noSync {
		if err := syncDirPath(dir); err != nil {
			return nil, fmt.Errorf("packs: %w", err)
		}
	}
	if v := tx.Bucket(metaBucket).Get(packEndKey); len(v) == 12 {
		p.active, p.end = binary.BigEndian.Uint32(v), int64(binary.BigEndian.Uint64(v[4:]))
	}
	p.end = alignBlock(p.end)
	p.doneActive, p.doneEnd = p.active, p.end
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, fmt.Errorf("packs: %w", err)
	}
	ext := tx.Bucket(extentsBucket)
	for _, e := range ents {
		id, ok := parsePackName(e.Name())
		switch {
		case !ok:
			continue
		case id > p.active || (id < p.active && !hasExtents(ext, id)):
			// Created by a flush that did not commit, or emptied and
			// not removed before a crash.
			if err := os.Remove(filepath.Join(p.dir, e.Name())); err != nil {
				return nil, fmt.Errorf("packs: remove unused %s: %w", e.Name(), err)
			}
		}
	}
	f, err := os.OpenFile(filepath.Join(p.dir, packName(p.active)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("packs: open active pack: %w", err)
	}
	// Cut at the committed end; a flush starts on a block of its own
	// (apply), so this rewrites no committed data.
	if err := f.Truncate(p.end); err != nil {
		f.Close()
		return nil, fmt.Errorf("packs: truncate active pack to %d: %w", p.end, err)
	}
	p.f, p.files[p.active] = f, f
	p.created = true // its directory entry may not be durable yet
	p.w = bufio.NewWriterSize(writerAt{f, &p.end}, 256<<10)
	return p, nil
}

func parsePackName(name string) (uint32, bool) {
	h, ok := strings.CutPrefix(name, "pack-")
	if h, ok = strings.CutSuffix(h, ".dat"); !ok || len(h) != 8 {
		return 0, false
	}
	id, err := strconv.ParseUint(h, 16, 32)
	return uint32(id), err == nil
}

func hasExtents(ext *bolt.Bucket, id uint32) bool {
	prefix := binary.BigEndian.AppendUint32(nil, id)
	k, _ := ext.Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// writerAt writes at *end and advances it.
type writerAt struct {
	f   *os.File
	end *int64
}

func (w writerAt) Write(b []byte) (int, error) {
	n, err := w.f.WriteAt(b, *w.end)
	*w.end += int64(n)
	return n, err
}

// close closes the pack files; p may be nil.
func (p *packs) close() {
	if p == nil {
		return
	}
	p.fmu.Lock()
	defer p.fmu.Unlock()
	for id, f := range p.files {
		f.Close()
		delete(p.files, id)
	}
}

// maxOpenPacks bounds the pack files kept open for reads; a read of
// another opens and closes its own.
const maxOpenPacks = 256

// file returns the open file of pack id and the function to call once
// done with it.
func (p *packs) file(id uint32) (*os.File, func(), error) {
	p.fmu.RLock()
	f, ok := p.files[id]
	p.fmu.RUnlock()
	if ok {
		return f, noop, nil
	}
	p.fmu.Lock()
	defer p.fmu.Unlock()
	if f, ok := p.files[id]; ok {
		return f, noop, nil
	}
	f, err := os.OpenFile(filepath.Join(p.dir, packName(id)), os.O_RDWR, 0) // read, and punch
	if err != nil {
		return nil, nil, err
	}
	if len(p.files) >= maxOpenPacks {
		return f, func() { f.Close() }, nil
	}
	p.files[id] = f
	return f, noop, nil
}

func noop() {}

// read returns the first max bytes (all if max < 0) of the data ref
// names, checked against its CRC when read whole.
func (p *packs) read(ref packRef, max int) (data []byte, truncated bool, err error) {
	n := int(ref.n)
	if max >= 0 && n > max {
		n, truncated = max, true
	}
	if beforePackRead != nil {
		beforePackRead()
	}
	f, done, err := p.file(ref.id)
	if errors.Is(err, fs.ErrNotExist) {
		// Lost only if packs/ itself is there: a directory briefly
		// unreachable (moved, unmounted) loses nothing.
		if _, serr := os.Stat(p.dir); serr == nil {
			err = fmt.Errorf("%w: %w", errLost, err)
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("pack %d: %w: %w", ref.id, driver.ErrCorrupt, err)
	}
	defer done()
	data = make([]byte, n)
	if _, err := f.ReadAt(data, ref.off); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %w", errLost, err) // the pack is shorter
		}
		return nil, false, fmt.Errorf("pack %d at %d: %w: %w", ref.id, ref.off, driver.ErrCorrupt, err)
	}
	if !truncated && crc32.Checksum(data, castagnoli) != ref.checksum {
		return nil, false, fmt.Errorf("pack %d at %d: %w: %w", ref.id, ref.off, driver.ErrCorrupt, errChecksum)
	}
	return data, truncated, nil
}

// decodeCut is decodeCut for a stored value of format 2 (p non-nil) or 1.
func (p *packs) decodeCut(key, val []byte, max int) (driver.Record, error) {
	if p == nil {
		return decodeCut(key, val, max)
	}
	if len(val) < driver.VersionSize+1 {
		return driver.Record{}, fmt.Errorf("record value of %d bytes: %w", len(val), driver.ErrCorrupt)
	}
	switch val[driver.VersionSize] {
	case valInline:
		r, err := decodeCut(key, val[1:], max) // the kind byte's place takes the Version's first byte
		if err == nil {
			copy(r.Version[:], val)
		}
		return r, err
	case valPacked:
		ref, ok := storedRef(val)
		if !ok {
			return driver.Record{}, fmt.Errorf("pack reference of %d bytes: %w: %w", len(val), driver.ErrCorrupt, errLost)
		}
		data, truncated, err := p.read(ref, max)
		if err != nil {
			return driver.Record{}, err
		}
		r := driver.Record{Key: string(key), Data: data, Truncated: truncated}
		copy(r.Version[:], val)
		return r, nil
	}
	return driver.Record{}, fmt.Errorf("record value kind %d: %w: %w", val[driver.VersionSize], driver.ErrCorrupt, errLost)
}

// errChecksum is a pack read whose data does not match its CRC; errLost
// one whose data is not there (the pack missing or shorter), or a value
// that does not parse.
var (
	errChecksum = errors.New("checksum mismatch")
	errLost     = errors.New("data lost")
)

// logical returns a stored value as the record log holds it: the Version
// then the data. A value whose data is corrupt (its CRC fails) comes back
// as its Version alone, so that a newer version can still replace it
// (healing) and it can be deleted: what it held is lost anyway. One
// whose data could not be read (the pack cannot be opened, an I/O error)
// comes back too short to decode, so that a mutation over it fails
// (driver.ErrCorrupt) rather than report a replaced record without its
// data.
func (p *packs) logical(val []byte) []byte {
	if p == nil || val == nil {
		return val
	}
	r, err := p.decodeCut(nil, val, -1)
	switch {
	case err == nil:
		return append(r.Version[:], r.Data...)
	case (errors.Is(err, errChecksum) || errors.Is(err, errLost)) && len(val) >= driver.VersionSize:
		return bytes.Clone(val[:driver.VersionSize])
	}
	return []byte{}
}

// store returns the stored value of a logical one (Version then data),
// appending the data to the active pack if it is at least packMin bytes.
func (p *packs) store(val []byte) ([]byte, *packRef, error) {
	if len(val) < driver.VersionSize {
		return nil, nil, fmt.Errorf("record value of %d bytes: %w", len(val), driver.ErrCorrupt)
	}
	data := val[driver.VersionSize:]
	if len(data) < packMin {
		out := make([]byte, 0, len(val)+1)
		out = append(out, val[:driver.VersionSize]...)
		out = append(out, valInline)
		return append(out, data...), nil, nil
	}
	if p.end+int64(p.w.Buffered()) >= packMax {
		if err := p.seal(); err != nil {
			return nil, nil, err
		}
	}
	ref := packRef{id: p.active, off: p.end + int64(p.w.Buffered()), n: uint32(len(data)), checksum: crc32.Checksum(data, castagnoli)}
	if _, err := p.w.Write(data); err != nil {
		p.w.Reset(writerAt{p.f, &p.end})
		return nil, nil, fmt.Errorf("append to pack %d: %w", p.active, err)
	}
	out := make([]byte, 0, driver.VersionSize+1+refSize)
	out = append(out, val[:driver.VersionSize]...)
	out = append(out, valPacked)
	out = binary.BigEndian.AppendUint32(out, ref.id)
	out = binary.BigEndian.AppendUint64(out, uint64(ref.off))
	out = binary.BigEndian.AppendUint32(out, ref.n)
	out = binary.BigEndian.AppendUint32(out, ref.checksum)
	return out, &ref, nil
}

// seal ends the active pack and starts the next.
func (p *packs) seal() error {
	if err := p.sync(); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(p.dir, packName(p.active+1)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("start pack %d: %w", p.active+1, err)
	}
	p.fmu.Lock()
	p.files[p.active+1] = f
	full := len(p.files) > maxOpenPacks
	p.fmu.Unlock()
	if full {
		// The sealed pack leaves the open ones; readers open it
		// again. Not under a reader's feet: they hold mu.
		p.mu.Lock()
		p.fmu.Lock()
		p.f.Close()
		delete(p.files, p.active)
		p.fmu.Unlock()
		p.mu.Unlock()
	}
	p.active, p.end, p.f, p.created = p.active+1, 0, f, true
	p.w.Reset(writerAt{f, &p.end})
	return nil
}

// sync makes the appends durable: written out, fdatasynced, and the pack
// linked durably into packs/ if it was created since the last sync.
func (p *packs) sync() error {
	if err := p.w.Flush(); err != nil {
		p.w.Reset(writerAt{p.f, &p.end}) // bufio keeps a failed write's error: start over after what was written
		return fmt.Errorf("append to pack %d: %w", p.active, err)
	}
	// The next appends start on a block of their own: they never rewrite
	// a block holding committed data (on a device that may garble a
	// sector being written when power fails, that could lose committed
	// records; review 20 H2). The file is extended to the block's end now,
	// before the fdatasync, so that no file system zeroes the rest of
	// this block later, when the next flush writes past it.
	if end := alignBlock(p.end); end != p.end {
		if err := p.f.Truncate(end); err != nil {
			return fmt.Errorf("extend pack %d: %w", p.active, err)
		}
		p.end = end
	}
	if p.noSync {
		return nil
	}
	if err := unix.Fdatasync(int(p.f.Fd())); err != nil {
		return fmt.Errorf("sync pack %d: %w", p.active, err)
	}
	if p.created {
		if err := syncDirPath(p.dir); err != nil {
			return err
		}
		p.created = false
	}
	return nil
}

// packChanges is what a flush did to the packs: what it must free once
// its transaction has committed.
type packChanges struct {
	dead []packRef
	// Worked out in the transaction, done after the commit:
	punch map[[3]int64]bool // pack id, [from, to)
	// The active pack and its end that the transaction commits.
	active uint32
	end    int64
	remove []uint32
}

// apply records in tx what a flush changed: new extents, dead ones, and
// the active pack's end; it syncs the appends first. It works out what
// to free after the commit.
func (p *packs) apply(tx *bolt.Tx, added []packRef, ch *packChanges) error {
	if err := p.sync(); err != nil {
		return err
	}
	ext, err := tx.CreateBucketIfNotExists(extentsBucket)
	if err != nil {
		return err
	}
	for _, r := range added {
		if err := ext.Put(r.key(), binary.BigEndian.AppendUint32(nil, r.n)); err != nil {
			return err
		}
	}
	// The gaps are worked out while the dead extents are still listed:
	// bbolt's cursors can loop on the leaves that deletes empty within a
	// transaction, so every cursor here starts on a key that exists.
	dead := make(map[string]bool, len(ch.dead))
	for _, r := range ch.dead {
		dead[string(r.key())] = true
	}
	for _, r := range added { // a new extent is never freed, whatever index.db held before
		delete(dead, string(r.key()))
	}
	kept := ch.dead[:0]
	for _, r := range ch.dead {
		if dead[string(r.key())] {
			kept = append(kept, r)
		}
	}
	ch.dead = kept
	ch.punch = map[[3]int64]bool{}
	for _, r := range ch.dead {
		from, to := p.gap(ext, r, dead)
		from = alignBlock(from)
		to = to / packBlock * packBlock
		if from < to {
			ch.punch[[3]int64{int64(r.id), from, to}] = true
		}
	}
	emptied := map[uint32]bool{}
	for _, r := range ch.dead {
		if err := ext.Delete(r.key()); err != nil {
			return err
		}
	}
	for _, r := range ch.dead {
		if r.id != p.active && !emptied[r.id] && !p.hasLive(ext, r.id, dead) {
			emptied[r.id] = true
			ch.remove = append(ch.remove, r.id)
		}
	}
	ch.active, ch.end = p.active, p.end
	end := binary.BigEndian.AppendUint32(make([]byte, 0, 12), p.active)
	return tx.Bucket(metaBucket).Put(packEndKey, binary.BigEndian.AppendUint64(end, uint64(p.end)))
}

// gap returns the dead span around dead extent r, which ext still lists:
// from the end of the live extent before it in its pack (or the pack's
// start) to the start of the live one after it (or the pack's end).
// Extents in dead are dead.
func (p *packs) gap(ext *bolt.Bucket, r packRef, dead map[string]bool) (from, to int64) {
	to = 1 << 62 // a sealed pack: up to its end (free clamps it to the file)
	if r.id == p.active {
		to = p.end
	}
	c := ext.Cursor()
	k, _ := c.Seek(r.key())
	for k != nil && dead[string(k)] {
		k, _ = c.Next()
	}
	if k != nil && binary.BigEndian.Uint32(k) == r.id {
		to = int64(binary.BigEndian.Uint64(k[4:]))
	}
	k, v := c.Seek(r.key())
	for k != nil && dead[string(k)] {
		k, v = c.Prev()
	}
	if k != nil && binary.BigEndian.Uint32(k) == r.id && len(v) == 4 {
		from = int64(binary.BigEndian.Uint64(k[4:])) + int64(binary.BigEndian.Uint32(v))
	}
	return from, to
}

// hasLive reports whether pack id still has an extent, after the dead
// ones were deleted from ext. The cursor starts on the live extent it
// looks for, never on an emptied leaf (see apply).
func (p *packs) hasLive(ext *bolt.Bucket, id uint32, dead map[string]bool) bool {
	return hasExtents(ext, id)
}

// visible reports whether index.db, as it reads now, holds the active
// pack and end that the transaction of ch wrote: a commit that failed
// after writing its meta page.
func (p *packs) visible(db *bolt.DB, ch *packChanges) bool {
	want := binary.BigEndian.AppendUint32(make([]byte, 0, 12), ch.active)
	want = binary.BigEndian.AppendUint64(want, uint64(ch.end))
	seen := false
	db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(metaBucket); m != nil {
			seen = bytes.Equal(m.Get(packEndKey), want)
		}
		return nil
	})
	return seen
}

// committed notes that the transaction of ch committed.
func (p *packs) committed(ch *packChanges) {
	p.doneActive, p.doneEnd = ch.active, ch.end
}

// rollback drops what a flush that did not commit appended to the active
// pack, if it is still the one index.db last committed to (after a seal
// the new pack is left to the next flush, and removed by a reopen).
func (p *packs) rollback() {
	if p.active != p.doneActive {
		return
	}
	p.w.Reset(writerAt{p.f, &p.end})
	if p.f.Truncate(p.doneEnd) == nil {
		p.end = p.doneEnd
	}
}

// alignBlock rounds n up to a whole number of packBlock.
func alignBlock(n int64) int64 { return (n + packBlock - 1) / packBlock * packBlock }

// free punches out the dead gaps and removes the emptied packs of a
// committed flush, with no reader in between.
func (p *packs) free(ch *packChanges) error {
	if len(ch.punch) == 0 && len(ch.remove) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for span := range ch.punch {
		id, from, to := uint32(span[0]), span[1], span[2]
		f, done, err := p.file(id)
		if err == nil {
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil {
				to = min(to, alignBlock(fi.Size())) // a sealed pack's tail: not past its end (EFBIG)
				if from < to {
					err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, from, to-from)
				}
			}
			done()
		}
		if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
			errs = append(errs, fmt.Errorf("punch pack %d [%d, %d): %w", id, from, to, err))
		}
	}
	for _, id := range ch.remove {
		p.fmu.Lock()
		if f, ok := p.files[id]; ok {
			f.Close()
			delete(p.files, id)
		}
		p.fmu.Unlock()
		if err := os.Remove(filepath.Join(p.dir, packName(id))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove emptied pack %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// usageAge is how old an answer of allocated may be: it stats every pack.
const usageAge = 10 * time.Second

// allocated returns the bytes the packs occupy on the disk, as of at most
// usageAge ago.
func (p *packs) allocated() int64 {
	if p == nil {
		return 0
	}
	p.usageMu.Lock()
	defer p.usageMu.Unlock()
	if time.Since(p.usageAt) < usageAge {
		return p.usage
	}
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return p.usage
	}
	var total int64
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(p.dir, e.Name()), &st) == nil {
			total += st.Blocks * 512
		}
	}
	p.usage, p.usageAt = total, time.Now()
	return total
}
