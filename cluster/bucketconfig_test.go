package cluster

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/meta"
)

func mustConfig(t *testing.T, s *Store, tn, c, want string) {
	t.Helper()
	got, ok, err := s.BucketConfig(t.Context(), tn, c, "cors")
	if err != nil || !ok || string(got) != want {
		t.Fatalf("BucketConfig(%s/%s) = %q, %v, %v; want %q", tn, c, got, ok, err, want)
	}
}

func noConfig(t *testing.T, s *Store, tn, c string) {
	t.Helper()
	if got, ok, err := s.BucketConfig(t.Context(), tn, c, "cors"); ok || err != nil {
		t.Fatalf("BucketConfig(%s/%s) = %q, %v, %v; want none", tn, c, got, ok, err)
	}
	if _, ok := s.LocalBucketConfig(tn, c, "cors"); ok {
		t.Fatalf("LocalBucketConfig(%s/%s) found one", tn, c)
	}
}

func TestBucketConfig(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, _, err := s.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBucketConfig(ctx, "acme", "box", "cors", []byte("x")); !errors.Is(err, meta.ErrNoSuchContainer) {
		t.Fatalf("put on a missing container: %v", err)
	}
	if err := s.CreateContainer(ctx, meta.ContainerInfo{Tenant: "acme", Name: "box"}); err != nil {
		t.Fatal(err)
	}
	noConfig(t, s, "acme", "box")
	if got := s.ContainerTenants("box"); !slices.Equal(got, []string{"acme"}) {
		t.Errorf("ContainerTenants = %v", got)
	}
	for _, tc := range []struct {
		name, kind string
		doc        []byte
		ok         bool
	}{
		{"unknown kind", "nosuch", []byte("x"), false},
		{"too large", "cors", bytes.Repeat([]byte("x"), MaxConfigSize+1), false},
		{"set", "cors", []byte("<CORSConfiguration/>"), true},
	} {
		err := s.PutBucketConfig(ctx, "acme", "box", tc.kind, tc.doc)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	mustConfig(t, s, "acme", "box", "<CORSConfiguration/>")
	noConfig(t, s, "other", "box")
	if err := s.DeleteBucketConfig(ctx, "acme", "box", "cors"); err != nil {
		t.Fatal(err)
	}
	noConfig(t, s, "acme", "box")
	// Removed with its container: a new container of the name starts bare.
	if err := s.PutBucketConfig(ctx, "acme", "box", "cors", []byte("again")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteContainer(ctx, "acme", "box"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateContainer(ctx, meta.ContainerInfo{Tenant: "acme", Name: "box"}); err != nil {
		t.Fatal(err)
	}
	noConfig(t, s, "acme", "box")
}

func TestBucketConfigSnapshot(t *testing.T) {
	c := testConfig(t, t.TempDir())
	tune := c.tune
	c.tune = func(rc *raft.Config) { tune(rc); rc.TrailingLogs = 2 }
	s := open(t, c)
	ctx := t.Context()
	if _, _, err := s.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if err := s.CreateContainer(ctx, meta.ContainerInfo{Tenant: "acme", Name: n}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutBucketConfig(ctx, "acme", n, "cors", []byte("doc-"+n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	// After the snapshot, from the log.
	if err := s.DeleteBucketConfig(ctx, "acme", "b", "cors"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, c)
	if s2.fsm.restores.Load() != 1 {
		t.Fatalf("restores = %d, want 1", s2.fsm.restores.Load())
	}
	mustConfig(t, s2, "acme", "a", "doc-a")
	noConfig(t, s2, "acme", "b")
	mustConfig(t, s2, "acme", "c", "doc-c")
}

// A version 2 snapshot (before configuration documents) still restores.
func TestBucketConfigOldSnapshot(t *testing.T) {
	f := newFSM()
	old := `{"version":2,"tenants":[{"name":"acme","keys":[]}],"containers":[{"Tenant":"acme","Name":"box"}],"applied":7}`
	if err := f.Restore(nopCloser{strings.NewReader(old)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.container("acme", "box"); !ok {
		t.Fatal("container lost")
	}
	if _, ok := f.config("acme", "box", "cors"); ok {
		t.Fatal("config from nowhere")
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

// TestBucketConfigEverywhere: set through one node, read on every other;
// an update and a delete are seen everywhere once they return.
func TestBucketConfigEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node raft cluster")
	}
	nodes, _ := startStores(t, 3)
	ctx := t.Context()
	if _, _, err := nodes[1].store.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].store.CreateContainer(ctx, meta.ContainerInfo{Tenant: "acme", Name: "box"}); err != nil {
		t.Fatal(err)
	}
	for i, doc := range []string{"one", "two", "three"} {
		if err := nodes[i%3].store.PutBucketConfig(ctx, "acme", "box", "cors", []byte(doc)); err != nil {
			t.Fatal(err)
		}
		for _, nd := range nodes {
			mustConfig(t, nd.store, "acme", "box", doc)
		}
	}
	if err := nodes[1].store.DeleteBucketConfig(ctx, "acme", "box", "cors"); err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		noConfig(t, nd.store, "acme", "box")
	}
	if err := nodes[2].store.PutBucketConfig(ctx, "acme", "box", "cors", []byte("four")); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].store.DeleteContainer(ctx, "acme", "box"); err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		noConfig(t, nd.store, "acme", "box")
	}
}

// wantPublic checks every node's PublicBucketOwner of a name.
func wantPublic(t *testing.T, stores []*Store, name, owner string) {
	t.Helper()
	for i, s := range stores {
		got, ok := s.PublicBucketOwner(name)
		if got != owner || ok != (owner != "") {
			t.Fatalf("node %d: PublicBucketOwner(%s) = %q, %v; want %q", i, name, got, ok, owner)
		}
	}
}

// TestPublicBucketClaim: an "acl" or "policy" document claims its
// container's name across tenants on every node; another tenant's claim is
// refused with ErrPublicNameTaken (through a follower too); deleting the
// documents or the container releases the name, so a stale claim never points at another tenant's later container.
func TestPublicBucketClaim(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node raft cluster")
	}
	nodes, _ := startStores(t, 3)
	ctx := t.Context()
	var stores []*Store
	for _, nd := range nodes {
		stores = append(stores, nd.store)
	}
	for _, tn := range []string{"acme", "zeta"} {
		if _, _, err := stores[0].CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if err := stores[1].CreateContainer(ctx, meta.ContainerInfo{Tenant: tn, Name: "box"}); err != nil {
			t.Fatal(err)
		}
	}
	wantPublic(t, stores, "box", "")
	if err := stores[1].PutBucketConfig(ctx, "acme", "box", "acl", []byte("public-read")); err != nil {
		t.Fatal(err)
	}
	wantPublic(t, stores, "box", "acme")
	if err := stores[2].PutBucketConfig(ctx, "acme", "box", "policy", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for i, kind := range []string{"acl", "policy"} {
		if err := stores[i].PutBucketConfig(ctx, "zeta", "box", kind, []byte("x")); !errors.Is(err, meta.ErrPublicNameTaken) {
			t.Fatalf("zeta's %s on acme's public name via node %d: %v", kind, i, err)
		}
	}
	if err := stores[0].PutBucketConfig(ctx, "zeta", "box", "cors", []byte("x")); err != nil {
		t.Fatalf("a non-public kind on the same name: %v", err)
	}
	if err := stores[0].DeleteBucketConfig(ctx, "acme", "box", "acl"); err != nil {
		t.Fatal(err)
	}
	wantPublic(t, stores, "box", "acme") // the policy still claims it
	if err := stores[1].DeleteBucketConfig(ctx, "acme", "box", "policy"); err != nil {
		t.Fatal(err)
	}
	wantPublic(t, stores, "box", "")
	if err := stores[2].PutBucketConfig(ctx, "zeta", "box", "acl", []byte("public-read")); err != nil {
		t.Fatalf("zeta's claim after acme released the name: %v", err)
	}
	wantPublic(t, stores, "box", "zeta")
	if err := stores[0].DeleteContainer(ctx, "zeta", "box"); err != nil {
		t.Fatal(err)
	}
	wantPublic(t, stores, "box", "")
	if err := stores[0].CreateContainer(ctx, meta.ContainerInfo{Tenant: "zeta", Name: "box"}); err != nil {
		t.Fatal(err)
	}
	wantPublic(t, stores, "box", "") // a later container of the name is private
	if err := stores[0].PutBucketConfig(ctx, "acme", "box", "acl", []byte("public-read")); err != nil {
		t.Fatal(err)
	}
	wantPublic(t, stores, "box", "acme")
}

// TestFSMPublicIndex: the public-name index (one lookup per anonymous
// request) follows every change of the documents behind it: set, delete,
// the container's deletion and a snapshot restore.
func TestFSMPublicIndex(t *testing.T) {
	f := newFSM()
	apply := func(ct cmdType, p any) any {
		return f.Apply(&raft.Log{Type: raft.LogCommand, Data: mustEncode(t, ct, p)})
	}
	for _, tn := range []string{"acme", "zeta"} {
		apply(cmdCreateTenant, createTenantCmd{Name: tn, Key: newKey(time.Time{})})
		if r := apply(cmdCreateContainer, createContainerCmd{Tenant: tn, Name: "pics"}); r != nil {
			t.Fatal(r)
		}
	}
	owner := func(f *fsm) string {
		t, _ := f.publicOwner("pics")
		return t
	}
	if r := apply(cmdSetConfig, setConfigCmd{Tenant: "acme", Container: "pics", Kind: "acl", Doc: []byte("public-read")}); r != nil {
		t.Fatal(r)
	}
	if r := apply(cmdSetConfig, setConfigCmd{Tenant: "acme", Container: "pics", Kind: "policy", Doc: []byte("{}")}); r != nil {
		t.Fatal(r)
	}
	if got := owner(f); got != "acme" {
		t.Fatalf("owner after acl and policy: %q, want acme", got)
	}
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	if got := owner(g); got != "acme" {
		t.Fatalf("owner after restore: %q, want acme", got)
	}
	apply(cmdSetConfig, setConfigCmd{Tenant: "acme", Container: "pics", Kind: "acl", Delete: true})
	if got := owner(f); got != "acme" {
		t.Fatalf("owner with the policy left: %q, want acme", got)
	}
	if r := apply(cmdSetConfig, setConfigCmd{Tenant: "zeta", Container: "pics", Kind: "acl", Doc: []byte("public-read")}); !errors.Is(r.(error), meta.ErrPublicNameTaken) {
		t.Fatalf("zeta claiming acme's public name: %v", r)
	}
	if r := apply(cmdDeleteContainer, deleteContainerCmd{Tenant: "acme", Name: "pics"}); r != nil {
		t.Fatal(r)
	}
	if got := owner(f); got != "" {
		t.Fatalf("owner after the container's deletion: %q, want none", got)
	}
	if r := apply(cmdSetConfig, setConfigCmd{Tenant: "zeta", Container: "pics", Kind: "acl", Doc: []byte("public-read")}); r != nil {
		t.Fatal(r)
	}
	if got := owner(f); got != "zeta" {
		t.Fatalf("owner after zeta's claim: %q, want zeta", got)
	}
}

// TestFSMConditionalConfig: a conditional configuration write applies only
// while the other document is what the writer read (or still absent), so
// "suspend versioning" and "enable object lock" racing through two nodes
// cannot both pass checks made against each other's old state (probe H4).
func TestFSMConditionalConfig(t *testing.T) {
	f := newFSM()
	apply := func(ct cmdType, p any) error {
		r, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Data: mustEncode(t, ct, p)}).(error)
		return r
	}
	apply(cmdCreateTenant, createTenantCmd{Name: "acme", Key: newKey(time.Time{})})
	if err := apply(cmdCreateContainer, createContainerCmd{Tenant: "acme", Name: "b"}); err != nil {
		t.Fatal(err)
	}
	enabled, suspended := []byte("Enabled"), []byte("Suspended")
	set := func(kind string, doc []byte, ifKind string, ifDoc []byte) error {
		return apply(cmdSetConfig, setConfigCmd{Tenant: "acme", Container: "b", Kind: kind, Doc: doc, IfKind: ifKind, IfDoc: ifDoc, IfAbsent: ifKind != "" && ifDoc == nil})
	}
	if err := set("versioning", enabled, "objectlock", nil); err != nil {
		t.Fatalf("versioning while lock absent: %v", err)
	}
	// Both read the other's old state: lock absent, versioning Enabled.
	// The suspension lands first; the lock, conditional on Enabled, fails.
	if err := set("versioning", suspended, "objectlock", nil); err != nil {
		t.Fatalf("suspend while lock absent: %v", err)
	}
	if err := set("objectlock", []byte("on"), "versioning", enabled); !errors.Is(err, meta.ErrConfigChanged) {
		t.Fatalf("lock conditional on a versioning state that changed: %v, want ErrConfigChanged", err)
	}
	if _, ok := f.config("acme", "b", "objectlock"); ok {
		t.Fatal("the refused lock was stored")
	}
	// The other order: the lock lands; a suspension conditional on the
	// lock being absent fails.
	if err := set("versioning", enabled, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := set("objectlock", []byte("on"), "versioning", enabled); err != nil {
		t.Fatalf("lock while versioning Enabled: %v", err)
	}
	if err := set("versioning", suspended, "objectlock", nil); !errors.Is(err, meta.ErrConfigChanged) {
		t.Fatalf("suspend conditional on no lock, with a lock: %v, want ErrConfigChanged", err)
	}
	if d, _ := f.config("acme", "b", "versioning"); string(d) != "Enabled" {
		t.Fatalf("versioning %q after the refused suspension, want Enabled", d)
	}
}
