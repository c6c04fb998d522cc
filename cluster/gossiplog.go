package cluster

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newGossipLog returns the *log.Logger memberlist writes to. memberlist
// logs lines such as "[WARN] memberlist: Refuting a suspect message";
// each becomes one slog record at the matching level, with the tag and
// the "memberlist: " prefix removed and component=memberlist attached.
// Like newHCLog, it is the only such adapter; nothing outside cluster
// sees it.
func newGossipLog(l *slog.Logger) *log.Logger {
	return log.New(gossipWriter{log: l.With("component", "memberlist")}, "", 0)
}

// gossipWriter logs each line written to it as one record.
type gossipWriter struct {
	log *slog.Logger
}

func (w gossipWriter) Write(p []byte) (int, error) {
	for line := range strings.Lines(string(p)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		level, msg := gossipLevel(line)
		w.log.Log(context.Background(), level, msg)
	}
	return len(p), nil
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
