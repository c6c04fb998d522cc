package placement

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// cluster returns zones × nodes × drives drives. With zones == 0 the nodes
// have no zone.
func cluster(zones, nodes, drives int) []Drive {
	var ds []Drive
	for z := range max(zones, 1) {
		zone := ""
		if zones > 0 {
			zone = fmt.Sprintf("z%d", z)
		}
		for n := range nodes {
			node := NodeID(fmt.Sprintf("z%d-n%d", z, n))
			for d := range drives {
				ds = append(ds, Drive{ID: DriveID(fmt.Sprintf("%s-d%d", node, d)), Node: node, Zone: zone, Class: driver.ClassLocal})
			}
		}
	}
	return ds
}

func mustNewMap(t *testing.T, drives []Drive, p Policy, pgCount int) *Map {
	t.Helper()
	m, err := NewMap(drives, p, pgCount, 1)
	if err != nil {
		t.Fatalf("NewMap(%d drives, %v, %d): %v", len(drives), p, pgCount, err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("NewMap(%d drives, %v, %d).Validate(): %v", len(drives), p, pgCount, err)
	}
	return m
}

// checkScoreOrder checks that every set is in descending score order.
func checkScoreOrder(t *testing.T, m *Map) {
	t.Helper()
	for pg, set := range m.PGs {
		for i := 1; i < len(set); i++ {
			if score(uint32(pg), set[i-1]) < score(uint32(pg), set[i]) {
				t.Fatalf("pg %d: set %v not in descending score order at slot %d", pg, set, i)
			}
		}
	}
}

// oracleSets computes every PG's set the slow way: among all subsets of
// SetSize drives that meet the failure-domain caps, the one whose
// descending score vector is lexicographically largest, in score order.
// It returns false when no subset meets the caps. It needs <= 20 drives.
func oracleSets(t *testing.T, drives []Drive, p Policy, pgCount int) ([][]DriveID, bool) {
	t.Helper()
	if len(drives) > 20 {
		t.Fatalf("oracleSets: %d drives, want <= 20", len(drives))
	}
	size := p.SetSize()
	nodes, zones := map[NodeID]bool{}, map[string]bool{}
	for _, d := range drives {
		nodes[d.Node] = true
		if d.Zone != "" {
			zones[d.Zone] = true
		}
	}
	nodeCap, zoneCap := (size+len(nodes)-1)/len(nodes), size
	if len(zones) > 0 {
		zoneCap = (size + len(zones) - 1) / len(zones)
	}
	var feasible []uint32
	for mask := uint32(0); mask < 1<<len(drives); mask++ {
		if bits.OnesCount32(mask) != size {
			continue
		}
		perNode, perZone := map[NodeID]int{}, map[string]int{}
		ok := true
		for i, d := range drives {
			if mask&(1<<i) == 0 {
				continue
			}
			perNode[d.Node]++
			if d.Zone != "" {
				perZone[d.Zone]++
			}
			if perNode[d.Node] > nodeCap || (d.Zone != "" && perZone[d.Zone] > zoneCap) {
				ok = false
			}
		}
		if ok {
			feasible = append(feasible, mask)
		}
	}
	if len(feasible) == 0 {
		return nil, false
	}
	sets := make([][]DriveID, pgCount)
	for pg := range sets {
		all := make([]uint64, len(drives))
		for i, d := range drives {
			all[i] = score(uint32(pg), d.ID)
		}
		var best []uint64
		scores := make([]uint64, 0, size)
		for _, mask := range feasible {
			scores = scores[:0]
			for i := range drives {
				if mask&(1<<i) != 0 {
					scores = append(scores, all[i])
				}
			}
			slices.SortFunc(scores, func(a, b uint64) int { return cmp.Compare(b, a) })
			if best == nil || slices.Compare(scores, best) > 0 {
				best = slices.Clone(scores)
			}
		}
		for _, s := range best {
			for _, d := range drives {
				if score(uint32(pg), d.ID) == s {
					sets[pg] = append(sets[pg], d.ID)
				}
			}
		}
	}
	return sets, true
}

func TestNewMapSingleNode(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 6, 7, 8, 16, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p, err := DefaultPolicy(n)
			if err != nil {
				t.Fatal(err)
			}
			drives := cluster(0, 1, n)
			m := mustNewMap(t, drives, p, DefaultPGCount)
			if got, want := m.PGCount(), DefaultPGCount; got != want {
				t.Errorf("PGCount() = %d, want %d", got, want)
			}
			checkScoreOrder(t, m)
			// Oracle: on one node there are no caps, so a set is the
			// SetSize drives with the highest scores.
			members := map[DriveID]int{}
			data := map[DriveID]int{}
			for pg := range m.PGCount() {
				all := make([]DriveID, 0, n)
				for _, d := range drives {
					all = append(all, d.ID)
				}
				slices.SortFunc(all, func(a, b DriveID) int { return cmp.Compare(score(uint32(pg), b), score(uint32(pg), a)) })
				got, want := m.Set(uint32(pg)), all[:p.SetSize()]
				if !slices.Equal(got, want) {
					t.Fatalf("Set(%d) = %v, want %v", pg, got, want)
				}
				for i, id := range got {
					members[id]++
					if i < p.Data {
						data[id]++
					}
				}
			}
			// Every drive holds its share of slots, and of data slots
			// among them (loose bounds; the inputs are fixed).
			wantMembers := float64(DefaultPGCount*p.SetSize()) / float64(n)
			for _, d := range drives {
				if got := float64(members[d.ID]); got < 0.6*wantMembers || got > 1.4*wantMembers {
					t.Errorf("drive %s in %v sets, want about %.1f", d.ID, got, wantMembers)
				}
				wantData := float64(members[d.ID]*p.Data) / float64(p.SetSize())
				if got := float64(data[d.ID]); got < 0.7*wantData-8 || got > 1.3*wantData+8 {
					t.Errorf("drive %s holds data in %v of its %d sets, want about %.1f", d.ID, got, members[d.ID], wantData)
				}
			}
		})
	}
}

func TestNewMapFailureDomains(t *testing.T) {
	remote := []Drive{
		{ID: "r0", Node: "r", Class: driver.ClassRemote}, {ID: "r1", Node: "r", Class: driver.ClassRemote},
		{ID: "r2", Node: "r", Class: driver.ClassRemote}, {ID: "r3", Node: "r", Class: driver.ClassRemote},
	}
	tests := []struct {
		name       string
		drives     []Drive
		p          Policy
		perNode    int // every set has at most this many drives per node
		perZone    int // and per zone (0: no zones)
		exactNodes bool
	}{
		{"3 nodes x 2, 4+2", cluster(0, 3, 2), Policy{4, 2}, 2, 0, true},
		{"3 nodes x 4, 4+2", cluster(0, 3, 4), Policy{4, 2}, 2, 0, true},
		{"4 nodes x 2, 6+2", cluster(0, 4, 2), Policy{6, 2}, 2, 0, true},
		{"4 nodes x 3, 6+2", cluster(0, 4, 3), Policy{6, 2}, 2, 0, true},
		{"4 nodes x 4, 2+2", cluster(0, 4, 4), Policy{2, 2}, 1, 0, true},
		{"6 nodes x 1, 4+2", cluster(0, 6, 1), Policy{4, 2}, 1, 0, true},
		{"8 nodes x 2, 4+2", cluster(0, 8, 2), Policy{4, 2}, 1, 0, false},
		{"5 nodes x 4, 12+4", cluster(0, 5, 4), Policy{12, 4}, 4, 0, false},
		{"16 nodes x 1, 12+4", cluster(0, 16, 1), Policy{12, 4}, 1, 0, true},
		{"3 zones x 2 nodes x 2, 4+2", cluster(3, 2, 2), Policy{4, 2}, 1, 2, true},
		{"2 zones x 3 nodes x 2, 4+2", cluster(2, 3, 2), Policy{4, 2}, 1, 3, true},
		{"4 zones x 1 node x 4, 4+4", cluster(4, 1, 4), Policy{4, 4}, 2, 2, true},
		{"3 zones x 3 nodes x 2, 6+3", cluster(3, 3, 2), Policy{6, 3}, 1, 3, true},
		{"zoned nodes and an unzoned one, 4+2", append(cluster(2, 2, 2), remote...), Policy{4, 2}, 2, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustNewMap(t, tt.drives, tt.p, DefaultPGCount)
			checkScoreOrder(t, m)
			nodes := map[NodeID]bool{}
			for _, d := range tt.drives {
				nodes[d.Node] = true
			}
			for pg, set := range m.PGs {
				perNode, perZone := map[NodeID]int{}, map[string]int{}
				for _, id := range set {
					d, _ := m.Drive(id)
					perNode[d.Node]++
					if d.Zone != "" {
						perZone[d.Zone]++
					}
				}
				for node, got := range perNode {
					if got > tt.perNode || (tt.exactNodes && got != tt.perNode) {
						t.Fatalf("pg %d: %d drives on node %s, want at most %d (exact: %v); set %v", pg, got, node, tt.perNode, tt.exactNodes, set)
					}
					if got > tt.p.Parity && tt.perNode <= tt.p.Parity {
						t.Fatalf("pg %d: losing node %s loses %d shards > m = %d", pg, node, got, tt.p.Parity)
					}
				}
				if tt.exactNodes && len(perNode) != min(len(nodes), tt.p.SetSize()) {
					t.Fatalf("pg %d: set spans %d nodes, want %d; set %v", pg, len(perNode), min(len(nodes), tt.p.SetSize()), set)
				}
				for zone, got := range perZone {
					if got > tt.perZone {
						t.Fatalf("pg %d: %d drives in zone %s, want at most %d; set %v", pg, got, zone, tt.perZone, set)
					}
				}
			}
			if len(tt.drives) <= 20 {
				want, ok := oracleSets(t, tt.drives, tt.p, DefaultPGCount)
				if !ok {
					t.Fatal("oracle: no set meets the caps")
				}
				for pg := range want {
					if got := m.Set(uint32(pg)); !slices.Equal(got, want[pg]) {
						t.Fatalf("Set(%d) = %v, oracle wants %v", pg, got, want[pg])
					}
				}
			}
		})
	}
}

// TestNewMapRelaxesCaps covers drives that cannot meet the node cap: the map
// is still built, spreading as far as the drives allow.
func TestNewMapRelaxesCaps(t *testing.T) {
	t.Run("one big node", func(t *testing.T) {
		// 4+2 over 3 nodes allows 2 per node, but two nodes have 1 drive.
		drives := append(cluster(0, 1, 10), Drive{ID: "a", Node: "a"}, Drive{ID: "b", Node: "b"})
		m := mustNewMap(t, drives, Policy{4, 2}, DefaultPGCount)
		checkScoreOrder(t, m)
		for pg, set := range m.PGs {
			if !slices.Contains(set, "a") || !slices.Contains(set, "b") {
				t.Fatalf("pg %d: set %v lacks a or b", pg, set)
			}
		}
	})
	t.Run("node across zones", func(t *testing.T) {
		// Not a hierarchy: node n0 has drives in both zones.
		drives := []Drive{
			{ID: "1", Node: "n0", Zone: "x"}, {ID: "2", Node: "n0", Zone: "y"},
			{ID: "3", Node: "n0", Zone: "x"}, {ID: "4", Node: "n1", Zone: "x"},
			{ID: "5", Node: "n2", Zone: "x"},
		}
		m := mustNewMap(t, drives, Policy{2, 2}, DefaultPGCount)
		checkScoreOrder(t, m)
	})
}

func TestNewMapDeterministic(t *testing.T) {
	inputs := [][]Drive{cluster(0, 1, 40), cluster(3, 2, 2), cluster(0, 5, 4)}
	r := rand.New(rand.NewPCG(1, 2))
	for _, drives := range inputs {
		p, _ := DefaultPolicy(len(drives))
		want := mustNewMap(t, drives, p, DefaultPGCount)
		for range 10 {
			shuffled := slices.Clone(drives)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			got := mustNewMap(t, shuffled, p, DefaultPGCount)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("NewMap of shuffled %d drives differs", len(drives))
			}
		}
	}
}

func TestNewMapLoadBalance(t *testing.T) {
	// 4 drives, 2+2: every drive is in every PG, and slot 0 (a data shard)
	// goes to each drive in about a quarter of the PGs.
	drives := cluster(0, 1, 4)
	m := mustNewMap(t, drives, Policy{2, 2}, DefaultPGCount)
	slot0, data := map[DriveID]int{}, map[DriveID]int{}
	for pg, set := range m.PGs {
		for _, d := range drives {
			if !slices.Contains(set, d.ID) {
				t.Fatalf("pg %d: set %v lacks %s", pg, set, d.ID)
			}
		}
		slot0[set[0]]++
		data[set[0]]++
		data[set[1]]++
	}
	for _, d := range drives {
		// Expected 64 of 256 (standard deviation about 7) and 128 of 256.
		if got := slot0[d.ID]; got < 40 || got > 88 {
			t.Errorf("drive %s holds slot 0 in %d PGs, want about 64", d.ID, got)
		}
		if got := data[d.ID]; got < 96 || got > 160 {
			t.Errorf("drive %s holds a data slot in %d PGs, want about 128", d.ID, got)
		}
	}
}

// TestHRWAddDrive measures how much of the map moves when a ninth drive
// joins eight. With the caps unchanged, exactly the sets the new drive
// enters change, each by one member (matroid greedy: one exchange), so the
// fraction of (pg, member) entries that change is about 1/9.
func TestHRWAddDrive(t *testing.T) {
	tests := []struct {
		name   string
		before []Drive
		added  Drive
		p      Policy
	}{
		{"1 node, 4+2", cluster(0, 1, 8), Drive{ID: "new", Node: "z0-n0"}, Policy{4, 2}},
		{"8 nodes, 4+2", cluster(0, 8, 1), Drive{ID: "new", Node: "new"}, Policy{4, 2}},
		{"4 nodes x 2, 4+2, to an old node", cluster(0, 4, 2), Drive{ID: "new", Node: "z0-n1"}, Policy{4, 2}},
		{"1 node, 4+4", cluster(0, 1, 8), Drive{ID: "new", Node: "z0-n0"}, Policy{4, 4}},
		{"4 zones x 2, 4+2, new node in a zone", cluster(4, 2, 1), Drive{ID: "new", Node: "new", Zone: "z1"}, Policy{4, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := mustNewMap(t, tt.before, tt.p, DefaultPGCount)
			m := mustNewMap(t, append(slices.Clone(tt.before), tt.added), tt.p, DefaultPGCount)
			size := tt.p.SetSize()
			var pgsChanged, membersChanged, slotsChanged, newDrive int
			for pg := range m.PGCount() {
				before, after := old.Set(uint32(pg)), m.Set(uint32(pg))
				var entered []DriveID
				for _, id := range after {
					if !slices.Contains(before, id) {
						entered = append(entered, id)
					}
				}
				if len(entered) > 1 || (len(entered) == 1 && entered[0] != tt.added.ID) {
					t.Errorf("pg %d: %v entered the set %v → %v, want at most the new drive", pg, entered, before, after)
				}
				if len(entered) > 0 {
					pgsChanged++
					newDrive++
				}
				membersChanged += len(entered)
				for i := range after {
					if before[i] != after[i] {
						slotsChanged++
					}
				}
			}
			pgCount, entries := float64(m.PGCount()), float64(m.PGCount()*size)
			fair := float64(size) / float64(len(tt.before)+1) // the new drive's share of slots per PG
			t.Logf("PGs whose membership changed %.3f (ideal %.3f); (pg, member) entries moved %.3f (ideal %.3f); (pg, slot) entries changed %.3f",
				float64(pgsChanged)/pgCount, fair, float64(membersChanged)/entries, 1/float64(len(tt.before)+1), float64(slotsChanged)/entries)
			// Loose bounds around the ideal 1/9 of entries and (k+m)/9 of PGs.
			if got := float64(membersChanged) / entries; got > 0.16 {
				t.Errorf("(pg, member) entries moved = %.3f, want <= 0.16", got)
			}
			if got := float64(pgsChanged) / pgCount; got > fair+0.12 || got < fair-0.12 {
				t.Errorf("PGs changed = %.3f, want %.3f ± 0.12", got, fair)
			}
			// Score order shifts the slots below the new drive as well.
			if got := float64(slotsChanged) / entries; got > 0.6 {
				t.Errorf("(pg, slot) entries changed = %.3f, want <= 0.6", got)
			}
		})
	}
}

func TestHRWRemoveDrive(t *testing.T) {
	// Removing a drive leaves every set that did not hold it unchanged.
	drives := cluster(0, 1, 9)
	p := Policy{4, 2}
	old := mustNewMap(t, drives, p, DefaultPGCount)
	gone := drives[3].ID
	m := mustNewMap(t, slices.Delete(slices.Clone(drives), 3, 4), p, DefaultPGCount)
	for pg := range m.PGCount() {
		before, after := old.Set(uint32(pg)), m.Set(uint32(pg))
		if !slices.Contains(before, gone) && !slices.Equal(before, after) {
			t.Errorf("pg %d: set %v → %v without %s in it", pg, before, after, gone)
		}
	}
}

func TestNewMapErrors(t *testing.T) {
	good := cluster(0, 2, 3)
	tests := []struct {
		name    string
		drives  []Drive
		p       Policy
		pgCount int
		want    error
	}{
		{"duplicate IDs", append(slices.Clone(good), Drive{ID: good[2].ID, Node: "other"}), Policy{4, 2}, 256, ErrInvalidMap},
		{"empty ID", append(slices.Clone(good), Drive{Node: "other"}), Policy{4, 2}, 256, ErrInvalidMap},
		{"too few drives", good, Policy{4, 3}, 256, ErrTooFewDrives},
		{"no drives", nil, Policy{1, 0}, 256, ErrTooFewDrives},
		{"zero PGs", good, Policy{4, 2}, 0, ErrInvalidMap},
		{"negative PGs", good, Policy{4, 2}, -256, ErrInvalidMap},
		{"3 PGs", good, Policy{4, 2}, 3, ErrInvalidMap},
		{"384 PGs", good, Policy{4, 2}, 384, ErrInvalidMap},
		{"too many PGs", good, Policy{4, 2}, 2 * MaxPGCount, ErrInvalidMap},
		{"invalid policy", good, Policy{0, 2}, 256, ErrInvalidPolicy},
	}
	for _, tt := range tests {
		m, err := NewMap(tt.drives, tt.p, tt.pgCount, 1)
		if !errors.Is(err, tt.want) || m != nil {
			t.Errorf("%s: NewMap() = %v, %v; want nil, %v", tt.name, m, err, tt.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), "placement: ") {
			t.Errorf("%s: error %q lacks prefix \"placement: \"", tt.name, err)
		}
	}
	// Smallest and largest PG counts are fine.
	for _, n := range []int{1, 2, MaxPGCount} {
		if _, err := NewMap(cluster(0, 1, 2), Policy{1, 1}, n, 1); err != nil {
			t.Errorf("NewMap(.., %d PGs): %v", n, err)
		}
	}
}

func TestMapValidate(t *testing.T) {
	base := func() *Map {
		m, err := NewMap(cluster(0, 3, 2), Policy{2, 2}, 4, 7)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name   string
		mutate func(m *Map)
		want   error
	}{
		{"ok", func(m *Map) {}, nil},
		{"bad policy", func(m *Map) { m.Policy = Policy{} }, ErrInvalidPolicy},
		{"no PGs", func(m *Map) { m.PGs = nil }, ErrInvalidMap},
		{"3 PGs", func(m *Map) { m.PGs = m.PGs[:3] }, ErrInvalidMap},
		{"short set", func(m *Map) { m.PGs[1] = m.PGs[1][:3] }, ErrInvalidMap},
		{"long set", func(m *Map) { m.PGs[1] = append(slices.Clone(m.PGs[1]), m.PGs[0][0]) }, ErrInvalidMap},
		{"duplicate in set", func(m *Map) { m.PGs[2][1] = m.PGs[2][0] }, ErrInvalidMap},
		{"unknown drive", func(m *Map) { m.PGs[3][2] = "nope" }, ErrInvalidMap},
		{"unsorted drives", func(m *Map) { m.Drives[0], m.Drives[1] = m.Drives[1], m.Drives[0] }, ErrInvalidMap},
		{"duplicate drives", func(m *Map) { m.Drives[1] = m.Drives[0] }, ErrInvalidMap},
		{"empty drive ID", func(m *Map) { m.Drives[0].ID = "" }, ErrInvalidMap},
		{"too few drives", func(m *Map) { m.Drives = m.Drives[:3] }, ErrTooFewDrives},
	}
	for _, tt := range tests {
		m := base()
		tt.mutate(m)
		err := m.Validate()
		if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("%s: Validate() = %v, want %v", tt.name, err, tt.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "placement: ") {
			t.Errorf("%s: error %q lacks prefix \"placement: \"", tt.name, err)
		}
	}
}

func TestMapAccessors(t *testing.T) {
	drives := cluster(2, 2, 2)
	m, err := NewMap(drives, Policy{4, 2}, 64, 42)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Epoch, Epoch(42); got != want {
		t.Errorf("Epoch = %d, want %d", got, want)
	}
	if !slices.IsSortedFunc(m.Drives, func(a, b Drive) int { return cmp.Compare(a.ID, b.ID) }) {
		t.Errorf("Drives not sorted: %v", m.Drives)
	}
	for _, d := range drives {
		if got, ok := m.Drive(d.ID); !ok || got != d {
			t.Errorf("Drive(%q) = %v, %v; want %v, true", d.ID, got, ok, d)
		}
	}
	if got, ok := m.Drive("missing"); ok {
		t.Errorf("Drive(missing) = %v, true; want false", got)
	}
	for i := range 100 {
		key := fmt.Sprint("k", i)
		if got, want := m.PGOf("t", "c", key), PGOf("t", "c", key, 64); got != want {
			t.Errorf("m.PGOf(t, c, %s) = %d, want %d", key, got, want)
		}
	}
	// A caller appending to a set must not overwrite the next PG's set.
	next := slices.Clone(m.Set(1))
	_ = append(m.Set(0), "x")
	if got := m.Set(1); !slices.Equal(got, next) {
		t.Errorf("append to Set(0) changed Set(1) to %v, want %v", got, next)
	}
	// NewMap does not retain its input.
	drives[0].ID = "changed"
	if err := m.Validate(); err != nil {
		t.Errorf("Validate after changing NewMap's input: %v", err)
	}
}

func BenchmarkNewMap(b *testing.B) {
	drives := cluster(0, 8, 5)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewMap(drives, Policy{12, 4}, DefaultPGCount, 1); err != nil {
			b.Fatal(err)
		}
	}
}
