package cluster

import (
	"math"
	"testing"
	"time"
)

// TestDrainRate feeds drainRate samples at given times and checks the
// rate and ETA it gives after each.
func TestDrainRate(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	type step struct {
		after  time.Duration
		drives []string
		pgs    int
		bytes  uint64
		rate   float64 // want; -1 unknown
		eta    float64 // want; -1 unknown
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first sample: unknown", []step{{0, []string{"d1"}, 10, 1000, -1, -1}}},
		{"steady drain", []step{
			{0, []string{"d1"}, 10, 1000, -1, -1},
			{10 * time.Second, []string{"d1"}, 10, 800, 20, 40},
			{20 * time.Second, []string{"d1"}, 10, 600, 20, 30},
		}},
		{"no bytes moved: unknown", []step{
			{0, []string{"d1"}, 10, 1000, -1, -1},
			{10 * time.Second, []string{"d1"}, 10, 1000, -1, -1},
		}},
		{"too short a span", []step{
			{0, []string{"d1"}, 10, 1000, -1, -1},
			{100 * time.Millisecond, []string{"d1"}, 10, 900, -1, -1},
		}},
		{"done: ETA 0", []step{
			{0, []string{"d1"}, 10, 1000, -1, -1},
			{10 * time.Second, []string{"d1"}, 0, 0, 100, 0},
		}},
		{"another drain resets the samples", []step{
			{0, []string{"d1"}, 10, 1000, -1, -1},
			{10 * time.Second, []string{"d1", "d2"}, 20, 1800, -1, -1},
			{20 * time.Second, []string{"d1", "d2"}, 20, 1700, 10, 170},
		}},
		{"old samples leave the window", []step{
			{0, []string{"d1"}, 10, 100000, -1, -1},
			{time.Minute, []string{"d1"}, 10, 40000, 1000, 40},
			{drainWindow + time.Minute, []string{"d1"}, 10, 39400, 1, 39400},
			{drainWindow + 2*time.Minute, []string{"d1"}, 10, 39340, 1, 39340},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r drainRate
			for i, s := range tt.steps {
				ds := DrainStatus{Drives: s.drives, PGsLeft: s.pgs, BytesLeft: s.bytes}
				r.observe(&ds, t0.Add(s.after))
				if math.Abs(ds.BytesPerSecond-s.rate) > 1e-9 || math.Abs(ds.ETASeconds-s.eta) > 1e-9 {
					t.Errorf("step %d: rate %v B/s, ETA %v s; want %v, %v", i, ds.BytesPerSecond, ds.ETASeconds, s.rate, s.eta)
				}
			}
		})
	}
}

// TestDrainFinishingAndUnreachable: a drain whose bytes left would be gone
// in under finishingETA, though kept maps still place PGs on the drives
// (the indexes stay until the older maps are dropped), is finishing, not
// "about 0s left"; a drain with a drive that does not answer has no rate
// (its bytes are not counted), and its samples do not mix with the next.
func TestDrainFinishingAndUnreachable(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	d := []string{"d1", "d2"}
	var r drainRate
	obs := func(after time.Duration, bytes uint64, unreachable []string) DrainStatus {
		ds := DrainStatus{Drives: d, PGsLeft: 512, BytesLeft: bytes, Unreachable: unreachable}
		r.observe(&ds, t0.Add(after))
		return ds
	}
	obs(0, 100<<20, nil)
	if ds := obs(10*time.Second, 50<<20, nil); ds.Finishing || ds.ETASeconds != 10 {
		t.Fatalf("half moved at 5 MiB/s: %+v, want ETA 10 s, not finishing", ds)
	}
	if ds := obs(20*time.Second, 600<<10, nil); !ds.Finishing || ds.ETASeconds >= finishingETA.Seconds() {
		t.Fatalf("the index left: %+v, want finishing", ds)
	}
	if ds := obs(30*time.Second, 600<<10, nil); !ds.Finishing {
		t.Fatalf("10 s later, still the index: %+v, want finishing", ds)
	}
	if ds := obs(40*time.Second, 0, []string{"d2"}); ds.BytesPerSecond != -1 || ds.ETASeconds != -1 || ds.Finishing {
		t.Fatalf("d2 unreachable: %+v, want no rate, no ETA, not finishing", ds)
	}
	if ds := obs(45*time.Second, 600<<10, nil); ds.BytesPerSecond != -1 {
		t.Fatalf("d2 back: %+v; want the rate measured afresh, not from samples without it", ds)
	}
}
