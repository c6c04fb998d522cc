package engine

import (
	"context"
	"errors"
	"fmt"
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
// (fanOut). With up to spare more drives allowed to be left out, it
// returns once all but spare of them answered and the others had the
// straggler grace; a cursor whose drive did not answer by then is dropped
// from the listing (failed), and its late answer ignored.
func (e *Engine) fill(ctx context.Context, cursors []*cursor, prefix string, spare int) {
	need := 0
	for _, c := range cursors {
		if c.needsFill() {
			need++
		}
	}
	if need == 0 {
		return
	}
	res, done := fanOut(ctx, e, len(cursors), func(j int) bool { return cursors[j].needsFill() }, max(1, need-max(spare, 0)),
		func(ctx context.Context, j int) batch { return cursors[j].next(ctx, prefix) },
		func(b batch) bool { return b.err == nil }, nil)
	for j, c := range cursors {
		if !c.needsFill() {
			continue
		}
		if !done[j] {
			c.apply(batch{err: fmt.Errorf("%w: list: drive did not answer in time", ErrReadQuorum)})
			continue
		}
		c.apply(res[j])
	}
}

// List returns a page of tenant's container: the artifacts and common
// prefixes after opts.After, in key order. It merges the sorted indexes of
// every drive, holding one batch per drive in memory.
//
// It does not wait for every drive: each batch is read from all drives in
// parallel, and once all but Parity of them (counting those unavailable
// or dropped before) answered, the others get the straggler grace and are
// then dropped from this listing. That stays correct: a key lives in one
// set of k+m drives, and its newest version (or tombstone) was written to
// a write quorum of at least max(k, m+1) of them; with at most m drives
// left out, at least k of its set answered, and k + max(k, m+1) > k+m, so
// some drive that answered holds the newest version, which the merge
// picks by version. This holds for every policy: max(k, m+1) >= m+1, so
// k + max(k, m+1) >= k+m+1 (for placement.DefaultPolicy: 1+0: 1+1 > 1,
// 1+1: 1+2 > 2, 2+2: 2+3 > 4, 4+2: 4+4 > 6, 4+4: 4+5 > 8, k+4 with k >= 5:
// 2k > k+4).
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
	g := e.newMerger(tenant, container, opts.Prefix, after)
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
// resolving each index key to its newest record, tombstones included.
type merger struct {
	e           *Engine
	parity, k   int    // the policy's m and k (its read quorum)
	base        string // the container's index prefix
	prefix      string // base + the listing's prefix
	cursors     []*cursor
	unavailable int // drives the topology could not provide
}

// newMerger starts a walk of the keys under prefix sorting after after.
func (e *Engine) newMerger(tenant, container, prefix, after string) *merger {
	m := e.mapFor(tenant, container)
	base := indexPrefix(tenant, container)
	g := &merger{e: e, parity: m.Policy.Parity, k: m.Policy.ReadQuorum(), base: base, prefix: base + prefix}
	for _, dr := range m.Drives {
		d, err := e.cfg.Topology.Drive(dr.ID)
		if err != nil || d == nil {
			g.unavailable++
			continue
		}
		g.cursors = append(g.cursors, &cursor{d: d, after: base + after})
	}
	return g
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
		dropped := 0
		for _, c := range g.cursors {
			if c.failed != nil {
				dropped++
			}
		}
		g.e.fill(ctx, g.cursors, g.prefix, g.parity-g.unavailable-dropped)
		for _, c := range g.cursors {
			if len(c.buf) > 0 && (!found || c.buf[0].Key < minKey) {
				minKey, found = c.buf[0].Key, true
			}
		}
		if !found {
			return "", nil, false, nil
		}
		var heads []*record
		for _, c := range g.cursors {
			if len(c.buf) == 0 || c.buf[0].Key != minKey {
				continue
			}
			if r, err := unmarshalHead(c.buf[0].Data); err == nil {
				heads = append(heads, r)
			}
			c.buf = c.buf[1:]
		}
		// As a read chooses (chooseVersion): the remains of a failed
		// write do not hide the version a read serves.
		if newest = chooseVersion(heads, g.k); newest != nil {
			return minKey[len(g.base):], newest, true, nil
		}
	}
}

// skipTo continues the walk after key.
func (g *merger) skipTo(key string) {
	for _, c := range g.cursors {
		c.skipTo(g.base + key)
	}
}

// finish fails with ErrReadQuorum if more drives than the policy's
// parity were left out of the walk.
func (g *merger) finish() error {
	unavailable := g.unavailable
	var errs []error
	for _, c := range g.cursors {
		if c.failed != nil {
			unavailable++
			errs = append(errs, c.failed)
		}
	}
	if unavailable > g.parity {
		return fmt.Errorf("%w: list: %d drives unavailable: %w", ErrReadQuorum, unavailable, errors.Join(errs...))
	}
	return nil
}
