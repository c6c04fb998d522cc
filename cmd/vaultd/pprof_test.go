package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/vaultaire/vaultaire/internal/testnet"
)

func TestTraceSafe(t *testing.T) {
	for _, tc := range []struct {
		godebug string
		want    bool
	}{
		{"", false},
		{"tracefpunwindoff=1", true},
		{"madvdontneed=1, tracefpunwindoff=1", true},
		{"tracefpunwindoff=0", false},
		{"tracefpunwindoff=1,tracefpunwindoff=0", false}, // the last one wins
		{"tracefpunwindoff=0,tracefpunwindoff=1", true},
		{"xtracefpunwindoff=1", false},
	} {
		if got := traceSafe(tc.godebug); got != tc.want {
			t.Errorf("traceSafe(%q) = %v, want %v", tc.godebug, got, tc.want)
		}
	}
}

// TestPprofTraceRefusedWithFramePointers: without GODEBUG=tracefpunwindoff=1
// the trace endpoint answers 503 with the reason instead of tracing (which
// crashes vaultd under PUT load); with it, it traces.
func TestPprofTraceRefusedWithFramePointers(t *testing.T) {
	addr := testnet.Addr(t)
	if err := startPprof(addr, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/debug/pprof/trace?seconds=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	t.Setenv("GODEBUG", "")
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "tracefpunwindoff=1") {
		t.Fatalf("trace without tracefpunwindoff: %d %q (%d bytes), want 503 naming the setting", code, body[:min(len(body), 200)], len(body))
	}
	t.Setenv("GODEBUG", "tracefpunwindoff=1")
	if code, body := get(); code != http.StatusOK || len(body) == 0 {
		t.Fatalf("trace with tracefpunwindoff=1: %d, %d bytes, want 200 and a trace", code, len(body))
	}
}
