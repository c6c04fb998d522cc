package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
)

// Conditional writes and metadata updates of one key.
//
// A key lock serialises, across the cluster, the writes of one key that
// depend on what the key holds: conditional puts and deletes (Condition)
// and metadata updates (UpdateMetadata). It is the multipart upload lock
// (Config.UploadLocker: a Raft lease in a cluster, an in-process mutex on
// one node) taken under a name derived from the key, which no upload id
// can take. Unconditional writes do not take it: of a conditional and an
// unconditional write racing, either may win, as on S3; of two
// conditional writes, the second sees the first. A conditional put stores
// its body first, without the lock, and takes the lock only to check its
// condition and write its records, so the lock is held for a record write,
// not an upload.

// ErrConditionConflict fails a conditional write that could not take its
// key's lock in a bounded wait: another conditional write or metadata
// update of the key is in progress (or the cluster cannot grant locks).
var ErrConditionConflict = errors.New("engine: conflicting conditional operation in progress")

// ReservedMetadataPrefix starts the names of metadata entries that are not
// user metadata (the object's tags, kept by the s3 layer): no HTTP header
// name can produce a name with a NUL. They are not counted towards
// MaxMetadataSize (their owners bound them) and a Copy copies none of
// them: CopyOptions.Reserved says which the copy gets.
const ReservedMetadataPrefix = "\x00"

// IsReservedMetadata reports whether a metadata entry name is reserved.
func IsReservedMetadata(name string) bool { return strings.HasPrefix(name, ReservedMetadataPrefix) }

// withoutReserved returns m without its reserved entries (m itself if it
// has none).
func withoutReserved(m map[string]string) map[string]string {
	for k := range m {
		if IsReservedMetadata(k) {
			out := maps.Clone(m)
			maps.DeleteFunc(out, func(k, _ string) bool { return IsReservedMetadata(k) })
			return out
		}
	}
	return m
}

// withEntries returns m with the entries of extra added (m itself if
// extra is empty).
func withEntries(m, extra map[string]string) map[string]string {
	if len(extra) == 0 {
		return m
	}
	out := make(map[string]string, len(m)+len(extra))
	maps.Copy(out, m)
	maps.Copy(out, extra)
	return out
}

// A Condition decides, under the key's lock, whether a write may replace
// key's newest version: cur is that version, nil if the key has none (or
// its newest version is a deletion). A non-nil error fails the write,
// which then stores nothing, and is returned as is.
type Condition func(cur *ArtifactInfo) error

// keyLockName is the lock name of a key: no upload id (hex) has a NUL.
func keyLockName(tenant, container, key string) string {
	sum := sha256.Sum256([]byte(indexPrefix(tenant, container) + key))
	return "key\x00" + hex.EncodeToString(sum[:16])
}

// lockKey takes key's lock; the caller must call the hold's unlock.
func (e *Engine) lockKey(ctx context.Context, tenant, container, key string) (*uploadHold, error) {
	return e.lockUpload(ctx, keyLockName(tenant, container, key))
}

// current returns key's newest live version, or nil.
func (e *Engine) current(ctx context.Context, tenant, container, key string) (*ArtifactInfo, error) {
	a, err := e.Open(ctx, tenant, container, key)
	switch {
	case errors.Is(err, ErrNoSuchArtifact):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &a.Info, nil
}

// checkCondition takes key's lock and evaluates cond against key's newest
// version. On success the lock stays held: the caller writes, then calls
// the returned unlock.
func (e *Engine) checkCondition(ctx context.Context, tenant, container, key string, cond Condition) (unlock func(), err error) {
	hold, err := e.lockKey(ctx, tenant, container, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConditionConflict, err)
	}
	cur, err := e.current(ctx, tenant, container, key)
	if err == nil {
		err = cond(cur)
	}
	if err == nil {
		err = hold.check()
	}
	if err != nil {
		hold.unlock()
		return nil, err
	}
	return hold.unlock, nil
}

// DeleteIf is Delete under key's lock, if cond holds for key's newest
// version.
func (e *Engine) DeleteIf(ctx context.Context, tenant, container, key string, cond Condition) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return err
	}
	unlock, err := e.checkCondition(ctx, tenant, container, key, cond)
	if err != nil {
		return err
	}
	defer unlock()
	return e.tombstone(ctx, tenant, container, key)
}

// CompleteUploadIf is CompleteUpload under key's lock, if cond holds for
// key's newest version when the completion is about to store the artifact
// (a retried completion that already stored it returns it without
// evaluating cond).
func (e *Engine) CompleteUploadIf(ctx context.Context, tenant, container, key, uploadID string, parts []CompletePart, finish func(Upload, []PartInfo) (map[string]string, error), cond Condition, v Versioning) (ArtifactInfo, error) {
	hold, err := e.lockKey(ctx, tenant, container, key)
	if err != nil {
		return ArtifactInfo{}, fmt.Errorf("%w: %w", ErrConditionConflict, err)
	}
	defer hold.unlock()
	return e.completeUploadVersion(ctx, tenant, container, key, uploadID, parts, func(u Upload, ps []PartInfo) (map[string]string, error) {
		cur, err := e.current(ctx, tenant, container, key)
		if err == nil {
			err = cond(cur)
		}
		if err == nil {
			err = hold.check()
		}
		if err != nil {
			return nil, err
		}
		if finish == nil {
			return nil, nil
		}
		return finish(u, ps)
	}, v, true)
}

// UpdateMetadata replaces the metadata of key's newest version with what
// update returns (given that version), rewriting only its metadata records:
// the data, ETag, size and modification time stay. The new records carry
// the version's successor (the version plus one, in its random low bits):
// newer than the records they replace, so reads, heals and migration treat
// them as any newer write, yet older than any later write of the key,
// whose version is taken from a later clock (a put racing the update
// wins). They go to the drives holding the version and must reach a write
// quorum (else ErrWriteQuorum, rolled back). Updates of one key are
// serialised with each other and with conditional writes by the key lock.
func (e *Engine) UpdateMetadata(ctx context.Context, tenant, container, key, vid string, update func(ArtifactInfo) (map[string]string, error)) (ArtifactInfo, error) {
	if err := validKey(key); err != nil {
		return ArtifactInfo{}, err
	}
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return ArtifactInfo{}, err
	}
	hold, err := e.lockKey(ctx, tenant, container, key)
	if err != nil {
		return ArtifactInfo{}, err
	}
	defer hold.unlock()
	a, err := e.OpenVersion(ctx, tenant, container, key, vid)
	if err != nil {
		return ArtifactInfo{}, err
	}
	if a.older {
		if a, err = e.moveFirst(ctx, tenant, container, key, vid, a.rkey); err != nil {
			return ArtifactInfo{}, fmt.Errorf("engine: update metadata: %w", err)
		}
	}
	meta, err := update(a.Info)
	if err != nil {
		return ArtifactInfo{}, err
	}
	if metadataSize(meta)+len(a.rec.ContentType) > MaxMetadataSize {
		return ArtifactInfo{}, ErrMetadataTooLarge
	}
	rec := *a.rec
	rec.Metadata = meta
	rec.Version = successor(a.rec.Version)
	ok := make([]bool, len(a.drives))
	var inline [][]byte
	if rec.IsInline {
		inline = make([][]byte, len(a.drives))
	}
	for j, h := range a.holders {
		ok[j] = h != nil && a.drives[j] != nil
		if ok[j] && inline != nil {
			inline[j] = h.Inline
		}
	}
	if err := hold.check(); err != nil {
		return ArtifactInfo{}, err
	}
	wq := max(rec.Data, rec.Parity+1)
	// The record the artifact was read from: the key's own, or in a
	// versioned container the version's (the key's pointer names the
	// version by id, which the successor version keeps).
	if err := e.artifactWrite(tenant, container, a.rkey, a.drives, wq).write(ctx, &rec, inline, ok); err != nil {
		return ArtifactInfo{}, fmt.Errorf("engine: update metadata: %w", err)
	}
	info := e.info(tenant, container, key, &rec)
	info.VersionID = a.Info.VersionID
	return info, nil
}

// moveFirst moves the version record rkey of key, found in an older map's
// set, into the current map, and opens version vid again there. A
// metadata update (tags, retention, legal hold) written into the older set
// could be undone by a move planned before it, which writes the version
// before it into the current set and then clears the older set (review H1
// of session 18); in a cluster the drives fence such a write anyway, and
// the update answered 503 until the migrator reached the key, for as long
// as a whole drain or join (probe 19). migrate waits for a move of the key
// in progress on this node; the leader's migrator moving it at the same
// time writes the same version, which the update then supersedes.
func (e *Engine) moveFirst(ctx context.Context, tenant, container, key, vid, rkey string) (*Artifact, error) {
	if _, err := e.migrate(ctx, tenant, container, rkey, nil); err != nil {
		return nil, fmt.Errorf("move the key into the current map first: %w", err)
	}
	return e.OpenVersion(ctx, tenant, container, key, vid)
}

// successor returns v plus one, as a 128-bit big-endian number.
func successor(v [16]byte) [16]byte {
	for i := len(v) - 1; i >= 0; i-- {
		v[i]++
		if v[i] != 0 {
			break
		}
	}
	return v
}
