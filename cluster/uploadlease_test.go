package cluster

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestUploadLeaseTable(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	ttl := int64(30 * time.Second)
	acq := func(up, node, tok string, at time.Duration) []byte {
		return mustEncode(t, cmdAcquireLease, acquireLeaseCmd{Upload: up, Node: node, Token: tok, TTL: ttl, Now: t0 + int64(at)})
	}
	rel := func(up, node, tok string) []byte {
		return mustEncode(t, cmdReleaseLease, releaseLeaseCmd{Upload: up, Node: node, Token: tok})
	}
	steps := []struct {
		name    string
		cmd     []byte
		granted bool
		holder  string // node holding "u1" afterwards; "" none
	}{
		{"grant", acq("u1", "n1", "a", 0), true, "n1"},
		{"refused while held", acq("u1", "n2", "b", time.Second), false, "n1"},
		{"other upload independent", acq("u2", "n2", "b", time.Second), true, "n1"},
		{"same node takes over", acq("u1", "n1", "c", 2*time.Second), true, "n1"},
		{"release by the wrong node refused", rel("u1", "n2", "c"), false, "n1"},
		{"release with a stale token refused", rel("u1", "n1", "a"), false, "n1"},
		{"refused just before expiry", acq("u1", "n2", "d", 2*time.Second+30*time.Second-1), false, "n1"},
		{"granted at expiry", acq("u1", "n2", "d", 2*time.Second+30*time.Second), true, "n2"},
		{"holder releases", rel("u1", "n2", "d"), true, ""},
		{"released lease can be taken", acq("u1", "n3", "e", 33*time.Second), true, "n3"},
		{"malformed refused", mustEncode(t, cmdAcquireLease, acquireLeaseCmd{Upload: "u1", Node: "n1"}), false, "n3"},
	}
	f := newFSM()
	for i, s := range steps {
		r := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: s.cmd})
		if err, _ := r.(error); (err == nil) != s.granted {
			t.Fatalf("%s: Apply = %v, want granted %v", s.name, r, s.granted)
		}
		l, ok := f.leases["u1"]
		if got := map[bool]string{true: l.Node}[ok]; got != s.holder {
			t.Fatalf("%s: u1 held by %q, want %q", s.name, got, s.holder)
		}
	}
	// u2's lease (taken at +1s) expired when n3 acquired at +33s: dropped.
	if _, ok := f.leases["u2"]; ok {
		t.Fatal("expired lease of u2 not dropped on apply")
	}
	if !f.leaseHeld("u1", "n3", "e") || f.leaseHeld("u1", "n3", "x") || f.leaseHeld("u1", "n1", "e") {
		t.Fatal("leaseHeld disagrees with the table")
	}
	if r := f.Apply(&raft.Log{Index: 99, Type: raft.LogCommand, Data: acq("u9", "n1", "z", 40*time.Second)}); r != nil {
		t.Fatal(r)
	}
	if r := f.Apply(&raft.Log{Index: 100, Type: raft.LogCommand, Data: acq("u9", "n2", "y", 41*time.Second)}); !errors.Is(r.(error), errUploadLeased) {
		t.Fatalf("acquire of a held lease = %v, want errUploadLeased", r)
	}

	// Snapshot and restore keep the table, byte for byte.
	snap := snapshotBytes(t, f)
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, g), snap) {
		t.Fatal("restored state snapshots differently")
	}
	if r := g.Apply(&raft.Log{Index: 101, Type: raft.LogCommand, Data: acq("u1", "n1", "q", 34*time.Second)}); r == nil {
		t.Fatal("restored table granted a lease n3 holds")
	}
	if r := g.Apply(&raft.Log{Index: 102, Type: raft.LogCommand, Data: rel("u9", "n1", "z")}); r != nil {
		t.Fatalf("holder's release after restore: %v", r)
	}

	// A snapshot written before leases existed still restores.
	old := []byte(`{"version":2,"tenants":[],"containers":[],"nodes":null,"maps":null,"applied":7}`)
	h := newFSM()
	if err := h.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatalf("old snapshot: %v", err)
	}
	if r := h.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: acq("u1", "n1", "a", 0)}); r != nil {
		t.Fatalf("acquire after an old snapshot: %v", r)
	}
}
