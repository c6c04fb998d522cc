package s3

import (
	"hash/crc32"
	"hash/crc64"
	"math/rand/v2"
	"testing"
)

func TestCRCCombine(t *testing.T) {
	nvme := crc64.MakeTable(0x9a6c9329ac4bc9b5)
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	crcs := map[string]func([]byte) uint64{
		"crc32":     func(b []byte) uint64 { return uint64(crc32.ChecksumIEEE(b)) },
		"crc32c":    func(b []byte) uint64 { return uint64(crc32.Checksum(b, castagnoli)) },
		"crc64nvme": func(b []byte) uint64 { return crc64.Checksum(b, nvme) },
	}
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for name, crc := range crcs {
		c := crcPolynomials[name]
		for _, split := range []int{0, 1, 7, 4096, 50_000, 99_999, 100_000} {
			a, b := data[:split], data[split:]
			got := crcCombine(crc(a), crc(b), int64(len(b)), c.poly, c.width)
			if want := crc(data); got != want {
				t.Errorf("%s split at %d: combined %x, want %x", name, split, got, want)
			}
		}
	}
}
