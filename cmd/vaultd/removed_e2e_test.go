package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
)

// TestClusterRemovedNodeRestartExits: a node drained and removed
// (`vaultd cluster remove`), then started again with its data, exits
// non-zero saying it was removed and how to bring the machine back
// (probe F6 of session 17: it ran for ever, serving nothing, logging only
// Raft's "not part of a stable configuration").
func TestClusterRemovedNodeRestartExits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t, 3)
	c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	cli := c.cli(ctx, 0)
	vaultd := func(args ...string) {
		t.Helper()
		if out, err := cli(args...); err != nil {
			t.Fatalf("vaultd %s: %v (%s)", strings.Join(args, " "), err, out)
		}
	}
	vaultd("cluster", "drain", "n3")
	if _, err := waitStatus(t, c, 0, 90*time.Second, func(st cluster.Status) string {
		if st.Drain == nil || st.Drain.PGsLeft > 0 {
			return fmt.Sprintf("drain %+v", st.Drain)
		}
		return ""
	}); err != nil {
		t.Fatal(err)
	}
	vaultd("cluster", "remove", "n3")
	n3 := c.nodes[2]
	n3.kill(t)
	mark := n3.stderr.Len()
	n3.start(t)
	select {
	case <-n3.proc.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("removed n3 still runs 30 s after its restart:\n%s", tail(n3.stderr.String()[mark:], 4000))
	}
	out := n3.stderr.String()[mark:]
	if n3.proc.err == nil || !strings.Contains(out, "node n3 was removed from the cluster") || !strings.Contains(out, "start it under a new name (--name) with empty drives") {
		t.Fatalf("removed n3 exited with %v, want non-zero saying it was removed; stderr:\n%s", n3.proc.err, tail(out, 4000))
	}
	if st, err := c.status(ctx, 0); err != nil || st.Map.Drives != 4 {
		t.Errorf("after removed n3's restart: map of %d drives (%v), want 4", st.Map.Drives, err)
	}
}
