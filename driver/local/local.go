package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Names of the files and directories under Config.Dir.
const (
	formatFile = "format.json"
	indexFile  = "index.db"
	shardsDir  = "shards"
	tmpDir     = "tmp"
)

// formatVersion is the version of the on-disk layout written to
// format.json on a new drive: 2 since pack files (pack.go), which a vaultd
// from before them refuses to open instead of misreading the index.
// Drives of version 1 keep their layout (value format 1, no packs).
const formatVersion = 2

// lockTimeout bounds how long Open waits for another process to release the
// lock on index.db.
const lockTimeout = time.Second

// indexPageSize is the page size of a new index.db (an existing one keeps
// the size it was created with): 4 KiB, a file-system block. Smaller
// pages store inline shards tighter (a value larger than a page takes
// whole pages of its own: 2 KiB of tail wasted on average with 4 KiB
// pages, 512 B with 1 KiB; bench TestSpace, 1.030x the ideal against
// 1.013x), but then a block holds several pages, so every commit rewrites
// live pages of older commits, and both meta pages, in the blocks it
// writes: on a device that can garble a sector being written when power
// fails, committed records could be lost, where with one page per block a
// commit writes only free pages and its meta page (review 20 H2). Tests
// set other sizes.
var indexPageSize = 4096

// recordsBucket is the bbolt bucket holding the record index.
var recordsBucket = []byte("records")

// Config configures a local Driver.
type Config struct {
	// Dir is the root directory of the drive. Open creates it if missing.
	Dir string
	// ID is the drive id written to format.json on the first Open; later
	// Opens fail if the stored id differs.
	ID driver.DriveID
	// ClusterID is the cluster the drive belongs to. Opening a drive
	// formatted for another cluster fails with driver.ErrForeignDrive.
	ClusterID string
	// Logger receives operational messages. Nil discards them.
	Logger *slog.Logger
	// NoSync skips every fsync (shard files, directories and the index).
	// It is UNSAFE: a crash or power loss can lose or tear acknowledged
	// writes. Use it only in tests and benchmarks.
	NoSync bool
}

// Validate reports whether c can be used to Open a drive.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("driver/local: config: Dir is empty")
	case c.ID == "":
		return errors.New("driver/local: config: ID is empty")
	case c.ClusterID == "":
		return errors.New("driver/local: config: ClusterID is empty")
	}
	return nil
}

// format is the content of format.json.
type format struct {
	Version   int            `json:"version"`
	ClusterID string         `json:"cluster_id"`
	DriveID   driver.DriveID `json:"drive_id"`
}

// Driver is a driver.Driver on a local directory. It is safe for concurrent
// use. Create it with Open and release it with Close.
type Driver struct {
	dir     string
	id      driver.DriveID
	cluster string
	noSync  bool
	log     *slog.Logger
	db      *bolt.DB
	// pageSize is db's page size, set with db.
	// formatVer is format.json's version, set by checkFormat.
	formatVer int
	pageSize  int64
	index     os.FileInfo // index.db as opened, to notice it being replaced
	commit    committer   // groups record mutations into shared transactions

	// shardBytes approximates the bytes of committed shard files.
	shardBytes atomic.Int64
	// lastTrim is when index pages were last unmapped (UnixNano) and
	// touched how many bytes calls may have mapped since (trim.go).
	lastTrim atomic.Int64
	touched  atomic.Int64
	// State of returning free index pages to the file system
	// (reclaim.go): the index's size at the last commit, the bytes of
	// free pages the last pass left allocated, when the next reclaim may
	// run and when index.db's allocation was last looked at (UnixNano),
	// whether one is scheduled, and whether the file system cannot.
	indexSize   atomic.Int64
	residue     atomic.Int64
	nextReclaim atomic.Int64
	lastCheck   atomic.Int64
	reclaimFrom atomic.Int64 // page where the next round's walk starts
	passFree    atomic.Int64 // free pages when the current pass began
	passYoung   atomic.Int64 // free pages the current pass left for the next (seen)
	followUp    atomic.Bool  // the next pass is the one that returns them
	// seen marks the pages the last walk over them found free (a bit per
	// page): only a page free at two walks in a row is punched. Only
	// punchFree uses it, one call at a time (seenMu).
	seenMu     sync.Mutex
	seen       []uint64
	reclaiming atomic.Bool
	noPunch    atomic.Bool

	// When the file system's free space was last looked at (UnixNano)
	// and whether it was below spaceReserve (space.go).
	spaceAt  atomic.Int64
	spaceLow atomic.Bool

	// syncedDirs holds the shard directories known to be durably linked
	// into their parents (string → struct{}).
	syncedDirs sync.Map

	// mu is held shared by every operation and exclusively by Close and
	// by the state changes of Probe, so both wait for operations in
	// flight.
	mu     sync.RWMutex
	end    func()      // mu.RUnlock, bound once: begin returned a new closure per call
	closed atomic.Bool // set under mu held exclusively
	// offline, set and cleared under mu held exclusively, is why the
	// drive cannot serve (db is nil then); nil while it is online.
	offline error
	// probeMu serialises Probe calls.
	probeMu sync.Mutex

	wmu     sync.Mutex // guards writers
	writers map[*shardWriter]struct{}
}

var _ driver.Driver = (*Driver)(nil)

// Open opens the drive in c.Dir, formatting it on first use. It removes
// leftovers of interrupted shard writes from tmp/ and counts the bytes of
// committed shards, which takes a walk of shards/.
func Open(ctx context.Context, c Config) (*Driver, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("driver/local: open %s: %w", c.Dir, err)
	}
	d := newDriver(c)
	if err := d.open(ctx); err != nil {
		d.commit.log.close()
		d.commit.packs.close()
		if d.db != nil {
			d.db.Close()
		}
		return nil, fmt.Errorf("driver/local: open %s: %w", c.Dir, err)
	}
	registerTrim(d)
	d.log.Info("drive opened", "shard_bytes", d.shardBytes.Load())
	return d, nil
}

func (d *Driver) open(ctx context.Context) error {
	created, err := d.mkdir(d.dir, true)
	if err != nil {
		return err
	}
	if created {
		if err := d.syncDir(filepath.Dir(filepath.Clean(d.dir))); err != nil {
			return err
		}
	}

	// Check or write the format record before index.db exists, so a crash
	// never leaves an index without a format record.
	switch err := d.checkFormat(); {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Lstat(filepath.Join(d.dir, indexFile)); err == nil {
			return fmt.Errorf("%s exists but %s is missing; refusing to format", indexFile, formatFile)
		}
		if err := d.writeFormat(); err != nil {
			return err
		}
	case err != nil:
		return err
	}

	db, err := bolt.Open(filepath.Join(d.dir, indexFile), 0o600, &bolt.Options{
		Timeout:  lockTimeout,
		NoSync:   d.noSync,
		PageSize: indexPageSize,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("%s is locked: drive in use by another process: %w", indexFile, err)
	}
	if err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	d.db = db
	d.commit.db = db
	// Info reads the mapping without bbolt's mmap lock: safe only before
	// anyone else uses db.
	d.pageSize = int64(db.Info().PageSize)
	if d.index, err = os.Stat(filepath.Join(d.dir, indexFile)); err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	// Another process may have formatted the drive between our check and
	// taking the lock: check again now that we own it.
	if err := d.checkFormat(); err != nil {
		return err
	}
	var format2 bool
	if err := db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if tx.Bucket(recordsBucket) == nil && d.formatVer >= 2 {
			// A new index: large record data goes to pack files.
			if err := meta.Put(valueFormatKey, []byte{2}); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(extentsBucket); err != nil {
				return err
			}
		}
		switch v := meta.Get(valueFormatKey); {
		case v == nil:
		case len(v) == 1 && v[0] == 2:
			format2 = true
		default:
			return fmt.Errorf("index value format %x: %w", v, driver.ErrCorrupt)
		}
		_, err = tx.CreateBucketIfNotExists(recordsBucket)
		return err
	}); err != nil {
		return fmt.Errorf("init index: %w", err)
	}
	if format2 {
		if err := db.View(func(tx *bolt.Tx) (err error) {
			d.commit.packs, err = openPacks(d.dir, d.noSync, tx)
			return err
		}); err != nil {
			return err
		}
	}
	if err := d.commit.openLog(d.dir, d.noSync, d.log); err != nil {
		return err
	}

	if err := d.cleanTmp(); err != nil {
		return err
	}
	if _, err := d.mkdir(filepath.Join(d.dir, shardsDir), false); err != nil {
		return err
	}
	// The shards directory must be durably linked even when it already
	// existed: a previous run may have crashed before syncing it.
	if err := d.syncDir(d.dir); err != nil {
		return err
	}
	return d.countShards(ctx)
}

// mkdir creates dir (and its parents if all is set) and reports whether it
// did not exist before.
func (d *Driver) mkdir(dir string, all bool) (bool, error) {
	if _, err := os.Stat(dir); err == nil {
		return false, nil
	}
	mk := os.Mkdir
	if all {
		mk = os.MkdirAll
	}
	if err := mk(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// checkFormat reads format.json and compares it with the configuration. It
// returns an error wrapping fs.ErrNotExist if the file is missing.
func (d *Driver) checkFormat() error {
	b, err := os.ReadFile(filepath.Join(d.dir, formatFile))
	if err != nil {
		return err
	}
	var f format
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%s: %w: %v", formatFile, driver.ErrCorrupt, err)
	}
	switch {
	case f.Version != 1 && f.Version != formatVersion:
		return fmt.Errorf("%s: unsupported format version %d (want 1 or %d)", formatFile, f.Version, formatVersion)
	case f.ClusterID != d.cluster:
		return fmt.Errorf("%s: cluster id %q, configured %q: %w", formatFile, f.ClusterID, d.cluster, driver.ErrForeignDrive)
	case f.DriveID != d.id:
		return fmt.Errorf("%s: drive id mismatch: drive is %q, configured %q", formatFile, f.DriveID, d.id)
	}
	d.formatVer = f.Version
	return nil
}

// writeFormat writes format.json atomically.
func (d *Driver) writeFormat() error {
	v := formatVersion
	if !packsEnabled {
		v = 1
	}
	b, err := json.Marshal(format{Version: v, ClusterID: d.cluster, DriveID: d.id})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(d.dir, formatFile+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", formatFile, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	_, err = f.Write(append(b, '\n'))
	if err == nil && !d.noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(d.dir, formatFile))
	}
	if err == nil {
		err = d.syncDir(d.dir)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", formatFile, err)
	}
	return nil
}

// cleanTmp removes everything left in tmp/ by writes a crash interrupted,
// and creates tmp/ if missing.
func (d *Driver) cleanTmp() error {
	dir := filepath.Join(d.dir, tmpDir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clean %s: %w", tmpDir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", tmpDir, err)
	}
	// Also remove format.json temp files of an interrupted first Open.
	if tmps, err := filepath.Glob(filepath.Join(d.dir, formatFile+".tmp*")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	return nil
}

// countShards initialises shardBytes by walking shards/.
func (d *Driver) countShards(ctx context.Context) error {
	var total int64
	err := filepath.WalkDir(filepath.Join(d.dir, shardsDir), func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("count shards: %w", err)
	}
	d.shardBytes.Store(total)
	return nil
}

// syncDir fsyncs directory dir, unless NoSync is set.
func (d *Driver) syncDir(dir string) error {
	if d.noSync {
		return nil
	}
	return syncDirPath(dir)
}

// syncDirPath fsyncs the directory dir.
func syncDirPath(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// Close aborts shard writes in progress, waits for other calls in flight
// and closes the index. Afterwards every method returns driver.ErrOffline.
// Readers returned by ReadShard stay usable until closed.
func (d *Driver) Close() error {
	unregisterTrim(d)
	d.mu.Lock()
	if d.closed.Load() {
		d.mu.Unlock()
		return nil
	}
	d.closed.Store(true)
	d.mu.Unlock()

	errs := d.abortWriters()
	if d.db != nil {
		if err := d.commit.drain(); err != nil {
			errs = append(errs, fmt.Errorf("driver/local: close index: %w", err))
		}
		if err := d.commit.log.close(); err != nil {
			errs = append(errs, fmt.Errorf("driver/local: close record log: %w", err))
		}
		d.commit.packs.close()
		if err := d.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("driver/local: close index: %w", err))
		}
	}
	d.log.Info("drive closed")
	return errors.Join(errs...)
}

// abortWriters aborts the shard writes in progress.
func (d *Driver) abortWriters() []error {
	d.wmu.Lock()
	ws := make([]*shardWriter, 0, len(d.writers))
	for w := range d.writers {
		ws = append(ws, w)
	}
	d.wmu.Unlock()
	var errs []error
	for _, w := range ws {
		if err := w.Abort(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// begin starts an operation: it checks ctx and that the drive is open, and
// holds d.mu shared until the returned function is called.
func (d *Driver) begin(ctx context.Context) (end func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.RLock()
	if d.closed.Load() {
		d.mu.RUnlock()
		return nil, driver.ErrOffline
	}
	if d.offline != nil {
		err := d.offline
		d.mu.RUnlock()
		return nil, fmt.Errorf("%w: %w", driver.ErrOffline, err)
	}
	return d.end, nil
}

// Info returns the drive's identity and usage. Usage.Used is approximate
// (see the package documentation).
func (d *Driver) Info(ctx context.Context) (driver.Info, error) {
	end, err := d.begin(ctx)
	if err != nil {
		return driver.Info{}, fmt.Errorf("driver/local: info: %w", err)
	}
	defer end()
	var st unix.Statfs_t
	if err := unix.Statfs(d.dir, &st); err != nil {
		return driver.Info{}, fmt.Errorf("driver/local: info: statfs %s: %w", d.dir, err)
	}
	var indexSize int64
	if err := d.db.View(func(tx *bolt.Tx) error {
		indexSize = tx.Size()
		return nil
	}); err != nil {
		return driver.Info{}, fmt.Errorf("driver/local: info: %w", err)
	}
	used := max(d.shardBytes.Load(), 0) + indexSize + d.commit.packs.allocated()
	bsize := uint64(st.Bsize)
	return driver.Info{
		ID:        d.id,
		ClusterID: d.cluster,
		Class:     driver.ClassLocal,
		Usage: driver.Usage{
			Total: st.Blocks * bsize,
			Free:  st.Bavail * bsize,
			Used:  uint64(used),
		},
	}, nil
}

// noSpace returns err marked with driver.ErrNoSpace if it is ENOSPC or
// EDQUOT (a full file system or an exhausted quota), and err otherwise.
func noSpace(err error) error {
	if isNoSpace(err) && !errors.Is(err, driver.ErrNoSpace) {
		return fmt.Errorf("%w: %w", driver.ErrNoSpace, err)
	}
	return err
}

// isNoSpace reports whether err is ENOSPC or EDQUOT.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
