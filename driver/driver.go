// Package driver defines the Driver contract: the few operations the engine
// needs from anything that stores shards and metadata records (a local disk,
// a peer node's disk over RPC, a remote S3-compatible backend).
//
// A Driver stores two kinds of things:
//
//   - Shard files: opaque byte streams named by a Shard (a placement group
//     and a hex name). They are written once through a ShardWriter and become
//     visible atomically on Commit; an aborted or crashed write leaves nothing
//     visible under the name.
//   - Records: small values in a sorted index keyed by opaque strings. Each
//     record carries a Version; a Driver keeps only the newest version of a
//     key (last-writer-wins by Version, not by arrival order), so drives that
//     receive concurrent writes in different orders converge on the same
//     winner.
//
// Driver never interprets keys, record data or shard bytes: keys never become
// file paths. Implementations must be safe for concurrent use and honour ctx
// on every call.
package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// Sentinel errors returned (possibly wrapped) by every Driver.
var (
	// ErrNotFound means the shard file or record does not exist.
	ErrNotFound = errors.New("driver: not found")
	// ErrStale means a PutRecord carried a version older than the stored one;
	// nothing was changed.
	ErrStale = errors.New("driver: stale version")
	// ErrInvalidName means a Shard name or record key is not acceptable.
	ErrInvalidName = errors.New("driver: invalid name")
	// ErrOffline means the drive cannot serve requests (unreachable, failed,
	// closed).
	ErrOffline = errors.New("driver: offline")
	// ErrRemoved means the drive left the cluster for good (its node was
	// removed, `vaultd cluster remove`): nothing it held will be read
	// again. A cluster topology returns it for such a drive of an older
	// map, so that migration stops waiting for it.
	ErrRemoved = errors.New("driver: drive removed from the cluster")
	// ErrCorrupt means stored bytes failed an integrity check.
	ErrCorrupt = errors.New("driver: corrupt")
	// ErrForeignDrive means the drive is formatted for another cluster.
	ErrForeignDrive = errors.New("driver: drive belongs to another cluster")
	// ErrNoSpace means the drive has no room for the write (a full file
	// system or an exhausted quota). Nothing was changed; reads and
	// deletes may still succeed.
	ErrNoSpace = errors.New("driver: no space left on drive")
)

// DriveID names one drive in the cluster map. It is the only drive ID type
// of the module: placement.DriveID is an alias of it.
type DriveID string

// Class says what kind of device backs a drive. The cluster map records it
// per drive (placement.Drive.Class) and Info reports it.
type Class string

// Drive classes.
const (
	ClassLocal  Class = "local"  // a disk attached to a node of the cluster
	ClassRemote Class = "remote" // an S3-compatible backend outside the cluster
	ClassPeer   Class = "peer"   // another node's drive reached over the internode RPC
	ClassMem    Class = "mem"    // an in-memory drive (tests)
)

// VersionSize is the length in bytes of a Version.
const VersionSize = 16

// Version orders writes to one record key. Versions compare as big-endian
// byte strings; the zero Version is older than every other.
type Version [VersionSize]byte

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than w.
func (v Version) Compare(w Version) int { return bytes.Compare(v[:], w[:]) }

// IsZero reports whether v is the zero Version.
func (v Version) IsZero() bool { return v == Version{} }

// String returns v in hex.
func (v Version) String() string { return fmt.Sprintf("%x", v[:]) }

// Shard names one shard file on a drive: PG is the placement group it belongs
// to and Name is a lowercase hex string (16 to 128 characters) chosen by the
// engine, typically a hash of the artifact identity and version.
type Shard struct {
	PG   uint32
	Name string
}

// Validate reports ErrInvalidName if s.Name is not 16 to 128 lowercase hex
// characters.
func (s Shard) Validate() error {
	if len(s.Name) < 16 || len(s.Name) > 128 {
		return fmt.Errorf("%w: shard name length %d", ErrInvalidName, len(s.Name))
	}
	for i := 0; i < len(s.Name); i++ {
		c := s.Name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: shard name %q", ErrInvalidName, s.Name)
		}
	}
	return nil
}

// ListDataMax is the most bytes of a record's Data that ListRecords
// returns.
const ListDataMax = 1024

// MaxKeySize is the longest record key a Driver must accept, in bytes.
const MaxKeySize = 4096

// Record is one entry of a drive's sorted index.
type Record struct {
	Key       string
	Version   Version
	Data      []byte // opaque to the Driver
	Truncated bool   // set by ListRecords when Data was cut to ListDataMax bytes
}

// CutForList returns r as ListRecords returns it: Data cut to ListDataMax
// bytes, Truncated set if it was longer.
func (r Record) CutForList() Record {
	if len(r.Data) > ListDataMax {
		r.Data, r.Truncated = r.Data[:ListDataMax:ListDataMax], true
	}
	return r
}

// Usage describes a drive's capacity in bytes.
type Usage struct {
	Total uint64 // bytes on the file system or backend, 0 if unknown
	Free  uint64 // bytes available, 0 if unknown
	Used  uint64 // bytes used by this drive's shard files and index
}

// Info describes a drive.
type Info struct {
	ID        DriveID
	ClusterID string
	Class     Class
	Usage     Usage
}

// ShardWriter receives the bytes of one shard file. Nothing is visible under
// the shard's name until Commit returns nil; after a nil Commit the bytes are
// on stable storage. Abort discards the write and is safe to call after
// Commit (it does nothing then) and more than once. Exactly one of Commit or
// Abort must eventually be called; Commit after Abort, or a second Commit,
// fails. Write is bound to the ctx given to CreateShard.
type ShardWriter interface {
	io.Writer
	Commit(ctx context.Context) error
	Abort() error
}

// Driver stores shard files and a sorted index of records.
// Implementations must be safe for concurrent use.
type Driver interface {
	// Info returns the drive's identity and usage. It is also the health
	// check: an error means the drive cannot serve.
	Info(ctx context.Context) (Info, error)

	// CreateShard starts writing shard s. Committing replaces any existing
	// file of the same name.
	CreateShard(ctx context.Context, s Shard) (ShardWriter, error)
	// ReadShard returns length bytes of shard s starting at off; length -1
	// means to the end. Reading past the end yields the bytes up to the
	// end, then io.ErrUnexpectedEOF or the end of the stream; the caller
	// verifies what it reads. The returned reader must be closed.
	ReadShard(ctx context.Context, s Shard, off, length int64) (io.ReadCloser, error)
	// DeleteShard removes shard s. Deleting a missing shard returns
	// ErrNotFound.
	DeleteShard(ctx context.Context, s Shard) error

	// PutRecord stores r unless the stored record under r.Key has a newer
	// Version, in which case it returns ErrStale and changes nothing. An
	// equal Version replaces the stored data. It returns the record it
	// replaced (ok false if there was none; the zero Record with ErrStale).
	// The record is on stable storage when PutRecord returns nil.
	PutRecord(ctx context.Context, r Record) (prev Record, ok bool, err error)
	// GetRecord returns the record under key or ErrNotFound.
	GetRecord(ctx context.Context, key string) (Record, error)
	// DeleteRecord removes the record under key if its Version is v (any
	// Version when v is zero). It returns ErrNotFound if there is no such
	// record and ErrStale if the stored Version differs.
	DeleteRecord(ctx context.Context, key string, v Version) error
	// ListRecords returns up to limit records whose keys start with prefix
	// and sort strictly after after, in ascending byte order of key. A
	// limit below 1 is an error. The Data of a listed record holds at most
	// its first ListDataMax bytes (Truncated says when it was cut), so a
	// listing's memory never depends on record size; GetRecord returns it
	// whole. A record whose data the drive knows lost may be listed with
	// its Version, no Data and Truncated set: its GetRecord then reports
	// ErrCorrupt (driver/local, review 29q M1).
	ListRecords(ctx context.Context, prefix, after string, limit int) ([]Record, error)
}

// ValidateKey reports ErrInvalidName if key is empty or longer than
// MaxKeySize.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeySize {
		return fmt.Errorf("%w: record key length %d", ErrInvalidName, len(key))
	}
	return nil
}

// uncachedKey is the context key of Uncached's mark.
type uncachedKey struct{}

// Uncached returns ctx marked so that a drive answers record reads made
// with it from its storage, not from a cache of records it read before
// (driver/local's record cache), nor from memory without a call
// (PeekRecord): the reads of a scrubber, and of the repairs and checks it
// makes, which look for rot on the disk. This mark does not cross the
// internode RPC; each node scrubs its own drives.
func Uncached(ctx context.Context) context.Context {
	return context.WithValue(ctx, uncachedKey{}, true)
}

// IsUncached reports whether ctx carries Uncached's mark.
func IsUncached(ctx context.Context) bool {
	v, _ := ctx.Value(uncachedKey{}).(bool)
	return v
}

// FillKey is the context key of a read that serves a client's GET or
// HEAD: a drive may keep the records such reads fetch, for the next
// (driver/local's record cache), and fills its cache from no other read
// (a listing's, a delete's or a heal's lookups would only push the hot
// records out and grow the process). Mark a context with WithFill, or
// answer FillKey{} with true from a Context's Value (the engine's
// serving-read context does, without another allocation). The mark
// crosses the internode RPC (driver/peer's GetRecord), so that a drive
// of a set is filled by the GETs of every node, not only its own's.
type FillKey struct{}

// WithoutFill returns ctx marked so that its reads fill no cache, even
// the serving reads made with it (a background scan's, such as the
// lifecycle's tag lookups: they would push the hot records out).
func WithoutFill(ctx context.Context) context.Context {
	return context.WithValue(ctx, FillKey{}, false)
}

// WithFill returns ctx marked as FillKey says.
func WithFill(ctx context.Context) context.Context {
	return context.WithValue(ctx, FillKey{}, true)
}

// Fills reports whether ctx carries FillKey's mark (and not Uncached's).
func Fills(ctx context.Context) bool {
	v, _ := ctx.Value(FillKey{}).(bool)
	return v && !IsUncached(ctx)
}
