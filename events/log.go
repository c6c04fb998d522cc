package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vaultaire/vaultaire/s3"
)

// Config configures a Log. Zero fields take the defaults shown.
type Config struct {
	Dir           string        // directory of the log files; created if missing
	MaxFileBytes  int64         // bytes; either log is rotated before it would exceed this (default 64 MiB)
	MaxFiles      int           // rotated access logs kept (default 10)
	MaxTxnFiles   int           // rotated transaction logs kept (default 100)
	Buffer        int           // access events queued before new ones are dropped (default 8192)
	TxnBuffer     int           // mutations queued before new ones are dropped (default 65536)
	FlushInterval time.Duration // longest an access line waits in memory (default 1s)
	Parquet       bool          // also convert each rotated file to Parquet beside it (see doc)
	Logger        *slog.Logger  // warnings and write errors (default: discarded)
}

// Defaults.
const (
	DefaultMaxFileBytes  = 64 << 20
	DefaultMaxFiles      = 10
	DefaultMaxTxnFiles   = 100
	DefaultBuffer        = 8192
	DefaultTxnBuffer     = 65536
	DefaultFlushInterval = time.Second
)

// Validate reports a configuration Open would refuse.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("events: no Dir")
	case c.MaxFileBytes < 0, c.MaxFiles < 0, c.MaxTxnFiles < 0, c.Buffer < 0, c.TxnBuffer < 0, c.FlushInterval < 0:
		return errors.New("events: negative size, count or interval")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = DefaultMaxFileBytes
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = DefaultMaxFiles
	}
	if c.MaxTxnFiles == 0 {
		c.MaxTxnFiles = DefaultMaxTxnFiles
	}
	if c.Buffer == 0 {
		c.Buffer = DefaultBuffer
	}
	if c.TxnBuffer == 0 {
		c.TxnBuffer = DefaultTxnBuffer
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// maxTxnBatch bounds how many mutations one group commit writes.
const maxTxnBatch = 1024

// txnSyncGap is the least time between two fsyncs of the transaction log:
// a batch waits out the rest of it, gathering what comes meanwhile. The
// log is written after the mutations are served and a crash loses its
// queue anyway; one fsync per request at a few thousand PUTs a second
// cost 7% of a PUT's CPU (bench/RESULTS.md, session 20).
const txnSyncGap = 10 * time.Millisecond

// How often a drop or write failure is logged at most.
const (
	accessWarnEvery = time.Minute
	txnWarnEvery    = 10 * time.Second
)

// Log writes the access and transaction logs of one node. It is an
// s3.Observer; its methods are safe for concurrent use.
type Log struct {
	cfg   Config
	log   *slog.Logger
	hooks hooks

	mu     sync.RWMutex // guards closed and sending on the queues
	closed bool
	access chan s3.RequestEvent
	txn    chan *txnRecord

	accessWritten, accessDropped atomic.Uint64
	txnWritten, txnDropped       atomic.Uint64
	accessWarned, txnWarned      atomic.Int64 // UnixNano of the last warning
	accessFailed, txnFailed      atomic.Int64 // UnixNano of the last write error logged

	wg                sync.WaitGroup // the two writer goroutines
	accessErr, txnErr error          // set by the writers when they stop

	roller     *roller            // nil unless Config.Parquet
	stopRoller context.CancelFunc // stops the roller
	rollerWG   sync.WaitGroup
}

var _ s3.Observer = (*Log)(nil)

// hooks let tests stall the writers.
type hooks struct {
	beforeAccess func() // called by the access writer before each event
	beforeTxn    func() // called by the transaction writer before each batch
}

// Open creates cfg.Dir if needed, opens access.log and txn.log for
// appending and starts their writers. Close stops them.
func Open(cfg Config) (*Log, error) {
	return open(cfg, hooks{})
}

func open(cfg Config, h hooks) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	l := &Log{
		cfg:    cfg,
		log:    cfg.Logger,
		hooks:  h,
		access: make(chan s3.RequestEvent, cfg.Buffer),
		txn:    make(chan *txnRecord, cfg.TxnBuffer),
	}
	af := &rotFile{dir: cfg.Dir, kind: "access", maxBytes: cfg.MaxFileBytes, keep: cfg.MaxFiles, now: time.Now, log: l.log}
	tf := &rotFile{dir: cfg.Dir, kind: "txn", maxBytes: cfg.MaxFileBytes, keep: cfg.MaxTxnFiles, syncDir: true, now: time.Now, log: l.log}
	if cfg.Parquet {
		l.roller = &roller{
			dir:   cfg.Dir,
			keep:  map[string]int{"access": cfg.MaxFiles, "txn": cfg.MaxTxnFiles},
			kick:  make(chan struct{}, 1),
			fails: map[string]int{},
			warn:  l.log.Warn,
		}
		af.rotated, tf.rotated = l.roller.notify, l.roller.notify
	}
	if err := af.open(); err != nil {
		return nil, err
	}
	if err := tf.open(); err != nil {
		af.close()
		return nil, err
	}
	l.wg.Add(2)
	go l.writeAccess(af)
	go l.writeTxn(tf)
	if l.roller != nil {
		ctx, cancel := context.WithCancel(context.Background())
		l.stopRoller = cancel
		l.rollerWG.Go(func() { l.roller.run(ctx) })
	}
	return l, nil
}

// ObserveRequest queues ev for the access log and, if it is a mutation,
// for the transaction log. It never blocks: an event that finds its queue
// full, or the Log closed, is dropped and counted.
func (l *Log) ObserveRequest(ev *s3.RequestEvent) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	mutation := ev.Mutation()
	if l.closed {
		l.accessDropped.Add(1)
		if mutation {
			l.txnDropped.Add(1)
		}
		return
	}
	select {
	case l.access <- *ev:
	default:
		n := l.accessDropped.Add(1)
		if rateOK(&l.accessWarned, accessWarnEvery) {
			l.log.Warn("events: access log queue full, dropping access events", "dropped", n)
		}
	}
	if !mutation {
		return
	}
	select {
	case l.txn <- newTxnRecord(ev):
	default:
		n := l.txnDropped.Add(1)
		if rateOK(&l.txnWarned, txnWarnEvery) {
			l.log.Warn("events: transaction log queue full, dropping mutations", "dropped", n)
		}
	}
}

// Stats returns how many access events have been written to the access
// log (buffered lines included) and how many were dropped: queue full,
// Log closed, or write failed.
func (l *Log) Stats() (written, dropped uint64) {
	return l.accessWritten.Load(), l.accessDropped.Load()
}

// TxnStats returns how many mutations have been written and fsynced to
// the transaction log and how many were dropped or failed to write.
func (l *Log) TxnStats() (written, dropped uint64) {
	return l.txnWritten.Load(), l.txnDropped.Load()
}

// Close stops accepting events, writes what is queued, flushes and
// fsyncs both files. Events observed after Close are dropped. Close
// returns the first error of closing each file; later calls return nil.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.access)
	close(l.txn)
	l.mu.Unlock()
	l.wg.Wait()
	if l.roller != nil {
		l.stopRoller() // a conversion under way is abandoned, and redone at the next Open
		l.rollerWG.Wait()
	}
	return errors.Join(l.accessErr, l.txnErr)
}

// writeAccess is the access log's writer: it encodes queued events into
// the file's buffer and flushes it every FlushInterval, until the queue
// is closed.
func (l *Log) writeAccess(f *rotFile) {
	defer l.wg.Done()
	tick := time.NewTicker(l.cfg.FlushInterval)
	defer tick.Stop()
	var line []byte
	dirty := false
	for {
		select {
		case ev, ok := <-l.access:
			if !ok {
				l.accessErr = f.close()
				return
			}
			if l.hooks.beforeAccess != nil {
				l.hooks.beforeAccess()
			}
			line = appendAccess(line[:0], &ev)
			if err := f.write(line); err != nil {
				l.accessDropped.Add(1)
				l.writeFailed(&l.accessFailed, accessWarnEvery, err)
				continue
			}
			l.accessWritten.Add(1)
			dirty = true
		case <-tick.C:
			if !dirty {
				continue
			}
			dirty = false
			if err := f.flush(); err != nil {
				l.writeFailed(&l.accessFailed, accessWarnEvery, err)
			}
		}
	}
}

// writeTxn is the transaction log's writer. Group commit: it waits for a
// mutation and for txnSyncGap since its last fsync, takes whatever else is
// queued (up to maxTxnBatch), writes the batch and fsyncs, until the queue
// is closed. Drops since the last batch
// are recorded in the file before the batch.
func (l *Log) writeTxn(f *rotFile) {
	defer l.wg.Done()
	var (
		batch    = make([]*txnRecord, 0, maxTxnBatch)
		line     []byte
		recorded uint64 // drops already marked in the file
		node     string // node of the last mutation, for drop lines
	)
	var synced time.Time
	for open := true; open; {
		batch = batch[:0]
		rec, ok := <-l.txn
		if !ok {
			break
		}
		batch = append(batch, rec)
		if wait := txnSyncGap - time.Since(synced); wait > 0 {
			time.Sleep(wait)
		}
	more:
		for len(batch) < maxTxnBatch {
			select {
			case rec, ok := <-l.txn:
				if !ok {
					open = false
					break more
				}
				batch = append(batch, rec)
			default:
				break more
			}
		}
		if l.hooks.beforeTxn != nil {
			l.hooks.beforeTxn()
		}
		node = batch[0].Node
		recorded = l.markDropped(f, recorded, node)
		var err error
		for _, rec := range batch {
			line = appendTxn(line[:0], rec)
			if err = f.write(line); err != nil {
				break
			}
		}
		if err == nil {
			err = f.sync()
			synced = time.Now()
		}
		if err != nil {
			// The batch may be partly on disk; count it as lost.
			l.txnDropped.Add(uint64(len(batch)))
			l.writeFailed(&l.txnFailed, txnWarnEvery, err)
			continue
		}
		l.txnWritten.Add(uint64(len(batch)))
	}
	l.markDropped(f, recorded, node)
	l.txnErr = f.close()
}

// markDropped writes a "Dropped" line if mutations were dropped since
// recorded, and returns the new count of recorded drops.
func (l *Log) markDropped(f *rotFile, recorded uint64, node string) uint64 {
	d := l.txnDropped.Load()
	if d <= recorded {
		return recorded
	}
	if err := f.write(appendDropped(nil, time.Now(), node, d-recorded)); err != nil {
		l.writeFailed(&l.txnFailed, txnWarnEvery, err)
		return recorded
	}
	return d
}

func (l *Log) writeFailed(last *atomic.Int64, every time.Duration, err error) {
	if rateOK(last, every) {
		l.log.Error("events: cannot write log", "err", err)
	}
}

// rateOK reports whether at least every has passed since *last, and if
// so sets *last to now.
func rateOK(last *atomic.Int64, every time.Duration) bool {
	now := time.Now().UnixNano()
	prev := last.Load()
	return now-prev >= int64(every) && last.CompareAndSwap(prev, now)
}
