package main

import (
	"bytes"
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
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": c.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": c.root.SecretAccessKey}[k]
	}
	vaultd := func(args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(ctx, append(args, "--endpoint", "http://"+c.nodes[0].s3), getenv, &out, &errb); err != nil {
			t.Fatalf("vaultd %s: %v (%s%s)", strings.Join(args, " "), err, out.String(), errb.String())
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
