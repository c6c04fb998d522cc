package remote

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// segment is a log object: its bytes hold index entries and the bytes of
// small shards, of which live are still referenced.
type segment struct {
	seq  uint64
	size int64 // object bytes
	live int64 // bytes of shards the index still points into it
}

// errMoved: a compaction move found the shard changed meanwhile.
var errMoved = errors.New("shard changed during compaction")

// CompactStats reports what one Compact did.
type CompactStats struct {
	Snapshot     bool  // a new snapshot of the index was written
	Deleted      int   // log objects deleted (dead, or emptied by an earlier run)
	Rewritten    int   // sparse log objects whose live shards were moved
	MovedBytes   int64 // shard bytes moved
	ReclaimBytes int64 // bytes of the log objects queued for deletion
}

// Compact shrinks what the drive keeps in the bucket:
//
//   - it writes a snapshot of the whole index (records and shard locations)
//     as P/snap/<seq>-<instance>, so Open reads one object plus the log
//     objects written after it instead of every log object, and deletes
//     the previous snapshot;
//   - a log object the snapshot covers and which holds no live shard bytes
//     is deleted; one whose live shard bytes are below CompactRatio of its
//     size has its live shards moved (one GET of it, then ordinary group
//     commits, which pack them into log objects of up to MaxBatchBytes)
//     and is deleted.
//
// Deletions happen on the next run, so reads that looked a shard up before
// it moved have a full CompactInterval to finish. The background loop
// calls it every CompactInterval when SnapshotEvery log objects were
// written since the last snapshot, or when sparse or dead log objects hold
// at least CompactMinReclaim bytes; Compact itself always snapshots when
// anything was written since the last snapshot.
func (d *Driver) Compact(ctx context.Context) (CompactStats, error) {
	if err := d.refuseWrite("compact"); err != nil {
		return CompactStats{}, err
	}
	if err := d.begin(ctx); err != nil {
		return CompactStats{}, fmt.Errorf("driver/remote: compact: %w", err)
	}
	return d.compact(ctx, true)
}

func (d *Driver) compact(ctx context.Context, force bool) (CompactStats, error) {
	var st CompactStats
	// Waited for within ctx: lost()'s reload holds compactMu for its
	// whole run, minutes on a large drive (review 29r).
	for !d.compactMu.TryLock() {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return st, fmt.Errorf("driver/remote: compact: %w", ctx.Err())
		}
	}
	defer d.compactMu.Unlock()

	// Deletions queued by the previous run.
	pending := d.pendingDel
	d.pendingDel = nil
	for _, k := range pending {
		if err := d.be.delete(ctx, k); err != nil && !errors.Is(err, driver.ErrNotFound) {
			d.pendingDel = append(d.pendingDel, k)
			return st, fmt.Errorf("driver/remote: compact: %w", err)
		}
		st.Deleted++
	}

	d.mu.RLock()
	since, reclaim := d.since, int64(0)
	for _, sg := range d.segs {
		if sg.seq <= d.applied && sg.live < int64(d.cfg.CompactRatio*float64(sg.size)) {
			reclaim += sg.size - sg.live
		}
	}
	d.mu.RUnlock()
	if since == 0 || !force && since < d.cfg.SnapshotEvery && reclaim < d.cfg.CompactMinReclaim {
		return st, nil
	}
	if err := d.snapshot(ctx); err != nil {
		return st, fmt.Errorf("driver/remote: compact: %w", err)
	}
	st.Snapshot = true

	// Log objects the snapshot covers: dead ones go, sparse ones are
	// rewritten.
	type cand struct {
		key string
		sg  segment
	}
	var dead, sparse []cand
	d.mu.Lock()
	for k, sg := range d.segs {
		switch {
		case sg.seq > d.snapSeq:
		case sg.live <= 0:
			dead = append(dead, cand{k, *sg})
			delete(d.segs, k)
		case sg.live < int64(d.cfg.CompactRatio*float64(sg.size)):
			sparse = append(sparse, cand{k, *sg})
		}
	}
	d.mu.Unlock()
	for _, c := range dead {
		d.pendingDel = append(d.pendingDel, c.key)
		st.ReclaimBytes += c.sg.size
	}
	slices.SortFunc(sparse, func(a, b cand) int { return cmp.Compare(a.sg.live, b.sg.live) })
	// Move the live shards of up to MaxBatchBytes of sparse log objects at
	// a time, queued together so that they pack into few new ones.
	for len(sparse) > 0 {
		var batch []string
		var ops []*op
		var live int64
		for len(sparse) > 0 && (len(batch) == 0 || live+sparse[0].sg.live <= d.cfg.MaxBatchBytes) {
			c := sparse[0]
			sparse = sparse[1:]
			o, err := d.moveOps(ctx, c.key, c.sg.size)
			if err != nil {
				return st, fmt.Errorf("driver/remote: compact %s: %w", c.key, err)
			}
			batch, ops, live = append(batch, c.key), append(ops, o...), live+c.sg.live
		}
		if err := d.submitAll(ctx, ops); err != nil {
			return st, fmt.Errorf("driver/remote: compact: %w", err)
		}
		for _, o := range ops {
			switch {
			case o.err == nil:
				st.MovedBytes += o.e.size
			case !errors.Is(o.err, errMoved):
				return st, fmt.Errorf("driver/remote: compact: %w", o.err)
			}
		}
		st.Rewritten += len(batch)
		d.mu.Lock()
		for _, k := range batch {
			if sg := d.segs[k]; sg != nil && sg.live <= 0 {
				delete(d.segs, k)
				d.pendingDel = append(d.pendingDel, k)
				st.ReclaimBytes += sg.size
			}
		}
		d.mu.Unlock()
	}
	return st, nil
}

// snapshot writes the index as a snapshot object and deletes the previous
// one.
func (d *Driver) snapshot(ctx context.Context) error {
	d.mu.RLock()
	seq := d.applied
	if seq == d.snapSeq && d.snapKey != "" {
		d.mu.RUnlock()
		return nil
	}
	entries := make([]*entry, 0, d.records.Len()+len(d.shards))
	d.records.Ascend(func(it recItem) bool {
		entries = append(entries, &entry{op: opRecPut, key: it.key, version: it.version, data: it.data})
		return true
	})
	for s, l := range d.shards {
		entries = append(entries, &entry{op: opShardRef, shard: s, key: l.obj[len(d.cfg.Prefix):], off: l.off, size: l.size, inline: l.inline})
	}
	since := d.since
	d.mu.RUnlock()
	key := d.key(fmt.Sprintf("snap/%016x-%s", seq, d.instance))
	if err := d.be.put(ctx, key, encodeLog(entries)); err != nil {
		return err
	}
	d.mu.Lock()
	old := d.snapKey
	d.snapSeq, d.snapKey = seq, key
	d.since -= since
	d.mu.Unlock()
	if old != "" && old != key {
		if err := d.be.delete(ctx, old); err != nil && !errors.Is(err, driver.ErrNotFound) {
			d.log.Warn("remote drive: cannot delete an old snapshot", "object", old, "err", err)
		}
	}
	return nil
}

// moveOps reads log object key and returns the ops that move its live
// shards into new log objects (each applies only if the shard has not
// changed meanwhile).
func (d *Driver) moveOps(ctx context.Context, key string, size int64) ([]*op, error) {
	var ops []*op
	d.mu.RLock()
	for s, l := range d.shards {
		if l.inline && l.obj == key {
			loc := l
			ops = append(ops, &op{e: entry{op: opShardInline, shard: s, size: l.size}, onlyIf: &loc})
		}
	}
	d.mu.RUnlock()
	if len(ops) == 0 {
		return nil, nil
	}
	body, err := d.be.getBytes(ctx, key, 0, size)
	if err != nil {
		return nil, err
	}
	if int64(len(body)) != size {
		return nil, fmt.Errorf("read %d of %d bytes: %w", len(body), size, driver.ErrCorrupt)
	}
	for _, o := range ops {
		off, n := o.onlyIf.off, o.onlyIf.size
		if off+n > size {
			return nil, fmt.Errorf("shard %v at %d+%d past the end: %w", o.e.shard, off, n, driver.ErrCorrupt)
		}
		o.e.data = bytes.Clone(body[off : off+n]) // not pinning the whole object
	}
	return ops, nil
}

// compactLoop runs compaction every CompactInterval until Close.
func (d *Driver) compactLoop() {
	if d.cfg.CompactInterval < 0 || d.cfg.ReadOnly {
		return
	}
	t := time.NewTicker(d.cfg.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-d.closing:
			return
		case <-t.C:
		}
		if !d.loaded.Load() || d.be.br.isOpen() {
			continue
		}
		st, err := d.compact(d.closeCtx, false)
		if err != nil {
			d.log.Warn("remote drive: compaction failed (retried next interval)", "err", err)
		} else if st.Snapshot || st.Deleted > 0 {
			d.log.Info("remote drive: compacted", "deleted", st.Deleted, "rewritten", st.Rewritten, "moved_bytes", st.MovedBytes, "reclaim_bytes", st.ReclaimBytes)
		}
	}
}
