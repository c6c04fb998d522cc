package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vaultaire/vaultaire/cluster"
)

// TestClusterStatusDrainLine checks what `vaultd cluster status` says of
// a drain: bytes and kept maps left (not PG slots, which fall only at the
// end), and the rate and ETA once known.
func TestClusterStatusDrainLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    cluster.DrainStatus
		want []string
		not  []string
	}{
		{"rate unknown", cluster.DrainStatus{Drives: []string{"n4-a"}, PGsLeft: 12, MapsLeft: 1, BytesLeft: 3 << 20, BytesPerSecond: -1, ETASeconds: -1},
			[]string{"3.0 MiB left in 1 kept map epoch(s), in progress", "drain rate:", "unknown yet"}, []string{"PG slots"}},
		{"rate and ETA", cluster.DrainStatus{Drives: []string{"n4-a", "n4-b"}, PGsLeft: 12, MapsLeft: 2, BytesLeft: 300 << 20, BytesPerSecond: 2 << 20, ETASeconds: 150},
			[]string{"n4-a, n4-b: 300.0 MiB left in 2 kept map epoch(s)", "2.0 MiB/s, about 2m30s left"}, []string{"PG slots"}},
		{"done", cluster.DrainStatus{Drives: []string{"n4-a"}, BytesPerSecond: 1000, ETASeconds: 0},
			[]string{"done: the drained nodes can be removed"}, []string{"drain rate:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := cluster.Status{Node: "n1", Drain: &tc.d}
			var out bytes.Buffer
			if err := writeClusterStatus(&out, &st); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("status lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out.String(), w) {
					t.Errorf("status has %q:\n%s", w, out.String())
				}
			}
		})
	}
}
