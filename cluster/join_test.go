package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/tenant"
)

// storeNode is a Store with its RPC listener, as vaultd runs it.
type storeNode struct {
	store  *Store
	member Member
}

// startCluster starts n stores sharing a secret: the first bootstraps,
// the others wait to be added. members is what gossip would report;
// every store reconciles against it.
func startStores(t *testing.T, n int) ([]*storeNode, *fakeMembers) {
	t.Helper()
	return startStoresWith(t, n, nil)
}

// startStoresWith is startStores with opt, if set, adjusting each node's
// configuration before it opens.
func startStoresWith(t *testing.T, n int, opt func(*Config)) ([]*storeNode, *fakeMembers) {
	t.Helper()
	secret := []byte("join-test-secret-0123456789")
	view := &fakeMembers{}
	var nodes []*storeNode
	for i := range n {
		c := testConfig(t, t.TempDir())
		c.NodeID = fmt.Sprintf("n%d", i+1)
		c.Bootstrap = i == 0
		c.DeadVoterAfter = 500 * time.Millisecond
		c.Secret = secret
		// Three Raft peers in one process on a loaded machine: testConfig's
		// 100 ms heartbeat lost leadership mid-commit at load average 20
		// ("leadership lost while committing log"); these margins hold.
		c.tune = func(rc *raft.Config) {
			rc.HeartbeatTimeout = 500 * time.Millisecond
			rc.ElectionTimeout = 500 * time.Millisecond
			rc.LeaderLeaseTimeout = 250 * time.Millisecond
			rc.CommitTimeout = 5 * time.Millisecond
		}
		if opt != nil {
			opt(&c)
		}
		ln, err := ListenRPC("127.0.0.1:0", secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		var h atomic.Pointer[http.Handler]
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := h.Load(); p != nil {
				(*p).ServeHTTP(w, r)
				return
			}
			http.Error(w, "starting", http.StatusServiceUnavailable)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		s := open(t, c)
		rh := s.RPCHandler()
		h.Store(&rh)
		m := Member{Name: c.NodeID, RaftAddr: c.RaftAddr, RPCAddr: ln.Addr().String(), State: MemberAlive,
			Drives: []MemberDrive{{ID: c.NodeID + "-d0", Class: "local"}, {ID: c.NodeID + "-d1", Class: "local"}}}
		view.set(m)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.Reconcile(ctx, view.get) }()
		t.Cleanup(func() { cancel(); <-done })
		nodes = append(nodes, &storeNode{store: s, member: m})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, nd := range nodes {
		if err := nd.store.WaitReady(ctx); err != nil {
			t.Fatalf("%s: %v", nd.member.Name, err)
		}
	}
	// Wait for the map over every node's drives.
	for _, nd := range nodes {
		for {
			if m := nd.store.Map(); m != nil && len(m.Drives) == 2*n {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: map never held all %d drives", nd.member.Name, 2*n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes, view
}

type fakeMembers struct {
	mu sync.Mutex
	m  []Member
}

func (v *fakeMembers) set(m Member) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range v.m {
		if v.m[i].Name == m.Name {
			v.m[i] = m
			return
		}
	}
	v.m = append(v.m, m)
}

func (v *fakeMembers) get() []Member {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Member(nil), v.m...)
}

func TestJoinAndForward(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node raft cluster")
	}
	nodes, _ := startStores(t, 3)
	m := nodes[0].store.Map()
	if m.Policy.String() != "4+2" || m.Epoch != 3 {
		t.Errorf("map epoch %d policy %s; want epoch 3 (one per node) and 4+2", m.Epoch, m.Policy)
	}
	if len(nodes[2].store.OlderMaps()) != 2 {
		t.Errorf("older maps on n3: %d, want 2", len(nodes[2].store.OlderMaps()))
	}
	var st Status
	nodes[1].store.raftStatus(&st)
	voters := 0
	for _, sv := range st.Servers {
		if sv.Suffrage == "voter" {
			voters++
		}
	}
	if voters != 3 || st.Leader == "" {
		t.Errorf("raft status %+v; want 3 voters and a leader", st)
	}
	// Writes through every node; each node reads its own write at once.
	ctx := t.Context()
	for i, nd := range nodes {
		name := fmt.Sprintf("tenant-%d", i)
		if _, _, err := nd.store.CreateTenant(ctx, name); err != nil {
			t.Fatalf("CreateTenant on %s: %v", nd.member.Name, err)
		}
		if _, err := nd.store.Tenant(ctx, name); err != nil {
			t.Errorf("%s does not see its own write: %v", nd.member.Name, err)
		}
		if err := nd.store.CreateContainer(ctx, meta.ContainerInfo{Tenant: name, Name: "box"}); err != nil {
			t.Fatalf("CreateContainer on %s: %v", nd.member.Name, err)
		}
		if _, err := nd.store.Container(ctx, name, "box"); err != nil {
			t.Errorf("%s does not see its own container: %v", nd.member.Name, err)
		}
	}
	// Errors cross the wire as themselves.
	for _, nd := range nodes {
		if _, _, err := nd.store.CreateTenant(ctx, "tenant-0"); !errors.Is(err, tenant.ErrTenantExists) {
			t.Errorf("duplicate tenant on %s: %v, want tenant.ErrTenantExists", nd.member.Name, err)
		}
		if err := nd.store.CreateContainer(ctx, meta.ContainerInfo{Tenant: "tenant-1", Name: "box"}); !errors.Is(err, meta.ErrContainerExists) {
			t.Errorf("duplicate container on %s: %v", nd.member.Name, err)
		}
	}
}

func TestForwardRefusesWrongSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a raft cluster")
	}
	nodes, _ := startStores(t, 1)
	// A plain connection (no handshake) is closed before any HTTP.
	req, _ := http.NewRequest(http.MethodPost, "http://"+nodes[0].member.RPCAddr+applyPath, nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("apply over a plain connection: %s, want the connection refused", resp.Status)
	}
	other := &Store{cfg: Config{Secret: []byte("another-secret-0123456789")}, httpc: newForwardClient([]byte("another-secret-0123456789"))}
	if _, err := other.sendApply(t.Context(), nodes[0].member.RPCAddr, []byte{1}); err == nil {
		t.Error("apply from a node with another secret was accepted")
	}
	// An authenticated connection still needs signed requests.
	secret := []byte("join-test-secret-0123456789")
	c := &http.Client{Transport: RPCTransport(secret)}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned apply on an authenticated connection: %s, want 401", resp.Status)
	}
}

// TestVisibleEverywhere: a tenant, key or container created through one
// node is seen by every node as soon as the creation returned.
func TestVisibleEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node raft cluster")
	}
	nodes, _ := startStores(t, 3)
	ctx := t.Context()
	for i := range 30 {
		via := nodes[i%3].store
		name := fmt.Sprintf("vis-%02d", i)
		_, k, err := via.CreateTenant(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := via.CreateContainer(ctx, meta.ContainerInfo{Tenant: name, Name: "box"}); err != nil {
			t.Fatal(err)
		}
		for _, nd := range nodes {
			if tn, _, err := nd.store.LookupKey(ctx, k.AccessKey); err != nil || tn != name {
				t.Errorf("round %d: %s: LookupKey = %q, %v", i, nd.member.Name, tn, err)
			}
			if _, err := nd.store.Container(ctx, name, "box"); err != nil {
				t.Errorf("round %d: %s: Container: %v", i, nd.member.Name, err)
			}
			if cs, _ := nd.store.Containers(ctx, name); len(cs) != 1 {
				t.Errorf("round %d: %s: Containers = %v", i, nd.member.Name, cs)
			}
		}
	}
	// A miss that stays a miss is answered, not hung.
	if _, _, err := nodes[1].store.LookupKey(ctx, "NOSUCHKEY"); !errors.Is(err, tenant.ErrUnknownAccessKey) {
		t.Errorf("unknown key: %v", err)
	}
}

// TestRemovalsVisibleEverywhere: once a deletion of a container, key or
// tenant returned through any node, no node answers from the state before
// it. Lookups that hit answer from a node's own state (no sync), so
// without the removal's spread a follower a few milliseconds behind still
// served a deleted bucket (a PUT into it was acknowledged) or a deleted
// key (found by a hostile probe).
func TestRemovalsVisibleEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node raft cluster")
	}
	nodes, _ := startStores(t, 3)
	ctx := t.Context()
	stale, rounds := 0, 0
	// churn reports an election under load (the outcome of the call is
	// unknown): the round is skipped, not failed.
	churn := func(err error) bool { return errors.Is(err, meta.ErrUnavailable) }
	for i := range 30 {
		name := fmt.Sprintf("rm-%02d", i)
		create, remove := nodes[i%3].store, nodes[(i+1)%3].store
		_, k, err := create.CreateTenant(ctx, name)
		if err != nil {
			if churn(err) {
				continue
			}
			t.Fatal(err)
		}
		k2, err := create.CreateKey(ctx, name)
		if err != nil {
			if churn(err) {
				continue
			}
			t.Fatal(err)
		}
		if err := create.CreateContainer(ctx, meta.ContainerInfo{Tenant: name, Name: "box"}); err != nil {
			if churn(err) {
				continue
			}
			t.Fatal(err)
		}
		for _, nd := range nodes { // every node has seen them (a hit from now on)
			if _, err := nd.store.Container(ctx, name, "box"); err != nil {
				t.Fatalf("round %d: %s: Container: %v", i, nd.member.Name, err)
			}
			if _, _, err := nd.store.LookupKey(ctx, k2.AccessKey); err != nil {
				t.Fatalf("round %d: %s: LookupKey: %v", i, nd.member.Name, err)
			}
		}
		if err := remove.DeleteContainer(ctx, name, "box"); err != nil {
			if churn(err) {
				continue
			}
			t.Fatal(err)
		}
		for _, nd := range nodes {
			if _, err := nd.store.Container(ctx, name, "box"); !errors.Is(err, meta.ErrNoSuchContainer) {
				stale++
				t.Errorf("round %d: %s still serves the deleted container (err %v)", i, nd.member.Name, err)
			}
		}
		if err := remove.DeleteKey(ctx, name, k2.AccessKey); err != nil {
			if churn(err) {
				continue
			}
			t.Fatal(err)
		}
		for _, nd := range nodes {
			if _, _, err := nd.store.LookupKey(ctx, k2.AccessKey); !errors.Is(err, tenant.ErrUnknownAccessKey) {
				stale++
				t.Errorf("round %d: %s still authenticates a deleted key (err %v)", i, nd.member.Name, err)
			}
		}
		if err := remove.DeleteTenant(ctx, name); err != nil {
			if churn(err) {
				continue
			}
			t.Fatal(err)
		}
		for _, nd := range nodes {
			if _, _, err := nd.store.LookupKey(ctx, k.AccessKey); !errors.Is(err, tenant.ErrUnknownAccessKey) {
				stale++
				t.Errorf("round %d: %s still authenticates a deleted tenant's key (err %v)", i, nd.member.Name, err)
			}
		}
		rounds++
	}
	if rounds < 10 {
		t.Fatalf("only %d of 30 rounds ran without an election", rounds)
	}
	if stale > 0 {
		t.Fatalf("%d stale answers after removals returned", stale)
	}
}

// TestSecretsSealed: with a cluster secret, key secrets never enter the
// Raft log or snapshots in the clear, and every node reads them back.
func TestSecretsSealed(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a raft cluster")
	}
	nodes, _ := startStores(t, 2)
	ctx := t.Context()
	_, k, err := nodes[1].store.CreateTenant(ctx, "sealed")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := nodes[0].store.CreateKey(ctx, "sealed")
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		for _, key := range []tenant.Key{k, k2} {
			if tn, secret, err := nd.store.LookupKey(ctx, key.AccessKey); err != nil || tn != "sealed" || secret != string(key.Secret) {
				t.Errorf("%s: LookupKey(%s) = %q, %v", nd.member.Name, key.AccessKey, tn, err)
			}
		}
		snap := snapshotBytes(t, nd.store.fsm)
		for _, key := range []tenant.Key{k, k2} {
			if bytes.Contains(snap, []byte(key.Secret)) {
				t.Errorf("%s: snapshot holds a secret in the clear", nd.member.Name)
			}
		}
		// The raft log on disk.
		filepath.WalkDir(nd.store.cfg.Dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, key := range []tenant.Key{k, k2} {
				if bytes.Contains(b, []byte(key.Secret)) {
					t.Errorf("%s: %s holds a secret in the clear", nd.member.Name, path)
				}
			}
			return nil
		})
	}
	// A sealed record cannot be opened under another secret.
	other := &Store{}
	other.sealer, _ = newSealer([]byte("some-other-cluster-secret"))
	_, rec, _ := nodes[0].store.fsm.lookupKey(k.AccessKey)
	if _, err := other.unseal(rec); !errors.Is(err, errUnseal) {
		t.Errorf("unseal under another secret: %v", err)
	}
	// Moved to another access key, it does not open either.
	rec.AccessKey = k2.AccessKey
	if _, err := nodes[0].store.unseal(rec); !errors.Is(err, errUnseal) {
		t.Errorf("unseal under another access key: %v", err)
	}
}

// TestVotersAndPromotion: the first five nodes are voters, the sixth a
// non-voter; when a voter has been dead a while, the non-voter takes its
// place and the cluster keeps committing.
func TestVotersAndPromotion(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 6-node raft cluster")
	}
	nodes, view := startStores(t, 6)
	suffrage := func(s *Store) map[string]string {
		var st Status
		s.raftStatus(&st)
		out := map[string]string{}
		for _, sv := range st.Servers {
			out[sv.ID] = sv.Suffrage
		}
		return out
	}
	got := suffrage(nodes[0].store)
	voters := 0
	for _, v := range got {
		if v == "voter" {
			voters++
		}
	}
	if voters != MaxVoters || got["n6"] != "nonvoter" {
		t.Fatalf("suffrage %v; want %d voters and n6 a non-voter", got, MaxVoters)
	}
	// n5, a voter, dies.
	dead := nodes[4]
	dead.store.Close()
	m := dead.member
	m.State = MemberDead
	view.set(m)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var leader *Store
		for _, nd := range nodes[:4] {
			if nd.store.raft.State() == raft.Leader {
				leader = nd.store
			}
		}
		if leader != nil {
			if s := suffrage(leader); s["n6"] == "voter" && s["n5"] != "voter" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("n6 not promoted in place of dead n5: %v", suffrage(nodes[0].store))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, _, err := nodes[5].store.CreateTenant(t.Context(), "after-promotion"); err != nil {
		t.Errorf("write through the promoted node: %v", err)
	}
}

// TestListingsSyncOrFail: a follower lists tenants and containers only
// once it has caught up with the leader; when it cannot (here: every sync
// slot taken, as under a flood of listings, or the leader unreachable), the
// listing fails with meta.ErrUnavailable instead of answering from a state
// that may miss a creation acknowledged through another node (the chaos
// suites saw a follower's tenant listing miss a CreateTenant).
func TestListingsSyncOrFail(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node raft cluster")
	}
	nodes, _ := startStores(t, 3)
	ctx := t.Context()
	var leader, follower *Store
	for _, nd := range nodes {
		if nd.store.raft.State() == raft.Leader {
			leader = nd.store
		} else {
			follower = nd.store
		}
	}
	if leader == nil || follower == nil {
		t.Fatal("no leader and follower")
	}
	if _, _, err := leader.CreateTenant(ctx, "lister"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{leader, follower} {
		ts, err := s.Tenants(ctx)
		if err != nil || !slices.ContainsFunc(ts, func(x tenant.Tenant) bool { return x.Name == "lister" }) {
			t.Fatalf("Tenants = %v, %v; want it to list lister", ts, err)
		}
	}
	for range cap(follower.syncs) {
		follower.syncs <- struct{}{}
	}
	defer func() {
		for range cap(follower.syncs) {
			<-follower.syncs
		}
	}()
	if _, err := follower.Tenants(ctx); !errors.Is(err, meta.ErrUnavailable) {
		t.Fatalf("follower unable to sync: Tenants err = %v, want meta.ErrUnavailable", err)
	}
	if _, err := follower.Containers(ctx, "lister"); !errors.Is(err, meta.ErrUnavailable) {
		t.Fatalf("follower unable to sync: Containers err = %v, want meta.ErrUnavailable", err)
	}
	if _, err := leader.Tenants(ctx); err != nil {
		t.Fatalf("leader: Tenants: %v", err)
	}
}
