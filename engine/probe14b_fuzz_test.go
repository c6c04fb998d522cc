package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// TestProbe14bListPagingFuzz: twelve drives, chosen 4+2, one map. Random
// puts, overwrites and deletes, each with up to two random drives offline
// (so every write reaches its quorum but not every drive); then paged
// listings (small pages, delimiter or not) where the drives offline change
// between pages (a straggler dropped for one page is back for the next).
// Every page that answers must agree with the model of acknowledged
// writes: no key skipped, repeated, stale or resurrected.
func TestProbe14bListPagingFuzz(t *testing.T) {
	probeGate(t)
	ctx := t.Context()
	var pdrives []placement.Drive
	ds := map[placement.DriveID]driver.Driver{}
	faulty := map[placement.DriveID]*drivertest.Faulty{}
	var ids []placement.DriveID
	for i := range 12 {
		id := placement.DriveID(fmt.Sprintf("d%02d", i))
		ids = append(ids, id)
		pdrives = append(pdrives, placement.Drive{ID: id, Node: placement.NodeID(fmt.Sprintf("n%d", i)), Class: driver.ClassLocal})
		f := drivertest.NewFaulty(&drivertest.Mem{MemID: id, ClusterID: "test"})
		faulty[id], ds[id] = f, f
	}
	m, err := placement.NewMap(pdrives, placement.Policy{Data: 4, Parity: 2}, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Chosen = true
	e := staticEngine(t, m, ds)
	rng := rand.New(rand.NewPCG(14, 2))
	setOff := func(down []placement.DriveID) {
		for _, id := range ids {
			faulty[id].SetOffline(slices.Contains(down, id))
		}
	}
	pick := func(n int) []placement.DriveID {
		p := rng.Perm(len(ids))
		var d []placement.DriveID
		for _, i := range p[:n] {
			d = append(d, ids[i])
		}
		return d
	}
	model := map[string]int{}
	for op := range 600 {
		key := fmt.Sprintf("p%d/k%03d", rng.IntN(4), rng.IntN(150))
		setOff(pick(rng.IntN(3)))
		if rng.IntN(4) == 0 {
			err := e.Delete(ctx, "t", "c", key)
			if err == nil || errors.Is(err, ErrNoSuchArtifact) {
				delete(model, key)
			} else {
				t.Fatalf("op %d Delete(%s): %v", op, key, err)
			}
			continue
		}
		n := 1 + rng.IntN(300)
		data := bytes.Repeat([]byte{byte(op)}, n)
		if _, err := e.Put(ctx, "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(n)}); err != nil {
			t.Fatalf("op %d Put(%s): %v", op, key, err)
		}
		model[key] = n
	}
	setOff(nil)
	e.WaitBackground()
	want := slices.Sorted(func(yield func(string) bool) {
		for k := range model {
			if !yield(k) {
				return
			}
		}
	})
	errs, ok := 0, 0
	for round := range 300 {
		limit := 1 + rng.IntN(40)
		delim := ""
		if round%3 == 0 {
			delim = "/"
		}
		var got []string
		sizes := map[string]int64{}
		after := ""
		failed := false
		for {
			var down []placement.DriveID
			answered := map[placement.DriveID]bool{}
			for try := 0; ; try++ {
				down = pick(rng.IntN(6))
				for _, id := range ids {
					answered[id] = !slices.Contains(down, id)
				}
				if try > 50 || pgsCovered(m, answered) {
					break
				}
			}
			setOff(down)
			hung := round%30 == 1 && len(down) > 0
			if hung { // the first drive down hangs instead: dropped after the grace
				faulty[down[0]].SetOffline(false)
				faulty[down[0]].SetHang(true)
			}
			res, err := e.List(ctx, "t", "c", ListOptions{After: after, Limit: limit, Delimiter: delim})
			if err != nil {
				if hung {
					faulty[down[0]].SetHang(false)
				}
				if pgsCovered(m, answered) {
					t.Errorf("round %d: List failed with %v down, which cover every PG: %v", round, down, err)
				}
				failed = true
				break
			}
			if hung {
				faulty[down[0]].SetHang(false)
			}
			for _, a := range res.Artifacts {
				got = append(got, a.Key)
				sizes[a.Key] = a.Size
			}
			got = append(got, res.Prefixes...)
			if !res.Truncated {
				break
			}
			after = res.Next
		}
		setOff(nil)
		if failed {
			errs++
			continue
		}
		ok++
		exp := want
		if delim != "" {
			seen := map[string]bool{}
			exp = nil
			for _, k := range want {
				cp := k[:3]
				if !seen[cp] {
					seen[cp] = true
					exp = append(exp, cp)
				}
			}
		}
		if !slices.Equal(got, exp) {
			t.Errorf("round %d (limit %d delim %q): listed %d entries, want %d\n got %q\nwant %q", round, limit, delim, len(got), len(exp), got, exp)
			continue
		}
		for k, s := range sizes {
			if int64(model[k]) != s {
				t.Errorf("round %d: %s listed with size %d, acknowledged %d", round, k, s, model[k])
			}
		}
	}
	t.Logf("%d listings answered, %d failed", ok, errs)
}
