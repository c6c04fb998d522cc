package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// Versioned keys.
//
// A container's versioning state is the caller's (s3 keeps it in the
// replicated bucket configuration) and comes with each write (PutOptions,
// CopyOptions, DeleteOptions, CompleteUploadVersion). Every version of a
// versioned key is an artifact of its own, stored under the version key
// key + "\x00" + version id. Keys hold no NUL, so a key's versions sort
// right after it in every drive's index and before any other key. A
// version key is placed, and its shard files are named, as its key
// (pgOf, shardName): the same drives, and a record can move from the key
// to a version key without copying data. Healing, scanning, scrubbing,
// migration, usage and listing treat version keys as the artifacts they
// are.
//
// The key's own index key then holds a pointer (record.Pointer): a record
// without data naming the current version (Metadata[pointerTargetKey])
// and carrying its size, ETag and time for plain listings; a deleted
// pointer says the current version is a delete marker. A delete marker
// is a live, empty version with record.Marker set. A key written before
// versioning was enabled keeps its plain record, the "null" version,
// until a versioned write moves it to the version key "null" (adopt).
//
// A versioned write stores the version first, then the pointer, each with
// the ordinary last-writer-wins record write. A crash between the two
// leaves the version listed as noncurrent and the previous one current.
// Deleting the current version by id re-points the key at the newest one
// left. The decisions about a key's pointer (which version is current,
// and its write) are serialised per key on a node (lockPointer); writes
// of one key through two nodes at once converge on the newest version
// (point: a pointer write that met a pointer to a newer version, or was
// refused by a newer pointer to an older one, writes again), so GET and
// the listings' latest agree; a pointer can still be left on a version
// deleted by id at the same moment (the key then reads as missing) until
// the key's next write or delete.
//
// Version ids are the hex of the version's first record version (time
// then random bytes), or "null". ListVersions lists a key's versions
// newest first by that time (the null version by its modification
// time); a key with more than maxGroupRead versions is paged by seeking
// backwards in time windows, so a page reads about as many records as
// it lists, however many versions the key has.

// Versioning is a container's versioning state.
type Versioning uint8

// The versioning states of a container, as S3's.
const (
	Unversioned Versioning = iota
	VersioningEnabled
	VersioningSuspended
)

// NullVersion is the version id of a key's version written while its
// container was unversioned or versioning was suspended.
const NullVersion = "null"

// Errors of versioned operations.
var (
	ErrNoSuchVersion  = errors.New("engine: no such version")
	ErrInvalidVersion = errors.New("engine: invalid version id")
)

// DeleteMarkerError is returned when the version read is a delete marker:
// the key's newest (ByVersion false: the key reads as missing) or the one
// asked for by id. It wraps ErrNoSuchArtifact.
type DeleteMarkerError struct {
	VersionID string
	Modified  time.Time
	ByVersion bool
}

func (e *DeleteMarkerError) Error() string {
	return fmt.Sprintf("engine: version %s is a delete marker", e.VersionID)
}

func (e *DeleteMarkerError) Unwrap() error { return ErrNoSuchArtifact }

// pointerTargetKey is the metadata entry of a pointer naming its version.
// No header name holds a NUL, so it cannot collide with user metadata.
const pointerTargetKey = "\x00v"

// newVersionSlot asks put for a new version id.
const newVersionSlot = "\x00new"

// versionKey is the key a version is stored under.
func versionKey(key, vid string) string { return key + "\x00" + vid }

// baseKey is the key of a version key (or key itself).
func baseKey(k string) string {
	if i := strings.IndexByte(k, 0); i >= 0 {
		return k[:i]
	}
	return k
}

// pgOf is the PG of key, or of a version key's key.
func pgOf(m *placement.Map, tenant, container, key string) uint32 {
	return m.PGOf(tenant, container, baseKey(key))
}

// versionIDOf is the id of a version first written as v.
func versionIDOf(v driver.Version) string { return hex.EncodeToString(v[:]) }

// ValidVersionID reports whether vid is a version id this engine issues.
func ValidVersionID(vid string) bool {
	if vid == NullVersion {
		return true
	}
	if len(vid) != 2*driver.VersionSize {
		return false
	}
	_, err := hex.DecodeString(vid)
	return err == nil && strings.ToLower(vid) == vid
}

func pointerTarget(r *record) string { return r.Metadata[pointerTargetKey] }

// deletedErr is Open's error for a key whose newest record is r, deleted.
func deletedErr(r *record) error {
	if r != nil && r.Pointer {
		return &DeleteMarkerError{VersionID: pointerTarget(r), Modified: time.Unix(0, r.Modified)}
	}
	return ErrNoSuchArtifact
}

// locateRecord locates the record under key (a version key included)
// itself, as Open does but not following a pointer: newest is nil when
// no drive holds one. Heal uses it.
func (e *Engine) locateRecord(ctx context.Context, tenant, container, key string) (location, *record, error) {
	if err := validKey(baseKey(key)); err != nil {
		return location{}, nil, err
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return location{}, nil, err
	}
	loc, newest, err := e.locate(ctx, tenant, container, key)
	if err != nil {
		return location{}, nil, err
	}
	if newest != nil {
		e.observe(newest.Version)
	}
	return loc, newest, nil
}

// OpenVersion is Open of version vid of key; vid "" is the newest.
// A missing version fails with ErrNoSuchVersion, a delete marker with
// *DeleteMarkerError.
func (e *Engine) OpenVersion(ctx context.Context, tenant, container, key, vid string) (*Artifact, error) {
	if vid == "" {
		return e.Open(ctx, tenant, container, key)
	}
	if err := validKey(key); err != nil {
		return nil, err
	}
	if !ValidVersionID(vid) {
		return nil, ErrInvalidVersion
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return nil, err
	}
	return e.openVersion(confirmOnce(ctx), tenant, container, key, vid, false)
}

// openVersion opens version vid of key; latest tells that a pointer named
// it (errors then say the key, not the version, is missing).
func (e *Engine) openVersion(ctx context.Context, tenant, container, key, vid string, latest bool) (*Artifact, error) {
	if vid == NullVersion {
		// The null version may still be the key's own plain record.
		loc, cur, err := e.locate(ctx, tenant, container, key)
		if err != nil {
			return nil, err
		}
		if cur != nil && !cur.Deleted && !cur.Pointer {
			// Written back as Open does: a read by version id serves
			// nothing a later read could unsee (review 26 G1).
			a, err := e.artifactAt(tenant, container, key, loc, cur)
			if err != nil {
				return nil, err
			}
			if err := e.writeBack(ctx, tenant, container, key, loc, cur, a); err != nil {
				return nil, err
			}
			a.Info.VersionID = NullVersion
			return a, nil
		}
	}
	vk := versionKey(key, vid)
	loc, v, err := e.locate(ctx, tenant, container, vk)
	if err != nil {
		return nil, err
	}
	var a *Artifact
	if v != nil && !v.Deleted && !v.Marker {
		if a, err = e.artifactAt(tenant, container, vk, loc, v); err != nil {
			return nil, err
		}
	}
	if v != nil {
		// A version record, a deleted one or a delete marker, is
		// written back before it is answered, as Open writes back what
		// it serves: a failed versioned write's version on fewer than
		// m+1 drives was served by id, and a later read through other
		// drives answered NoSuchVersion (review 26 G2).
		if err := e.writeBack(ctx, tenant, container, vk, loc, v, a); err != nil {
			return nil, err
		}
	}
	switch {
	case v == nil || v.Deleted:
		if latest {
			return nil, ErrNoSuchArtifact
		}
		return nil, ErrNoSuchVersion
	case v.Marker:
		return nil, &DeleteMarkerError{VersionID: vid, Modified: time.Unix(0, v.Modified), ByVersion: !latest}
	}
	a.Info.VersionID = vid
	return a, nil
}

// putVersioned is Put into a versioned container: a new version (the null
// version when suspended), then the pointer to it.
func (e *Engine) putVersioned(ctx context.Context, tenant, container, key string, body io.Reader, opts PutOptions) (ArtifactInfo, error) {
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return ArtifactInfo{}, err
	}
	vid := NullVersion
	if opts.Versioning == VersioningEnabled {
		// A version written before versioning stays, as "null".
		if _, err := e.adopt(ctx, tenant, container, key, NullVersion, false); err != nil {
			return ArtifactInfo{}, err
		}
		vid = newVersionSlot
	}
	info, err := e.put(ctx, tenant, container, key, vid, body, opts)
	if err != nil {
		return ArtifactInfo{}, err
	}
	// Suspended, a plain record replaced is the null version superseded:
	// its shard files go.
	defer e.lockPointer(tenant, container, key)()
	if err := e.point(ctx, tenant, container, key, info.VersionID, info.Size, info.ETag, info.Modified, false, vid == NullVersion); err != nil {
		return ArtifactInfo{}, err
	}
	return info, nil
}

// adopt makes key's plain record, if it has one (written unversioned, or
// by a multipart completion), its version vid: the record moves to the
// version key, sharing its shard files (copied instead when inline or
// placed under an older map), and the key gets a pointer to it. It
// returns the version id the record got, "" if there was none. A version
// vid under retention or legal hold is never replaced: the record
// becomes a new version of its own instead (a locked null version and a
// plain record both exist after a write under a stale versioning state,
// probe H2/H5; nothing is lost, nothing locked is overwritten).
func (e *Engine) adopt(ctx context.Context, tenant, container, key, vid string, held bool) (string, error) {
	loc, cur, err := e.locate(ctx, tenant, container, key)
	if err != nil {
		return "", fmt.Errorf("engine: version %s: %w", container, err)
	}
	if cur == nil || cur.Deleted || cur.Pointer {
		return "", nil
	}
	if !held {
		// A plain record (written before versioning was enabled, or a
		// completion by an older engine) is adopted under key's
		// cluster-wide lock: two adopts of one record under two version
		// ids would share its shard files, and deleting one version
		// would destroy the other's data (review 25d P2).
		hold, err := e.lockKey(ctx, tenant, container, key)
		if err != nil {
			return "", fmt.Errorf("engine: version %s: %w", container, err)
		}
		defer hold.unlock()
		if loc, cur, err = e.locate(ctx, tenant, container, key); err != nil {
			return "", fmt.Errorf("engine: version %s: %w", container, err)
		}
		if cur == nil || cur.Deleted || cur.Pointer {
			return "", nil
		}
	}
	_, old, err := e.locate(ctx, tenant, container, versionKey(key, vid))
	if err != nil {
		return "", fmt.Errorf("engine: version %s: %w", container, err)
	}
	if old != nil && !old.Deleted && retentionOf(old.Metadata).protects(e.cfg.Now(), false) {
		nv, _ := e.newVersion()
		vid = versionIDOf(nv)
	}
	m := e.mapFor(tenant, container)
	pg := pgOf(m, tenant, container, key)
	if !cur.IsInline && cur.PG == pg && loc.sameSet(m, pg) {
		drives, _ := e.pgDrives(m, pg)
		rec := *cur
		rec.Inline = nil
		rec.Version, _ = e.newVersion()
		replaced, err := e.artifactWrite(tenant, container, versionKey(key, vid), drives, m.Policy.WriteQuorum()).latest(ctx, &rec, nil, present(drives))
		if err != nil {
			return "", fmt.Errorf("engine: version %s: %w", container, err)
		}
		rb, ra := liveSize(replaced)
		e.usage(tenant, rec.Size-rb, 1-ra)
	} else {
		a, err := e.artifactAt(tenant, container, key, loc, cur)
		if err != nil {
			return "", err
		}
		r := a.Reader(ctx, 0, a.Info.Size)
		_, err = e.put(ctx, tenant, container, key, vid, r, PutOptions{
			Size: cur.Size, ContentType: cur.ContentType, Metadata: cur.Metadata, modified: cur.Modified, etag: cur.ETag,
		})
		r.Close()
		if err != nil {
			return "", fmt.Errorf("engine: version %s: %w", container, err)
		}
	}
	defer e.lockPointer(tenant, container, key)()
	if err := e.point(ctx, tenant, container, key, vid, cur.Size, cur.ETag, time.Unix(0, cur.Modified), false, false); err != nil {
		return "", err
	}
	return vid, nil
}

// claim is the version a pointer names, with what the pointer keeps of it.
type claim struct {
	vid      string
	size     int64
	etag     string
	modified time.Time
	marker   bool
}

// newer reports whether c is listed before o: newer by time, then by id
// (groupVersions' order).
func (c claim) newer(o claim) bool {
	if !c.modified.Equal(o.modified) {
		return c.modified.After(o.modified)
	}
	return c.vid > o.vid
}

func claimOf(r *record) claim {
	return claim{vid: pointerTarget(r), size: r.Size, etag: r.ETag, modified: time.Unix(0, r.Modified), marker: r.Deleted}
}

// maxPointerWrites bounds the pointer writes of one point.
const maxPointerWrites = 4

// point writes key's pointer to version vid (a deleted one for a delete
// marker). collect removes the shard files of a plain record it replaces
// (a null version superseded); otherwise they are kept (adopt moved them).
//
// Pointer writes of one key through two nodes race: each node serialises
// its own (lockPointer), and the pointer record written last wins, which
// may name the older of two versions written at once (GET then read it
// while listings named the newer one latest). So the pointer must name
// the newest of the versions its racing writes claim, as listings order
// them (newer by time, then by id): a write that replaced a pointer to a
// newer version that still exists points there instead, and one that a
// newer pointer to an older version refused as stale is written again.
// Of two racing writes, one always sees the other (their write quorums
// share a drive, where one landed first), and writes again until it sees
// nothing newer.
func (e *Engine) point(ctx context.Context, tenant, container, key, vid string, size int64, etag string, modified time.Time, marker, collect bool) error {
	want := claim{vid: vid, size: size, etag: etag, modified: modified, marker: marker}
	for range maxPointerWrites {
		seen, err := e.writePointer(ctx, tenant, container, key, want, collect)
		if err != nil {
			return err
		}
		collect = false // what a rewrite replaces is a pointer
		next, again := want, false
		for _, r := range seen.refused {
			e.observe(r.Version)
			if c := claimOf(r); r.Pointer && c.vid != want.vid && !c.newer(want) && !again {
				// A newer pointer to an older version: write again,
				// newer, unless this version was deleted meanwhile
				// (a deletion by id re-points to an older one).
				again = e.versionLive(ctx, tenant, container, key, want.vid)
			}
		}
		for _, r := range seen.replaced {
			if c := claimOf(r); r.Pointer && c.newer(next) && e.versionLive(ctx, tenant, container, key, c.vid) {
				next, again = c, true // it replaced a pointer to a newer version
			}
		}
		if !again {
			return nil
		}
		want = next
	}
	return nil
}

// versionLive reports whether version vid of key is stored and not
// deleted (as far as a read finds).
func (e *Engine) versionLive(ctx context.Context, tenant, container, key, vid string) bool {
	_, v, err := e.locate(ctx, tenant, container, versionKey(key, vid))
	return err == nil && v != nil && !v.Deleted
}

// writePointer writes key's pointer record naming c once, and returns
// the records the write met (recordWrite.seen).
func (e *Engine) writePointer(ctx context.Context, tenant, container, key string, c claim, collect bool) (metRecords, error) {
	vid, size, etag, modified, marker := c.vid, c.size, c.etag, c.modified, c.marker
	m := e.mapFor(tenant, container)
	pg := pgOf(m, tenant, container, key)
	drives, _ := e.pgDrives(m, pg)
	v, _ := e.newVersion()
	rec := record{
		Version: v, Pointer: true, Deleted: marker, Modified: modified.UnixNano(),
		Metadata: map[string]string{pointerTargetKey: vid},
		Data:     m.Policy.Data, Parity: m.Policy.Parity, StripeSize: e.cfg.StripeSize, PG: pg,
	}
	if !marker {
		rec.Size, rec.ETag = size, etag
	}
	w := e.artifactWrite(tenant, container, key, drives, m.Policy.WriteQuorum())
	w.keepReplaced = !collect
	var seen metRecords
	w.seen = &seen
	replaced, err := w.latest(ctx, &rec, nil, present(drives))
	if err != nil {
		return metRecords{}, fmt.Errorf("engine: version pointer: %w", err)
	}
	rb, ra := liveSize(replaced)
	e.usage(tenant, -rb, -ra)
	return seen, nil
}

// DeleteOptions describes a DeleteVersion.
type DeleteOptions struct {
	Versioning Versioning // the container's state
	// VersionID, if set, deletes that version for good; otherwise a
	// versioned container gets a delete marker.
	VersionID string
	// BypassGovernance lets a version under a Governance retention be
	// deleted (lock.go).
	BypassGovernance bool
	// Condition, if set, is checked against key's newest version under
	// the key's lock, which the deletion holds (keylock.go).
	Condition Condition
}

// DeleteResult is what a DeleteVersion did.
type DeleteResult struct {
	VersionID    string // the marker written, or the version deleted
	DeleteMarker bool   // a marker was written, or the version deleted was one
}

// DeleteVersion deletes key as S3's DeleteObject: unversioned and without
// a version id it is Delete; with versioning it adds a delete marker (the
// null version when suspended); with a version id it removes that version
// (a missing one succeeds) and, if it was current, makes the newest one
// left current.
func (e *Engine) DeleteVersion(ctx context.Context, tenant, container, key string, opts DeleteOptions) (DeleteResult, error) {
	if err := validKey(key); err != nil {
		return DeleteResult{}, err
	}
	if opts.VersionID != "" && !ValidVersionID(opts.VersionID) {
		return DeleteResult{}, ErrInvalidVersion
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return DeleteResult{}, err
	}
	if opts.Condition != nil {
		unlock, err := e.checkCondition(ctx, tenant, container, key, opts.Condition)
		if err != nil {
			return DeleteResult{}, err
		}
		defer unlock()
	}
	if opts.VersionID == "" {
		if opts.Versioning == Unversioned {
			return DeleteResult{}, e.tombstone(ctx, tenant, container, key)
		}
		return e.deleteMarker(ctx, tenant, container, key, opts.Versioning, opts.Condition != nil)
	}
	// A version's deletion holds the key's cluster-wide lock (a
	// conditional one holds it already), as retention and legal-hold
	// changes do (lock.go): of the two racing through two nodes, the
	// second sees the first.
	if opts.Condition == nil {
		hold, err := e.lockKey(ctx, tenant, container, key)
		if err != nil {
			return DeleteResult{}, fmt.Errorf("%w: %w", ErrConditionConflict, err)
		}
		defer hold.unlock()
	}
	// The key's pointer lock covers the version's deletion too: a
	// retention change (lock.go) cannot rewrite a version being deleted.
	defer e.lockPointer(tenant, container, key)()
	res, plain, err := e.removeVersion(ctx, tenant, container, key, opts.VersionID, opts.BypassGovernance)
	switch {
	case err != nil:
		return res.DeleteResult, err
	case !res.removed:
		// Gone already, maybe by a delete whose repoint failed (an
		// older map's set short: keyVersions): its retry finishes it.
		return res.DeleteResult, e.repointNamed(ctx, tenant, container, key, map[string]bool{opts.VersionID: true})
	}
	return res.DeleteResult, e.repointAfter(ctx, tenant, container, key, map[string]bool{opts.VersionID: true}, plain)
}

// DeleteVersions deletes versions vids of key, each as DeleteVersion
// with that version id would (DeleteObjects' entries naming versions of
// one key), with one error per version. It takes the key's cluster-wide
// lock once for all of them (a lock is two Raft applies: one per version
// made a DeleteObjects of many versions of one key slow, and under load
// its entries failed to get the lock), taking it again only if it runs
// out during a long batch; it deletes the key's current version last,
// so that a reader meets the newest version left as long as with a
// single delete, and makes the newest version left current once, at the
// end, instead of after each deletion (each reads every version of the
// key).
func (e *Engine) DeleteVersions(ctx context.Context, tenant, container, key string, vids []string, bypass bool) ([]DeleteResult, []error) {
	res := make([]DeleteResult, len(vids))
	errs := make([]error, len(vids))
	failRest := func(err error) ([]DeleteResult, []error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return res, errs
	}
	for i, vid := range vids {
		res[i].VersionID = vid
		if !ValidVersionID(vid) {
			errs[i] = ErrInvalidVersion
		}
	}
	if err := validKey(key); err != nil {
		return failRest(err)
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return failRest(err)
	}
	hold, err := e.lockKey(ctx, tenant, container, key)
	if err != nil {
		return failRest(fmt.Errorf("%w: %w", ErrConditionConflict, err))
	}
	defer func() { hold.unlock() }()
	_, cur, err := e.locate(ctx, tenant, container, key)
	if err != nil {
		return failRest(fmt.Errorf("engine: delete version: %w", err))
	}
	current := ""
	switch {
	case cur == nil || cur.Deleted && !cur.Pointer:
	case cur.Pointer:
		current = pointerTarget(cur)
	default:
		current = NullVersion // the key's own plain record
	}
	order := make([]int, 0, len(vids))
	for i, vid := range vids {
		if vid != current {
			order = append(order, i)
		}
	}
	for i, vid := range vids {
		if vid == current {
			order = append(order, i)
		}
	}
	deleted := make(map[string]bool)
	gone := make(map[string]bool) // found gone already: see DeleteVersion
	plain := false
	for _, i := range order {
		if errs[i] != nil {
			continue
		}
		if hold.check() != nil {
			// A long batch outlived the lock's lease: take it again.
			hold.unlock()
			if hold, err = e.lockKey(ctx, tenant, container, key); err != nil {
				hold = &uploadHold{unlock: func() {}}
				for _, j := range order {
					if errs[j] == nil && !deleted[vids[j]] {
						errs[j] = fmt.Errorf("%w: %w", ErrConditionConflict, err)
					}
				}
				break
			}
		}
		unlock := e.lockPointer(tenant, container, key)
		r, p, err := e.removeVersion(ctx, tenant, container, key, vids[i], bypass)
		unlock()
		res[i], errs[i] = r.DeleteResult, err
		if r.removed {
			deleted[vids[i]] = true
			plain = plain || p
		} else if err == nil {
			gone[vids[i]] = true
		}
	}
	if len(deleted)+len(gone) == 0 {
		return res, errs
	}
	defer e.lockPointer(tenant, container, key)()
	if len(deleted) == 0 {
		err = e.repointNamed(ctx, tenant, container, key, gone)
	} else {
		for vid := range deleted {
			gone[vid] = true
		}
		err = e.repointAfter(ctx, tenant, container, key, gone, plain)
	}
	if err != nil {
		// The versions are gone but the key may still name one of them
		// as current: as a single delete would, the entries fail.
		for _, i := range order {
			if gone[vids[i]] && errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return res, errs
}

// removed is what removeVersion did: the result to report, and whether it
// deleted a version (one missing or already deleted succeeds without).
type removed struct {
	DeleteResult
	removed bool
}

// removeVersion deletes version vid of key, the key's lock and pointer
// lock held; plain reports that it was the key's own plain record (the
// null version, current). A missing version succeeds; one protected by
// retention or a legal hold fails with ErrLocked.
func (e *Engine) removeVersion(ctx context.Context, tenant, container, key, vid string, bypass bool) (res removed, plain bool, err error) {
	res.VersionID = vid
	_, cur, err := e.locate(ctx, tenant, container, key)
	if err != nil {
		return res, false, fmt.Errorf("engine: delete version: %w", err)
	}
	target, v := versionKey(key, vid), cur
	if vid == NullVersion && cur != nil && !cur.Deleted && !cur.Pointer {
		target = key // the null version is the key's own plain record
	} else if _, v, err = e.locate(ctx, tenant, container, target); err != nil {
		return res, false, fmt.Errorf("engine: delete version: %w", err)
	}
	if v == nil || v.Deleted {
		return res, false, nil
	}
	res.DeleteMarker = v.Marker
	if retentionOf(v.Metadata).protects(e.cfg.Now(), bypass) {
		return removed{}, false, fmt.Errorf("%w: %s version %s", ErrLocked, key, vid)
	}
	if cur == nil || target == key || cur.Pointer && pointerTarget(cur) == vid {
		// The current version goes: repointAfter must then find the
		// next, which a listing of the key's versions may refuse (an
		// older map's set short, F2 of session 14). Refuse before
		// anything is deleted, not after (review 20 M2).
		if _, err := e.keyVersions(ctx, tenant, container, key); err != nil {
			return removed{}, false, fmt.Errorf("engine: delete version: %w", err)
		}
	}
	if err := e.tombstone(ctx, tenant, container, target); err != nil {
		return removed{}, false, err
	}
	res.removed = true
	return res, target == key, nil
}

// repointNamed makes key's newest version left current if the key names
// one of vids, versions a delete found gone: a delete that removed one and
// then failed to repoint (keyVersions needs the older maps' sets of a
// container not settled: List) left the key naming it, and a GET found
// nothing though older versions were there, until its retry, which found
// the version gone, did this.
func (e *Engine) repointNamed(ctx context.Context, tenant, container, key string, vids map[string]bool) error {
	_, cur, err := e.locate(ctx, tenant, container, key)
	if err != nil {
		return fmt.Errorf("engine: delete version: %w", err)
	}
	if cur == nil || !cur.Pointer || !vids[pointerTarget(cur)] {
		return nil
	}
	return e.repoint(ctx, tenant, container, key)
}

// repointAfter makes key's newest version left current once versions of
// it were deleted (deleted, by id; plain: its own plain record among
// them), if its current version was one of them. Whether it was is
// decided after they are gone and under the key's pointer lock, so that
// of two deletes racing on this node the second sees the first's
// deletion.
func (e *Engine) repointAfter(ctx context.Context, tenant, container, key string, deleted map[string]bool, plain bool) error {
	_, cur, err := e.locate(ctx, tenant, container, key)
	if err != nil {
		return fmt.Errorf("engine: delete version: %w", err)
	}
	if cur == nil || cur.Pointer && deleted[pointerTarget(cur)] || plain {
		return e.repoint(ctx, tenant, container, key)
	}
	return nil
}

// lockPointer serialises, on this node, the decisions about key's
// pointer: which version is current and the pointer's write. Across nodes
// the pointer's last writer wins (see the package doc on versioned keys).
func (e *Engine) lockPointer(tenant, container, key string) (unlock func()) {
	return e.lockLocal("pointer\x00" + indexPrefix(tenant, container) + key) // upload ids are hex: no collision
}

// deleteMarker adds a delete marker as key's newest version.
func (e *Engine) deleteMarker(ctx context.Context, tenant, container, key string, v Versioning, held bool) (DeleteResult, error) {
	vid := NullVersion
	if v == VersioningEnabled {
		if _, err := e.adopt(ctx, tenant, container, key, NullVersion, held); err != nil {
			return DeleteResult{}, err
		}
		vid = newVersionSlot
	}
	info, err := e.put(ctx, tenant, container, key, vid, bytes.NewReader(nil), PutOptions{Size: 0, marker: true})
	if err != nil {
		return DeleteResult{}, err
	}
	defer e.lockPointer(tenant, container, key)()
	if err := e.point(ctx, tenant, container, key, info.VersionID, 0, "", info.Modified, true, vid == NullVersion); err != nil {
		return DeleteResult{}, err
	}
	return DeleteResult{VersionID: info.VersionID, DeleteMarker: true}, nil
}

// repoint makes key's newest version left current, or deletes key when
// none is left.
func (e *Engine) repoint(ctx context.Context, tenant, container, key string) error {
	vs, err := e.keyVersions(ctx, tenant, container, key)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		_, cur, err := e.locate(ctx, tenant, container, key)
		if err != nil || cur == nil || cur.Deleted && !cur.Pointer {
			return err
		}
		return e.tombstone(ctx, tenant, container, key)
	}
	if vs[0].VersionID == NullVersion && !vs[0].stored {
		return nil // the key's own plain record is current
	}
	top := vs[0]
	return e.point(ctx, tenant, container, key, top.VersionID, top.Size, top.ETag, top.Modified, top.DeleteMarker, false)
}

// VersionInfo describes one version of a key in a listing.
type VersionInfo struct {
	Key, VersionID string
	Size           int64 // bytes
	ETag           string
	Modified       time.Time
	IsLatest       bool
	DeleteMarker   bool

	stored bool // under a version key (not the key's plain record)
}

// VersionListOptions selects a page of ListVersions, as S3's
// ListObjectVersions.
type VersionListOptions struct {
	Prefix, Delimiter string
	// KeyMarker alone resumes after that key; with VersionIDMarker,
	// after that version of it.
	KeyMarker, VersionIDMarker string
	Limit                      int // versions plus prefixes; 0 means 1000
}

// VersionListResult is a page of ListVersions: keys in byte order, each
// key's versions newest first.
type VersionListResult struct {
	Versions             []VersionInfo
	Prefixes             []string
	Truncated            bool
	NextKey, NextVersion string // the markers of the next page when Truncated
}

// ListVersions lists the versions and delete markers of a container's
// keys. A key of an unversioned container is its one version, "null".
func (e *Engine) ListVersions(ctx context.Context, tenant, container string, opts VersionListOptions) (VersionListResult, error) {
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return VersionListResult{}, err
	}
	if opts.VersionIDMarker != "" && !ValidVersionID(opts.VersionIDMarker) {
		return VersionListResult{}, ErrInvalidVersion
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = 1000
	}
	after, resumeKey := "", ""
	switch {
	case opts.KeyMarker == "":
	case opts.VersionIDMarker == "":
		after = opts.KeyMarker + "\x00" + maxKeySentinel
		if opts.Delimiter != "" && strings.HasPrefix(opts.KeyMarker, opts.Prefix) {
			if i := strings.Index(opts.KeyMarker[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				after = opts.KeyMarker[:len(opts.Prefix)+i+len(opts.Delimiter)] + maxKeySentinel
			}
		}
	default:
		after, resumeKey = justBefore(opts.KeyMarker), opts.KeyMarker
	}
	gr := &groupReader{g: e.newMerger(ctx, tenant, container, opts.Prefix, after)}
	for _, c := range gr.g.cursors {
		c.limit = min(limit+maxGroupRead+1, listBatch) // a small page needs no more
	}
	var res VersionListResult
	count := 0
walk:
	for {
		key, ok, err := gr.peekKey(ctx)
		if err != nil {
			return VersionListResult{}, err
		}
		if !ok {
			break
		}
		if opts.Delimiter != "" {
			if i := strings.Index(key[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				cp := key[:len(opts.Prefix)+i+len(opts.Delimiter)]
				if count == limit {
					res.Truncated = true
					break
				}
				res.Prefixes = append(res.Prefixes, cp)
				res.NextKey, res.NextVersion = cp, ""
				count++
				gr.skipTo(cp + maxKeySentinel)
				continue
			}
		}
		marker := ""
		if key == resumeKey {
			marker = opts.VersionIDMarker
		}
		own, vers, complete, err := gr.groupUpTo(ctx, key, maxGroupRead)
		if err != nil {
			return VersionListResult{}, err
		}
		var vs []VersionInfo
		more := false
		if complete {
			vs = groupVersions(key, own, vers)
			if marker != "" {
				vs = resumeAfter(vs, marker)
			}
		} else {
			// Many versions: this page's few are found by seeking.
			gr.skipTo(key + "\x00" + maxKeySentinel)
			if vs, more, err = e.versionsPage(ctx, tenant, container, key, own, marker, limit-count); err != nil {
				return VersionListResult{}, err
			}
		}
		for _, v := range vs {
			if count == limit {
				res.Truncated = true
				break walk
			}
			res.Versions = append(res.Versions, v)
			res.NextKey, res.NextVersion = v.Key, v.VersionID
			count++
		}
		if more {
			res.Truncated = true
			break
		}
	}
	if err := gr.g.finish(); err != nil {
		return VersionListResult{}, err
	}
	if !res.Truncated {
		res.NextKey, res.NextVersion = "", ""
	}
	return res, nil
}

// keyVersions returns key's live versions, newest first.
func (e *Engine) keyVersions(ctx context.Context, tenant, container, key string) ([]VersionInfo, error) {
	gr := &groupReader{g: e.newMerger(ctx, tenant, container, key, justBefore(key))}
	k, ok, err := gr.peekKey(ctx)
	if err != nil || !ok || k != key {
		return nil, err
	}
	own, vers, err := gr.group(ctx, key)
	if err != nil {
		return nil, err
	}
	if err := gr.g.finish(); err != nil {
		return nil, err
	}
	return groupVersions(key, own, vers), nil
}

// justBefore returns an index key sorting right before s: no valid key
// lies between the two (valid UTF-8 holds no 0xff byte).
func justBefore(s string) string {
	if s == "" {
		return ""
	}
	return s[:len(s)-1] + string([]byte{s[len(s)-1] - 1}) + maxKeySentinel
}

// resumeAfter drops the versions up to and including vid (vs in listing
// order). A vid no longer listed is placed by its time (a "null" one: the
// whole key is done).
func resumeAfter(vs []VersionInfo, vid string) []VersionInfo {
	if i := slices.IndexFunc(vs, func(v VersionInfo) bool { return v.VersionID == vid }); i >= 0 {
		return vs[i+1:]
	}
	if vid == NullVersion {
		return nil
	}
	bound := listPos{vidTime(vid), vid}
	for i, v := range vs {
		if posOf(v).before(bound) {
			return vs[i:]
		}
	}
	return nil
}

// Versions of a key are listed newest first by their position: a version
// id's own time (its first 8 bytes, the time of the version's first
// write) then the id, the null version by its modification time. Ids
// sort by time in the index, so a page of a key with many versions is
// found by seeking (versionsPage) instead of reading them all; a key with
// up to maxGroupRead versions is read whole, as before.

// maxGroupRead is how many version records of one key a listing reads in
// one go; a key with more is paged by seeking.
var maxGroupRead = 256

// listPos is a version's position in a listing: newer is greater.
type listPos struct {
	t   uint64 // unix nanoseconds
	vid string
}

// before reports whether p lists after q (is older).
func (p listPos) before(q listPos) bool {
	if p.t != q.t {
		return p.t < q.t
	}
	return p.vid < q.vid
}

// vidTime is the time in a version id (the unsigned nanoseconds of its
// first 8 bytes: an id past 2262 stays after every real one).
func vidTime(vid string) uint64 {
	b, err := hex.DecodeString(vid)
	if err != nil || len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b[:8])
}

func posOf(v VersionInfo) listPos {
	if v.VersionID == NullVersion {
		return listPos{uint64(max(v.Modified.UnixNano(), 0)), v.VersionID}
	}
	return listPos{vidTime(v.VersionID), v.VersionID}
}

// versionsPage returns up to need versions of key, newest first, after
// version marker ("" for the newest), and whether more follow, reading
// about as many records as it returns: the null version (key's own
// record own, or its version key), then the ids below the marker in
// windows of time growing backwards from it (1 s, 2 s, 4 s, ...), each
// read in index order keeping only its newest records.
func (e *Engine) versionsPage(ctx context.Context, tenant, container, key string, own *record, marker string, need int) ([]VersionInfo, bool, error) {
	var null *VersionInfo
	latest := ""
	switch {
	case own != nil && own.Pointer:
		latest = pointerTarget(own)
	case own != nil && !own.Deleted:
		latest = NullVersion
		null = &VersionInfo{Key: key, VersionID: NullVersion, Size: own.Size, ETag: own.ETag, Modified: time.Unix(0, own.Modified)}
	}
	if null == nil {
		_, r, err := e.locate(ctx, tenant, container, versionKey(key, NullVersion))
		if err != nil {
			return nil, false, fmt.Errorf("engine: list versions: %w", err)
		}
		if r != nil && !r.Deleted {
			null = &VersionInfo{Key: key, VersionID: NullVersion, Size: r.Size, ETag: r.ETag, Modified: time.Unix(0, r.Modified), DeleteMarker: r.Marker, stored: true}
		}
	}
	bound, bounded := listPos{}, false
	switch {
	case marker == NullVersion && null == nil:
		return nil, false, nil // as resumeAfter: the key is done
	case marker == NullVersion:
		bound, bounded = posOf(*null), true
	case marker != "":
		bound, bounded = listPos{vidTime(marker), marker}, true
	}
	// The ids below the bound, newest first: need+1 of them tell whether
	// more follow.
	want := need + 1
	var ids []VersionInfo
	hiTime := uint64(e.cfg.Now().Add(time.Minute).UnixNano()) // clocks of other nodes may run ahead
	if bounded {
		hiTime = bound.t
	}
	base := key + "\x00"
	span := uint64(time.Second)
	upper := "" // the next window ends at this index key (inclusive); "" means none
	for len(ids) < want {
		lo := ""
		if hiTime > span {
			lo = base + fmt.Sprintf("%016x", hiTime-span)
		}
		win, err := e.versionWindow(ctx, tenant, container, base, lo, upper, bound, bounded, want-len(ids))
		if err != nil {
			return nil, false, err
		}
		ids = append(ids, win...)
		if lo == "" {
			break
		}
		upper = lo // the windows before covered what sorts after it
		span *= 2
	}
	// Merge the null version in by its position.
	out := ids
	if null != nil && (!bounded || posOf(*null).before(bound)) {
		i := slices.IndexFunc(ids, func(v VersionInfo) bool { return posOf(v).before(posOf(*null)) })
		if i < 0 {
			i = len(ids)
		}
		out = slices.Insert(slices.Clone(ids), i, *null)
	}
	more := len(out) > need
	if more {
		out = out[:need]
	}
	// Without a pointer naming it, the latest is the newest: the first
	// listed, if none lies at or above the bound.
	firstIsNewest := !bounded
	if latest == "" && bounded && len(out) > 0 {
		above, err := e.versionAbove(ctx, tenant, container, base, bound)
		if err != nil {
			return nil, false, err
		}
		firstIsNewest = !above && (null == nil || posOf(*null).before(bound))
	}
	for i := range out {
		if out[i].VersionID == latest || latest == "" && firstIsNewest && i == 0 {
			out[i].IsLatest = true
		}
	}
	return out, more, nil
}

// versionAbove reports whether a live id of base (a key and NUL) lists
// before bound or at it (is not older).
func (e *Engine) versionAbove(ctx context.Context, tenant, container, base string, bound listPos) (bool, error) {
	g := e.newMerger(ctx, tenant, container, base, base+fmt.Sprintf("%016x", bound.t))
	for _, c := range g.cursors {
		c.limit = 16
	}
	for {
		k, rec, ok, err := g.next(ctx)
		if err != nil {
			return false, err
		}
		if !ok { // none found: an answer only if enough drives listed
			return false, g.finish()
		}
		vid := k[len(base):]
		if vid == NullVersion || !ValidVersionID(vid) || rec.Deleted {
			continue
		}
		if !(listPos{vidTime(vid), vid}).before(bound) {
			return true, g.finish()
		}
	}
}

// versionWindow reads the version records of base (a key and NUL) after
// index key lo ("" from the first) up to upper ("" for no limit),
// and returns the newest keep of the live ids among them below bound (if
// bounded), newest first.
func (e *Engine) versionWindow(ctx context.Context, tenant, container, base, lo, upper string, bound listPos, bounded bool, keep int) ([]VersionInfo, error) {
	after := lo
	if after == "" {
		after = base
	}
	g := e.newMerger(ctx, tenant, container, base, after)
	for _, c := range g.cursors {
		c.limit = min(keep+1, listBatch) // what lies past the window is read in vain
	}
	ring := make([]VersionInfo, 0, keep)
	start := 0 // ring is full from here on, oldest at start
	for {
		k, rec, ok, err := g.next(ctx)
		if err != nil {
			return nil, err
		}
		if !ok || upper != "" && k > upper {
			break
		}
		vid := k[len(base):]
		if vid == NullVersion || !ValidVersionID(vid) {
			continue
		}
		v := VersionInfo{Key: base[:len(base)-1], VersionID: vid, Size: rec.Size, ETag: rec.ETag,
			Modified: time.Unix(0, rec.Modified), DeleteMarker: rec.Marker, stored: true}
		if bounded && !posOf(v).before(bound) {
			break // ids ascend: the rest lie above the bound too
		}
		if rec.Deleted {
			continue
		}
		if len(ring) < keep {
			ring = append(ring, v)
			continue
		}
		ring[start] = v
		start = (start + 1) % keep
	}
	if err := g.finish(); err != nil {
		return nil, err
	}
	out := make([]VersionInfo, 0, len(ring))
	for i := range ring {
		out = append(out, ring[(start+len(ring)-1-i)%len(ring)])
	}
	return out, nil
}

// rawVersion is one version key's newest record in a walk.
type rawVersion struct {
	vid string
	rec *record
}

// groupVersions returns the live versions of key, newest first, the
// latest marked: key's own record own (a plain record is the null
// version; a pointer names the latest) and its version keys' records.
func groupVersions(key string, own *record, vers []rawVersion) []VersionInfo {
	var out []VersionInfo
	latest := ""
	plain := own != nil && !own.Deleted && !own.Pointer
	switch {
	case own != nil && own.Pointer:
		latest = pointerTarget(own)
	case plain:
		latest = NullVersion
		out = append(out, VersionInfo{Key: key, VersionID: NullVersion, Size: own.Size, ETag: own.ETag, Modified: time.Unix(0, own.Modified)})
	}
	for _, v := range vers {
		if v.rec.Deleted || plain && v.vid == NullVersion {
			continue
		}
		out = append(out, VersionInfo{Key: key, VersionID: v.vid, Size: v.rec.Size, ETag: v.rec.ETag,
			Modified: time.Unix(0, v.rec.Modified), DeleteMarker: v.rec.Marker, stored: true})
	}
	slices.SortStableFunc(out, func(a, b VersionInfo) int {
		pa, pb := posOf(a), posOf(b)
		switch {
		case pb.before(pa):
			return -1
		case pa.before(pb):
			return 1
		}
		return 0
	})
	i := slices.IndexFunc(out, func(v VersionInfo) bool { return v.VersionID == latest })
	if i < 0 && len(out) > 0 {
		i = 0
	}
	if i >= 0 {
		out[i].IsLatest = true
	}
	return out
}

// groupReader reads a merger's walk a key at a time: the key's own
// record and its version keys'.
type groupReader struct {
	g    *merger
	peek *rawEntry // read, not yet consumed
}

type rawEntry struct {
	key string
	rec *record
}

func (r *groupReader) read(ctx context.Context) (*rawEntry, error) {
	if r.peek != nil {
		p := r.peek
		r.peek = nil
		return p, nil
	}
	k, rec, ok, err := r.g.next(ctx)
	if err != nil || !ok {
		return nil, err
	}
	return &rawEntry{k, rec}, nil
}

// peekKey returns the key of the next group.
func (r *groupReader) peekKey(ctx context.Context) (string, bool, error) {
	p, err := r.read(ctx)
	if err != nil || p == nil {
		return "", false, err
	}
	r.peek = p
	return baseKey(p.key), true, nil
}

// group reads the group of key, the next one.
func (r *groupReader) group(ctx context.Context, key string) (own *record, vers []rawVersion, err error) {
	for {
		p, err := r.read(ctx)
		if err != nil || p == nil {
			return own, vers, err
		}
		if baseKey(p.key) != key {
			r.peek = p
			return own, vers, nil
		}
		if p.key == key {
			own = p.rec
		} else {
			vers = append(vers, rawVersion{vid: p.key[len(key)+1:], rec: p.rec})
		}
	}
}

// groupUpTo is group reading at most max version records: complete
// reports whether it read the whole group (else the walk is left inside
// it).
func (r *groupReader) groupUpTo(ctx context.Context, key string, max int) (own *record, vers []rawVersion, complete bool, err error) {
	for {
		p, err := r.read(ctx)
		if err != nil || p == nil {
			return own, vers, true, err
		}
		if baseKey(p.key) != key {
			r.peek = p
			return own, vers, true, nil
		}
		if p.key == key {
			own = p.rec
			continue
		}
		if len(vers) == max {
			r.peek = p
			return own, vers, false, nil
		}
		vers = append(vers, rawVersion{vid: p.key[len(key)+1:], rec: p.rec})
	}
}

// skipTo continues after key.
func (r *groupReader) skipTo(key string) {
	if r.peek != nil && r.peek.key <= key {
		r.peek = nil
	}
	r.g.skipTo(key)
}

// pointCompleted points key at version vid, the artifact a versioned
// completion made (info), as a versioned put does. A retried completion
// (info.Retried) points only if the key does not point at that version
// or a newer one already: the first call pointed (a crash before may have
// kept it from it), and rewriting the pointer to what has since become an
// older version served it again until point's next round put the newer
// one back, or for good if that round failed (review 25g G2); nor does a
// retry collect what its pointer replaces. The caller holds lockPointer.
func (e *Engine) pointCompleted(ctx context.Context, tenant, container, key, vid string, info ArtifactInfo) error {
	want := claim{vid: vid, size: info.Size, etag: info.ETag, modified: info.Modified}
	if info.Retried {
		_, cur, err := e.locate(ctx, tenant, container, key)
		if err != nil {
			return err
		}
		// Nothing to do when the key points at it already, or holds
		// anything newer: a pointer to a newer version or a delete
		// marker, or a plain record (an unversioned write or delete
		// under a stale versioning state), which pointing would
		// replace, its body then named by no record (review 25h H2).
		if cur != nil {
			if c := claimOf(cur); cur.Pointer && c.vid == vid || c.newer(want) {
				return nil
			}
		}
		return e.point(ctx, tenant, container, key, vid, info.Size, info.ETag, info.Modified, false, false)
	}
	return e.point(ctx, tenant, container, key, vid, info.Size, info.ETag, info.Modified, false, vid == NullVersion)
}

// CompleteUploadVersion is CompleteUpload into a container whose
// versioning state is v: the artifact becomes a new version (the null
// version when suspended). A retry of a completion already made a
// version answers that version.
func (e *Engine) CompleteUploadVersion(ctx context.Context, tenant, container, key, uploadID string, parts []CompletePart, finish func(Upload, []PartInfo) (map[string]string, error), v Versioning) (ArtifactInfo, error) {
	return e.completeUploadVersion(ctx, tenant, container, key, uploadID, parts, finish, v, false)
}

// completeUploadVersion is CompleteUploadVersion; held says the caller
// holds key's lock (CompleteUploadIf). The completion writes its artifact
// straight under its version key (completeUpload with a version id) and
// then points the key at it, as a versioned put does: the key never holds
// the completion as a plain record, which another versioned write of the
// key would replace with its pointer (the completion then answered a
// version id that did not exist) or collect as a superseded null version
// while it was being adopted (review 25f F1, F2), or adopt as another
// version sharing its shard files (review 25d P2).
func (e *Engine) completeUploadVersion(ctx context.Context, tenant, container, key, uploadID string, parts []CompletePart, finish func(Upload, []PartInfo) (map[string]string, error), v Versioning, held bool) (ArtifactInfo, error) {
	if v == Unversioned {
		return e.CompleteUpload(ctx, tenant, container, key, uploadID, parts, finish)
	}
	if err := validKey(key); err != nil {
		return ArtifactInfo{}, err
	}
	vid := NullVersion
	if v == VersioningEnabled {
		// A version written before versioning stays, as "null".
		if _, err := e.adopt(ctx, tenant, container, key, NullVersion, held); err != nil {
			return ArtifactInfo{}, err
		}
		vid = newVersionSlot
	}
	info, err := e.completeUpload(ctx, tenant, container, key, uploadID, parts, finish, vid)
	if err != nil {
		return ArtifactInfo{}, err
	}
	if info.VersionID == "" {
		// A retried completion an older engine made: its marker names no
		// version, and its artifact is key's own record, adopted as a
		// version as that engine did.
		if vid == newVersionSlot {
			nv, _ := e.newVersion()
			vid = versionIDOf(nv)
		}
		got, err := e.adopt(ctx, tenant, container, key, vid, held)
		if err != nil {
			return ArtifactInfo{}, err
		}
		if got != "" {
			vid = got // a fresh id if vid was a locked null version
		}
	} else {
		vid = info.VersionID
		unlock := e.lockPointer(tenant, container, key)
		err := e.pointCompleted(ctx, tenant, container, key, vid, info)
		unlock()
		if err != nil {
			return ArtifactInfo{}, err
		}
	}
	info.VersionID = vid
	return info, nil
}
