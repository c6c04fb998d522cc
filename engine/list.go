package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// ListOptions selects a page of a container listing.
type ListOptions struct {
	Prefix    string // only keys starting with Prefix
	Delimiter string // roll keys up to the first Delimiter after Prefix into common prefixes
	After     string // only keys (or common prefixes) sorting after After
	Limit     int    // at most this many artifacts plus prefixes; 0 means 1000
	// all lists version keys and deleted version pointers too (a
	// container's sweep and emptiness check).
	all bool
	// sweep walks the older maps' sets without requiring them: the
	// container does not exist (sweepContainer), so nothing says whether
	// they hold its keys, and a CreateContainer must not fail while an
	// older map's drives are down (session 14, TestClusterThreeNodes).
	sweep bool
}

// ListResult is one page of a listing, in ascending byte order of key.
type ListResult struct {
	Artifacts []ArtifactInfo
	Prefixes  []string // common prefixes, each ending with the delimiter
	Truncated bool     // more keys follow
	Next      string   // the last key or prefix in this page: After for the next page
}

// maxKeySentinel sorts after every valid artifact key that starts with the
// same prefix: valid UTF-8 never contains the byte 0xff.
const maxKeySentinel = "\xff"

// cursor walks one drive's index a batch at a time.
type cursor struct {
	d      driver.Driver
	buf    []driver.Record
	after  string // index key to continue after
	limit  int    // records per ListRecords; 0 means listBatch
	done   bool
	failed error
}

// driveCursor is a cursor over one drive's index in a walk that merges
// several drives' indexes (migration, re-layout, tier collection).
type driveCursor struct {
	id placement.DriveID
	c  *cursor
}

// smallestKey fills every cursor of *srcs and returns the smallest index
// key any of them holds next; found is false when all are exhausted. A
// cursor whose listing failed is dropped from *srcs and reported to drop
// (with ctx's error when ctx ended: the caller checks ctx after).
func smallestKey(ctx context.Context, srcs *[]driveCursor, prefix string, drop func(id placement.DriveID, err error)) (minKey string, found bool) {
	for i := 0; i < len(*srcs); i++ {
		s := (*srcs)[i]
		if s.c.fill(ctx, prefix); s.c.failed != nil {
			drop(s.id, s.c.failed)
			*srcs = slices.Delete(*srcs, i, i+1)
			i--
			continue
		}
		if len(s.c.buf) > 0 && (!found || s.c.buf[0].Key < minKey) {
			minKey, found = s.c.buf[0].Key, true
		}
	}
	return minKey, found
}

// batch is how many records the cursor asks its drive for at a time.
func (c *cursor) batch() int {
	if c.limit > 0 {
		return c.limit
	}
	return listBatch
}

// needsFill reports whether the cursor's buffer is empty and its drive
// may hold more.
func (c *cursor) needsFill() bool { return len(c.buf) == 0 && !c.done }

// batch is the outcome of one drive's ListRecords.
type batch struct {
	recs []driver.Record
	err  error
}

// next reads the cursor's next batch. It does not change the cursor (it
// may still run, as a straggler, once the listing moved on).
func (c *cursor) next(ctx context.Context, prefix string) batch {
	recs, err := c.d.ListRecords(ctx, prefix, c.after, c.batch())
	return batch{recs, err}
}

// fill refills the cursor's buffer if it ran dry, waiting for its drive.
func (c *cursor) fill(ctx context.Context, prefix string) {
	if c.needsFill() {
		c.apply(c.next(ctx, prefix))
	}
}

// apply takes the batch next read into the cursor.
func (c *cursor) apply(b batch) {
	recs, err := b.recs, b.err
	if err != nil {
		c.failed, c.done = err, true
		return
	}
	c.buf = recs
	if len(recs) < c.batch() {
		c.done = true
	}
	if len(recs) > 0 {
		c.after = recs[len(recs)-1].Key
	}
}

// skipTo drops buffered keys at or before after and continues after it.
func (c *cursor) skipTo(after string) {
	for len(c.buf) > 0 && c.buf[0].Key <= after {
		c.buf = c.buf[1:]
	}
	if len(c.buf) == 0 && c.after < after {
		c.after = after
	}
}

// fill refills the buffers of the cursors that ran dry, in parallel
// (fanOutUntil). It returns once enough(answered) reports true and the
// others had the straggler grace, where answered[j] says whether cursor j
// is still in the listing: it has not failed, and either did not need a
// batch or its drive answered this one. A cursor whose drive did not
// answer by then is dropped from the listing (failed), and its late
// answer ignored. enough must not retain answered. With lostFails (a
// walk where a record listed lost fails its drive's listing: merger.next),
// a batch holding one is no answer to enough, as ListRecords failing was
// before driver/local listed such records: accepted, it made the quorum,
// a slower drive was dropped after the grace, and the walk then fell
// short once the cursor failed at that record (review 29t). So is a
// cursor that needs no batch but holds one in its buffer still.
func (e *Engine) fill(ctx context.Context, cursors []*cursor, prefix string, enough func(answered []bool) bool, lostFails bool) {
	needs := make([]bool, len(cursors))
	need := false
	for j, c := range cursors {
		needs[j] = c.needsFill()
		need = need || needs[j]
	}
	if !need {
		return
	}
	var lost []bool // lost[j]: cursor j needs no batch but holds a record listed lost
	if lostFails {
		lost = make([]bool, len(cursors))
		for j, c := range cursors {
			lost[j] = !needs[j] && slices.ContainsFunc(c.buf, listedLost)
		}
	}
	answered := make([]bool, len(cursors))
	res, done := fanOutUntil(ctx, e, len(cursors), func(j int) bool { return needs[j] },
		func(_ int, accepted []bool) bool {
			for j, c := range cursors {
				answered[j] = c.failed == nil && (!needs[j] || accepted[j]) && (lost == nil || !lost[j])
			}
			return enough(answered)
		},
		func(ctx context.Context, j int) batch { return cursors[j].next(ctx, prefix) },
		func(b batch) bool { return b.err == nil && !(lostFails && slices.ContainsFunc(b.recs, listedLost)) }, nil)
	for j, c := range cursors {
		if !needs[j] {
			continue
		}
		if !done[j] {
			c.apply(batch{err: fmt.Errorf("%w: list: drive did not answer in time", ErrReadQuorum)})
			continue
		}
		c.apply(res[j])
	}
}

// atMostMissing returns a fill quorum met once at most spare cursors are
// not in the listing (failed before, or not answered yet): the rule of a
// walk that compares drives but needs no listing to be complete (Scan).
func atMostMissing(spare int) func(answered []bool) bool {
	return func(answered []bool) bool {
		missing := 0
		for _, a := range answered {
			if !a {
				missing++
			}
		}
		return missing <= spare
	}
}

// pgsCovered reports whether a listing of m's drives that answered holds
// the newest record of every key m places: whether, for every PG of m, at
// least k (m.Policy.ReadQuorum) drives of its set answered (answered
// holds their IDs). A key's newest record (version or tombstone) was
// written to a write quorum of max(k, m+1) drives of its set of k+m, and
// k + max(k, m+1) > k+m, so one of those k drives holds it (see List).
// Drives of m in no PG (those of another class, in a storage-policy
// layout's map) do not count. A map whose every PG spans all its drives
// (few drives) is covered exactly when at most Parity of its drives are
// missing, the rule of a whole-map quorum.
func pgsCovered(m *placement.Map, answered map[placement.DriveID]bool) bool {
	spare := m.Policy.SetSize() - m.Policy.ReadQuorum() // m: missing drives a set may have
	missing := 0
	for _, d := range m.Drives {
		if !answered[d.ID] {
			missing++
		}
	}
	if missing <= spare {
		return true // no set can miss more
	}
	for _, set := range m.PGs {
		lost := 0
		for _, id := range set {
			if !answered[id] {
				lost++
			}
		}
		if lost > spare {
			return false
		}
	}
	return true
}

// List returns a page of tenant's container: the artifacts and common
// prefixes after opts.After, in key order. It merges the sorted indexes of
// every drive of the container's map (mapFor), holding one batch per drive
// in memory.
//
// It does not wait for every drive: each batch is read from all drives in
// parallel, and once the drives that answered (less those unavailable or
// dropped before) cover every PG of the container's map (and of the
// remote layout's map of a tiered container: listSet), that is, hold at
// least k drives of each PG's set of k+m (pgsCovered), the others get the
// straggler grace and are then dropped from this listing. The sets of
// the older maps kept during a migration that may still hold keys of the
// container (those of its settled epoch or later: ContainerInfo.Settled,
// Settler) must be covered too, each with its own k. The drives of the
// other maps a key may still be placed in (the older maps the container
// is settled past, the other storage layout's) are walked too, merged as
// they answer. A listing whose
// drives no longer cover every PG fails with ErrReadQuorum rather than
// answer a page that may miss keys. That stays correct: a key lives in
// one PG's set of k+m drives, and its newest version (or tombstone) was
// written to a write quorum of at least max(k, m+1) of them; with at
// least k of that set answered, and k + max(k, m+1) > k+m, some drive
// that answered holds the newest version, which the merge picks by
// version. This holds for every policy: max(k, m+1) >= m+1, so
// k + max(k, m+1) >= k+m+1 (for placement.DefaultPolicy: 1+0: 1+1 > 1,
// 1+1: 1+2 > 2, 2+2: 2+3 > 4, 4+2: 4+4 > 6, 4+4: 4+5 > 8, k+4 with k >= 5:
// 2k > k+4). So on a map of many drives a listing survives the loss of
// any drives that leave each set k, such as a whole node whose drives
// are at most m of every set; on a map whose every set spans all its
// drives the rule is at most m drives missing, as for one set.
func (e *Engine) List(ctx context.Context, tenant, container string, opts ListOptions) (ListResult, error) {
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return ListResult{}, err
	}
	return e.list(ctx, tenant, container, opts)
}

// list is List without the check that the container exists. Version
// keys (version.go) are skipped unless opts.all, and so are deleted
// version pointers (a key whose current version is a delete marker).
func (e *Engine) list(ctx context.Context, tenant, container string, opts ListOptions) (ListResult, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 1000
	}
	after := opts.After
	// A marker that is itself a common prefix: everything under it was
	// already rolled up into it.
	if opts.Delimiter != "" && strings.HasPrefix(after, opts.Prefix) {
		if i := strings.Index(after[len(opts.Prefix):], opts.Delimiter); i >= 0 {
			after = after[:len(opts.Prefix)+i+len(opts.Delimiter)] + maxKeySentinel
		}
	}
	settled := noOlderCover
	if !opts.sweep {
		settled = e.settledOf(ctx, tenant, container)
	}
	g := e.newMergerFrom(tenant, container, opts.Prefix, after, settled)
	var res ListResult
	count := 0
	for {
		key, newest, ok, err := g.next(ctx)
		if err != nil {
			return ListResult{}, err
		}
		if !ok {
			break
		}
		if i := strings.IndexByte(key, 0); i >= 0 && !opts.all {
			g.skipTo(key[:i+1] + maxKeySentinel) // the rest of this key's versions
			continue
		}
		if newest.Deleted && !(opts.all && newest.Pointer) {
			continue
		}
		if opts.Delimiter != "" {
			if i := strings.Index(key[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				if count == limit {
					res.Truncated = true
					break
				}
				cp := key[:len(opts.Prefix)+i+len(opts.Delimiter)]
				res.Prefixes = append(res.Prefixes, cp)
				res.Next = cp
				count++
				g.skipTo(cp + maxKeySentinel)
				continue
			}
		}
		if count == limit {
			res.Truncated = true
			break
		}
		res.Artifacts = append(res.Artifacts, e.info(tenant, container, key, newest))
		res.Next = key
		count++
	}
	if err := g.finish(); err != nil {
		return ListResult{}, err
	}
	return res, nil
}

// merger walks the index keys of a container under a prefix, in order,
// merging every drive's index (see List for the quorum argument) and
// resolving each index key to the record a read serves (choose),
// tombstones included.
type merger struct {
	e                 *Engine
	set               listSet // the maps whose PGs the drives must cover, and their drives
	k                 int     // the container's policy's read quorum
	tenant, container string
	maps              []*placement.Map // where a read looks for a key (locate): the container's map, then its fallbackMaps
	base              string           // the container's index prefix
	prefix            string           // base + the listing's prefix
	cursors           []*cursor
	ids               []placement.DriveID // ids[i] is the drive cursors[i] walks
}

// newMerger starts a walk of the keys under prefix sorting after after,
// over the drives of every map a key of the container may be placed in
// (listSet), that must cover the older maps' sets the container's keys
// may still live in (settledOf). A drive the topology cannot provide gets
// no cursor: it counts as not answering.
func (e *Engine) newMerger(ctx context.Context, tenant, container, prefix, after string) *merger {
	return e.newMergerFrom(tenant, container, prefix, after, e.settledOf(ctx, tenant, container))
}

// noOlderCover is the settled epoch of a walk that needs none of the older
// maps' sets covered: a sweep of a container that does not exist.
const noOlderCover = placement.Epoch(math.MaxUint64)

// newMergerFrom is newMerger for a container settled at epoch settled: the
// walk must cover the sets of the older maps (MapHistory) of that epoch
// or later too (noOlderCover: none), as those may still hold keys of the
// container that no set of the current map holds.
func (e *Engine) newMergerFrom(tenant, container, prefix, after string, settled placement.Epoch) *merger {
	m := e.mapFor(tenant, container)
	base := indexPrefix(tenant, container)
	cover := []*placement.Map{m}
	if e.tiered(tenant, container) {
		// Tiered artifacts' records are on the remote layout's sets, in
		// none of m's PGs: without them, a listing would leave those
		// artifacts out where a read fails.
		cover = append(cover, e.tierMap())
	}
	cover = append(cover, e.olderToCover(m, settled)...)
	maps := append([]*placement.Map{m}, e.fallbackMaps(tenant, container, m)...)
	g := &merger{e: e, set: e.listSetOf(cover, maps[1:]), k: m.Policy.ReadQuorum(), tenant: tenant, container: container,
		maps: maps, base: base, prefix: base + prefix}
	g.set.wholeIfLayouts(e, m)
	for i, d := range g.set.drives {
		if d != nil {
			g.cursors = append(g.cursors, &cursor{d: d, after: base + after})
			g.ids = append(g.ids, g.set.ids[i])
		}
	}
	return g
}

// olderToCover returns the older maps (MapHistory) of m whose sets a
// listing of a container settled at epoch settled must cover: those of
// that epoch or later (noOlderCover: none). A key written under such a
// map and not moved yet has its newest record on a write quorum of that
// map's set only (probe F2 of session 14), and so has an upload in
// progress begun under it and not moved yet (MoveUploads): without
// them, a page would leave it out. This is the one place of the rule;
// see listSet for why the settled epoch and not every older map.
func (e *Engine) olderToCover(m *placement.Map, settled placement.Epoch) []*placement.Map {
	var cover []*placement.Map
	for _, om := range e.olderMaps(m) {
		if om.Epoch >= settled {
			cover = append(cover, om)
		}
	}
	return cover
}

// settledOf returns the epoch from which on the older maps may hold keys
// of tenant's container (ContainerInfo.Settled): 0, every older map, if
// the store does not know it or cannot say now.
func (e *Engine) settledOf(ctx context.Context, tenant, container string) placement.Epoch {
	c, err := e.cfg.Containers.Container(ctx, tenant, container)
	if err != nil {
		return 0
	}
	return placement.Epoch(c.Settled)
}

// covered reports whether the cursors with answered[i] cover every PG of
// the maps the walk must cover (listSet.covers).
func (g *merger) covered(answered []bool) bool {
	ids := make(map[placement.DriveID]bool, len(g.ids))
	for i, a := range answered {
		if a {
			ids[g.ids[i]] = true
		}
	}
	return g.set.covers(ids)
}

// listSet is what a listing walks: every drive, once, of the maps whose
// PGs it must cover (the container's map, the remote layout's of a
// tiered container, whose artifacts' records live there, and the older
// maps kept during a migration that may still hold the container's keys)
// and of the maps a key may still be placed in besides (the other storage
// layout's, the older maps that hold none of the container's keys);
// drives[i] for ids[i], nil where the topology lacks it. A listing is
// complete once the drives that answered cover every PG of the maps to
// cover; the others' drives are merged as they answer but not waited
// for.
//
// Which older maps to cover: those of the container's settled epoch
// (ContainerInfo.Settled) or later. Without them, a key still placed in
// an older map's set, with more than that set's parity down while every
// current set has k, was left out (probe F2 of session 14). Requiring
// every older map instead cost availability: an older map is kept until
// a migration pass over it is clean and Residue finds it empty, so one
// node down after a join (its drives in an older map's sets) made every
// listing answer 503 until it returned (session 14,
// TestClusterThreeNodes). A container is settled at the epoch it was
// created under, and the migrator raises it to the current epoch after a
// clean pass that began once the current map settled (RunMigrator,
// Settler); so only a container created before a map change whose keys
// may still be moving answers 503 while an older set is short.
type listSet struct {
	cover  []*placement.Map
	whole  *placement.Map // if set, at most its parity of its drives may be missing (wholeIfLayouts)
	ids    []placement.DriveID
	drives []driver.Driver
}

// wholeIfLayouts keeps, in a cluster with remote drives (where a
// container's keys may still be placed for its other storage layout
// after a policy change, until the re-layout walk moves them), the rule
// listings had before the per-PG one as well: at most m's parity of m's
// drives (every drive of the cluster) missing. The per-PG rule covers the
// container's layout only, and the other layout's sets hold drives (the
// remote ones) in none of its PGs: without the whole-map rule, a listing
// of a container flipped from hybrid to local answered without the keys
// its hybrid sets still held once the remote drives and two local ones
// were down (probe of session 14), where it used to answer 503.
func (s *listSet) wholeIfLayouts(e *Engine, m *placement.Map) {
	if len(e.otherLayouts(m)) > 0 {
		s.whole = m
	}
}

// listSetOf returns the listSet covering cover and walking also the
// drives of more.
func (e *Engine) listSetOf(cover, more []*placement.Map) listSet {
	var s listSet
	seen := map[placement.DriveID]bool{}
	for i, m := range append(slices.Clip(cover), more...) {
		if m == nil {
			continue
		}
		if i < len(cover) {
			s.cover = append(s.cover, m)
		}
		for _, dr := range m.Drives {
			if seen[dr.ID] {
				continue
			}
			seen[dr.ID] = true
			d, err := e.cfg.Topology.Drive(dr.ID)
			if err != nil {
				d = nil
			}
			s.ids = append(s.ids, dr.ID)
			s.drives = append(s.drives, d)
		}
	}
	return s
}

// covers reports whether the drives in answered cover every PG of every
// map s must cover (pgsCovered), and leave at most whole's parity of its
// drives out.
func (s listSet) covers(answered map[placement.DriveID]bool) bool {
	if s.whole != nil {
		missing := 0
		for _, d := range s.whole.Drives {
			if !answered[d.ID] {
				missing++
			}
		}
		if missing > s.whole.Policy.Parity {
			return false
		}
	}
	for _, m := range s.cover {
		if !pgsCovered(m, answered) {
			return false
		}
	}
	return true
}

// next returns the next key (without the container's prefix) and its
// newest record, or ok false at the end.
func (g *merger) next(ctx context.Context) (key string, newest *record, ok bool, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return "", nil, false, fmt.Errorf("engine: list: %w", err)
		}
		var minKey string
		found := false
		g.e.fill(ctx, g.cursors, g.prefix, g.covered, true)
		for _, c := range g.cursors {
			if len(c.buf) > 0 && (!found || c.buf[0].Key < minKey) {
				minKey, found = c.buf[0].Key, true
			}
		}
		if !found {
			return "", nil, false, nil
		}
		var heads []*record
		var from []int // heads[i] is the head of cursors[from[i]]'s record
		var raws []driver.Record
		for i, c := range g.cursors {
			if len(c.buf) == 0 || c.buf[0].Key != minKey {
				continue
			}
			if listedLost(c.buf[0]) {
				// As a listing that failed on this drive (ListRecords did,
				// before driver/local listed such records): out of the
				// walk, which answers only if the others cover every set
				// (finish), never a key this drive does not hold.
				c.failed, c.done, c.buf = fmt.Errorf("record %q listed without its data (lost on the drive)", minKey), true, nil
				continue
			}
			if r, err := unmarshalHead(c.buf[0].Data); err == nil {
				heads, from, raws = append(heads, r), append(from, i), append(raws, c.buf[0])
			}
			c.buf = c.buf[1:]
		}
		if newest = g.choose(ctx, minKey, heads, from, raws); newest != nil {
			return minKey[len(g.base):], newest, true, nil
		}
	}
}

// listedLost reports whether a listed record is cut with no head to read:
// driver/local lists so a record whose data is lost (its pack extent), so
// that the scrubber finds and repairs it. Listings take it as a failure of
// that drive's listing, never as a key the drive does not hold: dropped
// with the drive counted as answering, a container whose records were all
// listed so looked empty (review 29s).
func listedLost(raw driver.Record) bool {
	if !raw.Truncated {
		return false
	}
	_, err := unmarshalHead(raw.Data)
	return err != nil
}

// choose returns the record a read of index key ikey serves (locate), of
// heads, the heads of the records raws (as listed) that the cursors
// from[i] hold of it. Heads of one version are that version (each set
// serves it or none does). Otherwise, as locate: each map's set holds the
// records placed for it (setLocation), read whole (those the listing cut
// are read again from their drives; one that fails, or hangs past the
// straggler grace after the first answer, counts as not answering); the current set's version wins if it
// settles the key, else the first other set's version that supersedes
// it (the search ending at a set short of a read quorum), else the
// current set's. A key no set serves (placed for none of the
// maps, a map that moved it: locate fails then) keeps what the heads
// alone choose (chooseVersion), so that the listing does not hide it.
func (g *merger) choose(ctx context.Context, ikey string, heads []*record, from []int, raws []driver.Record) *record {
	if !slices.ContainsFunc(heads, func(r *record) bool { return r.Version != heads[0].Version }) {
		r := chooseVersion(heads, g.k)
		if r != nil && r.Pointer {
			// A pointer's target is in its metadata, past the head: a
			// version listing marks that version latest, as GET serves
			// it, not the newest listed (a failed versioned write's
			// version, which no pointer names).
			i := slices.Index(heads, r)
			if !raws[i].Truncated {
				if full, err := unmarshalRecord(raws[i].Data); err == nil {
					return full
				}
			}
			if whole, _ := g.e.readRecordsQuorum(ctx, []driver.Driver{g.cursors[from[i]].d}, ikey, 1); whole[0] != nil && whole[0].Version == r.Version {
				return whole[0]
			}
		}
		return r
	}
	cut := make([]driver.Driver, len(raws))
	for i, raw := range raws {
		if raw.Truncated {
			cut[i] = g.cursors[from[i]].d
		}
	}
	var whole []*record
	var each []bool
	if slices.ContainsFunc(cut, func(d driver.Driver) bool { return d != nil }) {
		whole, each = g.e.readRecordsQuorum(ctx, cut, ikey, 1)
	}
	recs := make(map[placement.DriveID]*record, len(raws))
	answered := make(map[placement.DriveID]bool, len(g.cursors))
	for i, c := range g.cursors {
		answered[g.ids[i]] = c.failed == nil
	}
	for i, raw := range raws {
		id, r := g.ids[from[i]], (*record)(nil)
		if raw.Truncated {
			r, answered[id] = whole[i], each[i]
		} else if r, _ = unmarshalRecord(raw.Data); r == nil {
			answered[id] = false // corrupt: as readRecords reads it
		}
		recs[id] = r
	}
	key := ikey[len(g.base):]
	var newest *record
	var cur location // the current set's
	curHeld := 0
	for i, m := range g.maps {
		pg := pgOf(m, g.tenant, g.container, key)
		set := m.Set(pg)
		all, ok := make([]*record, len(set)), make([]bool, len(set))
		for j, id := range set {
			all[j], ok[j] = recs[id], answered[id]
		}
		if i > 0 && answeredOf(ok) < m.Policy.ReadQuorum() {
			break // as locate: a set short of a read quorum ends the search
		}
		l := setLocation(m, pg, nil, all, ok)
		v, held := l.serves()
		switch {
		case i == 0 && l.settles(v, held):
			return v
		case i == 0:
			newest, cur, curHeld = v, l, held
		case l.supersedes(v, held, cur, newest, curHeld):
			return v
		}
	}
	if newest != nil {
		return newest
	}
	return chooseVersion(heads, g.k)
}

// answeredOf counts the drives each marks as answering.
func answeredOf(each []bool) int {
	n := 0
	for _, a := range each {
		if a {
			n++
		}
	}
	return n
}

// skipTo continues the walk after key.
func (g *merger) skipTo(key string) {
	for _, c := range g.cursors {
		c.skipTo(g.base + key)
	}
}

// finish fails with ErrReadQuorum if the drives left in the walk (not
// unavailable, not dropped) do not cover every PG of the map: then the
// walk may have missed keys.
func (g *merger) finish() error {
	answered := make([]bool, len(g.cursors))
	var errs []error
	for i, c := range g.cursors {
		answered[i] = c.failed == nil
		if c.failed != nil {
			errs = append(errs, c.failed)
		}
	}
	if !g.covered(answered) {
		err := fmt.Errorf("%w: list: %d of %d drives unavailable, too few of some set (of the current map, or of an older map the container's keys may still be in, or, with remote drives, of the whole map) answered", ErrReadQuorum, len(g.set.ids)-len(g.cursors)+len(errs), len(g.set.ids))
		if len(errs) > 0 {
			err = fmt.Errorf("%w: %w", err, errors.Join(errs...))
		}
		return err
	}
	return nil
}
