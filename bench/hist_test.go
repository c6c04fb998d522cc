package bench

import (
	"bytes"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramQuantiles checks the histogram against the exact quantiles
// of the sorted samples.
func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform µs", func() time.Duration { return time.Duration(r.IntN(100)) * time.Microsecond }},
		{"uniform ms", func() time.Duration { return time.Duration(r.IntN(50_000_000)) }},
		{"lognormal", func() time.Duration { return time.Duration(math.Exp(r.NormFloat64()*2 + 13)) }},
	} {
		var h histogram
		samples := make([]time.Duration, 20000)
		for i := range samples {
			samples[i] = dist.gen()
			h.record(samples[i])
		}
		slices.Sort(samples)
		for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
			want := samples[max(int(math.Ceil(q*float64(len(samples))))-1, 0)].Microseconds()
			got := h.quantile(q).Microseconds()
			if diff := math.Abs(float64(got - want)); diff > 1 && diff > 0.02*float64(want) {
				t.Errorf("%s: q%v = %dµs, want %dµs ±2%%", dist.name, q, got, want)
			}
		}
		if got, want := h.quantile(1), samples[len(samples)-1].Truncate(time.Microsecond); got != want {
			t.Errorf("%s: max = %v, want %v", dist.name, got, want)
		}
	}
}

func TestHistogramIndexMonotonic(t *testing.T) {
	prev := -1
	for us := int64(0); us < 1<<22; us += 1 + us/97 {
		i := histIndex(us)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d after %d", us, i, prev)
		}
		if v := histValue(i); math.Abs(float64(v-us)) > 0.016*float64(us)+1 {
			t.Fatalf("histValue(histIndex(%d)) = %d", us, v)
		}
		prev = i
	}
	if i := histIndex(math.MaxInt64); i >= histBuckets {
		t.Fatalf("histIndex(max) = %d, beyond %d buckets", i, histBuckets)
	}
}

// TestContentParts checks that multipart parts read back as the whole
// object, that Seek rewinds, and that generations differ.
func TestContentParts(t *testing.T) {
	p := newPool(42)
	const size = 3*poolSize + 12345
	whole, err := io.ReadAll(p.reader("k", 1, 0, size))
	if err != nil || len(whole) != size {
		t.Fatalf("read %d bytes, %v", len(whole), err)
	}
	var parts []byte
	const part = 5<<20 + 3
	for start := int64(0); start < size; start += part {
		b, _ := io.ReadAll(p.reader("k", 1, start, min(part, size-start)))
		parts = append(parts, b...)
	}
	if !bytes.Equal(parts, whole) {
		t.Error("parts differ from the whole object")
	}
	r := p.reader("k", 1, 0, size)
	io.CopyN(io.Discard, r, 777)
	r.Seek(0, io.SeekStart)
	again, _ := io.ReadAll(r)
	if !bytes.Equal(again, whole) {
		t.Error("content differs after Seek(0)")
	}
	other, _ := io.ReadAll(p.reader("k", 2, 0, 4096))
	if bytes.Equal(other, whole[:4096]) {
		t.Error("generations 1 and 2 have the same content")
	}
	if _, err := verify(bytes.NewReader(whole), p.reader("k", 1, 0, size), make([]byte, 64<<10)); err != nil {
		t.Errorf("verify of the right content: %v", err)
	}
	bad := slices.Clone(whole)
	bad[size-1] ^= 1
	if _, err := verify(bytes.NewReader(bad), p.reader("k", 1, 0, size), make([]byte, 64<<10)); err == nil {
		t.Error("verify missed a flipped last byte")
	}
	if _, err := verify(bytes.NewReader(whole[:size-1]), p.reader("k", 1, 0, size), make([]byte, 64<<10)); err == nil {
		t.Error("verify missed a short body")
	}
}
