package engine

import (
	"context"
	"testing"
	"time"
)

// TestRunHealer: a read that meets a drive which missed an overwrite
// queues the artifact, and the healer loop repairs it without anyone
// calling Heal.
func TestRunHealer(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	r.e.cfg.HealInterval = 20 * time.Millisecond
	data := randBytes(9, 300_000)
	r.put(t, "k", data, -1)
	r.faultyOf("k", 0).SetOffline(true)
	r.put(t, "k", append([]byte("v2"), data...), -1)
	r.faultyOf("k", 0).SetOffline(false)
	if got, err := r.get("k", 0, 2); err != nil || string(got) != "v2" {
		t.Fatalf("degraded read: %q, %v", got, err)
	}
	if len(r.e.Degraded()) != 1 {
		t.Fatalf("heal queue %v, want the artifact", r.e.Degraded())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.e.RunHealer(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.e.Degraded()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if len(r.e.Degraded()) > 0 || r.e.Stats().Repairs == 0 {
		t.Fatalf("healer left %v queued, %d repairs", r.e.Degraded(), r.e.Stats().Repairs)
	}
	// The repaired drive now serves with two others offline.
	r.faultyOf("k", 1).SetOffline(true)
	r.faultyOf("k", 2).SetOffline(true)
	if got, err := r.get("k", 0, 2); err != nil || string(got) != "v2" {
		t.Fatalf("read through the healed drive: %q, %v", got, err)
	}
}
