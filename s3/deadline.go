package s3

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyDeadline is a context that ends at a deadline or when stop is
// called, whichever comes first, like context.WithDeadline's, but whose
// timer is made only when someone first waits on it (Done; deriving a
// context from it asks Done too). The bandwidth waits of a request
// (WaitIn, WaitOut) take such a context and almost never wait: before,
// each request made two timer-backed contexts for them that nothing ever
// used (two of the three context.WithTimeout of a small GET, 3% of
// vaultd's CPU with their timers, bench/RESULTS.md session 30).
//
// A lazyDeadline with its deadline set is ready to use; one kept in a
// longer-lived struct (the request, a response stream) costs no
// allocation. It must not be copied.
//
// Err is exact without Done: it reads the clock, so a wait that only
// checks Err still stops at the deadline.
type lazyDeadline struct {
	deadline time.Time

	mu      sync.Mutex      // guards the following fields
	ctx     context.Context // the real context, once Done or Value needed it
	cancel  context.CancelFunc
	stopped bool // stop was called before ctx was made

	made atomic.Bool // ctx is made: Value's question needs the lock only then
}

// newLazyDeadline returns a context ending at d and the function that
// ends it early; as with context.WithDeadline, call stop once done with
// it.
func newLazyDeadline(d time.Time) (ctx *lazyDeadline, stop func()) {
	c := &lazyDeadline{deadline: d}
	return c, c.stop
}

var _ context.Context = (*lazyDeadline)(nil)

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

// real returns the real context, making it if need be. c.mu is held.
func (c *lazyDeadline) real() context.Context {
	switch {
	case c.ctx != nil:
	case c.stopped:
		c.ctx, c.cancel = context.WithCancel(context.Background())
		c.cancel()
	default:
		c.ctx, c.cancel = context.WithDeadline(context.Background(), c.deadline)
	}
	c.made.Store(true)
	return c.ctx
}

func (c *lazyDeadline) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.real().Done()
}

func (c *lazyDeadline) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.ctx != nil:
		return c.ctx.Err()
	case c.stopped:
		return context.Canceled
	case !time.Now().Before(c.deadline):
		// Past the deadline: the real context is made ended (no timer),
		// so that Done, if asked later, is closed as Err says.
		return c.real().Err()
	}
	return nil
}

// Value has no values of its own. Once the real context is made, it
// passes the question to it: a context derived from this one asks Done
// first, then finds the real context's cancelCtx through Value and is
// canceled with it directly, not by a goroutine watching Done.
//
// The engine asks for values (driver.IsUncached, FillKey) a few times a
// request: without the real context, the answer is nil without the lock
// (the lock was 0.8% of vaultd's CPU on small GETs).
func (c *lazyDeadline) Value(key any) any {
	if !c.made.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		return nil
	}
	return c.ctx.Value(key)
}

func (c *lazyDeadline) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx != nil {
		c.cancel()
		return
	}
	c.stopped = true
}

func (c *lazyDeadline) String() string { return "s3.lazyDeadline" }
