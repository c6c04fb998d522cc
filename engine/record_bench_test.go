package engine

import (
	"fmt"
	"testing"
)

// benchRecords are metadata records as Put writes them: a small inline
// artifact (2 KiB shard in the record) and a sharded one of 10 parts.
func benchRecords() map[string]*record {
	inline := &record{Size: 4096, ETag: "0123456789abcdef0123456789abcdef", ContentType: "application/octet-stream",
		Modified: 1_764_000_000_000_000_000, Metadata: map[string]string{"x-amz-meta-owner": "bench"},
		Data: 2, Parity: 2, StripeSize: 1 << 20, PG: 17, Shard: 1, Inline: make([]byte, 2048), IsInline: true}
	sharded := &record{Size: 10 << 20, ETag: "0123456789abcdef0123456789abcdef-10", ContentType: "video/mp4",
		Modified: 1_764_000_000_000_000_000, Data: 4, Parity: 2, StripeSize: 1 << 20, PG: 200, Shard: 5}
	for i := range 10 {
		sharded.Parts = append(sharded.Parts, part{DataID: [16]byte{byte(i)}, Size: 1 << 20, ETag: fmt.Sprintf("%032x", i)})
	}
	return map[string]*record{"inline": inline, "multipart10": sharded}
}

// BenchmarkRecord measures metadata record encoding and decoding, on the
// path of every put, get and listing.
func BenchmarkRecord(b *testing.B) {
	for name, r := range benchRecords() {
		data := r.marshal()
		b.Run("marshal/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				r.marshal()
			}
		})
		b.Run("unmarshal/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := unmarshalRecord(data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("unmarshalHead/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := unmarshalHead(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
