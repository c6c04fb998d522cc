package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/zeebo/xxh3"

	"github.com/vaultaire/vaultaire/driver"
)

// record is an artifact's metadata record as stored on each drive of its
// placement group. Records of one artifact version differ between drives
// only in Shard and Inline.
type record struct {
	Version     driver.Version
	Deleted     bool // a tombstone: hides older versions until healing removes it
	Size        int64
	ETag        string // hex MD5 of the bytes, or "md5-of-md5s-N" for multipart
	ContentType string
	Modified    int64 // unix nanoseconds
	Metadata    map[string]string
	Data        int    // k
	Parity      int    // m
	StripeSize  int64  // bytes
	PG          uint32 // the key's placement group: its drives hold the records and, unless striped, the shard files
	Shard       int    // index of the shard this drive holds
	Inline      []byte // this drive's whole shard file when the artifact is stored inline; nil otherwise
	IsInline    bool
	// Marker makes a live record a delete marker: a version of a
	// versioned key that says the key was deleted (version.go).
	Marker bool
	// Pointer makes the record at a versioned key's own index key name
	// its current version (Metadata[pointerTarget]) instead of holding
	// data; a deleted Pointer says the current version is a delete marker.
	Pointer bool
	// Parts are the erasure-coded pieces of the artifact's bytes, in order:
	// one for a plain Put, one per part for a multipart upload, none when
	// inline. Each is encoded on its own and has its own shard files.
	Parts []part
	// Striping (format 2, stripe.go): with Width > 1 part i's shard files
	// are in PG stripePGs(r)[i mod Width], drawn from the PGCount PGs of
	// the map written under by Seed, not in PG; Layout fingerprints
	// those PGs' drive sets then, so that a map that moves any of them
	// no longer counts the record as placed (placedIn) and migration
	// moves it. Width 0 or 1: every part is in PG (format 1).
	Seed    uint64
	Width   int
	PGCount int
	Layout  uint64
	// Offset (format 3) shifts the parts along the seed's PGs: part i
	// is in the (i+Offset) mod Width'th. Only the record of a multipart
	// upload's part n has one, (n-1) mod Width, so that parts 1, 2, ...
	// completed in order are where the artifact's record (Offset 0)
	// places them (multipart_move.go).
	Offset int
	// Prev (format 4) is, while migration moves the version onto a set
	// sharing this drive with the older set it leaves, the record this
	// one replaced there: the older placement's record of the same
	// version, whose shard files (or inline shard) stay until the move
	// is done. Reading the older set, the drive serves Prev (setLocation),
	// so the older set keeps its read quorum however few drives of the
	// new set hold the version yet (writeMoved). Prev has no Prev.
	Prev *record
}

// part is one separately encoded piece of an artifact.
type part struct {
	DataID [16]byte // random; names the part's shard files
	Size   int64    // bytes
	ETag   string   // hex MD5 of the part's bytes
}

// Record encoding: a magic byte, a format byte, then a short head (version,
// flags, size, ETag, modification time) with its own xxh3-64 checksum, then
// the other fields, then an xxh3-64 checksum of everything before it. The
// head is all a listing needs and fits in the first bytes that
// driver.ListRecords returns (driver.ListDataMax), so a listing never reads
// inline data. Formats are append-only: a new field gets a new format number
// and older formats keep decoding. The flags byte's bits 4 (Marker) and 8
// (Pointer) came later within format 1: records without them read as
// before. Format 2 appends the striping fields (Seed, Width, PGCount,
// Layout) after the parts; it is written only for striped records, so an
// unstriped record is byte for byte what format 1 wrote. Format 3 appends
// Offset to format 2, for the striped records of multipart parts only.
// Format 4 adds Prev to any of them, only while migration moves a version.
const (
	recordMagic         = 'V'
	recordFormat        = 1
	recordFormatStriped = 2
	recordFormatOffset  = 3 // format 2, then the Offset
	// recordFormatPrev: the fields of the format the record would have
	// without Prev (1 to 3, a uvarint, then that format's fields after
	// the parts), then Prev, marshalled, as a length-prefixed string.
	recordFormatPrev = 4
)

var errBadRecord = errors.New("engine: malformed record")

func (r *record) marshal() []byte {
	b := make([]byte, 0, 160+len(r.Inline)+len(r.ETag)+len(r.ContentType)+40*len(r.Parts))
	var hb [96]byte // the head, on the stack unless the ETag is long
	head := hb[:0]
	head = append(head, r.Version[:]...)
	flags := byte(0)
	if r.Deleted {
		flags |= 1
	}
	if r.IsInline {
		flags |= 2
	}
	if r.Marker {
		flags |= 4
	}
	if r.Pointer {
		flags |= 8
	}
	head = append(head, flags)
	head = binary.AppendVarint(head, r.Size)
	head = appendString(head, r.ETag)
	head = binary.AppendVarint(head, r.Modified)
	format := byte(recordFormat)
	if r.Width > 1 {
		format = recordFormatStriped
		if r.Offset != 0 {
			format = recordFormatOffset
		}
	}
	sub := format
	if r.Prev != nil {
		format = recordFormatPrev
	}
	b = append(b, recordMagic, format)
	b = binary.AppendUvarint(b, uint64(len(head)))
	b = append(b, head...)
	b = binary.BigEndian.AppendUint64(b, xxh3.Hash(b))
	b = appendString(b, r.ContentType)
	b = binary.AppendUvarint(b, uint64(len(r.Metadata)))
	var ks [8]string // the keys, on the stack unless there are more
	keys := ks[:0]
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, r.Metadata[k])
	}
	b = binary.AppendUvarint(b, uint64(r.Data))
	b = binary.AppendUvarint(b, uint64(r.Parity))
	b = binary.AppendVarint(b, r.StripeSize)
	b = binary.AppendUvarint(b, uint64(r.PG))
	b = binary.AppendUvarint(b, uint64(r.Shard))
	b = binary.AppendUvarint(b, uint64(len(r.Inline)))
	b = append(b, r.Inline...)
	b = binary.AppendUvarint(b, uint64(len(r.Parts)))
	for _, p := range r.Parts {
		b = append(b, p.DataID[:]...)
		b = binary.AppendVarint(b, p.Size)
		b = appendString(b, p.ETag)
	}
	if format == recordFormatPrev {
		b = binary.AppendUvarint(b, uint64(sub))
	}
	if sub >= recordFormatStriped {
		b = binary.BigEndian.AppendUint64(b, r.Seed)
		b = binary.AppendUvarint(b, uint64(r.Width))
		b = binary.AppendUvarint(b, uint64(r.PGCount))
		b = binary.BigEndian.AppendUint64(b, r.Layout)
	}
	if sub == recordFormatOffset {
		b = binary.AppendUvarint(b, uint64(r.Offset))
	}
	if format == recordFormatPrev {
		prev := *r.Prev
		prev.Prev = nil // one level only
		b = appendString(b, string(prev.marshal()))
	}
	return binary.BigEndian.AppendUint64(b, xxh3.Hash(b))
}

// splitHead checks the magic, format and head checksum of b and returns a
// decoder positioned after the head checksum, with the head fields in r.
func splitHead(b []byte, r *record) (decoder, error) {
	if len(b) < 3 || b[0] != recordMagic {
		return decoder{}, errBadRecord
	}
	if b[1] < recordFormat || b[1] > recordFormatPrev {
		return decoder{}, fmt.Errorf("%w: unknown format %d", errBadRecord, b[1])
	}
	n, w := binary.Uvarint(b[2:])
	if w <= 0 || n > uint64(len(b)) || 2+w+int(n)+8 > len(b) {
		return decoder{}, errBadRecord
	}
	end := 2 + w + int(n)
	if xxh3.Hash(b[:end]) != binary.BigEndian.Uint64(b[end:]) {
		return decoder{}, fmt.Errorf("%w: head checksum mismatch", errBadRecord)
	}
	h := decoder{b: b[2+w : end]}
	copy(r.Version[:], h.bytes(driver.VersionSize))
	flags := h.byte()
	r.Deleted, r.IsInline = flags&1 != 0, flags&2 != 0
	r.Marker, r.Pointer = flags&4 != 0, flags&8 != 0
	r.Size = h.varint()
	r.ETag = h.string()
	r.Modified = h.varint()
	if h.err != nil || len(h.b) != 0 {
		return decoder{}, errBadRecord
	}
	return decoder{b: b[end+8:]}, nil
}

// unmarshalHead decodes only the head of a record, as a listing returns it
// (possibly cut after the head).
func unmarshalHead(b []byte) (*record, error) {
	r := &record{}
	if _, err := splitHead(b, r); err != nil {
		return nil, err
	}
	return r, nil
}

// unmarshalRecord decodes b, verifying its checksums. The record's Inline
// aliases b, which the caller must therefore not modify afterwards (every
// caller decodes a record's Data as a driver returned it, its own copy).
func unmarshalRecord(b []byte) (*record, error) {
	r := &record{}
	if err := unmarshalRecordTo(b, r); err != nil {
		return nil, err
	}
	return r, nil
}

// unmarshalRecordTo is unmarshalRecord into r, a zero record the caller
// allocated (readRecordsWait: one allocation for a set's records).
func unmarshalRecordTo(b []byte, r *record) error {
	if len(b) < 8 {
		return errBadRecord
	}
	body, sum := b[:len(b)-8], binary.BigEndian.Uint64(b[len(b)-8:])
	if xxh3.Hash(body) != sum {
		return fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	d, err := splitHead(body, r)
	if err != nil {
		return err
	}
	r.ContentType = d.contentType()
	// Counts are checked against the bytes left (an entry takes at least
	// two, a part at least 18), so a hostile count cannot make the decoder
	// allocate for entries the record does not hold.
	if n := d.uvarint(); n > 0 && n < 1<<16 && n <= uint64(len(d.b))/2 {
		r.Metadata = make(map[string]string, n)
		for range n {
			k := d.string()
			r.Metadata[k] = d.string()
		}
	} else if n != 0 {
		d.err = errBadRecord
	}
	r.Data = int(d.uvarint())
	r.Parity = int(d.uvarint())
	r.StripeSize = d.varint()
	r.PG = uint32(d.uvarint())
	r.Shard = int(d.uvarint())
	// The inline shard, the largest field, is not copied: copied as a
	// string then as a []byte it was a third of the bytes a small GET
	// allocated (pprof, bench/RESULTS.md).
	if inline := d.view(); r.IsInline {
		r.Inline = inline[:len(inline):len(inline)]
		if r.Inline == nil {
			r.Inline = []byte{}
		}
	}
	if n := d.uvarint(); n > 0 && n <= maxParts && n <= uint64(len(d.b))/(16+2) {
		r.Parts = make([]part, n)
		for i := range r.Parts {
			copy(r.Parts[i].DataID[:], d.bytes(16))
			r.Parts[i].Size = d.varint()
			r.Parts[i].ETag = d.string()
		}
	} else if n != 0 {
		d.err = errBadRecord
	}
	sub := body[1]
	if sub == recordFormatPrev {
		if sub = byte(d.uvarint()); sub < recordFormat || sub > recordFormatOffset {
			d.err = errBadRecord
		}
	}
	if sub >= recordFormatStriped && d.err == nil {
		r.Seed = d.u64()
		w, pgs := d.uvarint(), d.uvarint()
		r.Layout = d.u64()
		if d.err == nil && (w < 2 || w > maxWidth || pgs < w || pgs > 1<<20) {
			d.err = errBadRecord
		}
		r.Width, r.PGCount = int(w), int(pgs)
	}
	if sub == recordFormatOffset && d.err == nil {
		if o := d.uvarint(); d.err == nil && (o == 0 || o >= uint64(r.Width)) {
			d.err = errBadRecord
		} else {
			r.Offset = int(o)
		}
	}
	if body[1] == recordFormatPrev && d.err == nil {
		prev := d.view()
		if d.err == nil && len(prev) > 1 && prev[1] == recordFormatPrev {
			d.err = errBadRecord // one level only
		} else if d.err == nil {
			if r.Prev, err = unmarshalRecord(prev); err != nil {
				return err
			}
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return errBadRecord
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// maxParts is the most parts a multipart upload may have, as in S3.
const maxParts = 10_000

// decoder reads fields, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = errBadRecord
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if v := d.bytes(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) byte() byte {
	if v := d.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.view()) }

// commonContentTypes are content types a record decodes to without a copy:
// most artifacts carry one (S3's default for a PUT without one first), and
// each record read made one more allocation for it.
var commonContentTypes = [...]string{"binary/octet-stream", "application/octet-stream"}

// contentType is string for a content type.
func (d *decoder) contentType() string {
	v := d.view()
	for _, c := range commonContentTypes {
		if string(v) == c {
			return c
		}
	}
	return string(v)
}

// view returns a length-prefixed byte string, aliasing the input.
func (d *decoder) view() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errBadRecord
		return nil
	}
	return d.bytes(int(n))
}
