package remote

import (
	"context"
	"testing"
	"time"
)

// TestReview29rConfirmSpinsAfterCtx: a verification step whose probe's
// ctx ended while suspects were ready for their second HEAD looped in
// confirm until verifyStepTime: headAll marks every key errNotAsked
// (not a failure), the suspects go back to waiting, and the loop starts
// another round at once, holding lostMu and a CPU for up to 5 s after
// the probe gave up.
func TestReview29rConfirmSpinsAfterCtx(t *testing.T) {
	d := &Driver{cfg: Config{MaxConcurrent: 16}}
	p := &verifyPass{
		cands: []string{"c1", "c2"},
		again: []suspect{{key: "s1", at: time.Now().Add(-time.Second)}},
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	began := time.Now()
	gone := d.confirm(ctx, p, began)
	if took := time.Since(began); took > 500*time.Millisecond {
		t.Errorf("confirm with its ctx ended took %v (want it to return at once)", took)
	}
	if len(gone) != 0 || len(p.again) != 1 || len(p.cands) != 2 {
		t.Errorf("confirm with its ctx ended: gone %v, again %v, cands %v; want nothing confirmed and everything kept", gone, p.again, p.cands)
	}
}
