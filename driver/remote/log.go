package remote

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/zeebo/xxh3"

	"github.com/vaultaire/vaultaire/driver"
)

// Log object format: magic | uint32 index length | uint64 XXH3(index) | index | data.
const (
	logMagic  = "VLTLOG01"
	logHeader = len(logMagic) + 4 + 8
)

// Entry kinds of a log object's index.
const (
	opRecPut      byte = 1 // key, version, data
	opRecDel      byte = 2 // key, version deleted
	opShardInline byte = 3 // pg, name, offset and length in the data section
	opShardObject byte = 4 // pg, name, size, object key (relative to the prefix)
	opShardDel    byte = 5 // pg, name
	opShardRef    byte = 6 // snapshots: pg, name, size, offset, inline flag, object key
)

// entry is one mutation in a log object.
type entry struct {
	op      byte
	key     string // record key, or large shard's object key
	version driver.Version
	data    []byte // record data, or inline shard bytes
	shard   driver.Shard
	off     int64 // opShardInline: offset in the data section (set by encode / decode)
	size    int64 // shard size
	inline  bool  // opShardRef: the shard's bytes are inside a log object
}

// encodeLog builds a log object from entries; it sets off of inline shard
// entries to their place in the data section.
func encodeLog(entries []*entry) []byte {
	idx := binary.AppendUvarint(nil, uint64(len(entries)))
	var dataLen int64
	for _, e := range entries {
		idx = append(idx, e.op)
		switch e.op {
		case opRecPut:
			idx = appendBytes(idx, []byte(e.key))
			idx = append(idx, e.version[:]...)
			idx = appendBytes(idx, e.data)
		case opRecDel:
			idx = appendBytes(idx, []byte(e.key))
			idx = append(idx, e.version[:]...)
		case opShardInline:
			e.off, e.size = dataLen, int64(len(e.data))
			dataLen += e.size
			idx = appendShard(idx, e.shard)
			idx = binary.AppendUvarint(idx, uint64(e.off))
			idx = binary.AppendUvarint(idx, uint64(e.size))
		case opShardObject:
			idx = appendShard(idx, e.shard)
			idx = binary.AppendUvarint(idx, uint64(e.size))
			idx = appendBytes(idx, []byte(e.key))
		case opShardDel:
			idx = appendShard(idx, e.shard)
		case opShardRef:
			idx = appendShard(idx, e.shard)
			idx = binary.AppendUvarint(idx, uint64(e.size))
			idx = binary.AppendUvarint(idx, uint64(e.off))
			idx = append(idx, boolByte(e.inline))
			idx = appendBytes(idx, []byte(e.key))
		}
	}
	out := make([]byte, 0, logHeader+len(idx)+int(dataLen))
	out = append(out, logMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(idx)))
	out = binary.BigEndian.AppendUint64(out, xxh3.Hash(idx))
	out = append(out, idx...)
	for _, e := range entries {
		if e.op == opShardInline {
			out = append(out, e.data...)
		}
	}
	return out
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendShard(b []byte, s driver.Shard) []byte {
	b = binary.AppendUvarint(b, uint64(s.PG))
	return appendBytes(b, []byte(s.Name))
}

// parseHeader returns the index length and checksum from a log object's
// first logHeader bytes.
func parseHeader(b []byte) (n int, sum uint64, err error) {
	if len(b) < logHeader || string(b[:len(logMagic)]) != logMagic {
		return 0, 0, fmt.Errorf("log object header: %w", driver.ErrCorrupt)
	}
	return int(binary.BigEndian.Uint32(b[len(logMagic):])), binary.BigEndian.Uint64(b[len(logMagic)+4:]), nil
}

var errShort = errors.New("truncated log index")

// decodeIndex parses a log object's index. Inline shard offsets are
// relative to the data section, which starts at logHeader+len(idx).
func decodeIndex(idx []byte, sum uint64) ([]entry, error) {
	if xxh3.Hash(idx) != sum {
		return nil, fmt.Errorf("log index checksum: %w", driver.ErrCorrupt)
	}
	d := decoder{b: idx}
	n := d.uvarint()
	if n > uint64(len(idx)) {
		return nil, fmt.Errorf("log index: %d entries: %w", n, driver.ErrCorrupt)
	}
	out := make([]entry, 0, n)
	for range n {
		e := entry{op: d.byte()}
		switch e.op {
		case opRecPut:
			e.key = string(d.bytes())
			copy(e.version[:], d.fixed(driver.VersionSize))
			e.data = append([]byte{}, d.bytes()...)
		case opRecDel:
			e.key = string(d.bytes())
			copy(e.version[:], d.fixed(driver.VersionSize))
		case opShardInline:
			e.shard = d.shard()
			e.off, e.size = int64(d.uvarint()), int64(d.uvarint())
		case opShardObject:
			e.shard = d.shard()
			e.size = int64(d.uvarint())
			e.key = string(d.bytes())
		case opShardDel:
			e.shard = d.shard()
		case opShardRef:
			e.shard = d.shard()
			e.size, e.off = int64(d.uvarint()), int64(d.uvarint())
			e.inline = d.byte() == 1
			e.key = string(d.bytes())
		default:
			d.err = fmt.Errorf("log index: unknown entry kind %d", e.op)
		}
		if d.err != nil {
			return nil, fmt.Errorf("%w: %w", d.err, driver.ErrCorrupt)
		}
		out = append(out, e)
	}
	return out, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) fixed(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.err = errShort
		return make([]byte, n)
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	return d.fixed(int(n))
}

func (d *decoder) shard() driver.Shard {
	pg := d.uvarint()
	return driver.Shard{PG: uint32(pg), Name: string(d.bytes())}
}
