package erasure

import (
	"fmt"

	"github.com/zeebo/xxh3"
)

// ChecksumSize is the length in bytes of the checksum that precedes every
// shard block: an xxh3-128 digest of the block's data.
const ChecksumSize = 16

// DefaultStripeSize is the default number of artifact bytes in one stripe.
const DefaultStripeSize = 1 << 20

// Layout describes how an artifact of Size bytes is cut into stripes of
// StripeSize bytes and each stripe into Data data shard blocks plus Parity
// parity shard blocks. Every shard file is the concatenation of its blocks,
// one per stripe, each block being a ChecksumSize checksum followed by the
// block's data. All stripes but the last are full, so the offset of a
// stripe's block in a shard file is a simple product.
type Layout struct {
	Data, Parity int
	StripeSize   int64 // bytes of artifact data per stripe
	Size         int64 // bytes of artifact data in all
}

// Validate reports whether l is usable.
func (l Layout) Validate() error {
	switch {
	case l.Data < 1 || l.Parity < 0 || l.Data+l.Parity > 256:
		return fmt.Errorf("erasure: invalid shard counts %d+%d", l.Data, l.Parity)
	case l.StripeSize < int64(l.Data) || l.StripeSize > 64<<20:
		return fmt.Errorf("erasure: invalid stripe size %d", l.StripeSize)
	case l.Size < 0:
		return fmt.Errorf("erasure: negative size %d", l.Size)
	}
	return nil
}

// Shards returns the number of shards, Data+Parity.
func (l Layout) Shards() int { return l.Data + l.Parity }

// Stripes returns the number of stripes; 0 for an empty artifact.
func (l Layout) Stripes() int64 { return (l.Size + l.StripeSize - 1) / l.StripeSize }

// StripeLen returns the number of artifact bytes in stripe i.
func (l Layout) StripeLen(i int64) int64 {
	return min(l.StripeSize, l.Size-i*l.StripeSize)
}

// BlockDataSize returns the data length of each shard block of stripe i.
func (l Layout) BlockDataSize(i int64) int64 {
	return blockDataSize(l.StripeLen(i), l.Data)
}

// BlockSize returns the length of each shard block of stripe i on disk,
// checksum included.
func (l Layout) BlockSize(i int64) int64 { return ChecksumSize + l.BlockDataSize(i) }

// ShardOffset returns the offset of stripe i's block in every shard file.
// ShardOffset(Stripes()) is the size of a shard file.
func (l Layout) ShardOffset(i int64) int64 {
	return i * (ChecksumSize + blockDataSize(l.StripeSize, l.Data))
}

// ShardSize returns the size in bytes of every shard file.
func (l Layout) ShardSize() int64 {
	n := l.Stripes()
	if n == 0 {
		return 0
	}
	return l.ShardOffset(n-1) + l.BlockSize(n-1)
}

func blockDataSize(stripeLen int64, k int) int64 {
	return (stripeLen + int64(k) - 1) / int64(k)
}

// checksum returns the xxh3-128 digest of data.
func checksum(data []byte) [ChecksumSize]byte {
	return xxh3.Hash128(data).Bytes()
}
