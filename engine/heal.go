package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// TombstoneGrace is how long a deletion's tombstone is kept after every
// drive of its set holds it, so that a write that started before the delete
// and lands late is still refused as stale.
const TombstoneGrace = 15 * time.Minute

// InFlightGrace is how long Heal leaves a record newer than the version it
// repairs in place: the write that made it may still be in flight on other
// drives and acknowledged. Remains of a failed write older than that are
// removed.
const InFlightGrace = 15 * time.Minute

// ErrHealIncomplete is returned (wrapped) by Heal when a drive of the set
// that needs repair could not be checked or written (it is offline or
// fails writes); the artifact stays in the heal queue for a retry.
var ErrHealIncomplete = errors.New("engine: heal incomplete: a drive could not be repaired")

// Heal repairs key's current version in place. Every reachable drive of its
// placement group whose shard fails verification gets a rebuilt shard and a
// fresh record; a drive whose shard is intact but whose record is missing or
// left over from a failed write gets the record only. Drives that cannot be
// written are skipped and make Heal fail with ErrHealIncomplete once the
// others are repaired; the artifact then stays queued (Degraded) for
// RunHealer to retry. Heal returns the shard indexes it repaired. For a
// deleted key it removes the tombstone once every drive holds it and it is
// older than TombstoneGrace; a key whose container is gone only leaves the
// heal queue. An artifact that reads find in an older map's
// set (MapHistory) is repaired in that set; moving it is Migrate's job.
func (e *Engine) Heal(ctx context.Context, tenant, container, key string) ([]int, error) {
	return e.healItem(ctx, HealItem{tenant, container, key}, false)
}

// healItem is Heal. light (the healer's retry of an artifact its put queued:
// queueHealWritten) checks each drive's shards for presence at their full
// length (erasure Present: two bytes read) instead of verifying them in
// full: what a put left behind is a shard or record that did not land, not
// one that rotted, and a full verify reads the whole artifact from every
// drive, a remote bucket's included (GET requests and egress), for every
// write that only missed the straggler grace and landed late.
func (e *Engine) healItem(ctx context.Context, item HealItem, light bool) ([]int, error) {
	tenant, container, key := item.Tenant, item.Container, item.Key
	if !light {
		// A full heal looks for rot: the drives' records as their disks
		// hold them, not as a record cache or the engine's peek does
		// (driver.Uncached). The scrubber marks its own heals; the
		// healer's retry of one it queued, or a migration's, did not,
		// and a cached copy hid the rot it was queued for (review 29p).
		// Its shards are read whole anyway: a record read more is
		// nothing beside them.
		ctx = driver.Uncached(ctx)
	}
	gen := e.healGen(item)
	loc, newest, err := e.locateRecord(ctx, tenant, container, key) // a version pointer itself, not its target
	if errors.Is(err, ErrNoSuchContainer) {
		// Its container was removed (and is swept): nothing to heal,
		// and a queued item would stay for ever (the heal_queue gauge
		// with it).
		e.unqueueHeal(item)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if newest == nil || newest.Deleted {
		if err := e.healTombstone(ctx, tenant, container, key, loc, newest); err != nil {
			return nil, err
		}
		e.unqueueHeal(item)
		return nil, e.purgeTombstone(ctx, tenant, container, key)
	}
	a, err := e.artifactAt(tenant, container, key, loc, newest)
	if err != nil {
		return nil, err
	}
	ikey := indexPrefix(tenant, container) + key
	n := len(a.drives)
	segs := a.segments()
	// needData[p][j]: part p's shard on drive j must be rebuilt.
	needData := make([][]bool, len(segs))
	needRecord := make([]bool, n)
	unwritable := make([]bool, n) // drives that needed repair and did not get it
	dataOnly := make([]bool, n)   // drives whose shard files are rebuilt but whose record stays (a Prev's)
	// blockedBy[j]: the drives that kept slot j from being repaired (none
	// for a younger write in flight: no drive to wait for); wrote[j]: the
	// drives a shard file of slot j was written to. A striped artifact's
	// slot j is on its home drive and on each part set's drive at j
	// (partDrive): only the one that failed, or was written, is named.
	blockedBy := make([][]placement.DriveID, n)
	wrote := make([][]placement.DriveID, n)
	for j, d := range a.drives {
		unwritable[j] = d == nil
		if d == nil {
			blockedBy[j] = slotIDs(loc, []int{j})
		}
	}
	for p := range segs {
		needData[p] = make([]bool, n)
	}
	// The drives' shards are verified in parallel (fanOut). Once all but
	// Parity drives are done, the others get the straggler grace; one
	// still verifying then (a hung or very slow drive) is left alone like
	// an unwritable one: Heal fails with ErrHealIncomplete after repairing
	// the rest, and the artifact stays queued for a retry. Its verify is
	// stopped when Heal returns.
	vctx, stopVerify := context.WithCancel(ctx)
	defer stopVerify()
	live := 0
	for _, d := range a.drives {
		if d != nil {
			live++
		}
	}
	check := a.codec.Verify
	if light {
		check = a.codec.Present
	}
	intact, verified := fanOut(vctx, e, n, func(j int) bool { return a.drives[j] != nil }, max(1, live-a.rec.Parity),
		func(ctx context.Context, j int) []bool {
			ok := make([]bool, len(segs))
			for p, size := range segs {
				ok[p] = check(ctx, size, j, a.partOpen(p)) == nil
			}
			return ok
		},
		func([]bool) bool { return true }, nil)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("engine: heal: %w", err)
	}
	for j, d := range a.drives {
		if d == nil {
			continue
		}
		if !verified[j] {
			e.log.Warn("heal: drive did not answer in time", "pg", a.rec.PG, "shard", j)
			unwritable[j] = true
			blockedBy[j] = a.slotDrives(loc, []int{j}) // any of its parts' drives may be the slow one
			continue
		}
		needRecord[j] = a.holders[j] == nil // also for a record naming no data: a version pointer
		for p := range segs {
			needData[p][j] = !intact[j][p]
			needRecord[j] = needRecord[j] || !intact[j][p]
		}
	}
	// A record newer than the current version is the remains of a failed
	// write, or of a write still in flight that may yet be acknowledged
	// (its other drives slow or cut off): one younger than InFlightGrace
	// is left alone (the drive counts as not repaired, and the artifact
	// stays queued); an older one is removed so the current version can be
	// written back. Removing a young one turned an acknowledged write's
	// records back to the version before it (TestHealKeepsWriteInFlight).
	// One written
	// for another placement (the drive is also in the current map's set and
	// the artifact was found in an older map's) is not this set's to
	// remove: leave that drive alone. So is, when healing in an older map's
	// set, this very version placed for another set: migration moved it
	// there.
	for j, d := range a.drives {
		if !needRecord[j] {
			continue
		}
		got, err := d.GetRecord(ctx, ikey)
		if err != nil || got.Version.Compare(a.rec.Version) < 0 {
			continue
		}
		r, err := unmarshalRecord(got.Data)
		other := err == nil && (r.Data != a.rec.Data || r.Parity != a.rec.Parity || r.PG != a.rec.PG || r.Shard != j)
		if got.Version == a.rec.Version {
			if a.older && err == nil && (other || !sameData(r, a.rec)) {
				needRecord[j] = false
				if r.Prev != nil && a.holders[j] != nil && !a.rec.IsInline {
					// A carry in progress (record.Prev): this set's data on
					// the drive is the Prev's shard files, which the
					// drive's record keeps. Damaged ones are rebuilt in
					// place; the record stays as it is.
					dataOnly[j] = slices.ContainsFunc(needData, func(d []bool) bool { return d[j] })
				}
			}
			continue
		}
		if other {
			needRecord[j] = false
			continue
		}
		if e.cfg.Now().Sub(versionTime(got.Version)) < InFlightGrace {
			needRecord[j], unwritable[j] = false, true
			continue
		}
		if err := d.DeleteRecord(ctx, ikey, got.Version); err != nil && !errors.Is(err, driver.ErrNotFound) {
			needRecord[j], unwritable[j] = false, true
			blockedBy[j] = slotIDs(loc, []int{j})
		}
	}
	// Rebuilt shards come from the other drives only.
	for j := range needRecord {
		for p := range segs {
			if needData[p][j] && (needRecord[j] || dataOnly[j]) {
				a.holders[j] = nil
			}
		}
	}
	var inline [][]byte
	if a.rec.IsInline {
		inline = make([][]byte, n)
	}
	for p, size := range segs {
		ws := make(map[int]io.Writer)
		bufs := make(map[int]*bytes.Buffer)
		sws := make(map[int]driver.ShardWriter)
		for j := range n {
			if !needData[p][j] || !needRecord[j] && !dataOnly[j] {
				continue
			}
			if a.rec.IsInline {
				bufs[j] = new(bytes.Buffer)
				ws[j] = bufs[j]
				continue
			}
			pd := a.partDrive(p, j) // a striped part's own drive (stripe.go)
			if pd == nil {
				needRecord[j], dataOnly[j], unwritable[j] = false, false, true
				blockedBy[j] = append(blockedBy[j], a.partDriveID(loc, p, j)...)
				continue
			}
			sw, err := pd.CreateShard(ctx, a.partShard(p))
			if err != nil {
				e.log.Warn("heal: drive not writable", "pg", a.rec.PG, "shard", j, "err", err)
				needRecord[j], dataOnly[j], unwritable[j] = false, false, true
				blockedBy[j] = append(blockedBy[j], a.partDriveID(loc, p, j)...)
				continue
			}
			sws[j], ws[j] = sw, sw
		}
		if len(ws) == 0 {
			continue
		}
		open := a.partOpen(p)
		_, err := a.codec.Rebuild(ctx, size, func(ctx context.Context, j int, off, length int64) (io.ReadCloser, error) {
			if !verified[j] {
				return nil, errArtifactIncomplete // not waited for again
			}
			return open(ctx, j, off, length)
		}, ws)
		for j, sw := range sws {
			if err == nil {
				if cerr := sw.Commit(ctx); cerr != nil {
					e.log.Warn("heal: shard commit failed", "pg", a.rec.PG, "shard", j, "err", cerr)
					needRecord[j], dataOnly[j], unwritable[j] = false, false, true
					blockedBy[j] = append(blockedBy[j], a.partDriveID(loc, p, j)...)
				} else {
					wrote[j] = append(wrote[j], a.partDriveID(loc, p, j)...)
				}
			}
			sw.Abort()
		}
		if err != nil {
			return nil, fmt.Errorf("engine: heal %s: %w", container, err)
		}
		for j, b := range bufs {
			inline[j] = b.Bytes()
		}
	}
	var repaired, failed []int
	for j, need := range needRecord {
		if need || dataOnly[j] {
			repaired = append(repaired, j)
		}
		if unwritable[j] {
			failed = append(failed, j)
		}
	}
	if records := answeredOf(needRecord); records > 0 {
		w := e.artifactWrite(tenant, container, key, a.drives, records)
		w.replay(a.rec) // copies of the version served: never taken back (recordwrite.go)
		if err := w.write(ctx, a.rec, inline, needRecord); err != nil {
			// Blocked by the drives that did not take it (a replay is
			// never taken back: the others hold it now).
			// So are the drives that kept other slots from being
			// repaired (away, refusing shard files): they are not
			// asked for the record.
			blockers := slotIDs(loc, recordsMissing(ctx, a.drives, ikey, a.rec.Version, trueAt(needRecord)))
			for _, j := range failed {
				blockers = append(blockers, blockedBy[j]...)
			}
			e.blockHeal(item, uniqueIDs(blockers))
			return nil, fmt.Errorf("engine: heal: %w", err)
		}
	}
	if len(repaired) > 0 {
		e.st.repairs.Add(1)
		e.st.shards.Add(uint64(len(repaired)))
		e.log.Info("healed artifact", "pg", a.rec.PG, "shards", repaired)
		// The drives written are back: what waits for one of them is due.
		var back []placement.DriveID
		for _, j := range repaired {
			if needRecord[j] {
				back = append(back, slotIDs(loc, []int{j})...)
			}
			back = append(back, wrote[j]...)
		}
		e.drivesBack(uniqueIDs(back))
	}
	if len(failed) > 0 {
		// Keep it for a retry, even if a scrub or migration called Heal.
		e.addHeal(item, light)
		var blockers []placement.DriveID
		for _, j := range failed {
			blockers = append(blockers, blockedBy[j]...)
		}
		e.blockHeal(item, uniqueIDs(blockers))
		return repaired, fmt.Errorf("engine: heal %s: pg %d shards %v: %w", container, a.rec.PG, failed, ErrHealIncomplete)
	}
	e.healed(item, gen)
	return repaired, nil
}

// healTombstone writes key's tombstone newest, found by Heal's locate at
// loc when that is the current map's set, to every drive of the set
// holding an older record or none, as a read's write-back does
// (writeBack) but to all of them: a DELETE that failed with its tombstone on k drives is served as
// deleted, and its other drives kept the deleted version's record and
// shard files until some read rolled it forward (REVIEW25 F5), and the
// tombstone, not on every drive, was never purged. The drives that
// answered get it even while others are away (review 26b B2); a drive
// away or refusing the write leaves the heal incomplete
// (ErrHealIncomplete): the key stays queued.
func (e *Engine) healTombstone(ctx context.Context, tenant, container, key string, loc location, newest *record) error {
	if newest == nil || loc.m.Epoch < e.mapFor(tenant, container).Epoch {
		return nil // gone, or an older map's set: migration moves it
	}
	mask := make([]bool, len(loc.drives))
	want, away := 0, 0
	for j, d := range loc.drives {
		switch r := loc.raw[j]; {
		case d == nil || !loc.answered[j]:
			away++ // written when it is back: the key stays queued
		case r == nil || r.Version.Compare(newest.Version) < 0:
			mask[j] = true
			want++
		}
	}
	item := HealItem{tenant, container, key}
	if want > 0 {
		w := e.artifactWrite(tenant, container, key, loc.drives, want)
		w.replay(newest)
		if err := w.write(ctx, newest, nil, mask); err != nil {
			e.blockHeal(item, slotIDs(loc, trueAt(mask)))
			return fmt.Errorf("engine: heal %s: pg %d: tombstone on %d drives: %w: %w", container, loc.pg, want, ErrHealIncomplete, err)
		}
		e.drivesBack(slotIDs(loc, trueAt(mask)))
	}
	if away > 0 {
		var ids []placement.DriveID
		for j, d := range loc.drives {
			if d == nil || !loc.answered[j] {
				ids = append(ids, loc.m.Set(loc.pg)[j])
			}
		}
		e.blockHeal(item, ids)
		return fmt.Errorf("engine: heal %s: pg %d: %d drives did not answer: %w", container, loc.pg, away, ErrHealIncomplete)
	}
	return nil
}

// recordsMissing returns those of the drives js that do not hold key's
// record at version v, asked in parallel for at most maxStraggle (a drive
// that does not answer by then counts as missing: a hung drive does not
// hold up the healer, even one that ignores ctx: its answer is not
// waited for, as fanOut leaves a straggler).
func recordsMissing(ctx context.Context, drives []driver.Driver, key string, v driver.Version, js []int) []int {
	ctx, cancel := context.WithTimeout(ctx, maxStraggle)
	defer cancel()
	type answer struct {
		i   int
		has bool
	}
	answers := make(chan answer, len(js)) // a straggler's send never blocks
	for i, j := range js {
		go func() {
			got, err := drives[j].GetRecord(ctx, key)
			answers <- answer{i, err == nil && got.Version == v}
		}()
	}
	has := make([]bool, len(js))
wait:
	for range js {
		select {
		case a := <-answers:
			has[a.i] = a.has
		case <-ctx.Done():
			break wait
		}
	}
	var missing []int
	for i, j := range js {
		if !has[i] {
			missing = append(missing, j)
		}
	}
	return missing
}

// trueAt returns the indexes of mask's true entries.
func trueAt(mask []bool) []int {
	var js []int
	for j, m := range mask {
		if m {
			js = append(js, j)
		}
	}
	return js
}

// slotIDs names the drives of loc's set at the slots js.
func slotIDs(loc location, js []int) []placement.DriveID {
	set := loc.m.Set(loc.pg)
	ids := make([]placement.DriveID, 0, len(js))
	for _, j := range js {
		if j < len(set) {
			ids = append(ids, set[j])
		}
	}
	return ids
}

// partDriveID names the drive holding slot j of a's part p (partDrive),
// none if loc's map has no such slot.
func (a *Artifact) partDriveID(loc location, p, j int) []placement.DriveID {
	set := loc.m.Set(a.rec.partPG(p))
	if j >= len(set) {
		return nil
	}
	return []placement.DriveID{set[j]}
}

// uniqueIDs returns ids without repeats, in order.
func uniqueIDs(ids []placement.DriveID) []placement.DriveID {
	var out []placement.DriveID
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// slotDrives names the drives of a's slots js: the home set's, and for
// a striped artifact those of its parts' sets at the same slots, where
// the part's shard files are (partDrive); a heal blocked or written at
// slot j may have been so on any of them.
func (a *Artifact) slotDrives(loc location, js []int) []placement.DriveID {
	ids := slotIDs(loc, js)
	if !a.rec.striped() {
		return ids
	}
	for p := range min(len(a.rec.Parts), a.rec.Width) {
		pg := a.rec.partPG(p)
		if pg == a.rec.PG {
			continue
		}
		set := loc.m.Set(pg)
		for _, j := range js {
			if j < len(set) && !slices.Contains(ids, set[j]) {
				ids = append(ids, set[j])
			}
		}
	}
	return ids
}

// purgeTombstone removes key's tombstone from every drive of its set once
// all of them hold it, it is older than TombstoneGrace, no older map's
// set (MapHistory) may still hold a version it hides and no drive a
// completion marker of an upload of key (markersHold).
func (e *Engine) purgeTombstone(ctx context.Context, tenant, container, key string) error {
	m := e.mapFor(tenant, container)
	drives, _ := e.pgDrives(m, pgOf(m, tenant, container, key))
	ikey := indexPrefix(tenant, container) + key
	recs, answered := e.readRecords(ctx, drives, ikey)
	if answered < len(drives) {
		return nil // try again when every drive is back
	}
	t := recs[0]
	for _, r := range recs {
		if r == nil || t == nil || r.Version != t.Version || !r.Deleted || r.Pointer {
			return nil // a deleted pointer is a versioned key's state: kept
		}
	}
	if e.cfg.Now().Sub(time.Unix(0, t.Modified)) < TombstoneGrace {
		return nil
	}
	if e.olderSetsHold(ctx, m, tenant, container, key) {
		return nil // until migration has moved or removed that version
	}
	if e.markersHold(ctx, m, tenant, container, key) {
		return nil // until the upload sweep has removed those markers
	}
	for j, d := range drives {
		if err := d.DeleteRecord(ctx, ikey, t.Version); err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
			return fmt.Errorf("engine: purge tombstone on shard %d: %w", j, err)
		}
	}
	return nil
}

// markersHold reports whether a drive of key's sets in the maps an upload
// of key may live in (uploadMaps) may hold a completion marker of an
// upload of key: it holds one, or did not answer (a removed drive holds
// nothing). A tombstone of key stays while this holds. Once it is gone, a
// marker whose completion's artifact the tombstone deleted reads as a
// completion that never became visible (pending), like that of a
// Complete that failed, and nothing tells the two apart: a weak marker
// (holders lost) then has its upload restored in progress by the
// reconcile, listed and completed again into the deleted object (review
// 22b F1). With the tombstone kept, the completion reads as gone, and a
// pending one is always a Complete that failed, whose acknowledged parts
// the reconcile keeps however few shard files replaced disks left of
// them (review 22c G2; counting them brought F1 back, review 23 H1).
func (e *Engine) markersHold(ctx context.Context, cur *placement.Map, tenant, container, key string) bool {
	// A version key's tombstone is held by the markers of its key's
	// uploads: a versioned completion's artifact is under a version key
	// (completionVidKey).
	prefix := uploadPrefix(tenant, container) + baseKey(key) + "\x00" // upload ids follow: no other key's
	errFound := errors.New("a marker")
	seen := map[placement.DriveID]bool{}
	for _, m := range e.uploadMaps(cur) {
		for _, did := range m.Set(pgOf(m, tenant, container, key)) { // a version key's: its key's set
			if seen[did] {
				continue
			}
			seen[did] = true
			d, err := e.cfg.Topology.Drive(did)
			if errors.Is(err, driver.ErrRemoved) {
				continue
			}
			if err == nil {
				err = eachRecord(ctx, d, prefix, func(_ driver.Record, r *record) error {
					if !r.Deleted && isMarker(r) {
						return errFound
					}
					return nil
				})
			}
			if err != nil {
				return true // a marker, or a drive that may hold one
			}
		}
	}
	return false
}

// healEntry is the retry state of a queued artifact.
type healEntry struct {
	failures int       // failed heals in a row
	next     time.Time // not retried before
	// blockers are the drives that kept its last heal from completing
	// (away, refusing writes, too slow), indexed in Engine.blocked; wakes
	// counts the times one of them came back (drivesBack) and made it due
	// before its backoff had passed.
	blockers []placement.DriveID
	wakes    int
	// woke: a drive came back (drivesBack) since its blockers were
	// recorded; healFailed then leaves it due, not backed off.
	woke bool
	// light: only a put queued it, for a shard or record that may not
	// have landed; a presence check will do (healItem).
	light bool
	// gen counts the times it was queued again while queued (addHeal).
	gen uint64
}

// maxHealWakes bounds how often a drive's return makes one queued
// artifact due early (drivesBack): a drive that takes other artifacts'
// repairs but keeps refusing this one's (full, say) would otherwise have
// it retried, a whole artifact read, at every healer round. Past it, the
// backoff alone decides, as does a probe's RetryHeals.
const maxHealWakes = 3

// blockHeal records that the drives ids kept its heal from completing:
// a heal that later writes to one of them (drivesBack) makes it due at
// once, not after a backoff that a long outage stretched to
// HealBackoffMax. (Without it, only a heal that had failed before and
// now succeeded, or a probe of this node's own drives, retried the
// queue: after a peer's outage, while fresh artifacts healed first, the
// ones in backoff waited out their delay.)
func (e *Engine) blockHeal(it HealItem, ids []placement.DriveID) {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	h, ok := e.heal[it]
	if !ok {
		return
	}
	e.unblockLocked(it, h)
	h.woke = false
	if h.wakes >= maxHealWakes {
		return
	}
	h.blockers = slices.Clone(ids)
	for _, id := range ids {
		m := e.blocked[id]
		if m == nil {
			m = make(map[HealItem]struct{})
			e.blocked[id] = m
		}
		m[it] = struct{}{}
	}
}

// unblockLocked removes its blockers from the index. e.healMu is held.
func (e *Engine) unblockLocked(it HealItem, h *healEntry) {
	for _, id := range h.blockers {
		if m := e.blocked[id]; m != nil {
			delete(m, it)
			if len(m) == 0 {
				delete(e.blocked, id)
			}
		}
	}
	h.blockers = nil
}

// drivesBack makes due every queued artifact whose last heal the drives
// ids kept from completing: a heal has just written to them.
func (e *Engine) drivesBack(ids []placement.DriveID) {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	if len(e.blocked) == 0 {
		return
	}
	var woken []HealItem
	for _, id := range ids {
		for it := range e.blocked[id] {
			woken = append(woken, it)
		}
	}
	for _, it := range woken {
		h, ok := e.heal[it]
		if !ok {
			continue
		}
		e.unblockLocked(it, h)
		h.next = time.Time{}
		h.wakes++
		h.woke = true
	}
}

// enqueueHeal adds it to the heal queue unless it is there already (then
// its retry delay stands) or the queue is full (Config.HealQueue; the
// scanner finds it again later). Its heal verifies every shard in full.
func (e *Engine) enqueueHeal(it HealItem) { e.addHeal(it, false) }

// addHeal is enqueueHeal. light asks the healer for a presence check only
// (healItem): an artifact a put left short. Queued otherwise too (a read, the
// scanner or the scrubber met it degraded, or a full heal failed), it is
// verified in full.
func (e *Engine) addHeal(it HealItem, light bool) {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	if h, ok := e.heal[it]; ok {
		h.light = h.light && light
		h.gen++
		return
	}
	if len(e.heal) >= e.cfg.HealQueue {
		e.st.healDropped.Add(1)
		return
	}
	e.heal[it] = &healEntry{light: light}
}

// healLight reports whether its heal needs only a presence check (addHeal).
func (e *Engine) healLight(it HealItem) bool {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	h, ok := e.heal[it]
	return ok && h.light
}

// healed unqueues it after a heal of it completed, unless it was queued
// again while the heal ran (its generation moved past gen, taken as the
// heal began): a read, the scanner or the scrubber saw what a light heal
// cannot find (a corrupt shard: review 28h F1), or a newer write was
// left short after the heal had located the version before (review 28h2
// INFO). It then stays, due at once.
func (e *Engine) healed(it HealItem, gen uint64) {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	h, ok := e.heal[it]
	if !ok {
		return
	}
	if h.gen != gen {
		h.next = time.Time{}
		return
	}
	e.unblockLocked(it, h)
	delete(e.heal, it)
}

// healGen is its queue generation (healEntry.gen), 0 if not queued.
func (e *Engine) healGen(it HealItem) uint64 {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	if h, ok := e.heal[it]; ok {
		return h.gen
	}
	return 0
}

func (e *Engine) unqueueHeal(it HealItem) {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	if h, ok := e.heal[it]; ok {
		e.unblockLocked(it, h)
		delete(e.heal, it)
	}
}

// dueHeals returns the queued artifacts whose retry delay has passed.
func (e *Engine) dueHeals(now time.Time) []HealItem {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	var items []HealItem
	for it, h := range e.heal {
		if !now.Before(h.next) {
			items = append(items, it)
		}
	}
	return items
}

// healFailed delays the next attempt at it: HealInterval after the first
// failure, doubling at each further one up to HealBackoffMax.
func (e *Engine) healFailed(it HealItem, now time.Time) {
	e.st.healFailures.Add(1)
	e.healMu.Lock()
	defer e.healMu.Unlock()
	h, ok := e.heal[it]
	if !ok {
		return
	}
	h.failures++
	if h.woke {
		// A drive that kept it from completing came back after its heal
		// had registered it (blockHeal) and before this: retry now.
		h.woke = false
		return
	}
	h.next = now.Add(healBackoff(e.cfg.HealInterval, e.cfg.HealBackoffMax, h.failures))
}

// healBackoff is the retry delay after n failures in a row: base, 2·base,
// 4·base, … capped at limit.
func healBackoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Healer defaults.
const (
	// DefaultHealInterval is the default Config.HealInterval.
	DefaultHealInterval = 10 * time.Second
	// DefaultHealBackoffMax is the default Config.HealBackoffMax.
	DefaultHealBackoffMax = 10 * time.Minute
)

// RunHealer repairs, every Config.HealInterval, the artifacts queued for
// healing (Degraded: found degraded by reads, by the scanner (Scan) or by
// the scrubber), until ctx ends. An artifact that cannot be healed yet
// (Heal fails, for example with ErrHealIncomplete because a drive that
// needs it is offline or refuses writes) stays queued and is retried after
// an exponential backoff (Config.HealInterval doubling up to
// Config.HealBackoffMax); Stats counts the failures. Once a heal that had
// failed succeeds (a drive is back), every queued artifact is retried at
// the next round; once a heal writes to a drive that kept others' heals
// from completing, those are (drivesBack). The queue is bounded
// (Config.HealQueue): what does not fit is found again by the next scan
// or scrub pass.
func (e *Engine) RunHealer(ctx context.Context) {
	t := time.NewTicker(e.cfg.HealInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		recovered := false
		for _, it := range e.dueHeals(time.Now()) {
			if ctx.Err() != nil {
				return
			}
			failedBefore := e.healFailures(it) > 0
			hctx, cancel := context.WithTimeout(ctx, time.Minute)
			shards, err := e.healItem(hctx, it, e.healLight(it))
			cancel()
			switch {
			case err != nil && ctx.Err() == nil:
				e.healFailed(it, time.Now())
				e.log.Debug("heal failed; will retry", "container", it.Container, "err", err)
			case err == nil && failedBefore:
				recovered = true
				fallthrough
			case len(shards) > 0:
				e.log.Debug("healed", "container", it.Container, "shards", shards)
			}
		}
		if recovered {
			// A heal that had failed went through: a drive is back. The
			// other artifacts waiting out their backoff (queued while it
			// was away, by puts, reads and scans) are retried at once,
			// not up to HealBackoffMax later.
			e.retryHealsNow()
		}
	}
}

// healFailures is how many heals of it failed in a row (0 if not queued).
func (e *Engine) healFailures(it HealItem) int {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	if h, ok := e.heal[it]; ok {
		return h.failures
	}
	return 0
}

// RetryHeals makes every queued artifact due at the healer's next round
// (RunHealer): a drive is back (its health probe answers again), and what
// was queued while it was away need not wait out its backoff, which after
// a long outage reaches HealBackoffMax.
func (e *Engine) RetryHeals() { e.retryHealsNow() }

// retryHealsNow makes every queued artifact due and forgets its failures:
// a drive is back, and the failures counted while it was away say nothing
// of the next attempt. Kept, one more failure right after (the drive
// still warming up, a busy machine) put an artifact back at the backoff
// the outage had reached, minutes.
func (e *Engine) retryHealsNow() {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	for _, h := range e.heal {
		h.next, h.failures, h.wakes = time.Time{}, 0, 0
	}
}
