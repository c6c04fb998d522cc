package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// TierRule says which artifacts of a PolicyTier container move to the
// remote drives: those last modified at least Age ago (Age > 0) or of at
// least MinSize bytes (MinSize > 0).
type TierRule struct {
	Age     time.Duration
	MinSize int64 // bytes
}

// due reports whether an artifact of size bytes modified at mod qualifies.
func (r TierRule) due(now, mod time.Time, size int64) bool {
	return (r.Age > 0 && now.Sub(mod) >= r.Age) || (r.MinSize > 0 && size >= r.MinSize)
}

// TierStats sums one TierContainer pass.
type TierStats struct {
	Keys   int   // versions looked at (an unversioned key is one)
	Moved  int   // versions moved to the remote drives
	Bytes  int64 // their size
	Failed int   // versions that could not be moved or collected (tried again next pass)
	// Collected is the hidden remote copies removed (collectTiered):
	// tiered versions a later write or delete of their key replaced, and
	// CollectedBytes their size.
	Collected      int
	CollectedBytes int64
}

// tierMap returns the remote layout of the current cluster map, or nil
// when it has no remote drives.
func (e *Engine) tierMap() *placement.Map {
	rm := e.layoutMap(e.cfg.Topology.Map(), placement.LayoutRemote)
	if rm == nil || rm.Layout != placement.LayoutRemote {
		return nil
	}
	return rm
}

// fallbackMaps are the maps a read by key tries after the container's
// current one: the current map under the other layouts (otherLayouts),
// the older maps (MapHistory), then, for a container that
// is or was PolicyTier (Config.Tiered), the remote layout its tiered
// artifacts live in.
func (e *Engine) fallbackMaps(tenant, container string, cur *placement.Map) []*placement.Map {
	ms := append(e.otherLayouts(cur), e.olderMaps(cur)...)
	if e.tiered(tenant, container) {
		if rm := e.tierMap(); rm != nil {
			ms = append(ms, rm)
		}
	}
	return ms
}

// tiered reports whether a container may hold tiered artifacts
// (Config.Tiered).
func (e *Engine) tiered(tenant, container string) bool {
	if e.cfg.Tiered != nil {
		return e.cfg.Tiered(tenant, container)
	}
	return e.cfg.StoragePolicy != nil && e.cfg.StoragePolicy(tenant, container) == PolicyTier
}

// ErrNotTiered reports an artifact TierArtifact left where it was: gone,
// a tombstone, a delete marker, a versioned key's pointer (its versions
// are tiered one by one: TierContainer), or already on the remote drives.
var ErrNotTiered = errors.New("engine: artifact not tiered")

// TierArtifact moves key's newest version to the remote drives: it is
// re-encoded with the remote layout's policy (placement.LayoutRemote:
// DefaultPolicy of the remote drives) into the key's PG of that layout,
// with the same version, ETag, metadata and modification time, and then
// its records and shard files are removed from the local set, so local
// drives hold none of its bytes. Reads find it there (locate falls back to
// the remote layout for PolicyTier containers); a later write of the key
// goes to the local set again and hides it, and the next TierContainer
// pass collects the hidden copy. It returns the size moved, or
// ErrNotTiered (wrapped) for an artifact it leaves alone. A failure before
// the local records are removed leaves the artifact readable from the
// local set; one part way through their removal leaves it readable from
// either set.
func (e *Engine) TierArtifact(ctx context.Context, tenant, container, key string) (int64, error) {
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return 0, err
	}
	return e.tierKey(ctx, tenant, container, key)
}

// TierVersion is TierArtifact of version vid of a versioned key: the
// version is moved with its version id (it stays under its version key),
// current or noncurrent; the key's pointer, which holds no data, stays on
// the local set. The null version of a key that still has its plain
// record is that record.
func (e *Engine) TierVersion(ctx context.Context, tenant, container, key, vid string) (int64, error) {
	if err := validKey(key); err != nil {
		return 0, err
	}
	if !ValidVersionID(vid) {
		return 0, ErrInvalidVersion
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return 0, err
	}
	if vid == NullVersion {
		n, err := e.tierKey(ctx, tenant, container, key)
		if !errors.Is(err, errPointer) {
			return n, err
		}
	}
	return e.tierKey(ctx, tenant, container, versionKey(key, vid))
}

// errPointer is the ErrNotTiered of a versioned key's pointer.
var errPointer = fmt.Errorf("%w: a versioned key's pointer", ErrNotTiered)

// tierKey is TierArtifact of an index key below the container's prefix:
// a plain key or a version key.
func (e *Engine) tierKey(ctx context.Context, tenant, container, key string) (int64, error) {
	rm := e.tierMap()
	if rm == nil {
		return 0, fmt.Errorf("%w: %s/%s: no remote drives", ErrNotTiered, container, key)
	}
	ikey := indexPrefix(tenant, container) + key
	unlock := e.lockLocal("migrate\x00" + ikey) // not at once with migration
	defer unlock()
	loc, rec, err := e.locate(ctx, tenant, container, key)
	switch {
	case err != nil:
		return 0, fmt.Errorf("engine: tier %s/%s: %w", container, key, err)
	case rec != nil && rec.Pointer:
		return 0, fmt.Errorf("%w: %s/%s", errPointer, container, key)
	case rec == nil || rec.Deleted || rec.Marker:
		return 0, fmt.Errorf("%w: %s/%s: no plain live version", ErrNotTiered, container, key)
	case loc.m.Layout == placement.LayoutRemote:
		return 0, fmt.Errorf("%w: %s/%s: on the remote drives already", ErrNotTiered, container, key)
	}
	pg := pgOf(rm, tenant, container, key)
	if err := e.move(ctx, tenant, container, key, rm, pg, loc, rec); err != nil {
		return 0, fmt.Errorf("engine: tier %s/%s: %w", container, key, err)
	}
	// The version is on the remote drives: remove it (records after the
	// shard files they name) from the local set. A newer version written
	// meanwhile stays.
	var errs []error
	for _, id := range loc.m.Set(loc.pg) {
		if _, err := e.removeRecord(ctx, id, tenant, container, key, ikey, func(r *record) bool { return r.Version != rec.Version }, nil); err != nil {
			errs = append(errs, fmt.Errorf("drive %s: %w", id, err))
		}
	}
	if len(errs) > 0 {
		return 0, fmt.Errorf("engine: tier %s/%s: remove the local copy: %w", container, key, errors.Join(errs...))
	}
	e.st.tierMoved.Add(1)
	e.st.tierBytes.Add(uint64(rec.Size))
	return rec.Size, nil
}

// TierContainer runs one pass of the tier policy over a container. It
// first collects the hidden remote copies (collectTiered), then moves
// every version rule selects that is not on the remote drives yet
// (TierVersion; the versions of a versioned key, current and noncurrent,
// each by its own size and modification time; delete markers stay),
// calling moved (if not nil) for each. It goes on past versions that fail
// (counted in Failed) and returns the first error.
func (e *Engine) TierContainer(ctx context.Context, tenant, container string, rule TierRule, moved func(a ArtifactInfo)) (TierStats, error) {
	var st TierStats
	first := e.collectTiered(ctx, tenant, container, &st)
	opts := VersionListOptions{Limit: 1000}
	now := e.cfg.Now()
	for {
		res, err := e.ListVersions(ctx, tenant, container, opts)
		if err != nil {
			return st, errors.Join(first, fmt.Errorf("engine: tier %s: %w", container, err))
		}
		for _, v := range res.Versions {
			st.Keys++
			if v.DeleteMarker || !rule.due(now, v.Modified, v.Size) {
				continue
			}
			var size int64
			var err error
			if v.stored {
				size, err = e.tierKey(ctx, tenant, container, versionKey(v.Key, v.VersionID))
			} else {
				size, err = e.tierKey(ctx, tenant, container, v.Key)
			}
			switch {
			case errors.Is(err, ErrNotTiered):
			case err != nil:
				st.Failed++
				if first == nil {
					first = err
				}
			default:
				st.Moved++
				st.Bytes += size
				if moved != nil {
					moved(ArtifactInfo{Key: v.Key, VersionID: v.VersionID, Size: v.Size, ETag: v.ETag, Modified: v.Modified})
				}
			}
		}
		if !res.Truncated || len(res.Versions) == 0 || ctx.Err() != nil {
			return st, first
		}
		opts.KeyMarker, opts.VersionIDMarker = res.NextKey, res.NextVersion
	}
}

// collectTiered removes from the remote drives the tiered versions of
// the container's keys that a newer version or deletion on the local set
// hides (a write or delete after the move goes to the local set): their
// records and shard files on every remote drive that lists them. A key is
// collected only when reads no longer reach its remote copy: locate
// serves it from another set, with a version (or tombstone) newer than
// every remote record removed. Once they are gone a tombstone over them
// can be purged (olderSetsHold). It walks the remote drives' indexes a
// page at a time, merged, and adds what it did to st; it returns the first
// error and goes on past it.
func (e *Engine) collectTiered(ctx context.Context, tenant, container string, st *TierStats) error {
	rm := e.tierMap()
	if rm == nil || !e.tiered(tenant, container) {
		return nil
	}
	prefix := indexPrefix(tenant, container)
	var srcs []driveCursor
	var first error
	fail := func(err error) {
		st.Failed++
		if first == nil {
			first = err
		}
	}
	for _, dr := range rm.Drives {
		if dr.Class != driver.ClassRemote {
			continue
		}
		d, err := e.cfg.Topology.Drive(dr.ID)
		if err != nil || d == nil {
			fail(fmt.Errorf("engine: tier %s: collect: drive %s: %w", container, dr.ID, err))
			continue
		}
		srcs = append(srcs, driveCursor{dr.ID, &cursor{d: d, after: prefix}})
	}
	for ctx.Err() == nil {
		minKey, found := smallestKey(ctx, &srcs, prefix, func(id placement.DriveID, err error) {
			fail(fmt.Errorf("engine: tier %s: collect: list drive %s: %w", container, id, err))
		})
		if !found {
			break
		}
		var holders []placement.DriveID
		for _, s := range srcs {
			if len(s.c.buf) > 0 && s.c.buf[0].Key == minKey {
				s.c.buf = s.c.buf[1:]
				holders = append(holders, s.id)
			}
		}
		n, size, err := e.collectKey(ctx, tenant, container, minKey[len(prefix):], holders)
		if err != nil {
			fail(err)
		}
		if n > 0 {
			st.Collected++
			st.CollectedBytes += size
		}
	}
	if err := ctx.Err(); err != nil && first == nil {
		first = fmt.Errorf("engine: tier %s: collect: %w", container, err)
	}
	return first
}

// collectKey removes key's remote records (on holders) older than the
// version another set serves, and their shard files; it returns how many
// records it removed and the size of the newest of them.
func (e *Engine) collectKey(ctx context.Context, tenant, container, key string, holders []placement.DriveID) (int, int64, error) {
	ikey := indexPrefix(tenant, container) + key
	unlock := e.lockLocal("migrate\x00" + ikey) // not at once with tierKey or migration
	defer unlock()
	loc, served, err := e.locate(ctx, tenant, container, key)
	switch {
	case err != nil:
		return 0, 0, fmt.Errorf("engine: tier %s/%s: collect: %w", container, key, err)
	case served == nil || loc.m.Layout == placement.LayoutRemote:
		return 0, 0, nil // the remote copy is what reads get, or nothing serves the key
	}
	var size int64
	n := 0
	var errs []error
	for _, id := range holders {
		var gone *record
		ok, err := e.removeRecord(ctx, id, tenant, container, key, ikey, func(r *record) bool {
			if r.Version.Compare(served.Version) >= 0 {
				return true
			}
			gone = r
			return false
		}, nil)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("drive %s: %w", id, err))
		case ok:
			n++
			if !gone.Deleted {
				size = max(size, gone.Size)
			}
		}
	}
	if len(errs) > 0 {
		return n, size, fmt.Errorf("engine: tier %s/%s: collect the hidden remote copy: %w", container, key, errors.Join(errs...))
	}
	return n, size, nil
}
