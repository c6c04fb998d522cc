package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/erasure"
	"github.com/vaultaire/vaultaire/placement"
)

// Migration moves artifacts written under older maps (MapHistory) into
// the current map's sets, so that those maps can be dropped from the
// history. See the package comment, "Map changes", for how a cluster
// drives it.

// MigrateResult says what Migrate did with one key.
type MigrateResult struct {
	// Version is the key's newest version as reads serve it, zero if no
	// set holds a record of the key; Deleted reports that it is a
	// deletion.
	Version driver.Version
	Deleted bool
	// AtHome reports that the current map's set already served the key,
	// so nothing was copied. Older sets may still have been cleaned
	// (Removed) and the current set completed (Healed).
	AtHome bool
	// Moved reports that the version was copied into the current map's
	// set from the set of the older map of epoch From.
	Moved bool
	From  placement.Epoch
	// Removed counts the records of the key removed, with their shard
	// files, from drives of older maps' sets that are not in the current
	// set.
	Removed int
	// Healed lists the shards of the current set rewritten because their
	// drive lacked the version or held an older one or an older map's
	// placement of it.
	Healed []int
	// Copied lists the shards of the current set whose drive lacked the
	// version and got its shard files copied from the drive that held the
	// same slot in an older map (no decoding; Healed rebuilds the rest).
	Copied []int
	// Incomplete reports that the current set does not hold the live
	// version on every drive (one offline, a heal that failed): the older
	// sets' copies of it were kept for a later pass.
	Incomplete bool
}

// errNotWritten marks a drive a record write skipped.
var errNotWritten = errors.New("engine: record not written")

// errMoveDeferred means a move was put off because the current set could
// not take the version on every drive, and taking it would have replaced
// the older set's copies on shared drives, leaving fewer spare shards
// than before (writeMoved); the next pass tries again, and the older map
// is kept meanwhile.
var errMoveDeferred = fmt.Errorf("engine: move deferred until the current set is whole: %w", ErrWriteQuorum)

// Migrate makes the current map's set of key hold its newest version and
// the older maps' sets (MapHistory) hold nothing of it.
//
// If reads find the newest version in an older map's set, Migrate copies
// it into the current set keeping its version, modification time, size,
// ETag, content type and metadata: the bytes are decoded from the older
// set (rebuilt from parity if need be, and checked against the ETag's
// MD5) and encoded with the current policy onto new shard files, part by
// part, so a multipart artifact keeps its parts' boundaries and ETags; an
// inline artifact stays inline. The records are written with the same
// version by a plain record write: a version written meanwhile is newer
// and wins, and the copy's shard files are collected. A deletion is
// copied as a tombstone of the same version.
//
// Then, once the current set serves the key (a tombstone, a live version
// on a read quorum of its drives, or nothing), Migrate removes the key's
// records and their shard files from the drives of older maps' sets that
// are not in the current set (whatever their version: reads no longer
// consult them), and completes the current set: drives that answered
// without the version (or with an older map's placement of it) get it,
// by Heal for a live version.
//
// Migrate is idempotent, and safe against concurrent puts and deletes of
// key (last writer wins by version). At every step one of the sets serves
// the artifact: the current set's drives that held nothing of it are
// written first, and a drive that holds the older set's record is only
// replaced while the older set keeps a read quorum without it or the
// current set reaches one with it; a write that cannot keep to this, or
// that misses the write quorum, is rolled back, leaving the older set as
// it was. A crash can leave shard files no record names, as a crashed Put
// does.
//
// Migrate fails with ErrReadQuorum if a set cannot be read, or the current
// set, amid a write, serves no version yet, and with ErrWriteQuorum if the
// copy cannot be written; the key stays readable as before, for a later
// call to finish. A drive of an older set it cannot clean is an error
// too, after the rest is done.
//
// Runs of Migrate for one key are serialised within an Engine; the
// cluster must not run them for one key on two nodes at once, and must
// run them with the newest map (the Raft leader's). Multipart uploads in
// progress are not migrated: an upload keeps its placement while its map
// is kept (Residue does not count it, so not after the map is dropped),
// and completing it under a map that moved its set copies its parts into
// the current one (multipart_move.go).
func (e *Engine) Migrate(ctx context.Context, tenant, container, key string) (MigrateResult, error) {
	if err := validKey(key); err != nil {
		return MigrateResult{}, err
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return MigrateResult{}, err
	}
	return e.migrate(ctx, tenant, container, key, nil)
}

// migrate is Migrate, also removing key's records from the drives extra
// when they are not in key's current set.
func (e *Engine) migrate(ctx context.Context, tenant, container, key string, extra []placement.DriveID) (MigrateResult, error) {
	ikey := indexPrefix(tenant, container) + key
	// The Raft leader migrates (RunMigrator), and any node moves a key
	// it updates the metadata of (moveFirst): two nodes can so move one
	// key at once, as across a leadership change mid-pass. Both copy
	// the same version; a newer one written meanwhile refuses the older
	// copy as stale (TestUpdateMetadataMovesFirst). The local lock
	// serialises the moves of one node.
	unlock := e.lockLocal("migrate\x00" + ikey) // upload ids are hex: no collision
	defer unlock()
	var res MigrateResult
	cur := e.mapFor(tenant, container)
	pg := pgOf(cur, tenant, container, key)
	loc, newest, err := e.locate(ctx, tenant, container, key)
	if err != nil {
		return res, fmt.Errorf("engine: migrate %s/%s: %w", tenant, container, err)
	}
	if newest != nil {
		res.Version, res.Deleted = newest.Version, newest.Deleted
	}
	res.AtHome = newest == nil || loc.sameSet(cur, pg) || loc.m.Layout == placement.LayoutRemote // tiered (tier.go)
	if !res.AtHome {
		from, moving := loc.m.Epoch, newest.Version
		merr := e.move(ctx, tenant, container, key, cur, pg, loc, newest)
		if loc, newest, err = e.locate(ctx, tenant, container, key); err != nil {
			return res, fmt.Errorf("engine: migrate %s/%s: %w", tenant, container, errors.Join(merr, err))
		}
		// A failed move that a newer write superseded (it may have
		// removed what the move was reading) is moot.
		superseded := newest != nil && newest.Version.Compare(moving) > 0 && loc.sameSet(cur, pg)
		switch {
		case merr != nil && !superseded:
			return res, fmt.Errorf("engine: migrate %s/%s from map epoch %d: %w", tenant, container, from, merr)
		case merr == nil:
			res.Moved, res.From = true, from
			e.log.Debug("migrated artifact", "from", from, "to", cur.Epoch, "pg", pg)
		}
		if newest != nil && !loc.sameSet(cur, pg) {
			return res, fmt.Errorf("engine: migrate %s/%s: map epoch %d still serves the artifact after the move", tenant, container, loc.m.Epoch)
		}
	}
	if newest == nil {
		// No set serves the key. Older drives may still hold records
		// placed for no set in the history (or deletions): remove those.
		// A live one placed for an older set stays: its drive may only
		// have missed the read.
		res.Removed, err = e.cleanOlder(ctx, tenant, container, key, cur, pg, extra, true, nil)
		n, rerr := e.removeRemains(ctx, tenant, container, key, cur)
		res.Removed += n
		return res, errors.Join(err, rerr)
	}
	res.Version, res.Deleted = newest.Version, newest.Deleted
	if !newest.Deleted {
		if _, held := loc.holding(newest.Version); held < cur.Policy.ReadQuorum() {
			return res, fmt.Errorf("%w: migrate %s/%s: the current set holds the version on %d drives, need %d; left as it is", ErrReadQuorum, tenant, container, held, cur.Policy.ReadQuorum())
		}
	}
	// Slots the current set lacks take their shard files from the old
	// holder first; Heal rebuilds the rest. Only then do the older sets'
	// copies go, and those of the version only once the current set holds
	// it on every drive: removing them earlier (a set completed around an
	// offline drive, a heal that failed) would leave the version with less
	// redundancy than it had, none at all when the sets share k drives
	// (layouts of one k+m). Kept, they are looked at again on the next
	// pass, and their map is not dropped meanwhile (Residue).
	res.Copied = e.copyLacking(ctx, tenant, container, key, cur, pg, loc, newest)
	var herr error
	res.Healed, herr = e.completeSet(ctx, tenant, container, key, loc, newest)
	res.Incomplete = !newest.Deleted && holdingAll(loc, newest, res.Healed) < len(loc.drives)
	res.Removed, err = e.cleanOlder(ctx, tenant, container, key, cur, pg, extra, res.Incomplete, newest)
	var perr error
	if !res.Incomplete {
		perr = e.dropPrevs(ctx, tenant, container, key, loc, newest)
	}
	return res, errors.Join(err, herr, perr)
}

// dropPrevs rewrites without Prev the records of loc, the current set
// holding newest on every drive, that still carry the older placement's
// record of it (writeMoved); collect then removes that placement's shard
// files. A drive it cannot rewrite keeps its Prev for a later pass
// (recordHome, so Residue keeps the older map meanwhile).
func (e *Engine) dropPrevs(ctx context.Context, tenant, container, key string, loc location, newest *record) error {
	n := len(loc.drives)
	mask, inline := make([]bool, n), make([][]byte, n)
	some := false
	for j, r := range loc.raw {
		if r != nil && r.Prev != nil && placedIn(r, loc.m, loc.pg, j) && r.Version == newest.Version && sameData(r, newest) {
			mask[j], inline[j], some = true, r.Inline, true
		}
	}
	if !some {
		return nil
	}
	rec := *newest
	rec.Prev = nil
	if !rec.IsInline {
		inline = nil
	}
	w := e.artifactWrite(tenant, container, key, loc.drives, loc.m.Policy.WriteQuorum())
	// A drive that refused it as stale holds a newer version, whose write
	// collected the Prev; rec's files may be that version's too (a
	// metadata update): copied keeps them (review F1 of session 17).
	w.copied = true
	res := w.putAll(ctx, &rec, inline, mask)
	var errs []error
	for j := range mask {
		switch {
		case !mask[j] || res[j].err == nil, errors.Is(res[j].err, driver.ErrStale):
		default:
			errs = append(errs, fmt.Errorf("shard %d: %w", j, res[j].err))
		}
	}
	w.collect(ctx, &rec, res)
	if len(errs) > 0 {
		return fmt.Errorf("engine: migrate %s/%s: drop the older placement: %w", tenant, container, errors.Join(errs...))
	}
	return nil
}

// holdingAll returns how many drives of loc, the current set, hold newest
// once the slots in healed were rewritten.
func holdingAll(loc location, newest *record, healed []int) int {
	n := 0
	for j, r := range loc.recs {
		if r != nil && r.Version == newest.Version && sameData(r, newest) || slices.Contains(healed, j) {
			n++
		}
	}
	return n
}

// move copies rec, the newest version of key as the older set src holds
// it, into pg's set of the current map cur: only the changed slots' shard
// files when it can (moveShards), else re-encoded whole.
func (e *Engine) move(ctx context.Context, tenant, container, key string, cur *placement.Map, pg uint32, src location, rec *record) error {
	if err := e.moveShards(ctx, tenant, container, key, cur, pg, src, rec); !errors.Is(err, errNotShardMove) {
		return err // moved slot by slot (migrate_shard.go), or failed doing so
	}
	pol := cur.Policy
	drives, _ := e.pgDrives(cur, pg)
	n, wq := pol.SetSize(), pol.WriteQuorum()
	moved := record{
		Version: rec.Version, Deleted: rec.Deleted, Size: rec.Size, ETag: rec.ETag,
		ContentType: rec.ContentType, Modified: rec.Modified, Metadata: rec.Metadata,
		Data: pol.Data, Parity: pol.Parity, StripeSize: e.cfg.StripeSize, PG: pg, IsInline: rec.IsInline,
		Marker: rec.Marker, Pointer: rec.Pointer, // versioned keys (version.go)
	}
	ok := present(drives)
	w := e.artifactWrite(tenant, container, key, drives, wq)
	if rec.Deleted {
		return e.writeMoved(ctx, w, cur.Set(pg), cur.Policy.ReadQuorum(), &moved, nil, ok, src)
	}
	a, err := e.artifactAt(tenant, container, key, src, rec)
	if err != nil {
		return err
	}
	codec, err := e.codec(pol.Data, pol.Parity, e.cfg.StripeSize)
	if err != nil {
		return err
	}
	var inline [][]byte
	var shards []driver.Shard // the new shard files, per part
	var commits [][]bool      // per part, the drives holding its new shard file
	var partDrives [][]driver.Driver
	drop := func() {
		for i, s := range shards {
			e.deleteShards(ctx, partDrives[i], s, commits[i])
		}
	}
	if rec.striped() && !rec.IsInline {
		e.setStriping(&moved, cur, stripeWidth(cur)) // striped again, over the current map's PGs (stripe.go)
	}
	if rec.IsInline {
		var body bytes.Buffer
		if err := a.WriteRange(ctx, &body, 0, rec.Size); err != nil {
			return err
		}
		bufs := make([]bytes.Buffer, n)
		ws := make([]io.Writer, n)
		for j := range ws {
			ws[j] = &bufs[j]
		}
		digest, release := newETagHash(false)
		defer release()
		if _, err := codec.Encode(ctx, bytes.NewReader(body.Bytes()), ws, erasure.EncodeOptions{Hash: digest}); err != nil {
			return err
		}
		if !etagMatches(rec.ETag, digest.Sum(nil)) {
			return fmt.Errorf("%w: the bytes read do not match the ETag", ErrBadDigest)
		}
		for j := range bufs {
			inline = append(inline, bufs[j].Bytes())
		}
	} else {
		var off int64
		for i, pt := range rec.Parts {
			var dataID [16]byte
			rand.Read(dataID[:])
			drives, derrs := e.partDrives(cur, &moved, i)
			shard := shardOf(tenant, container, key, moved.partPG(i), dataID)
			committed := make([]bool, n)
			digest, release := newETagHash(true)
			body := a.Reader(ctx, off, pt.Size)
			size, err := e.putShards(ctx, codec, drives, derrs, shard, body, wq, digest, committed)
			body.Close()
			sum := digest.Sum(nil)
			release()
			if err != nil {
				drop()
				return err
			}
			shards, commits, partDrives = append(shards, shard), append(commits, committed), append(partDrives, drives)
			if size != pt.Size || !etagMatches(pt.ETag, sum) {
				drop()
				return fmt.Errorf("%w: a part's bytes read do not match its size or ETag", ErrBadDigest)
			}
			for j := range ok {
				ok[j] = ok[j] && committed[j]
			}
			moved.Parts = append(moved.Parts, part{DataID: dataID, Size: pt.Size, ETag: pt.ETag})
			off += pt.Size
		}
	}
	if err := e.writeMoved(ctx, w, cur.Set(pg), cur.Policy.ReadQuorum(), &moved, inline, ok, src); err != nil {
		drop()
		return err
	}
	e.dropRemovedSlots(ctx, tenant, container, key, src, rec)
	// Drives that missed a part got no record: their other parts' shard
	// files are of no use.
	for i, s := range shards {
		unused := make([]bool, n)
		for j := range unused {
			unused[j] = commits[i][j] && !ok[j]
		}
		e.deleteShards(ctx, partDrives[i], s, unused)
	}
	return nil
}

// etagMatches reports whether sum is the MD5 an ETag names; an ETag that
// is not a hex MD5 matches anything.
func etagMatches(etag string, sum []byte) bool {
	if len(etag) != 32 {
		return true
	}
	return etag == hex.EncodeToString(sum)
}

// writeMoved writes rec, a version moved from the older set src, by w to
// the drives of the current set (set, read quorum kNew) where ok is set,
// and fails with ErrWriteQuorum, rolled back, unless w's write quorum took
// it (or refused it as stale).
//
// A drive of the current set may hold src's record of the version (the
// drive is in both sets): replacing it takes it from src. Drives holding
// nothing of src's are written first; the others one at a time while the
// current set is below read quorum, each only if afterwards src keeps a
// read quorum or the current set reaches one. So the artifact stays
// readable from one of the sets, whatever point the write stops at.
func (e *Engine) writeMoved(ctx context.Context, w *recordWrite, set []placement.DriveID, kNew int, rec *record, inline [][]byte, ok []bool, src location) error {
	n := len(w.drives)
	served, oldHeld := src.holding(rec.Version)
	oldSet := src.m.Set(src.pg)
	shared := make([]bool, n)
	for j, id := range set {
		if i := slices.Index(oldSet, id); i >= 0 && served != nil {
			r := src.recs[i]
			shared[j] = r != nil && r.Version == rec.Version && sameData(r, served)
		}
	}
	kOld := src.m.Policy.ReadQuorum()
	res := make([]recordPut, n)
	for j := range res {
		res[j].err = errNotWritten
	}
	write := func(mask []bool) (took, replaced int) {
		got := w.putAll(ctx, rec, inline, mask)
		for j, m := range mask {
			if !m {
				continue
			}
			res[j] = got[j]
			if w.took(got[j]) {
				took++
			}
			if got[j].err == nil && shared[j] {
				replaced++
			}
		}
		return took, replaced
	}
	fresh := make([]bool, n)
	var rest []int // shared drives to write, in shard order
	for j := range ok {
		fresh[j] = ok[j] && !shared[j]
		if ok[j] && shared[j] {
			rest = append(rest, j)
		}
	}
	newHeld, _ := write(fresh)
	if held, whole := setHolding(ok, shared, res, w); !rec.Deleted && len(rest) > 0 && !whole && held-kNew < oldHeld-kOld {
		// Replacing src's copies on the shared drives now would leave the
		// version with fewer spare shards than it has, the current set
		// missing a drive (offline, failed): wait for a pass that finds
		// the set whole (or the older set no better off).
		w.rollback(ctx, rec, res)
		return fmt.Errorf("%w: %d of its %d drives can take the version (%d spare shards, %d now)", errMoveDeferred, held, n, held-kNew, oldHeld-kOld)
	}
	if !rec.Deleted && carryPrev(len(rest), newHeld, oldHeld, kNew, kOld) {
		// Replacing the shared drives' records one at a time (below)
		// would leave neither set serving the artifact part way: every
		// drive of the current set is in the older one too, which has
		// fewer spare shards than the current set needs drives (a forced
		// removal that changed the policy: NOTE13). Each new record
		// carries the older placement's record it replaces (Prev), whose
		// shard files stay, so that the older set serves until the
		// current one does, whatever point the writes stop at; migrate
		// drops the Prevs once the current set holds the version on
		// every drive (dropPrevs).
		var wg sync.WaitGroup
		for _, j := range rest {
			wg.Go(func() {
				withPrev := *rec
				withPrev.Prev = src.recs[slices.Index(oldSet, set[j])]
				res[j] = w.putOne(ctx, &withPrev, j, inline)
				res[j].carried = withPrev.Prev
			})
		}
		wg.Wait()
		rest = nil
	}
	for i, j := range rest {
		if rec.Deleted || newHeld >= kNew {
			// A tombstone anywhere in the current set hides the key, and
			// a current set at read quorum serves it: the rest at once.
			mask := make([]bool, n)
			for _, j := range rest[i:] {
				mask[j] = true
			}
			write(mask)
			break
		}
		if oldHeld-1 < kOld && newHeld+1 < kNew {
			break // neither set would serve the artifact
		}
		mask := make([]bool, n)
		mask[j] = true
		took, replaced := write(mask)
		newHeld += took
		oldHeld -= replaced
	}
	if err := w.tally(res); err != nil {
		// Give src its records back first: it serves the artifact again.
		only := func(keep bool) []recordPut {
			part := slices.Clone(res)
			for j := range part {
				if shared[j] != keep {
					part[j].err = errNotWritten
				}
			}
			return part
		}
		w.rollback(ctx, rec, only(true))
		w.rollback(ctx, rec, only(false))
		return err
	}
	// rec names the older set's own files (a slot-by-slot move), not
	// files of the move's: a drive that refused it as stale holds a newer
	// version (a metadata update) that may name them (review F5 of session
	// 17: the live version's were deleted, on every drive).
	w.copied = served != nil && sameData(rec, served)
	w.collect(ctx, rec, res)
	return nil
}

// dropRemovedSlots deletes, once rec (a striped version as the older set
// src held it) has moved, the shard files of its parts in other PGs at
// the slots whose home drive was removed from the cluster: no record
// names them any more (collect and cleanOlder delete a slot's files
// through the slot's record, which went with its drive), so they would
// stay for ever. No read of src uses them: a slot counts only where its
// home drive holds the record.
func (e *Engine) dropRemovedSlots(ctx context.Context, tenant, container, key string, src location, rec *record) {
	if !rec.striped() {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for j, id := range src.m.Set(src.pg) {
		if _, err := e.cfg.Topology.Drive(id); !errors.Is(err, driver.ErrRemoved) {
			continue
		}
		if err := e.deletePartShards(ctx, tenant, container, key, rec, j, nil, nil); err != nil {
			e.log.Warn("shard delete failed", "slot", j, "err", err)
		}
	}
}

// carryPrev reports whether replacing shared drives' records one at a
// time (writeMoved), newHeld drives of the current set holding the
// version and oldHeld of the older set, would reach a point where
// neither set serves it before the current set does.
func carryPrev(shared, newHeld, oldHeld, kNew, kOld int) bool {
	for range shared {
		if newHeld >= kNew {
			return false
		}
		if oldHeld-1 < kOld && newHeld+1 < kNew {
			return true
		}
		newHeld, oldHeld = newHeld+1, oldHeld-1
	}
	return false
}

// setHolding returns how many drives of the current set took the moved
// version (res) or hold the older set's copy of it (shared), which they
// are about to take, and whether that is all of them; ok marks those that
// hold its shard files.
func setHolding(ok, shared []bool, res []recordPut, w *recordWrite) (held int, whole bool) {
	for j := range ok {
		if ok[j] && (shared[j] || w.took(res[j])) {
			held++
		}
	}
	return held, held == len(ok)
}

// cleanOlder removes key's records, and the shard files they name, from
// the drives of its sets in the older maps and the other layouts
// (otherLayouts) and from extra, all but those
// of its set in cur; if keepPlaced, live records placed for the older
// set a drive is in stay. It returns how many it removed; a drive it
// could not clean is an error.
func (e *Engine) cleanOlder(ctx context.Context, tenant, container, key string, cur *placement.Map, pg uint32, extra []placement.DriveID, keepPlaced bool, newest *record) (int, error) {
	home := cur.Set(pg)
	var ids []placement.DriveID
	placements := map[placement.DriveID][]func(*record) bool{} // per drive: is r placed for an older set of it
	add := func(id placement.DriveID) {
		if !slices.Contains(home, id) && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, m := range append(e.otherLayouts(cur), e.olderMaps(cur)...) {
		opg := pgOf(m, tenant, container, key)
		for j, id := range m.Set(opg) {
			add(id)
			placements[id] = append(placements[id], func(r *record) bool { return placedIn(r, m, opg, j) })
		}
	}
	for _, id := range extra {
		add(id)
	}
	keep := func(id placement.DriveID, r *record) bool {
		return keepPlaced && !r.Deleted && slices.ContainsFunc(placements[id], func(placed func(*record) bool) bool { return placed(r) })
	}
	ikey := indexPrefix(tenant, container) + key
	// A striped version moved slot by slot keeps the files of the slots
	// that did not move (moveStriped): the older layout's record names
	// them too.
	var keepFile func(r *record, pt part) bool
	if newest != nil && newest.striped() {
		keepFile = func(r *record, pt part) bool {
			return keepStripedFile(e.stripeMap(tenant, container, r), cur, newest, r, pt, r.Shard)
		}
	}
	var mu sync.Mutex // guards removed and errs
	removed := 0
	var errs []error
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			ok, err := e.removeRecord(ctx, id, tenant, container, key, ikey, func(r *record) bool { return keep(id, r) }, keepFile)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				removed++
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("drive %s: %w", id, err))
			}
		})
	}
	wg.Wait()
	if newest != nil && newest.striped() && !keepPlaced {
		if err := e.cleanOlderParts(ctx, tenant, container, key, cur, newest); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("engine: migrate %s/%s: clean older sets: %w", tenant, container, errors.Join(errs...))
	}
	return removed, nil
}

// removeRecord removes key's record from drive id, after the shard files
// it names, unless keep says to keep it, and reports whether it did.
func (e *Engine) removeRecord(ctx context.Context, id placement.DriveID, tenant, container, key, ikey string, keep func(*record) bool, keepFile func(r *record, pt part) bool) (bool, error) {
	d, err := e.cfg.Topology.Drive(id)
	if errors.Is(err, driver.ErrRemoved) {
		return false, nil // gone with the drive
	}
	if err != nil {
		return false, err
	}
	raw, err := d.GetRecord(ctx, ikey)
	if errors.Is(err, driver.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// The shard files first: a record left by a failure still names them
	// for the next attempt. (A corrupt record names nothing readable.)
	if r, err := unmarshalRecord(raw.Data); err == nil {
		if keep(r) {
			return false, nil
		}
		var skip func(part) bool
		if keepFile != nil && r.striped() {
			skip = func(pt part) bool { return keepFile(r, pt) }
		}
		if err := e.deletePartShards(ctx, tenant, container, key, r, r.Shard, d, skip); err != nil {
			return false, err
		}
		if r.Prev != nil { // an older placement it carried (writeMoved)
			// Its parts r names too were dealt with above (kept, if
			// keepFile says so: review F3).
			prevSkip := namedBy(r.Prev, r)
			if keepFile != nil && r.Prev.striped() {
				prevSkip = func(pt part) bool { return namedBy(r.Prev, r)(pt) || keepFile(r.Prev, pt) }
			}
			if err := e.deletePartShards(ctx, tenant, container, key, r.Prev, r.Prev.Shard, d, prevSkip); err != nil {
				return false, err
			}
		}
	}
	err = d.DeleteRecord(ctx, ikey, raw.Version)
	switch {
	case errors.Is(err, driver.ErrNotFound), errors.Is(err, driver.ErrStale):
		return false, nil // changed meanwhile: the next pass looks again
	case err != nil:
		return false, err
	}
	return true, nil
}

// completeSet gives the drives of loc, the current set serving newest,
// that answered without it the version: Heal rebuilds a live one; a
// tombstone is written (so that Heal can purge it once every drive holds
// it). It returns the shards written.
func (e *Engine) completeSet(ctx context.Context, tenant, container, key string, loc location, newest *record) ([]int, error) {
	lacking := make([]bool, len(loc.drives))
	some := false
	for j, r := range loc.recs {
		has := r != nil && (r.Version.Compare(newest.Version) > 0 || r.Version == newest.Version && sameData(r, newest))
		lacking[j] = loc.answered[j] && !has
		some = some || lacking[j]
	}
	if !some {
		return nil, nil
	}
	if !newest.Deleted {
		healed, err := e.Heal(ctx, tenant, container, key)
		// A drive it could not reach stays queued for the healer; the
		// set is as complete as migration can make it.
		if err != nil && !errors.Is(err, ErrHealIncomplete) {
			e.queueHeal(HealItem{tenant, container, key})
			return nil, fmt.Errorf("engine: migrate %s/%s: complete the current set: %w", tenant, container, err)
		}
		return healed, nil
	}
	t := *newest
	t.Inline = nil
	w := e.artifactWrite(tenant, container, key, loc.drives, 0)
	res := w.putAll(ctx, &t, nil, lacking)
	w.collect(ctx, &t, res)
	var written []int
	var errs []error
	for j, r := range res {
		switch {
		case !lacking[j]:
		case r.err == nil:
			written = append(written, j)
		case !errors.Is(r.err, driver.ErrStale):
			errs = append(errs, r.err)
		}
	}
	if len(errs) > 0 {
		return written, fmt.Errorf("engine: migrate %s/%s: complete the current set: %w", tenant, container, errors.Join(errs...))
	}
	return written, nil
}
