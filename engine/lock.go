package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/vaultaire/vaultaire/placement"
	"maps"
	"math"
	"strconv"
	"time"
)

// Retention (object lock) of versions.
//
// A version may carry a retention, a mode and a date until which it is
// protected, and a legal hold, kept in its record's reserved metadata
// (names starting with NUL, which no header can produce). A protected
// version cannot be deleted by id (DeleteVersion fails with ErrLocked):
// a legal hold or a Compliance retention by no one, a Governance
// retention only with DeleteOptions.BypassGovernance. A Compliance
// retention can only be extended; a Governance one shortened or removed
// only with the bypass. Writes of the key add versions and delete markers
// as usual, so the protected version's bytes stay. Changes to a version's
// retention and its deletion are serialised per key on a node
// (lockPointer).

// RetentionMode is a version's retention mode.
type RetentionMode uint8

// Retention modes, as S3's object lock.
const (
	RetentionNone RetentionMode = iota
	RetentionGovernance
	RetentionCompliance
)

// Retention is a version's object lock state.
type Retention struct {
	Mode      RetentionMode
	Until     time.Time // protected before this instant (with a Mode)
	LegalHold bool
}

// ErrLocked is returned when a version's retention or legal hold forbids
// the change.
var ErrLocked = errors.New("engine: version is locked")

// Reserved metadata entries of a version's retention.
const (
	lockModeKey  = "\x00lock-mode"  // "g" or "c"
	lockUntilKey = "\x00lock-until" // unix nanoseconds
	legalHoldKey = "\x00legal-hold" // "1"
)

// retentionOf reads a version's retention from its record's metadata.
func retentionOf(meta map[string]string) Retention {
	var r Retention
	switch meta[lockModeKey] {
	case "g":
		r.Mode = RetentionGovernance
	case "c":
		r.Mode = RetentionCompliance
	}
	if r.Mode != RetentionNone { // else no date to parse (a parse error allocates: every GET's)
		if ns, err := strconv.ParseInt(meta[lockUntilKey], 10, 64); err == nil {
			r.Until = time.Unix(0, ns)
		} else {
			r.Mode = RetentionNone
		}
	}
	r.LegalHold = meta[legalHoldKey] == "1"
	return r
}

// Retention returns the retention and legal hold the version carries.
func (i ArtifactInfo) Retention() Retention { return retentionOf(i.Metadata) }

// RetentionOf returns the retention an opened version carries.
func (a *Artifact) RetentionOf() Retention { return retentionOf(a.rec.Metadata) }

// MaxRetainUntil is the latest retain-until date a version can carry (the
// largest time in int64 nanoseconds, in April 2262). Callers refuse later
// dates; setIn stores a later one as this, never as a wrapped date.
var MaxRetainUntil = time.Unix(0, math.MaxInt64)

// setIn writes r into meta, a copy the caller owns.
func (r Retention) setIn(meta map[string]string) {
	delete(meta, lockModeKey)
	delete(meta, lockUntilKey)
	delete(meta, legalHoldKey)
	switch r.Mode {
	case RetentionGovernance:
		meta[lockModeKey] = "g"
	case RetentionCompliance:
		meta[lockModeKey] = "c"
	}
	if r.Mode != RetentionNone {
		until := r.Until
		if until.After(MaxRetainUntil) { // UnixNano would wrap into the past
			until = MaxRetainUntil
		}
		meta[lockUntilKey] = strconv.FormatInt(until.UnixNano(), 10)
	}
	if r.LegalHold {
		meta[legalHoldKey] = "1"
	}
}

// protects reports whether r forbids deleting the version at now.
func (r Retention) protects(now time.Time, bypass bool) bool {
	switch {
	case r.LegalHold:
		return true
	case r.Mode == RetentionCompliance:
		return now.Before(r.Until)
	case r.Mode == RetentionGovernance:
		return now.Before(r.Until) && !bypass
	}
	return false
}

// allows reports whether the retention old may become next at now.
func (old Retention) allows(next Retention, now time.Time, bypass bool) bool {
	if old.Mode == RetentionNone || !now.Before(old.Until) {
		return true
	}
	weaker := next.Mode == RetentionNone || next.Until.Before(old.Until)
	if old.Mode == RetentionCompliance {
		return next.Mode == RetentionCompliance && !weaker
	}
	return bypass || !weaker && next.Mode != RetentionNone
}

// SetRetention sets version vid's retention mode and date (its legal hold
// is left as it is), or fails with ErrLocked if the version's current
// retention forbids the change.
func (e *Engine) SetRetention(ctx context.Context, tenant, container, key, vid string, r Retention, bypass bool) error {
	return e.changeVersion(ctx, tenant, container, key, vid, func(old Retention) (Retention, error) {
		if !old.allows(r, e.cfg.Now(), bypass) {
			return old, ErrLocked
		}
		old.Mode, old.Until = r.Mode, r.Until
		return old, nil
	})
}

// SetLegalHold puts version vid under legal hold, or releases it.
func (e *Engine) SetLegalHold(ctx context.Context, tenant, container, key, vid string, on bool) error {
	return e.changeVersion(ctx, tenant, container, key, vid, func(old Retention) (Retention, error) {
		old.LegalHold = on
		return old, nil
	})
}

// changeVersion rewrites version vid's record (vid "" the current one)
// with the retention change returns: the same data, a new record
// version.
func (e *Engine) changeVersion(ctx context.Context, tenant, container, key, vid string, change func(Retention) (Retention, error)) error {
	if err := validKey(key); err != nil {
		return err
	}
	if vid != "" && !ValidVersionID(vid) {
		return ErrInvalidVersion
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return err
	}
	// The key's cluster-wide lock, as a versioned delete by id takes it:
	// the per-node pointer lock alone let a retention change and a delete
	// of the same version through two nodes both succeed, and the version
	// came back without its data (probe H3).
	hold, err := e.lockKey(ctx, tenant, container, key)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConditionConflict, err)
	}
	defer hold.unlock()
	defer e.lockPointer(tenant, container, key)()
	ikey := key
	_, cur, err := e.locate(ctx, tenant, container, key)
	if err != nil {
		return fmt.Errorf("engine: retention: %w", err)
	}
	switch {
	case vid == "" && cur != nil && cur.Pointer && !cur.Deleted:
		ikey = versionKey(key, pointerTarget(cur))
	case vid == "" && (cur == nil || cur.Deleted):
		return deletedErr(cur)
	case vid != "" && !(vid == NullVersion && cur != nil && !cur.Deleted && !cur.Pointer):
		ikey = versionKey(key, vid)
	}
	var loc location
	var rec *record
	var m *placement.Map
	for moved := false; ; moved = true {
		if loc, rec, err = e.locate(ctx, tenant, container, ikey); err != nil {
			return fmt.Errorf("engine: retention: %w", err)
		}
		switch {
		case rec == nil || rec.Deleted:
			return ErrNoSuchVersion
		case rec.Marker:
			return &DeleteMarkerError{VersionID: vid, Modified: time.Unix(0, rec.Modified), ByVersion: true}
		}
		m = e.mapFor(tenant, container)
		if loc.sameSet(m, pgOf(m, tenant, container, key)) {
			break
		}
		if moved {
			return fmt.Errorf("%w: the version is being migrated", ErrMetadataUnavailable)
		}
		// In an older map's set: moved into the current one first, as
		// UpdateMetadata does (moveFirst says why).
		if _, err := e.migrate(ctx, tenant, container, ikey, nil); err != nil {
			return fmt.Errorf("engine: retention: move the key into the current map first: %w", err)
		}
	}
	next, err := change(retentionOf(rec.Metadata))
	if err != nil {
		return err
	}
	a, err := e.artifactAt(tenant, container, ikey, loc, rec)
	if err != nil {
		return err
	}
	nr := *rec
	nr.Metadata = make(map[string]string, len(rec.Metadata)+3)
	maps.Copy(nr.Metadata, rec.Metadata)
	next.setIn(nr.Metadata)
	nr.Inline = nil
	nr.Version, _ = e.newVersion()
	ok := present(loc.drives)
	var inline [][]byte
	if rec.IsInline {
		inline = make([][]byte, len(loc.drives))
		for j, h := range a.holders {
			ok[j] = ok[j] && h != nil
			if h != nil {
				inline[j] = h.Inline
			}
		}
	}
	// The replaced record names the same shard files: none is collected.
	if _, err := e.artifactWrite(tenant, container, ikey, loc.drives, m.Policy.WriteQuorum()).latest(ctx, &nr, inline, ok); err != nil {
		return fmt.Errorf("engine: retention: %w", err)
	}
	return nil
}

// withoutLock returns meta without the retention entries (a copy's lock
// is its own).
func withoutLock(meta map[string]string) map[string]string {
	if _, ok := meta[lockModeKey]; !ok {
		if _, ok := meta[legalHoldKey]; !ok {
			return meta
		}
	}
	out := maps.Clone(meta)
	Retention{}.setIn(out)
	return out
}
