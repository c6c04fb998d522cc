package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
)

// TestSecretWatch: a join that every peer answers under another secret
// gets a hint naming VAULT_CLUSTER_SECRET, and gives up once that has
// lasted giveUpAfter; any other failure starts the count again.
func TestSecretWatch(t *testing.T) {
	mismatch := fmt.Errorf("cluster: join [a]: %w: no installed keys could decrypt the message", cluster.ErrSecretMismatch)
	other := errors.New("cluster: join [a]: connection refused")
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		errs     []error
		at       []time.Duration // since t0, one per err
		wantGive bool
		wantHint string // in the last hint; "" for none
	}{
		{"one mismatch", []error{mismatch}, []time.Duration{0}, false, "is VAULT_CLUSTER_SECRET the same as the cluster's? (giving up in 1m0s)"},
		{"mismatches past the bound", []error{mismatch, mismatch, mismatch}, []time.Duration{0, 30 * time.Second, 61 * time.Second}, true, "(giving up)"},
		{"a peer down in between", []error{mismatch, other, mismatch}, []time.Duration{0, 30 * time.Second, 61 * time.Second}, false, "(giving up in 1m0s)"},
		{"only peers down", []error{other, other}, []time.Duration{0, 2 * time.Minute}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cause error
			w := &secretWatch{giveUpAfter: time.Minute, giveUp: func(err error) { cause = err }}
			hint := ""
			for i, err := range tc.errs {
				hint = w.failed(err, t0.Add(tc.at[i]))
			}
			if got := cause != nil; got != tc.wantGive {
				t.Errorf("gave up: %v (%v), want %v", got, cause, tc.wantGive)
			}
			if tc.wantGive && (!errors.Is(cause, cluster.ErrSecretMismatch) || !strings.Contains(cause.Error(), "VAULT_CLUSTER_SECRET")) {
				t.Errorf("give-up cause %v: want ErrSecretMismatch naming VAULT_CLUSTER_SECRET", cause)
			}
			if tc.wantHint == "" && hint != "" || !strings.Contains(hint, tc.wantHint) {
				t.Errorf("hint %q, want one containing %q", hint, tc.wantHint)
			}
		})
	}
}

// TestStartGossipWrongSecret: a node joining a peer that runs under
// another cluster secret logs a warning that names VAULT_CLUSTER_SECRET
// and gives up (probe F7 of session 17: "no installed keys could decrypt
// the message" every 2 s for ever).
func TestStartGossipWrongSecret(t *testing.T) {
	ctx := t.Context()
	seed, err := cluster.StartMembership(ctx, cluster.MembershipConfig{
		Name: "n1", BindAddr: "127.0.0.1:0", Self: cluster.Member{Name: "n1"}, Secret: []byte("the-cluster-secret-0123456789"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bind := l.Addr().String()
	l.Close()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gave := make(chan error, 1)
	watch := &secretWatch{giveUpAfter: time.Second, giveUp: func(err error) {
		select {
		case gave <- err:
		default:
		}
	}}
	f := &serverFlags{gossip: bind, join: seed.Addr(), s3Addr: "127.0.0.1:1", raftAddr: "127.0.0.1:2", rpc: "127.0.0.1:3"}
	ms, err := startGossip(ctx, f, &nodeState{Node: "n5"}, nil, []byte("another-secret-9876543210"), watch, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	select {
	case err := <-gave:
		if !errors.Is(err, cluster.ErrSecretMismatch) || !strings.Contains(err.Error(), "VAULT_CLUSTER_SECRET") {
			t.Errorf("gave up with %v, want ErrSecretMismatch naming VAULT_CLUSTER_SECRET", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still joining after 20 s; log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"gossip: join failed: the peers could not decrypt our messages or we theirs: is VAULT_CLUSTER_SECRET the same as the cluster's?") {
		t.Errorf("log without the hint:\n%s", logs.String())
	}
}

// TestClusterWrongSecretExits: a node started with another cluster secret
// than the node it joins warns that the secrets may differ and exits
// non-zero after secretGiveUp (about 80 s: long, VAULT_E2E_LONG=1).
func TestClusterWrongSecretExits(t *testing.T) {
	longE2E(t)
	c := prepareCluster(t, 2)
	c.nodes[0].start(t)
	c.nodes[0].waitHealthy(t, 60*time.Second)
	n2 := c.nodes[1]
	for i, e := range n2.env {
		if strings.HasPrefix(e, "VAULT_CLUSTER_SECRET=") {
			n2.env = append(slices.Clone(n2.env[:i]), n2.env[i+1:]...)
			break
		}
	}
	n2.env = append(n2.env, "VAULT_CLUSTER_SECRET=another-secret-"+rand.Text())
	n2.start(t)
	select {
	case <-n2.proc.exited:
	case <-time.After(secretGiveUp + 45*time.Second):
		t.Fatalf("n2 under another secret still runs:\n%s", tail(n2.stderr.String(), 4000))
	}
	out := n2.stderr.String()
	for _, want := range []string{
		"gossip: join failed: the peers could not decrypt our messages or we theirs: is VAULT_CLUSTER_SECRET the same as the cluster's?",
		"vaultd: cluster: waiting to be part of a cluster with a map: gossip: every peer answered under another cluster secret for 1m0s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("n2's stderr lacks %q:\n%s", want, tail(out, 4000))
		}
	}
	if n2.proc.err == nil {
		t.Errorf("n2 under another secret exited with status 0")
	}
}
