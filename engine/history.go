package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// location is one map's drive set for a key: the map, the key's PG in it,
// the PG's drives in shard order and the key's records placed there.
type location struct {
	m      *placement.Map
	pg     uint32
	drives []driver.Driver
	// recs holds per shard the drive's record if it was written for this
	// set (the map's k+m, this PG and this shard index), nil otherwise. A
	// drive shared with another map's set may hold a record placed for
	// that set; it is not this set's.
	recs     []*record
	raw      []*record // per shard: every record read, placed here or not
	answered []bool    // per shard: the drive answered (with a record or "not found")
}

// placedIn reports whether r, read from slot j of pg's set in m, was
// written for that slot and, striped, its parts' PGs have the drive sets
// they were written to (stripedIn).
func placedIn(r *record, m *placement.Map, pg uint32, j int) bool {
	return r.Data == m.Policy.Data && r.Parity == m.Policy.Parity && r.PG == pg && r.Shard == j && stripedIn(r, m)
}

// newerThan reports whether a drive of l holds a record newer than
// version v, placed for l's set or another: a write under the container's
// other storage layout (otherLayouts) replaced v's records on the drives
// both layouts' sets share, or a write to an older map's set that serves
// the key (a metadata update goes to the drives holding the version)
// landed on a drive both sets share before migration, planned earlier,
// moved v into l's set; v may then not be the key's newest state, and
// locate reads the other sets.
func (l location) newerThan(v driver.Version) bool {
	for _, r := range l.raw {
		if r != nil && r.Version.Compare(v) > 0 {
			return true
		}
	}
	return false
}

// holding returns the record of l that serves version v and how many of
// its drives hold it: of the records of v, one of the largest group that
// names the same data (sameData), first in shard order on a tie, or nil.
// Records of one version name different data only while migration moves
// it: a drive whose slot the map kept holds a record placed in both sets,
// the older map's data until migration replaces it with the current's.
func (l location) holding(v driver.Version) (*record, int) {
	var best *record
	most := 0
	for i, r := range l.recs {
		if r == nil || r.Version != v || (best != nil && sameData(r, best)) {
			continue
		}
		n := 0
		for _, q := range l.recs[i:] {
			if q != nil && q.Version == v && sameData(q, r) {
				n++
			}
		}
		if n > most {
			best, most = r, n
		}
	}
	return best, most
}

// sameData reports whether records a and b of one version name the same
// data: the same shard files, or inline shards encoded alike.
func sameData(a, b *record) bool {
	return a.Deleted == b.Deleted && a.IsInline == b.IsInline && a.StripeSize == b.StripeSize &&
		slices.EqualFunc(a.Parts, b.Parts, func(p, q part) bool { return p.DataID == q.DataID })
}

// sameSet reports whether l reads exactly what m's set for pg would: same
// policy, PG and drives in the same order, and the same records placed
// (a striped record's parts may be placed in one map and not the other).
func (l location) sameSet(m *placement.Map, pg uint32) bool {
	if l.m.Policy != m.Policy || l.pg != pg || !slices.Equal(l.m.Set(l.pg), m.Set(pg)) {
		return false
	}
	for j, r := range l.raw {
		if r != nil && r.striped() && placedIn(r, l.m, l.pg, j) != placedIn(r, m, pg, j) {
			return false
		}
	}
	return true
}

// readSet reads key's records from the drive set of key's PG in m. It
// fails with ErrReadQuorum if fewer than k drives answered. Any k drives
// overlap every write quorum, so they hold the newest acknowledged
// version. A set of the current epoch, whose versions a read writes back
// (writeBack), is read until a write quorum answered (readRecordsConfirm);
// an older map's set, never written back, only until k did and the
// others had the straggler grace (review 26 G4: waiting there bought
// nothing and cost each read of an unmigrated key, and migration itself,
// confirmWait per hung drive).
func (e *Engine) readSet(ctx context.Context, m *placement.Map, tenant, container, key string) (location, error) {
	pg := pgOf(m, tenant, container, key)
	drives, _ := e.pgDrives(m, pg)
	ikey := indexPrefix(tenant, container) + key
	var all []*record
	var each []bool
	if m.Epoch < e.mapFor(tenant, container).Epoch {
		all, each = e.readRecordsQuorum(ctx, drives, ikey, m.Policy.ReadQuorum())
	} else {
		all, each = e.readRecordsConfirm(ctx, drives, ikey, m.Policy)
	}
	answered := 0
	for _, a := range each {
		if a {
			answered++
		}
	}
	if k := m.Policy.ReadQuorum(); answered < k {
		return location{}, fmt.Errorf("%w: map epoch %d pg %d: %d of %d drives answered, need %d", ErrReadQuorum, m.Epoch, pg, answered, len(drives), k)
	}
	return setLocation(m, pg, drives, all, each), nil
}

// setLocation returns the location of pg's set in m from what its drives
// (drives, in shard order; nil when not needed) hold of a key: all[j] is
// slot j's record (nil if none) and each[j] whether slot j answered. Of
// the records, those placed for the set (placedIn), or whose Prev is, are
// its own, less the live inline versions too few of its drives hold to
// decode (dropUnreadableInline), which count for no placement. It keeps
// all.
func setLocation(m *placement.Map, pg uint32, drives []driver.Driver, all []*record, each []bool) location {
	placed := make([]*record, len(all))
	unanswered := 0
	for j, r := range all {
		switch {
		case r == nil:
		case placedIn(r, m, pg, j) && r.Prev != nil:
			// Its own, without the older placement it carries: a
			// record copied from it (Heal, a write-back) names only
			// this placement's data.
			own := *r
			own.Prev = nil
			placed[j] = &own
		case placedIn(r, m, pg, j):
			placed[j] = r
		case r.Prev != nil && placedIn(r.Prev, m, pg, j):
			// Migration is moving the version onto a set this drive
			// is in too: the older placement's shard files are still
			// here (writeMoved).
			placed[j] = r.Prev
		}
		if !each[j] {
			unanswered++
		}
	}
	for _, j := range dropUnreadableInline(placed, unanswered, m.Policy.ReadQuorum()) {
		all[j] = nil // nor is it a record of another placement
	}
	return location{m: m, pg: pg, drives: drives, recs: placed, raw: all, answered: each}
}

// serves returns the version l's set serves on its own and how many of its
// drives hold it: its newest version (chooseVersion), and for a live one
// the records that name the same data on the most drives (holding).
func (l location) serves() (*record, int) {
	v := chooseVersion(l.recs, l.m.Policy.ReadQuorum())
	if v == nil || v.Deleted {
		return v, 0
	}
	return l.holding(v.Version)
}

// settles reports whether v, the version l (the current set) serves,
// held by held drives, is the key's without reading another set: it is
// whole (a tombstone or a version held by k) and no drive of l holds a
// newer record (newerThan).
func (l location) settles(v *record, held int) bool {
	return l.whole(v, held) && !l.newerThan(v.Version)
}

// whole reports whether l serves v, held by held drives, on its own: a
// tombstone, or a version held by k.
func (l location) whole(v *record, held int) bool {
	return v != nil && (v.Deleted || held >= l.m.Policy.ReadQuorum())
}

// supersedes reports whether v, the version l (an older map's or the
// other layout's set) serves, held by held drives, is served in place of
// newest, what cur (the current set) serves, held by curHeld (newest nil
// if nothing): when the current set serves nothing; when l holds the same
// version on k drives and the current set does not; or when v is newer
// and a tombstone or held by k (the current set's version is then the
// remains of one a write under the other layout replaced: otherLayouts;
// or the version before an update to the older set, which migration
// moved into the current set after the update: newerThan).
func (l location) supersedes(v *record, held int, cur location, newest *record, curHeld int) bool {
	k := l.m.Policy.ReadQuorum()
	switch {
	case v == nil:
		return false
	case newest == nil:
		return true
	case v.Version == newest.Version:
		return held >= k && !cur.whole(newest, curHeld)
	default:
		return v.Version.Compare(newest.Version) > 0 && (v.Deleted || held >= k)
	}
}

// olderMaps returns the Topology's older maps (MapHistory) that precede
// cur, newest first; none if it keeps no history.
func (e *Engine) olderMaps(cur *placement.Map) []*placement.Map {
	h, ok := e.cfg.Topology.(MapHistory)
	if !ok {
		return nil
	}
	var ms []*placement.Map
	for _, m := range h.OlderMaps() {
		if m != nil && m.Epoch < cur.Epoch {
			ms = append(ms, e.layoutMap(m, cur.Layout))
		}
	}
	return ms
}

// otherLayouts returns cur's map under the storage layouts other than
// its own that a container's writes use (local and hybrid), when the
// cluster has remote drives and cur is of the current epoch. A write picks
// its map when it starts (mapFor); one that started before its container's
// storage policy changed commits under the policy it started with, so its
// artifact is placed for the other layout: reads, clean-up and migration
// look there too, as they look in the older maps, and migration moves it
// into the container's layout (probe F2 of session 7).
func (e *Engine) otherLayouts(cur *placement.Map) []*placement.Map {
	raw := e.cfg.Topology.Map()
	if raw == nil || cur == nil || raw.Epoch != cur.Epoch || !raw.HasRemote() {
		return nil
	}
	var ms []*placement.Map
	for _, l := range []placement.Layout{placement.LayoutLocal, placement.LayoutHybrid} {
		if l == cur.Layout {
			continue
		}
		if m := e.layoutMap(raw, l); m != nil && m != cur && m.Layout == l {
			ms = append(ms, m)
		}
	}
	return ms
}

// locate finds the set that serves key and the version it serves (nil if
// none: the key does not exist).
//
// The current map's set is read first and must answer with a read quorum,
// or locate fails with ErrReadQuorum. Its newest version (chooseVersion)
// wins if it is a tombstone or is held by k of its drives, and none of its
// drives holds a newer record (newerThan):
// deletes and overwrites write to the current set, except those that
// started under the container's other storage layout. Otherwise the
// other layout's set and the older maps of a MapHistory are tried
// (fallbackMaps), newest first, each needing a read quorum of its own set:
//
//   - if the current set holds none of the key's records, the first older
//     set holding any (a version or a tombstone) serves it;
//   - if the current set holds a live version on fewer than k drives (a
//     set that kept some of the old drives in the same slots, so their
//     records are placed in both), the first older set holding that same
//     version on k drives serves it, or a newer version (or its
//     tombstone): the current set's version is then the remains of one
//     that a write under another storage layout replaced on the drives the
//     two layouts share (otherLayouts: a write that started before its
//     container's policy changed; probe F4 of session 10). Failing that
//     the current set serves its version, as without history.
//
// A version counts as held by the drives whose records of it name the
// same data (holding), so a set that migration is part way through is
// never read as a mix of two copies.
//
// A current set holding no record of its own but another placement's live
// record (a map with no history, or history that no longer reaches the
// artifact's map) fails with ErrReadQuorum: the map moved the artifact,
// unless the record is placed for an older set that cannot decode it
// (remainsOfFallback): then the key is absent.
//
// When no set serves a version after older sets were read, or the current
// set held another placement's live record, the current set is read once
// more and serves what it now holds: a migration or a write may have
// landed between the reads (TestLocateRacingMigration).
func (e *Engine) locate(ctx context.Context, tenant, container, key string) (location, *record, error) {
	cur := e.mapFor(tenant, container)
	loc, err := e.readSet(ctx, cur, tenant, container, key)
	if err != nil {
		return location{}, nil, err
	}
	newest, curHeld := loc.serves()
	if loc.settles(newest, curHeld) {
		return loc, newest, nil
	}
	read := []location{loc}
	for _, m := range e.fallbackMaps(tenant, container, cur) {
		pg := pgOf(m, tenant, container, key)
		if slices.ContainsFunc(read, func(l location) bool { return l.sameSet(m, pg) }) {
			continue // read already, with the same placement
		}
		old, err := e.readSet(ctx, m, tenant, container, key)
		if err != nil {
			if newest != nil {
				break // the current set can still try
			}
			return location{}, nil, err
		}
		read = append(read, old)
		if v, held := old.serves(); old.supersedes(v, held, loc, newest, curHeld) {
			return old, v, nil
		}
	}
	if newest != nil {
		return loc, newest, nil
	}
	if r := chooseVersion(loc.raw, cur.Policy.ReadQuorum()); len(read) > 1 || (r != nil && !r.Deleted) {
		// Migration may have moved the key between the reads of the
		// current set and of the older ones (it writes the current set,
		// then empties the older ones), or a write under the current map
		// landed meanwhile, replacing older records on drives of both:
		// read the current set again.
		again, err := e.readSet(ctx, cur, tenant, container, key)
		if err != nil {
			return location{}, nil, err
		}
		if v, _ := again.serves(); v != nil {
			return again, v, nil
		}
		loc = again
	}
	if r := chooseVersion(loc.raw, cur.Policy.ReadQuorum()); r != nil && !r.Deleted && !e.remainsOfFallback(ctx, loc, r, tenant, container, key) {
		return location{}, nil, fmt.Errorf("%w: the map moved this artifact: placed with %d+%d in pg %d, map epoch %d has %s in pg %d", ErrReadQuorum, r.Data, r.Parity, r.PG, cur.Epoch, cur.Policy, loc.pg)
	}
	return loc, nil, nil
}

// remainsOfFallback reports whether r, a live record read from loc (the
// current set) but placed for another set, is placed for the set of one
// of the fallback maps that, read now (after loc), holds no version to
// serve: r's version is on too few of its drives to decode even counting
// the drives that did not answer (dropUnreadableInline), so r is the
// remains of an inline write that failed there and was never
// acknowledged nor served, not an artifact the map moved. (Its rollback
// failed: the drives had moved on to a newer map epoch and fenced it.)
// The key is absent; migration removes the remains (removeRemains).
//
// That set is read after loc, not trusted from an earlier read: a move
// by migration keeps one of the two sets serving at every moment, so
// with the current set read serving nothing, an older set read
// afterwards serves the artifact if it exists.
func (e *Engine) remainsOfFallback(ctx context.Context, loc location, r *record, tenant, container, key string) bool {
	j := slices.Index(loc.raw, r)
	if j < 0 || !r.IsInline {
		return false
	}
	id := loc.m.Set(loc.pg)[j]
	for _, m := range e.fallbackMaps(tenant, container, loc.m) {
		pg := pgOf(m, tenant, container, key)
		if i := slices.Index(m.Set(pg), id); i < 0 || !placedIn(r, m, pg, i) {
			continue
		}
		old, err := e.readSet(ctx, m, tenant, container, key)
		return err == nil && chooseVersion(old.recs, m.Policy.ReadQuorum()) == nil
	}
	return false
}

// olderSetsHold reports whether the set of an older map (MapHistory), or
// for a PolicyTier container the remote layout's (fallbackMaps), may
// still hold a live version of key: one of its drives holds one placed
// there, or did not answer. A tombstone in the current set must stay while
// this holds, or purging it would bring the older version back.
func (e *Engine) olderSetsHold(ctx context.Context, cur *placement.Map, tenant, container, key string) bool {
	for _, m := range e.fallbackMaps(tenant, container, cur) { // a tiered version too
		pg := pgOf(m, tenant, container, key)
		drives, _ := e.pgDrives(m, pg)
		recs, answered := e.readRecords(ctx, drives, indexPrefix(tenant, container)+key)
		if answered < len(drives) {
			return true
		}
		for j, r := range recs {
			if r != nil && !r.Deleted && (placedIn(r, m, pg, j) || r.Prev != nil && placedIn(r.Prev, m, pg, j)) {
				return true
			}
		}
	}
	return false
}

// dropUnreadableInline removes from recs the live inline versions that
// fewer than k drives hold, or a newer version, even counting the
// unanswered ones: an inline artifact's bytes are in its records, so such
// a version cannot be
// decoded, was never acknowledged (a write quorum is at least k) nor
// served, and is the remains of a failed write (kept: new versions are
// not rolled back) that must not hide the version before it. (An empty
// artifact decodes from nothing.) It returns the slots it cleared.
func dropUnreadableInline(recs []*record, unanswered, k int) []int {
	var dropped []int
	for j, r := range recs {
		// Drives holding a newer version count: they may have held this
		// one (acknowledged on k or more) until a newer write replaced it.
		// Counted among all of recs: none is cleared before every one
		// was counted (no copy of recs made for each read).
		if r != nil && r.IsInline && !r.Deleted && r.Size > 0 && atOrAbove(recs, r.Version)+unanswered < k {
			dropped = append(dropped, j)
		}
	}
	for _, j := range dropped {
		recs[j] = nil
	}
	return dropped
}

// removeRemains removes, from the sets of cur's fallback maps (the
// history), key's live inline records that their own set cannot decode
// (dropUnreadableInline, every drive of the set read) and that are older
// than InFlightGrace, or whose PG the fence closed (pgFenced): the remains
// of a failed inline write whose rollback was fenced (remainsOfFallback).
// Younger ones in an open PG stay, as Heal leaves them: the write may
// still be in flight and reach its quorum; a later pass removes them, and
// until then they count in Residue, keeping their map (and every older
// map naming their drive). In a fenced PG no write under that map can
// land any more, so waiting InFlightGrace would only hold a drain or a
// set-erasure for 15 minutes (CI's TestClusterDrainAndRemove: one failed
// 1 KiB PUT racing set-erasure kept the drain from finishing).
// Each is deleted only if the drive still holds that version (a
// conditional delete), through the unfenced drive: the map it was
// written for has moved. It returns how many records it removed.
func (e *Engine) removeRemains(ctx context.Context, tenant, container, key string, cur *placement.Map) (int, error) {
	ikey := indexPrefix(tenant, container) + key
	removed := 0
	var errs []error
	for _, m := range e.fallbackMaps(tenant, container, cur) {
		pg := pgOf(m, tenant, container, key)
		drives, _ := e.pgDrives(m, pg)
		raws, answered := e.readRecords(ctx, drives, ikey)
		placed := make([]*record, len(raws))
		for j, r := range raws {
			if r != nil && placedIn(r, m, pg, j) {
				placed[j] = r
			}
		}
		fenced := e.pgFenced(m.Epoch, pg)
		for _, j := range dropUnreadableInline(placed, len(drives)-answered, m.Policy.ReadQuorum()) {
			r := raws[j]
			if !fenced && e.cfg.Now().Sub(versionTime(r.Version)) < InFlightGrace {
				continue
			}
			d, err := e.cfg.Topology.Drive(m.Set(pg)[j])
			if err != nil || d == nil {
				continue
			}
			switch err := d.DeleteRecord(ctx, ikey, r.Version); {
			case err == nil:
				removed++
			case errors.Is(err, driver.ErrNotFound), errors.Is(err, driver.ErrStale):
			default:
				errs = append(errs, fmt.Errorf("engine: remove the remains of a failed write from drive %s: %w", m.Set(pg)[j], err))
			}
		}
	}
	return removed, errors.Join(errs...)
}

// pgFenced reports whether the drives refuse every record write to pg
// planned under the older map of epoch, so that a write under it still in
// flight cannot land another record: the Topology fences writes
// (FencedTopology), pg's drive set in that map differs from the current
// map's (compared on the cluster's maps, as the fence compares them), and
// the current map has been current here for mapSettle, by when every
// node has applied it (what RunMigrator assumes before dropping a map).
func (e *Engine) pgFenced(epoch placement.Epoch, pg uint32) bool {
	if _, ok := e.cfg.Topology.(FencedTopology); !ok {
		return false
	}
	h, ok := e.cfg.Topology.(MapHistory)
	cur := e.cfg.Topology.Map()
	if !ok || cur == nil || epoch >= cur.Epoch || e.mapAge(cur.Epoch) < mapSettle {
		return false
	}
	for _, m := range h.OlderMaps() {
		if m != nil && m.Epoch == epoch {
			return m.PGCount() != cur.PGCount() || int(pg) >= cur.PGCount() || !slices.Equal(m.Set(pg), cur.Set(pg))
		}
	}
	return false
}

// mapSeen is when an Engine first saw the current map's epoch.
type mapSeen struct {
	mu    sync.Mutex // guards the following
	epoch placement.Epoch
	at    time.Time
}

// mapAge returns how long epoch has been the current map's epoch as this
// Engine saw it: since the first call with it (RunMigrator calls it every
// tick on every node).
func (e *Engine) mapAge(epoch placement.Epoch) time.Duration {
	now := e.cfg.Now()
	e.mapSeen.mu.Lock()
	defer e.mapSeen.mu.Unlock()
	if e.mapSeen.epoch != epoch || e.mapSeen.at.IsZero() {
		e.mapSeen.epoch, e.mapSeen.at = epoch, now
	}
	return now.Sub(e.mapSeen.at)
}
