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

// Re-layout: a container whose storage policy changed layout (to or from
// PolicyHybrid) while it held artifacts keeps them where the old layout
// placed them until RelayoutContainer moves them. The new policy takes
// effect at once for new writes (mapFor); reads of an artifact still on
// the old layout's set find it there (locate tries the current map under
// the other layouts, otherLayouts, after the container's own), as they
// find an artifact a map change left on an older map's set.
//
// The walk lists the indexes of every drive of the current map under the
// container's prefix, so it finds every version of every key (the
// records of a versioned key's versions, its pointer, tombstones and
// delete markers), and moves each key that a drive holds a record of
// placed for another layout's set (not for the container's own set) with
// Migrate: the newest version as reads serve it is copied into the
// container's set by a plain record write of the same version (a version
// a put or delete wrote meanwhile is newer and wins: the copy is then
// collected), striped and multipart-completed artifacts part by part and
// checked against their ETags, and only once the container's set serves
// the key are the old layout's records and shard files removed. At every
// step one of the sets serves the newest version, so reads never fail
// for the walk nor return an older version. Runs for one key are
// serialised with migration and the tier moves (the "migrate" key lock),
// and a cluster runs the walk on the Raft leader only, as it does
// migration.

// PolicyLayout returns the placement layout a storage policy's new
// writes use: placement.LayoutHybrid for PolicyHybrid, else
// placement.LayoutLocal (PolicyTier writes like PolicyLocal). A change of
// policy between two policies of one layout moves nothing.
func PolicyLayout(policy string) placement.Layout { return layoutOfPolicy(policy) }

// RelayoutOptions tune one RelayoutContainer call.
type RelayoutOptions struct {
	// After is the key the walk continues after (the Next of the call
	// before); "" starts it.
	After string
	// Limit is how many index keys the call looks at; 0 means 1,000.
	Limit int
	// MaxBytes, if above 0, ends the call once it moved this many bytes
	// (its Next continues the walk): a caller committing its progress
	// does so at least that often.
	MaxBytes int64
	// Count only counts the keys to move (Misplaced, MisplacedBytes),
	// moving nothing.
	Count bool
	// Wait, if set, is called before each move with the size of the
	// version to move (bytes, before erasure coding): a rate limit. Its
	// error ends the call.
	Wait func(ctx context.Context, size int64) error
	// Moved, if set, is called after each live version moved.
	Moved func(a ArtifactInfo)
}

// RelayoutStats sums one RelayoutContainer call.
type RelayoutStats struct {
	Keys int // index keys looked at: each version of a versioned key is one
	// Misplaced counts the keys a drive holds a record of placed for
	// another layout than the container's (versions, and the versioned
	// keys' pointers, delete markers and tombstones), and MisplacedBytes
	// the sizes of the versions: what the walk moves (or, with Count,
	// would move).
	Misplaced      int
	MisplacedBytes int64
	Moved          int   // versions moved into the container's layout (not counting pointers, markers, tombstones)
	Bytes          int64 // their sizes
	Failed         int   // keys that could not be moved: left readable where they were, tried again next pass
	// Next is the After of the call that continues the walk; "" once it
	// has covered every key.
	Next string
}

// RelayoutContainer moves the artifacts of tenant's container that are
// placed for another layout than its storage policy's into the
// container's layout (see "Re-layout" above), at most opts.Limit index
// keys per call, in key order after opts.After. A key that fails counts
// in Failed and the walk goes on; the first error is returned with the
// stats, whose Next continues the walk. A drive of the current map that
// cannot be listed is left out (its keys wait for another pass) and the
// call ends with an error wrapping ErrReadQuorum. Without remote drives
// there is nothing to walk: every layout is the local one.
func (e *Engine) RelayoutContainer(ctx context.Context, tenant, container string, opts RelayoutOptions) (RelayoutStats, error) {
	if err := validTenant(tenant); err != nil {
		return RelayoutStats{}, err
	}
	if err := validContainer(container); err != nil {
		return RelayoutStats{}, err
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = 1000
	}
	var st RelayoutStats
	raw := e.cfg.Topology.Map()
	if raw == nil || !raw.HasRemote() {
		return st, nil
	}
	cur := e.mapFor(tenant, container)
	others := e.otherLayouts(cur)
	if len(others) == 0 {
		return st, nil
	}
	prefix := indexPrefix(tenant, container)
	var srcs []driveCursor
	var unlisted []error
	for _, dr := range raw.Drives {
		d, err := e.cfg.Topology.Drive(dr.ID)
		if err != nil || d == nil {
			unlisted = append(unlisted, fmt.Errorf("drive %s: %w", dr.ID, errors.Join(err, driver.ErrOffline)))
			continue
		}
		srcs = append(srcs, driveCursor{dr.ID, &cursor{d: d, after: prefix + opts.After}})
	}
	var failed error
	done := func() (RelayoutStats, error) {
		var errs []error
		if failed != nil {
			errs = append(errs, fmt.Errorf("engine: relayout %s: %d keys failed, the first: %w", container, st.Failed, failed))
		}
		if len(unlisted) > 0 {
			errs = append(errs, fmt.Errorf("%w: relayout %s: %d drives not listed, their keys are left for another pass: %w", ErrReadQuorum, container, len(unlisted), errors.Join(unlisted...)))
		}
		return st, errors.Join(errs...)
	}
	for st.Keys < limit {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("engine: relayout %s: %w", container, err)
		}
		minKey, found := smallestKey(ctx, &srcs, prefix, func(id placement.DriveID, err error) {
			unlisted = append(unlisted, fmt.Errorf("drive %s: %w", id, err))
		})
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("engine: relayout %s: %w", container, err)
		}
		if !found {
			st.Next = ""
			return done()
		}
		key := minKey[len(prefix):]
		var holders []placement.DriveID
		var awayVers []driver.Version // the live versions held placed for another layout
		misplaced, size := false, int64(0)
		for _, s := range srcs {
			if len(s.c.buf) == 0 || s.c.buf[0].Key != minKey {
				continue
			}
			rawRec := s.c.buf[0]
			s.c.buf = s.c.buf[1:]
			holders = append(holders, s.id)
			r, away, err := e.placedAway(ctx, tenant, container, key, cur, others, s.id, s.c.d, rawRec)
			if err != nil {
				misplaced = true // unreadable: let migrate look
				continue
			}
			if away {
				misplaced = true
				if !r.Deleted && !r.Pointer && !r.Marker {
					awayVers = append(awayVers, r.Version)
					size = max(size, r.Size)
				}
			} else if r != nil && r.Prev != nil {
				misplaced = true // a move not finished (writeMoved): migrate drops the Prev
			}
		}
		st.Next = key
		st.Keys++
		if !misplaced {
			continue
		}
		st.Misplaced++
		st.MisplacedBytes += size
		if opts.Count {
			continue
		}
		if opts.Wait != nil {
			if err := opts.Wait(ctx, size); err != nil {
				st.Next = prefixBefore(key) // not done: the next call looks at it again
				st.Keys--
				return st, fmt.Errorf("engine: relayout %s: %w", container, err)
			}
		}
		res, err := e.migrate(ctx, tenant, container, key, holders)
		if err != nil {
			st.Failed++
			if failed == nil {
				failed = err
			}
			e.log.Warn("relayout failed", "tenant", tenant, "container", container, "err", err)
			continue
		}
		if movedIn(res, awayVers) {
			st.Moved++
			st.Bytes += size
			e.st.relayoutMoved.Add(1)
			e.st.relayoutBytes.Add(uint64(size))
			if opts.Moved != nil {
				k, vid, _ := strings.Cut(key, "\x00")
				opts.Moved(ArtifactInfo{Tenant: tenant, Container: container, Key: k, VersionID: vid, Version: res.Version, Size: size})
			}
		}
		if opts.MaxBytes > 0 && st.Bytes >= opts.MaxBytes {
			break
		}
	}
	return done()
}

// movedIn reports whether migrate's result res moved a live version into
// the container's layout, given away, the live versions the walk found
// held placed for another layout. Either migrate copied the version from
// the other layout's set (Moved), or the container's set served it
// already (AtHome) and migrate completed the set with it (Healed,
// Copied): layouts of one k+m whose sets share drives at the same slot
// indices (local and hybrid 4+2 on 6 local and 2 remote drives share the
// data slots) hold records placed for both on the shared drives, so the
// container's set reads k of them at once and only the other slots'
// shards move, rebuilt there. Completing the set counts only for a
// version found away: not for a set a lost drive left short while the
// other layout held only remains of an older version.
func movedIn(res MigrateResult, away []driver.Version) bool {
	if len(away) == 0 {
		return false
	}
	if res.Moved {
		return true
	}
	return res.AtHome && !res.Deleted && len(res.Healed)+len(res.Copied) > 0 && slices.Contains(away, res.Version)
}

// prefixBefore returns a key that sorts just before key, so that a walk
// continuing after it looks at key again: key itself shortened by its
// last byte, which sorts before it (keys are never empty).
func prefixBefore(key string) string { return key[:len(key)-1] }

// placedAway decodes raw, drive id's (d's) record of key, and reports
// whether it is placed for key's set in one of the other layouts' maps
// (others) and not for its set in cur, the container's own. A record the
// listing cut is read whole (one gone meanwhile is nowhere). A record of
// a container that is or was tier, placed for the remote layout, is a
// tiered version and stays (tier.go).
func (e *Engine) placedAway(ctx context.Context, tenant, container, key string, cur *placement.Map, others []*placement.Map, id placement.DriveID, d driver.Driver, raw driver.Record) (*record, bool, error) {
	data := raw.Data
	if raw.Truncated {
		whole, err := d.GetRecord(ctx, raw.Key)
		if errors.Is(err, driver.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		data = whole.Data
	}
	r, err := unmarshalRecord(data)
	if err != nil {
		return nil, false, nil // names nothing readable: heal's business
	}
	placed := func(m *placement.Map) bool {
		pg := pgOf(m, tenant, container, key)
		j := slices.Index(m.Set(pg), id)
		return j >= 0 && placedIn(r, m, pg, j)
	}
	if placed(cur) {
		return r, false, nil
	}
	for _, m := range others {
		if placed(m) {
			return r, true, nil
		}
	}
	return r, false, nil
}
