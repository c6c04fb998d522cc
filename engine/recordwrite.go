package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// The quorum write of metadata records.
//
// A record write puts one record (shard j's copy to drive j) on the drives
// of a set and succeeds once a write quorum took it or refused it as stale
// (driver.ErrStale: a newer version is there, so the write lost to it
// under last-writer-wins and the outcome is final). Then, and only then,
// the shard files it made unreachable are removed (collect): those of the
// versions it replaced and, where a newer version had already landed, its
// own.
//
// A write short of its quorum either is rolled back (the records of an
// upload, of a migration's copy) or, if forward, stays where it landed:
// a new version (latest) and a read's write-back (writeBack). A new
// version's records are never taken back because a read may already have
// served them: a read serves a version only once it is on a write quorum
// of drives (ABD: it writes it back there first, see read.go), and a
// version's record can then only be replaced by newer ones, never reverted
// to an older one. Taking a record back after such a read made the read's
// answer vanish (a value seen, then unseen), and made a stale refusal that
// another write had counted towards its quorum vanish with it (an
// acknowledged write whose older version came back): the partition
// suite's anomaly. The data of a new version whose write failed is kept
// (errRecordsLeft) for a read that rolls it forward.
//
// Every record write of the engine goes through recordWrite: a put, a
// delete, a completed multipart upload (latest), an upload's or part's
// record, a heal, a migration's copy. put returns at the write quorum
// plus the straggler grace (fanOut, quorum.go) and settles the
// stragglers later; putAll waits for every drive, for a caller that
// orders its writes (a migration's copy, which then tallies, rolls back
// or collects itself).

// recordWrite is one quorum write of records under one index key: where
// they go and how many drives must take them.
type recordWrite struct {
	e                      *Engine
	ikey                   string // the index key the records are stored under
	tenant, container, key string // the artifact whose shard files the records name
	drives                 []driver.Driver
	wq                     int // the write quorum
	// keepShards marks the records of an upload or its completion marker:
	// what they replace may name part data still in use, so no shard file
	// is collected, and a drive that refused the record as stale holds
	// another record and does not count towards the quorum.
	keepShards bool
	// keepReplaced marks a version pointer's write (version.go): the
	// record it replaces may have been moved under a version key, whose
	// record now names its shard files, so none is collected.
	keepReplaced bool
	// copied marks the rewrite of a stored version's record (a
	// migration's copy, the drop of its older placement): rec names shard
	// files that were there before the write, which a newer version (a
	// metadata update) may name too. A drive that refused it as stale
	// keeps them: they are not the stale write's own to collect.
	copied bool
	// forward marks a write that is never rolled back, also short of its
	// quorum (a new version, a read's write-back, a heal): what landed
	// stays, and a straggler landing late stays too.
	forward bool
	// seen, if set, receives the records a latest write met: those it
	// replaced and those of the drives that refused it as stale (a
	// version pointer's write checks them, version.go point).
	seen *metRecords
	// short is set by latest when a drive of the write neither took the
	// version nor holds a newer one: the artifact is degraded (a drive
	// offline, slow or failing), and its put queues it for healing.
	short bool
}

// metRecords are the records a write met on its drives.
type metRecords struct {
	replaced []*record // taken over by the write
	refused  []*record // newer ones that refused it as stale
}

// errRecordsLeft is wrapped (with ErrWriteQuorum) by a forward write that
// failed after some of its records landed, or may land late: the version
// may still be served (a read rolls it forward), so the caller must keep
// the data its records name.
var errRecordsLeft = errors.New("engine: records of the failed write were left in place")

// errLate marks a drive of a record write that did not answer in time: its
// record may still land.
var errLate = errors.New("engine: drive did not answer in time")

// replay marks w as the write of rec, a version served or acknowledged,
// to the drives that missed it (Heal, a read's write-back): forward, what
// lands is never taken back; and for a version pointer keepReplaced, as
// the pointer writes that adopt a plain record as the null version: such
// a drive may still hold the key's plain record from before versioning,
// whose shard files the null version now names (review 26b B1: a delete
// marker healed onto it deleted the null version's shard there). Where
// the first pointer write collected a superseded null version
// (Suspended), the replay leaves its files on that drive as garbage.
// And copied: a drive refusing it as stale keeps rec's files, which a
// newer record of the same data there (a tag, retention or metadata
// update) names (review 26c C1); files Heal rebuilt for a drive that
// turns out to hold another, newer version stay there as garbage.
func (w *recordWrite) replay(rec *record) {
	w.forward = true
	w.keepReplaced = rec.Pointer
	w.copied = true
}

// artifactWrite returns the record write of key's artifact records.
func (e *Engine) artifactWrite(tenant, container, key string, drives []driver.Driver, wq int) *recordWrite {
	return e.recordWriteAt(indexPrefix(tenant, container)+key, tenant, container, key, drives, wq)
}

// recordWriteAt returns the write of records stored under index key ikey
// (a multipart upload's or part's) whose shard files are named after key.
func (e *Engine) recordWriteAt(ikey, tenant, container, key string, drives []driver.Driver, wq int) *recordWrite {
	return &recordWrite{e: e, ikey: ikey, tenant: tenant, container: container, key: key, drives: drives, wq: wq}
}

// recordPut is the outcome of one drive's PutRecord.
type recordPut struct {
	err     error
	prev    *record       // the record replaced, if any
	prevRaw driver.Record // as stored, to roll back to
	// unsettled marks a stale refusal by a record that may yet be
	// rolled back (rollbackable): it does not count towards the quorum.
	unsettled bool
	checked   bool // markUnsettled looked at this refusal
	// carried is the older placement's record the record written here
	// carries (record.Prev, writeMoved): its shard files stay.
	carried *record
}

// took reports whether a drive took a record write or (unless keepShards)
// refused it as stale for a newer version that stays: either way its
// outcome is final.
func (w *recordWrite) took(p recordPut) bool {
	return p.err == nil || !w.keepShards && errors.Is(p.err, driver.ErrStale) && !p.unsettled
}

// rollbackable reports whether r, found on a drive, may still be taken
// back there: a live inline version is rolled back when fewer than k
// drives took it (latest), since the records it replaced hold the only
// copy of the version before. Every other new version stays once written
// (forward). A write refused as stale for such a record must not count
// the refusal: once the record is rolled back the drive holds the version
// before again, older than the write (a delete counted as done that the
// version before then outlived; an inline version acknowledged with
// fewer than k shards: TestStaleRefusalStays).
func rollbackable(r *record) bool { return r.IsInline && !r.Deleted }

// reversionable reports whether rec names no shard files (inline, a
// tombstone or a pointer): written again under a newer version it cannot
// name files that a concurrent write collected.
func reversionable(rec *record) bool {
	return len(rec.Parts) == 0 && (rec.IsInline || rec.Deleted || rec.Pointer)
}

// markUnsettled reads the record of each drive that refused the write of
// version v as stale and marks the refusal unsettled unless that record
// is newer than v and stays: it is not rollbackable, or it is on k drives
// of the set, so its write is kept (latest); one it could not read, or
// found no newer than v (the newer one was rolled back meanwhile), is
// unsettled too. It looks at each refusal once: a settled one stays so
// (the newer version stays, or gives way only to newer ones), and an
// unsettled one is put again (latest), its new outcome looked at anew.
// It reports whether any refusal is unsettled.
func (w *recordWrite) markUnsettled(ctx context.Context, res []recordPut, v driver.Version) bool {
	any := false
	var held map[driver.Version]int // the versions on the set's drives, read once if needed
	for j := range res {
		if !errors.Is(res[j].err, driver.ErrStale) {
			continue
		}
		if !res[j].checked {
			res[j].checked = true
			got, err := w.drives[j].GetRecord(ctx, w.ikey)
			var r *record
			if err == nil {
				r, err = unmarshalRecord(got.Data)
			}
			switch {
			case err != nil || got.Version.Compare(v) <= 0:
				res[j].unsettled = true
			case rollbackable(r):
				if held == nil {
					held = map[driver.Version]int{}
					recs, _ := w.e.readRecordsK(ctx, w.drives, w.ikey, r.Data)
					for _, o := range recs {
						if o != nil {
							held[o.Version]++
						}
					}
				}
				res[j].unsettled = held[r.Version] < r.Data
			}
		}
		any = any || res[j].unsettled
	}
	return any
}

// write puts rec on the drives where ok is set and finishes the write:
// it fails with ErrWriteQuorum, rolled back, unless w.wq drives took it.
func (w *recordWrite) write(ctx context.Context, rec *record, inline [][]byte, ok []bool) error {
	res, settle := w.put(ctx, rec, inline, ok)
	if !w.keepShards {
		w.markUnsettled(ctx, res, rec.Version)
	}
	err := w.finish(ctx, rec, res)
	settle(err == nil)
	return err
}

// heldWrite is a record write on its quorum whose outcome its caller
// decides later (writeHeld): nothing it made unreachable is collected
// yet, and the records it replaced can be put back.
type heldWrite struct {
	w      *recordWrite
	rec    record // as written
	res    []recordPut
	settle func(kept bool)
}

// writeHeld is write for a record that stands only if a later write does
// (a moved upload's part, kept once the upload's record is on its
// quorum): once w.wq drives took rec it returns with nothing collected,
// and the caller must end it exactly once with keep or undo. A write
// short of its quorum is rolled back, as by write, and fails. Not for a
// forward write.
func (w *recordWrite) writeHeld(ctx context.Context, rec *record, inline [][]byte, ok []bool) (*heldWrite, error) {
	res, settle := w.put(ctx, rec, inline, ok)
	if !w.keepShards {
		w.markUnsettled(ctx, res, rec.Version)
	}
	if err := w.tally(res); err != nil {
		w.rollback(ctx, rec, res)
		settle(false)
		return nil, err
	}
	return &heldWrite{w: w, rec: *rec, res: res, settle: settle}, nil
}

// keep ends a held write that stands: with collect, the shard files it
// made unreachable are removed, as write does; without, they stay (its
// caller cannot tell yet whether another record still names them), also
// on a straggler landing later.
func (h *heldWrite) keep(ctx context.Context, collect bool) {
	if collect {
		h.w.collect(ctx, &h.rec, h.res)
	} else {
		h.w.keepShards = true // read by a straggler's collect once settled
	}
	h.settle(true)
}

// undo ends a held write that does not stand: each drive that took the
// record gets back the one it replaced, whose shard files are still
// there. A drive that answered an error may have taken it (a lost
// reply): one holding the record as written loses it.
func (h *heldWrite) undo(ctx context.Context) {
	h.w.undo(ctx, &h.rec, h.res)
	h.settle(false)
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for j, r := range h.res {
		d := h.w.drives[j]
		if r.err == nil || d == nil || errors.Is(r.err, driver.ErrStale) {
			continue
		}
		raw, err := d.GetRecord(ctx, h.w.ikey)
		if err != nil || raw.Version != h.rec.Version {
			continue
		}
		if data, found, err := wholeRecord(ctx, d, raw); err == nil && found {
			if got, err := unmarshalRecord(data); err == nil && sameData(got, &h.rec) {
				if err := d.DeleteRecord(ctx, h.w.ikey, raw.Version); err != nil && !errors.Is(err, driver.ErrNotFound) {
					h.w.e.log.Warn("record rollback failed", "shard", j, "err", err)
				}
			}
		}
	}
}

// staleRetryFor bounds how long latest writes again a write that met a
// newer version. Writes of one key racing each other (many clients
// putting small objects under one key) each meet newer live inline
// versions that may yet be rolled back: one no read can have served yet
// is re-versioned, one a read may have served waits for those versions
// to stay or go, writing its own version again. A write may so lose
// several rounds; each retry first waits a random while that doubles
// with every round (staleBackoff), so the race thins out instead of
// repeating in step. Twice the straggler grace lets a racing write that
// waits for a straggler decide.
const staleRetryFor = 2 * maxStraggle

// staleBackoff is how long latest waits before its retry number try
// (from 0): a random duration below 1 ms << try, at most 64 ms.
func staleBackoff(try int) time.Duration {
	return rand.N(time.Millisecond << min(try, 6))
}

// latest is write for a new version of an artifact (a put, a delete, a
// completed multipart upload). The record it reports replaced is the one
// replaced on a strict majority of the drives (replacedByMajority), for
// usage accounting. Versions are wall-clock time, and another
// node's clock may run ahead of this one's: if a drive already holds a
// newer version of key than rec, the engine's clock is moved past it and
// rec is written again with a newer version, so the write that returns
// last is the one readers see, whatever the clocks say. rec's Version and
// Modified change accordingly. Only a version from the future (by this
// node's clock) causes this, or a newer live inline version, which may
// yet be rolled back (rollbackable), when rec names no shard files; and
// only while no read can have served rec's attempt (servable): after
// that, rec is written again under its own version, so that a write
// takes effect once (TestWriteTakesEffectOnce). A
// drive that refused it as stale counts towards its quorum if the newer
// version there is final (new versions are not rolled back, but for an
// inline one on fewer than k drives), else not
// (TestStaleRefusalStays). Callers take rec's version
// right before calling, once the body is stored, so of concurrent writes
// the one that completes last wins (as in S3), not the one that started
// last.
func (w *recordWrite) latest(ctx context.Context, rec *record, inline [][]byte, ok []bool) (replaced *record, err error) {
	e := w.e
	w.forward = true
	res, settle, waitLate := w.putLate(ctx, rec, inline, ok)
	settles, waits := []func(bool){settle}, []func(context.Context) map[int]recordPut{waitLate}
	defer func() {
		for _, s := range settles {
			s(err == nil)
		}
	}()
	began := time.Now()
	for try := 0; time.Since(began) < staleRetryFor; try++ {
		newest, stale := w.newestAbove(ctx, res, rec.Version)
		future := stale && int64(binary.BigEndian.Uint64(newest[:8])) > e.cfg.Now().UnixNano()
		// A refusal for a newer version that may yet be rolled back
		// does not count (rollbackable); a write naming no shard files
		// is written again instead.
		unsettled := !w.keepShards && w.markUnsettled(ctx, res, rec.Version) && reversionable(rec)
		if !future && (!unsettled || w.tally(res) == nil) {
			// Nothing newer, or a version from the past: a concurrent
			// write that completed first. Written again with the same
			// data, this one could name shard files that write already
			// collected as those of the version it replaced. Or it has
			// its quorum without the unsettled refusals.
			break
		}
		if future && landed(res) >= w.wq {
			break // on a write quorum itself: a read serves it, not the version from the future
		}
		if !sleep(ctx, staleBackoff(try)) {
			break // finished below as it stands: short of its quorum, it fails
		}
		if servable(rec, res) {
			// A read may have served this attempt already: written
			// again under a newer version, the write could take effect
			// twice, above a write acknowledged after that read
			// (TestWriteTakesEffectOnce). Only the same version is
			// written again, to the drives whose refusal is unsettled:
			// where the newer version was rolled back meanwhile, it
			// lands now.
			if future {
				break
			}
			retry := make([]bool, len(res))
			for j := range res {
				retry[j] = res[j].unsettled
			}
			// Fewer drives than the write quorum: a round gets the
			// straggler grace, not until one that hangs answers.
			rctx, cancel := context.WithTimeout(ctx, maxStraggle)
			again, settleAgain, waitAgain := w.putLate(rctx, rec, inline, retry)
			cancel()
			settles, waits = append(settles, settleAgain), append(waits, waitAgain)
			for j := range again {
				if retry[j] {
					res[j] = again[j]
				}
			}
			continue
		}
		e.observe(newest)
		first := rec.Version
		v, now := e.newVersion()
		rec.Version, rec.Modified = v, now.UnixNano()
		// The earlier attempts are settled as not kept, but a latest
		// write is forward: their records that land late stay, on fewer
		// than k drives (not servable), where this attempt replaces them.
		for _, s := range settles {
			s(false)
		}
		again, settleAgain, waitAgain := w.putLate(ctx, rec, inline, ok)
		settles, waits = []func(bool){settleAgain}, []func(context.Context) map[int]recordPut{waitAgain}
		for j := range again {
			// A drive that took the first attempt now reports that
			// attempt as replaced: what it really replaced is what the
			// first attempt did (for rollback and garbage collection).
			if again[j].prev != nil && again[j].prev.Version == first {
				again[j].prev, again[j].prevRaw = res[j].prev, res[j].prevRaw
			}
		}
		res = again
	}
	if !w.keepShards {
		w.markUnsettled(ctx, res, rec.Version)
	}
	replaced = replacedByMajority(res)
	if w.seen != nil {
		for j, r := range res {
			switch {
			case r.err == nil && r.prev != nil:
				w.seen.replaced = append(w.seen.replaced, r.prev)
			case errors.Is(r.err, driver.ErrStale):
				if got, err := w.drives[j].GetRecord(ctx, w.ikey); err == nil {
					if o, err := unmarshalRecord(got.Data); err == nil {
						w.seen.refused = append(w.seen.refused, o)
					}
				}
			}
		}
	}
	if rec.IsInline && !rec.Deleted {
		// An inline version's bytes are its records: on fewer than k
		// drives it cannot be decoded, so no read served it, and the
		// records it replaced hold the only copy of the version before
		// (whose own inline shards they are): put those back. Drives
		// that had not answered may have taken it since: if with them it
		// may be on k, a read may serve it and another write count it
		// (markUnsettled), so their answers are waited for before it is
		// rolled back (probe of session 15: an acknowledged delete lost).
		if took := landed(res); took < rec.Data && took+lateOf(res) >= rec.Data {
			// Also when the client gave up: what the drives hold decides.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), staleRetryFor)
			for _, wait := range waits {
				for j, p := range wait(wctx) {
					if errors.Is(res[j].err, errLate) && p.err == nil {
						res[j] = p
					}
				}
			}
			cancel()
		}
		w.forward = landed(res) >= rec.Data
	}
	for _, r := range res {
		w.short = w.short || r.err != nil && !errors.Is(r.err, driver.ErrStale)
	}
	return replaced, w.finish(ctx, rec, res)
}

// landed counts the drives that took a write whose results are res.
func landed(res []recordPut) int {
	n := 0
	for _, r := range res {
		if r.err == nil {
			n++
		}
	}
	return n
}

// lateOf counts the drives of a write whose results are res that had not
// answered in time: their records may land yet.
func lateOf(res []recordPut) int {
	n := 0
	for _, r := range res {
		if errors.Is(r.err, errLate) {
			n++
		}
	}
	return n
}

// servable reports whether a read may have served, or may yet serve, the
// attempt of rec whose results are res: a live inline version once k
// drives hold it (it cannot be decoded from fewer), any other record
// (a tombstone, a pointer, an empty version) once one drive does. A
// drive that did not answer in time may hold it too.
func servable(rec *record, res []recordPut) bool {
	n := 0
	for _, r := range res {
		if r.err == nil || errors.Is(r.err, errLate) {
			n++
		}
	}
	if rec.IsInline && !rec.Deleted && !rec.Pointer && !rec.Marker && rec.Size > 0 && !sameBytesAsReplaced(rec, res) {
		return n >= rec.Data
	}
	return n > 0
}

// sameBytesAsReplaced reports whether a drive that took rec replaced an
// inline record of the same bytes (a change of metadata only): a read's
// write-back then takes the replaced records' shards (reusedInline), so
// a read may serve rec from one drive (probe of session 15).
func sameBytesAsReplaced(rec *record, res []recordPut) bool {
	for _, r := range res {
		if p := r.prev; r.err == nil && p != nil && p.IsInline && !p.Deleted && p.Size == rec.Size && p.ETag == rec.ETag {
			return true
		}
	}
	return false
}

// replacedByMajority returns the version a write replaced on a strict
// majority of its drives (the placement group's k+m), or on exactly half
// of them including the first drive (slot 0), or nil: the version whose
// size the write may take out of the tenant's usage. Two writes racing to
// replace the same version (the same DELETE through two nodes) each
// replace it on the drives they reach first; those sets are disjoint, so
// at most one of them has a majority, and of two halves only one holds
// slot 0: the version's size leaves usage once. A write that replaced the
// version on fewer drives (drives failed or were offline, or three or
// more writes split the drives) leaves usage high: the safe direction for
// a quota; a race never takes usage below what is stored.
func replacedByMajority(res []recordPut) *record {
	count := map[driver.Version]int{}
	for _, r := range res {
		if r.err == nil && r.prev != nil {
			count[r.prev.Version]++
		}
	}
	for j, r := range res {
		if r.err != nil || r.prev == nil {
			continue
		}
		if c := count[r.prev.Version]; 2*c > len(res) || 2*c == len(res) && j == 0 {
			return r.prev
		}
	}
	return nil
}

// replacedOf returns the newest record a write replaced on any drive, or
// nil: the version the write superseded, as far as the drives know.
func replacedOf(res []recordPut) *record {
	var newest *record
	for _, r := range res {
		if r.err == nil && r.prev != nil && (newest == nil || r.prev.Version.Compare(newest.Version) > 0) {
			newest = r.prev
		}
	}
	return newest
}

// liveSize returns the bytes and artifact count a replaced record held:
// nothing for none or a deletion.
func liveSize(r *record) (bytes, artifacts int64) {
	if r == nil || r.Deleted || r.Pointer {
		return 0, 0 // a pointer's size is its target's, counted there
	}
	return r.Size, 1
}

// newestAbove reports whether any drive refused a write of version v as
// stale and, if so, the newest version those drives hold.
func (w *recordWrite) newestAbove(ctx context.Context, res []recordPut, v driver.Version) (driver.Version, bool) {
	newest, stale := v, false
	for j, r := range res {
		if !errors.Is(r.err, driver.ErrStale) {
			continue
		}
		got, err := w.drives[j].GetRecord(ctx, w.ikey)
		if err == nil && got.Version.Compare(newest) > 0 {
			newest, stale = got.Version, true
		}
	}
	return newest, stale
}

// tally fails with ErrWriteQuorum unless w.wq drives took the write whose
// results are res.
func (w *recordWrite) tally(res []recordPut) error {
	done := 0
	for _, r := range res {
		if w.took(r) {
			done++
		}
	}
	if done < w.wq {
		var first error
		for _, r := range res {
			if r.err != nil {
				first = r.err
				break
			}
		}
		return fmt.Errorf("%w: %d of %d records written, need %d: %w", ErrWriteQuorum, done, len(w.drives), w.wq, first)
	}
	return nil
}

// finish ends a record write whose results are res: it rolls back if
// fewer than w.wq drives took it, else collects the shard files it made
// unreachable (none for keepShards).
func (w *recordWrite) finish(ctx context.Context, rec *record, res []recordPut) error {
	if err := w.tally(res); err != nil {
		if w.forward {
			for _, r := range res {
				if r.err == nil || errors.Is(r.err, errLate) {
					return fmt.Errorf("%w (%w)", err, errRecordsLeft) // took, or may land late
				}
			}
			return err
		}
		w.rollback(ctx, rec, res)
		return err
	}
	w.collect(ctx, rec, res)
	return nil
}

// rollback undoes a record write that did not reach quorum: each drive that
// took rec gets back the record it replaced. A forward write is not
// rolled back.
func (w *recordWrite) rollback(ctx context.Context, rec *record, res []recordPut) {
	if w.forward {
		return
	}
	w.undo(ctx, rec, res)
}

// undo gives each drive that took rec the record it replaced.
func (w *recordWrite) undo(ctx context.Context, rec *record, res []recordPut) {
	ctx = context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for j, r := range res {
		if r.err != nil {
			continue
		}
		wg.Go(func() {
			err := w.drives[j].DeleteRecord(ctx, w.ikey, rec.Version)
			if err == nil && r.prev != nil {
				_, _, err = w.drives[j].PutRecord(ctx, r.prevRaw)
			}
			if err != nil && !errors.Is(err, driver.ErrStale) && !errors.Is(err, driver.ErrNotFound) {
				w.e.log.Warn("record rollback failed", "shard", j, "err", err)
			}
		})
	}
	wg.Wait()
}

// collect removes, after a successful record write, the shard files that
// became unreachable on each drive: rec's own where a newer version
// refused it, else those of the record it replaced that rec does not
// share. A replaced record may be of rec's own version: Heal rewriting
// it (the same shard files, kept), or migration replacing an older map's
// placement of the version with the current map's (other shard files,
// removed). The older placement a replaced record carried (record.Prev)
// goes with it, unless the record written carries it on. Nothing of an
// upload's (keepShards); for a version pointer (keepReplaced) only the
// replaced records' Prevs: the records themselves live on under their
// version keys, which carry no Prev.
func (w *recordWrite) collect(ctx context.Context, rec *record, res []recordPut) {
	if w.keepShards {
		return
	}
	var wg *sync.WaitGroup // and bg, ctx without its cancellation: made for the first delete
	var bg context.Context
	for j, r := range res {
		var gone *record
		switch {
		case errors.Is(r.err, driver.ErrStale) && !rec.Deleted && !w.keepReplaced && !w.copied:
			gone = rec
		case r.err == nil && r.prev != nil && !r.prev.Deleted:
			gone = r.prev
		default:
			continue
		}
		if len(gone.Parts) == 0 && (gone == rec || gone.Prev == nil || len(gone.Prev.Parts) == 0) {
			continue // inline, a tombstone or a pointer (and its Prev): no shard files
		}
		// What stays of old's files: those rec names (a rewrite, or a
		// re-versioned write), and for a pointer those of the record it
		// replaced, which lives on.
		var stays []*record
		if gone != rec {
			stays = append(stays, rec)
			if w.keepReplaced {
				stays = append(stays, gone)
			}
		}
		var drop []*record
		if !w.keepReplaced {
			drop = append(drop, gone)
		}
		if gone != rec && gone.Prev != nil {
			drop = append(drop, gone.Prev)
		}
		for _, old := range drop {
			if len(old.Parts) == 0 {
				continue // inline, a tombstone or a pointer: no shard files
			}
			if r.carried != nil && old.Version == r.carried.Version && sameData(old, r.carried) {
				continue
			}
			slot := old.Shard // the slot it was written for: another map's set may have placed the drive elsewhere
			if old == rec {
				slot = j
			}
			if wg == nil {
				wg, bg = new(sync.WaitGroup), context.WithoutCancel(ctx)
			}
			w.deleteOld(bg, wg, j, old, slot, stays)
		}
	}
	if wg != nil {
		wg.Wait()
	}
}

// deleteOld deletes, on wg, old's shard files of slot from drive j, but
// for those one of stays names (collect).
func (w *recordWrite) deleteOld(ctx context.Context, wg *sync.WaitGroup, j int, old *record, slot int, stays []*record) {
	// A striped record's parts in other PGs are deleted from
	// their own drives (deletePartShards, stripe.go).
	wg.Go(func() {
		if err := w.e.deletePartShards(ctx, w.tenant, w.container, w.key, old, slot, w.drives[j], namedBy(old, stays...)); err != nil {
			w.e.log.Warn("shard delete failed", "pg", old.PG, "shard", j, "err", err)
		}
	})
}

// namedBy returns a deletePartShards skip for old's parts: those one of
// stays names too, in the same PG.
func namedBy(old *record, stays ...*record) func(part) bool {
	return func(p part) bool {
		for _, k := range stays {
			if k != nil && k.PG == old.PG && slices.ContainsFunc(k.Parts, func(q part) bool { return q.DataID == p.DataID }) {
				return true
			}
		}
		return false
	}
}

// putAll writes rec to the drives where ok is set, in parallel, and waits
// for every one of them; the others report ErrWriteQuorum.
func (w *recordWrite) putAll(ctx context.Context, rec *record, inline [][]byte, ok []bool) []recordPut {
	res := make([]recordPut, len(w.drives))
	var wg sync.WaitGroup
	for j, d := range w.drives {
		if !ok[j] || d == nil {
			res[j].err = ErrWriteQuorum
			continue
		}
		wg.Go(func() { res[j] = w.putOne(ctx, rec, j, inline) })
	}
	wg.Wait()
	return res
}

// put is putAll returning once w.wq drives took rec (or refused it as
// stale) and the others had the straggler grace (fanOut); those that did
// not answer by then count as failed (ErrWriteQuorum). The caller must
// call settle exactly once, telling whether the write was kept: a
// straggler that lands afterwards then has the shards it made unreachable
// collected if kept, else it is rolled back.
func (w *recordWrite) put(ctx context.Context, rec *record, inline [][]byte, ok []bool) (res []recordPut, settle func(kept bool)) {
	res, settle, _ = w.putLate(ctx, rec, inline, ok)
	return res, settle
}

// putLate is put also returning waitLate, which waits (until ctx ends) for
// the drives that had not answered when put returned and reports what
// each of them answered: a caller deciding whether to keep the write
// looks at the records that landed late too.
func (w *recordWrite) putLate(ctx context.Context, rec *record, inline [][]byte, ok []bool) (res []recordPut, settle func(kept bool), waitLate func(ctx context.Context) map[int]recordPut) {
	e, n := w.e, len(w.drives)
	lateCh := make(chan fanResult[recordPut], n) // never blocks a sender
	attempt := *rec                              // as written: the caller may re-version rec
	settled := make(chan struct{})
	var kept, forward bool
	var once sync.Once
	// w.forward as the write is settled: latest decides it as it ends,
	// while stragglers of an earlier attempt may be landing.
	settle = func(k bool) { once.Do(func() { kept, forward = k, w.forward; close(settled) }) }
	late := func(j int, p recordPut) {
		lateCh <- fanResult[recordPut]{j, p}
		<-settled
		one := make([]recordPut, n)
		for i := range one {
			one[i].err = ErrWriteQuorum
		}
		one[j] = p
		cctx, cancel := cleanupCtx(ctx)
		defer cancel()
		switch {
		case !kept && !forward:
			w.undo(cctx, &attempt, one)
		case !kept:
		default:
			w.collect(cctx, &attempt, one)
		}
	}
	res, done := fanOut(ctx, e, n, func(j int) bool { return ok[j] && w.drives[j] != nil }, w.wq,
		func(ctx context.Context, j int) recordPut { return w.putOne(ctx, &attempt, j, inline) },
		func(p recordPut) bool { return p.err == nil || errors.Is(p.err, driver.ErrStale) }, late)
	for j := range res {
		switch {
		case !ok[j] || w.drives[j] == nil:
			res[j] = recordPut{err: fmt.Errorf("%w: not written to this drive", ErrWriteQuorum)}
		case !done[j]:
			res[j] = recordPut{err: fmt.Errorf("%w: %w", ErrWriteQuorum, errLate)}
		}
	}
	pending := 0
	for j := range res {
		if errors.Is(res[j].err, errLate) {
			pending++
		}
	}
	waitLate = func(ctx context.Context) map[int]recordPut {
		got := map[int]recordPut{}
		for len(got) < pending {
			select {
			case r := <-lateCh:
				got[r.j] = r.v
			case <-ctx.Done():
				return got
			}
		}
		return got
	}
	return res, settle, waitLate
}

// putOne writes shard j's copy of rec to drive j.
func (w *recordWrite) putOne(ctx context.Context, rec *record, j int, inline [][]byte) recordPut {
	r := *rec
	r.Shard = j
	if inline != nil {
		r.Inline = inline[j]
	}
	prev, replaced, err := w.drives[j].PutRecord(ctx, driver.Record{Key: w.ikey, Version: rec.Version, Data: r.marshal()})
	p := recordPut{err: err}
	if err == nil && replaced {
		if old, derr := unmarshalRecord(prev.Data); derr == nil {
			p.prev, p.prevRaw = old, prev
		}
	}
	return p
}

// observe moves the engine's clock past v, so its next version is newer.
func (e *Engine) observe(v driver.Version) {
	ns := int64(binary.BigEndian.Uint64(v[:8]))
	for {
		last := e.lastVersion.Load()
		if ns <= last || e.lastVersion.CompareAndSwap(last, ns) {
			return
		}
	}
}
