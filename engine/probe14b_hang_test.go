package engine

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// midHang is a drive whose ListRecords hangs (until ctx ends) once on is
// set and the listing has moved past after.
type midHang struct {
	*drivertest.Faulty
	on    atomic.Bool
	after string
	calls atomic.Int64
}

func (h *midHang) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	h.calls.Add(1)
	if h.on.Load() && strings.HasPrefix(prefix, indexPrefix("t", "c")) && after > indexPrefix("t", "c")+h.after {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return h.Faulty.ListRecords(ctx, prefix, after, limit)
}

// TestProbe14bListHangMidWalk: twelve drives, 4+2, so each drive holds
// about half the keys and the cursors run dry at different times. One
// drive answers the listing's first batches, then hangs. A fill where it is
// the only cursor needing a batch waits for it with no straggler grace
// (fanOutUntil asks enough only when a call returns), though the others
// already cover every PG: the listing hangs until the request's ctx ends.
func TestProbe14bListHangMidWalk(t *testing.T) {
	// (fixed after the probe of session 14: a regression test now)
	ctx := t.Context()
	var pdrives []placement.Drive
	ds := map[placement.DriveID]driver.Driver{}
	var hung *midHang
	for i := range 12 {
		id := placement.DriveID(fmt.Sprintf("d%02d", i))
		pdrives = append(pdrives, placement.Drive{ID: id, Node: placement.NodeID(fmt.Sprintf("n%d", i)), Class: driver.ClassLocal})
		f := drivertest.NewFaulty(&drivertest.Mem{MemID: id, ClusterID: "test"})
		if i == 0 {
			hung = &midHang{Faulty: f, after: "k0100"}
			ds[id] = hung
		} else {
			ds[id] = f
		}
	}
	m, err := placement.NewMap(pdrives, placement.Policy{Data: 4, Parity: 2}, placement.DefaultPGCount, 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Chosen = true
	e := staticEngine(t, m, ds)
	const n = 1500
	for i := range n {
		k := fmt.Sprintf("k%04d", i)
		if _, err := e.Put(ctx, "t", "c", k, bytes.NewReader([]byte(k)), PutOptions{Size: int64(len(k))}); err != nil {
			t.Fatal(err)
		}
	}
	hung.on.Store(true)
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	began := time.Now()
	count := 0
	after := ""
	var lerr error
	for {
		res, err := e.List(lctx, "t", "c", ListOptions{After: after, Limit: 1000})
		if err != nil {
			lerr = err
			break
		}
		count += len(res.Artifacts)
		if !res.Truncated {
			break
		}
		after = res.Next
	}
	took := time.Since(began)
	t.Logf("listing with d00 hanging after k0100: %d keys, err %v, took %v", count, lerr, took)
	if lerr != nil || took > 5*time.Second {
		t.Errorf("one drive hung mid-walk (the other 11 cover every PG): listing took %v, err %v; want it dropped after the straggler grace (<= %v per fill)", took, lerr, maxStraggle)
	}
	if lerr == nil && count != n {
		t.Errorf("listed %d keys, want %d", count, n)
	}
}

// staticEngine returns an Engine over m and the drives ds, with one
// container "c" of tenant "t", waiting for its background work at the
// end of the test.
func staticEngine(t *testing.T, m *placement.Map, ds map[placement.DriveID]driver.Driver) *Engine {
	t.Helper()
	topo, err := NewStatic(m, ds)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Topology: topo, Containers: &MemContainers{}, StripeSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.WaitBackground)
	if err := e.CreateContainer(t.Context(), "t", "c"); err != nil {
		t.Fatal(err)
	}
	return e
}
