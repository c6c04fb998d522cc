package bench

import (
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram in microseconds, in the spirit
// of HdrHistogram: exact below 128 µs, then 64 buckets per power of two
// (relative error under 1.6%). Its memory is fixed (about 30 KB) however
// many values it records. The zero value is ready to use; it is not safe
// for concurrent use.
type histogram struct {
	counts [histBuckets]uint64
	total  uint64
	max    int64 // µs, exact
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // exact range and bucket resolution
	histHalf    = histSub / 2
	histBuckets = histSub + (64-histSubBits)*histHalf
)

func histIndex(us int64) int {
	if us < 0 {
		us = 0
	}
	v := uint64(us)
	if v < histSub {
		return int(v)
	}
	k := bits.Len64(v) - histSubBits // ≥ 1
	m := v >> k                      // in [histHalf, histSub)
	return histSub + (k-1)*histHalf + int(m-histHalf)
}

// histValue is the midpoint of bucket i, µs.
func histValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	k := (i-histSub)/histHalf + 1
	m := uint64((i-histSub)%histHalf + histHalf)
	lo := m << k
	hi := (m+1)<<k - 1
	return int64((lo + hi) / 2)
}

func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	h.counts[histIndex(us)]++
	h.total++
	h.max = max(h.max, us)
}

// quantile returns the value at quantile q in [0, 1]: the midpoint of
// its bucket, or the exact maximum if it falls in the highest bucket used.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	want := uint64(q*float64(h.total) + 0.5)
	want = max(want, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= want {
			if seen == h.total { // the top bucket: its best value is the exact max
				return time.Duration(h.max) * time.Microsecond
			}
			return time.Duration(min(histValue(i), h.max)) * time.Microsecond
		}
	}
	return time.Duration(h.max) * time.Microsecond
}
