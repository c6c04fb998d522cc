package placement

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// layoutDrives returns nodes × per local drives and remotes remote drives,
// each remote in a zone of its own as cmd/vaultd registers them.
func layoutDrives(nodes, per, remotes int) []Drive {
	var ds []Drive
	for n := range nodes {
		for i := range per {
			ds = append(ds, Drive{ID: DriveID(fmt.Sprintf("n%d-d%d", n, i)), Node: NodeID(fmt.Sprintf("n%d", n)), Class: driver.ClassLocal})
		}
	}
	for r := range remotes {
		ds = append(ds, Drive{ID: DriveID(fmt.Sprintf("remote-%d", r)), Node: "n0", Zone: fmt.Sprintf("remote:%d", r), Class: driver.ClassRemote})
	}
	return ds
}

func TestForLayout(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		nodes, per, remotes   int
		local, hybrid, remote Policy // zero: the layout is refused
		maxHybridLocalPerNode int
	}{
		{"single node 4+2 remotes", 1, 4, 2, Policy{2, 2}, Policy{4, 2}, Policy{1, 1}, 4},
		{"3 nodes × 2 + 2 remotes", 3, 2, 2, Policy{4, 2}, Policy{4, 2}, Policy{1, 1}, 2},
		{"3 nodes × 2 + 1 remote", 3, 2, 1, Policy{4, 2}, Policy{3, 1}, Policy{1, 0}, 1},
		{"no remotes", 2, 3, 0, Policy{4, 2}, Policy{}, Policy{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := layoutDrives(tc.nodes, tc.per, tc.remotes)
			p, err := DefaultPolicy(len(ds))
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewMap(ds, p, 64, 7)
			if err != nil {
				t.Fatal(err)
			}
			class := func(id DriveID) driver.Class { d, _ := m.Drive(id); return d.Class }
			node := func(id DriveID) NodeID { d, _ := m.Drive(id); return d.Node }

			lm, err := m.ForLayout(LayoutLocal)
			if err != nil {
				t.Fatal(err)
			}
			if tc.remotes == 0 && lm != m {
				t.Errorf("a map without remote drives is not its own local layout")
			}
			if got := lm.Policy; got != tc.local {
				t.Errorf("local layout policy %s, want %s", got, tc.local)
			}
			if err := lm.Validate(); err != nil {
				t.Errorf("local layout: %v", err)
			}
			for pg, set := range lm.PGs {
				for _, id := range set {
					if class(id) == driver.ClassRemote {
						t.Fatalf("local layout pg %d holds remote drive %s", pg, id)
					}
				}
			}

			hm, err := m.ForLayout(LayoutHybrid)
			if tc.hybrid == (Policy{}) {
				if !errors.Is(err, ErrTooFewDrives) {
					t.Errorf("hybrid layout without remote drives: %v, want ErrTooFewDrives", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if hm.Policy != tc.hybrid || hm.Epoch != m.Epoch || hm.Layout != LayoutHybrid || hm.PGCount() != m.PGCount() {
					t.Errorf("hybrid layout: policy %s epoch %d layout %q pgs %d, want %s %d hybrid %d", hm.Policy, hm.Epoch, hm.Layout, hm.PGCount(), tc.hybrid, m.Epoch, m.PGCount())
				}
				if err := hm.Validate(); err != nil {
					t.Errorf("hybrid layout: %v", err)
				}
				for pg, set := range hm.PGs {
					perNode := map[NodeID]int{}
					for j, id := range set {
						want := driver.ClassLocal
						if j >= hm.Policy.Data {
							want = driver.ClassRemote
						} else {
							perNode[node(id)]++
						}
						if got := class(id); got != want {
							t.Fatalf("hybrid pg %d slot %d: drive %s of class %s, want %s", pg, j, id, got, want)
						}
					}
					for n, c := range perNode {
						if c > tc.maxHybridLocalPerNode {
							t.Fatalf("hybrid pg %d: %d data shards on node %s, want at most %d", pg, c, n, tc.maxHybridLocalPerNode)
						}
					}
				}
				// The same drives in another order give the same layout.
				rev := slices.Clone(ds)
				slices.Reverse(rev)
				m2, _ := NewMap(rev, p, 64, 7)
				hm2, err := m2.ForLayout(LayoutHybrid)
				if err != nil || !slices.EqualFunc(hm.PGs, hm2.PGs, slices.Equal) {
					t.Errorf("hybrid layout depends on drive order (%v)", err)
				}
			}

			rm, err := m.ForLayout(LayoutRemote)
			if tc.remote == (Policy{}) {
				if !errors.Is(err, ErrTooFewDrives) {
					t.Errorf("remote layout without remote drives: %v, want ErrTooFewDrives", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if rm.Policy != tc.remote {
					t.Errorf("remote layout policy %s, want %s", rm.Policy, tc.remote)
				}
				for pg, set := range rm.PGs {
					for _, id := range set {
						if class(id) != driver.ClassRemote {
							t.Fatalf("remote layout pg %d holds local drive %s", pg, id)
						}
					}
				}
			}
			if _, err := m.ForLayout("cold"); !errors.Is(err, ErrInvalidMap) {
				t.Errorf("unknown layout: %v, want ErrInvalidMap", err)
			}
		})
	}
}
