package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ids returns the request ids of the JSON lines in out, failing on any
// line that is not a complete JSON object.
func ids(t *testing.T, out string) []string {
	t.Helper()
	if out == "" {
		return nil
	}
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end with a newline: %q", out)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var v struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ids = append(ids, v.RequestID)
	}
	return ids
}

func idRange(from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, fmt.Sprintf("REQ%06d", i))
	}
	return s
}

func TestTailLast(t *testing.T) {
	lineSize := len(appendAccess(nil, ptr(sampleEvent(100))))
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, MaxFileBytes: int64(10 * lineSize), MaxFiles: 100}, hooks{})
	// 35 events: three rotated files of 10 lines and 5 in access.log; the
	// even ones are mutations.
	for i := range 35 {
		ev := sampleEvent(100 + i)
		if i%2 == 0 {
			ev = mutationEvent(100 + i)
		}
		l.ObserveRequest(&ev)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r, _ := listRotated(dir, "access"); len(r) != 3 {
		t.Fatalf("%d rotated access files, want 3", len(r))
	}
	all := idRange(100, 135)
	var mutations []string
	for i := 0; i < len(all); i += 2 {
		mutations = append(mutations, all[i])
	}
	tests := []struct {
		name string
		file string
		n    int
		want []string
	}{
		{"none", "access", 0, nil},
		{"one", "access", 1, all[34:]},
		{"within the current file", "access", 5, all[30:]},
		{"into a rotated file", "access", 7, all[28:]},
		{"across rotated files", "access", 22, all[13:]},
		{"exactly all", "access", 35, all},
		{"more than kept", "access", 100, all},
		{"all", "access", -1, all},
		{"txn", "txn", 4, mutations[len(mutations)-4:]},
		{"txn all", "txn", -1, mutations},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Tail(t.Context(), dir, tc.file, tc.n, false, &out); err != nil {
				t.Fatal(err)
			}
			if got := ids(t, out.String()); !slices.Equal(got, tc.want) {
				t.Errorf("Tail(%s, %d) = %v, want %v", tc.file, tc.n, got, tc.want)
			}
		})
	}

	t.Run("partial last line", func(t *testing.T) {
		f, err := os.OpenFile(filepath.Join(dir, "access.log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(`{"request_id":"half`)
		f.Close()
		var out bytes.Buffer
		if err := Tail(t.Context(), dir, "access", 2, false, &out); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, out.String()); !slices.Equal(got, all[33:]) {
			t.Errorf("got %v, want %v", got, all[33:])
		}
	})
	t.Run("errors", func(t *testing.T) {
		if err := Tail(t.Context(), dir, "audit", 1, false, &bytes.Buffer{}); err == nil {
			t.Error("unknown log accepted")
		}
		if err := Tail(t.Context(), filepath.Join(dir, "missing"), "access", 1, false, &bytes.Buffer{}); err == nil {
			t.Error("missing directory accepted")
		}
		var out bytes.Buffer
		if err := Tail(t.Context(), t.TempDir(), "access", 1, false, &out); err != nil || out.Len() != 0 {
			t.Errorf("empty directory: %v, %q", err, out.String())
		}
	})
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTailFollow follows the access log while it is written and rotated,
// slowly (each rotation seen by a poll) and in bursts (several rotations
// between two polls), and checks every line comes out once, in order.
func TestTailFollow(t *testing.T) {
	lineSize := len(appendAccess(nil, ptr(sampleEvent(100))))
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, MaxFileBytes: int64(5 * lineSize), MaxFiles: 100, FlushInterval: 5 * time.Millisecond}, hooks{})
	next := 100
	write := func(n int, pause time.Duration) {
		for range n {
			ev := sampleEvent(next)
			next++
			l.ObserveRequest(&ev)
			time.Sleep(pause)
		}
	}
	write(7, 0) // one rotated file before Tail starts

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Tail(ctx, dir, "access", -1, true, out) }()

	write(20, 30*time.Millisecond) // slow: a rotation every 150ms
	write(60, 0)                   // a burst: twelve rotations at once
	time.Sleep(300 * time.Millisecond)
	write(3, 0)

	want := idRange(100, next)
	deadline := time.Now().Add(10 * time.Second)
	for len(ids(t, out.String())) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Tail: %v", err)
	}
	if got := ids(t, out.String()); !slices.Equal(got, want) {
		t.Errorf("followed %d lines:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
	}
	if r, _ := listRotated(dir, "access"); len(r) < 15 {
		t.Errorf("only %d rotations", len(r))
	}
}

// TestTailFollowNoFile starts following before the log exists, and
// checks that a line longer than Tail's buffer and a line written in two
// pieces each come out whole, once.
func TestTailFollowNoFile(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Tail(ctx, dir, "txn", 10, true, out) }()
	time.Sleep(50 * time.Millisecond)
	l := openTest(t, Config{Dir: dir}, hooks{})
	ev := mutationEvent(1)
	l.ObserveRequest(&ev)
	long := mutationEvent(2)
	long.Key = strings.Repeat("\xff", 100<<10) // 600 KB escaped plus 133 KB of base64
	l.ObserveRequest(&long)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(ids(t, out.String())) < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(2)
	f, err := os.OpenFile(filepath.Join(dir, "txn.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(`{"request_id":`)
	time.Sleep(3 * TailPoll / 2)
	f.WriteString(`"REQ000003"}` + "\n")
	waitFor(3)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := ids(t, out.String()); !slices.Equal(got, idRange(1, 4)) {
		t.Errorf("got %v", got)
	}
}
