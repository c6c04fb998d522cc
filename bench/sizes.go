package bench

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// SizeWeight is one entry of an object size distribution.
type SizeWeight struct {
	Size   int64
	Weight int
}

// ParseSizes parses --size: one size ("1MiB") or a weighted distribution
// ("4KiB:70,1MiB:25,16MiB:5"). A single size returns a nil distribution.
func ParseSizes(s string) (size int64, dist []SizeWeight, err error) {
	if !strings.Contains(s, ":") && !strings.Contains(s, ",") {
		size, err = ParseSize(s)
		return size, nil, err
	}
	total := 0
	for _, f := range strings.Split(s, ",") {
		sz, w, ok := strings.Cut(strings.TrimSpace(f), ":")
		if !ok {
			w = "1"
		}
		n, err := ParseSize(sz)
		if err != nil {
			return 0, nil, err
		}
		wt, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || wt <= 0 {
			return 0, nil, fmt.Errorf("bench: size weight %q: want a positive integer", w)
		}
		dist = append(dist, SizeWeight{n, wt})
		total += wt
	}
	var mean int64
	for _, d := range dist {
		mean += d.Size * int64(d.Weight) / int64(total)
	}
	return mean, dist, nil
}

// sizeOf returns the size of object key: Config.Size, or a size drawn from
// Config.Sizes by a hash of the key, so every run and every reader agrees
// on it.
func (c *Config) sizeOf(key string) int64 {
	if len(c.Sizes) == 0 {
		return c.Size
	}
	total := 0
	for _, d := range c.Sizes {
		total += d.Weight
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	pick := int(h.Sum32() % uint32(total))
	for _, d := range c.Sizes {
		if pick < d.Weight {
			return d.Size
		}
		pick -= d.Weight
	}
	return c.Size
}

// FormatSizes prints a distribution as ParseSizes reads it.
func FormatSizes(dist []SizeWeight) string {
	parts := make([]string, len(dist))
	for i, d := range dist {
		parts[i] = fmt.Sprintf("%s:%d", FormatSize(d.Size), d.Weight)
	}
	return strings.Join(parts, ",")
}
