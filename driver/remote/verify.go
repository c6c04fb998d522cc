package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
)

// Verification finds a loss that spares format.json (review 27r3 S3): an
// age-based expiry whose second wave follows lost()'s rewrite of
// format.json, an operator or provider deleting some log/ or obj/
// objects. Probe's HEAD of format.json cannot see it; nothing else looks
// until a read meets a missing object, one shard at a time.
//
// A pass compares a view of the index with a listing of the bucket:
//
//   - the view, taken at the start of the pass under d.mu alone: the log
//     objects the index relies on (those after the snapshot, or holding
//     live inline shards), the large-shard objects it points to and the
//     snapshot it was last written as;
//   - the listing of P/log/ and then P/obj/, one page (1000 keys) at a
//     time with StartAfter, so a pass is resumed where it stopped and no
//     step re-lists from scratch; it begins verifyLag after the view, so
//     a listing that lags behind writes (an eventually consistent
//     provider) still shows every object of the view;
//   - a view key the listing skipped is a candidate, confirmed with a
//     HEAD: only a 404, answered again lostConfirm later, counts (a found
//     object was a lagging listing, a single 404 may be a provider's
//     hiccup), and only while the index still relies on it afterwards.
//     Objects written during the listing are not in the view; those
//     compaction moved shards out of or deleted are no longer relied on
//     by then (compaction takes a log object out of d.segs, and replaced
//     or deleted shards out of d.shards, before it deletes their
//     objects); objects are never written again under a name once listed
//     (names carry a sequence and the instance).
//
// On a confirmed loss the shards in the lost objects are deleted from the
// index through the log, each only where it was lost (opShardDel with
// onlyIf, as lost() does), and a lost log object or snapshot makes it
// write a snapshot of the index, so that the records and shard locations
// the lost objects held are in the bucket again (what the memory still
// holds is not lost; only shard bytes are). The drive then lacks what it
// lost, as on a replaced disk, and the scanner and the healer refill it;
// Probe reports it offline this once, so that the engine's heals are
// retried, as after lost().
//
// Cost: at most one pass per Config.VerifyEvery (the next begins
// VerifyEvery after the previous began), each of ceil(objects/1000) LIST
// requests plus two HEADs per candidate (one more for the snapshot). A
// step runs in a Probe that sent its HEAD (at most one per ProbeQuiet on
// a busy drive) and sends at most verifyPages LIST pages and verifyHeads
// HEADs, within verifyStepTime: a drive of 300,000 objects is listed over
// 15 steps, about 7.5 minutes at one probe per 30 s. Candidates are
// confirmed in rounds (confirm): the first HEADs of up to verifyBatch of
// them, verifyParallel in flight (half of Config.MaxConcurrent at most,
// the data path keeping the other half), one wait until the first 404s
// are lostConfirm old (none when the round took longer), the second
// HEADs of those. Measured against the in-process vaultd (remote 29,
// TestRemote29VerifyMeasure, 8 in flight): on loopback a step confirms
// about 4,100 lost objects (the verifyHeads cap) in 2.4 s, so 100,000
// take about 25 steps, 13 minutes at one probe per 30 s; with 20 ms added
// to each request about 850 (the step time is the bound): 100,000 in
// about 120 steps, an hour. (Before, a step sent at most 64 HEADs one at
// a time, first and second ones sharing them: 32 objects a step, 26
// hours for 100,000.) A step holds lostMu
// (lost() and verification exclude each other) and no lock of the data
// path across a request: the view is copied under d.mu, candidates are
// checked under it afterwards, and compactMu is taken only to write the
// snapshot after a loss. The view holds one string header per object (the
// strings are the index's): about 5 MB for 300,000 objects, during a
// pass. A read-only Driver does not verify: it may not write; nor does a
// fenced one (another node owns the drive, and its compaction deletes
// objects this node's stale index still lists).

// DefaultVerifyEvery is the default Config.VerifyEvery.
const DefaultVerifyEvery = 10 * time.Minute

const (
	verifyHeads    = 8192            // candidate HEADs per step, first and second
	verifyBatch    = 1024            // candidates awaiting their second HEAD, at most
	verifyParallel = 16              // HEADs in flight, at most (and half of Config.MaxConcurrent)
	verifyStepTime = 5 * time.Second // a step starts no request after this
	verifyLagMax   = time.Minute     // see verifyLag
)

// verifyPages is the LIST pages per step and verifyPageKeys the keys per
// page (0: the service's default, 1000 on S3); variables so that tests
// can spread a pass over many steps and pages.
var (
	verifyPages    = 20
	verifyPageKeys int32
)

// verifyLag is how long after its view a pass starts listing: at most a
// quarter of the period, at most verifyLagMax.
func (d *Driver) verifyLag() time.Duration { return min(d.cfg.VerifyEvery/4, verifyLagMax) }

// verifyPass is a verification in progress (under lostMu).
type verifyPass struct {
	began time.Time
	gen   uint64      // lostCount at the view: a lost() since reloaded the index
	snap  string      // the snapshot the index relied on ("" none)
	keys  [2][]string // the view: log objects, large-shard objects; sorted
	phase int         // 0: listing log/; 1: listing obj/; 2: confirming
	after string      // the last key listed in this phase
	i     int         // keys[phase][:i] are accounted for
	cands []string    // not listed: to confirm with a HEAD
	again []suspect   // answered 404 once: asked again lostConfirm later
	seen  []string    // objects of d.dropped the listing of obj/ showed
}

// suspect is a candidate whose first HEAD answered 404 at at: only a
// second 404, lostConfirm later, counts (a provider's hiccup is not a
// loss; lost() confirms format.json's 404 likewise).
type suspect struct {
	key string
	at  time.Time
}

var verifyPrefix = [2]string{"log/", "obj/"}

// Verifications returns how many verification passes completed and how
// many objects they found lost from the bucket (see verify.go).
func (d *Driver) Verifications() (passes, lostObjects uint64) {
	return d.verifyPasses.Load(), d.lostObjects.Load()
}

// verifyStep advances the verification by one step (see above). It
// returns an error, wrapping driver.ErrOffline, only when it found and
// handled a loss, or failed to handle one (retried at the next step).
func (d *Driver) verifyStep(ctx context.Context) error {
	if d.cfg.ReadOnly || d.cfg.VerifyEvery < 0 {
		return nil
	}
	if d.cfg.Fence != nil && d.cfg.Fence.Fence(ctx) != nil {
		// Another node owns the drive: its compaction deletes objects
		// this stale index relies on, and this node may not write.
		return nil
	}
	if !d.lostMu.TryLock() {
		return nil
	}
	defer d.lostMu.Unlock()
	now := time.Now()
	p := d.vpass
	if p == nil || p.gen != d.lostCount.Load() {
		if p == nil && now.Before(d.vnext) {
			return nil
		}
		d.vpass, d.vnext = d.verifyView(now), now.Add(d.cfg.VerifyEvery)
		return nil
	}
	if now.Sub(p.began) < d.verifyLag() {
		return nil
	}
	for pages := 0; p.phase < 2 && pages < verifyPages && time.Since(now) < verifyStepTime; pages++ {
		objs, more, err := d.be.listPage(ctx, d.key(verifyPrefix[p.phase]), p.after)
		if err != nil {
			return nil // the next step lists this page again
		}
		v := p.keys[p.phase]
		for _, o := range objs {
			if _, ok := d.dropped[o.Key]; ok && p.phase == 1 {
				p.seen = append(p.seen, o.Key)
			}
			for p.i < len(v) && v[p.i] < o.Key {
				p.cands = append(p.cands, v[p.i])
				p.i++
			}
			if p.i < len(v) && v[p.i] == o.Key {
				p.i++
			}
		}
		if more && len(objs) > 0 {
			p.after = objs[len(objs)-1].Key
			continue
		}
		p.cands = append(p.cands, v[p.i:]...)
		if p.phase == 1 {
			d.sweepDropped(ctx, p)
		}
		p.phase, p.after, p.i = p.phase+1, "", 0
	}
	if p.phase < 2 {
		return nil
	}
	return d.verifyConfirm(ctx, p, now)
}

// verifyView takes the view of a new pass.
func (d *Driver) verifyView(now time.Time) *verifyPass {
	p := &verifyPass{began: now, gen: d.lostCount.Load()}
	d.mu.RLock()
	p.snap = d.snapKey
	for k := range d.segs {
		if d.reliesOnLog(k) {
			p.keys[0] = append(p.keys[0], k)
		}
	}
	for _, l := range d.shards {
		switch {
		case !l.inline:
			p.keys[1] = append(p.keys[1], l.obj)
		case l.size > 0 && d.segs[l.obj] == nil:
			// A log object a snapshot points into but Open did not
			// list: lost while no Driver ran (review 28r). A shard of
			// no bytes is read without a request: it relies on none.
			p.keys[0] = append(p.keys[0], l.obj)
		}
	}
	d.mu.RUnlock()
	slices.Sort(p.keys[0])
	p.keys[0] = slices.Compact(p.keys[0])
	slices.Sort(p.keys[1]) // a shard object has one shard: no duplicates
	return p
}

// verifyConfirm confirms candidates of p (confirm) and handles those
// lost; once none is left, the pass is over.
func (d *Driver) verifyConfirm(ctx context.Context, p *verifyPass, start time.Time) error {
	if rw := d.vrewrite; rw != nil {
		// A rewrite under way (d.snapKey "" meanwhile): the pass waits
		// for it, and one that failed put the lost snapshot back as
		// d.snapKey, which this step asks about again (review 28r3b).
		select {
		case <-rw.done:
			d.vrewrite = nil
			if rw.err != nil && p.snap == "" {
				d.mu.RLock()
				p.snap = d.snapKey
				d.mu.RUnlock()
			}
		case <-ctx.Done():
			return nil
		}
	}
	snapLost := false
	snap := p.snap
	if p.snap != "" {
		d.mu.RLock()
		same := d.snapKey == p.snap
		d.mu.RUnlock()
		if same {
			_, err := d.be.head(ctx, p.snap)
			switch {
			case errors.Is(err, driver.ErrNotFound):
				snapLost = true
			case err != nil:
				return nil // the next step asks again
			}
		}
		p.snap = ""
	}
	p.cands = d.reliedOn(p.cands) // no HEAD for what the drive deleted itself since the view
	gone := d.confirm(ctx, p, start)
	n := 0 // objects lost that the index relied on
	if len(gone) > 0 || snapLost {
		lostSnap := ""
		if snapLost {
			lostSnap = snap
		}
		var err error
		if n, err = d.verifyLost(ctx, gone, lostSnap); err != nil {
			// Asked again, and handled, at the next step.
			for _, k := range gone {
				p.again = append(p.again, suspect{key: k}) // confirmed: one more 404 will do
			}
			if snapLost {
				p.snap = snap
			}
			return fmt.Errorf("driver/remote: probe: %w: objects lost from the bucket: %v", driver.ErrOffline, err)
		}
	}
	if len(p.cands) == 0 && len(p.again) == 0 && p.snap == "" {
		d.vpass = nil
		d.verifyPasses.Add(1)
	}
	if n > 0 {
		return fmt.Errorf("driver/remote: probe: %w: %d objects lost from the bucket (format.json kept): their shards deleted from the index, for heal to refill", driver.ErrOffline, n)
	}
	return nil
}

// confirm asks about p's candidates and suspects within the step begun
// at start and returns those confirmed lost (two 404s, lostConfirm
// apart). It works in rounds: the first HEADs of a batch of candidates
// (those answered 404 become suspects, at most verifyBatch waiting),
// then the second HEADs of the suspects whose first 404 is lostConfirm
// old, waiting for them when nothing else is left to ask; each round's
// HEADs go verifyParallel at a time (headAll). It stops at verifyHeads
// HEADs, at verifyStepTime, or at a HEAD that failed (what is left is
// asked at the next step).
func (d *Driver) confirm(ctx context.Context, p *verifyPass, start time.Time) (gone []string) {
	heads := 0
	// ctx ended: headAll sends nothing (errNotAsked, not a failure), so
	// without this check the loop would go round until verifyStepTime
	// (review 29r).
	for heads < verifyHeads && time.Since(start) < verifyStepTime && ctx.Err() == nil {
		asked, failed := 0, false
		if n := min(len(p.cands), verifyBatch-len(p.again), verifyHeads-heads); n > 0 {
			batch := p.cands[:n]
			errs, at, sent := d.headAll(ctx, batch, start)
			heads, asked = heads+sent, sent
			var left []string
			for i, k := range batch {
				switch err := errs[i]; {
				case errors.Is(err, driver.ErrNotFound):
					p.again = append(p.again, suspect{key: k, at: at[i]})
				case err != nil:
					left = append(left, k) // asked again at the next step
					failed = failed || !errors.Is(err, errNotAsked)
				}
			}
			p.cands = append(left, p.cands[n:]...)
		}
		var ready, waiting []suspect
		for _, s := range p.again {
			if time.Since(s.at) >= lostConfirm && len(ready) < verifyHeads-heads {
				ready = append(ready, s)
			} else {
				waiting = append(waiting, s)
			}
		}
		if failed || len(ready) == 0 {
			if failed || len(p.again) == 0 {
				if failed || asked == 0 {
					return gone
				}
				continue
			}
			if asked > 0 && len(p.cands) > 0 && len(p.again) < verifyBatch {
				continue // more first HEADs while these age
			}
			oldest := p.again[0].at
			for _, s := range p.again {
				if s.at.Before(oldest) {
					oldest = s.at
				}
			}
			wait := lostConfirm - time.Since(oldest)
			if time.Since(start)+wait >= verifyStepTime {
				return gone
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return gone
			}
			continue
		}
		keys := make([]string, len(ready))
		for i, s := range ready {
			keys[i] = s.key
		}
		errs, _, sent := d.headAll(ctx, keys, start)
		heads += sent
		for i, s := range ready {
			switch err := errs[i]; {
			case errors.Is(err, driver.ErrNotFound):
				gone = append(gone, s.key)
			case err != nil:
				waiting = append(waiting, s) // asked again at the next step
				failed = failed || !errors.Is(err, errNotAsked)
			}
		}
		p.again = waiting
		if failed {
			return gone
		}
	}
	return gone
}

// errNotAsked marks a HEAD headAll did not send: the step's time was up,
// ctx ended or another HEAD had failed.
var errNotAsked = errors.New("not asked")

// headAll HEADs keys, verifyParallel at a time (at most half of
// Config.MaxConcurrent, so that the data path keeps the other half of
// the request slots), and returns each one's error (nil: found;
// driver.ErrNotFound: a 404) and when it answered, and how many it sent.
// It sends none after verifyStepTime since start, once ctx ended, or
// once one failed otherwise (errNotAsked).
func (d *Driver) headAll(ctx context.Context, keys []string, start time.Time) (errs []error, at []time.Time, sent int) {
	errs, at = make([]error, len(keys)), make([]time.Time, len(keys))
	var next, nsent atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(len(keys), verifyParallel, max(1, d.cfg.MaxConcurrent/2)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(keys) {
					return
				}
				if failed.Load() || ctx.Err() != nil || time.Since(start) >= verifyStepTime {
					errs[i] = errNotAsked
					continue
				}
				nsent.Add(1)
				_, errs[i] = d.be.head(ctx, keys[i])
				at[i] = time.Now()
				if errs[i] != nil && !errors.Is(errs[i], driver.ErrNotFound) {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return errs, at, int(nsent.Load())
}

// noteDropped records the large-shard objects of the lost-shard
// deletions of ops that applied (under lostMu): they are left in the
// bucket (review 28r M2), and sweepDropped removes those found there.
func (d *Driver) noteDropped(ops []*op) {
	now := time.Now()
	for _, o := range ops {
		if o.err == nil && o.onlyIf != nil && !o.onlyIf.inline {
			if d.dropped == nil {
				d.dropped = map[string]time.Time{}
			}
			d.dropped[o.onlyIf.obj] = now
		}
	}
}

// sweepDropped, once p listed obj/, deletes the objects dropped as lost
// before p began that the listing showed: the loss was a provider's
// miss, and nothing references them (names are never reused; lost(),
// which reloads the index, excludes a step; checked under d.mu anyway).
// Those it did not show are gone indeed: forgotten. A failed DELETE
// leaves the object for the next pass or Open (review 28r2).
func (d *Driver) sweepDropped(ctx context.Context, p *verifyPass) {
	if len(d.dropped) == 0 {
		return
	}
	seen := map[string]bool{}
	for _, k := range p.seen {
		seen[k] = true
	}
	p.seen = nil
	var del []string
	for k, at := range d.dropped {
		if !at.Before(p.began) {
			continue // dropped during this pass's listing: the next pass looks
		}
		if seen[k] {
			del = append(del, k)
		}
		delete(d.dropped, k)
	}
	if len(del) == 0 {
		return
	}
	d.mu.RLock()
	for _, l := range d.shards {
		if i := slices.Index(del, l.obj); i >= 0 {
			del = slices.Delete(del, i, i+1) // referenced again (a reload): not an orphan
		}
	}
	d.mu.RUnlock()
	for _, k := range del {
		if err := d.be.delete(ctx, k); err != nil && !errors.Is(err, driver.ErrNotFound) {
			d.dropped[k] = time.Time{} // asked again at the next pass
			continue
		}
		d.log.Info("remote drive: an object dropped as lost was there after all (a provider's miss); removed, unreferenced", "object", k)
	}
}

// reliedOn returns the keys of keys (log or large-shard objects) the index
// still relies on, in place.
func (d *Driver) reliedOn(keys []string) []string {
	if len(keys) == 0 {
		return keys
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	objs := map[string]bool{} // large-shard objects, and log objects shards point into that d.segs lacks
	for _, l := range d.shards {
		if !l.inline || l.size > 0 && d.segs[l.obj] == nil {
			objs[l.obj] = true
		}
	}
	return slices.DeleteFunc(keys, func(k string) bool { return !d.reliesOnLog(k) && !objs[k] })
}

// reliesOnLog reports whether the index relies on log object k: it holds
// live inline shards, or entries no snapshot covers (under d.mu). One it
// does not rely on is deleted by compaction, or may be lost harmlessly.
func (d *Driver) reliesOnLog(k string) bool {
	sg := d.segs[k]
	return sg != nil && (sg.seq > d.snapSeq || sg.live > 0)
}

// verifyLost handles objects gone from the bucket (HEAD answered 404) and
// the loss of snapshot lostSnap (if not ""). Those the index no longer
// relies on (compaction took a log object out of it, a shard was replaced
// or deleted: their objects were deleted by the drive) are not lost. For
// the others it deletes from the index the shards in them, where they
// still are, and writes a snapshot if a lost log object or the lost
// snapshot held index entries. It returns how many objects it found lost.
func (d *Driver) verifyLost(ctx context.Context, gone []string, lostSnap string) (int, error) {
	lost := make(map[string]bool, len(gone))
	for _, k := range gone {
		lost[k] = false
	}
	var ops []*op
	logs := 0
	d.mu.RLock()
	for sh, l := range d.shards {
		if _, ok := lost[l.obj]; ok {
			lost[l.obj] = true
			loc := l
			ops = append(ops, &op{e: entry{op: opShardDel, shard: sh}, onlyIf: &loc})
		}
	}
	for _, k := range gone {
		if d.reliesOnLog(k) {
			lost[k] = true
			logs++
		}
	}
	if lostSnap != "" && d.snapKey != lostSnap {
		lostSnap = "" // a compaction replaced it
	}
	d.mu.RUnlock()
	n := 0
	for _, relied := range lost {
		if relied {
			n++
		}
	}
	if lostSnap != "" {
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if len(ops) > 0 {
		if err := d.submitAll(ctx, ops); err != nil {
			return 0, fmt.Errorf("deleting %d lost shards from the index: %w", len(ops), err)
		}
	}
	dropped := 0
	for _, o := range ops {
		switch {
		case o.err == nil:
			dropped++
		case !errors.Is(o.err, driver.ErrNotFound) && !errors.Is(o.err, errMoved):
			d.noteDropped(ops)
			return 0, fmt.Errorf("deleting a lost shard from the index: %w", o.err)
		}
	}
	d.noteDropped(ops)
	if logs > 0 || lostSnap != "" {
		if err := d.resnapshotOwed(ctx, lostSnap); err != nil {
			return 0, fmt.Errorf("writing the index again: %w", err)
		}
	}
	d.lostObjects.Add(uint64(n))
	d.log.Warn("remote drive: objects lost from the bucket (format.json kept); their shards deleted from the index, for heal to refill",
		"objects", n, "log_objects", logs, "shards", dropped, "snapshot_lost", lostSnap != "")
	return n, nil
}

// rewrite is a snapshot written again after a loss, on closeCtx.
type rewrite struct {
	done chan struct{}
	err  error // once done is closed
}

// resnapshotOwed runs resnapshot(lostSnap) on closeCtx, or joins the one
// running, and waits for it within ctx (under lostMu). A rewrite that
// needs longer than a probe's ctx (a large index over a slow link) goes
// on past it instead of failing at every step for ever, with the drive
// reported offline at each and the bucket never holding what the lost
// objects held (review 28r2). While it runs d.snapKey is "", so the
// next step does not take the snapshot for lost again.
func (d *Driver) resnapshotOwed(ctx context.Context, lostSnap string) error {
	rw := d.vrewrite
	if rw != nil {
		select {
		case <-rw.done:
			rw = nil // an earlier one, over: this loss asks for another
		default:
		}
	}
	if rw == nil {
		rw = &rewrite{done: make(chan struct{})}
		if !d.goBG(func() {
			rw.err = d.resnapshot(d.closeCtx, lostSnap)
			close(rw.done)
		}) {
			return fmt.Errorf("%w: closed", driver.ErrOffline)
		}
		d.vrewrite = rw
	}
	select {
	case <-rw.done:
		d.vrewrite = nil
		return rw.err
	case <-ctx.Done():
		return fmt.Errorf("under way past the probe: %w", ctx.Err())
	}
}

// resnapshot writes a snapshot of the index, under compactMu (waited for
// within ctx); if the current snapshot is lostSnap (lost), even when it
// covered the index.
func (d *Driver) resnapshot(ctx context.Context, lostSnap string) error {
	for !d.compactMu.TryLock() {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer d.compactMu.Unlock()
	d.mu.Lock()
	cleared := lostSnap != "" && d.snapKey == lostSnap
	if cleared {
		d.snapKey = "" // gone: nothing to delete, and snapshot writes one
	}
	d.mu.Unlock()
	err := d.snapshot(ctx)
	if err != nil && cleared {
		// Still the lost one: the next step finds it lost again and
		// writes it, instead of taking it for replaced (review 28r).
		d.mu.Lock()
		if d.snapKey == "" {
			d.snapKey = lostSnap
		}
		d.mu.Unlock()
	}
	return err
}

// listPage returns one page of the objects under prefix after startAfter,
// in key order, and whether more follow.
func (b *backend) listPage(ctx context.Context, prefix, startAfter string) ([]object, bool, error) {
	var resp *s3.ListObjectsV2Output
	in := &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix}
	if verifyPageKeys > 0 {
		in.MaxKeys = aws.Int32(verifyPageKeys)
	}
	if startAfter != "" {
		in.StartAfter = &startAfter
	}
	err := b.call(ctx, "list "+prefix, func(ctx context.Context) error {
		var err error
		resp, err = b.s3.ListObjectsV2(ctx, in)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	out := make([]object, 0, len(resp.Contents))
	for _, o := range resp.Contents {
		out = append(out, object{Key: aws.ToString(o.Key), Size: b.sizeOf(aws.ToString(o.Key), aws.ToInt64(o.Size))})
	}
	return out, aws.ToBool(resp.IsTruncated), nil
}
