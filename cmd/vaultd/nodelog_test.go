package main

import (
	"fmt"
	"strings"
	"testing"
)

// Bounds of logDigest: a failed end-to-end test prints at most this much of
// each node's log.
const (
	digestNotable = 80   // WARN and ERROR lines (and the harness's "=== " marks)
	digestTail    = 20   // last lines of any level
	digestLineMax = 1000 // bytes of one line
)

// logDigest returns what a failed test prints of a node's log (its
// stderr, slog text lines): the last digestNotable lines at level WARN or
// ERROR or written by the harness ("=== ... SIGKILL"), then the last
// digestTail lines of any level, each cut to digestLineMax bytes.
func logDigest(log string) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if log == "" {
		lines = nil
	}
	var notable []string
	for _, l := range lines {
		if strings.Contains(l, " level=WARN ") || strings.Contains(l, " level=ERROR ") || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "panic:") {
			notable = append(notable, l)
		}
	}
	var b strings.Builder
	section := func(title string, all []string, n int) {
		from := max(0, len(all)-n)
		fmt.Fprintf(&b, "-- %s: the last %d of %d --\n", title, len(all)-from, len(all))
		for _, l := range all[from:] {
			if len(l) > digestLineMax {
				l = l[:digestLineMax] + " [...]"
			}
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	section("WARN/ERROR lines", notable, digestNotable)
	section("lines", lines, digestTail)
	return b.String()
}

func TestLogDigest(t *testing.T) {
	if got := logDigest(""); got != "-- WARN/ERROR lines: the last 0 of 0 --\n-- lines: the last 0 of 0 --\n" {
		t.Errorf("digest of an empty log: %q", got)
	}
	var log strings.Builder
	log.WriteString("=== Jan  2 15:04:05.000: start vaultd server\n")
	for i := range 1000 {
		switch i % 10 {
		case 3:
			fmt.Fprintf(&log, "time=t level=WARN msg=\"drive offline\" n=%d\n", i)
		case 7:
			fmt.Fprintf(&log, "time=t level=ERROR msg=\"read failed\" n=%d %s\n", i, strings.Repeat("x", 3000))
		default:
			fmt.Fprintf(&log, "time=t level=INFO msg=heal n=%d\n", i)
		}
	}
	log.WriteString("=== Jan  2 15:05:05.000: SIGKILL n1\n")
	got := logDigest(log.String())
	lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	if want := 2 + digestNotable + digestTail; len(lines) != want {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), want, got)
	}
	notable, last := lines[1:1+digestNotable], lines[2+digestNotable:]
	for i, want := range map[int]string{
		0:                 "-- WARN/ERROR lines: the last 80 of 202 --",
		1 + digestNotable: "-- lines: the last 20 of 1002 --",
		digestNotable:     "=== Jan  2 15:05:05.000: SIGKILL n1",
		2:                 "time=t level=WARN msg=\"drive offline\" n=613",
		len(lines) - 1:    "=== Jan  2 15:05:05.000: SIGKILL n1",
		len(lines) - 2:    "time=t level=INFO msg=heal n=999",
	} {
		if lines[i] != want {
			t.Errorf("line %d: %.80q, want %q", i, lines[i], want)
		}
	}
	if !strings.HasSuffix(lines[1], "x [...]") {
		t.Errorf("line 1: %.80q..., want an ERROR line cut short", lines[1])
	}
	for _, l := range notable {
		if strings.Contains(l, "level=INFO") {
			t.Errorf("an INFO line among the WARN/ERROR ones: %q", l)
		}
	}
	for _, l := range append(notable, last...) {
		if len(l) > digestLineMax+len(" [...]") {
			t.Errorf("a line of %d bytes, want at most %d", len(l), digestLineMax)
		}
	}
}
