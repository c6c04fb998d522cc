// Package chaos holds Vaultaire's fault campaign: test-only suites that run
// real vaultd processes (built from ./cmd/vaultd once per test binary),
// inject faults and check the whole operation history with a
// linearizability checker (porcupine).
//
//   - TestCrashConsistency SIGKILLs nodes at random points while clients
//     PUT, overwrite, complete multipart uploads, DeleteObjects and copy,
//     while a node joins (migration) and while restarted nodes heal; then
//     it checks that every key behaves as a linearizable register whose
//     values are content hashes (an acknowledged write reads back whole,
//     nothing unacknowledged is half-visible), that listings agree with
//     reads, and that bucket and tenant metadata in Raft is linearizable.
//
//   - TestPartitions runs each node in its own network namespace (veth
//     pairs on a bridge) and cuts nodes off from each other, one way or
//     both, flapping, or pauses the leader (SIGSTOP), under the same
//     workload and checks.
//
//   - TestScaleGrowDrain (VAULT_SCALE_TEST=1, make scale-test; size
//     VAULT_SCALE_BYTES, 1 GiB by default) loads three nodes with striped,
//     multipart, medium and small artifacts, then adds a fourth, drains and
//     removes one, and drains another SIGKILLed mid-drain, each under a
//     client loop that verifies every byte and tolerates only retryable
//     503s; it compares the shard bytes each change moved with the ideal.
//
//   - TestStaleMetadataOnCutOffNode and TestRaftWALTailTruncationRestart
//     are the minimal repros of two findings (see their comments).
//
// Metadata answers are checked with one allowance (staleMetadata), which
// is what the cluster provides: a node answers metadata reads from its own
// Raft state, asking the leader only when a name is missing, so a name
// may still be reported up to staleGrace after its deletion was
// acknowledged through another node, and a node cut off from the leader
// (or paused) answers from its state as of the cut until staleGrace after
// it is back. TestStaleMetadataOnCutOffNode shows that case alone
// (VAULT_CHAOS_STRICT_METADATA=1 fails on it). Object reads and writes
// get no allowance.
//
// Without flags the suites run a bounded number of iterations (what CI
// runs in make test); VAULT_CHAOS_LONG=1 (make chaos) runs hundreds,
// VAULT_CHAOS_ITERS sets the count, VAULT_CHAOS_SEED replays a schedule
// (as far as timing allows) and VAULT_CHAOS_FAULT=N runs only partition
// fault kind N (0 to 4). They are skipped with -short. Each prints a
// summary line: iterations, faults injected, operations checked,
// anomalies. On an anomaly the key's history is printed, porcupine's
// visualization and the nodes' logs are written under VAULT_CHAOS_OUT
// (default: the temporary directory). The partition suites need root
// (they skip with a message where `ip netns add` fails) and iproute2,
// bash and timeout; cuts are routes through a gateway with a permanent
// neighbour entry nobody answers to, so no tc, nft or iptables is needed.
//
// The package has no non-test code; it drives vaultd only through its
// command line, S3 and the /_vault/admin API.
package chaos
