package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// The collector's target. Go's default (GOGC=100) lets the heap grow to
// twice the live heap between collections. Serving small requests, a
// node's live heap is 4-8 MiB, so that collected about 40 times a second:
// 20-25% of a small request's CPU went to the collector and to regrowing
// the goroutine stacks each collection shrinks. A fixed GOGC=200 removed
// most of that (bench/RESULTS.md, session 21) but also tripled the heap of
// a node carrying large requests: a cluster's entry node under 16 PUTs of
// 1 MiB keeps about 90 MiB live, and peaked at 340 MiB RSS (200 MiB at
// 100). So a server gives the heap gcHeadroom beyond the live heap, or
// twice the live heap if that is more: after every collection it sets
// GOGC to 100 × gcHeadroom / live, within [100, gcMaxPercent]. GOMEMLIMIT,
// if set, still bounds the heap; GOGC, if set, is the operator's and stays.
const (
	gcHeadroom   = 16 << 20
	gcMaxPercent = 400
)

// gcPercentFor returns the collector's target for a live heap of live
// bytes, in steps of 10.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return gcMaxPercent
	}
	p := int(min(100*gcHeadroom/live, gcMaxPercent))
	return max(p/10*10, 100)
}

var gcTuning sync.Once

// tuneGC makes the process retune the collector's target after every
// collection (gcPercentFor), unless the operator chose one with GOGC
// (which the runtime has applied already). It reports whether the target
// is tuned.
func tuneGC(getenv func(string) string) bool {
	if getenv("GOGC") != "" {
		return false
	}
	gcTuning.Do(func() {
		retuneGC()
		armGCHook()
	})
	return true
}

// gcSentinel is allocated unreachable with a finalizer, which runs once
// the next collection has found it so. Not a tiny allocation (under 16
// bytes and pointer-free), whose finalizer may never run.
type gcSentinel struct{ _ [32]byte }

// armGCHook runs retuneGC after the next collection, and again after each
// one that follows.
func armGCHook() {
	runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
		retuneGC()
		armGCHook()
	})
}

// gcRetunes counts retuneGC's runs (tests).
var gcRetunes atomic.Int64

// retuneGC sets the collector's target for the live heap the last
// collection measured. It runs on the finalizer goroutine, one at a time,
// and sets the target every time (a cheap call): a target cached here
// would go stale if anything else set one.
func retuneGC() {
	gcRetunes.Add(1)
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	debug.SetGCPercent(gcPercentFor(s[0].Value.Uint64()))
}
