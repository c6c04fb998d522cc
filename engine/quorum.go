package engine

import (
	"context"
	"sync/atomic"
	"time"
)

// Quorum fan-out: a write or read returns as soon as a quorum of drives
// has answered and the others had a short while more, rather than wait
// for the slowest drive (a hung disk, a paused node). The calls still
// running then are stragglers: they go on in the background, owned by
// the Engine (WaitBackground waits for them), and are stopped by their
// ctx (the request's, which ends with it, or a per-call deadline of the
// driver). What a straggler did is cleaned up or kept once it returns:
// an uncommitted shard is aborted and deleted, a record landing after a
// failed write is rolled back, one landing after a successful write has
// the shards it replaced collected.

// Straggler grace bounds: once a quorum succeeded, a fan-out waits for
// the rest twice as long as the quorum took, but at least minStraggle and
// at most maxStraggle. A healthy drive a little slower than the others
// thus still gets its shard or record (no needless healing), and a hung
// one holds the request up by at most maxStraggle.
const (
	minStraggle = 300 * time.Millisecond
	maxStraggle = time.Second
	// cleanupTimeout bounds a background cleanup (deleting a straggler's
	// shard, rolling back or collecting after a late record write).
	cleanupTimeout = 30 * time.Second
)

// straggle returns how long to wait for the remaining calls of a fan-out
// whose quorum took took.
func straggle(took time.Duration) time.Duration {
	return min(max(2*took, minStraggle), maxStraggle)
}

// goBackground runs f on a goroutine owned by the Engine.
func (e *Engine) goBackground(f func()) {
	e.bg.Go(f)
}

// WaitBackground waits until the Engine's background work (stragglers of
// returned requests and their cleanups) has finished. Every piece of it is
// bounded by its ctx or cleanupTimeout.
func (e *Engine) WaitBackground() { e.bg.Wait() }

// cleanupCtx returns a ctx for background cleanup after a request: not
// cancelled with ctx, bounded by cleanupTimeout.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

type fanResult[T any] struct {
	j int
	v T
}

// fanOut calls call(ctx, j) in parallel for every j < n with run(j), and
// returns the results in shard order and which calls returned. It returns
// once every call returned, or once need calls returned a value good
// accepts and the straggler grace (straggle) has passed since, or once ctx
// is done. Each call still running then is a straggler: when it returns,
// late (if not nil) is called with its result on a goroutine the Engine
// owns. call must honour ctx.
func fanOut[T any](ctx context.Context, e *Engine, n int, run func(j int) bool, need int, call func(ctx context.Context, j int) T, good func(T) bool, late func(j int, v T)) ([]T, []bool) {
	return fanOutUntil(ctx, e, n, run, func(ok int, _ []bool) bool { return ok > 0 && ok == need }, call, good, late)
}

// fanOutUntil is fanOut with the quorum given by enough rather than a
// count: the straggler grace starts once enough(ok, accepted) reports true,
// where ok is how many calls returned a value good accepts and accepted[j]
// says whether call j did. enough is asked before the first call returns
// and each time a call returns an accepted value, on the caller's
// goroutine, and must not retain accepted.
func fanOutUntil[T any](ctx context.Context, e *Engine, n int, run func(j int) bool, enough func(ok int, accepted []bool) bool, call func(ctx context.Context, j int) T, good func(T) bool, late func(j int, v T)) ([]T, []bool) {
	return fanOutWait(ctx, e, n, run, untilWait(enough), call, good, late)
}

// untilWait is fanOutUntil's wait for fanOutWait: the straggler grace,
// once, from when enough first holds.
func untilWait(enough func(ok int, accepted []bool) bool) func(ok int, accepted []bool, took time.Duration) time.Duration {
	held := false // enough held: the grace runs, enough is not asked again
	return func(ok int, accepted []bool, took time.Duration) time.Duration {
		if held || !enough(ok, accepted) {
			return -1
		}
		held = true
		if ok == 0 {
			// enough may already hold with no call back (a listing
			// whose only cursor needing a batch is on a drive that
			// hangs, the others covering every set without it: probe
			// of session 14, which waited for the request's deadline):
			// the most a straggler gets, no answer to measure it by.
			return maxStraggle
		}
		return straggle(took)
	}
}

// fanOutWait is fanOut with the wait for the remaining calls given by
// wait(ok, accepted, took), asked as enough is by fanOutUntil, where took
// is the time since the calls started: a duration from now, or a negative
// one to wait on. A wait ending sooner than the one already running
// replaces it; a later one does not.
func fanOutWait[T any](ctx context.Context, e *Engine, n int, run func(j int) bool, wait func(ok int, accepted []bool, took time.Duration) time.Duration, call func(ctx context.Context, j int) T, good func(T) bool, late func(j int, v T)) ([]T, []bool) {
	res := make([]T, n)
	flags := make([]bool, 2*n) // one allocation for both
	accepted, done := flags[:n:n], flags[n:]
	ch := make(chan fanResult[T], n) // never blocks a sender
	started := 0
	for j := range n {
		if !run(j) {
			continue
		}
		started++
		// goBackground's own goroutine, with one closure where
		// goBackground and sync.WaitGroup.Go take two (an allocation
		// per drive of every fan-out): Done as WaitGroup.Go calls it,
		// not on a panic.
		e.bg.Add(1)
		go func() {
			defer func() {
				if x := recover(); x != nil {
					panic(x)
				}
				e.bg.Done()
			}()
			ch <- fanResult[T]{j, call(ctx, j)}
		}()
	}
	began := time.Now()
	// The grace's timer is made only when the loop would block with the
	// grace running: no timer (its allocations, the runtime's timer heap)
	// for a fan-out whose last answers are in with the quorum's. A small
	// PUT's record write rarely is one (its drives commit in different
	// batches: bench/RESULTS.md, session 28).
	var (
		timer    *time.Timer
		grace    <-chan time.Time
		deadline time.Time // the grace's end; zero: not running
	)
	arm := func(ok int) {
		now := time.Now()
		d := wait(ok, accepted, now.Sub(began))
		if d < 0 || !deadline.IsZero() && !now.Add(d).Before(deadline) {
			return
		}
		deadline = now.Add(d)
		if timer != nil {
			timer.Reset(d) // Go 1.23+: no stale value is received after Reset
		}
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	got, ok := 0, 0
	if started > 0 {
		arm(0)
	}
wait:
	for got < started {
		var r fanResult[T]
		select {
		case r = <-ch:
		default:
			if !deadline.IsZero() && timer == nil {
				timer = time.NewTimer(time.Until(deadline))
				grace = timer.C
			}
			select {
			case r = <-ch:
			case <-grace:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		got++
		res[r.j], done[r.j] = r.v, true
		if good(r.v) {
			ok++
			accepted[r.j] = true
			if got < started {
				arm(ok)
			}
		}
	}
	if left := started - got; left > 0 {
		e.goBackground(func() {
			for range left {
				r := <-ch
				if late != nil {
					late(r.j, r.v)
				}
			}
		})
	}
	return res, done
}

// cleanupNeed is how many of n drives a clean-up (deleting records or
// shard files) waits for before giving the others the straggler grace: a
// majority. Nothing a reader relies on depends on a delete reaching any
// drive (what one leaves is garbage, never read), so a clean-up need not
// wait for a hung drive; the delete goes on there in the background.
func cleanupNeed(n int) int { return n/2 + 1 }

// fanCleanup calls call(ctx, j) for every j < n with mask[j] as fanOut does
// and returns once a majority answered (cleanupNeed) and the rest had the
// grace. The calls run under a ctx detached from ctx's cancellation and
// bounded by cleanupTimeout (cleanupCtx), released once the last call
// returned: a clean-up a request started finishes after the request.
func (e *Engine) fanCleanup(ctx context.Context, mask []bool, call func(ctx context.Context, j int) error) {
	started := 0
	for _, m := range mask {
		if m {
			started++
		}
	}
	if started == 0 {
		return
	}
	cctx, cancel := cleanupCtx(ctx)
	var left atomic.Int64
	left.Store(int64(started))
	fanOut(cctx, e, len(mask), func(j int) bool { return mask[j] }, cleanupNeed(started),
		func(ctx context.Context, j int) error {
			defer func() {
				if left.Add(-1) == 0 {
					cancel()
				}
			}()
			return call(ctx, j)
		},
		func(error) bool { return true }, nil)
}
