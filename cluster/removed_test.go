package cluster

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/internal/testnet"
)

// TestRemovedNodeRestart: a node removed from the cluster (drained, then
// `cluster remove`) that is started again learns from its peers that its
// name was removed and fails with ErrRemoved, with its Raft state (Open
// waited for a leader for ever: probe F6 of session 17) and with empty
// drives under the same name (WaitReady waited to be added for ever).
// A node that was not removed is told so; a removed node still running
// says in its log that it was removed.
func TestRemovedNodeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node raft cluster")
	}
	cfgs := map[string]Config{}
	var n3log lockedBuffer
	nodes, view := startStoresWith(t, 3, func(c *Config) {
		if c.NodeID == "n3" {
			c.Logger = slog.New(slog.NewTextHandler(&n3log, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		cfgs[c.NodeID] = *c
	})
	ctx := t.Context()
	n1 := nodes[0].store
	if _, err := n1.Drain(ctx, "n3", "", false); err != nil {
		t.Fatal(err)
	}
	for _, m := range n1.OlderMaps() { // as the migrator does once the data moved
		if err := n1.DropMap(ctx, m.Epoch); err != nil {
			t.Fatal(err)
		}
	}
	if err := n1.RemoveNode(ctx, "n3", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() string {
		cf := n1.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return err.Error()
		}
		for _, sv := range cf.Configuration().Servers {
			if sv.ID == "n3" {
				return "n3 still in the raft configuration"
			}
		}
		return ""
	})
	// n3, still running, applied its removal: it says so in its log.
	waitFor(t, 10*time.Second, func() string {
		if !strings.Contains(n3log.String(), "this node was removed from the cluster: stop its process") {
			return "n3 does not say it was removed"
		}
		return ""
	})
	// Its own state says so: waiting to be ready ends at once, whether or
	// not the leader has taken it out of Raft yet (vaultd's restart of
	// it raced the leader and served on).
	rctx, rcancel := context.WithTimeout(ctx, removedFirstCheck/2)
	defer rcancel()
	if err := nodes[2].store.WaitReady(rctx); !errors.Is(err, ErrRemoved) || !strings.Contains(err.Error(), "this node's own state") {
		t.Fatalf("WaitReady of removed n3, still running: %v, want ErrRemoved at once from its own state", err)
	}
	if refused, err := nodes[1].store.checkRemoved(ctx, nil); err != nil || len(refused) > 0 {
		t.Fatalf("n2, not removed, asked its peers: %v (refused by %v)", err, refused)
	}
	if err := nodes[2].store.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("with its raft state", func(t *testing.T) {
		octx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		start := time.Now()
		s, err := Open(octx, cfgs["n3"])
		if err == nil {
			s.Close()
		}
		t.Logf("Open of removed n3: %v", err)
		if !errors.Is(err, ErrRemoved) || !strings.Contains(err.Error(), "node n3 was removed") || !strings.Contains(err.Error(), "new name") {
			t.Fatalf("Open of removed n3 after %v: %v; want ErrRemoved saying n3 was removed and to use a new name", time.Since(start).Round(time.Millisecond), err)
		}
	})

	t.Run("with empty drives", func(t *testing.T) {
		c := cfgs["n3"]
		c.Dir, c.Bootstrap, c.RaftAddr = t.TempDir(), false, testnet.Addr(t)
		s := open(t, c) // no state: returns at once, to wait to be added
		members := view.get
		s.gossip.Store(&members) // as Reconcile does
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := s.WaitReady(wctx); !errors.Is(err, ErrRemoved) {
			t.Fatalf("WaitReady of a new n3: %v, want ErrRemoved", err)
		}
		if st := s.raft.State(); st == raft.Leader {
			t.Fatalf("new n3 is %v", st)
		}
	})
}

// TestWrongSecretWaitSaysSo: a node under another cluster secret than its
// peers' that waits to be part of the cluster (with Raft state it waits
// in Open, before gossip) logs that the peers refused its handshake,
// naming the secret, instead of only Raft's silence.
func TestWrongSecretWaitSaysSo(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a raft cluster")
	}
	nodes, _ := startStoresWith(t, 1, nil)
	var logs lockedBuffer
	c := testConfig(t, t.TempDir())
	c.NodeID, c.Bootstrap, c.Secret = "n9", false, []byte("another-secret-0123456789abc")
	c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := open(t, c)
	members := func() []Member { return []Member{nodes[0].member} }
	s.gossip.Store(&members)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err == nil {
		t.Fatal("a node under another secret became ready")
	}
	if out := logs.String(); !strings.Contains(out, "peers refused this node's internode handshake: is the cluster secret (VAULT_CLUSTER_SECRET) the same") || !strings.Contains(out, "peers=n1") {
		t.Fatalf("log without the hint:\n%s", out)
	}
}
