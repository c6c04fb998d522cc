package placement

import (
	"encoding/binary"

	"github.com/zeebo/xxh3"
)

// DefaultPGCount is the number of placement groups of a new cluster.
const DefaultPGCount = 256

// MaxPGCount is the largest PG count NewMap and Map.Validate accept.
const MaxPGCount = 1 << 20

// PGOf returns the placement group of (tenant, container, key) among
// pgCount groups: the XXH3-64 hash of the encoding described in the package
// comment, modulo pgCount. pgCount is normally a power of two; PGOf panics if
// it is less than 1. The result is part of the on-disk format.
func PGOf(tenant, container, key string, pgCount int) uint32 {
	if pgCount < 1 {
		panic("placement: PGOf: pgCount must be at least 1")
	}
	return uint32(hashName(tenant, container, key) % uint64(pgCount))
}

// hashName returns XXH3-64 of appendName(nil, tenant, container, key)
// without allocating.
func hashName(tenant, container, key string) uint64 {
	var stack [256]byte
	if len(tenant)+len(container)+len(key)+2*binary.MaxVarintLen64 > len(stack) {
		return hashNameStream(tenant, container, key)
	}
	return xxh3.Hash(appendName(stack[:0], tenant, container, key))
}

// hashNameStream is hashName for long names: it feeds the key to a
// streaming hasher instead of copying it.
//
//go:noinline
func hashNameStream(tenant, container, key string) uint64 {
	var prefix [2*binary.MaxVarintLen64 + 256]byte
	var h xxh3.Hasher
	h.Reset()
	if len(tenant)+len(container) <= 256 {
		h.Write(appendName(prefix[:0], tenant, container, ""))
	} else {
		h.Write(binary.AppendUvarint(prefix[:0], uint64(len(tenant))))
		h.WriteString(tenant)
		h.Write(binary.AppendUvarint(prefix[:0], uint64(len(container))))
		h.WriteString(container)
	}
	h.WriteString(key)
	return h.Sum64()
}

// appendName appends the unambiguous hash input for an artifact name:
// uvarint(len(tenant)) tenant uvarint(len(container)) container key.
func appendName(dst []byte, tenant, container, key string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(tenant)))
	dst = append(dst, tenant...)
	dst = binary.AppendUvarint(dst, uint64(len(container)))
	dst = append(dst, container...)
	return append(dst, key...)
}

// score is the rendezvous weight of drive id for placement group pg.
func score(pg uint32, id DriveID) uint64 {
	return xxh3.HashStringSeed(string(id), uint64(pg))
}
