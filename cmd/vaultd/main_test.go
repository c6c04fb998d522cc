package main

import (
	"bytes"
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/internal/testnet"
)

func TestRunErrors(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"server", "--join", "a:1"}, "needs both --gossip and --rpc"},
		{[]string{"server", "--gossip", "127.0.0.1:1", "--rpc", "0.0.0.0:2"}, "reachable host"},
		{[]string{"server", "--gossip", "127.0.0.1:1", "--rpc", "127.0.0.1:2", "--data", t.TempDir()}, "VAULT_CLUSTER_SECRET"},
		{[]string{"server", "--raft", "10.0.0.1:9001"}, "loopback"},
		{[]string{"server", "--gossip", "127.0.0.1:1", "--rpc", "127.0.0.1:2", "--internode-ca", "ca.pem"}, "go together"},
		{[]string{"server", "--internode-ca", "ca.pem", "--internode-cert", "n.pem", "--internode-key", "n.key"}, "in cluster mode"},
		{[]string{"tenant"}, "want create"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), tc.args, getenv, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestServerStartsAndStops runs a node in-process, checks it answers, then
// cancels its context and expects a clean shutdown; a restart with other
// data directories is refused.
func TestServerStartsAndStops(t *testing.T) {
	dir := t.TempDir()
	s3addr, raftaddr := testnet.Addr(t), testnet.Addr(t)
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": "ROOTKEY", "VAULT_ROOT_SECRET_KEY": "rootsecret1"}[k]
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"server", "--data", dir + "/a," + dir + "/b", "--s3", s3addr, "--raft", raftaddr, "--log-level", "error"}, getenv, &out, &errb)
	}()
	var resp *http.Response
	var err error
	for range 100 {
		if resp, err = http.Get("http://" + s3addr + "/_vault/health"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
	if !strings.Contains(out.String(), "erasure coding 1+1") {
		t.Fatalf("startup banner: %s", out.String())
	}
	err = run(context.Background(), []string{"server", "--data", dir + "/a", "--s3", s3addr, "--raft", raftaddr}, getenv, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "same directories") {
		t.Fatalf("restart with other --data: %v", err)
	}
}

// TestGCPercentFor: the heap gets gcHeadroom beyond the live heap, or
// twice the live heap if that is more, within gcMaxPercent.
func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, gcMaxPercent},
		{1 << 20, gcMaxPercent}, // 1,600 capped
		{4 << 20, 400},
		{8 << 20, 200},
		{11 << 20, 140}, // 145 in steps of 10
		{16 << 20, 100},
		{90 << 20, 100},
	} {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("live %d MiB: GOGC %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

// TestTuneGC: with GOGC set the operator's target is left alone; unset,
// the target follows the live heap after each collection, down to 100
// with a large live heap and back once it is gone. (Other tests of this
// package may have started the retuning already: it is once per process.)
func TestTuneGC(t *testing.T) {
	if tuneGC(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	}) {
		t.Fatal("GOGC=50: the target is retuned, want the operator's left alone")
	}
	if !tuneGC(func(string) string { return "" }) {
		t.Fatal("GOGC unset: the target is not retuned")
	}
	target := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	liveHeap := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	// waitFor collects until the target satisfies ok (the hook runs on
	// the finalizer goroutine after a collection).
	waitFor := func(what string, ok func(int) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(target()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: collector target %d (live heap %d MiB)", what, target(), liveHeap()>>20)
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}
	live := make([]byte, 256<<20)
	waitFor("256 MiB live", func(p int) bool { return p == 100 })
	runtime.KeepAlive(live)
	// Counted before the slice goes: a collection may free it (and the
	// hook retune) at any moment after, even before waitFor's first look.
	runs := gcRetunes.Load()
	live = nil
	waitFor("256 MiB freed", func(p int) bool {
		return gcRetunes.Load() > runs && p == gcPercentFor(liveHeap()) && liveHeap() < 128<<20
	})
}
