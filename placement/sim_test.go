package placement

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// BenchmarkPlacementSim simulates placement past this machine: clusters of
// zones × nodes × 12 drives under 12+4, up to 1,000 nodes (12,000 drives).
// It reports, per cluster size, the map build and plan times, the encoded
// map size, the drive load balance (by map entries and by simulated
// objects) and the share of entries moved when a node joins, a node leaves
// and a zone fails, against the ideal. It fails if a drive strays more
// than 10% from the mean or a join moves more than 1.1x the ideal. Run it
// with
//
//	go test -run '^$' -bench PlacementSim -benchtime 1x -timeout 30m ./placement
//
// TestPlanScenarios is its small, always-run version.
func BenchmarkPlacementSim(b *testing.B) {
	for _, nodes := range []int{100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			for b.Loop() {
				simulate(b, 10, nodes/10, 12)
			}
		})
	}
}

func simulate(b *testing.B, zones, nodesPerZone, drivesPerNode int) {
	p := Policy{12, 4}
	drives := cluster(zones, nodesPerZone, drivesPerNode)
	pgs := PGCountFor(len(drives), p.SetSize())
	entries := float64(pgs * p.SetSize())
	b.Logf("%d zones x %d nodes x %d drives = %d drives, %s, %d PGs, %.1f entries per drive",
		zones, nodesPerZone, drivesPerNode, len(drives), p, pgs, entries/float64(len(drives)))

	start := time.Now()
	raw, err := NewMap(drives, p, pgs, 1)
	if err != nil {
		b.Fatal(err)
	}
	buildTime := time.Since(start)
	_, _, rawDev := spread(raw)
	start = time.Now()
	base, err := Plan(raw, drives, 2)
	if err != nil {
		b.Fatal(err)
	}
	planTime := time.Since(start)
	_, _, dev := spread(base)
	rebal, _ := Diff(raw, base)
	objDev := objectSpread(base, 16<<20)
	b.Logf("NewMap (rendezvous) %v: max drive deviation %.1f%%; Plan balancing it %v, %.1f%% of entries moved: max deviation %.1f%% by entries, %.1f%% by 16M equal objects; %d sets over the caps",
		buildTime.Round(time.Millisecond), 100*rawDev, planTime.Round(time.Millisecond), 100*float64(len(rebal))/entries, 100*dev, 100*objDev, capViolations(base))
	b.ReportMetric(buildTime.Seconds(), "build-s")
	b.ReportMetric(100*dev, "dev-%")
	b.ReportMetric(100*objDev, "objdev-%")
	if dev > 0.10 || objDev > 0.10 {
		b.Errorf("a drive strays %.1f%% (entries) / %.1f%% (objects) from the mean, want <= 10%%", 100*dev, 100*objDev)
	}

	js, err := json.Marshal(base)
	if err != nil {
		b.Fatal(err)
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(js)
	w.Close()
	// A compact encoding: the drive table once, then every entry as a
	// 2-byte drive index.
	compact := len(p.String()) + 8 + pgs*p.SetSize()*2
	for _, d := range base.Drives {
		compact += len(d.ID) + len(d.Node) + len(d.Zone) + len(d.Class) + 4
	}
	b.Logf("map encoded: JSON (today's Raft command) %.1f MB, gzipped %.1f MB; compact (2-byte drive indices) %.2f MB",
		mb(len(js)), mb(gz.Len()), mb(compact))
	b.ReportMetric(mb(len(js)), "json-MB")

	report := func(what string, next *Map, took time.Duration, ideal float64) float64 {
		moves, err := Diff(base, next)
		if err != nil {
			b.Fatal(err)
		}
		got := float64(len(moves)) / entries
		_, _, dev := spread(next)
		delta, err := base.Delta(next)
		if err != nil {
			b.Fatal(err)
		}
		js, err := json.Marshal(delta)
		if err != nil {
			b.Fatal(err)
		}
		if again, err := base.Apply(delta); err != nil || !slices.EqualFunc(again.PGs, next.PGs, slices.Equal) {
			b.Fatalf("Apply(Delta) does not give the planned map: %v", err)
		}
		b.Logf("%s: Plan %v, moved %.4f%% of entries (%d moves; the Delta is %.0f KB as JSON), ideal %.4f%% → %.2fx; max deviation after %.1f%%; %d sets over the caps",
			what, took.Round(time.Millisecond), 100*got, len(moves), float64(len(js))/1024, 100*ideal, got/ideal, 100*dev, capViolations(next))
		return got / ideal
	}

	joined := append(slices.Clone(drives), nodeDrives("z3", "new", drivesPerNode)...)
	start = time.Now()
	join, err := Plan(base, joined, 3)
	if err != nil {
		b.Fatal(err)
	}
	ratio := report("node joins", join, time.Since(start), float64(drivesPerNode)/float64(len(joined)))
	b.ReportMetric(ratio, "join-x-ideal")
	if ratio > 1.1 {
		b.Errorf("a join moved %.2fx the ideal, want <= 1.1x", ratio)
	}

	gone := drives[0].Node
	start = time.Now()
	leave, err := Plan(base, slices.DeleteFunc(slices.Clone(drives), func(d Drive) bool { return d.Node == gone }), 3)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(report("node leaves", leave, time.Since(start), float64(drivesPerNode)/float64(len(drives))), "leave-x-ideal")

	start = time.Now()
	fail, err := Plan(base, slices.DeleteFunc(slices.Clone(drives), func(d Drive) bool { return d.Zone == "z0" }), 3)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(report("zone fails", fail, time.Since(start), 1/float64(zones)), "zone-x-ideal")

	start = time.Now()
	split, err := base.Split(2*pgs, 3)
	if err != nil {
		b.Fatal(err)
	}
	moves, _ := Diff(base, split)
	b.Logf("split %d → %d PGs: %v, %d entries moved", pgs, 2*pgs, time.Since(start).Round(time.Millisecond), len(moves))

	// Today's way: rebuild the map from scratch by rendezvous on a join.
	start = time.Now()
	hrw, err := NewMap(joined, p, pgs, 3)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	hrwMoves, _ := Diff(raw, hrw)
	_, _, hrwDev := spread(hrw)
	b.Logf("for comparison, NewMap rebuilt on the join: %v, %.4f%% of (PG, slot) entries changed (%.2fx ideal), max deviation %.1f%%",
		took.Round(time.Millisecond), 100*float64(len(hrwMoves))/entries, float64(len(hrwMoves))/entries/(float64(drivesPerNode)/float64(len(joined))), 100*hrwDev)
}

// objectSpread places n equal objects with PGOf and returns the largest
// relative deviation of a drive's bytes from the mean.
func objectSpread(m *Map, n int) float64 {
	perPG := make([]int, m.PGCount())
	for i := range n {
		perPG[m.PGOf("tenant", "bucket", fmt.Sprintf("obj/%d", i))]++
	}
	per := make(map[DriveID]int, len(m.Drives))
	for pg, set := range m.PGs {
		for _, id := range set {
			per[id] += perPG[pg]
		}
	}
	mean := float64(n*m.Policy.SetSize()) / float64(len(m.Drives))
	dev := 0.0
	for _, d := range m.Drives {
		dev = max(dev, math.Abs(float64(per[d.ID])-mean)/mean)
	}
	return dev
}

func mb(n int) float64 { return float64(n) / (1 << 20) }

// BenchmarkPlacementGrowth grows a cluster from 20 to 1,000 nodes (10
// zones, 12 drives each, 12+4) by 20 nodes at a time, splitting PGs
// whenever PGCountFor asks for more. It reports the entries moved over the
// whole growth against the ideal (each step's new drives' share) and the
// balance at the end, and fails if a split moves anything or the growth
// moves more than 1.1x the ideal.
//
//	go test -run '^$' -bench PlacementGrowth -benchtime 1x -timeout 30m ./placement
func BenchmarkPlacementGrowth(b *testing.B) {
	for b.Loop() {
		p := Policy{12, 4}
		const zones, step, final, perNode = 10, 20, 1000, 12
		grow := func(n int) []Drive {
			var ds []Drive
			for i := range n {
				ds = append(ds, nodeDrives(fmt.Sprintf("z%d", i%zones), NodeID(fmt.Sprintf("n%04d", i)), perNode)...)
			}
			return ds
		}
		drives := grow(step)
		m, err := NewMap(drives, p, PGCountFor(len(drives), p.SetSize()), 1)
		if err != nil {
			b.Fatal(err)
		}
		if m, err = Plan(m, drives, 2); err != nil {
			b.Fatal(err)
		}
		var moved, ideal float64
		splits := 0
		start := time.Now()
		for n := 2 * step; n <= final; n += step {
			drives = grow(n)
			epoch := m.Epoch + 1
			if want := PGCountFor(len(drives), p.SetSize()); want > m.PGCount() {
				s, err := m.Split(want, epoch)
				if err != nil {
					b.Fatal(err)
				}
				if mv, _ := Diff(m, s); len(mv) != 0 {
					b.Fatalf("split to %d PGs moved %d entries", want, len(mv))
				}
				m, epoch, splits = s, epoch+1, splits+1
			}
			next, err := Plan(m, drives, epoch)
			if err != nil {
				b.Fatal(err)
			}
			mv, _ := Diff(m, next)
			moved += float64(len(mv)) / float64(next.PGCount()*p.SetSize())
			ideal += float64(step) / float64(n)
			m = next
		}
		_, _, dev := spread(m)
		b.Logf("rebuild peers per drive: grown map %.0f, a fresh map of the same drives %.0f", peers(m), peers(mustPlanB(b, drives, p, m.PGCount())))
		b.Logf("grew 20 → %d nodes by %d: %d splits to %d PGs in %v; moved %.3f of the data in total, ideal %.3f → %.2fx; max drive deviation at the end %.1f%%, %d sets over the caps",
			final, step, splits, m.PGCount(), time.Since(start).Round(time.Millisecond), moved, ideal, moved/ideal, 100*dev, capViolations(m))
		b.ReportMetric(moved/ideal, "moved-x-ideal")
		b.ReportMetric(100*dev, "dev-%")
		if moved/ideal > 1.1 || dev > 0.10 {
			b.Errorf("growth moved %.2fx the ideal with a final deviation of %.1f%%, want <= 1.1x and <= 10%%", moved/ideal, 100*dev)
		}
	}
}

// peers returns the mean number of distinct other drives each drive shares
// a set with: the drives that help rebuild it when it fails.
func peers(m *Map) float64 {
	index := make(map[DriveID]int, len(m.Drives))
	for i, d := range m.Drives {
		index[d.ID] = i
	}
	seen := make([]map[int]bool, len(m.Drives))
	for i := range seen {
		seen[i] = map[int]bool{}
	}
	for _, set := range m.PGs {
		for _, a := range set {
			for _, b := range set {
				if a != b {
					seen[index[a]][index[b]] = true
				}
			}
		}
	}
	total := 0
	for _, s := range seen {
		total += len(s)
	}
	return float64(total) / float64(len(m.Drives))
}

func mustPlanB(b *testing.B, drives []Drive, p Policy, pgs int) *Map {
	m, err := NewMap(drives, p, pgs, 1)
	if err != nil {
		b.Fatal(err)
	}
	if m, err = Plan(m, drives, 2); err != nil {
		b.Fatal(err)
	}
	return m
}
