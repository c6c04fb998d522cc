package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/internal/rpcauth"
)

// A removed node's name is burned: the FSM remembers it (fsm.removed) so
// that gossip, which shows a node until it stops, cannot bring it back,
// and the leader ignores it. A removed node that is started again waits
// for a leader (with Raft state) or to be added (without) for ever, and
// nothing would say why (probe F6 of session 17). So while it waits, a
// node asks its peers whether its name was removed, and gives up with
// ErrRemoved when one says so.
//
//	GET /v1/cluster/node?name=N -> 200 {"removed": true|false}
//
// The answer comes from the peer's applied state: a removal is committed
// before any node applies it, and never undone, so one peer's yes is
// enough. A peer that does not answer, or says no, changes nothing.

// ErrRemoved means this node's name was removed from the cluster
// (`vaultd cluster remove`): it can never be part of it again under that
// name.
var ErrRemoved = errors.New("cluster: removed")

const (
	nodePath = "/v1/cluster/node" // ?name=N
	// removedFirstCheck is how long a node waits before it first asks
	// its peers whether it was removed, removedCheckEvery how often it
	// asks again; removedAskTimeout bounds one round.
	removedFirstCheck = time.Second
	removedCheckEvery = 3 * time.Second
	removedAskTimeout = 2 * time.Second
)

// nodeAnswer is the answer of nodePath.
type nodeAnswer struct {
	Removed bool `json:"removed"`
}

func (s *Store) serveNode(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		http.Error(w, "name missing", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(nodeAnswer{Removed: s.fsm.isRemoved(name)})
}

// removedErr is the error of a node that learned from peer that it was
// removed.
func (s *Store) removedErr(peer string) error {
	return fmt.Errorf("%w: node %s was removed from the cluster (%s says so) and its name cannot be used again; to re-add this machine, start it under a new name (--name) with empty drives",
		ErrRemoved, s.cfg.NodeID, peer)
}

// checkRemoved returns an ErrRemoved error if any peer this node can
// reach (peerRPCs, with logged from loggedNodes) says this node was
// removed; nil otherwise (the waits check this node's own state each time
// round). refused names the peers whose
// RPC handshake failed (another cluster secret?), sorted.
func (s *Store) checkRemoved(ctx context.Context, logged map[string]string) (refused []string, err error) {
	if s.verifier == nil {
		return nil, nil // a single node has no peers to remove it
	}
	ctx, cancel := context.WithTimeout(ctx, removedAskTimeout)
	defer cancel()
	var (
		wg sync.WaitGroup
		mu sync.Mutex // guards by and refused
		by string
	)
	for name, addr := range s.peerRPCs(logged) {
		wg.Go(func() {
			removed, err := s.askRemoved(ctx, addr)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && removed && (by == "" || name < by):
				by = name // the same answer whichever peer is fastest
			case errors.Is(err, errRPCHandshake):
				refused = append(refused, name)
			}
		})
	}
	wg.Wait()
	slices.Sort(refused)
	if by != "" {
		return refused, s.removedErr("node " + by)
	}
	return refused, nil
}

// watchRemoved runs checkRemoved every removedCheckEvery until ctx ends;
// the channel yields its error when this node learns it was removed.
// Peers that refuse the RPC handshake are logged, every
// removedWarnEvery.
func (s *Store) watchRemoved(ctx context.Context) <-chan error {
	out := make(chan error, 1)
	go func() {
		select { // a node that finds its leader at once asks nothing
		case <-ctx.Done():
			return
		case <-time.After(removedFirstCheck):
		}
		t := time.NewTicker(removedCheckEvery)
		defer t.Stop()
		logged := s.loggedNodes() // once: what the log gains later, the state and gossip have too
		var warned time.Time
		for {
			refused, err := s.checkRemoved(ctx, logged)
			if err != nil {
				out <- err
				return
			}
			if len(refused) > 0 && time.Since(warned) >= removedWarnEvery {
				// A node with Raft state and another secret waits here,
				// before gossip, and Raft only says it hears no leader.
				warned = time.Now()
				s.log.Warn("cluster: peers refused this node's internode handshake: is the cluster secret (VAULT_CLUSTER_SECRET) the same as the cluster's, and the internode CA if one is set?",
					"peers", strings.Join(refused, ","))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return out
}

func (s *Store) askRemoved(ctx context.Context, addr string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+nodePath+"?name="+url.QueryEscape(s.cfg.NodeID), nil)
	if err != nil {
		return false, err
	}
	rpcauth.Sign(req, s.cfg.Secret, time.Now())
	resp, err := s.httpc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("cluster: ask %s: %s", addr, resp.Status)
	}
	var a nodeAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<10)).Decode(&a); err != nil {
		return false, fmt.Errorf("cluster: ask %s: %w", addr, err)
	}
	return a.Removed, nil
}

// peerRPCs returns the RPC addresses of the other nodes this node knows
// of, by name: the nodes registered in its own Raft log (logged: a
// restarted node's state holds only its last snapshot until a leader
// tells it what is committed), the registered nodes of its state and the
// members gossip shows.
func (s *Store) peerRPCs(logged map[string]string) map[string]string {
	out := map[string]string{}
	add := func(name, addr string) {
		if name != s.cfg.NodeID && addr != "" {
			out[name] = addr
		}
	}
	for name, addr := range logged {
		add(name, addr)
	}
	for _, n := range s.fsm.nodeList() {
		add(n.Name, n.RPCAddr)
	}
	if members := s.gossip.Load(); members != nil {
		for _, m := range (*members)() {
			add(m.Name, m.RPCAddr)
		}
	}
	return out
}

// loggedNodes returns the RPC addresses, by name, of the nodes
// registered by the entries of this node's Raft log, committed or not (to
// be asked, not trusted), the last registration of each name winning.
func (s *Store) loggedNodes() map[string]string {
	out := map[string]string{}
	first, err := s.logs.FirstIndex()
	if err != nil {
		return out
	}
	last, err := s.logs.LastIndex()
	if err != nil {
		return out
	}
	for i := max(first, 1); i <= last; i++ {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil || l.Type != raft.LogCommand || len(l.Data) == 0 || cmdType(l.Data[0]) != cmdPutNode {
			continue
		}
		var n NodeInfo
		if json.Unmarshal(l.Data[1:], &n) == nil && n.Name != "" {
			out[n.Name] = n.RPCAddr
		}
	}
	return out
}
