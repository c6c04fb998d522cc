package main

import (
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
)

// TestClusterDrainDeadNodeStatus: draining a node that is down (an
// operator mistake) shows its drives as unreachable and says that only a
// forced removal ends the drain, and the DRIVES table keeps them, marked
// draining (probe F5 of session 17: "0 B left, rate unknown yet" for
// ever, and the drives vanished from the table).
func TestClusterDrainDeadNodeStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t, 3)
	c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	vaultd := c.cli(ctx, 0)
	c.nodes[2].kill(t)
	if out, err := vaultd("cluster", "drain", "n3"); err != nil {
		t.Fatalf("drain n3: %v (%s)", err, out)
	}
	want := []string{
		"draining:      n3-d0, n3-d1: what they hold is unknown (unreachable) in ", // 1 or more kept maps
		"drain rate:    none: n3-d0, n3-d1 of node n3 unreachable (down?); the drain waits for them, and if n3 is gone for good only `vaultd cluster remove --force n3` ends it",
		"n3-d0  n3    -     local  offline, draining",
		"n3-d1  n3    -     local  offline, draining",
	}
	var text string
	if _, err := waitStatus(t, c, 0, 20*time.Second, func(cluster.Status) string {
		text, _ = vaultd("cluster", "status")
		for _, w := range want {
			if !strings.Contains(text, w) {
				return "status lacks " + w
			}
		}
		return ""
	}); err != nil {
		t.Fatalf("%v:\n%s", err, text)
	}
}
