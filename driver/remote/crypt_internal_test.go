package remote

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

func testRing(t testing.TB) *keyring {
	t.Helper()
	kek, dek := make([]byte, 32), make([]byte, 32)
	rand.Read(kek)
	rand.Read(dek)
	return newKeyring(dek, wrapDEK(kek, dek, "d"), kekID(kek))
}

// sealAll is the stored object of pt, as put sends it.
func sealAll(t testing.TB, k *keyring, rel string, pt []byte) []byte {
	t.Helper()
	b, err := io.ReadAll(newSealReader(k.object(rel), k.header, pt, 0, true))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readStored reads [off, off+n) of the plaintext of stored object obj as
// getBytes does: the stored range asked for, cut at the object's end as a
// provider answers it.
func readStored(k *keyring, rel string, obj []byte, off, n int64) ([]byte, error) {
	soff, sn, _ := storedRange(off, n)
	if soff >= int64(len(obj)) {
		return nil, errTruncated // 416
	}
	return openBytes(k.object(rel), obj[soff:min(int64(len(obj)), soff+sn)], off, n)
}

// TestEncSizes: the stored size is a function of the plaintext size and
// back, the object as sent has that size, and every range reads back.
func TestEncSizes(t *testing.T) {
	k := testRing(t)
	for _, p := range []int{0, 1, 27, 28, encChunk - 1, encChunk, encChunk + 1, 2 * encChunk, 3*encChunk + 5} {
		pt := make([]byte, p)
		rand.Read(pt)
		obj := sealAll(t, k, "log/x", pt)
		if int64(len(obj)) != storedSize(int64(p)) || plainSize(int64(len(obj))) != int64(p) {
			t.Fatalf("plaintext %d: stored %d, storedSize %d, plainSize %d", p, len(obj), storedSize(int64(p)), plainSize(int64(len(obj))))
		}
		for off := 0; off < p; off += max(1, p/7) {
			for _, n := range []int{1, encChunk - 1, encChunk, p - off} {
				if n <= 0 || off+n > p {
					continue
				}
				got, err := readStored(k, "log/x", obj, int64(off), int64(n))
				if err != nil || !bytes.Equal(got, pt[off:off+n]) {
					t.Fatalf("plaintext %d, range %d+%d: %v", p, off, n, err)
				}
			}
		}
	}
}

// TestEncMultipartParts: parts sealed separately (header in the first,
// chunk numbers running on, the final chunk in the last) make the same
// object format as one PUT.
func TestEncMultipartParts(t *testing.T) {
	k := testRing(t)
	part := 4 * encChunk
	pt := make([]byte, 2*part+encChunk+3)
	rand.Read(pt)
	var obj []byte
	for i := 0; i*part < len(pt); i++ {
		var h []byte
		if i == 0 {
			h = k.header
		}
		last := (i+1)*part >= len(pt)
		b, _ := io.ReadAll(newSealReader(k.object("obj/x"), h, pt[i*part:min(len(pt), (i+1)*part)], uint64(i*part/encChunk), last))
		obj = append(obj, b...)
	}
	if got, err := readStored(k, "obj/x", obj, 0, int64(len(pt))); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("multipart object: %v", err)
	}
}

// TestEncTruncatedAndMoved: an object cut at any chunk boundary, or at
// any byte of its last chunks, fails to read to its end; an object's
// bytes under another name (a key moved by whoever holds the bucket) do
// not read; a flipped byte anywhere in the chunks fails.
func TestEncTruncatedAndMoved(t *testing.T) {
	k := testRing(t)
	pt := make([]byte, 3*encChunk)
	rand.Read(pt)
	obj := sealAll(t, k, "log/a", pt)
	for cut := len(obj) - 1; cut >= encHeader; cut -= 97 {
		if got, err := readStored(k, "log/a", obj[:cut], 0, int64(len(pt))); !errors.Is(err, driver.ErrCorrupt) {
			t.Fatalf("cut to %d of %d: %d bytes, %v; want ErrCorrupt", cut, len(obj), len(got), err)
		}
	}
	for c := range 3 { // cut exactly after chunk c, read up to its end
		cut := encHeader + (c+1)*encFull
		if got, err := readStored(k, "log/a", obj[:cut], 0, int64((c+1)*encChunk)); !errors.Is(err, driver.ErrCorrupt) {
			t.Fatalf("cut at chunk boundary %d, read to it: %d bytes, %v; want ErrCorrupt", c+1, len(got), err)
		}
	}
	if _, err := readStored(k, "log/b", obj, 0, 10); !errors.Is(err, driver.ErrCorrupt) {
		t.Fatalf("object read under another name: %v", err)
	}
	for i := encHeader; i < len(obj); i += 1009 {
		bad := bytes.Clone(obj)
		bad[i] ^= 1
		if _, err := readStored(k, "log/a", bad, 0, int64(len(pt))); !errors.Is(err, driver.ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
}

// TestEncWrapAAD: a wrapped data key opens only for its drive id, and
// the KEK id names the KEK.
func TestEncWrapAAD(t *testing.T) {
	kek, dek := make([]byte, 32), make([]byte, 32)
	rand.Read(kek)
	rand.Read(dek)
	w := wrapDEK(kek, dek, "drive-a")
	c := &Config{KEK: kek, ID: "drive-a"}
	if got, old, err := unwrapDEK(c, w, ""); err != nil || old || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap: %v", err)
	}
	c.ID = "drive-b"
	if _, _, err := unwrapDEK(c, w, ""); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("unwrap for another drive id: %v", err)
	}
}

func benchRing(b *testing.B) (*keyring, []byte) {
	k := testRing(b)
	pt := make([]byte, 1<<20)
	rand.Read(pt)
	return k, pt
}

// BenchmarkEncSeal1MiB: sealing a 1 MiB shard (per core).
func BenchmarkEncSeal1MiB(b *testing.B) {
	k, pt := benchRing(b)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		r := newSealReader(k.object("obj/x"), k.header, pt, 0, true)
		io.Copy(io.Discard, r)
	}
}

// BenchmarkEncOpen1MiB: reading back a whole 1 MiB shard.
func BenchmarkEncOpen1MiB(b *testing.B) {
	k, pt := benchRing(b)
	obj := sealAll(b, k, "obj/x", pt)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := readStored(k, "obj/x", obj, 0, int64(len(pt))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncOpenRange4KiB: a 4 KiB ranged read inside one chunk (the
// bytes counted are the 4 KiB returned; the key derivation per read is
// included, as the driver derives it per request).
func BenchmarkEncOpenRange4KiB(b *testing.B) {
	k, pt := benchRing(b)
	obj := sealAll(b, k, "obj/x", pt)
	b.SetBytes(4 << 10)
	b.ReportAllocs()
	off := int64(0)
	for b.Loop() {
		if _, err := readStored(k, "obj/x", obj, off, 4<<10); err != nil {
			b.Fatal(err)
		}
		off = (off + 20<<10) % (1<<20 - 4<<10)
	}
}

// openBytes decrypts the stored bytes of the chunks from first (as read by
// a GET of storedRange) into the plaintext range [off, off+n).
func openBytes(aead cipher.AEAD, stored []byte, off, n int64) ([]byte, error) {
	r := newOpenReader(io.NopCloser(bytes.NewReader(stored)), aead, off, n)
	out := make([]byte, 0, n)
	for int64(len(out)) < n {
		if len(r.plain) == 0 {
			if r.err != nil {
				return nil, r.err
			}
			if r.plain, r.err = r.chunk(); r.err == nil && len(r.plain) == 0 {
				return nil, errTruncated
			}
		}
		out = append(out, r.plain...)
		r.plain = nil
	}
	return out, nil
}
