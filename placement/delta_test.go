package placement

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
)

func TestDelta(t *testing.T) {
	p := Policy{4, 2}
	drives := cluster(4, 5, 2)
	base := mustPlan(t, mustNewMap(t, drives, p, DefaultPGCount), drives, 2)
	split, err := base.Split(2*DefaultPGCount, 3)
	if err != nil {
		t.Fatal(err)
	}
	joined := append(slices.Clone(drives), nodeDrives("z2", "new", 2)...)
	moved := slices.Clone(drives)
	moved[0].Zone = "z3" // a drive changes zone
	tests := []struct {
		name string
		next *Map
	}{
		{"join", mustPlan(t, base, joined, 3)},
		{"leave", mustPlan(t, base, drives[2:], 3)},
		{"zone change", mustPlan(t, base, moved, 3)},
		{"split", split},
		{"split, then join", mustPlan(t, split, joined, 4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := base.Delta(tt.next)
			if err != nil {
				t.Fatal(err)
			}
			// Through JSON, as a Raft command would carry it.
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			full, _ := json.Marshal(tt.next)
			t.Logf("delta %d bytes, map %d bytes", len(b), len(full))
			if len(b) > len(full)/4 {
				t.Errorf("delta of %d bytes for a map of %d", len(b), len(full))
			}
			var back Delta
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			got, err := base.Apply(back)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.next) {
				t.Fatalf("Apply(Delta) differs from the map it was taken from")
			}
			if len(d.Moves) > 0 {
				bad := back
				bad.Moves = slices.Clone(back.Moves)
				bad.Moves[0].From = "not-there"
				if _, err := base.Apply(bad); !errors.Is(err, ErrInvalidMap) {
					t.Errorf("Apply of a delta with a wrong From: %v, want ErrInvalidMap", err)
				}
			}
			if len(d.Removed) > 0 {
				// Without its moves, the removed drives stay in sets.
				if _, err := base.Apply(Delta{Epoch: d.Epoch, PGCount: d.PGCount, Added: d.Added, Removed: d.Removed}); !errors.Is(err, ErrInvalidMap) {
					t.Errorf("Apply leaving removed drives in sets: %v, want ErrInvalidMap", err)
				}
			}
		})
	}
	other := mustNewMap(t, drives, Policy{3, 2}, DefaultPGCount)
	if _, err := base.Delta(other); !errors.Is(err, ErrInvalidMap) {
		t.Errorf("Delta across a policy change: %v, want ErrInvalidMap", err)
	}
}
