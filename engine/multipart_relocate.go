package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/placement"
)

// Moving uploads in progress with migration.
//
// An upload keeps the set of the map it was created in (multipart_move.go)
// while that map is kept. Once the current map has settled, the migrator
// moves every upload still living in an older map's set into its key's
// set of the current map (MoveUploads), so that the older map can be
// dropped without losing it, however long its client pauses, and a
// drained node can leave. Under the upload's lease, which every part
// commit also takes, moveUpload:
//
//  1. copies each part's data into the current set (decoded from the
//     old set, encoded with the current policy, checked against the
//     part's size and ETag, striped as the new upload record says part n
//     goes: copyParts), then writes the part's record there;
//  2. writes the upload's record there, naming the current epoch; from
//     now on findUpload finds the upload in the current set;
//  3. removes what the older sets hold of it: the part records, the
//     parts' shard files, then the upload's records (dropUploadElsewhere).
//
// The moved upload's part records are under a new generation of its part
// keys (partsGenKey), so they never replace the ones they were copied
// from, which a drive in both sets holds. A move that fails before step 2
// removes what it wrote and puts back what it wrote over (a reconcile
// writes over the current set's records of that generation); the shard
// files of those are collected only once step 2 is done (review 22c G1).
// A crash before step 2 leaves part records and copies no upload record
// names (garbage: the upload is still read from its older set, and the
// next pass moves it again under the same generation, replacing them and
// their copies; the shard files they replaced stay). A crash after step
// 2 leaves older records that the next pass's walk finds and removes.
//
// A move whose record write fails part way (and whose rollback fails, or
// a crash) leaves the moved record on too few drives of the current set
// while the older set still serves the upload. findUpload then serves
// neither (errMoveUndecided, 503): it cannot tell that from a move that
// succeeded and whose holders lost the record since. The next pass finds
// the upload (its older records; an older set's marker or tombstone is
// probed with findUpload) and reconciles the two, reading every drive
// (reconcileUpload): an abort or completion stays, else the newest of
// each part across both generations moves. A drive that answered the
// record write with an error may have taken it (a lost reply): the undo
// reads it again and puts back the record it replaced (undoLostMove),
// which on a drive both sets share is the older set's, and the copied
// parts stay unless every drive says it holds no moved record.
//
// A moved record on a read quorum but fewer than the write quorum (a
// failed move, or a lost reply kept) is served, but findUpload passes
// over a set only when enough of its drives answer that such a record is
// seen (noneQuorum), and the next pass reconciles it (belowWriteQuorum;
// MoveUploads also looks for one on a drive both sets share). A copy of
// a part keeps the part's version, and a PutPart observes the version of
// the part it replaces, so the reconcile's "newest part" is the one put
// last, whatever the nodes' clocks say. A weak marker whose completion
// happened (its artifact record) stands and is written again to a write
// quorum, as is a weak tombstone (review 22).

// UploadMoveStats counts what MoveUploads did.
type UploadMoveStats struct {
	Uploads int   // uploads found in older maps' sets
	Moved   int   // uploads moved into the current map's set
	Parts   int   // parts copied
	Bytes   int64 // bytes of the parts copied
	Failed  int   // uploads left for another pass
	// FailedIn names the containers of the uploads left for another pass,
	// each once, sorted; Unscanned says some older drive could not be
	// listed, so any container may have an upload that was not seen.
	FailedIn  []meta.ContainerRef
	Unscanned bool
}

// failedIn notes that an upload of tenant's container was left for
// another pass.
func (st *UploadMoveStats) failedIn(tenant, container string) {
	st.Failed++
	ref := meta.ContainerRef{Tenant: tenant, Name: container}
	i, found := slices.BinarySearchFunc(st.FailedIn, ref, compareContainerRef)
	if !found {
		st.FailedIn = slices.Insert(st.FailedIn, i, ref)
	}
}

func compareContainerRef(a, b meta.ContainerRef) int {
	return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Name, b.Name))
}

// MoveUploads moves the multipart uploads in progress whose records are on
// the drives of the older maps (MapHistory) and not placed for the current
// map into their key's set of the current map, each under its lease
// (moveUpload), and removes what older sets hold of uploads moved before a
// crash. A cluster calls it once a map has been current for MapSettle, so
// that every node writes with that map. It returns the first error; an
// upload that failed is tried again on the next call.
func (e *Engine) MoveUploads(ctx context.Context) (UploadMoveStats, error) {
	var st UploadMoveStats
	cur := e.cfg.Topology.Map()
	older := e.olderMaps(cur)
	if cur == nil || len(older) == 0 {
		return st, nil
	}
	type upload struct{ tenant, container, key, id string }
	var ups, ended []upload
	seen, endedSeen := map[string]bool{}, map[string]bool{}
	type movedRec struct {
		upload
		m   *placement.Map
		rec *record
	}
	var weak []movedRec
	weakSeen := map[string]bool{}
	var errs []error
	for _, id := range olderDrives(older) {
		d, err := e.cfg.Topology.Drive(id)
		if errors.Is(err, driver.ErrRemoved) {
			continue
		}
		if err == nil {
			err = e.listUploadRecords(ctx, d, func(raw driver.Record, r *record, tenant, container, key, uploadID string) {
				if seen[raw.Key] {
					return
				}
				if r.Deleted || isMarker(r) {
					if !endedSeen[raw.Key] {
						endedSeen[raw.Key] = true
						ended = append(ended, upload{tenant, container, key, uploadID})
					}
					return
				}
				m := e.layoutMap(cur, e.layoutOf(tenant, container))
				pg := m.PGOf(tenant, container, key)
				if j := slices.Index(m.Set(pg), id); j >= 0 && placedIn(r, m, pg, j) {
					// A move's record on a drive both sets share: the
					// move may have failed short of the write quorum,
					// the older set's records gone (review 22 F4).
					if r.Metadata[partsGenKey] == strconv.FormatUint(uint64(m.Epoch), 10) && !weakSeen[raw.Key] {
						weakSeen[raw.Key] = true
						weak = append(weak, movedRec{upload{tenant, container, key, uploadID}, m, r})
					}
					return
				}
				seen[raw.Key] = true
				ups = append(ups, upload{tenant, container, key, uploadID})
			})
		}
		if err != nil {
			st.Unscanned = true
			errs = append(errs, fmt.Errorf("drive %s: %w", id, err))
		}
	}
	// An upload aborted or completed through an older set may have a
	// failed move's record in a newer one, which findUpload does not
	// choose against it (errMoveUndecided): moveUpload reconciles them.
	for _, u := range ended {
		if seen[uploadKey(u.tenant, u.container, u.key, u.id)] {
			continue
		}
		if _, _, err := e.findUpload(ctx, u.tenant, u.container, u.key, u.id); errors.Is(err, errMoveUndecided) {
			ups = append(ups, u)
		}
	}
	for _, w := range weak {
		if !seen[uploadKey(w.tenant, w.container, w.key, w.id)] && e.belowWriteQuorum(ctx, w.tenant, w.container, w.key, w.id, w.rec, w.m) {
			ups = append(ups, w.upload)
		}
	}
	st.Uploads = len(ups)
	// Uploads move moveUploadsAtOnce at a time: each copies its parts one
	// by one, so one at a time a drain waited for every active upload's
	// copy in turn (probe P4 of session 17: one upload per 10–13 s).
	var mu sync.Mutex // guards st and errs
	sem := make(chan struct{}, moveUploadsAtOnce)
	var wg sync.WaitGroup
	for _, u := range ups {
		if ctx.Err() != nil {
			break
		}
		var retry moveRetry
		if v, ok := e.moveRetries.Load(u.id); ok {
			if retry = v.(moveRetry); e.cfg.Now().Before(retry.at) {
				mu.Lock()
				st.failedIn(u.tenant, u.container)
				mu.Unlock()
				continue // failed lately: not copied again every pass
			}
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := e.moveUpload(ctx, u.tenant, u.container, u.key, u.id)
			var cerr copyError
			switch {
			case errors.As(err, &cerr):
				// Copying failed: not again before a wait (a clean-up that
				// failed is cheap to try again on the next pass).
				wait := min(moveRetryFirst<<min(retry.failures, 16), moveRetryMax)
				e.moveRetries.Store(u.id, moveRetry{at: e.cfg.Now().Add(wait), failures: retry.failures + 1})
			case err == nil:
				e.moveRetries.Delete(u.id)
			}
			mu.Lock()
			defer mu.Unlock()
			st.Parts += res.Parts
			st.Bytes += res.Bytes
			if res.Moved > 0 {
				st.Moved++
			}
			if err != nil {
				st.failedIn(u.tenant, u.container)
				errs = append(errs, fmt.Errorf("upload %s: %w", u.id, err))
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("engine: move uploads: %w", err)
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("engine: move uploads: %w", errors.Join(errs...))
	}
	return st, nil
}

// moveUploadsAtOnce is how many uploads MoveUploads moves at a time.
const moveUploadsAtOnce = 4

// copyError is moveUpload's error when copying the upload failed (not
// its clean-up).
type copyError struct{ error }

func (e copyError) Unwrap() error { return e.error }

// moveRetry is when MoveUploads tries a failed move of an upload again,
// and how many times it failed in a row: the wait doubles from
// moveRetryFirst up to moveRetryMax, so an upload whose parts cannot be
// read is not copied again on every pass.
type moveRetry struct {
	at       time.Time
	failures int
}

const (
	moveRetryFirst = 10 * time.Second
	moveRetryMax   = 10 * time.Minute
)

// listUploadRecords calls fn with every upload record on d that decodes.
func (e *Engine) listUploadRecords(ctx context.Context, d driver.Driver, fn func(raw driver.Record, r *record, tenant, container, key, id string)) error {
	return eachRecord(ctx, d, uploadKeys, func(raw driver.Record, r *record) error {
		if tenant, container, key, ok := splitUploadKey(raw.Key); ok {
			fn(raw, r, tenant, container, key, raw.Key[strings.LastIndexByte(raw.Key, 0)+1:])
		}
		return nil
	})
}

// moveUpload moves upload id of key, if it is in progress in an older
// map's set, into key's set of the current map, then removes what older
// sets hold of it (see "Moving uploads in progress with migration"). It
// holds the upload's lease throughout: no part commits meanwhile.
func (e *Engine) moveUpload(ctx context.Context, tenant, container, key, id string) (UploadMoveStats, error) {
	var st UploadMoveStats
	hold, err := e.lockUpload(ctx, id)
	if err != nil {
		return st, err
	}
	defer hold.unlock()
	ctx = hold.ctx // writes to the older set under the lease carry it
	up, at, err := e.findUpload(ctx, tenant, container, key, id)
	cur := e.mapFor(tenant, container)
	pg := cur.PGOf(tenant, container, key)
	if errors.Is(err, errMoveUndecided) {
		if st, err = e.reconcileUpload(ctx, hold, tenant, container, key, id, cur, pg); err != nil {
			return st, copyError{err}
		}
		return st, nil
	}
	if errors.Is(err, ErrReadQuorum) {
		return st, copyError{err} // not readable now: tried again after a wait
	}
	if errors.Is(err, ErrNoSuchUpload) {
		// Aborted, or gone with its map: older sets' live records of it
		// are remains, which would list it again (their parts, under no
		// upload record, are never read).
		return st, e.dropUploadElsewhere(ctx, tenant, container, key, id, cur, pg, "", false)
	}
	if err != nil {
		return st, err
	}
	drives, _ := e.pgDrives(cur, pg)
	switch {
	case at.same(uploadAt{m: cur, pg: pg}):
		// Moved before (and maybe completed since): a crash or a drive
		// away may have left older sets' records. A move whose record
		// write failed may have left it on fewer than the write quorum
		// (review 22 F4): written again there before anything older
		// is dropped.
		if e.belowWriteQuorum(ctx, tenant, container, key, id, up, cur) {
			// Reconciled as undecided: an older set may hold parts
			// acknowledged while the record's holders were away.
			if st, err = e.reconcileUpload(ctx, hold, tenant, container, key, id, cur, pg); err != nil {
				return st, copyError{err}
			}
			return st, nil
		}
	case isMarker(up):
		return st, nil // completed where it was: the marker stays with its parts
	case at.m.Epoch < cur.Epoch && at.moved(cur, up):
		var moved *record
		if st, moved, err = e.copyUpload(ctx, hold, tenant, container, key, id, up, at, cur, pg, drives); err != nil {
			return st, copyError{err}
		}
		up = moved
	default:
		return st, nil // in another layout's set, or one no map change moved
	}
	if err := hold.check(); err != nil {
		return st, err
	}
	return st, e.dropUploadElsewhere(ctx, tenant, container, key, id, cur, pg, partsID(id, up), true)
}

// belowWriteQuorum reports whether fewer than the write quorum of key's
// set in cur hold upload id's record up, which that set serves, reading
// every drive. A drive that does not answer may hold it: the record is
// below the write quorum only if it is so counting those drives too (a
// reconcile, which needs every drive, could not run anyway, and a failed
// one would count the container unsettled).
func (e *Engine) belowWriteQuorum(ctx context.Context, tenant, container, key, id string, up *record, cur *placement.Map) bool {
	drives, _ := e.pgDrives(cur, cur.PGOf(tenant, container, key))
	held := 0
	for j, r := range readRaws(ctx, drives, uploadKey(tenant, container, key, id)) {
		if drives[j] != nil && !r.ok || r.found && r.raw.Version == up.Version {
			held++
		}
	}
	return held < cur.Policy.WriteQuorum()
}

// copyUpload is steps 1 and 2 of moveUpload: it writes the parts (copied)
// and the record of upload up, found in at, into pg's set drives of cur.
func (e *Engine) copyUpload(ctx context.Context, hold *uploadHold, tenant, container, key, id string, up *record, at uploadAt, cur *placement.Map, pg uint32, drives []driver.Driver) (UploadMoveStats, *record, error) {
	_, recs, err := e.allParts(ctx, tenant, container, partsID(id, up), at.drives, up.Data)
	if err != nil {
		return UploadMoveStats{}, nil, err
	}
	parts := map[int]partFrom{}
	for n, p := range recs {
		parts[n] = partFrom{p, at}
	}
	return e.writeMovedUpload(ctx, hold, tenant, container, key, id, up, at, parts, cur, pg, drives)
}

// partFrom is a part record and the set it was read from.
type partFrom struct {
	rec *record
	at  uploadAt
}

// writeMovedUpload writes upload up, found in at, into pg's set drives of cur:
// each part of parts (copied, but those already in that set under the
// moved record's keys), then the record. Under the current epoch's
// generation of part keys (partsGenKey), a part written replaces the one
// a move tried before wrote.
func (e *Engine) writeMovedUpload(ctx context.Context, hold *uploadHold, tenant, container, key, id string, up *record, at uploadAt, parts map[int]partFrom, cur *placement.Map, pg uint32, drives []driver.Driver) (UploadMoveStats, *record, error) {
	var st UploadMoveStats
	home := uploadAt{m: cur, pg: pg, drives: drives}
	moved := *up
	gen := strconv.FormatUint(uint64(cur.Epoch), 10)
	inPlace := at.same(home) && up.Metadata[partsGenKey] == gen
	if !at.same(home) {
		moved.Data, moved.Parity, moved.PG = cur.Policy.Data, cur.Policy.Parity, pg
		moved.Seed, moved.Width, moved.PGCount, moved.Layout, moved.Offset = 0, 0, 0, 0, 0
		e.setStriping(&moved, cur, stripeWidth(cur))
	} // else a move's record there already: its parts are striped as it says
	moved.Metadata = maps.Clone(up.Metadata)
	if moved.Metadata == nil {
		moved.Metadata = map[string]string{}
	}
	moved.Metadata[uploadEpochKey] = strconv.FormatUint(uint64(cur.Epoch), 10)
	moved.Metadata[partsGenKey] = gen // keys apart from the parts copied
	as := artSet{m: cur, pg: pg, drives: drives, data: cur.Policy.Data, parity: cur.Policy.Parity}
	wq := cur.Policy.WriteQuorum()
	// The part records written, held until the moved record is on its
	// write quorum, and undone if the move fails. Under their own
	// generation (partsGenKey) they replace nothing of the older set's,
	// but a reconcile writes over the current set's records of that
	// generation: those of a failed Complete's marker, which names their
	// shard files. Collected before the moved record replaced the
	// marker, a failed move left the marker with its parts' data gone,
	// which the next pass took for a completion deleted since, aborting
	// the upload (review 22c G1); undone, the records come back whole.
	type written struct {
		held *heldWrite
		drop func()
	}
	var done []written
	fail := func(err error) (UploadMoveStats, *record, error) {
		cctx, cancel := cleanupCtx(ctx)
		defer cancel()
		for _, w := range done {
			w.held.undo(cctx)
			w.drop()
		}
		return st, nil, err
	}
	keep := func(collect bool) {
		cctx, cancel := cleanupCtx(ctx)
		defer cancel()
		for _, w := range done {
			w.held.keep(cctx, collect)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(parts)) {
		p, from := parts[n].rec, parts[n].at
		if inPlace && from.same(home) {
			continue // in place, under the keys of the moved record
		}
		if len(p.Parts) != 1 {
			return fail(fmt.Errorf("engine: move upload: part %d has %d data parts", n, len(p.Parts)))
		}
		rec := record{
			Data: moved.Data, Parity: moved.Parity, StripeSize: p.StripeSize, PG: pg,
			Seed: moved.Seed, Width: moved.Width, PGCount: moved.PGCount, Layout: moved.Layout,
		}
		if moved.striped() {
			rec.Offset = (n - 1) % moved.Width // where PutPart puts part n
		}
		copied, drop, err := e.copyParts(ctx, tenant, container, key, from, []*record{p}, []bool{true}, as, &rec)
		if err != nil {
			return fail(fmt.Errorf("engine: move upload: %w", err))
		}
		// The copy keeps its source's version: a version of a part is
		// issued only by the PutPart that made it, so the reconcile's
		// "newest" never prefers a copy for the mover's clock (review 22
		// F1), and a later PutPart of n observes it (checkReplaceable).
		rec.Version = p.Version
		rec.Size, rec.ETag, rec.Modified, rec.Metadata, rec.Parts = p.Size, p.ETag, p.Modified, p.Metadata, copied
		pkey := partKey(tenant, container, partsID(id, &moved), n)
		var held *heldWrite
		err = hold.check()
		if err == nil {
			held, err = e.recordWriteAt(pkey, tenant, container, key, drives, wq).writeHeld(ctx, &rec, nil, present(drives))
		}
		if err != nil {
			drop()
			return fail(fmt.Errorf("engine: move upload: part %d: %w", n, err))
		}
		done = append(done, written{held, drop})
		st.Parts++
		st.Bytes += p.Size
	}
	moved.Version, _ = e.newVersion()
	if err := hold.check(); err != nil {
		return fail(err)
	}
	ukey := uploadKey(tenant, container, key, id)
	before := readRaws(ctx, drives, ukey)
	if err := e.recordWriteAt(ukey, tenant, container, key, drives, wq).write(ctx, &moved, nil, present(drives)); err != nil {
		err = fmt.Errorf("engine: move upload: %w", err)
		if !e.undoLostMove(ctx, drives, ukey, moved.Version, before) {
			// A drive may hold the moved record: its parts stay, for
			// the next pass to reconcile (reconcileUpload), and so do
			// the shard files of the records they replaced, which the
			// marker put back may name.
			keep(false)
			return st, nil, err
		}
		return fail(err)
	}
	keep(true)
	st.Moved = 1
	e.log.Info("moved a multipart upload into the current map", "tenant", tenant, "container", container,
		"upload", id, "from_epoch", at.m.Epoch, "epoch", cur.Epoch, "parts", st.Parts, "bytes", st.Bytes)
	return st, &moved, nil
}

// rawRead is one drive's record of a key read whole: found, or answered
// that it holds none (ok), or neither.
type rawRead struct {
	raw       driver.Record
	found, ok bool
}

// readRaws reads ikey's record from each drive, in parallel.
func readRaws(ctx context.Context, drives []driver.Driver, ikey string) []rawRead {
	reads := make([]rawRead, len(drives))
	var wg sync.WaitGroup
	for j, d := range drives {
		if d == nil {
			continue
		}
		wg.Go(func() {
			raw, err := d.GetRecord(ctx, ikey)
			if err == nil {
				data, found, werr := wholeRecord(ctx, d, raw)
				raw.Data, raw.Truncated, err = data, false, werr
				if err == nil && !found {
					err = driver.ErrNotFound
				}
			}
			reads[j] = rawRead{raw: raw, found: err == nil, ok: err == nil || errors.Is(err, driver.ErrNotFound)}
		})
	}
	wg.Wait()
	return reads
}

// undoLostMove finishes the rollback of a move's upload record (version
// v under ikey) whose write failed: a drive that answered an error may
// have taken it (a lost reply), which the write's rollback passes over.
// Each drive holding v loses it and gets back the record it held before
// (before), which on a drive both sets share is the older set's record
// of the upload. It reports whether every drive confirmed it holds no v.
func (e *Engine) undoLostMove(ctx context.Context, drives []driver.Driver, ikey string, v driver.Version, before []rawRead) bool {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	now := readRaws(ctx, drives, ikey)
	confirmed := true
	for j, r := range now {
		switch {
		case drives[j] == nil || r.ok && (!r.found || r.raw.Version != v):
			continue
		case !r.ok:
			confirmed = false
			continue
		}
		if err := drives[j].DeleteRecord(ctx, ikey, v); err != nil && !errors.Is(err, driver.ErrNotFound) {
			e.log.Warn("move's upload record: rollback failed", "shard", j, "err", err)
			confirmed = false
			continue
		}
		if before[j].found {
			if _, _, err := drives[j].PutRecord(ctx, before[j].raw); err != nil && !errors.Is(err, driver.ErrStale) {
				e.log.Warn("move's upload record: the record it replaced not put back", "shard", j, "err", err)
			}
		}
	}
	return confirmed
}

// reconcileUpload settles an upload whose records findUpload found
// undecided (errMoveUndecided): a move's record held by fewer than a read
// quorum of a set, and another set serving the upload; or one that
// moveUpload found on fewer than the write quorum. It reads the
// upload's record from every drive of every set (and fails if one does
// not answer: a drive away may hold either generation), then keeps what
// was acknowledged:
//
//   - a tombstone in any set: the upload was aborted (an abort that
//     failed may be done, one acknowledged must stay); every set still
//     holding it in progress or completing is aborted too. Weak
//     tombstones are written again to a write quorum, and a set
//     holding a marker is aborted only if its completion is pending;
//   - else a completion marker a read quorum holds, or the only state
//     besides tombstones, or one below the read quorum whose completion
//     happened (its artifact record; the marker is then written again to
//     a write quorum): the upload was completed there, and the records
//     in progress elsewhere, with their parts, are removed;
//   - else the upload is in progress: the newest record of each part
//     number across every set's generation is kept, written into pg's
//     set of cur with the upload's record (to a write quorum), and the
//     older sets' remains dropped (dropUploadElsewhere).
//
// A failed step leaves every record it did not replace: the next pass
// finds the upload undecided again.
func (e *Engine) reconcileUpload(ctx context.Context, hold *uploadHold, tenant, container, key, id string, cur *placement.Map, pg uint32) (UploadMoveStats, error) {
	var st UploadMoveStats
	type held struct {
		rec    *record
		at     uploadAt
		strong bool // a read quorum of the set holds rec
	}
	var sets []held
	var aborted bool
	var completed, base *held // base: the newest record in progress
	maps := e.uploadMaps(cur)
	for _, m := range maps {
		rec, at, n, err := e.readUploadIn(ctx, maps, m, tenant, container, key, id, math.MaxInt)
		if err != nil {
			return st, fmt.Errorf("engine: reconcile upload %s: %w", id, err)
		}
		if rec != nil {
			sets = append(sets, held{rec, at, n >= m.Policy.ReadQuorum()})
		}
	}
	for i := range sets {
		h := &sets[i]
		switch {
		case h.rec.Deleted:
			aborted = true
		case isMarker(h.rec):
			if completed == nil || h.strong && !completed.strong {
				completed = h
			}
		case base == nil || h.rec.Version.Compare(base.rec.Version) > 0:
			base = h
		}
	}
	if completed != nil && !completed.strong && base != nil {
		// A marker below the read quorum: a Complete that failed, or one
		// acknowledged whose holders were lost since (review 22 F3). Its
		// artifact record tells them apart: a completion that happened
		// stands, and its marker goes back to a write quorum.
		c, err := e.markerCompletion(ctx, tenant, container, key, completed.rec, completed.at)
		if err != nil {
			return st, fmt.Errorf("engine: reconcile upload %s: %w", id, err)
		}
		if c == completionPending {
			// No artifact record, and no newer version or tombstone: a
			// Complete that failed, replaced by the move's record. One
			// that happened and whose artifact was deleted since reads
			// as gone, since a tombstone of the key stays while a
			// marker of its uploads does (markersHold, review 22b F1).
			// No count of the parts' shard files tells the two apart
			// (review 23 H1): disks replaced since lose those of a
			// failed Complete too, and its acknowledged parts are
			// whole in the other set's remains (review 22c G2).
			completed = nil
		} else if err := e.rewriteWeak(ctx, hold, tenant, container, key, id, completed.rec, completed.at); err != nil {
			return st, fmt.Errorf("engine: reconcile upload %s: marker: %w", id, err)
		}
	}
	e.log.Info("reconciling an upload's records after a move that may have failed", "tenant", tenant,
		"container", container, "upload", id, "sets", len(sets), "aborted", aborted, "completed", completed != nil)
	switch {
	case aborted:
		for _, h := range sets {
			if err := hold.check(); err != nil {
				return st, err
			}
			if h.rec.Deleted {
				// An acknowledged abort whose tombstone lost holders
				// would answer 503 until the sweep (review 22 F5).
				if !h.strong {
					if err := e.rewriteWeak(ctx, hold, tenant, container, key, id, h.rec, h.at); err != nil {
						return st, fmt.Errorf("engine: reconcile upload %s: tombstone in map epoch %d: %w", id, h.at.m.Epoch, err)
					}
				}
				continue
			}
			if isMarker(h.rec) {
				// abort would remove the artifact record of the marker's
				// version: only a pending completion is aborted (F7).
				c, err := e.markerCompletion(ctx, tenant, container, key, h.rec, h.at)
				if err != nil {
					return st, fmt.Errorf("engine: reconcile upload %s: map epoch %d: %w", id, h.at.m.Epoch, err)
				}
				if c != completionPending {
					// Its artifact is visible: the completion stands
					// where it is, its marker to a write quorum so that
					// findUpload serves it.
					e.log.Warn("reconcile upload: a completion that happened in one set, an abort in another: the completion kept",
						"tenant", tenant, "container", container, "upload", id, "epoch", h.at.m.Epoch)
					if !h.strong {
						if err := e.rewriteWeak(ctx, hold, tenant, container, key, id, h.rec, h.at); err != nil {
							return st, fmt.Errorf("engine: reconcile upload %s: marker in map epoch %d: %w", id, h.at.m.Epoch, err)
						}
					}
					continue
				}
			}
			if _, err := e.abort(ctx, tenant, container, key, id, h.rec, h.at); err != nil {
				return st, fmt.Errorf("engine: reconcile upload %s: abort in map epoch %d: %w", id, h.at.m.Epoch, err)
			}
		}
		return st, nil
	case completed != nil:
		for _, h := range sets {
			if h.rec.Deleted || isMarker(h.rec) {
				continue
			}
			if err := hold.check(); err != nil {
				return st, err
			}
			if err := e.dropInProgress(ctx, tenant, container, key, id, h.rec, h.at); err != nil {
				return st, fmt.Errorf("engine: reconcile upload %s: map epoch %d: %w", id, h.at.m.Epoch, err)
			}
		}
		return st, nil
	case base == nil:
		return st, fmt.Errorf("engine: reconcile upload %s: %w", id, ErrNoSuchUpload)
	}
	// In progress: the newest of each part across the generations.
	drives, _ := e.pgDrives(cur, pg)
	parts := map[int]partFrom{}
	for _, h := range sets {
		if h.rec.Deleted || isMarker(h.rec) {
			continue
		}
		_, recs, err := e.allParts(ctx, tenant, container, partsID(id, h.rec), h.at.drives, h.rec.Data)
		if err != nil {
			return st, fmt.Errorf("engine: reconcile upload %s: parts in map epoch %d: %w", id, h.at.m.Epoch, err)
		}
		for n, p := range recs {
			if q, ok := parts[n]; !ok || p.Version.Compare(q.rec.Version) > 0 {
				parts[n] = partFrom{p, h.at}
			}
		}
	}
	// A part written over one of the current set's under the same key
	// (a copy a failed move left, a failed Complete's part) collects the
	// shard files it replaced once the upload's record is on its write
	// quorum (writeMovedUpload).
	st, moved, err := e.writeMovedUpload(ctx, hold, tenant, container, key, id, base.rec, base.at, parts, cur, pg, drives)
	if err != nil {
		return st, err
	}
	if err := hold.check(); err != nil {
		return st, err
	}
	return st, e.dropUploadElsewhere(ctx, tenant, container, key, id, cur, pg, partsID(id, moved), true)
}

// markerCompletion is what the completion of marker mk, found in the set
// at, came to (completionOf), reading the artifact's record from its set;
// ErrReadQuorum if too few of that set's drives answer.
func (e *Engine) markerCompletion(ctx context.Context, tenant, container, key string, mk *record, at uploadAt) (completion, error) {
	as := e.markerSet(tenant, container, key, at, mk)
	arecs, answered := e.readRecordsK(ctx, as.drives, indexPrefix(tenant, container)+artKey(key, mk), as.data)
	if answered < as.data {
		return completionPending, fmt.Errorf("%w: completion: %d of %d drives answered", ErrReadQuorum, answered, len(as.drives))
	}
	return completionOf(mk, as, chooseVersion(arecs, as.data)), nil
}

// rewriteWeak writes upload id's record rec (a marker or a tombstone, as
// read in the set at) again to a write quorum of that set: one held by
// fewer drives after disks were replaced is not final for findUpload.
// An equal version replaces what a drive holds, so a holder is unchanged.
func (e *Engine) rewriteWeak(ctx context.Context, hold *uploadHold, tenant, container, key, id string, rec *record, at uploadAt) error {
	if err := hold.check(); err != nil {
		return err
	}
	return e.putQuorum(ctx, uploadKey(tenant, container, key, id), at.drives, rec, at.m.Policy.WriteQuorum())
}

// dropInProgress removes, from the set at, the records of upload id in
// progress (up, and any other version a drive holds placed there) and the
// part records and shard files of up's generation, sparing the data an
// artifact record of key there names: the remains of a move of an upload
// completed elsewhere.
func (e *Engine) dropInProgress(ctx context.Context, tenant, container, key, id string, up *record, at uploadAt) error {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	arecs, answered := e.readRecordsK(ctx, at.drives, indexPrefix(tenant, container)+key, up.Data)
	if answered < up.Data {
		return fmt.Errorf("%w: %d of %d drives answered", ErrReadQuorum, answered, len(at.drives))
	}
	keep, err := e.keptData(ctx, tenant, container, key, at.drives, up.Data, arecs)
	if err != nil {
		return err
	}
	if _, err := e.dropParts(ctx, tenant, container, key, partsID(id, up), at.drives, up.Data, keep); err != nil {
		return err
	}
	var errs []error
	for j, r := range at.recs {
		if r == nil || r.Deleted || isMarker(r) {
			continue
		}
		if err := at.drives[j].DeleteRecord(ctx, uploadKey(tenant, container, key, id), r.Version); err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dropUploadElsewhere removes, from the drives of key's sets in the older
// maps and the other layouts, the live records of upload id not placed
// in pg's set of cur (where it lives now, its parts under partsID keep)
// and, with parts, its part records under every other partsID, then
// those parts' shard files, then the upload records, so that a crash leaves an upload record for the next pass to
// find. Without parts (the upload is gone) only the upload records go:
// parts under no upload record are never read. A drive it could not
// clean is an error; a drive removed from the cluster is passed over.
func (e *Engine) dropUploadElsewhere(ctx context.Context, tenant, container, key, id string, cur *placement.Map, pg uint32, keep string, parts bool) error {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	home := cur.Set(pg)
	var ids []placement.DriveID
	older := append(e.otherLayouts(cur), e.olderMaps(cur)...)
	for _, m := range older {
		for _, id := range m.Set(m.PGOf(tenant, container, key)) {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	type stray struct {
		d       driver.Driver
		version driver.Version
	}
	var strays []stray
	ukey := uploadKey(tenant, container, key, id)
	drives := map[placement.DriveID]driver.Driver{}
	var errs []error
	for _, did := range ids {
		d, err := e.cfg.Topology.Drive(did)
		if errors.Is(err, driver.ErrRemoved) {
			continue
		}
		var raw driver.Record
		if err == nil {
			drives[did] = d
			raw, err = d.GetRecord(ctx, ukey)
		}
		if errors.Is(err, driver.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("drive %s: %w", did, err))
			continue
		}
		r, derr := unmarshalRecord(raw.Data)
		if derr == nil && r.Deleted {
			continue // an abort's tombstone hides what a drive that missed it holds
		}
		if j := slices.Index(home, did); derr != nil || j < 0 || !placedIn(r, cur, pg, j) {
			strays = append(strays, stray{d, raw.Version})
		}
	}
	if parts {
		type oldPart struct {
			rec    *record
			drives []driver.Driver // the set it is placed in
		}
		olds := map[[16]byte]oldPart{} // by data id: each part's shard files once
		// Every generation of the upload's part keys (partsID) but keep:
		// upload ids have one length, so no other upload's keys match.
		base := partPrefix(tenant, container, id)
		base = base[:len(base)-1]
		for did, d := range drives {
			err := eachRecord(ctx, d, base, func(raw driver.Record, r *record) error {
				if pid := raw.Key[len(base)-len(id) : strings.LastIndexByte(raw.Key, 0)]; pid == keep {
					return nil
				}
				if err := d.DeleteRecord(ctx, raw.Key, raw.Version); err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
					return err
				}
				if r.Deleted || len(r.Parts) != 1 {
					return nil
				}
				if _, ok := olds[r.Parts[0].DataID]; ok {
					return nil
				}
				for _, m := range older {
					if r.PG < uint32(m.PGCount()) && placedIn(r, m, r.PG, r.Shard) && slices.Index(m.Set(r.PG), did) == r.Shard {
						set, _ := e.pgDrives(m, r.PG)
						olds[r.Parts[0].DataID] = oldPart{r, set}
						break
					}
				}
				return nil
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("drive %s: %w", did, err))
			}
		}
		for _, o := range olds {
			e.dropPart(ctx, tenant, container, key, o.drives, o.rec, nil)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("engine: move upload %s: clean older sets: %w", id, errors.Join(errs...))
	}
	for _, s := range strays {
		if err := s.d.DeleteRecord(ctx, ukey, s.version); err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("engine: move upload %s: clean older sets: %w", id, errors.Join(errs...))
	}
	return nil
}

// eachRecord calls fn with every record under prefix on d that decodes,
// read whole, stopping at fn's first error.
func eachRecord(ctx context.Context, d driver.Driver, prefix string, fn func(raw driver.Record, r *record) error) error {
	after := ""
	for {
		raws, err := d.ListRecords(ctx, prefix, after, listBatch)
		if err != nil {
			return err
		}
		for _, raw := range raws {
			data, found, err := wholeRecord(ctx, d, raw)
			if err != nil {
				return err
			}
			r, derr := unmarshalRecord(data)
			if !found || derr != nil {
				continue
			}
			raw.Data = data
			if err := fn(raw, r); err != nil {
				return err
			}
		}
		if len(raws) < listBatch {
			return nil
		}
		after = raws[len(raws)-1].Key
	}
}
