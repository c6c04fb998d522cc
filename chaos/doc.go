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
//   - TestPartitions runs each node in its own network namespace (veth
//     pairs on a bridge) and cuts nodes off from each other, one way or
//     both, flapping, or pauses the leader (SIGSTOP), under the same
//     workload and checks.
//
// Without flags the suites run a bounded number of iterations (what CI
// runs in make test); VAULT_CHAOS_LONG=1 (make chaos) runs hundreds, and
// VAULT_CHAOS_ITERS sets the count. They are skipped with -short. Each
// prints a summary line: iterations, faults, operations checked,
// anomalies. The partition suite needs root (it skips with a message
// where `ip netns add` fails).
//
// The package has no non-test code; it imports nothing of Vaultaire's but
// the client-visible API (S3 and /_vault/admin).
package chaos
