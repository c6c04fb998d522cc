// Package cluster turns nodes into a cluster: gossip membership
// (Membership, hashicorp/memberlist), the replicated metadata store (Store,
// hashicorp/raft: tenants, their access keys, limits and usage, their
// containers and their configuration documents (bucketconfig.go: CORS
// now), the registered nodes and the cluster map), and the engine's
// Topology over that map (which hands the engine the drives of a node
// gossip reports down as offline, so no request waits on them:
// Topology.WatchMembers). Nothing per-artifact goes through Raft (an
// open multipart upload's short-lived lease aside).
//
// # What it may import
//
// cluster implements the interfaces its consumers declare and imports
// none of them: a Store is a tenant.Store (limits and usage), an s3.Keys
// (LookupKey), an s3.BucketConfigs (bucket configuration documents;
// FreshBucketConfig serves writes from a state proven current by a
// leader read index at most once a second, fresh.go), an
// engine.ContainerStore, an engine.UploadLocker (LockUpload: the
// per-upload leases of uploadlease.go, which serialise a multipart
// upload's operations across nodes, and fence their writes:
// engine.UploadFencer) and an engine.Coordinator (the
// leader-only migrator and scanner loops, engine.RunMigrator and
// engine.RunScanner); a Topology is an engine.Topology,
// engine.MapHistory and engine.FencedTopology. cmd/vaultd wires them; contract_test.go checks at
// compile time that they still fit. It imports tenant (the tenant types and errors its Store returns),
// meta (ContainerInfo and the container store errors it shares with
// engine), placement, driver, driver/peer and internal packages; never
// engine, s3 or s3/sigv4.
//
// # Joining
//
// Every node runs Store.Reconcile against its gossip view; only the leader
// acts. An alive member missing from the Raft configuration is added (as a
// voter while there are fewer than MaxVoters, else as a non-voter), and
// registered (NodeInfo: addresses and drives). Registering drives makes the
// leader plan a new map over all registered drives (placement.NewMap,
// policy from placement.DefaultPolicy) and propose it with the next epoch;
// Apply refuses any epoch but current+1, so racing proposals cannot both
// win. Older maps are kept and offered to the engine (engine.MapHistory),
// so reads find data written under them; the engine's migrator
// (engine.RunMigrator, acting on the leader: Store.IsLeader) moves that
// data into the current map and drops an older map (Store.DropMap) once
// nothing lives only there and the current map has been current for
// engine.MapSettle. A voter dead in gossip for DeadVoterAfter is
// replaced by a live non-voter. A node leaves the map only by the
// operator: drained (Store.Drain, vaultd cluster drain: its drives are
// left out of the next map and the migrator moves their data), then
// removed (Store.RemoveNode, vaultd cluster remove: out of the nodes, the
// map and Raft); see drain.go. A removed node's name is never admitted
// again: started again, such a node learns it from its peers and fails
// with ErrRemoved (removed.go). The erasure policy follows the drive count
// (placement.DefaultPolicy) until an operator sets one (Store.SetErasure,
// vaultd cluster set-erasure), which new maps then keep (Map.Chosen); the
// stripe width likewise follows placement.DefaultWidth until an operator
// sets one (Store.ChangeErasure, set-erasure --width; Map.WidthSet).
//
// # Remote drives
//
// A remote drive (an S3 bucket, driver/remote) is registered like a local
// one, from the declaring node's gossip, as class remote in a zone of its
// own, attached to that node; others reach it through that node's RPC
// (Topology.Drive). It carries an owner epoch; registration never moves
// it to another node: only Store.AdoptDrive does, through Raft, checking
// and bumping the epoch, and the owner's driver writes only while
// Store.OwnerFence passes (this node, that epoch, in a state synced with
// the Raft leader less than OwnerLease ago by the monotonic clock). See remotedrive.go and driver/remote's "Ownership and
// fencing".
//
// # Fenced map epochs
//
// Map epochs and upload leases are fenced (fence.go): the engine's writes
// carry the epoch of the map they were planned under and the PG they
// write into (Topology.DriveIn), and those under a multipart upload's
// lease carry the lease (Store.FenceUpload); every node's drives are
// wrapped by a Fence that refuses, with peer.ErrStaleEpoch, a write
// whose PG has moved since its epoch or whose lease has passed on, and
// counts it. A node paused across a map change or past its lease cannot
// overwrite anything once the receiving nodes know.
//
// # Writes and reads
//
// Every write is a command: one type byte (append-only enum) followed by a
// JSON payload. It is proposed with Store.apply, committed by a quorum of
// voters and then applied by every node's FSM in log order. Apply is
// deterministic: every value it stores (names, generated keys, creation
// times) is chosen by the proposer and carried in the command; Apply never
// reads the clock, does I/O or depends on map iteration order, so every
// node and every replay of the log reaches the same state. Invariants that
// depend on the state — a name or access key is unique, a tenant exists,
// a tenant owns no containers when deleted — are checked in Apply, so two
// racing proposals cannot both win. Input validation (tenant names) is
// done by the proposer, so tightening a rule never changes how an old log
// replays.
//
// Reads are served from the local FSM. A write on a follower is forwarded
// (Store.forward, the single place writes leave a node) to the leader's
// RPC listener, signed with the cluster secret (internal/rpcauth); the
// leader answers with the entry's index and the FSM's error as a code, and
// the follower returns only after its own FSM applied that index, so a
// client sees its own writes on every node. Another client's write may be
// seen on another node a moment later, except that a node never answers
// that something is absent (no such container, tenant or access key)
// before it has caught up with the leader (absent.go), and listings sync
// first too: a creation acknowledged through any node is never denied
// afterwards; a node that cannot catch up answers meta.ErrUnavailable.
// Without a reachable leader a write fails after a few seconds with
// meta.ErrUnavailable. Without a
// cluster secret (a single node) there is no forwarding.
//
// # Starting a node
//
// Open with Config.Bootstrap on a node without state makes a cluster whose
// only voter is this node, then waits for it to elect itself. A node that
// already has state ignores Bootstrap and recovers (restore the newest
// snapshot, replay the log after it), so passing Bootstrap on every start
// is safe. A node without state or Bootstrap returns at once and waits to
// be added by the leader (Store.WaitReady). With Config.Secret, Raft
// connections are TLS 1.3 tunnels mutually authenticated with
// certificates of a CA derived from the cluster secret (or an operator's,
// UseInternodeTLS), with a handshake under the secret inside
// (transport.go, internode.go, internal/clustertls). Without it (a single node) the store has no Raft
// listener at all: its only voter is itself, and an in-process transport
// leaves nothing for another process to connect to. Such a node can later
// be restarted with the secret to found a cluster; a node whose Raft
// state names other servers refuses to start without it.
//
// # Files
//
// Under Config.Dir: raft.db holds the raft log and the stable store (term,
// vote) in one bbolt file (raft-boltdb; a log left in wal/ by raft-wal,
// which could not restart after a tail truncation, is migrated once, see
// logstore.go); snapshots/
// holds the newest two raft snapshots, each the whole FSM state as JSON.
// A snapshot is taken every DefaultSnapshotThreshold log entries (checked
// at raft's snapshot interval), after which older log entries are
// truncated.
//
// # Internode encryption
//
// Every internode connection is encrypted and mutually authenticated by
// default, from the cluster secret alone: Raft and RPC (drive access,
// forwarded writes) by TLS 1.3 (internode.go), gossip by memberlist's
// AES-256-GCM under a key derived from the secret (membership.go). Object
// shards, records, Raft entries and request signatures never cross the
// network in the clear.
//
// # Secrets
//
// Secret keys are generated by the node that creates them (crypto/rand).
// With a cluster secret they are sealed (AES-256-GCM under a key derived
// from it, seal.go) before they are proposed, so the Raft log, snapshots
// and Raft traffic never carry them in the clear; a node unseals on
// lookup. A single node without cluster secret stores them in plaintext
// (under its data directory, mode 0700), and those records stay readable
// after it joins a cluster. In the API they are of type Secret, which
// prints, logs and marshals as "REDACTED".
//
// # Tenants' request rates
//
// Membership.ShareTraffic gossips, every second, the rate at which this
// node served each active tenant (memberlist user messages: tenant names
// and rates, nothing secret), so that each node's tenant.Traffic knows its
// share of a tenant's traffic and the tenant's rate limit holds
// cluster-wide (ratecount.go; the bound is in tenant's doc). memberlist's
// complaints about datagrams another host sent are warnings, each kind
// logged at most every 10 s (gossiplog.go); Raft's commentary is at debug
// level (hclog.go).
package cluster
