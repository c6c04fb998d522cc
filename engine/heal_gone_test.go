package engine

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"
)

// TestHealQueueDrainsWhenContainerGone: an artifact queued for healing
// whose container is then removed (a forced bucket removal) leaves the
// queue, so the heal_queue gauge (Stats.HealQueue) returns to 0 instead
// of keeping the old count while the healer retries for ever.
func TestHealQueueDrainsWhenContainerGone(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	r.e.cfg.HealInterval = 20 * time.Millisecond
	data := randBytes(12, 200_000)
	r.put(t, "k", data, -1)
	files := shardFiles(t, r.dirOf("k", 1))
	if len(files) != 1 {
		t.Fatalf("shard files of shard 1: %v", files)
	}
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	if got, err := r.get("k", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("degraded read: %d bytes, %v", len(got), err)
	}
	if q := r.e.Stats().HealQueue; q != 1 {
		t.Fatalf("heal queue %d, want the artifact", q)
	}
	if err := r.e.cfg.Containers.DeleteContainer(t.Context(), "t", "c"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.e.RunHealer(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for r.e.Stats().HealQueue > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := r.e.Stats(); st.HealQueue != 0 {
		t.Fatalf("heal queue %d (%d failed attempts) after the container went, want 0", st.HealQueue, st.HealFailures)
	}
}
