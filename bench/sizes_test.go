package bench

import (
	"fmt"
	"testing"
)

func TestParseSizes(t *testing.T) {
	tests := []struct {
		in      string
		size    int64
		dist    int
		failing bool
	}{
		{"1MiB", 1 << 20, 0, false},
		{"4KiB:3,1MiB:1", (3*4096 + 1<<20) / 4, 2, false},
		{"4KiB,8KiB", 6 << 10, 2, false},
		{"4KiB:0", 0, 0, true},
		{"4KiB:x", 0, 0, true},
		{"lots:1", 0, 0, true},
	}
	for _, tc := range tests {
		size, dist, err := ParseSizes(tc.in)
		if (err != nil) != tc.failing || (!tc.failing && (len(dist) != tc.dist || size < tc.size-1 || size > tc.size+1)) {
			t.Errorf("ParseSizes(%q) = %d, %v, %v", tc.in, size, dist, err)
		}
	}
}

func TestSizeOfFollowsWeights(t *testing.T) {
	c := Config{Size: 1}
	var err error
	c.Size, c.Sizes, err = ParseSizes("4KiB:70,1MiB:25,16MiB:5")
	if err != nil {
		t.Fatal(err)
	}
	count := map[int64]int{}
	for i := range 20_000 {
		key := fmt.Sprintf("prefix/put-%d", i)
		if c.sizeOf(key) != c.sizeOf(key) {
			t.Fatal("sizeOf is not stable")
		}
		count[c.sizeOf(key)]++
	}
	for _, d := range c.Sizes {
		got := float64(count[d.Size]) / 20_000 * 100
		if got < float64(d.Weight)-2 || got > float64(d.Weight)+2 {
			t.Errorf("size %d drawn %.1f%%, want about %d%%", d.Size, got, d.Weight)
		}
	}
}
