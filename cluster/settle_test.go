package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/placement"
)

// TestFSMSettledContainers: a container is created settled at the epoch
// of the map current when the FSM applies its creation (whatever the
// entry says: entries written before the field carry none); settling
// raises every container to an epoch, never lowers one, refuses an epoch
// past the current map; snapshots keep the values, and a snapshot
// written before the field restores them as 0.
func TestFSMSettledContainers(t *testing.T) {
	f := newFSM()
	idx := uint64(0)
	apply := func(ct cmdType, p any) any {
		t.Helper()
		idx++
		return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: mustEncode(t, ct, p)})
	}
	settled := func(name string) uint64 {
		t.Helper()
		c, ok := f.container("acme", name)
		if !ok {
			t.Fatalf("container %s missing", name)
		}
		return c.Settled
	}
	if r := apply(cmdCreateTenant, createTenantCmd{Name: "acme", Key: newKey(time.Time{})}); r != nil {
		t.Fatal(r)
	}
	create := func(name string) {
		t.Helper()
		if r := apply(cmdCreateContainer, createContainerCmd{Tenant: "acme", Name: name}); r != nil {
			t.Fatal(r)
		}
	}
	setMap := func(e placement.Epoch) {
		t.Helper()
		if r := apply(cmdSetMap, setMapCmd{Map: testMap(t, 3, 2, e)}); r != nil {
			t.Fatal(r)
		}
	}
	create("before-any-map")
	setMap(1)
	create("at1")
	setMap(2)
	setMap(3)
	create("at3")
	// An entry as written before the field existed: no settled epoch.
	idx++
	if r := f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: append([]byte{byte(cmdCreateContainer)}, `{"tenant":"acme","name":"old-entry","created":"2026-11-01T00:00:00Z"}`...)}); r != nil {
		t.Fatal(r)
	}
	steps := []struct {
		name   string
		settle placement.Epoch // 0: no command
		except []string        // cmdSettleContainersExcept leaving these out
		fails  bool
		want   map[string]uint64
	}{
		{"created", 0, nil, false, map[string]uint64{"before-any-map": 0, "at1": 1, "at3": 3, "old-entry": 3}},
		{"settle 2 but at1", 2, []string{"at1"}, false, map[string]uint64{"before-any-map": 2, "at1": 1, "at3": 3, "old-entry": 3}},
		{"settle 2 raises the lower", 2, nil, false, map[string]uint64{"before-any-map": 2, "at1": 2, "at3": 3, "old-entry": 3}},
		{"settle 1 lowers nothing", 1, nil, false, map[string]uint64{"before-any-map": 2, "at1": 2, "at3": 3, "old-entry": 3}},
		{"settle past the current map", 4, nil, true, map[string]uint64{"before-any-map": 2, "at1": 2, "at3": 3, "old-entry": 3}},
		{"settle past the current map but at1", 4, []string{"at1"}, true, map[string]uint64{"before-any-map": 2, "at1": 2, "at3": 3, "old-entry": 3}},
		{"settle 3", 3, nil, false, map[string]uint64{"before-any-map": 3, "at1": 3, "at3": 3, "old-entry": 3}},
	}
	for _, st := range steps {
		if st.settle > 0 {
			ct, c := cmdSettleContainers, settleContainersCmd{Epoch: st.settle}
			if st.except != nil {
				ct = cmdSettleContainersExcept
				for _, n := range st.except {
					c.Except = append(c.Except, meta.ContainerRef{Tenant: "acme", Name: n})
				}
			}
			r := apply(ct, c)
			if got := r != nil; got != st.fails {
				t.Errorf("%s: settle %d = %v, want failure %v", st.name, st.settle, r, st.fails)
			}
		}
		for name, want := range st.want {
			if got := settled(name); got != want {
				t.Errorf("%s: %s settled at %d, want %d", st.name, name, got, want)
			}
		}
	}

	// The snapshot keeps them.
	snap := snapshotBytes(t, f)
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if c, _ := g.container("acme", "at1"); c.Settled != 3 {
		t.Errorf("after restore: at1 settled at %d, want 3", c.Settled)
	}
	// A snapshot written before the field: the same JSON without it.
	var d map[string]any
	if err := json.Unmarshal(snap, &d); err != nil {
		t.Fatal(err)
	}
	for _, c := range d["containers"].([]any) {
		delete(c.(map[string]any), "Settled")
	}
	old, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(old), "Settled") {
		t.Fatal("the old snapshot still has Settled")
	}
	h := newFSM()
	if err := h.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatalf("restore a snapshot without settled epochs: %v", err)
	}
	for _, name := range []string{"before-any-map", "at1", "at3", "old-entry"} {
		if c, ok := h.container("acme", name); !ok || c.Settled != 0 {
			t.Errorf("old snapshot: %s = %+v, %v; want it with settled 0 (every older map)", name, c, ok)
		}
	}
}

// TestStoreSettleContainers: SettleContainers through Raft raises every
// container's Settled but those it leaves out, as Container reports it.
func TestStoreSettleContainers(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	var ds []MemberDrive
	for i := range 6 {
		ds = append(ds, MemberDrive{ID: fmt.Sprintf("d%d", i), Class: "local"})
	}
	if _, _, err := s.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterNode(ctx, NodeInfo{Name: "a", Drives: ds}); err != nil {
		t.Fatal(err)
	}
	e1 := s.Map().Epoch
	for _, n := range []string{"box", "bin"} {
		if err := s.CreateContainer(ctx, meta.ContainerInfo{Tenant: "acme", Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := s.Container(ctx, "acme", "box"); err != nil || c.Settled != uint64(e1) {
		t.Fatalf("Container(box) = %+v, %v; want settled at the creation's epoch %d", c, err, e1)
	}
	if err := s.RegisterNode(ctx, NodeInfo{Name: "b", Drives: []MemberDrive{{ID: "d6", Class: "local"}}}); err != nil {
		t.Fatal(err)
	}
	e2 := s.Map().Epoch
	if e2 <= e1 {
		t.Fatalf("a join made epoch %d after %d", e2, e1)
	}
	if err := s.SettleContainers(ctx, e2+1, nil); err == nil {
		t.Error("SettleContainers past the current epoch: nil error")
	}
	if err := s.SettleContainers(ctx, e2, []meta.ContainerRef{{Tenant: "acme", Name: "bin"}}); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]placement.Epoch{"box": e2, "bin": e1} {
		if c, err := s.Container(ctx, "acme", n); err != nil || c.Settled != uint64(want) {
			t.Errorf("after SettleContainers(%d) but bin: Container(%s) = %+v, %v; want settled at %d", e2, n, c, err, want)
		}
	}
	if err := s.SettleContainers(ctx, e2, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"box", "bin"} {
		if c, err := s.Container(ctx, "acme", n); err != nil || c.Settled != uint64(e2) {
			t.Errorf("after SettleContainers(%d): Container(%s) = %+v, %v", e2, n, c, err)
		}
	}
}
