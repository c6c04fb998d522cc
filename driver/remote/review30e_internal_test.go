package remote

import (
	"bytes"
	"io"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// TestReview30eSealReaderPasses: a sealReader sends the same bytes on
// every pass the SDK makes (sign, send, retry after a Seek to 0 or to the
// middle of a chunk, reads of odd sizes): a chunk's nonce is never used
// for other bytes. Held when run.
func TestReview30eSealReaderPasses(t *testing.T) {
	k := &keyring{dek: bytes.Repeat([]byte{7}, 32)}
	aead := k.object("obj/0001/x-0000000000000001-i")
	pt := bytes.Repeat([]byte("0123456789abcdef"), 3*encChunk/16+5)
	s := newSealReader(aead, bytes.Repeat([]byte{1}, encHeader), pt, 4, true)
	first, err := io.ReadAll(s)
	if err != nil || int64(len(first)) != s.Len() {
		t.Fatalf("%d bytes, %v", len(first), err)
	}
	for _, off := range []int64{0, 1, int64(encHeader), int64(encHeader + 5), int64(encHeader + encFull - 1), int64(encHeader + encFull), s.Len() - 3} {
		if _, err := s.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, 997)
		for {
			n, err := s.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
		}
		if !bytes.Equal(got, first[off:]) {
			t.Fatalf("pass from %d differs", off)
		}
	}
	// Chunk i's nonces are distinct.
	seen := map[string]bool{}
	for i := 0; i+12 <= len(s.nonces); i += 12 {
		if seen[string(s.nonces[i:i+12])] {
			t.Fatal("a nonce repeats within an object")
		}
		seen[string(s.nonces[i:i+12])] = true
	}
}

// Review30eForgedLog is a plaintext log object holding one record put, as
// a provider can write it (the format is public; XXH3 is no MAC).
func Review30eForgedLog(key string, v driver.Version, data []byte) []byte {
	return encodeLog([]*entry{{op: opRecPut, key: key, version: v, data: data}})
}
