package main

import (
	"testing"
	"time"
)

// TestRestartWithoutQuorum: a node restarted while a majority of the
// cluster is down waits for a leader instead of exiting (it used to give
// up after 5 s recording the root tenant, found by a hostile probe), and
// serves once the others are back.
func TestRestartWithoutQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a 3-node cluster")
	}
	c := startCluster(t, 3)
	for _, n := range c.nodes {
		n.kill(t)
	}
	n1 := c.nodes[0]
	n1.start(t)
	time.Sleep(15 * time.Second) // three times the old give-up time
	if !n1.running() {
		t.Fatalf("%s exited without a quorum: %v\n%s", n1.name, n1.proc.err, tail(n1.stderr.String(), 2000))
	}
	for _, n := range c.nodes[1:] {
		n.start(t)
	}
	for _, n := range c.nodes {
		n.waitHealthy(t, 90*time.Second)
	}
}
