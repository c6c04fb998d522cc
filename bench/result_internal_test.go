package bench

import (
	"math"
	"testing"
	"time"
)

func TestInWindow(t *testing.T) {
	at := func(s float64) time.Time { return time.Unix(100, 0).Add(time.Duration(s * float64(time.Second))) }
	from, to := at(0), at(10)
	for _, tc := range []struct {
		name     string
		t0, end  time.Time
		from, to time.Time
		want     float64
	}{
		{"inside", at(1), at(3), from, to, 1},
		{"before", at(-3), at(-1), from, to, 0},
		{"after", at(11), at(12), from, to, 0},
		{"straddles the start", at(-1), at(3), from, to, 0.75},
		{"straddles the end", at(8), at(12), from, to, 0.5},
		{"covers the window", at(-5), at(15), from, to, 0.5},
		{"no end to the window", at(8), at(12), from, time.Time{}, 1},
		{"instant inside", at(2), at(2), from, to, 1},
		{"instant after", at(11), at(11), from, to, 0},
	} {
		if got := inWindow(tc.t0, tc.end, tc.from, tc.to); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: inWindow = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRatesCountShares: 16 workers each doing 4 s operations of 64 MiB
// from the start of a 10 s window end 32 operations inside it (204.8
// MiB/s), but moved 16 × 10/4 operations' worth of bytes (256 MiB/s): the
// rate is the latter, not the count of whole operations.
func TestRatesCountShares(t *testing.T) {
	start := time.Unix(100, 0)
	r := newRecorder(start)
	deadline := start.Add(10 * time.Second)
	const size = 64 << 20
	op := 4 * time.Second
	for range 16 {
		for t0 := start; t0.Before(deadline); t0 = t0.Add(op) {
			end := t0.Add(op)
			if f := inWindow(t0, end, start, deadline); f > 0 {
				r.share(f, size, 0)
			}
			if !end.Before(start) && !end.After(deadline) {
				r.ok("put", end, op, size, 0)
			}
		}
	}
	var res Result
	r.result(&res, 10*time.Second)
	want := 16 * 64 / 4.0 // MiB/s
	if math.Abs(res.MiBPerSec-want) > 0.01*want {
		t.Errorf("MiBPerSec = %.1f, want %.1f (ops that ended inside: %d)", res.MiBPerSec, want, res.Ops)
	}
}
