package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/vaultaire/vaultaire/driver"
)

// probeFile is the name, under tmp/, of the file Probe writes to check that
// the drive takes writes.
const probeFile = "probe"

// Attach returns a Driver for c.Dir like Open, except that a drive which
// cannot be opened now (a failed, missing or read-only disk, a path that
// is not a directory, a drive formatted for another cluster or carrying
// another drive id) is returned offline instead of failing: every call
// then fails with driver.ErrOffline and Err says why, until a Probe finds
// the drive usable. Attach fails only for an invalid Config or a done ctx.
// A node can so start with one bad drive of an erasure set and take the
// drive in when it recovers.
func Attach(ctx context.Context, c Config) (*Driver, error) {
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
			d.db = nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("driver/local: open %s: %w", c.Dir, err)
		}
		d.offline = err
		d.log.Error("drive offline: cannot open it; will retry", "err", err)
		return d, nil
	}
	d.log.Info("drive opened", "shard_bytes", d.shardBytes.Load())
	return d, nil
}

// newDriver returns an unopened Driver for c.
func newDriver(c Config) *Driver {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		dir:     c.Dir,
		id:      c.ID,
		cluster: c.ClusterID,
		noSync:  c.NoSync,
		log:     log.With("drive", string(c.ID), "dir", c.Dir),
		writers: make(map[*shardWriter]struct{}),
	}
	d.end = d.mu.RUnlock
	d.commit.onIdle = d.flushIdle
	d.commit.afterFlush = d.afterFlush
	d.commit.indexSize = &d.indexSize
	return d
}

// Err returns nil if the drive is online, and otherwise why it is not:
// driver.ErrOffline after Close, or what made the last Open or Probe fail
// (wrapping driver.ErrForeignDrive for a drive of another cluster).
func (d *Driver) Err() error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed.Load() {
		return driver.ErrOffline
	}
	return d.offline
}

// Probe checks that the drive serves and takes it offline or back online
// accordingly; it returns Err afterwards. An online drive is healthy if
// its format record still names this cluster and drive, index.db is still
// the file the Driver has open, and a small file can be written, synced
// and removed under tmp/. One that fails goes offline: writes in progress
// are aborted and the index is closed. An offline drive is opened again as
// by Open, which recreates the layout (format record, index, shards/,
// tmp/) of a directory that has come back empty, such as a replaced disk
// mounted where the old one was, with the configured cluster and drive
// ids. A drive whose format record names another cluster or drive, or an
// index without a format record, stays offline: it is never formatted
// over. Probe is safe to call concurrently with other calls; the server
// calls it periodically.
func (d *Driver) Probe(ctx context.Context) error {
	d.probeMu.Lock()
	defer d.probeMu.Unlock()
	if d.closed.Load() {
		return driver.ErrOffline
	}
	d.mu.RLock()
	online := d.offline == nil
	d.mu.RUnlock()
	if online {
		err := d.check()
		if err == nil {
			return nil
		}
		d.setOffline(err)
	}
	return d.reopen(ctx)
}

// check reports why an open drive cannot serve, or nil.
func (d *Driver) check() error {
	end, err := d.begin(context.Background())
	if err != nil {
		return err
	}
	defer end()
	if err := d.checkFormat(); err != nil {
		return err
	}
	fi, err := os.Stat(filepath.Join(d.dir, indexFile))
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if !os.SameFile(fi, d.index) {
		return fmt.Errorf("%s was replaced behind the drive's back", indexFile)
	}
	if err := d.commit.logBroken(); err != nil {
		return err // reopened, the log is replayed afresh
	}
	return d.writeProbe()
}

// writeProbe writes, syncs and removes a small file under tmp/.
func (d *Driver) writeProbe() error {
	path := filepath.Join(d.dir, tmpDir, probeFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		// tmp/ alone was removed (shard writes recreate it too).
		if merr := os.Mkdir(filepath.Join(d.dir, tmpDir), 0o700); merr == nil || errors.Is(merr, fs.ErrExist) {
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		}
	}
	if isNoSpace(err) {
		d.log.Warn("drive full", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("write probe: %w", err)
	}
	_, err = f.Write([]byte("vaultaire probe\n"))
	if err == nil && !d.noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(path); err == nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	if isNoSpace(err) {
		// A full drive still serves reads and deletes (which free
		// space): it stays online and its writes fail with
		// driver.ErrNoSpace.
		d.log.Warn("drive full", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("write probe: %w", err)
	}
	return nil
}

// setOffline takes the drive offline for err: it waits for the calls in
// flight, aborts the shard writes in progress and closes the index.
func (d *Driver) setOffline(err error) {
	d.mu.Lock()
	if d.closed.Load() || d.offline != nil {
		d.mu.Unlock()
		return
	}
	d.offline = err
	db := d.db
	// What the log holds and index.db not is replayed from the log by
	// the next open.
	if db != nil {
		d.commit.waitFlush()
		d.commit.log.close()
		d.commit.packs.close()
	}
	d.db, d.commit.db = nil, nil
	d.commit.memMu.Lock()
	d.commit.cache = nil // stale once the next open replays the log; reopen takes that open's
	d.commit.memMu.Unlock()
	d.mu.Unlock()
	d.abortWriters()
	if db != nil {
		db.Close()
	}
	d.log.Error("drive offline", "err", err)
}

// reopen opens an offline drive again and brings it online, or records why
// it cannot be.
func (d *Driver) reopen(ctx context.Context) error {
	// Open into a fresh Driver, so that the walk of shards/ does not hold
	// up the calls failing meanwhile; then take over what it opened.
	n := newDriver(Config{Dir: d.dir, ID: d.id, ClusterID: d.cluster, NoSync: d.noSync})
	n.log = d.log
	err := n.open(ctx)
	if err != nil {
		n.commit.log.close()
		n.commit.packs.close()
		if n.db != nil {
			n.db.Close()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		if err == nil {
			n.commit.log.close()
			n.commit.packs.close()
			n.db.Close()
		}
		return driver.ErrOffline
	}
	if err != nil {
		if ctx.Err() == nil {
			d.offline = err
		}
		return d.offline
	}
	d.db, d.commit.db, d.index, d.pageSize, d.commit.packs = n.db, n.db, n.index, n.pageSize, n.commit.packs
	d.commit.log, d.commit.seq, d.commit.mem, d.commit.memBytes = n.commit.log, n.commit.seq, n.commit.mem, 0
	d.commit.flushing, d.commit.flushed, d.commit.flushErr = nil, nil, nil
	// The new open's record cache (empty), never the one from before the
	// drive went offline: the replay of the log, or a replaced disk, has
	// changed index.db since (cache.go).
	d.commit.memMu.Lock()
	d.commit.cache = n.commit.cache
	d.commit.memMu.Unlock()
	d.shardBytes.Store(n.shardBytes.Load())
	d.syncedDirs.Clear()
	d.offline = nil
	d.log.Info("drive online", "shard_bytes", d.shardBytes.Load())
	return nil
}
