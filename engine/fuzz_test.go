package engine

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/zeebo/xxh3"

	"github.com/vaultaire/vaultaire/driver"
)

// allocated returns the bytes f allocates on the heap. The fuzz engine's
// own goroutines allocate a little meanwhile; callers bound generously.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// maxDecodeAlloc bounds what decoding a record of n bytes may allocate:
// the decoded fields are at most a copy of the input, plus a small
// constant for the record itself and its map and slice headers. A hostile
// count prefix must not make it allocate for entries the input cannot hold.
func maxDecodeAlloc(n int) uint64 { return 256<<10 + 16*uint64(n) }

// sealRecord frames head and rest as a record with valid checksums, so the
// fuzzer reaches the field decoding behind them.
func sealRecord(format byte, head, rest []byte) []byte {
	b := []byte{recordMagic, format}
	b = binary.AppendUvarint(b, uint64(len(head)))
	b = append(b, head...)
	b = binary.BigEndian.AppendUint64(b, xxh3.Hash(b))
	b = append(b, rest...)
	return binary.BigEndian.AppendUint64(b, xxh3.Hash(b))
}

// checkDecode decodes b both ways: no panic, bounded allocation, errors
// wrap errBadRecord, the head agrees with the record, and a decoded record
// re-encodes to bytes that decode to it again.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	var r, h *record
	var err, herr error
	if n := allocated(func() { r, err = unmarshalRecord(b) }); n > maxDecodeAlloc(len(b)) {
		t.Fatalf("decoding %d bytes allocated %d bytes", len(b), n)
	}
	if n := allocated(func() { h, herr = unmarshalHead(b) }); n > maxDecodeAlloc(len(b)) {
		t.Fatalf("decoding the head of %d bytes allocated %d bytes", len(b), n)
	}
	if herr != nil && !errors.Is(herr, errBadRecord) {
		t.Fatalf("unmarshalHead: %v does not wrap errBadRecord", herr)
	}
	if err != nil {
		if !errors.Is(err, errBadRecord) {
			t.Fatalf("unmarshalRecord: %v does not wrap errBadRecord", err)
		}
		return
	}
	if herr != nil {
		t.Fatalf("the record decodes but its head does not: %v", herr)
	}
	if h.Version != r.Version || h.Deleted != r.Deleted || h.IsInline != r.IsInline || h.Size != r.Size || h.ETag != r.ETag || h.Modified != r.Modified {
		t.Fatalf("head %+v disagrees with record %+v", h, r)
	}
	if !r.IsInline && len(r.Inline) != 0 {
		t.Fatalf("a record not inline decoded %d inline bytes", len(r.Inline))
	}
	again, err := unmarshalRecord(r.marshal())
	if err != nil {
		t.Fatalf("re-encoded record does not decode: %v", err)
	}
	if !reflect.DeepEqual(again, r) {
		t.Fatalf("re-encoding changed the record:\n got %+v\nwant %+v", again, r)
	}
}

// FuzzUnmarshalRecord feeds arbitrary bytes to the record decoders, as a
// corrupt or hostile drive could return them.
func FuzzUnmarshalRecord(f *testing.F) {
	for _, r := range fuzzRecords() {
		b := r.marshal()
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{recordMagic, recordFormat, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
	})
}

// FuzzUnmarshalSealedRecord is FuzzUnmarshalRecord behind valid checksums:
// head and rest are framed as a record, so every count and length prefix
// the decoder trusts is under the fuzzer's control.
func FuzzUnmarshalSealedRecord(f *testing.F) {
	for _, r := range fuzzRecords() {
		b := r.marshal()
		n, w := binary.Uvarint(b[2:])
		head := b[2+w : 2+w+int(n)]
		f.Add(head, b[2+w+int(n)+8:len(b)-8])
	}
	head := make([]byte, driver.VersionSize+1, 64)
	head = append(head, 0, 0, 0)
	// Counts claiming more metadata entries and parts than the bytes hold.
	f.Add(head, binary.AppendUvarint([]byte{0}, 1<<16-1))
	f.Add(head, append(binary.AppendUvarint([]byte{0, 0}, 0), 0, 0, 0, 0, 0, 0x90, 0x4e))
	f.Add(head, binary.AppendUvarint([]byte{0}, 1<<62))
	f.Fuzz(func(t *testing.T, head, rest []byte) {
		for f := byte(recordFormat); f <= recordFormatPrev; f++ {
			checkDecode(t, sealRecord(f, head, rest))
		}
	})
}

func fuzzRecords() []*record {
	v := driver.Version{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	return []*record{
		{Version: v, Deleted: true, Modified: 1},
		{Version: v, Size: 5, ETag: "5d41402abc4b2a76b9719d911017c592", ContentType: "text/plain", Modified: 1 << 60,
			Metadata: map[string]string{"a": "b", "x-amz-checksum-crc32": "AAAAAA=="}, Data: 4, Parity: 2, StripeSize: 1 << 20,
			PG: 77, Shard: 3, Inline: []byte("shard"), IsInline: true},
		{Version: v, Size: 10 << 20, ETag: "0123456789abcdef0123456789abcdef-2", ContentType: "video/mp4", Data: 4, Parity: 2,
			StripeSize: 1 << 20, PG: 1 << 20, Shard: 5, Parts: []part{{DataID: [16]byte{1}, Size: 5 << 20, ETag: "aa"}, {DataID: [16]byte{2}, Size: 5 << 20}}},
		// Striped (format 2, stripe.go).
		{Version: v, Size: 12 << 20, ETag: "0123456789abcdef0123456789abcdef", Data: 2, Parity: 1, StripeSize: 1 << 20, PG: 9, Shard: 1,
			Parts: []part{{DataID: [16]byte{3}, Size: 4 << 20}, {DataID: [16]byte{4}, Size: 4 << 20}, {DataID: [16]byte{5}, Size: 4 << 20}},
			Seed:  1<<63 + 5, Width: 8, PGCount: 256, Layout: 0xfeedface},
		// A striped multipart part (format 3, multipart.go).
		{Version: v, Size: 5 << 20, ETag: "0123456789abcdef0123456789abcdef", Data: 2, Parity: 1, StripeSize: 1 << 20, PG: 9, Shard: 2,
			Parts: []part{{DataID: [16]byte{6}, Size: 5 << 20, ETag: "0123456789abcdef0123456789abcdef"}},
			Seed:  7, Width: 8, PGCount: 256, Layout: 0xfeedface, Offset: 5},
		// Moved onto a set sharing the drive with the older one (format
		// 4, migrate.go): striped with an Offset, the older placement's
		// record unstriped; inline, the older one inline too.
		{Version: v, Size: 5 << 20, ETag: "0123456789abcdef0123456789abcdef", Data: 3, Parity: 2, StripeSize: 1 << 20, PG: 9, Shard: 2,
			Parts: []part{{DataID: [16]byte{7}, Size: 5 << 20}}, Seed: 7, Width: 8, PGCount: 256, Layout: 0xfeedface, Offset: 5,
			Prev: &record{Version: v, Size: 5 << 20, ETag: "0123456789abcdef0123456789abcdef", Data: 4, Parity: 2, StripeSize: 1 << 20, PG: 9, Shard: 4,
				Parts: []part{{DataID: [16]byte{6}, Size: 5 << 20}}}},
		{Version: v, Size: 5, ETag: "5d41402abc4b2a76b9719d911017c592", Data: 3, Parity: 2, StripeSize: 1 << 20, PG: 77, Shard: 1,
			Inline: []byte("new"), IsInline: true,
			Prev: &record{Version: v, Size: 5, ETag: "5d41402abc4b2a76b9719d911017c592", Data: 4, Parity: 2, StripeSize: 1 << 20, PG: 77, Shard: 3,
				Inline: []byte("old"), IsInline: true}},
	}
}

// FuzzRecordRoundTrip builds records from fuzzed fields: each must decode
// to itself, its head must decode from the first bytes alone, and every
// truncation of it must be refused.
func FuzzRecordRoundTrip(f *testing.F) {
	for _, r := range fuzzRecords() {
		var mk, mv string
		for k, v := range r.Metadata {
			mk, mv = k, v
		}
		var pe string
		if len(r.Parts) > 0 {
			pe = r.Parts[0].ETag
		}
		f.Add(r.Version[:], r.Deleted, r.IsInline, r.Size, r.ETag, r.ContentType, r.Modified, mk, mv,
			uint16(r.Data), uint16(r.Parity), r.StripeSize, r.PG, uint16(r.Shard), r.Inline, uint16(len(r.Parts)), pe)
	}
	f.Fuzz(func(t *testing.T, version []byte, deleted, inline bool, size int64, etag, ctype string, modified int64,
		mk, mv string, data, parity uint16, stripe int64, pg uint32, shard uint16, inl []byte, nparts uint16, partETag string) {
		r := &record{Deleted: deleted, IsInline: inline, Size: size, ETag: etag, ContentType: ctype, Modified: modified,
			Data: int(data), Parity: int(parity), StripeSize: stripe, PG: pg, Shard: int(shard)}
		copy(r.Version[:], version)
		if mk != "" || mv != "" {
			r.Metadata = map[string]string{mk: mv, mk + "2": mv + mv}
		}
		if inline {
			r.Inline = inl
			if r.Inline == nil {
				r.Inline = []byte{}
			}
		}
		for i := range int(nparts) % (maxParts + 1) {
			r.Parts = append(r.Parts, part{DataID: [16]byte{byte(i), byte(i >> 8)}, Size: size + int64(i), ETag: partETag})
		}
		b := r.marshal()
		got, err := unmarshalRecord(b)
		if err != nil {
			t.Fatalf("unmarshalRecord: %v", err)
		}
		if inline && len(got.Inline) == 0 {
			got.Inline = []byte{} // an empty inline shard decodes as nil or empty alike
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
		n, w := binary.Uvarint(b[2:])
		headEnd := 2 + w + int(n) + 8
		h, err := unmarshalHead(b[:headEnd])
		if err != nil {
			t.Fatalf("unmarshalHead of the first %d bytes: %v", headEnd, err)
		}
		if h.Version != r.Version || h.Deleted != r.Deleted || h.IsInline != r.IsInline || h.Size != r.Size || h.ETag != r.ETag || h.Modified != r.Modified {
			t.Fatalf("head %+v, want the head of %+v", h, r)
		}
		for _, cut := range []int{0, 1, headEnd - 1, headEnd, len(b) - 9, len(b) - 1} {
			if cut >= 0 && cut < len(b) {
				if _, err := unmarshalRecord(b[:cut]); err == nil {
					t.Fatalf("the first %d of %d bytes decode", cut, len(b))
				}
			}
		}
	})
}

// FuzzNames checks the tenant, container and key rules: no panic, the
// documented limits hold for every accepted name, accepted names make
// index keys a drive accepts and that split back into the same names
// (no two artifacts share a record), and the shard names made from them
// are hex that stays inside a drive's directory whatever the key holds.
func FuzzNames(f *testing.F) {
	for _, s := range [][3]string{
		{"alice", "photos", "a/b/c.jpg"}, {"t", "c", "../../../etc/passwd"}, {"t", "c", "/"}, {"t", "c", "a\x00b"},
		{"t", "c/d", "k"}, {"t\x01", "c", "k"}, {"t", "c", "\xff\xfe"}, {"t", "c", strings.Repeat("k", MaxKeyLen+1)},
		{"t", "c", "%2e%2e/%00"}, {"", "c", "k"}, {"t", "", "k"}, {"t", "c", ""}, {"ü", "日本", "ключ\u202e"},
	} {
		f.Add(s[0], s[1], s[2], []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, tenant, container, key string, id []byte) {
		errT, errC, errK := validTenant(tenant), validContainer(container), validKey(key)
		for _, err := range []error{errT, errC, errK} {
			if err != nil && !errors.Is(err, ErrInvalidName) && !errors.Is(err, ErrKeyTooLong) {
				t.Fatalf("%v wraps neither ErrInvalidName nor ErrKeyTooLong", err)
			}
		}
		if errK == nil && (key == "" || len(key) > MaxKeyLen || !utf8.ValidString(key) || strings.Contains(key, "\x00")) {
			t.Fatalf("key %q accepted", key)
		}
		for _, n := range []struct {
			name string
			err  error
			max  int
		}{{tenant, errT, maxTenantLen}, {container, errC, maxContainerLen}} {
			if n.err == nil && (n.name == "" || len(n.name) > n.max || !utf8.ValidString(n.name) || strings.ContainsAny(n.name, "/\x00") || hasControl(n.name)) {
				t.Fatalf("name %q accepted", n.name)
			}
		}
		if errT != nil || errC != nil || errK != nil {
			return
		}
		ik := indexPrefix(tenant, container) + key
		if err := driver.ValidateKey(ik); err != nil {
			t.Fatalf("index key of %q/%q/%q refused by drives: %v", tenant, container, key, err)
		}
		parts := strings.SplitN(ik, "\x00", 3)
		if len(parts) != 3 || parts[0] != tenant || parts[1] != container || parts[2] != key {
			t.Fatalf("index key %q splits into %q", ik, parts)
		}
		var dataID [16]byte
		copy(dataID[:], id)
		s := shardOf(tenant, container, key, 7, dataID)
		if err := s.Validate(); err != nil {
			t.Fatalf("shard of %q: %v", key, err)
		}
		root := filepath.Join("drive", "shards")
		p := filepath.Join(root, s.Name[:2], s.Name)
		if rel, err := filepath.Rel(root, p); err != nil || strings.HasPrefix(rel, "..") || filepath.Base(p) != s.Name {
			t.Fatalf("shard name %q leaves the shard directory: %s", s.Name, p)
		}
	})
}
