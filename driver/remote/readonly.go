package remote

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
)

// Readers (Config.ReadOnly).
//
// A drive has one writer, its owner, but any process with the bucket's
// credentials can read it: everything the driver needs is in the bucket.
// In a cluster the nodes started with the same --remote as the owner open
// the drive read-only and serve reads of it while the owner's node is
// down, so losing that node loses no access to the shards in the bucket.
//
// A reader must never answer with what the owner has since replaced or
// deleted as if it were current. So every read (GetRecord, ListRecords,
// ReadShard) first waits for a refresh of the index that began after the
// read did: the log objects written since the last one it applied are
// listed (ListObjectsV2 with StartAfter, one request) and replayed in
// sequence order, exactly as Open replays them. The owner acknowledges a
// mutation only once its log object is in the bucket, and S3 lists and
// reads after a write consistently, so the refreshed index holds every
// mutation acknowledged before the read began: the read answers as the
// owner's own index did at some moment after it began, which is what a
// read through the owner gives (the owner too looks a shard up and then
// reads it while writes go on). A shard replaced or deleted between the
// refresh and the GET is either still there (the bytes the index named,
// current at the refresh) or gone (driver.ErrNotFound): never bytes of
// another write, since a location names an object and an offset that are
// never rewritten (log objects and large shard objects are immutable, each
// under a fresh key).
//
// Compaction deletes log objects, but only those a snapshot written
// before covers: the refresh lists the log objects first and the
// snapshots second, and if a snapshot newer than what it applied appeared
// (or a log object it listed is gone by the time it reads it) it reloads
// the whole index from the newest snapshot into a new index and swaps it
// in. Log objects of one owner instance are written one at a time, in
// sequence order, so a listing never shows a later one without the
// earlier ones that were acknowledged. A log object whose PUT failed (a
// lost answer) and that lands later is a write the owner never
// acknowledged; a reader may or may not see it, as a restarted owner
// would.
//
// Concurrent reads share refreshes: a read joins the next refresh to
// start, so at most one runs at a time and a burst of reads costs one or
// two LIST requests. A reader sends nothing but GET, HEAD and LIST
// requests: its Fence refuses every write, on top of the calls refusing
// them up front, and Info fails with driver.ErrOffline (the drive cannot
// take writes through it).
//
// A reader that got no read for Config.ReaderIdle (a standby whose owner
// is back) drops its in-memory index, never while a read is looking it
// up or a refresh runs; the next read's refresh, finding nothing applied,
// reads it again from the newest snapshot and the log objects after it.

// ErrReadOnly marks a write refused by a read-only Driver (Config.ReadOnly).
// It comes wrapped with driver.ErrOffline.
var ErrReadOnly = errors.New("driver/remote: read-only view of a drive another node owns")

// refuseWrite returns the error of a write to a read-only Driver, or nil.
func (d *Driver) refuseWrite(what string) error {
	if d.cfg.ReadOnly {
		return fmt.Errorf("driver/remote: %s: %w: %w", what, driver.ErrOffline, ErrReadOnly)
	}
	return nil
}

// round is one refresh of a reader's index; done is closed when err is
// set.
type round struct {
	done chan struct{}
	err  error
}

// fresh returns once a refresh of the index that began after the call
// finished (a read-only Driver), at once otherwise.
// The caller calls done once it has looked up what it needs in the
// index: until then the index is not dropped (idleLoop).
func (d *Driver) fresh(ctx context.Context) (done func(), err error) {
	if !d.cfg.ReadOnly {
		return func() {}, nil
	}
	d.rmu.Lock()
	d.rreads++
	d.rlast = time.Now()
	done = func() {
		d.rmu.Lock()
		d.rreads--
		d.rmu.Unlock()
	}
	r := d.rnext
	if r == nil {
		r = &round{done: make(chan struct{})}
		d.rnext = r
	}
	if !d.rbusy {
		d.rbusy, d.rnext = true, nil
		d.bg.Go(func() { d.refreshLoop(r) })
	}
	d.rmu.Unlock()
	select {
	case <-r.done:
		err = r.err
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		done()
		return func() {}, err
	}
	return done, nil
}

// idleLoop drops a reader's index once no read came for
// Config.ReaderIdle, until Close.
func (d *Driver) idleLoop() {
	t := time.NewTicker(max(d.cfg.ReaderIdle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-d.closing:
			return
		case now := <-t.C:
			d.dropIdle(now)
		}
	}
}

// dropIdle empties a reader's index if no read is in progress or began
// within Config.ReaderIdle of now, and no refresh runs: a standby whose
// owner is back would otherwise keep a copy of the whole index for
// nothing. The next read's refresh, finding nothing applied, reads the
// index again from the newest snapshot and the log objects after it.
func (d *Driver) dropIdle(now time.Time) bool {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if d.rreads > 0 || d.rbusy || d.rnext != nil || now.Sub(d.rlast) < d.cfg.ReaderIdle {
		return false
	}
	d.mu.RLock()
	empty := d.applied == 0 && d.records.Len() == 0 && len(d.shards) == 0
	d.mu.RUnlock()
	if empty {
		return false
	}
	d.resetIndex()
	d.drops.Add(1)
	d.log.Info("remote drive: standby index dropped after no read", "idle", d.cfg.ReaderIdle)
	return true
}

// refreshLoop runs round r, then the rounds reads queued meanwhile, one
// at a time.
func (d *Driver) refreshLoop(r *round) {
	for r != nil {
		r.err = d.refresh(d.closeCtx)
		close(r.done)
		d.rmu.Lock()
		r, d.rnext = d.rnext, nil
		d.rbusy = r != nil
		d.rmu.Unlock()
	}
}

// refresh applies the log objects written since the last one applied,
// or reloads the whole index when a compaction may have removed some.
func (d *Driver) refresh(ctx context.Context) error {
	d.mu.RLock()
	applied := d.applied
	d.mu.RUnlock()
	logs, err := d.be.listAfter(ctx, d.key("log/"), d.key(fmt.Sprintf("log/%016x.", applied)))
	if err != nil {
		return fmt.Errorf("driver/remote: refresh: %w", err)
	}
	snaps, err := d.be.list(ctx, d.key("snap/"))
	if err != nil {
		return fmt.Errorf("driver/remote: refresh: %w", err)
	}
	for _, o := range snaps {
		if seq, ok := seqOf(o.Key); ok && seq > applied {
			return d.reloadAll(ctx)
		}
	}
	for _, o := range logs {
		seq, ok := seqOf(o.Key)
		if !ok || seq <= applied {
			continue
		}
		d.mu.Lock()
		d.segs[o.Key] = &segment{seq: seq, size: o.Size}
		d.mu.Unlock()
		if _, err := d.replay(ctx, o); errors.Is(err, driver.ErrNotFound) {
			return d.reloadAll(ctx) // deleted since the listing: a newer snapshot covers it
		} else if err != nil {
			return fmt.Errorf("driver/remote: refresh: %w", err)
		}
		d.mu.Lock()
		d.applied = max(d.applied, seq)
		d.since++
		d.mu.Unlock()
	}
	d.refreshes.Add(1)
	return nil
}

// reloadAll reads the whole index into a new one and swaps it in, so that
// reads meanwhile keep the old one. A load that lost an object to a
// concurrent compaction is tried again.
func (d *Driver) reloadAll(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		tmp := &Driver{cfg: d.cfg, log: d.log, be: d.be}
		tmp.resetIndex()
		maxSeq, _, err := tmp.loadIndex(ctx)
		switch {
		case err == nil:
			d.mu.Lock()
			d.records, d.shards, d.segs = tmp.records, tmp.shards, tmp.segs
			d.applied, d.snapSeq, d.snapKey, d.since = maxSeq, tmp.snapSeq, tmp.snapKey, tmp.since
			d.recBytes, d.shBytes = tmp.recBytes, tmp.shBytes
			d.mu.Unlock()
			d.refreshes.Add(1)
			d.reloads.Add(1)
			return nil
		case errors.Is(err, driver.ErrNotFound) && attempt < 3:
			continue
		default:
			return fmt.Errorf("driver/remote: reload: %w", err)
		}
	}
}

// Refreshes returns how many times a read-only Driver brought its index up
// to date with the bucket, and how many of those reloaded it whole.
func (d *Driver) Refreshes() (refreshes, reloads uint64) {
	return d.refreshes.Load(), d.reloads.Load()
}

// Drops returns how many times a read-only Driver dropped its index after
// Config.ReaderIdle without a read.
func (d *Driver) Drops() uint64 { return d.drops.Load() }

// listAfter returns the objects under prefix whose keys sort after
// startAfter, in key order.
func (b *backend) listAfter(ctx context.Context, prefix, startAfter string) ([]object, error) {
	var out []object
	var token *string
	for {
		var resp *s3.ListObjectsV2Output
		in := &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix, ContinuationToken: token}
		if token == nil {
			in.StartAfter = &startAfter
		}
		err := b.call(ctx, "list "+prefix, func(ctx context.Context) error {
			var err error
			resp, err = b.s3.ListObjectsV2(ctx, in)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, o := range resp.Contents {
			out = append(out, object{Key: aws.ToString(o.Key), Size: b.sizeOf(aws.ToString(o.Key), aws.ToInt64(o.Size))})
		}
		if !aws.ToBool(resp.IsTruncated) || resp.NextContinuationToken == nil {
			return out, nil
		}
		token = resp.NextContinuationToken
	}
}
