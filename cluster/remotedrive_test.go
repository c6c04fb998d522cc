package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// TestRemoteDriveAdoption: a remote drive is registered on the node that
// declared it, in its own failure domain; another node declaring it does
// not take it by registering; AdoptDrive moves it through Raft, bumping
// the owner epoch, and the deposed owner's fence refuses from then on, as
// does the owner's once it is cut off from the Raft leader.
func TestRemoteDriveAdoption(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 2-node raft cluster")
	}
	nodes, view := startStores(t, 2)
	n1, n2 := nodes[0], nodes[1]
	rd := MemberDrive{ID: "remote-x", Class: string(driver.ClassRemote), Zone: "remote:x"}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	onNode := func(s *Store, want string) func() bool {
		return func() bool {
			m := s.Map()
			d, ok := m.Drive("remote-x")
			return ok && string(d.Node) == want && d.Class == driver.ClassRemote && d.Zone == "remote:x"
		}
	}
	m1 := n1.member
	m1.Drives = append(m1.Drives, rd)
	view.set(m1)
	waitFor("remote-x in n1's map attached to n1", onNode(n1.store, "n1"))
	waitFor("remote-x in n2's map attached to n1", onNode(n2.store, "n1"))
	if node, epoch, ok := n2.store.DriveOwner("remote-x"); !ok || node != "n1" || epoch != 1 {
		t.Fatalf("DriveOwner = %q, %d, %v; want n1, 1, true", node, epoch, ok)
	}
	if err := n1.store.OwnerFence("remote-x", 1); err != nil {
		t.Fatalf("owner's fence: %v", err)
	}

	// n2 declares the same drive: registering does not move it.
	m2 := n2.member
	m2.Drives = append(m2.Drives, rd)
	view.set(m2)
	time.Sleep(3 * reconcileEvery)
	if node, epoch, _ := n1.store.DriveOwner("remote-x"); node != "n1" || epoch != 1 {
		t.Fatalf("after n2 declared remote-x: owner %s epoch %d, want n1 at 1", node, epoch)
	}
	for _, n := range n1.store.Nodes() {
		if n.Name == "n2" && len(n.Drives) != 2 {
			t.Errorf("n2 registered with %d drives %+v, want its 2 local ones", len(n.Drives), n.Drives)
		}
	}
	if err := n2.store.OwnerFence("remote-x", 1); !errors.Is(err, ErrNotOwner) {
		t.Errorf("n2's fence before adoption: %v, want ErrNotOwner", err)
	}

	ctx := t.Context()
	// A stale epoch (a racing adoption won first) is refused.
	if _, err := n2.store.AdoptDrive(ctx, "remote-x", "n1", "n2", 0); !errors.Is(err, ErrDriveMoved) {
		t.Fatalf("adoption at a stale epoch: %v, want ErrDriveMoved", err)
	}
	epoch, err := n2.store.AdoptDrive(ctx, "remote-x", "n1", "n2", 1)
	if err != nil || epoch != 2 {
		t.Fatalf("AdoptDrive = %d, %v; want 2", epoch, err)
	}
	waitFor("remote-x attached to n2 in n1's map", onNode(n1.store, "n2"))
	waitFor("remote-x attached to n2 in n2's map", onNode(n2.store, "n2"))
	if err := n1.store.OwnerFence("remote-x", 1); !errors.Is(err, ErrNotOwner) {
		t.Errorf("deposed owner's fence: %v, want ErrNotOwner", err)
	}
	if err := n2.store.OwnerFence("remote-x", 2); err != nil {
		t.Errorf("adopter's fence: %v", err)
	}
	// The deposed owner still advertising it does not get it back.
	time.Sleep(3 * reconcileEvery)
	if node, epoch, _ := n1.store.DriveOwner("remote-x"); node != "n2" || epoch != 2 {
		t.Errorf("after n1 kept advertising: owner %s epoch %d, want n2 at 2", node, epoch)
	}
	if d, _ := n1.store.Map().Drive("remote-x"); d.Node != "n2" {
		t.Errorf("map attaches remote-x to %s, want n2", d.Node)
	}

	// Cut off from the cluster (n1 gone: no leader), the owner cannot know
	// whether it was deposed: its fence refuses within OwnerLease.
	if err := n2.store.OwnerFence("remote-x", 2); err != nil {
		t.Fatalf("adopter's fence before n1 stops: %v", err)
	}
	n1.store.Close()
	stopped := time.Now()
	for n2.store.OwnerFence("remote-x", 2) == nil {
		if time.Since(stopped) > OwnerLease+5*time.Second {
			t.Fatalf("n2's fence still passes %v after the cluster lost its leader", time.Since(stopped))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := n2.store.OwnerFence("remote-x", 2); !errors.Is(err, ErrNotOwner) {
		t.Errorf("cut-off owner's fence: %v, want ErrNotOwner", err)
	}
	t.Logf("n2's fence refused %v after n1 stopped", time.Since(stopped).Round(time.Millisecond))
}
