package placement

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/zeebo/xxh3"
)

// decodeName is the inverse of appendName; that it exists and round-trips is
// what makes the hash input unambiguous.
func decodeName(b []byte) (tenant, container, key string, ok bool) {
	field := func() (string, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", false
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, true
	}
	if tenant, ok = field(); !ok {
		return
	}
	if container, ok = field(); !ok {
		return
	}
	return tenant, container, string(b), true
}

type name struct{ tenant, container, key string }

// Pairs of names a naive concatenation or separator scheme would confuse.
var confusable = [][2]name{
	{{"a", "bc", "d"}, {"ab", "c", "d"}},
	{{"a", "b", "cd"}, {"a", "bc", "d"}},
	{{"", "a", "b"}, {"a", "", "b"}},
	{{"", "", "ab"}, {"a", "b", ""}},
	{{"t", "c", "\x00k"}, {"t", "c\x00", "k"}},
	{{"t", "c", "/k"}, {"t", "c/", "k"}},
	{{"t", "\x01c", "k"}, {"t\x01", "c", "k"}},         // bytes that look like a length
	{{"t", "c", "\x01\x00k"}, {"t", "c\x01\x00", "k"}}, // NUL and length bytes in the key
	{{"tenant", "photos", "a/b"}, {"tenant", "photos", "a/b/"}},
}

func TestAppendNameInjective(t *testing.T) {
	for _, pair := range confusable {
		a, b := pair[0], pair[1]
		ea := appendName(nil, a.tenant, a.container, a.key)
		eb := appendName(nil, b.tenant, b.container, b.key)
		if bytes.Equal(ea, eb) {
			t.Errorf("appendName(%q) == appendName(%q) = %x", a, b, ea)
		}
		for _, n := range pair {
			e := appendName(nil, n.tenant, n.container, n.key)
			tn, c, k, ok := decodeName(e)
			if got := (name{tn, c, k}); !ok || got != n {
				t.Errorf("decodeName(appendName(%q)) = %q, %v; want %q, true", n, got, ok, n)
			}
		}
	}
}

func FuzzAppendName(f *testing.F) {
	for _, pair := range confusable {
		for _, n := range pair {
			f.Add(n.tenant, n.container, n.key)
		}
	}
	f.Add(strings.Repeat("t", 200), strings.Repeat("c", 63), strings.Repeat("k", 1024))
	f.Fuzz(func(t *testing.T, tenant, container, key string) {
		e := appendName(nil, tenant, container, key)
		tn, c, k, ok := decodeName(e)
		if got, want := (name{tn, c, k}), (name{tenant, container, key}); !ok || got != want {
			t.Fatalf("decodeName(appendName(%q)) = %q, %v; want %q, true", want, got, ok, want)
		}
		if got, want := hashName(tenant, container, key), xxh3.Hash(e); got != want {
			t.Fatalf("hashName(%q, %q, %q) = %#x, want xxh3 of encoding %#x", tenant, container, key, got, want)
		}
	})
}

// TestPGOfGolden pins the key → PG function: it is part of the on-disk
// format, and a change moves every artifact.
func TestPGOfGolden(t *testing.T) {
	tests := []struct {
		tenant, container, key string
		want                   uint64 // hashName
	}{
		{"", "", "", 0x3325230e1f285505},
		{"acme", "photos", "2024/cat.jpg", 0xaf61fa57698953df},
		{"a", "bc", "d", 0xc47e4c32cf5dcd18},
		{"ab", "c", "d", 0x56bfa48fe1479cb7},
		{"t", "c", strings.Repeat("k", 1024), 0x149adba4bb529274},
	}
	for _, tt := range tests {
		got := hashName(tt.tenant, tt.container, tt.key)
		if got != tt.want {
			t.Errorf("hashName(%q, %q, %.20q) = %#x, want %#x", tt.tenant, tt.container, tt.key, got, tt.want)
		}
		if got, want := PGOf(tt.tenant, tt.container, tt.key, 256), uint32(tt.want%256); got != want {
			t.Errorf("PGOf(%q, %q, %.20q, 256) = %d, want %d", tt.tenant, tt.container, tt.key, got, want)
		}
	}
}

func TestPGOfDeterministicInRange(t *testing.T) {
	names := []name{{"", "", ""}, {"acme", "photos", "cat.jpg"}, {"t", "c", strings.Repeat("x", 5000)}}
	for i := range 1000 {
		names = append(names, name{fmt.Sprint("tenant", i%7), fmt.Sprint("c", i%13), fmt.Sprint("key/", i)})
	}
	for _, n := range names {
		for shift := range 21 {
			count := 1 << shift
			got := PGOf(n.tenant, n.container, n.key, count)
			if again := PGOf(n.tenant, n.container, n.key, count); again != got {
				t.Fatalf("PGOf(%q, %d) = %d then %d", n, count, got, again)
			}
			if int(got) >= count {
				t.Fatalf("PGOf(%q, %d) = %d, out of range", n, count, got)
			}
			// Power-of-two counts keep low bits: splitting each PG in two
			// sends every artifact of PG p to p or p+count.
			if shift > 0 {
				if half := PGOf(n.tenant, n.container, n.key, count/2); got%uint32(count/2) != half {
					t.Fatalf("PGOf(%q, %d) = %d, PGOf(.., %d) = %d, want low bits equal", n, count, got, count/2, half)
				}
			}
		}
	}
}

func TestPGOfUniform(t *testing.T) {
	const keys, pgs = 100_000, DefaultPGCount
	var counts [pgs]int
	for i := range keys {
		counts[PGOf("tenant", "container", fmt.Sprintf("dir/%d/object-%d.bin", i%100, i), pgs)]++
	}
	expected := float64(keys) / pgs
	chi2 := 0.0
	for _, c := range counts {
		d := float64(c) - expected
		chi2 += d * d / expected
	}
	// 255 degrees of freedom: mean 255, standard deviation about 22.6. The
	// keys are fixed, so the result is too; the bound is loose on purpose.
	if chi2 > 400 {
		t.Errorf("chi-square over %d PGs = %.1f, want <= 400 (counts %v)", pgs, chi2, counts)
	}
	t.Logf("chi-square over %d PGs for %d keys: %.1f (df 255)", pgs, keys, chi2)
}

func TestPGOfPanicsOnBadCount(t *testing.T) {
	for _, count := range []int{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PGOf(.., %d) did not panic", count)
				}
			}()
			PGOf("t", "c", "k", count)
		}()
	}
}

func BenchmarkPGOf(b *testing.B) {
	for _, n := range []int{16, 200, 1024} {
		key := strings.Repeat("k", n)
		b.Run(fmt.Sprintf("key=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len("acme-corp") + len("photos") + n))
			b.ReportAllocs()
			for b.Loop() {
				PGOf("acme-corp", "photos", key, DefaultPGCount)
			}
		})
	}
}
