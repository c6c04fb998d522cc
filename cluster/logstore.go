package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// The Raft log and stable store: one bbolt file, DIR/raft.db, through
// raft-boltdb (every append fsynced before raft counts it).
//
// Until December 2026 the log lived in DIR/wal (hashicorp/raft-wal
// v0.4.0). That version cannot reopen a log whose tail raft truncated (as
// it does when it clears a conflicting suffix after a leader change):
// "sealed segment has no index block", and the node never started again
// (hashicorp/raft-wal#31; the fixed release is not available here). A node
// that finds DIR/wal and no DIR/raft.db copies the log and the stable
// store's keys over once, then renames DIR/wal to DIR/wal.migrated.

const (
	logStoreFile = "raft.db"
	oldWALDir    = "wal"
	// logStoreOpenTimeout bounds the wait for the file lock, so a second
	// Open of the same directory fails instead of hanging.
	logStoreOpenTimeout = 5 * time.Second
)

// The keys raft keeps in its stable store, as numbers and as bytes.
var (
	uint64Keys = [][]byte{[]byte("CurrentTerm"), []byte("LastVoteTerm")}
	bytesKeys  = [][]byte{[]byte("LastVoteCand")}
)

// logStore is the Raft log and stable store of a node.
type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// openLogStore opens (creating if needed) the log store under dir,
// migrating a log left by raft-wal first.
func openLogStore(dir string) (logStore, error) {
	path := filepath.Join(dir, logStoreFile)
	_, statErr := os.Stat(path)
	fresh := errors.Is(statErr, os.ErrNotExist)
	if statErr != nil && !fresh {
		return nil, fmt.Errorf("cluster: raft log %s: %w", path, statErr)
	}
	old := filepath.Join(dir, oldWALDir)
	migrate := false
	if fresh {
		if ents, err := os.ReadDir(old); err == nil && len(ents) > 0 {
			migrate = true
		}
	}
	// Migrate into a temporary file, renamed into place once complete, so
	// a crash mid-way leaves the old log authoritative.
	target := path
	if migrate {
		target = path + ".migrating"
		os.Remove(target)
	}
	bs, err := raftboltdb.New(raftboltdb.Options{Path: target, BoltOptions: &bbolt.Options{Timeout: logStoreOpenTimeout}})
	if err != nil {
		return nil, fmt.Errorf("cluster: open raft log %s: %w", target, err)
	}
	if !migrate {
		return bs, nil
	}
	if err := copyWAL(old, bs); err != nil {
		bs.Close()
		os.Remove(target)
		return nil, err
	}
	if err := bs.Close(); err != nil {
		return nil, fmt.Errorf("cluster: migrate raft log: %w", err)
	}
	if err := os.Rename(target, path); err != nil {
		return nil, fmt.Errorf("cluster: migrate raft log: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("cluster: migrate raft log: %w", err)
	}
	if err := os.Rename(old, old+".migrated"); err != nil {
		return nil, fmt.Errorf("cluster: migrate raft log: %w", err)
	}
	bs, err = raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: logStoreOpenTimeout}})
	if err != nil {
		return nil, fmt.Errorf("cluster: open raft log %s: %w", path, err)
	}
	return bs, nil
}

// copyWAL copies every log entry and the stable keys of the raft-wal log
// in dir into dst.
func copyWAL(dir string, dst logStore) (err error) {
	defer func() {
		// raft-wal panics on some damaged logs instead of failing.
		if r := recover(); r != nil {
			err = fmt.Errorf("cluster: migrate raft log %s: the old log cannot be read (%v); restore this node from its peers (remove its raft directory and join again)", dir, r)
		}
	}()
	meta := &metadb.BoltMetaDB{}
	defer meta.Close() // WAL.Close leaves its meta store open
	src, err := wal.Open(dir, wal.WithMetaStore(meta))
	if err != nil {
		return fmt.Errorf("cluster: migrate raft log %s: %w", dir, err)
	}
	defer src.Close()
	first, err := src.FirstIndex()
	if err != nil {
		return fmt.Errorf("cluster: migrate raft log: %w", err)
	}
	last, err := src.LastIndex()
	if err != nil {
		return fmt.Errorf("cluster: migrate raft log: %w", err)
	}
	const batch = 256
	var logs []*raft.Log
	for i := first; i <= last && last > 0; i++ {
		l := new(raft.Log)
		if err := src.GetLog(i, l); err != nil {
			return fmt.Errorf("cluster: migrate raft log: entry %d: %w", i, err)
		}
		logs = append(logs, l)
		if len(logs) == batch || i == last {
			if err := dst.StoreLogs(logs); err != nil {
				return fmt.Errorf("cluster: migrate raft log: %w", err)
			}
			logs = logs[:0]
		}
	}
	for _, k := range uint64Keys {
		if v, err := src.GetUint64(k); err == nil && v != 0 {
			if err := dst.SetUint64(k, v); err != nil {
				return fmt.Errorf("cluster: migrate raft log: %w", err)
			}
		}
	}
	for _, k := range bytesKeys {
		if v, err := src.Get(k); err == nil && len(v) > 0 {
			if err := dst.Set(k, v); err != nil {
				return fmt.Errorf("cluster: migrate raft log: %w", err)
			}
		}
	}
	return nil
}

// syncDir fsyncs a directory, making renames in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
