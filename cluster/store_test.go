package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/tenant"
)

// testConfig is a single-node config with short raft timeouts.
func testConfig(t *testing.T, dir string) Config {
	t.Helper()
	return Config{
		Dir:       dir,
		NodeID:    "node1",
		RaftAddr:  testnet.Addr(t),
		Bootstrap: true,
		Logger:    slog.New(slog.DiscardHandler),
		tune: func(c *raft.Config) {
			c.HeartbeatTimeout = 100 * time.Millisecond
			c.ElectionTimeout = 100 * time.Millisecond
			c.LeaderLeaseTimeout = 50 * time.Millisecond
			c.CommitTimeout = 5 * time.Millisecond
		},
	}
}

// open opens a Store for c, failing the test if no leader appears within
// 10 seconds, and closes it at the end of the test.
func open(t *testing.T, c Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, c)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t *testing.T) *Store {
	t.Helper()
	return open(t, testConfig(t, t.TempDir()))
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		ok   bool
	}{
		{"ok", Config{Dir: "d", NodeID: "n", RaftAddr: "127.0.0.1:9001"}, true},
		{"no dir", Config{NodeID: "n", RaftAddr: "127.0.0.1:9001"}, false},
		{"no node", Config{Dir: "d", RaftAddr: "127.0.0.1:9001"}, false},
		{"no port", Config{Dir: "d", NodeID: "n", RaftAddr: "127.0.0.1"}, false},
		{"negative timeout", Config{Dir: "d", NodeID: "n", RaftAddr: "127.0.0.1:9001", ApplyTimeout: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if got := err == nil; got != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (tt.c.ApplyTimeout != DefaultApplyTimeout || tt.c.Logger == nil) {
				t.Errorf("defaults not filled: %+v", tt.c)
			}
		})
	}
}

func TestOpenBootstrap(t *testing.T) {
	start := time.Now()
	c := testConfig(t, t.TempDir())
	s := open(t, c)
	id, addr := s.Leader()
	if id != c.NodeID || addr != c.RaftAddr {
		t.Errorf("Leader() = %q, %q; want %q, %q", id, addr, c.NodeID, c.RaftAddr)
	}
	t.Logf("leader after %v", time.Since(start))
}

func TestDefaultTimeoutsBootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("default raft timeouts take a second or two")
	}
	c := testConfig(t, t.TempDir())
	c.tune = nil
	s := open(t, c)
	if id, _ := s.Leader(); id != c.NodeID {
		t.Errorf("Leader() = %q, want %q", id, c.NodeID)
	}
}

func TestOpenFails(t *testing.T) {
	// Only a store with a cluster secret listens for Raft.
	c := testConfig(t, t.TempDir())
	c.Secret = []byte("open-fails-secret-0123456789")
	l, err := net.Listen("tcp", c.RaftAddr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), c)
	l.Close()
	if err == nil {
		s.Close()
		t.Fatal("Open on a busy raft address succeeded")
	}
	// The failed Open released the directory.
	open(t, c)

	c2 := testConfig(t, t.TempDir())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	c2.tune = nil // default timeouts: no leader within 20ms
	if s, err := Open(ctx, c2); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open with a short ctx: %v, want DeadlineExceeded", err)
	}
}

func TestNotLeaderWithoutBootstrap(t *testing.T) {
	c := testConfig(t, t.TempDir())
	c.Bootstrap = false
	s := open(t, c)
	if id, _ := s.Leader(); id != "" {
		t.Errorf("Leader() = %q, want none", id)
	}
	if _, _, err := s.CreateTenant(t.Context(), "acme"); !errors.Is(err, ErrNotLeader) {
		t.Errorf("CreateTenant on a node without a cluster: %v, want ErrNotLeader", err)
	}
}

func TestTenants(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	before := time.Now().Add(-time.Second)
	for _, name := range []string{"zeta", "acme", "b-2"} {
		tn, k, err := s.CreateTenant(ctx, name)
		if err != nil {
			t.Fatalf("CreateTenant(%q): %v", name, err)
		}
		if tn.Name != name || tn.Created.Before(before) || !slices.Equal(tn.AccessKeys, []string{k.AccessKey}) {
			t.Errorf("CreateTenant(%q) = %+v, key %s", name, tn, k.AccessKey)
		}
		got, err := s.Tenant(ctx, name)
		if err != nil || !got.Created.Equal(tn.Created) || got.Name != name || !slices.Equal(got.AccessKeys, tn.AccessKeys) {
			t.Errorf("Tenant(%q) = %+v, %v; want %+v", name, got, err, tn)
		}
	}
	if _, _, err := s.CreateTenant(ctx, "acme"); !errors.Is(err, tenant.ErrTenantExists) {
		t.Errorf("duplicate CreateTenant: %v, want tenant.ErrTenantExists", err)
	}
	list, err := s.Tenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tn := range list {
		names = append(names, tn.Name)
	}
	if want := []string{"acme", "b-2", "zeta"}; !slices.Equal(names, want) {
		t.Errorf("Tenants() names = %v, want %v", names, want)
	}
	if err := s.DeleteTenant(ctx, "zeta"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	if _, err := s.Tenant(ctx, "zeta"); !errors.Is(err, tenant.ErrNoSuchTenant) {
		t.Errorf("Tenant after delete: %v, want tenant.ErrNoSuchTenant", err)
	}
	if err := s.DeleteTenant(ctx, "zeta"); !errors.Is(err, tenant.ErrNoSuchTenant) {
		t.Errorf("second DeleteTenant: %v, want tenant.ErrNoSuchTenant", err)
	}
	// The name is free again.
	if _, _, err := s.CreateTenant(ctx, "zeta"); err != nil {
		t.Errorf("re-create deleted tenant: %v", err)
	}
}

func TestTenantNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"abc", true},
		{"a-b", true},
		{"0tenant9", true},
		{strings.Repeat("a", 63), true},
		{"ab", false},
		{strings.Repeat("a", 64), false},
		{"Acme", false},
		{"-ab", false},
		{"ab-", false},
		{"a_b", false},
		{"a.b", false},
		{"", false},
	}
	s := newStore(t)
	for _, tt := range tests {
		if got := tenant.ValidName(tt.name); got != tt.ok {
			t.Errorf("tenant.ValidName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
		_, _, err := s.CreateTenant(t.Context(), tt.name)
		if got := err == nil; got != tt.ok {
			t.Errorf("CreateTenant(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if !tt.ok && !errors.Is(err, tenant.ErrInvalidName) {
			t.Errorf("CreateTenant(%q) = %v, want tenant.ErrInvalidName", tt.name, err)
		}
	}
}

func TestKeys(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	_, k1, err := s.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateTenant(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	k2, err := s.CreateKey(ctx, "acme")
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	for _, k := range []tenant.Key{k1, k2} {
		if len(k.AccessKey) != tenant.AccessKeyLen || strings.Trim(k.AccessKey, tenant.AccessKeyAlphabet) != "" {
			t.Errorf("access key %q: want %d chars of [A-Z0-9]", k.AccessKey, tenant.AccessKeyLen)
		}
		if sec := string(k.Secret); len(sec) != tenant.SecretLen || strings.Trim(sec, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Errorf("secret has %d chars or bad ones, want %d of base64url", len(sec), tenant.SecretLen)
		}
		tenant, secret, err := s.LookupKey(ctx, k.AccessKey)
		if err != nil || tenant != "acme" || secret != string(k.Secret) {
			t.Errorf("LookupKey(%s) = %q, (secret match %v), %v", k.AccessKey, tenant, secret == string(k.Secret), err)
		}
	}
	if k1.AccessKey == k2.AccessKey || k1.Secret == k2.Secret {
		t.Error("two key pairs are equal")
	}
	tn, _ := s.Tenant(ctx, "acme")
	if want := []string{k1.AccessKey, k2.AccessKey}; !slices.Equal(tn.AccessKeys, want) {
		t.Errorf("AccessKeys = %v, want %v", tn.AccessKeys, want)
	}

	if _, err := s.CreateKey(ctx, "nobody"); !errors.Is(err, tenant.ErrNoSuchTenant) {
		t.Errorf("CreateKey for unknown tenant: %v, want tenant.ErrNoSuchTenant", err)
	}
	if err := s.DeleteKey(ctx, "other", k1.AccessKey); !errors.Is(err, tenant.ErrUnknownAccessKey) {
		t.Errorf("DeleteKey of another tenant's key: %v, want tenant.ErrUnknownAccessKey", err)
	}
	if err := s.DeleteKey(ctx, "acme", k1.AccessKey); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	for _, fn := range []func() error{
		func() error { _, _, err := s.LookupKey(ctx, k1.AccessKey); return err },
		func() error { return s.DeleteKey(ctx, "acme", k1.AccessKey) },
	} {
		err := fn()
		if !errors.Is(err, tenant.ErrUnknownAccessKey) {
			t.Errorf("deleted key: %v, want tenant.ErrUnknownAccessKey", err)
		}
	}
	if _, _, err := s.LookupKey(ctx, k2.AccessKey); err != nil {
		t.Errorf("remaining key: %v", err)
	}
	// Deleting the tenant removes its remaining keys.
	if err := s.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LookupKey(ctx, k2.AccessKey); !errors.Is(err, tenant.ErrUnknownAccessKey) {
		t.Errorf("key of deleted tenant: %v, want unknown", err)
	}
}

func TestContainers(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, name := range []string{"alice", "bob"} {
		if _, _, err := s.CreateTenant(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	created := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []meta.ContainerInfo{
		{Tenant: "alice", Name: "photos", Created: created},
		{Tenant: "bob", Name: "photos", Created: created.Add(time.Hour)},
		{Tenant: "alice", Name: "docs", Created: created},
		{Tenant: "bob", Name: "zz"}, // zero Created: filled in
	} {
		if err := s.CreateContainer(ctx, c); err != nil {
			t.Fatalf("CreateContainer(%+v): %v", c, err)
		}
	}
	tests := []struct {
		op      string
		err     error
		call    func() error
		wantErr error
	}{
		{op: "duplicate", call: func() error {
			return s.CreateContainer(ctx, meta.ContainerInfo{Tenant: "alice", Name: "photos", Created: created})
		}, wantErr: meta.ErrContainerExists},
		{op: "unknown tenant", call: func() error {
			return s.CreateContainer(ctx, meta.ContainerInfo{Tenant: "carol", Name: "photos", Created: created})
		}, wantErr: tenant.ErrNoSuchTenant},
		{op: "delete missing", call: func() error { return s.DeleteContainer(ctx, "alice", "nope") }, wantErr: meta.ErrNoSuchContainer},
		{op: "delete unknown tenant", call: func() error { return s.DeleteContainer(ctx, "carol", "photos") }, wantErr: meta.ErrNoSuchContainer},
		{op: "get missing", call: func() error { _, err := s.Container(ctx, "alice", "zz"); return err }, wantErr: meta.ErrNoSuchContainer},
		{op: "delete tenant with containers", call: func() error { return s.DeleteTenant(ctx, "alice") }, wantErr: tenant.ErrTenantNotEmpty},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: %v, want %v", tt.op, err, tt.wantErr)
		}
	}

	names := func(tenant string) []string {
		t.Helper()
		cs, err := s.Containers(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			if c.Tenant != tenant {
				t.Errorf("Containers(%q) returned %+v", tenant, c)
			}
			out = append(out, c.Name)
		}
		return out
	}
	if got, want := names("alice"), []string{"docs", "photos"}; !slices.Equal(got, want) {
		t.Errorf("alice's containers = %v, want %v", got, want)
	}
	if got, want := names("bob"), []string{"photos", "zz"}; !slices.Equal(got, want) {
		t.Errorf("bob's containers = %v, want %v", got, want)
	}
	if got := names("carol"); len(got) != 0 {
		t.Errorf("unknown tenant's containers = %v, want none", got)
	}
	c, err := s.Container(ctx, "bob", "photos")
	if want := (meta.ContainerInfo{Tenant: "bob", Name: "photos", Created: created.Add(time.Hour)}); err != nil || c != want {
		t.Errorf("Container(bob, photos) = %+v, %v; want %+v", c, err, want)
	}
	if c, _ := s.Container(ctx, "bob", "zz"); c.Created.IsZero() {
		t.Error("zero Created was not filled in")
	}

	// Deleting alice's photos leaves bob's; an emptied tenant can go.
	for _, name := range []string{"photos", "docs"} {
		if err := s.DeleteContainer(ctx, "alice", name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Container(ctx, "bob", "photos"); err != nil {
		t.Errorf("bob's photos after deleting alice's: %v", err)
	}
	if err := s.DeleteTenant(ctx, "alice"); err != nil {
		t.Errorf("DeleteTenant of emptied tenant: %v", err)
	}
}

// TestContainerCap: a tenant holds at most Config.MaxContainers
// containers; the cap is per tenant, a deleted container frees its slot,
// and entries proposed without a cap (Max 0, as before it existed) apply
// uncapped.
func TestContainerCap(t *testing.T) {
	c := testConfig(t, t.TempDir())
	c.MaxContainers = 2
	s := open(t, c)
	ctx := t.Context()
	for _, name := range []string{"alice", "bob"} {
		if _, _, err := s.CreateTenant(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	create := func(tenant, name string) error {
		return s.CreateContainer(ctx, meta.ContainerInfo{Tenant: tenant, Name: name})
	}
	for _, step := range []struct {
		tenant, name string
		want         error
	}{
		{"alice", "a1", nil},
		{"alice", "a2", nil},
		{"alice", "a3", meta.ErrTooManyContainers},
		{"alice", "a1", meta.ErrContainerExists},
		{"bob", "b1", nil},
	} {
		if err := create(step.tenant, step.name); !errors.Is(err, step.want) || (step.want == nil && err != nil) {
			t.Fatalf("create %s/%s: %v, want %v", step.tenant, step.name, err, step.want)
		}
	}
	if err := s.DeleteContainer(ctx, "alice", "a2"); err != nil {
		t.Fatal(err)
	}
	if err := create("alice", "a3"); err != nil {
		t.Fatalf("create after a delete freed a slot: %v", err)
	}
	if err := s.applyCmd(ctx, cmdCreateContainer, createContainerCmd{Tenant: "alice", Name: "old", Created: time.Now().UTC()}); err != nil {
		t.Fatalf("an entry without a cap: %v", err)
	}
	if cs, err := s.Containers(ctx, "alice"); err != nil || len(cs) != 3 {
		t.Fatalf("alice's containers: %v, %v; want 3", cs, err)
	}
}

func TestConcurrentCreateContainer(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, _, err := s.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.CreateContainer(ctx, meta.ContainerInfo{Tenant: "acme", Name: "photos", Created: time.Now()})
		})
	}
	wg.Wait()
	ok, exists := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, meta.ErrContainerExists):
			exists++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || exists != n-1 {
		t.Errorf("%d succeeded and %d got ErrContainerExists, want 1 and %d", ok, exists, n-1)
	}
}

func TestApplyContext(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := s.CreateTenant(ctx, "acme"); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTenant with canceled ctx: %v, want context.Canceled", err)
	}
	if _, err := s.Tenant(t.Context(), "acme"); !errors.Is(err, tenant.ErrNoSuchTenant) {
		t.Errorf("tenant created despite canceled ctx: %v", err)
	}
}

// state is everything a Store holds, for comparing before and after a
// restart.
type state struct {
	Tenants    []tenant.Tenant
	Secrets    map[string]string // access key → secret
	Containers []meta.ContainerInfo
}

func dump(t *testing.T, s *Store) state {
	t.Helper()
	ctx := t.Context()
	st := state{Secrets: map[string]string{}}
	var err error
	if st.Tenants, err = s.Tenants(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tn := range st.Tenants {
		for _, ak := range tn.AccessKeys {
			tenant, secret, err := s.LookupKey(ctx, ak)
			if err != nil || tenant != tn.Name {
				t.Fatalf("LookupKey(%s) = %q, %v; want tenant %q", ak, tenant, err, tn.Name)
			}
			st.Secrets[ak] = secret
		}
		cs, err := s.Containers(ctx, tn.Name)
		if err != nil {
			t.Fatal(err)
		}
		st.Containers = append(st.Containers, cs...)
	}
	return st
}

func sameState(t *testing.T, got, want state) {
	t.Helper()
	if len(want.Tenants) == 0 {
		t.Fatal("empty state")
	}
	// fmt of Tenant and ContainerInfo holds no secret; times print with
	// their location, which JSON round trips keep (UTC).
	if g, w := fmt.Sprint(got.Tenants, got.Containers), fmt.Sprint(want.Tenants, want.Containers); g != w {
		t.Errorf("after restart:\n got %s\nwant %s", g, w)
	}
	if len(got.Secrets) != len(want.Secrets) {
		t.Errorf("after restart: %d keys, want %d", len(got.Secrets), len(want.Secrets))
	}
	for ak, sec := range want.Secrets {
		if got.Secrets[ak] != sec {
			t.Errorf("after restart: secret of %s differs", ak)
		}
	}
}

// populate writes a few tenants, keys and containers.
func populate(t *testing.T, s *Store, tenants, containers int) {
	t.Helper()
	ctx := t.Context()
	for i := range tenants {
		name := fmt.Sprintf("tenant-%03d", i)
		if _, _, err := s.CreateTenant(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateKey(ctx, name); err != nil {
			t.Fatal(err)
		}
		for j := range containers {
			c := meta.ContainerInfo{Tenant: name, Name: fmt.Sprintf("c%03d", j), Created: time.Now()}
			if err := s.CreateContainer(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestRestart(t *testing.T) {
	c := testConfig(t, t.TempDir())
	s := open(t, c)
	populate(t, s, 3, 4)
	if err := s.DeleteContainer(t.Context(), "tenant-001", "c002"); err != nil {
		t.Fatal(err)
	}
	want := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// Bootstrap is still set: the existing state must win.
	s2 := open(t, c)
	sameState(t, dump(t, s2), want)
	if got := s2.fsm.restores.Load(); got != 0 {
		t.Errorf("%d snapshot restores, want 0 (log replay only)", got)
	}
	// Still writable, and the old tenants still conflict.
	if _, _, err := s2.CreateTenant(t.Context(), "tenant-000"); !errors.Is(err, tenant.ErrTenantExists) {
		t.Errorf("CreateTenant of recovered tenant: %v, want tenant.ErrTenantExists", err)
	}
	if _, _, err := s2.CreateTenant(t.Context(), "after-restart"); err != nil {
		t.Errorf("write after restart: %v", err)
	}
}

func TestSnapshotRestore(t *testing.T) {
	c := testConfig(t, t.TempDir())
	tune := c.tune
	c.tune = func(rc *raft.Config) {
		tune(rc)
		rc.TrailingLogs = 8
	}
	s := open(t, c)
	populate(t, s, 5, 6) // 5*(2+6) = 40 entries
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	first, err := s.logs.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, _ := s.logs.LastIndex()
	if last-first+1 > 8+1 || first <= 1 {
		t.Errorf("log after snapshot holds [%d, %d], want it truncated to about 8 entries", first, last)
	}
	// A write after the snapshot must be replayed from the log on top of it.
	if err := s.DeleteContainer(t.Context(), "tenant-004", "c005"); err != nil {
		t.Fatal(err)
	}
	want := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, c)
	if got := s2.fsm.restores.Load(); got != 1 {
		t.Errorf("%d snapshot restores on start, want 1", got)
	}
	sameState(t, dump(t, s2), want)
}

func TestSnapshotThreshold(t *testing.T) {
	if testing.Short() {
		t.Skip("applies more than DefaultSnapshotThreshold commands")
	}
	c := testConfig(t, t.TempDir())
	tune := c.tune
	c.tune = func(rc *raft.Config) {
		tune(rc)
		rc.SnapshotInterval = 50 * time.Millisecond
	}
	s := open(t, c)
	ctx := t.Context()
	if _, _, err := s.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	// Concurrent writers get batched by raft, keeping this quick.
	var wg sync.WaitGroup
	const workers, per = 8, DefaultSnapshotThreshold/8 + 16
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				c := meta.ContainerInfo{Tenant: "acme", Name: fmt.Sprintf("c-%d-%d", w, i), Created: time.Now()}
				if err := s.CreateContainer(ctx, c); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s.raft.Stats()["last_snapshot_index"] != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no snapshot after exceeding the threshold")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
