package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/internal/testnet"
)

// terminal records the writes of stdout and stderr in the order a
// terminal showing both would.
type terminal struct {
	mu     sync.Mutex // guards writes
	writes []termWrite
}

type termWrite struct {
	stream string // "stdout" or "stderr"
	text   string
}

func (tm *terminal) stream(name string) *termStream { return &termStream{tm, name} }

func (tm *terminal) all() []termWrite {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return append([]termWrite(nil), tm.writes...)
}

type termStream struct {
	tm   *terminal
	name string
}

func (s *termStream) Write(p []byte) (int, error) {
	s.tm.mu.Lock()
	defer s.tm.mu.Unlock()
	s.tm.writes = append(s.tm.writes, termWrite{s.name, string(p)})
	return len(p), nil
}

// TestBanner: at the default log level a node's start shows no Raft or
// gossip chatter, and the banner comes in one write, set apart by blank
// lines, once the node serves.
func TestBanner(t *testing.T) {
	dir := t.TempDir()
	s3addr, raftaddr := testnet.Addr(t), testnet.Addr(t)
	getenv := func(string) string { return "" }
	ctx, cancel := context.WithCancel(context.Background())
	var tm terminal
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"server", "--data", dir + "/a," + dir + "/b", "--s3", s3addr, "--raft", raftaddr, "--log-level", "info"}, getenv, tm.stream("stdout"), tm.stream("stderr"))
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server exit: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
	}()
	var banner string
	for deadline := time.Now().Add(30 * time.Second); banner == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, w := range tm.all() {
			if w.stream == "stdout" {
				banner = w.text
			}
		}
	}
	// The node serves as soon as the banner is out.
	resp, err := http.Get("http://" + s3addr + "/_vault/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health right after the banner: %v, %v", resp, err)
	}
	resp.Body.Close()
	// A Raft election takes a moment: give its chatter the time to show.
	time.Sleep(3 * time.Second)
	if !strings.HasPrefix(banner, "\nVaultaire ") || !strings.HasSuffix(banner, "\n\n") ||
		!strings.Contains(banner, "serving S3 on http://"+s3addr) || !strings.Contains(banner, "root secret key: ") {
		t.Errorf("banner %q: want one write, blank lines around, with the address and the root keys", banner)
	}
	var stderr, stdout int
	for _, w := range tm.all() {
		if w.stream == "stdout" {
			stdout++
			continue
		}
		stderr++
		if strings.Contains(w.text, "component=raft") || strings.Contains(w.text, "gossip") || strings.Contains(w.text, "level=WARN") || strings.Contains(w.text, "level=ERROR") {
			t.Errorf("start-up log line at the default level: %s", w.text)
		}
	}
	if stdout != 1 || stderr > 4 {
		t.Errorf("%d writes to stdout and %d log lines at start; want the banner alone and a few lines (drives, bootstrap)", stdout, stderr)
	}
}
