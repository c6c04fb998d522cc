package local

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// committer runs record mutations, grouping the mutations of concurrent
// callers into one batch and one fsync (group commit).
//
// bbolt's own DB.Batch also groups, but it waits DB.MaxBatchDelay (10ms by
// default) before committing even a lone call, which caps a sequential
// writer at about 100 records a second. Here the first caller commits at
// once, but for one yield of the processor (runtime.Gosched) when it is
// alone in the queue; callers arriving meanwhile queue up and the first of
// them commits the whole queue as soon as the running batch ends. No caller
// commits more than one batch on behalf of others.
//
// The yield lets goroutines that are already runnable, such as the other
// record writes of concurrent puts, join the batch before it is cut: an
// fdatasync costs 45-50 µs of kernel CPU on the 2-core bench VM however
// few mutations it carries, and without the yield a lone leader commits
// one mutation while the others queue behind its fsync (16 PUTs in
// flight: 3.6 mutations per fsync without, 5.3 with). A writer alone on
// the process finds nothing runnable and loses a few hundred nanoseconds;
// a lone put's record writes to its other drives are runnable, and its
// fsync here then starts after their CPU work (~10-30 µs; its p50 was a
// median 9% worse on a loaded VM, within the noise: bench/RESULTS.md,
// session 28). Durability is unchanged: a caller is still woken only
// after the batch holding its mutation is on stable storage.
//
// With a record log (wal.go; every drive Open makes has one) a batch is
// committed by appending it to the log, one fdatasync; its mutations are
// then served from memory (mem) until a flush, running beside later
// batches, writes them into index.db in one bbolt transaction. Without one
// (tests of the committer alone), a batch is a bbolt transaction.
//
// Durability: a caller is woken only after the batch holding its mutation
// is on stable storage: its log frame fdatasynced, or its bbolt
// transaction committed, which returns after fdatasync of the data pages
// and then of the meta page (unless NoSync).
type committer struct {
	db  *bolt.DB
	log *wal // nil: batches are bbolt transactions
	// packs holds the data of large records for an index of value
	// format 2 (pack.go); nil for format 1, whose values index.db holds
	// whole. Only flushes (and the replay) write index.db then.
	packs  *packs
	logger *slog.Logger

	// committed, if set (tests), is called after each batch commit,
	// fsyncs included, with the number of mutations it held and its
	// error, before any of their callers is woken.
	committed func(ops int, err error)
	// single, if set (benchmarks), commits each mutation alone: the
	// behaviour without group commit, to measure what grouping buys.
	single bool
	// indexSize, if set, receives index.db's size after each bbolt commit.
	indexSize *atomic.Int64

	mu      sync.Mutex // guards the following fields
	queue   []*commitOp
	leading bool // a caller is committing a batch

	// The leader's state (only the leader reads or writes it, except mem
	// and flushing, which readers read under memMu).
	seq      uint64 // the last frame logged
	memBytes int    // of mem's keys and values
	idle     bool   // set by flushNow: flush whatever is held
	// onIdle, if set, is called (in its own goroutine) once no batch
	// has come for flushIdle while mutations are held: it should run a
	// flushNow batch.
	onIdle    func()
	idleTimer *time.Timer
	// afterFlush, if set, is called in its own goroutine after each
	// flush that committed: the pages it freed may be reclaimed.
	afterFlush func()
	flushed    chan struct{} // closed when the running flush ends; nil if none
	flushErr   error         // the last flush's failure, if it failed
	// flushRetry is when a flush may start again after one failed: not
	// at every batch, each starting a log segment.
	flushRetry time.Time
	// flushRes is the running flush's outcome, set before flushed is
	// closed.
	flushRes error

	memMu sync.RWMutex
	// mem holds the mutations logged but not in a flush; flushing those
	// of the flush running, if any (not changed while it runs). A reader
	// looks in mem, then flushing, then index.db, taking both maps
	// before opening its bbolt transaction: a flush clears flushing only
	// once index.db holds it.
	mem, flushing *held
	// cache holds records read from index.db (cache.go); nil until the
	// log is open, and without a log.
	cache *recordCache
	// beforeRemember, if set (tests), is called by remember first, with
	// the key it is about to cache.
	beforeRemember func(key string)
}

// Flush thresholds: a flush starts once the mutations held in memory reach
// flushOps or flushBytes, or the log segment flushLog; a batch waits for the running flush once they
// reach four times that. (Variables for tests.)
var (
	flushOps   = 4096
	flushBytes = 4 << 20
	flushLog   = int64(64 << 20) // a segment's frames: bounds replay and disk
	flushIdle  = time.Second
)

// kv is what a mutation reads and changes: the records bucket, or a batch
// over the record log.
type kv interface {
	Get(key []byte) []byte
	Put(key, val []byte) error
	Delete(key []byte) error
}

// commitOp is one caller's mutation.
type commitOp struct {
	fn   func(kv) error
	err  error         // result, set before wake is signalled
	done bool          // fn has been committed or has failed
	wake chan struct{} // signalled when done, or to hand leadership over
}

// commitOps recycles commitOps and their wake channels (two allocations
// per record mutation otherwise).
var commitOps = sync.Pool{New: func() any { return &commitOp{wake: make(chan struct{}, 1)} }}

// putCommitOp returns op to commitOps once its caller is done with it:
// no batch holds it any more (a batch's ops are woken, or its leader
// returns, only after the batch is run), and the signal its own leader
// sent it (wakeAll) is drained.
func putCommitOp(op *commitOp) {
	select {
	case <-op.wake:
	default:
	}
	*op = commitOp{wake: op.wake}
	commitOps.Put(op)
}

// do runs fn on the records and returns once the batch holding it has been
// committed. fn may run more than once and must return an error only for
// failures that should fail the whole batch.
func (c *committer) do(fn func(kv) error) error {
	op := commitOps.Get().(*commitOp)
	op.fn = fn
	defer putCommitOp(op)
	c.mu.Lock()
	c.queue = append(c.queue, op)
	if c.leading {
		c.mu.Unlock()
		<-op.wake
		if op.done {
			return op.err
		}
		// Leadership was handed to us: op heads the queue.
		c.mu.Lock()
	}
	c.leading = true
	if len(c.queue) == 1 {
		// Alone: let runnable callers join the batch (see committer).
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
	}
	ops := c.queue
	c.queue = nil
	if c.single && len(ops) > 1 {
		ops, c.queue = ops[:1], ops[1:]
	}
	c.mu.Unlock()

	if c.log != nil {
		c.runLogged(ops)
	} else {
		c.run(ops)
	}

	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].wake <- struct{}{}
	} else {
		c.leading = false
	}
	c.mu.Unlock()
	return op.err
}

// run commits ops in one transaction and wakes their callers.
func (c *committer) run(ops []*commitOp) {
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(recordsBucket)
		for _, op := range ops {
			if err := op.fn(b); err != nil {
				return err
			}
		}
		c.noteSize(tx)
		return nil
	})
	if c.committed != nil {
		c.committed(len(ops), err)
	}
	for _, op := range ops {
		op.err = err
	}
	if err != nil && len(ops) > 1 {
		// Retry one by one so that an op that failed the transaction
		// does not fail the others.
		for _, op := range ops {
			op.err = c.db.Update(func(tx *bolt.Tx) error {
				return op.fn(tx.Bucket(recordsBucket))
			})
			if c.committed != nil {
				c.committed(1, op.err)
			}
		}
	}
	wakeAll(ops)
}

func wakeAll(ops []*commitOp) {
	for _, op := range ops {
		op.done = true
		op.wake <- struct{}{}
	}
}

func (c *committer) noteSize(tx *bolt.Tx) {
	if c.indexSize != nil {
		c.indexSize.Store(tx.Size())
	}
}

// batch is the view of the records a logged batch's mutations run on: its
// own mutations over mem, flushing and index.db as of the batch's start.
type batch struct {
	muts    map[string]int // key → index in order
	order   []mutation
	mem, fl *held
	base    *bolt.Bucket
	packs   *packs // index.db's values are stored values of this (nil: format 1)
}

func (b *batch) Get(key []byte) []byte {
	if i, ok := b.muts[string(key)]; ok {
		return b.order[i].val
	}
	if m, ok := lookup(b.mem, b.fl, string(key)); ok {
		return m.val
	}
	return b.packs.logical(b.base.Get(key))
}

func (b *batch) Put(key, val []byte) error {
	switch {
	case len(key) == 0:
		return bolt.ErrKeyRequired
	case len(key) > bolt.MaxKeySize:
		return bolt.ErrKeyTooLarge
	case int64(len(val)) > bolt.MaxValueSize:
		return bolt.ErrValueTooLarge
	}
	b.set(mutation{key: string(key), val: val}) // the caller's, never changed after (as for bbolt)
	return nil
}

func (b *batch) Delete(key []byte) error {
	b.set(mutation{key: string(key), del: true})
	return nil
}

func (b *batch) set(m mutation) {
	if i, ok := b.muts[m.key]; ok {
		b.order[i] = m
		return
	}
	b.muts[m.key] = len(b.order)
	b.order = append(b.order, m)
}

// lookup finds key in mem, then in flushing.
func lookup(mem, flushing *held, key string) (mutation, bool) {
	if m, ok := mem.get(key); ok {
		return m, true
	}
	return flushing.get(key)
}

// get returns what the log holds for key and not index.db: found reports
// whether it holds anything, and m whether that is a value or a delete.
// The maps it looked in are returned too; the caller opens its bbolt
// transaction only after the call (see mem).
func (c *committer) get(key string) (m mutation, found bool) {
	c.memMu.RLock()
	defer c.memMu.RUnlock()
	return lookup(c.mem, c.flushing, key)
}

// span returns the mutations held in memory for keys with prefix p that
// sort at or after start, sorted, mem's over flushing's: at least those
// a listing of limit records can reach. Each list is cut after limit puts
// that are not overridden (flushing's by mem's), and the whole at the
// lower cut: limit records of the listing lie at or before it.
func (c *committer) span(p, start []byte, limit int) []mutation {
	c.memMu.RLock()
	defer c.memMu.RUnlock()
	if c.mem.len()+c.flushing.len() == 0 {
		return nil
	}
	take := func(h *held, over *held, upTo string, cut bool) (out []mutation, last string, stopped bool) {
		puts := 0
		h.ascend(string(p), string(start), func(m mutation) bool {
			if cut && m.key > upTo {
				return false
			}
			if _, ok := over.get(m.key); ok {
				return true // the newer mutation of the key is in over
			}
			out = append(out, m)
			if !m.del {
				if puts++; puts == limit {
					last, stopped = m.key, true
					return false
				}
			}
			return true
		})
		return out, last, stopped
	}
	mem, k1, cut1 := take(c.mem, nil, "", false)
	fl, k2, cut2 := take(c.flushing, c.mem, k1, cut1)
	if len(fl) == 0 {
		return mem
	}
	out := make([]mutation, 0, len(mem)+len(fl))
	i, j := 0, 0
	for i < len(mem) || j < len(fl) {
		if j == len(fl) || i < len(mem) && mem[i].key < fl[j].key {
			if cut2 && mem[i].key > k2 {
				break
			}
			out = append(out, mem[i])
			i++
		} else {
			out = append(out, fl[j])
			j++
		}
	}
	return out
}

// runLogged commits ops as one frame of the record log and wakes their
// callers, then starts a flush if enough is held in memory.
func (c *committer) runLogged(ops []*commitOp) {
	if c.flushed != nil {
		select {
		case <-c.flushed:
			c.waitFlush() // ended: take its outcome
		default:
		}
	}
	if c.memBytes >= 4*flushBytes || c.mem.len() >= 4*flushOps {
		c.waitFlush() // the flush is behind: hold the writers back
	}
	err := c.logBatch(ops)
	if err != nil && len(ops) > 1 && !c.failed(err) {
		// One op failed the batch: the others go one by one.
		for _, op := range ops {
			op.err = c.logBatch([]*commitOp{op})
		}
	} else {
		for _, op := range ops {
			op.err = err
		}
	}
	wakeAll(ops)
	due := c.memBytes >= flushBytes || c.mem.len() >= flushOps || c.log.off >= flushLog || c.idle && c.mem.len() > 0
	if c.flushed == nil && due && !time.Now().Before(c.flushRetry) {
		c.startFlush()
	}
	c.idle = false
	if c.onIdle != nil && c.mem.len() > 0 {
		// Quiet for flushIdle: what is held is flushed, so that an idle
		// drive holds nothing in memory and its log is empty.
		if c.idleTimer == nil {
			c.idleTimer = time.AfterFunc(flushIdle, c.onIdle)
		} else {
			c.idleTimer.Reset(flushIdle)
		}
	}
}

// logBroken returns why the record log takes no more frames, or nil.
// It must be called between begin and end (the log open).
func (c *committer) logBroken() error {
	if c.log != nil {
		if b := c.log.broken.Load(); b != nil {
			return fmt.Errorf("%w; the record log takes no more frames", *b)
		}
	}
	return nil
}

// flushNow makes the next batch (even one changing nothing) start a flush.
func (c *committer) flushNow(kv) error {
	c.idle = true // the caller leads: see do
	return nil
}

// failed reports whether err is the log's or the index's own failure, not
// a mutation's.
func (c *committer) failed(err error) bool {
	var le *logError
	return errors.As(err, &le)
}

// logError is a failure of the record log or of reading the index: it
// fails every mutation of the batch alike.
type logError struct{ err error }

func (e *logError) Error() string { return e.err.Error() }
func (e *logError) Unwrap() error { return e.err }

// logBatch runs ops on a batch view and logs what they changed.
func (c *committer) logBatch(ops []*commitOp) error {
	c.memMu.RLock()
	b := &batch{muts: make(map[string]int, len(ops)), mem: c.mem, fl: c.flushing, packs: c.packs}
	c.memMu.RUnlock()
	if c.packs != nil {
		c.packs.mu.RLock() // until the data of the references the transaction finds is read
	}
	tx, err := c.db.Begin(false)
	if err != nil {
		if c.packs != nil {
			c.packs.mu.RUnlock()
		}
		return &logError{fmt.Errorf("read index: %w", err)}
	}
	b.base = tx.Bucket(recordsBucket)
	var fnErr error
	for _, op := range ops {
		if fnErr = op.fn(b); fnErr != nil {
			break
		}
	}
	tx.Rollback()
	if c.packs != nil {
		c.packs.mu.RUnlock()
	}
	if fnErr != nil {
		return fnErr
	}
	if len(b.order) == 0 {
		return nil // nothing changed (a refused or missing record)
	}
	if c.flushErr != nil && (c.memBytes >= 4*flushBytes || c.log.off >= 4*flushLog) {
		return &logError{fmt.Errorf("index flush failing: %w", c.flushErr)}
	}
	err = c.log.append(c.seq+1, b.order)
	if c.committed != nil {
		c.committed(len(ops), err)
	}
	if err != nil {
		return &logError{err}
	}
	c.seq++
	c.memMu.Lock()
	for _, m := range b.order {
		if old, ok := c.mem.set(m); ok {
			c.memBytes -= len(old.key) + len(old.val)
		}
		c.memBytes += len(m.key) + len(m.val)
	}
	c.memMu.Unlock()
	return nil
}

// startFlush moves mem to flushing, starts a new log segment and writes
// flushing into index.db in the background.
func (c *committer) startFlush() {
	seq := c.seq
	if err := c.log.startSegment(seq + 1); err != nil {
		// Appends go on in the segment they were in; the flush
		// cannot drop it, but index.db may still take the records.
		c.flushErr = err
	}
	c.memMu.Lock()
	c.flushing, c.mem = c.mem, newHeld()
	c.memMu.Unlock()
	c.memBytes = 0
	done := make(chan struct{})
	c.flushed = done
	fl := c.flushing
	go func() {
		c.flushRes = c.flush(fl, seq)
		ok := c.flushRes == nil
		close(done)
		if ok && c.afterFlush != nil {
			go c.afterFlush() // not here: drain waits for this goroutine holding the drive's lock
		}
	}()
}

// waitFlush waits for the running flush, if any, to end, and takes back
// what it failed to write into index.db.
func (c *committer) waitFlush() {
	if c.flushed == nil {
		return
	}
	<-c.flushed
	c.flushed = nil
	c.flushErr = c.flushRes
	if c.flushErr != nil {
		c.flushRetry = time.Now().Add(time.Second)
	}
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if c.flushing == nil {
		return
	}
	// The flush failed: its mutations go back under the newer ones.
	c.flushing.all(func(m mutation) {
		if _, ok := c.mem.get(m.key); !ok {
			c.mem.set(m)
			c.memBytes += len(m.key) + len(m.val)
		}
	})
	c.flushing = nil
}

// flush writes fl, the mutations of the frames up to seq, into index.db in
// one transaction, then drops them from memory and the log segments that
// index.db now holds.
func (c *committer) flush(fl *held, seq uint64) error {
	keys := make([]string, 0, fl.len())
	fl.all(func(m mutation) { keys = append(keys, m.key) }) // in key order: bbolt fills pages best so
	var ch *packChanges
	beforeCommit := false // failed before bbolt wrote anything
	err := c.db.Update(func(tx *bolt.Tx) error {
		var err error
		if ch, err = applyMutations(tx, keys, fl.byKey, seq, c.packs); err != nil {
			beforeCommit = true
			return err
		}
		c.noteSize(tx)
		return nil
	})
	if err != nil {
		// A commit that failed once bbolt had written its meta page
		// (its fsync failing) is visible, and may be on the disk,
		// with its references: its end counts as committed, so that
		// no later rollback cuts below it. Only appends that no
		// commit wrote are dropped.
		if c.packs != nil {
			if !beforeCommit && ch != nil && c.packs.visible(c.db, ch) {
				c.packs.committed(ch)
			} else {
				c.packs.rollback()
			}
		}
		return fmt.Errorf("flush record log: %w", err)
	}
	c.freePacks(ch)
	c.memMu.Lock()
	c.flushedKeys(fl) // with flushing's clearing: see cache.go
	c.flushing = nil
	c.memMu.Unlock()
	c.log.dropBefore()
	return nil
}

// applyMutations writes the mutations fl of keys into the records bucket
// of tx and notes seq as the last frame index.db holds. With packs (p
// non-nil) the values are stored as format 2, large data appended to the
// active pack, and it returns what to free once tx has committed.
func applyMutations(tx *bolt.Tx, keys []string, fl map[string]mutation, seq uint64, p *packs) (*packChanges, error) {
	b := tx.Bucket(recordsBucket)
	ch := &packChanges{}
	var added []packRef
	for _, k := range keys {
		m := fl[k]
		key := []byte(k)
		if p != nil {
			if ref, ok := storedRef(b.Get(key)); ok {
				ch.dead = append(ch.dead, ref)
			}
		}
		var err error
		switch {
		case m.del:
			err = b.Delete(key)
		case p == nil:
			err = b.Put(key, m.val)
		default:
			var val []byte
			var ref *packRef
			if val, ref, err = p.store(m.val); err != nil {
				return nil, err
			}
			if ref != nil {
				added = append(added, *ref)
			}
			err = b.Put(key, val)
		}
		if err != nil {
			return nil, err
		}
	}
	meta, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return nil, err
	}
	if p != nil {
		if err := p.apply(tx, added, ch); err != nil {
			return nil, err
		}
	}
	return ch, meta.Put(walSeqKey, binary.BigEndian.AppendUint64(nil, seq))
}

// freePacks frees, after a flush committed, the pack space it killed.
// A failure leaves the space allocated; nothing is lost.
func (c *committer) freePacks(ch *packChanges) {
	if c.packs == nil || ch == nil {
		return
	}
	c.packs.committed(ch)
	if err := c.packs.free(ch); err != nil && c.logger != nil {
		c.logger.Warn("pack space not freed", "err", err)
	}
}

// drain waits for the running flush and flushes what is left, with no
// caller in flight (Close, a drive going offline): index.db then holds
// every logged mutation and the log is empty.
func (c *committer) drain() error {
	c.waitFlush()
	if c.mem.len() > 0 {
		c.startFlush()
		c.waitFlush()
		if c.flushErr != nil {
			return c.flushErr
		}
	}
	return nil
}
