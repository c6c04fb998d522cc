package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// MaxVoters is how many Raft voters a cluster has at most; later nodes
// join as non-voters and are promoted when a voter has been dead for
// DeadVoterAfter.
const MaxVoters = 5

// DeadVoterAfter is the default Config.DeadVoterAfter: how long a voter
// must be dead in gossip before the leader replaces it with a live
// non-voter.
const DeadVoterAfter = 30 * time.Second

// reconcileEvery is how often the leader compares gossip with Raft and the
// cluster map.
const reconcileEvery = time.Second

// removedWarnEvery is how often a node still running after its removal
// says so in its log.
const removedWarnEvery = 30 * time.Second

// Reconcile makes Raft and the cluster map agree with gossip. It runs on
// every node but acts only on the leader: every alive member is added to
// the Raft configuration (as a voter while there are fewer than MaxVoters,
// else as a non-voter) and registered in the cluster map with its drives;
// a voter dead for longer than DeadVoterAfter is replaced by a live
// non-voter, if there is one. A leader that was itself removed hands the
// leadership over instead. It returns when ctx ends.
func (s *Store) Reconcile(ctx context.Context, members func() []Member) {
	s.gossip.Store(&members)
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	deadSince := map[string]time.Time{}
	var warned time.Time // when a removed node last said so
	for {
		switch {
		case s.raft.State() != raft.Leader && s.fsm.isRemoved(s.cfg.NodeID):
			// Still running after its removal: it serves from a state
			// the cluster no longer sends it. Say so until it stops.
			if time.Since(warned) >= removedWarnEvery {
				warned = time.Now()
				s.log.Warn("cluster: this node was removed from the cluster: stop its process; its name cannot be used again (start the machine under a new name with empty drives to re-add it)")
			}
		case s.raft.State() == raft.Leader && s.fsm.isRemoved(s.cfg.NodeID):
			// This node was removed while leading: hand the leadership
			// over, so that a leader the others can reach (they forward
			// through the registered nodes' addresses, which no longer
			// list this one) takes it out of Raft. Followers' writes
			// stalled until this process stopped (probe F3 of session 17).
			s.log.Info("cluster: this node was removed: handing the leadership over")
			if err := s.raft.LeadershipTransfer().Error(); err != nil && ctx.Err() == nil {
				s.log.Warn("cluster: leadership transfer", "err", err)
			}
		case s.raft.State() == raft.Leader:
			if err := s.reconcileOnce(ctx, members(), deadSince); err != nil && ctx.Err() == nil {
				s.log.Warn("cluster: reconcile", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Store) reconcileOnce(ctx context.Context, members []Member, deadSince map[string]time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	servers := map[string]raft.Server{}
	voters := 0
	for _, sv := range cf.Configuration().Servers {
		servers[string(sv.ID)] = sv
		if sv.Suffrage == raft.Voter {
			voters++
		}
	}
	var errs []error
	now := time.Now()
	alive := map[string]Member{}
	for _, m := range members {
		if m.State != MemberAlive {
			if _, ok := deadSince[m.Name]; !ok {
				deadSince[m.Name] = now
			}
			continue
		}
		delete(deadSince, m.Name)
		if s.fsm.isRemoved(m.Name) {
			continue // removed: gossip shows it until it stops
		}
		alive[m.Name] = m
		sv, inRaft := servers[m.Name]
		if m.RaftAddr != "" && m.Name != s.cfg.NodeID && (!inRaft || string(sv.Address) != m.RaftAddr) {
			if err := s.addServer(m, voters < MaxVoters || (inRaft && sv.Suffrage == raft.Voter)); err != nil {
				errs = append(errs, err)
				continue
			}
			if !inRaft && voters < MaxVoters {
				voters++
			}
		}
		if err := s.RegisterNode(ctx, nodeOf(m)); err != nil {
			errs = append(errs, err)
		}
	}
	// Removed nodes leave the Raft configuration.
	for id, sv := range servers {
		if id == s.cfg.NodeID || !s.fsm.isRemoved(id) {
			continue
		}
		s.log.Info("cluster: removing a removed node from raft", "node", id)
		if err := s.raft.RemoveServer(sv.ID, 0, 10*time.Second).Error(); err != nil {
			errs = append(errs, fmt.Errorf("remove %s from raft: %w", id, err))
			continue
		}
		delete(servers, id)
	}
	// Promote a live non-voter in place of a voter dead for long.
	for id, sv := range servers {
		if sv.Suffrage != raft.Voter || string(id) == s.cfg.NodeID {
			continue
		}
		since, dead := deadSince[id]
		if _, ok := alive[id]; ok || !dead || now.Sub(since) < s.cfg.DeadVoterAfter {
			continue
		}
		for nid, nsv := range servers {
			if _, ok := alive[nid]; !ok || nsv.Suffrage == raft.Voter {
				continue
			}
			s.log.Info("cluster: promoting non-voter in place of dead voter", "dead", id, "promoted", nid)
			if err := s.raft.AddVoter(nsv.ID, nsv.Address, 0, 10*time.Second).Error(); err != nil {
				errs = append(errs, fmt.Errorf("promote %s: %w", nid, err))
				break
			}
			if err := s.raft.DemoteVoter(sv.ID, 0, 10*time.Second).Error(); err != nil {
				errs = append(errs, fmt.Errorf("demote %s: %w", id, err))
			}
			servers[nid] = raft.Server{ID: nsv.ID, Address: nsv.Address, Suffrage: raft.Voter}
			break
		}
	}
	return errors.Join(errs...)
}

// addServer adds m to the Raft configuration, or updates its address.
func (s *Store) addServer(m Member, voter bool) error {
	id, addr := raft.ServerID(m.Name), raft.ServerAddress(m.RaftAddr)
	var f raft.IndexFuture
	if voter {
		s.log.Info("cluster: adding voter", "node", m.Name, "raft", m.RaftAddr)
		f = s.raft.AddVoter(id, addr, 0, 10*time.Second)
	} else {
		s.log.Info("cluster: adding non-voter", "node", m.Name, "raft", m.RaftAddr)
		f = s.raft.AddNonvoter(id, addr, 0, 10*time.Second)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: add %s to raft: %w", m.Name, err)
	}
	return nil
}

// WaitReady returns once this node can serve: a leader is known, the
// cluster map exists, and the local FSM has applied everything this node
// knows to be committed. A joining node waits here until the leader has
// added it. It returns ctx's error if ctx ends first, and an ErrRemoved
// error if this node's name was removed from the cluster (removed.go).
func (s *Store) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	start, told := time.Now(), time.Now()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	removed := s.watchRemoved(wctx) // the leader ignores a removed node
	for {
		if s.fsm.isRemoved(s.cfg.NodeID) {
			// Its own state says so: restarted before the leader took
			// it out of Raft, it would otherwise be ready at once.
			return s.removedErr("this node's own state")
		}
		id, _ := s.Leader()
		hasMap, commit := s.fsm.currentMap() != nil, s.raft.CommitIndex()
		if id != "" && hasMap && s.caughtUp(commit) && !s.fsm.isRemoved(s.cfg.NodeID) {
			return nil
		}
		if time.Since(told) >= notReadyEvery {
			// Why this node does not serve yet, for an operator (and a
			// test's log) to tell a missing leader from a lagging FSM.
			told = time.Now()
			ri := s.RaftInfo()
			s.log.Warn("cluster: not ready yet", "waited", time.Since(start).Round(time.Second),
				"leader", id, "state", ri.State, "term", ri.Term, "map", hasMap,
				"commit", commit, "raft_applied", s.raft.AppliedIndex(), "fsm_applied", s.fsm.applied.Load(),
				"last_contact", ri.LastContact.Round(time.Millisecond), "voters", ri.Voters, "nonvoters", ri.NonVoters)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting to be part of a cluster with a map: %w", context.Cause(ctx))
		case err := <-removed:
			return err
		case <-t.C:
		}
	}
}

// notReadyEvery is how often WaitReady says why it still waits.
const notReadyEvery = 10 * time.Second

// raftStatus fills the Raft part of a Status.
func (s *Store) raftStatus(st *Status) {
	st.Node = s.cfg.NodeID
	st.Leader, _ = s.Leader()
	st.Term = s.raft.CurrentTerm()
	st.CommitIndex = s.raft.CommitIndex()
	st.AppliedIndex = s.raft.AppliedIndex()
	if cf := s.raft.GetConfiguration(); cf.Error() == nil {
		for _, sv := range cf.Configuration().Servers {
			suf := "voter"
			switch sv.Suffrage {
			case raft.Nonvoter:
				suf = "nonvoter"
			case raft.Staging:
				suf = "staging"
			}
			st.Servers = append(st.Servers, RaftServer{ID: string(sv.ID), Address: string(sv.Address), Suffrage: suf, Leader: string(sv.ID) == st.Leader})
		}
	}
}

// RaftInfo is this node's Raft state for metrics.
type RaftInfo struct {
	State                 string // "leader", "follower", "candidate" or "shutdown"
	Term, Commit, Applied uint64
	LastContact           time.Duration // since the leader was last heard from; 0 on the leader
	Voters, NonVoters     int
}

// RaftInfo returns this node's Raft state.
func (s *Store) RaftInfo() RaftInfo {
	ri := RaftInfo{
		State: strings.ToLower(s.raft.State().String()), Term: s.raft.CurrentTerm(),
		Commit: s.raft.CommitIndex(), Applied: max(s.raft.AppliedIndex(), s.fsm.applied.Load()),
	}
	if s.raft.State() != raft.Leader {
		if lc := s.raft.LastContact(); !lc.IsZero() {
			ri.LastContact = time.Since(lc)
		}
	}
	if cf := s.raft.GetConfiguration(); cf.Error() == nil {
		for _, sv := range cf.Configuration().Servers {
			if sv.Suffrage == raft.Voter {
				ri.Voters++
			} else {
				ri.NonVoters++
			}
		}
	}
	return ri
}
