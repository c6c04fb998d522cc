package chaos

import (
	"os"
	"os/exec"
	"testing"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
)

// TestRaftWALTailTruncationRestart is the minimal repro of the crash
// suite's "node cannot restart" finding, on the Raft log store alone
// (github.com/hashicorp/raft-wal v0.4.0, hashicorp/raft-wal#31, fixed
// upstream by #33 in v0.4.1): a process stores log entries 1-10,
// truncates the tail (what raft does when it clears a conflicting log
// suffix after a leader change), stores entry 10 again and exits; the
// next process cannot read the log ("sealed segment has no index block"),
// and vaultd panics in raft.NewRaft at start. It fails until raft-wal is
// upgraded, so it only runs with VAULT_CHAOS_REPRO=1.
func TestRaftWALTailTruncationRestart(t *testing.T) {
	switch os.Getenv("WAL_MODE") {
	case "write":
		w, err := wal.Open(os.Getenv("WAL_DIR"))
		if err != nil {
			t.Fatal(err)
		}
		var logs []*raft.Log
		for i := uint64(1); i <= 10; i++ {
			logs = append(logs, &raft.Log{Index: i, Term: 1, Data: []byte("x")})
		}
		if err := w.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
		if err := w.DeleteRange(10, 10); err != nil {
			t.Fatal(err)
		}
		if err := w.StoreLogs([]*raft.Log{{Index: 10, Term: 2, Data: []byte("y")}}); err != nil {
			t.Fatal(err)
		}
		return
	case "read":
		w, err := wal.Open(os.Getenv("WAL_DIR"))
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		var l raft.Log
		if err := w.GetLog(1, &l); err != nil {
			t.Fatalf("GetLog(1) after restart: %v", err)
		}
		return
	}
	if os.Getenv("VAULT_CHAOS_REPRO") != "1" {
		t.Skip("known raft-wal v0.4.0 bug (hashicorp/raft-wal#31); VAULT_CHAOS_REPRO=1 runs the repro")
	}
	dir := t.TempDir()
	for _, mode := range []string{"write", "read"} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestRaftWALTailTruncationRestart$", "-test.v")
		cmd.Env = append(os.Environ(), "WAL_DIR="+dir, "WAL_MODE="+mode)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s process: %v\n%s", mode, err, out)
		}
	}
}
