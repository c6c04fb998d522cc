package cluster

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/tenant"
)

// TestSingleNodeRaftRefusesStrangers is the probe's attack on a single
// node (no cluster secret): a local process speaking plain raft to the
// node's --raft address posed as a leader of a newer term, appended a
// createKey entry for another tenant and then used the injected key;
// heartbeats alone forced re-elections. Nothing of it may reach the node:
// every RPC fails, the term does not move, the node stays leader and the
// tenant's keys are unchanged.
func TestSingleNodeRaftRefusesStrangers(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, _, err := s.CreateTenant(ctx, "victim"); err != nil {
		t.Fatal(err)
	}
	before, err := s.Tenant(ctx, "victim")
	if err != nil {
		t.Fatal(err)
	}
	term, last := s.raft.CurrentTerm(), s.raft.LastIndex()
	var lastLog raft.Log
	if err := s.logs.GetLog(last, &lastLog); err != nil {
		t.Fatal(err)
	}
	const injected = "INJECTEDACCESSKEY000"
	cmd, err := encodeCmd(cmdCreateKey, createKeyCmd{Tenant: "victim", Key: keyRecord{
		AccessKey: injected, Secret: "injected-secret-0123456789", Created: time.Now().UTC().Round(0),
	}})
	if err != nil {
		t.Fatal(err)
	}

	// The attacker: raft's own TCP transport, no handshake.
	attacker, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { attacker.Close() })
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(attacker.LocalAddr())}
	id, target := raft.ServerID(s.cfg.NodeID), raft.ServerAddress(s.cfg.RaftAddr)
	attacks := []struct {
		name string
		rpc  func() error
	}{
		{"append a createKey entry as the leader of a newer term", func() error {
			var resp raft.AppendEntriesResponse
			err := attacker.AppendEntries(id, target, &raft.AppendEntriesRequest{
				RPCHeader: hdr, Term: term + 10, PrevLogEntry: last, PrevLogTerm: lastLog.Term,
				Entries:           []*raft.Log{{Index: last + 1, Term: term + 10, Type: raft.LogCommand, Data: cmd}},
				LeaderCommitIndex: last + 1,
			}, &resp)
			if err == nil && !resp.Success {
				return errors.New("refused by raft (but the connection was served)")
			}
			return err
		}},
		{"heartbeat of a newer term", func() error {
			var resp raft.AppendEntriesResponse
			return attacker.AppendEntries(id, target, &raft.AppendEntriesRequest{
				RPCHeader: hdr, Term: term + 20, PrevLogEntry: last + 1, PrevLogTerm: term + 10, LeaderCommitIndex: last + 1,
			}, &resp)
		}},
		{"vote request of a newer term", func() error {
			var resp raft.RequestVoteResponse
			return attacker.RequestVote(id, target, &raft.RequestVoteRequest{
				RPCHeader: hdr, Term: term + 30, LastLogIndex: last + 100, LastLogTerm: term + 30,
			}, &resp)
		}},
	}
	for _, a := range attacks {
		if err := a.rpc(); err == nil {
			t.Errorf("%s: the node answered, want the connection refused", a.name)
		} else {
			t.Logf("%s: %v", a.name, err)
		}
	}
	// Several election timeouts (100 ms in tests): a node that stepped down
	// would have started an election of a newer term by now.
	time.Sleep(time.Second)
	if got := s.raft.CurrentTerm(); got != term {
		t.Errorf("term = %d after the attack, want %d", got, term)
	}
	if st := s.raft.State(); st != raft.Leader {
		t.Errorf("state = %v after the attack, want Leader", st)
	}
	if _, _, err := s.LookupKey(ctx, injected); !errors.Is(err, tenant.ErrUnknownAccessKey) {
		t.Errorf("LookupKey(injected key) = %v, want tenant.ErrUnknownAccessKey", err)
	}
	after, err := s.Tenant(ctx, "victim")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after.AccessKeys, before.AccessKeys; len(got) != len(want) || got[0] != want[0] {
		t.Errorf("victim's keys = %v after the attack, want %v", got, want)
	}
	// The node still serves writes as the only voter.
	if _, _, err := s.CreateTenant(ctx, "after"); err != nil {
		t.Errorf("CreateTenant after the attack: %v", err)
	}
}

// TestSingleNodeDoesNotListen: a store without cluster secret has no Raft
// listener at all; its address is only recorded in its configuration.
func TestSingleNodeDoesNotListen(t *testing.T) {
	c := testConfig(t, t.TempDir())
	s := open(t, c)
	if conn, err := net.DialTimeout("tcp", c.RaftAddr, time.Second); err == nil {
		conn.Close()
		t.Errorf("dial %s: connected, want nothing listening", c.RaftAddr)
	}
	if _, addr := s.Leader(); addr != c.RaftAddr {
		t.Errorf("leader address %q, want the configured %q", addr, c.RaftAddr)
	}
}

// TestSingleNodeRefusesClusterState: a node whose Raft state names other
// servers cannot run without the cluster secret (it could never reach
// them); Open says so instead of waiting for a leader forever.
func TestSingleNodeRefusesClusterState(t *testing.T) {
	c := testConfig(t, t.TempDir())
	c.Secret = []byte("cluster-state-secret-0123456789")
	s := open(t, c)
	if err := s.raft.AddNonvoter("n2", raft.ServerAddress(testnet.Addr(t)), 0, 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.Secret = nil
	s2, err := Open(t.Context(), c)
	if err == nil {
		s2.Close()
		t.Fatal("Open without secret on a cluster's state succeeded")
	}
	if !strings.Contains(err.Error(), "cluster mode") {
		t.Errorf("Open: %v, want an error naming cluster mode", err)
	}
	// With the secret it opens again.
	c.Secret = []byte("cluster-state-secret-0123456789")
	open(t, c)
}
