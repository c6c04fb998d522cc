package remote

import (
	"sync"
	"time"
)

// breaker is a circuit breaker over the backend: it opens after threshold
// consecutive failed calls, refuses calls while open, and after a cooldown
// lets one trial call through; the trial's success closes it, its failure
// reopens it with a doubled cooldown (up to max).
type breaker struct {
	threshold     int
	minCool, maxC time.Duration
	now           func() time.Time

	mu        sync.Mutex
	fails     int
	open      bool
	openUntil time.Time
	cooldown  time.Duration
	trial     bool // a trial call is in flight
	opens     uint64
}

func newBreaker(threshold int, minCool, maxCool time.Duration) *breaker {
	return &breaker{threshold: threshold, minCool: minCool, maxC: maxCool, cooldown: minCool, now: time.Now}
}

// allow reports whether a call may go to the backend and whether it is the
// trial call of an open breaker (which must then report its outcome).
func (b *breaker) allow() (ok, trial bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true, false
	}
	if b.trial || b.now().Before(b.openUntil) {
		return false, false
	}
	b.trial = true
	return true, true
}

// due reports whether the breaker is open and its cooldown has passed.
func (b *breaker) due() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open && !b.trial && !b.now().Before(b.openUntil)
}

// isOpen reports whether the breaker refuses calls.
func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// success records a call that reached the backend and got an answer.
func (b *breaker) success(trial bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails = 0
	if trial || b.open {
		b.open, b.trial, b.cooldown = false, false, b.minCool
	}
}

// failure records a call that failed against the backend; it reports
// whether this opened the breaker.
func (b *breaker) failure(trial bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails++
	switch {
	case trial:
		b.trial = false
		b.cooldown = min(2*b.cooldown, b.maxC)
		b.openUntil = b.now().Add(b.cooldown)
		return false
	case !b.open && b.fails >= b.threshold:
		b.open, b.cooldown = true, b.minCool
		b.openUntil = b.now().Add(b.cooldown)
		b.opens++
		return true
	}
	return false
}

// release ends a trial call whose outcome says nothing about the backend
// (the caller gave up).
func (b *breaker) release(trial bool) {
	if !trial {
		return
	}
	b.mu.Lock()
	b.trial = false
	b.mu.Unlock()
}
