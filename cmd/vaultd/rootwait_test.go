package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/meta"
)

// TestRootTenantWaitsForLeader: a node that starts while no leader can be
// reached (a restart with a majority down, or peers flooded) keeps trying
// to record the root tenant until it is stopped, instead of exiting on
// the first refusal (found by a hostile probe: a restarted node exited
// after 5 s under an internode flood).
func TestRootTenantWaitsForLeader(t *testing.T) {
	dir := t.TempDir()
	store, err := cluster.Open(t.Context(), cluster.Config{Dir: filepath.Join(dir, "raft"), NodeID: "lonely", RaftAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, _, err := store.CreateTenant(t.Context(), "probe"); !errors.Is(err, meta.ErrUnavailable) && !errors.Is(err, cluster.ErrNotLeader) {
		t.Fatalf("a store without a leader answers %v, want unavailable or not the leader", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = ensureRootTenant(ctx, store, "root", slog.New(slog.DiscardHandler))
	if took := time.Since(start); err == nil || took < 3*time.Second {
		t.Fatalf("ensureRootTenant returned %v after %v; want it to keep waiting until stopped (3.5 s)", err, took)
	}
}
