package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/internal/rpcauth"
	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/tenant"
)

// Forwarding: a follower sends each write to the leader's RPC listener
//
//	POST /v1/cluster/apply   body: the encoded command
//	-> 200 {"index": N, "code": "", "message": ""}
//
// signed with the cluster secret (internal/rpcauth). The leader appends the
// command, waits until it is applied, and answers with the entry's index
// and the FSM's answer as a code (wireErrors) so that errors.Is works on
// the follower as on the leader. The follower then waits until its own
// FSM has applied that index before returning to its caller.

const (
	applyPath = "/v1/cluster/apply"
	indexPath = "/v1/cluster/index"
	awaitPath = "/v1/cluster/await" // ?index=N
	// spreadWait bounds how long a removal waits for the other nodes to
	// apply it; a node that has not answered by then is down, partitioned
	// or paused (see spread).
	spreadWait     = 2 * time.Second
	syncTimeout    = 2 * time.Second
	maxSyncs       = 32      // concurrent syncWithLeader/syncForList calls; more answer from local state (fail for listings)
	maxCommandSize = 4 << 20 // bytes; a map of 4096 PGs × 16 drives fits
	forwardRetry   = 50 * time.Millisecond
	// noLeaderWait bounds how long a write waits for a reachable leader
	// (an election takes a few seconds) before failing as unavailable.
	noLeaderWait = 5 * time.Second
)

// wireErrors are the errors that cross the wire by code. Append only.
var wireErrors = []struct {
	code string
	err  error
}{
	{"NotLeader", ErrNotLeader},
	{"TenantExists", tenant.ErrTenantExists},
	{"NoSuchTenant", tenant.ErrNoSuchTenant},
	{"TenantNotEmpty", tenant.ErrTenantNotEmpty},
	{"InvalidName", tenant.ErrInvalidName},
	{"UnknownAccessKey", tenant.ErrUnknownAccessKey},
	{"AccessKeyExists", errAccessKeyExists},
	{"StaleMap", errStaleMap},
	{"ContainerExists", meta.ErrContainerExists},
	{"NoSuchContainer", meta.ErrNoSuchContainer},
	{"InvalidLimits", tenant.ErrInvalidLimits},
	{"PublicNameTaken", meta.ErrPublicNameTaken},
	{"ConfigChanged", meta.ErrConfigChanged},
	{"DriveMoved", ErrDriveMoved}, // remotedrive.go
	{"Refused", ErrRefused},
}

type applyAnswer struct {
	Index   uint64 `json:"index"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

func encodeErr(err error) (code, msg string) {
	if err == nil {
		return "", ""
	}
	for _, w := range wireErrors {
		if errors.Is(err, w.err) {
			return w.code, err.Error()
		}
	}
	return "Internal", err.Error()
}

func decodeWireErr(code, msg string) error {
	if code == "" {
		return nil
	}
	for _, w := range wireErrors {
		if w.code == code {
			return &remoteErr{msg: msg, is: w.err}
		}
	}
	return &remoteErr{msg: msg}
}

// remoteErr is an error the leader answered; it matches its sentinel with
// errors.Is.
type remoteErr struct {
	msg string
	is  error
}

func (e *remoteErr) Error() string { return "leader: " + e.msg }
func (e *remoteErr) Unwrap() error { return e.is }

// RPCHandler returns the handler of the store's internode endpoints, to be
// mounted on the node's RPC listener under /v1/cluster/. Every request must
// be signed with the cluster secret; others get 401 and are logged.
func (s *Store) RPCHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+applyPath, s.serveApply)
	mux.HandleFunc("GET "+indexPath, s.serveIndex)
	mux.HandleFunc("GET "+awaitPath, s.serveAwait)
	mux.HandleFunc("GET "+nodePath, s.serveNode) // removed.go
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.verifier == nil {
			http.Error(w, "cluster mode is off", http.StatusNotFound)
			return
		}
		if err := s.verifier.Check(r); err != nil {
			s.log.Warn("cluster: refused unauthenticated request", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", err.Error())
			http.Error(w, "not authenticated", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Store) serveApply(w http.ResponseWriter, r *http.Request) {
	cmd, err := io.ReadAll(io.LimitReader(r.Body, maxCommandSize+1))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(cmd) > maxCommandSize || len(cmd) == 0 {
		http.Error(w, "command empty or too large", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ApplyTimeout)
	defer cancel()
	var idx uint64
	if s.raft.State() != raft.Leader {
		err = ErrNotLeader
	} else {
		idx, err = s.applyLocal(ctx, cmd)
	}
	var a applyAnswer
	a.Index = idx
	a.Code, a.Message = encodeErr(err)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a)
}

// forward sends cmd to the leader and waits until this node has applied
// it. It retries while there is no leader or the leader moved before the
// command was appended; once the command may have been appended it does
// not retry, so a command is never applied twice by this path.
func (s *Store) forward(ctx context.Context, cmd []byte) (uint64, error) {
	if s.verifier == nil {
		return 0, ErrNotLeader // a single node without cluster secret
	}
	giveUp := time.Now().Add(noLeaderWait)
	for {
		if s.raft.State() == raft.Leader {
			idx, err := s.applyLocal(ctx, cmd)
			if !errors.Is(err, ErrNotLeader) {
				return idx, err
			}
		} else if id, _ := s.Leader(); id != "" {
			n, ok := s.fsm.node(id)
			if ok && n.RPCAddr != "" {
				idx, err := s.sendApply(ctx, n.RPCAddr, cmd)
				if idx > 0 {
					if werr := s.waitApplied(ctx, idx); werr != nil {
						return 0, werr
					}
				}
				if !errors.Is(err, ErrNotLeader) && !errors.Is(err, errNotSent) {
					return idx, err
				}
			}
		}
		if time.Now().After(giveUp) {
			return 0, fmt.Errorf("%w: %w: no leader reachable for %v", meta.ErrUnavailable, ErrNotLeader, noLeaderWait)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: %w: no leader reachable (%v)", meta.ErrUnavailable, ErrNotLeader, context.Cause(ctx))
		case <-time.After(forwardRetry):
		}
	}
}

// errNotSent marks a forwarding failure that happened before the request
// could reach the leader (a refused dial), which is safe to retry.
var errNotSent = errors.New("cluster: leader unreachable")

func (s *Store) sendApply(ctx context.Context, addr string, cmd []byte) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+applyPath, bytes.NewReader(cmd))
	if err != nil {
		return 0, err
	}
	rpcauth.Sign(req, s.cfg.Secret, time.Now())
	resp, err := s.httpc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return 0, fmt.Errorf("%w: %s: %w", errNotSent, addr, err)
		}
		return 0, fmt.Errorf("cluster: forward to leader %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("cluster: forward to leader %s: %s: %s", addr, resp.Status, bytes.TrimSpace(body))
	}
	var a applyAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return 0, fmt.Errorf("cluster: forward to leader %s: bad answer: %w", addr, err)
	}
	return a.Index, decodeWireErr(a.Code, a.Message)
}

// newForwardClient is the HTTP client followers forward writes with, over
// connections that pass the RPC handshake.
func newForwardClient(secret []byte) *http.Client {
	t := RPCTransport(secret)
	t.MaxIdleConnsPerHost = 4
	return &http.Client{Timeout: 30 * time.Second, Transport: t}
}

// serveIndex answers a follower's syncIndex with this node's read index
// (leaderIndex).
func (s *Store) serveIndex(w http.ResponseWriter, r *http.Request) {
	var a applyAnswer
	if s.raft.State() != raft.Leader {
		a.Code, a.Message = encodeErr(ErrNotLeader)
	} else if idx, err := s.leaderIndex(); err != nil {
		a.Code, a.Message = encodeErr(err)
	} else {
		a.Index = idx
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a)
}

// syncWithLeader brings this follower's FSM up to what the leader has
// applied, so that a bucket configuration document set through any node
// is seen here once its Put returned. It is called on configuration
// misses (tenant, key and container misses use the stricter syncAbsent,
// absent.go): it reports whether this node is now at least as current as the leader was
// (so a miss should be looked up again); on any failure (no leader, leader
// unreachable, too many concurrent syncs) it gives up and the caller
// answers from local state.
func (s *Store) syncWithLeader(ctx context.Context) bool {
	if s.verifier == nil || s.raft.State() == raft.Leader {
		return false
	}
	select {
	case s.syncs <- struct{}{}:
		defer func() { <-s.syncs }()
	default:
		return false
	}
	return s.syncIndex(ctx) == nil
}

// syncForList makes this node's state at least as current as every write
// acknowledged before the call, for listings (tenants, containers), which
// have no miss to catch up on: a follower syncs with the leader, waiting
// up to syncTimeout for a sync slot; the leader confirms it still leads
// and applies its log as far as it holds it (catchUpOnce). When it cannot, the listing fails with meta.ErrUnavailable rather than
// answer from a state that may miss an acknowledged creation (the chaos
// suites saw a tenant listing on a connected follower miss a CreateTenant
// acknowledged through the new leader). A single node has nothing to do.
func (s *Store) syncForList(ctx context.Context) error {
	if s.verifier == nil {
		return nil
	}
	if s.raft.State() == raft.Leader {
		if err := s.catchUpOnce(ctx); err != nil {
			return fmt.Errorf("%w: %w", meta.ErrUnavailable, err)
		}
		return nil
	}
	wait, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	select {
	case s.syncs <- struct{}{}:
		defer func() { <-s.syncs }()
	case <-wait.Done():
		return fmt.Errorf("%w: too many listings waiting for the leader", meta.ErrUnavailable)
	}
	if err := s.syncIndex(ctx); err != nil {
		return fmt.Errorf("%w: %w", meta.ErrUnavailable, err)
	}
	return nil
}

// syncIndex asks the leader for its read index (leaderIndex) and waits
// until this node has applied as far.
func (s *Store) syncIndex(ctx context.Context) error {
	id, _ := s.Leader()
	n, ok := s.fsm.node(id)
	if id == "" || !ok || n.RPCAddr == "" {
		return fmt.Errorf("%w: no known leader", ErrNotLeader)
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.RPCAddr+indexPath, nil)
	if err != nil {
		return err
	}
	rpcauth.Sign(req, s.cfg.Secret, time.Now())
	resp, err := s.httpc.Do(req)
	if err != nil {
		s.log.Debug("cluster: sync with leader", "leader", id, "err", err)
		return fmt.Errorf("sync with leader %s: %w", id, err)
	}
	defer resp.Body.Close()
	var a applyAnswer
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&a) != nil {
		return fmt.Errorf("sync with leader %s: status %d", id, resp.StatusCode)
	}
	if a.Code != "" {
		return fmt.Errorf("sync with leader %s: %w", id, decodeWireErr(a.Code, a.Message))
	}
	return s.waitApplied(ctx, a.Index)
}

// serveAwait answers once this node has applied the log up to ?index
// (at most spreadWait), with its applied index; a removal's spread calls
// it on every node.
func (s *Store) serveAwait(w http.ResponseWriter, r *http.Request) {
	idx, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	if err != nil {
		http.Error(w, "index: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), spreadWait)
	defer cancel()
	var a applyAnswer
	if err := s.waitApplied(ctx, idx); err != nil {
		a.Code, a.Message = encodeErr(err)
	}
	a.Index = s.fsm.applied.Load()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a)
}

// spread waits, at most spreadWait, until every other node of the cluster
// has applied the log up to index. It is best effort by design: a node
// that is down or cut off cannot be waited for without making a deletion
// impossible while any node is away. Such a node is behind by at most
// what it missed while away, and syncs on its next lookup miss. When a
// node does not confirm, spread lasts at least freshWindow, so that the
// node's last sync cannot still make it fresh (fresh.go) once the caller
// returns.
func (s *Store) spread(ctx context.Context, index uint64) {
	if s.verifier == nil {
		return // a single node: nothing to wait for
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, spreadWait+time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range s.fsm.nodeList() {
		if n.Name == s.cfg.NodeID || n.RPCAddr == "" {
			continue
		}
		wg.Go(func() {
			if err := s.awaitNode(ctx, n.RPCAddr, index); err != nil {
				s.log.Warn("cluster: a node did not confirm a removal", "node", n.Name, "index", index, "err", err)
				t := time.NewTimer(time.Until(start.Add(freshWindow)))
				defer t.Stop()
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		})
	}
	wg.Wait()
}

func (s *Store) awaitNode(ctx context.Context, addr string, index uint64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+awaitPath+"?index="+strconv.FormatUint(index, 10), nil)
	if err != nil {
		return err
	}
	rpcauth.Sign(req, s.cfg.Secret, time.Now())
	resp, err := s.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var a applyAnswer
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("await: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&a); err != nil {
		return fmt.Errorf("await: bad answer: %w", err)
	}
	if a.Index < index {
		return fmt.Errorf("await: applied %d < %d: %s", a.Index, index, a.Message)
	}
	return nil
}
