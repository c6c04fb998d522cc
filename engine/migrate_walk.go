package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// MigrateStats sums what one call of MigrateAll or MigrateContainer did.
type MigrateStats struct {
	Keys    int // keys examined
	Moved   int // keys copied into the current map's set
	Removed int // records removed from drives of older maps' sets
	Healed  int // keys whose current set was completed
	Copied  int // keys whose current set got shard files copied from an older map's holder
	Failed  int // keys Migrate failed on: left where they were, readable as before
	// Incomplete counts keys Migrate left with their older copies
	// (MigrateResult.Incomplete) without failing.
	Incomplete int
	// Next is the after of the call that continues the walk; "" once it
	// has covered every key.
	Next string
}

// MigrateContainer migrates (Migrate) the keys of tenant's container
// that older maps' drives hold records of, in key order after after, at
// most limit keys per call (0 means 1,000); the call with after set to
// the returned Next continues the walk. It finds the keys in the indexes
// of every drive of the maps in the history, so also keys only deletions
// remain of (which List hides) and keys of a container since deleted; a
// key whose records there are all placed for the current map is skipped.
// A key that fails counts in Failed and the walk goes on: the next pass
// retries it. A drive of an older map that cannot be listed is left out
// of the walk, which goes on without its keys and ends with an error
// wrapping ErrReadQuorum. Whatever the error, the stats say how far the
// walk got and their Next continues it. Without MapHistory there is
// nothing to walk.
func (e *Engine) MigrateContainer(ctx context.Context, tenant, container, after string, limit int) (MigrateStats, error) {
	if err := validTenant(tenant); err != nil {
		return MigrateStats{}, err
	}
	if err := validContainer(container); err != nil {
		return MigrateStats{}, err
	}
	prefix := indexPrefix(tenant, container)
	st, err := e.walkOlder(ctx, prefix, prefix+after, limit)
	if st.Next != "" {
		st.Next = st.Next[len(prefix):]
	}
	return st, err
}

// firstArtifactKey sorts before every artifact's index key and after the
// multipart key spaces: tenant names start with no control byte.
const firstArtifactKey = "\x1f"

// MigrateAll is MigrateContainer for every tenant's every container. Its
// cursor (after, Next) is opaque; "" starts the walk.
//
// A cluster migrates after a map change by walking with MigrateAll until
// a pass (from "" until Next comes back "") has no error, then drops
// from the history each older map whose Residue is 0:
//
//	after, clean := "", true
//	for {
//		st, err := e.MigrateAll(ctx, after, 1000)
//		clean = clean && err == nil // log err; on ctx's end, return
//		if after = st.Next; after == "" {
//			break // a pass done: if clean, check Residue; else walk again later
//		}
//	}
func (e *Engine) MigrateAll(ctx context.Context, after string, limit int) (MigrateStats, error) {
	return e.walkOlder(ctx, "", max(after, firstArtifactKey), limit)
}

// migrateWarnings is how many failed keys a walk logs as warnings; the
// rest go to debug (a drive offline fails every key of its sets, each
// pass).
const migrateWarnings = 10

// walkOlder migrates the keys under index prefix after index key after
// that the older maps' drives hold records of; Next is an index key.
func (e *Engine) walkOlder(ctx context.Context, prefix, after string, limit int) (MigrateStats, error) {
	if limit <= 0 {
		limit = 1000
	}
	var st MigrateStats
	cur := e.cfg.Topology.Map()
	var srcs []driveCursor
	var unlisted []error // drives whose keys this walk misses
	for _, id := range olderDrives(e.olderMaps(cur)) {
		d, err := e.cfg.Topology.Drive(id)
		if errors.Is(err, driver.ErrRemoved) {
			continue // what only it held is lost; the rest is listed elsewhere
		}
		if err != nil {
			unlisted = append(unlisted, err)
			continue
		}
		srcs = append(srcs, driveCursor{id, &cursor{d: d, after: after}})
	}
	var failed error
	done := func() (MigrateStats, error) {
		var errs []error
		if failed != nil {
			errs = append(errs, fmt.Errorf("engine: migrate: %d keys failed, the first: %w", st.Failed, failed))
		}
		if len(unlisted) > 0 {
			errs = append(errs, fmt.Errorf("%w: migrate: %d drives of older maps not listed, their keys are left for another pass: %w", ErrReadQuorum, len(unlisted), errors.Join(unlisted...)))
		}
		return st, errors.Join(errs...)
	}
	for st.Keys < limit {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("engine: migrate: %w", err)
		}
		minKey, found := smallestKey(ctx, &srcs, prefix, func(id placement.DriveID, err error) {
			unlisted = append(unlisted, fmt.Errorf("drive %s: %w", id, err))
		})
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("engine: migrate: %w", err)
		}
		if !found {
			st.Next = ""
			return done()
		}
		tenant, container, key, isArtifact := splitIndexKey(minKey)
		var holders []placement.DriveID
		home := true
		for _, s := range srcs {
			if len(s.c.buf) == 0 || s.c.buf[0].Key != minKey {
				continue
			}
			raw := s.c.buf[0]
			s.c.buf = s.c.buf[1:]
			holders = append(holders, s.id)
			if isArtifact && home {
				ok, err := e.recordHome(ctx, cur, s.id, s.c.d, raw)
				home = ok && err == nil
			}
		}
		st.Next = minKey
		if !isArtifact {
			continue
		}
		st.Keys++
		if home {
			continue
		}
		res, err := e.migrate(ctx, tenant, container, key, holders)
		if res.Moved {
			st.Moved++
		}
		st.Removed += res.Removed
		if len(res.Copied) > 0 {
			st.Copied++
		}
		if len(res.Healed) > 0 {
			st.Healed++
		}
		if res.Incomplete && err == nil {
			st.Incomplete++
		}
		if err != nil {
			st.Failed++
			if failed == nil {
				failed = err
			}
			lvl := slog.LevelWarn
			if errors.Is(err, errMoveDeferred) || st.Failed > migrateWarnings {
				lvl = slog.LevelDebug // the pass's error names the count and the first
			}
			e.log.Log(ctx, lvl, "migrate failed", "tenant", tenant, "container", container, "err", err)
		}
	}
	return done()
}

// olderDrives returns the drives of maps, each once, sorted.
func olderDrives(maps []*placement.Map) []placement.DriveID {
	var ids []placement.DriveID
	for _, m := range maps {
		for _, d := range m.Drives {
			ids = append(ids, d.ID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// splitIndexKey splits an artifact's index key; ok is false for other
// index keys (multipart uploads and parts).
func splitIndexKey(ikey string) (tenant, container, key string, ok bool) {
	if ikey < firstArtifactKey {
		return "", "", "", false
	}
	tenant, rest, ok1 := strings.Cut(ikey, "\x00")
	container, key, ok2 := strings.Cut(rest, "\x00")
	if !ok1 || !ok2 || key == "" {
		return "", "", "", false
	}
	return tenant, container, key, true
}

// recordHome reports whether raw, an artifact's record as drive id (d)
// lists it, is placed for the key's set in cur, and carries no older
// placement's record (Prev). A record the listing cut
// is read whole; one gone meanwhile is at home (it is nowhere). Only a
// failed read is an error; an undecodable record is not at home.
func (e *Engine) recordHome(ctx context.Context, cur *placement.Map, id placement.DriveID, d driver.Driver, raw driver.Record) (bool, error) {
	tenant, container, key, _ := splitIndexKey(raw.Key)
	data, found, err := wholeRecord(ctx, d, raw)
	if !found || err != nil {
		return !found && err == nil, err // gone meanwhile: nowhere, so at home
	}
	r, err := unmarshalRecord(data)
	if err != nil {
		return false, nil
	}
	cur = e.layoutMap(cur, e.layoutOf(tenant, container)) // the container's storage policy
	pg := pgOf(cur, tenant, container, key)
	j := slices.Index(cur.Set(pg), id)
	// A record still carrying an older placement's (writeMoved) has its
	// move to finish: migrate drops the Prev.
	return j >= 0 && placedIn(r, cur, pg, j) && r.Prev == nil, nil
}

// Residue counts the artifact records on the drives of map m that are not
// placed for the current map's set of their key: what migration has yet
// to move or remove. Once it is 0 for an older map, and no node writes
// with that map any more, the map can be dropped from the history: no
// read needs it. It fails if a drive of m cannot be listed. It reads the
// whole index of every drive of m (and the records the listing cut, such
// as inline ones, whole). Multipart uploads in progress are not migrated
// but keep their placement until completed or aborted (findUpload): each
// such upload record on m's drives not placed for the current map counts
// too while the upload is active (its last part, or its creation, within
// Config.UploadHold), so that m stays while an upload goes on in it. An
// upload idle for longer stops counting, so one that a crash or a client
// left behind holds a join or drain up to UploadHold, not for ever (the
// crash suite of session 7 waited for ever); once m is dropped it answers
// ErrNoSuchUpload. Completion markers do not count (a marker in a dropped
// map only makes a retried Complete answer ErrNoSuchUpload), but for
// those of completions made after a map change that are pending
// (settle): their uploads' parts are there.
func (e *Engine) Residue(ctx context.Context, m *placement.Map) (int, error) {
	return e.residue(ctx, m, "", firstArtifactKey, uploadKeys)
}

// UploadsHolding returns how many multipart uploads in progress keep the
// older maps in the history: those whose records on the maps' drives
// Residue counts (placed for an older map and not for the current one,
// active within Config.UploadHold), each once. A join or drain waits for
// them; `vaultd cluster status` says so. It lists only the upload records
// of the drives, which are few.
func (e *Engine) UploadsHolding(ctx context.Context, older []*placement.Map) (int, error) {
	cur := e.cfg.Topology.Map()
	var ids []placement.DriveID
	for _, m := range older {
		for _, dr := range m.Drives {
			if !slices.Contains(ids, dr.ID) {
				ids = append(ids, dr.ID)
			}
		}
	}
	var mu sync.Mutex // guards ups and errs
	ups := map[string]bool{}
	var errs []error
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			_, err := e.driveResidue(ctx, cur, id, uploadKeys, "", splitUploadKey, func(ikey string) {
				mu.Lock()
				defer mu.Unlock()
				ups[ikey] = true
			})
			if err != nil {
				mu.Lock()
				defer mu.Unlock()
				errs = append(errs, fmt.Errorf("drive %s: %w", id, err))
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return len(ups), fmt.Errorf("%w: uploads holding the older maps: %w", ErrReadQuorum, errors.Join(errs...))
	}
	return len(ups), nil
}

// uploadKeys is the index prefix of every upload record (uploadKey).
const uploadKeys = "\x01U\x00"

// ContainerResidue is Residue for one container of tenant.
func (e *Engine) ContainerResidue(ctx context.Context, m *placement.Map, tenant, container string) (int, error) {
	if err := validTenant(tenant); err != nil {
		return 0, err
	}
	if err := validContainer(container); err != nil {
		return 0, err
	}
	return e.residue(ctx, m, indexPrefix(tenant, container), "", uploadPrefix(tenant, container))
}

// residue counts the artifact records under prefix after after and the
// upload records under uprefix.
func (e *Engine) residue(ctx context.Context, m *placement.Map, prefix, after, uprefix string) (int, error) {
	cur := e.cfg.Topology.Map()
	var mu sync.Mutex // guards n and errs
	n := 0
	var errs []error
	var wg sync.WaitGroup
	for _, dr := range m.Drives {
		wg.Go(func() {
			c, err := e.driveResidue(ctx, cur, dr.ID, prefix, after, splitIndexKey, nil)
			if err == nil {
				var u int
				u, err = e.driveResidue(ctx, cur, dr.ID, uprefix, "", splitUploadKey, nil)
				c += u
			}
			mu.Lock()
			defer mu.Unlock()
			n += c
			if err != nil {
				errs = append(errs, fmt.Errorf("drive %s: %w", dr.ID, err))
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return n, fmt.Errorf("%w: residue of map epoch %d: %w", ErrReadQuorum, m.Epoch, errors.Join(errs...))
	}
	return n, nil
}

// splitUploadKey splits an upload record's index key (uploadKey) into
// its tenant, container and key; ok is false for other keys.
func splitUploadKey(ikey string) (tenant, container, key string, ok bool) {
	rest, ok := strings.CutPrefix(ikey, uploadKeys)
	if !ok {
		return "", "", "", false
	}
	f := strings.SplitN(rest, "\x00", 4)
	if len(f) != 4 || f[2] == "" {
		return "", "", "", false
	}
	return f[0], f[1], f[2], true
}

// driveResidue counts the records under prefix after after on drive id
// that split names (artifact or upload records) and that are not placed
// for cur; upload records only if in progress (not completion markers).
func (e *Engine) driveResidue(ctx context.Context, cur *placement.Map, id placement.DriveID, prefix, after string, split func(string) (string, string, string, bool), away func(ikey string)) (int, error) {
	d, err := e.cfg.Topology.Drive(id)
	if errors.Is(err, driver.ErrRemoved) {
		return 0, nil // nothing on it will be read again
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		recs, err := d.ListRecords(ctx, prefix, after, listBatch)
		if err != nil {
			return n, err
		}
		for _, raw := range recs {
			tenant, container, key, ok := split(raw.Key)
			if !ok {
				continue
			}
			var home bool
			if raw.Key < firstArtifactKey {
				home, err = e.uploadHome(ctx, cur, id, d, raw, tenant, container, key)
			} else {
				home, err = e.recordHome(ctx, cur, id, d, raw)
			}
			if err != nil {
				return n, err
			}
			if !home {
				n++
				if away != nil {
					away(raw.Key)
				}
			}
		}
		if len(recs) < listBatch {
			return n, nil
		}
		after = recs[len(recs)-1].Key
	}
}

// wholeRecord returns raw's data, read whole from d if the listing cut it;
// found is false if the record is gone meanwhile.
func wholeRecord(ctx context.Context, d driver.Driver, raw driver.Record) (data []byte, found bool, err error) {
	if !raw.Truncated {
		return raw.Data, true, nil
	}
	whole, err := d.GetRecord(ctx, raw.Key)
	if errors.Is(err, driver.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return whole.Data, true, nil
}

// uploadHome is recordHome for an upload record: also true for a
// completion marker whose completion is not pending, or a record gone or
// undecodable (nothing to keep a map for).
func (e *Engine) uploadHome(ctx context.Context, cur *placement.Map, id placement.DriveID, d driver.Driver, raw driver.Record, tenant, container, key string) (bool, error) {
	data, found, err := wholeRecord(ctx, d, raw)
	if !found || err != nil {
		return !found && err == nil, err // gone meanwhile: nowhere, so at home
	}
	r, err := unmarshalRecord(data)
	if err != nil || r.Deleted {
		return true, nil
	}
	cur = e.layoutMap(cur, e.layoutOf(tenant, container))
	pg := cur.PGOf(tenant, container, key)
	if j := slices.Index(cur.Set(pg), id); j >= 0 && placedIn(r, cur, pg, j) {
		return true, nil
	}
	if isMarker(r) {
		if _, ok := r.Metadata[movedKey]; !ok {
			// Its artifact was written in the upload's set, which
			// migration moves: markerSet no longer tells.
			return true, nil
		}
		// A completion made after the map change, whose artifact (in
		// a newer map's set) is not served: it failed and could not
		// revert. Its upload's parts are in the older set only: the
		// map stays until the completion is retried or reverted
		// (SweepUploads) and the upload moved (probe F4 of session 16).
		pending, err := e.completionPending(ctx, tenant, container, key, raw.Key[strings.LastIndexByte(raw.Key, 0)+1:])
		return !pending, err
	}
	hold := cmp.Or(e.cfg.UploadHold, DefaultUploadHold)
	if hold < 0 {
		return true, nil
	}
	uploadID := raw.Key[strings.LastIndexByte(raw.Key, 0)+1:]
	last, err := lastPartTime(ctx, d, tenant, container, partsID(uploadID, r), time.Unix(0, r.Modified))
	if err != nil {
		return false, err
	}
	if e.cfg.Now().Sub(last) <= hold {
		return false, nil
	}
	l, ok := e.cfg.UploadLocker.(UploadLeases)
	return !ok || !l.UploadLeased(uploadID), nil // a part still streaming holds it
}

// DefaultUploadHold is Config.UploadHold's default.
const DefaultUploadHold = 15 * time.Minute

// lastPartTime returns the newest of since and the times of upload id's
// part records on drive d. A part record it cannot read fails it: an
// upload whose activity is unknown is not taken for idle.
func lastPartTime(ctx context.Context, d driver.Driver, tenant, container, id string, since time.Time) (time.Time, error) {
	err := eachRecord(ctx, d, partPrefix(tenant, container, id), func(_ driver.Record, p *record) error {
		if !p.Deleted && time.Unix(0, p.Modified).After(since) {
			since = time.Unix(0, p.Modified)
		}
		return nil
	})
	return since, err
}
