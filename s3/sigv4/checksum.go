package sigv4

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"strings"
)

// CRC64NVMEPolynomial is the reflected CRC-64/NVME polynomial used by the
// x-amz-checksum-crc64nvme checksum.
const CRC64NVMEPolynomial = 0x9a6c9329ac4bc9b5

var (
	crc32cTable    = crc32.MakeTable(crc32.Castagnoli)
	crc64NVMETable = crc64.MakeTable(CRC64NVMEPolynomial)
)

type checksumAlg struct {
	name string // canonical upper-case name, e.g. "CRC32C"
	size int    // bytes
	new  func() hash.Hash
}

var checksumAlgs = [...]checksumAlg{
	{"CRC32", crc32.Size, func() hash.Hash { return crc32.NewIEEE() }},
	{"CRC32C", crc32.Size, func() hash.Hash { return crc32.New(crc32cTable) }},
	{"CRC64NVME", crc64.Size, func() hash.Hash { return crc64.New(crc64NVMETable) }},
	{"SHA1", sha1.Size, sha1.New},
	{"SHA256", sha256.Size, sha256.New},
}

// checksumAlgorithm finds an algorithm by name ("crc32c", "CRC32C") or by
// header name ("x-amz-checksum-crc32c").
func checksumAlgorithm(name string) (checksumAlg, bool) {
	if len(name) > len("x-amz-checksum-") && strings.EqualFold(name[:len("x-amz-checksum-")], "x-amz-checksum-") {
		name = name[len("x-amz-checksum-"):]
	}
	for _, a := range checksumAlgs {
		if strings.EqualFold(a.name, name) {
			return a, true
		}
	}
	return checksumAlg{}, false
}

// NewChecksum returns a hash for a flexible checksum algorithm: "CRC32",
// "CRC32C", "CRC64NVME", "SHA1" or "SHA256" (any case), or the matching
// header name such as "x-amz-checksum-crc32". Its Sum is the big-endian
// value whose base64 is sent in x-amz-checksum-*. Unknown algorithms give
// ErrUnsupportedChecksum.
func NewChecksum(algorithm string) (hash.Hash, error) {
	a, ok := checksumAlgorithm(algorithm)
	if !ok {
		return nil, fmt.Errorf("%w: algorithm %.40q", ErrUnsupportedChecksum, algorithm)
	}
	return a.new(), nil
}

// CheckChecksum compares the sum of h with want, the base64 value of an
// x-amz-checksum-* header or trailer. A mismatch gives ErrBadDigest; a
// value that is not base64 of the right size gives ErrUnsupportedChecksum.
func CheckChecksum(h hash.Hash, want string) error {
	got := h.Sum(nil)
	w, err := base64.StdEncoding.DecodeString(want)
	if err != nil || len(w) != len(got) {
		return fmt.Errorf("%w: invalid checksum value", ErrUnsupportedChecksum)
	}
	if string(w) != string(got) {
		return fmt.Errorf("%w: got %s, want %s", ErrBadDigest, base64.StdEncoding.EncodeToString(got), want)
	}
	return nil
}

func checkChecksumValue(a checksumAlg, v string) error {
	w, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(w) != a.size {
		return fmt.Errorf("%w: invalid %s value", ErrUnsupportedChecksum, a.name)
	}
	return nil
}
