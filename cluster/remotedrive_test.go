package cluster

import (
	"context"
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
	if err := n1.store.OwnerFence(t.Context(), "remote-x", 1); err != nil {
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
	if err := n2.store.OwnerFence(t.Context(), "remote-x", 1); !errors.Is(err, ErrNotOwner) {
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
	if err := n1.store.OwnerFence(t.Context(), "remote-x", 1); !errors.Is(err, ErrNotOwner) {
		t.Errorf("deposed owner's fence: %v, want ErrNotOwner", err)
	}
	if err := n2.store.OwnerFence(t.Context(), "remote-x", 2); err != nil {
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
	if err := n2.store.OwnerFence(t.Context(), "remote-x", 2); err != nil {
		t.Fatalf("adopter's fence before n1 stops: %v", err)
	}
	n1.store.Close()
	stopped := time.Now()
	// Each check is bounded as the driver's call is: past OwnerLease the
	// fence waits for a sync with a leader that is not there.
	fence := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		return n2.store.OwnerFence(ctx, "remote-x", 2)
	}
	for fence() == nil {
		if time.Since(stopped) > OwnerLease+5*time.Second {
			t.Fatalf("n2's fence still passes %v after the cluster lost its leader", time.Since(stopped))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := fence(); !errors.Is(err, ErrNotOwner) {
		t.Errorf("cut-off owner's fence: %v, want ErrNotOwner", err)
	}
	t.Logf("n2's fence refused %v after n1 stopped", time.Since(stopped).Round(time.Millisecond))
}

// TestOwnerFenceAfterPause: a remote drive's owner that is the Raft leader
// and has not synced with its followers for OwnerLease (as after a
// SIGSTOP: the monotonic clock runs on) must prove it still leads before
// it writes. While its followers answer, the fence syncs and passes (the
// fence of session 10 passed without syncing: raft called n1 the leader);
// once they are gone it refuses.
func TestOwnerFenceAfterPause(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 2-node raft cluster")
	}
	nodes, view := startStores(t, 2)
	n1, n2 := nodes[0], nodes[1]
	m1 := n1.member
	m1.Drives = append(m1.Drives, MemberDrive{ID: "remote-x", Class: string(driver.ClassRemote), Zone: "remote:x"})
	view.set(m1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if node, _, ok := n1.store.DriveOwner("remote-x"); ok && node == "n1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("remote-x never attached to n1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !n1.store.IsLeader() {
		t.Fatal("n1 is not the Raft leader")
	}
	// pause ages n1's last sync as a pause of OwnerLease would, once no
	// sync is in flight (one that began before the "pause" and ends after
	// it is evidence from before it: in a real pause its start would be
	// as old).
	pause := func() {
		f := &n1.store.fresh
		for {
			f.mu.Lock()
			c := f.call
			if c == nil {
				f.synced = time.Now().Add(-OwnerLease - time.Second)
				f.mu.Unlock()
				return
			}
			f.mu.Unlock()
			<-c.done
		}
	}
	fence := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		return n1.store.OwnerFence(ctx, "remote-x", 1)
	}

	pause()
	if err := fence(); err != nil {
		t.Fatalf("fence after a pause, followers answering: %v", err)
	}
	if age := n1.store.syncAge(); age > OwnerLease {
		t.Fatalf("the fence passed without syncing: last sync %v ago", age)
	}

	n2.store.Close()
	// n2's transport may answer a last heartbeat while it closes: wait
	// until n1 itself can no longer confirm its leadership.
	deadline = time.Now().Add(10 * time.Second)
	for n1.store.raft.VerifyLeader().Error() == nil {
		if time.Now().After(deadline) {
			t.Fatal("n1 still confirms its leadership 10 s after its only follower closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	pause()
	leader := n1.store.IsLeader()
	if err := fence(); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("fence after a pause, followers gone (raft leader when asked: %v): %v, want ErrNotOwner", leader, err)
	}
	t.Logf("raft called n1 the leader when its fence was asked: %v", leader)
}
