package cluster

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// newGossipLog returns the *log.Logger memberlist writes to. memberlist
// logs lines such as "[WARN] memberlist: Refuting a suspect message";
// each becomes one slog record at the matching level, with the tag and
// the "memberlist: " prefix removed and component=memberlist attached.
// Like newHCLog, it is the only such adapter; nothing outside cluster
// sees it.
//
// Anyone who reaches the gossip port can make memberlist log: every
// datagram that fails to decrypt or decode gives an "[ERR] ... from=ADDR"
// line. Such a line reports what another host sent, not a fault of this
// node, so it is logged at Warn; and every kind of warning or error (its
// first words) is logged at most once per gossipLogEvery, the next one saying how many
// were suppressed, so that a flood of garbage cannot flood the log.
func newGossipLog(l *slog.Logger) *log.Logger {
	return log.New(&gossipWriter{log: l.With("component", "memberlist"), now: time.Now, last: map[string]*gossipKind{}}, "", 0)
}

// gossipLogEvery is the least time between two records of one kind of
// memberlist line.
const gossipLogEvery = 10 * time.Second

// maxGossipKinds bounds the kinds of lines whose rate is tracked; lines
// of further kinds share one limit.
const maxGossipKinds = 64

// gossipWriter logs each line written to it as one record, at most one
// per kind per gossipLogEvery.
type gossipWriter struct {
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex             // guards last
	last map[string]*gossipKind // by kind
}

type gossipKind struct {
	at         time.Time // last logged
	suppressed int       // lines not logged since
}

func (w *gossipWriter) Write(p []byte) (int, error) {
	for line := range strings.Lines(string(p)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		level, msg := gossipLevel(line)
		if level == slog.LevelError && strings.Contains(msg, " from=") {
			level = slog.LevelWarn // what a remote host sent
		}
		if !w.log.Enabled(context.Background(), level) {
			continue
		}
		suppressed, ok := 0, true
		if level >= slog.LevelWarn {
			suppressed, ok = w.allow(gossipKindOf(msg))
		}
		if !ok {
			continue
		}
		var attrs []any
		if suppressed > 0 {
			attrs = append(attrs, "suppressed", suppressed)
		}
		if decryptFailed(errors.New(msg)) {
			// A node joining with another secret than the cluster's
			// (probe F7 of session 17) looks like this on the nodes it asks.
			attrs = append(attrs, "hint", "a node under another cluster secret (VAULT_CLUSTER_SECRET) talks to this gossip port?")
		}
		w.log.Log(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}

// allow reports whether a line of kind is logged now, and how many of its
// kind were suppressed since the last one logged.
func (w *gossipWriter) allow(kind string) (int, bool) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	k := w.last[kind]
	if k == nil {
		if len(w.last) >= maxGossipKinds {
			kind = "" // the shared limit of the others
			k = w.last[kind]
		}
		if k == nil {
			w.last[kind] = &gossipKind{at: now}
			return 0, true
		}
	}
	if now.Sub(k.at) < gossipLogEvery {
		k.suppressed++
		return 0, false
	}
	n := k.suppressed
	k.at, k.suppressed = now, 0
	return n, true
}

// gossipKindOf is the kind of a memberlist message: its first three
// words ("Decrypt packet failed:", "UDP packet too short"), without the
// addresses and errors that follow.
func gossipKindOf(msg string) string {
	f := strings.Fields(msg)
	return strings.Join(f[:min(3, len(f))], " ")
}

// gossipLevel splits a memberlist log line into its level and message.
// Lines without a known tag are logged at Info.
func gossipLevel(line string) (slog.Level, string) {
	level := slog.LevelInfo
	if tag, rest, ok := strings.Cut(line, "] "); ok && strings.HasPrefix(tag, "[") {
		known := true
		switch tag[1:] {
		case "TRACE":
			level = levelTrace
		case "DEBUG":
			level = slog.LevelDebug
		case "INFO":
			level = slog.LevelInfo
		case "WARN":
			level = slog.LevelWarn
		case "ERR", "ERROR":
			level = slog.LevelError
		default:
			known = false
		}
		if known {
			line = rest
		}
	}
	return level, strings.TrimPrefix(line, "memberlist: ")
}
