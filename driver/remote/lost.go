package remote

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// A lost format.json.
//
// Probe's HEAD of format.json answering 404 means the bucket lost the
// drive's objects (a provider incident, a lifecycle rule, someone's
// clean-up) while the in-memory index still lists them, so reads and
// scans see nothing missing and nothing is healed (attack 27 F1). Once a
// second HEAD lostConfirm later confirms it (a 404 could be a provider's
// hiccup), lost starts a reload of the index from the bucket, as Open
// reads it, and deletes from it, through the log like any deletion, the
// shards whose objects the bucket no longer lists (a snapshot written
// since the loss copied the stale index: review 27r R2); only then does
// it write format.json again, so that a step that fails leaves it
// missing and the next probe starts another (R1). What was lost is then
// missing from the drive, as on a replaced disk, and the scanner and the
// healer refill it; what was written after the loss stays.
//
// The reload lists log/, snap/ and obj/ and reads the snapshot and every
// log object after it: on a drive of hundreds of thousands of objects,
// minutes. So it runs on closeCtx, owning lostMu (no verification step,
// no second reload), and not under a probe's deadline: the probe that
// started it and the later ones wait for it within their own contexts
// (joinLost) and report the drive offline meanwhile, so that the
// engine's heals are retried once it is back (review 27r3 S2, remote
// 29). Writes go on while it reads, without waiting for it:
//
//   - Under flushMu, so between two flushes, it notes the last sequence
//     given to a log object, upTo, and starts the journal: each flush
//     after that records, under d.mu, the entries it applied (journaled).
//     Every log object up to upTo was written, or failed, before.
//   - Without flushMu it lists log/, snap/ and obj/ and reads, into an
//     index of its own, the newest snapshot and the log objects after it
//     up to upTo, ignoring those past it, written during the listing (or
//     unacknowledged: their PUT failed). compactMu, held throughout, keeps
//     compaction from writing a snapshot, moving shards or deleting log
//     objects meanwhile.
//   - The shards of that index whose object the listing lacks are the
//     lost ones: every object that index points to was written before
//     upTo's log object, so before the listing began.
//   - Under d.mu, briefly (no request), it applies the journal to its
//     index in order, exactly as replaying those log objects would, and
//     swaps the index in; a lost shard stays lost only where the merged
//     index still has it where it was lost (a write during the reload may
//     have replaced or deleted it). A flush applies its log object under
//     d.mu too, before the swap (then it is in the journal) or after it
//     (then to the new index): once either way, so the swap need not
//     wait for a flush's PUT in flight.
//   - It deletes those through the log, each only if the shard is still
//     there (onlyIf: a write between the swap and the deletion's flush
//     wins), and then writes format.json again.
//
// So every write acknowledged after the loss is in the reloaded index:
// before upTo its log object is read from the bucket; after it, the
// journal has it. One listing of each prefix serves both the reload and
// the search for lost shards. While the reload runs, reads are answered
// from the old index (what the bucket lost still listed, as before the
// loss was found); memory holds both indexes until the swap, plus the
// journal's records (inline shards' bytes are not kept).

// lostRun is a reload after the loss of format.json, on closeCtx.
type lostRun struct {
	done    chan struct{}
	dropped int   // lost shards deleted from the index, once done
	err     error // once done is closed
}

// journaled is a log object flushed while a reload runs: the entries it
// applied, in order (inline shards without their bytes).
type journaled struct {
	key        string
	seq        uint64
	size, base int64 // object bytes; where its data section starts
	entries    []entry
}

// lost handles a backend that answers but no longer holds the drive's
// format.json (see above). It reports the drive offline until the reload
// is done and format.json written again, and for that probe: the next
// one's HEAD brings it back.
func (d *Driver) lost(ctx context.Context) error {
	if d.cfg.Fence != nil {
		if err := d.cfg.Fence.Fence(ctx); err != nil {
			// Another node owns the drive: the loss is its to handle
			// (a reload here would read the whole bucket at every probe
			// and fail at its first write; review 29r), as verifyStep.
			return lostOffline("%v: %v", ErrFenced, err)
		}
	}
	if !d.lostMu.TryLock() {
		if r := d.lrun.Load(); r != nil {
			return d.joinLost(ctx, r)
		}
		return lostOffline("being handled")
	}
	handed := false
	defer func() {
		if !handed {
			d.lostMu.Unlock()
		}
	}()
	select {
	case <-time.After(lostConfirm):
	case <-ctx.Done():
		return lostOffline("%v", ctx.Err())
	}
	hctx, cancel := context.WithTimeout(ctx, d.cfg.OpTimeout)
	_, err := d.be.s3HeadDirect(hctx, d.key("format.json"))
	cancel()
	switch {
	case err == nil:
		return lostOffline("answered 404, then found")
	case !isNotFound(err):
		return lostOffline("answered 404, then %v", err)
	}
	r := &lostRun{done: make(chan struct{})}
	d.lrun.Store(r)
	handed = d.goBG(func() { // the reload unlocks lostMu when it is done
		r.dropped, r.err = d.reloadLost(d.closeCtx)
		close(r.done)
		d.lrun.CompareAndSwap(r, nil)
		d.lostMu.Unlock()
	})
	if !handed {
		d.lrun.CompareAndSwap(r, nil)
		return lostOffline("closed")
	}
	d.log.Error("remote drive: format.json is gone from the bucket: its data was lost; reloading the index from what the bucket holds, for heal to refill the rest")
	return d.joinLost(ctx, r)
}

// joinLost waits for reload r within ctx and reports the drive offline.
func (d *Driver) joinLost(ctx context.Context, r *lostRun) error {
	select {
	case <-r.done:
		if r.err != nil {
			return lostOffline("%v", r.err)
		}
		return lostOffline("the index reloaded, %d lost shards deleted from it, format.json written again", r.dropped)
	case <-ctx.Done():
		return lostOffline("reloading the index, under way past the probe: %v", ctx.Err())
	}
}

func lostOffline(format string, a ...any) error {
	return fmt.Errorf("driver/remote: probe: %w: format.json lost: %s", driver.ErrOffline, fmt.Sprintf(format, a...))
}

// reloadLost reloads the index, deletes the lost shards from it and
// writes format.json again (see above); it returns how many shards it
// deleted. It runs under lostMu, on ctx (closeCtx).
func (d *Driver) reloadLost(ctx context.Context) (int, error) {
	for !d.compactMu.TryLock() {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return 0, fmt.Errorf("reloading the index: %w", ctx.Err())
		}
	}
	defer d.compactMu.Unlock()
	d.flushMu.Lock()
	upTo := d.seq.Load()
	d.mu.Lock()
	d.journaling, d.journal = true, nil
	d.mu.Unlock()
	d.flushMu.Unlock()
	defer func() {
		d.mu.Lock()
		d.journaling, d.journal = false, nil
		d.mu.Unlock()
	}()
	var missing map[driver.Shard]shardLoc
	var err error
	for attempt := 1; ; attempt++ {
		missing, err = d.reloadUpTo(ctx, upTo)
		if err == nil || !errors.Is(err, driver.ErrNotFound) || attempt == 3 {
			break
		}
		// An object listed and gone before its GET: lost meanwhile.
	}
	if err != nil {
		return 0, fmt.Errorf("reloading the index: %w", err)
	}
	d.pendingDel = nil // queued against the old index: the reloaded one may read from them (what is dead there, compaction finds again)
	if len(missing) > 0 {
		ops := make([]*op, 0, len(missing))
		for sh, loc := range missing {
			ops = append(ops, &op{e: entry{op: opShardDel, shard: sh}, onlyIf: &loc})
		}
		if err := d.submitAll(ctx, ops); err != nil {
			return 0, fmt.Errorf("deleting %d lost shards from the index: %w", len(missing), err)
		}
		for _, o := range ops {
			if o.err != nil && !errors.Is(o.err, driver.ErrNotFound) && !errors.Is(o.err, errMoved) {
				return 0, fmt.Errorf("deleting a lost shard from the index: %w", o.err)
			}
		}
		d.noteDropped(ops)
	}
	if err := d.be.put(ctx, d.key("format.json"), d.formatJSON()); err != nil {
		return 0, fmt.Errorf("writing it again: %w", err)
	}
	d.lostCount.Add(1)
	d.mu.RLock()
	records, shards := d.records.Len(), len(d.shards)
	d.mu.RUnlock()
	d.log.Warn("remote drive: index reloaded after the loss", "records", records, "shards", shards, "lost_shards", len(missing))
	return len(missing), nil
}

// reloadUpTo reads the index from the bucket up to log object upTo, adds
// the journal to it and swaps it in (see above). It returns the shards,
// with their locations, that the bucket lost and the swapped-in index
// still has there.
func (d *Driver) reloadUpTo(ctx context.Context, upTo uint64) (map[driver.Shard]shardLoc, error) {
	var listed [3][]object
	for i, p := range []string{"log/", "snap/", "obj/"} {
		objs, err := d.be.list(ctx, d.key(p))
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", p, err)
		}
		listed[i] = objs
	}
	tmp := &Driver{cfg: d.cfg, log: d.log, be: d.be}
	tmp.resetIndex()
	maxSeq, _, err := tmp.loadListed(ctx, listed[0], listed[1], upTo)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(listed[0])+len(listed[2]))
	for _, objs := range [][]object{listed[0], listed[2]} {
		for _, o := range objs {
			have[o.Key] = true
		}
	}
	missing := map[driver.Shard]shardLoc{}
	for sh, l := range tmp.shards {
		if !have[l.obj] {
			missing[sh] = l
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range d.journal {
		tmp.segs[j.key] = &segment{seq: j.seq, size: j.size}
		for i := range j.entries {
			tmp.apply(&j.entries[i], j.key, j.base) // its orphans the flush removed
		}
		maxSeq = max(maxSeq, j.seq)
		tmp.since++
	}
	d.journaling, d.journal = false, nil
	d.records, d.shards, d.segs = tmp.records, tmp.shards, tmp.segs
	d.applied, d.snapSeq, d.snapKey, d.since = maxSeq, tmp.snapSeq, tmp.snapKey, tmp.since
	d.recBytes, d.shBytes = tmp.recBytes, tmp.shBytes
	for sh, l := range missing {
		if cur, ok := d.shards[sh]; !ok || cur != l {
			delete(missing, sh) // replaced or deleted during the reload
		}
	}
	return missing, nil
}

// noteJournal adds what flush applied from log object key to the journal
// of a reload in progress (under d.mu).
func (d *Driver) noteJournal(key string, seq uint64, size, base int64, applied []*op) {
	if !d.journaling {
		return
	}
	j := journaled{key: key, seq: seq, size: size, base: base, entries: make([]entry, 0, len(applied))}
	for _, o := range applied {
		e := o.e
		if e.op == opShardInline {
			e.data = nil // its place is enough
		}
		j.entries = append(j.entries, e)
	}
	d.journal = append(d.journal, j)
}
