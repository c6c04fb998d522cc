package remote

import (
	"context"
	"errors"
	"fmt"

	"github.com/vaultaire/vaultaire/driver"
)

// op is one queued mutation and, once done is closed, its outcome.
type op struct {
	e entry // recDel: version is the one asked for (zero: any)
	// onlyIf, for a shard put by compaction or a shard deletion by
	// lost, is where the shard must still be for it to apply (errMoved
	// otherwise).
	onlyIf *shardLoc
	prev   driver.Record
	ok     bool
	err    error
	done   chan struct{}
}

func (o *op) cost() int64 { return int64(len(o.e.key) + len(o.e.data) + 64) }

// submit queues o for the next log object and waits for its outcome or
// ctx. A caller that gives up on ctx once o is queued may still see it
// applied; one that gives up waiting for room in the queue does not.
func (d *Driver) submit(ctx context.Context, o *op) error {
	if err := d.enqueue(ctx, o); err != nil {
		return err
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// submitAll queues ops together, so that they share log objects, and
// waits for all of them (or ctx); each op's outcome is in its err.
func (d *Driver) submitAll(ctx context.Context, ops []*op) error {
	if err := d.enqueue(ctx, ops...); err != nil {
		return err
	}
	for _, o := range ops {
		select {
		case <-o.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// enqueue appends ops to the queue and starts a flusher if none runs. If
// they would take the queue past Config.MaxQueueBytes it first waits for
// room (a backend that stalls holds its writers, not their bytes in
// memory without bound), failing with ctx's error if ctx ends first;
// ops larger than the cap go alone into an empty queue. Callers waiting
// for room are admitted in arrival order, so a large call (a
// compaction's batch) is not passed for ever by small ones (review 27r
// R5).
func (d *Driver) enqueue(ctx context.Context, ops ...*op) error {
	var cost int64
	for _, o := range ops {
		o.done = make(chan struct{})
		cost += o.cost()
	}
	fits := func() bool { return d.qbytes == 0 || d.qbytes+cost <= d.cfg.MaxQueueBytes }
	d.cmu.Lock()
	if d.line.Len() > 0 || !fits() {
		// Wait in line: only the head is woken (roomMade), and looks
		// whether it fits; a caller that gives up leaves the line at
		// once, wherever it stands (review 27r2 N4, N5: tickets of
		// callers gone stayed in a map until the line reached them, and
		// every wake-up woke every waiter).
		turn := make(chan struct{}, 1)
		el := d.line.PushBack(turn)
		for d.line.Front() != el || !fits() {
			d.cmu.Unlock()
			var err error
			select {
			case <-turn:
			case <-ctx.Done():
				err = fmt.Errorf("driver/remote: write queue full (%d bytes): %w", d.cfg.MaxQueueBytes, ctx.Err())
			case <-d.closing:
				err = fmt.Errorf("%w: closed", driver.ErrOffline)
			}
			d.cmu.Lock()
			if err != nil {
				head := d.line.Front() == el
				d.line.Remove(el)
				if head {
					d.roomMade() // the next in line looks
				}
				d.cmu.Unlock()
				return err
			}
		}
		d.line.Remove(el)
		d.roomMade() // the next in line looks again: it may fit too
	}
	select {
	case <-d.closing:
		d.cmu.Unlock()
		return fmt.Errorf("%w: closed", driver.ErrOffline)
	default:
	}
	d.queue = append(d.queue, ops...)
	d.qbytes += cost
	if !d.flushing {
		d.flushing = true
		d.bg.Go(d.flushLoop)
	}
	d.cmu.Unlock()
	return nil
}

// QueuedBytes is what the mutations waiting for a log object cost
// (their keys and data), at most Config.MaxQueueBytes but for one call
// larger than that alone.
func (d *Driver) QueuedBytes() int64 {
	d.cmu.Lock()
	defer d.cmu.Unlock()
	return d.qbytes
}

// roomMade wakes the head of the line of callers waiting for room in the
// queue, if any (under cmu): the queue shrank, or the line moved.
func (d *Driver) roomMade() {
	if el := d.line.Front(); el != nil {
		select {
		case el.Value.(chan struct{}) <- struct{}{}:
		default: // woken already
		}
	}
}

// flushLoop writes the queue as log objects, one at a time, until it is
// empty: whatever queued while a PUT was in flight goes into the next.
func (d *Driver) flushLoop() {
	for {
		d.cmu.Lock()
		if len(d.queue) == 0 {
			d.flushing = false
			d.cmu.Unlock()
			return
		}
		n, size := 0, int64(0)
		for n < len(d.queue) && (n == 0 || size+d.queue[n].cost() <= d.cfg.MaxBatchBytes) {
			size += d.queue[n].cost()
			n++
		}
		ops := d.queue[:n:n]
		d.queue = d.queue[n:]
		d.qbytes -= size
		d.roomMade()
		d.cmu.Unlock()
		d.flushMu.Lock()
		d.flush(ops)
		d.flushMu.Unlock()
	}
}

// flush evaluates ops in order against the index (and each other),
// writes the resulting entries as one log object, applies them and wakes
// the callers.
func (d *Driver) flush(ops []*op) {
	var orphans []string
	defer func() {
		for _, o := range ops {
			close(o.done)
		}
		if len(orphans) > 0 {
			// Off the flusher: the next group commit need not wait.
			d.bg.Go(func() {
				for _, obj := range orphans {
					d.removeObject(obj)
				}
			})
		}
	}()
	select {
	case <-d.closing:
		for _, o := range ops {
			o.err = fmt.Errorf("%w: closed", driver.ErrOffline)
		}
		return
	default:
	}

	type recState struct {
		it  recItem
		has bool
	}
	recs := map[string]recState{}
	shards := map[driver.Shard]bool{}
	var entries []*entry
	var applied []*op
	d.mu.RLock()
	for _, o := range ops {
		e := &o.e
		switch e.op {
		case opRecPut, opRecDel:
			st, seen := recs[e.key]
			if !seen {
				st.it, st.has = d.records.Get(recItem{key: e.key})
			}
			if e.op == opRecPut {
				if st.has && st.it.version.Compare(e.version) > 0 {
					o.err = driver.ErrStale
					continue
				}
				if st.has {
					o.prev, o.ok = driver.Record{Key: e.key, Version: st.it.version, Data: cloneData(st.it.data)}, true
				}
				recs[e.key] = recState{it: recItem{key: e.key, version: e.version, data: e.data}, has: true}
			} else {
				switch {
				case !st.has:
					o.err = driver.ErrNotFound
					continue
				case !e.version.IsZero() && e.version != st.it.version:
					o.err = driver.ErrStale
					continue
				}
				e.version = st.it.version
				recs[e.key] = recState{}
			}
		case opShardDel:
			has, seen := shards[e.shard]
			if !seen {
				_, has = d.shards[e.shard]
			}
			if !has {
				o.err = driver.ErrNotFound
				continue
			}
			if o.onlyIf != nil {
				// lost()'s deletion of a lost shard: only where it was
				// lost, not a copy written or moved since.
				if cur, ok := d.shards[e.shard]; seen || !ok || cur != *o.onlyIf {
					o.err = errMoved
					continue
				}
			}
			shards[e.shard] = false
		default:
			if o.onlyIf != nil {
				_, seen := shards[e.shard]
				if cur, ok := d.shards[e.shard]; seen || !ok || cur != *o.onlyIf {
					o.err = errMoved
					continue
				}
			}
			shards[e.shard] = true
		}
		entries = append(entries, e)
		applied = append(applied, o)
	}
	d.mu.RUnlock()
	if len(entries) == 0 {
		return
	}

	seq := d.seq.Add(1)
	key := d.logKey(seq)
	body := encodeLog(entries)
	base := int64(len(body))
	for _, e := range entries {
		if e.op == opShardInline {
			base -= e.size
		}
	}
	err := d.be.put(d.closeCtx, key, body)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w: closed", driver.ErrOffline)
		}
		for _, o := range applied {
			o.err, o.prev, o.ok = fmt.Errorf("write log object: %w", err), driver.Record{}, false
		}
		return
	}
	d.mu.Lock()
	d.segs[key] = &segment{seq: seq, size: int64(len(body))}
	d.applied = max(d.applied, seq)
	d.since++
	for _, o := range applied { // entries[i] is &applied[i].e
		obj := d.apply(&o.e, key, base)
		// A shard deleted as lost (onlyIf) leaves its object alone: it
		// is gone, or a provider failed to show it for a moment and its
		// bytes are intact; unreferenced now, the next Open removes it
		// (review 28r).
		if obj != "" && (o.e.op != opShardDel || o.onlyIf == nil) {
			orphans = append(orphans, obj)
		}
	}
	d.noteJournal(key, seq, int64(len(body)), base, applied)
	d.mu.Unlock()
}

func (d *Driver) logKey(seq uint64) string {
	return d.key(fmt.Sprintf("log/%016x-%s", seq, d.instance))
}

// removeObject deletes a large shard object no longer referenced. A
// failure leaves an orphan, removed at the next Open.
func (d *Driver) removeObject(obj string) {
	if err := d.be.delete(d.closeCtx, obj); err != nil && !errors.Is(err, driver.ErrNotFound) {
		d.log.Warn("remote drive: cannot remove a replaced shard object (removed at next open)", "object", obj, "err", err)
	}
}
