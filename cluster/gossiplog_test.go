package cluster

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGossipGarbageLog: a flood of garbage datagrams at the gossip port
// gives no ERROR record and only a few warnings, which count what they
// suppressed; the member still works.
func TestGossipGarbageLog(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := StartMembership(t.Context(), MembershipConfig{
		Name: "n1", BindAddr: "127.0.0.1:0", Self: advertised("n1", 0), Secret: testSecret, Local: true, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	conn, err := net.Dial("udp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const sent = 500
	for i := range sent {
		p := make([]byte, 1+i%200)
		rand.Read(p)
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(5 * time.Millisecond) // let the receive buffer drain
		}
	}
	// The last datagrams are handled before a member joining through the
	// same port is.
	other := startMember(t, "n2", "127.0.0.1:0", testSecret, advertised("n2", 0), nil)
	if n, err := other.Join(t.Context(), []string{m.Addr()}); err != nil || n != 1 {
		t.Fatalf("Join = %d, %v; want 1, nil", n, err)
	}
	time.Sleep(200 * time.Millisecond)
	out := buf.String()
	errors, warnings := strings.Count(out, "level=ERROR"), strings.Count(out, "level=WARN")
	if errors != 0 || warnings == 0 || warnings > 10 {
		t.Errorf("%d ERROR and %d WARN records for %d garbage datagrams; want none, and a few warnings:\n%s", errors, warnings, sent, out)
	}
}

// TestGossipLogLimit: a kind of warning is logged at most once per
// gossipLogEvery, the next one with the count suppressed; other kinds and
// Info lines are not held back; a message that could not be decrypted
// says a cluster secret may differ.
func TestGossipLogLimit(t *testing.T) {
	var buf lockedBuffer
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	w := &gossipWriter{log: slog.New(slog.NewTextHandler(&buf, nil)), now: func() time.Time { return now }, last: map[string]*gossipKind{}}
	for range 5 {
		w.Write([]byte("[ERR] memberlist: Decrypt packet failed: bad from=127.0.0.1:1\n"))
		w.Write([]byte("[INFO] memberlist: Marking n2 as failed\n"))
	}
	w.Write([]byte("[WARN] memberlist: Got ping for unexpected node\n"))
	w.Write([]byte("[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.1:3\n"))
	now = now.Add(gossipLogEvery)
	w.Write([]byte("[ERR] memberlist: Decrypt packet failed: bad from=127.0.0.1:2\n"))
	out := buf.String()
	for _, want := range []struct {
		text string
		n    int
	}{
		{`level=WARN msg="Decrypt packet failed: bad from=127.0.0.1:1"`, 1},
		{`level=WARN msg="Decrypt packet failed: bad from=127.0.0.1:2" suppressed=4`, 1},
		{`level=INFO msg="Marking n2 as failed"`, 5},
		{`level=WARN msg="Got ping for unexpected node"`, 1},
		// A node under another secret: the nodes it asks say so too.
		{`level=WARN msg="failed to receive: No installed keys could decrypt the message from=127.0.0.1:3" hint="a node under another cluster secret (VAULT_CLUSTER_SECRET) talks to this gossip port?"`, 1},
		{"level=ERROR", 0},
	} {
		if got := strings.Count(out, want.text); got != want.n {
			t.Errorf("%d records of %q, want %d:\n%s", got, want.text, want.n, out)
		}
	}
}

// TestRaftLevel: raft's commentary goes to Debug, its warnings and errors
// stay, except the two every start gives.
func TestRaftLevel(t *testing.T) {
	type serverID string // as raft.ServerID
	tests := []struct {
		level hclog.Level
		msg   string
		args  []any
		want  slog.Level
	}{
		{hclog.Info, "entering leader state", nil, slog.LevelDebug},
		{hclog.Info, "election won", []any{"term", 2}, slog.LevelDebug},
		{hclog.Debug, "appending entries", nil, slog.LevelDebug},
		{hclog.Warn, "failed to get previous log", []any{"previous-index", 6}, slog.LevelDebug},
		{hclog.Warn, "heartbeat timeout reached, starting election", []any{"last-leader-addr", "", "last-leader-id", serverID("")}, slog.LevelDebug},
		{hclog.Warn, "heartbeat timeout reached, starting election", []any{"last-leader-addr", "127.0.0.1:1", "last-leader-id", serverID("n1")}, slog.LevelWarn},
		{hclog.Warn, "failed to contact", []any{"server-id", "n2"}, slog.LevelWarn},
		{hclog.Error, "failed to appendEntries to", nil, slog.LevelError},
	}
	for _, tc := range tests {
		if got := raftLevel(tc.level, tc.msg, tc.args); got != tc.want {
			t.Errorf("raftLevel(%v, %q, %v) = %v, want %v", tc.level, tc.msg, tc.args, got, tc.want)
		}
	}
}
