package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
	"github.com/vaultaire/vaultaire/tenant"
)

func testMap(t *testing.T, nodes, drivesPer int, epoch placement.Epoch) *placement.Map {
	t.Helper()
	var ds []placement.Drive
	for n := range nodes {
		for d := range drivesPer {
			ds = append(ds, placement.Drive{ID: placement.DriveID(fmt.Sprintf("n%d-d%d", n, d)), Node: placement.NodeID(fmt.Sprintf("n%d", n)), Class: driver.ClassLocal})
		}
	}
	pol, err := placement.DefaultPolicy(len(ds))
	if err != nil {
		t.Fatal(err)
	}
	m, err := placement.NewMap(ds, pol, 16, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFSMClusterMap(t *testing.T) {
	f := newFSM()
	apply := func(ct cmdType, p any) any {
		return f.Apply(&raft.Log{Type: raft.LogCommand, Data: mustEncode(t, ct, p)})
	}
	n1 := NodeInfo{Name: "n1", RPCAddr: "127.0.0.1:1", Drives: []MemberDrive{{ID: "n1-d0", Class: "local"}, {ID: "n1-d1", Class: "local"}}}
	if r := apply(cmdPutNode, n1); r != nil {
		t.Fatal(r)
	}
	// A restart advertising fewer drives keeps the registered ones.
	less := n1
	less.Drives = less.Drives[:1]
	less.RPCAddr = "127.0.0.1:2"
	if r := apply(cmdPutNode, less); r != nil {
		t.Fatal(r)
	}
	if got, _ := f.node("n1"); len(got.Drives) != 2 || got.RPCAddr != "127.0.0.1:2" {
		t.Errorf("node after re-register = %+v; want 2 drives and the new address", got)
	}
	// A drive whose zone changed is the same drive, not a second one.
	zoned := less
	zoned.Drives = []MemberDrive{{ID: "n1-d0", Class: "local", Zone: "rack-a"}}
	if r := apply(cmdPutNode, zoned); r != nil {
		t.Fatal(r)
	}
	if got, _ := f.node("n1"); len(got.Drives) != 2 || !slices.Contains(got.Drives, zoned.Drives[0]) {
		t.Errorf("node after a zone change = %+v; want n1-d0 in rack-a and n1-d1", got)
	}
	apply(cmdPutNode, less) // back as it was for the rest of the test
	tests := []struct {
		name  string
		m     *placement.Map
		fails error
	}{
		{"first map must be epoch 1", testMap(t, 1, 2, 2), errStaleMap},
		{"epoch 1", testMap(t, 1, 2, 1), nil},
		{"replayed epoch 1", testMap(t, 1, 2, 1), errStaleMap},
		{"epoch 2", testMap(t, 2, 2, 2), nil},
		{"skips epoch", testMap(t, 3, 2, 4), errStaleMap},
		{"epoch 3", testMap(t, 3, 2, 3), nil},
	}
	for _, tc := range tests {
		r := apply(cmdSetMap, setMapCmd{Map: tc.m})
		err, _ := r.(error)
		if (tc.fails == nil) != (err == nil) || (tc.fails != nil && !errors.Is(err, tc.fails)) {
			t.Errorf("%s: Apply = %v; want %v", tc.name, r, tc.fails)
		}
	}
	if r := apply(cmdSetMap, setMapCmd{Map: &placement.Map{Epoch: 4}}); r == nil {
		t.Error("an invalid map was accepted")
	}
	if m := f.currentMap(); m == nil || m.Epoch != 3 || m.Policy.String() != "4+2" {
		t.Fatalf("current map = %+v; want epoch 3, 4+2", m)
	}
	older := f.olderMaps()
	if len(older) != 2 || older[0].Epoch != 2 || older[1].Epoch != 1 {
		t.Errorf("older maps: %d, want epochs 2, 1", len(older))
	}
	// Nodes and maps survive a snapshot round trip.
	snap := snapshotBytes(t, f)
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, g), snap) {
		t.Error("snapshot after Restore differs")
	}
	if m := g.currentMap(); m == nil || m.Epoch != 3 || len(g.olderMaps()) != 2 {
		t.Error("restored FSM lost its maps")
	}
	if got, ok := g.node("n1"); !ok || !got.equal(NodeInfo{Name: "n1", RPCAddr: "127.0.0.1:2", Drives: n1.Drives}) {
		t.Errorf("restored node = %+v", got)
	}
	// A version 1 snapshot (before the cluster map) still restores.
	if err := newFSM().Restore(io.NopCloser(bytes.NewReader([]byte(`{"version":1,"tenants":[],"containers":[]}`)))); err != nil {
		t.Errorf("version 1 snapshot: %v", err)
	}
}

func TestWireErrors(t *testing.T) {
	for _, w := range wireErrors {
		code, msg := encodeErr(fmt.Errorf("ctx: %w", w.err))
		if code != w.code {
			t.Errorf("%v encodes as %q, want %q", w.err, code, w.code)
		}
		if got := decodeWireErr(code, msg); !errors.Is(got, w.err) {
			t.Errorf("%q decodes to %v, which is not %v", code, got, w.err)
		}
	}
	if code, _ := encodeErr(errors.New("disk on fire")); code != "Internal" {
		t.Errorf("unknown error code %q", code)
	}
	if decodeWireErr("", "") != nil {
		t.Error("empty code is an error")
	}
}

func TestFSMLimitsAndUsage(t *testing.T) {
	f := newFSM()
	apply := func(ct cmdType, p any) any {
		return f.Apply(&raft.Log{Type: raft.LogCommand, Data: mustEncode(t, ct, p)})
	}
	apply(cmdCreateTenant, createTenantCmd{Name: "acme", Key: newKey(time.Time{})})
	if r := apply(cmdSetLimits, setLimitsCmd{Tenant: "acme", Limits: tenant.Limits{RPS: 20, Burst: 40, MaxBytes: 9}, Set: []string{"rate"}}); r != nil {
		t.Fatal(r)
	}
	if r := apply(cmdSetLimits, setLimitsCmd{Tenant: "acme", Limits: tenant.Limits{MaxBytes: 1 << 20, MaxArtifacts: 5}, Set: []string{"quota"}}); r != nil {
		t.Fatal(r)
	}
	if r, _ := apply(cmdSetLimits, setLimitsCmd{Tenant: "nobody", Set: []string{"rate"}}).(error); !errors.Is(r, tenant.ErrNoSuchTenant) {
		t.Errorf("limits of a missing tenant: %v", r)
	}
	apply(cmdUsage, usageCmd{Deltas: []tenant.UsageDelta{{Tenant: "acme", Bytes: 100, Artifacts: 2}, {Tenant: "gone", Bytes: 5}}})
	apply(cmdUsage, usageCmd{Deltas: []tenant.UsageDelta{{Tenant: "acme", Bytes: -40, Artifacts: -1}}})
	tn, _ := f.tenant("acme")
	want := tenant.Limits{RPS: 20, Burst: 40, MaxBytes: 1 << 20, MaxArtifacts: 5}
	if tn.Limits != want || tn.Usage != (tenant.Usage{Bytes: 60, Artifacts: 1}) {
		t.Errorf("tenant %+v; want limits %+v and usage 60 bytes, 1 artifact", tn, want)
	}
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	if tg, _ := g.tenant("acme"); tg.Limits != want || tg.Usage != tn.Usage {
		t.Errorf("after restore %+v", tg)
	}
}

func TestFSMDropMap(t *testing.T) {
	f := newFSM()
	for e := placement.Epoch(1); e <= 3; e++ {
		if r := f.Apply(&raft.Log{Type: raft.LogCommand, Data: mustEncode(t, cmdSetMap, setMapCmd{Map: testMap(t, int(e), 2, e)})}); r != nil {
			t.Fatal(r)
		}
	}
	drop := func(e placement.Epoch) any {
		return f.Apply(&raft.Log{Type: raft.LogCommand, Data: mustEncode(t, cmdDropMap, dropMapCmd{Epoch: e})})
	}
	if r := drop(3); r == nil {
		t.Error("dropped the current map")
	}
	if r := drop(1); r != nil {
		t.Fatal(r)
	}
	if r := drop(1); r != nil {
		t.Errorf("dropping twice: %v", r)
	}
	if old := f.olderMaps(); len(old) != 1 || old[0].Epoch != 2 || f.currentMap().Epoch != 3 {
		t.Errorf("older maps %d, current %d; want [2] and 3", len(old), f.currentMap().Epoch)
	}
	// The next map still follows the current epoch.
	if r := f.Apply(&raft.Log{Type: raft.LogCommand, Data: mustEncode(t, cmdSetMap, setMapCmd{Map: testMap(t, 4, 2, 4)})}); r != nil {
		t.Errorf("map after a drop: %v", r)
	}
}
