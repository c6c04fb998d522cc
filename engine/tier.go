package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	Keys   int   // artifacts looked at
	Moved  int   // artifacts moved to the remote drives
	Bytes  int64 // their size
	Failed int   // artifacts that could not be moved (tried again next pass)
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
// current one: the older maps (MapHistory), then, for a container that
// is or was PolicyTier (Config.Tiered), the remote layout its tiered
// artifacts live in.
func (e *Engine) fallbackMaps(tenant, container string, cur *placement.Map) []*placement.Map {
	ms := e.olderMaps(cur)
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
// a tombstone, a version of a versioned key, or already on the remote
// drives.
var ErrNotTiered = errors.New("engine: artifact not tiered")

// TierArtifact moves key's newest version to the remote drives: it is
// re-encoded with the remote layout's policy (placement.LayoutRemote:
// DefaultPolicy of the remote drives) into the key's PG of that layout,
// with the same version, ETag, metadata and modification time, and then
// its records and shard files are removed from the local set, so local
// drives hold none of its bytes. Reads find it there (locate falls back to
// the remote layout for PolicyTier containers); a later write of the key
// goes to the local set again and hides it. It returns the size moved, or
// ErrNotTiered (wrapped) for an artifact it leaves alone. A failure before
// the local records are removed leaves the artifact readable from the
// local set; one part way through their removal leaves it readable from
// either set.
func (e *Engine) TierArtifact(ctx context.Context, tenant, container, key string) (int64, error) {
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return 0, err
	}
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
	case rec == nil || rec.Deleted || rec.Pointer || rec.Marker:
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
		if _, err := e.removeRecord(ctx, id, tenant, container, key, ikey, func(r *record) bool { return r.Version != rec.Version }); err != nil {
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

// TierContainer runs one pass of the tier policy over a container: it
// moves every artifact rule selects that is not on the remote drives yet
// (TierArtifact), calling moved (if not nil) for each. It goes on past
// artifacts that fail (counted in Failed) and returns the first error.
func (e *Engine) TierContainer(ctx context.Context, tenant, container string, rule TierRule, moved func(a ArtifactInfo)) (TierStats, error) {
	var st TierStats
	var first error
	after := ""
	now := e.cfg.Now()
	for {
		res, err := e.List(ctx, tenant, container, ListOptions{After: after, Limit: 1000})
		if err != nil {
			return st, fmt.Errorf("engine: tier %s: %w", container, err)
		}
		for _, a := range res.Artifacts {
			after = a.Key
			st.Keys++
			if !rule.due(now, a.Modified, a.Size) {
				continue
			}
			size, err := e.TierArtifact(ctx, tenant, container, a.Key)
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
					moved(a)
				}
			}
		}
		if !res.Truncated || len(res.Artifacts) == 0 || ctx.Err() != nil {
			return st, first
		}
	}
}
