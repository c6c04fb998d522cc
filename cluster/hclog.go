package cluster

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// levelTrace is the slog level of hclog's Trace, below slog.LevelDebug.
const levelTrace = slog.LevelDebug - 4

// hclogAdapter lets raft log through a *slog.Logger. It is
// the only hclog.Logger in the program; nothing outside cluster sees it.
type hclogAdapter struct {
	root    *slog.Logger // the configured logger
	name    string
	implied []any
	log     *slog.Logger // root with component=name and the implied args
}

func newHCLog(l *slog.Logger) hclog.Logger { return derive(l, "", nil) }

func derive(root *slog.Logger, name string, implied []any) *hclogAdapter {
	l := root
	if name != "" {
		l = l.With("component", name)
	}
	if len(implied) > 0 {
		l = l.With(implied...)
	}
	return &hclogAdapter{root: root, name: name, implied: implied, log: l}
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func toSlogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	a.log.Log(context.Background(), raftLevel(level, msg, args), msg, formatArgs(args)...)
}

// raftLevel is the level a raft record is logged at. raft's Info records
// are its running commentary (states entered, elections won, snapshots
// taken, peers added) and go to Debug, so that a node's start shows what
// the operator needs rather than a screen of Raft lines. So do two
// warnings every start gives: a node that has never heard of a leader
// starting the first election, and a new follower being caught up
// ("failed to get previous log").
func raftLevel(l hclog.Level, msg string, args []any) slog.Level {
	switch {
	case l == hclog.Info:
		return slog.LevelDebug
	case l == hclog.Warn && msg == "failed to get previous log":
		return slog.LevelDebug
	case l == hclog.Warn && msg == "heartbeat timeout reached, starting election":
		for i := 0; i+1 < len(args); i += 2 {
			if k, _ := args[i].(string); k == "last-leader-id" {
				if fmt.Sprint(args[i+1]) == "" { // a raft.ServerID
					return slog.LevelDebug
				}
			}
		}
	}
	return toSlogLevel(l)
}

// formatArgs renders hclog's deferred formats (hclog.Fmt), which slog
// would print as their raw format string and arguments.
func formatArgs(args []any) []any {
	var out []any
	for i, v := range args {
		f, ok := v.(hclog.Format)
		if !ok || len(f) == 0 {
			continue
		}
		if out == nil {
			out = slices.Clone(args)
		}
		out[i] = fmt.Sprintf(fmt.Sprint(f[0]), f[1:]...)
	}
	if out == nil {
		return args
	}
	return out
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(l slog.Level) bool {
	return a.log.Enabled(context.Background(), l)
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(levelTrace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(slog.LevelError) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return derive(a.root, a.name, append(a.implied[:len(a.implied):len(a.implied)], args...))
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

// ResetNamed returns a logger whose records carry component=name.
func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return derive(a.root, name, a.implied)
}

// SetLevel does nothing: the slog handler decides levels.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(toSlogLevel(l)) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := slog.LevelInfo
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = toSlogLevel(opts.ForceLevel)
	}
	return stdWriter{a: a, level: level}
}

// stdWriter logs each line written to it as one record.
type stdWriter struct {
	a     *hclogAdapter
	level slog.Level
}

func (w stdWriter) Write(p []byte) (int, error) {
	for line := range strings.Lines(string(p)) {
		if line = strings.TrimRight(line, "\r\n"); line != "" {
			w.a.log.Log(context.Background(), w.level, line)
		}
	}
	return len(p), nil
}
