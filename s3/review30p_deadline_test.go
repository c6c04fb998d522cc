package s3

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestReview30pLazyDeadlineDerived: contexts derived from a lazyDeadline
// (WithCancel, AfterFunc) end at its deadline and at stop; Err before and
// after the deadline; Value answers for values set on a derived context.
func TestReview30pLazyDeadlineDerived(t *testing.T) {
	d, stop := newLazyDeadline(time.Now().Add(50 * time.Millisecond))
	defer stop()
	if d.Err() != nil {
		t.Fatal("Err before deadline")
	}
	child, cc := context.WithCancel(d)
	defer cc()
	fired := make(chan struct{})
	context.AfterFunc(d, func() { close(fired) })
	type k struct{}
	v := context.WithValue(child, k{}, 1)
	select {
	case <-child.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("child not ended at deadline")
	}
	select {
	case <-fired:
	case <-time.After(2 * time.Second):
		t.Fatal("AfterFunc not run")
	}
	if !errors.Is(d.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatal(d.Err(), child.Err())
	}
	if v.Value(k{}) != 1 {
		t.Fatal("value lost")
	}

	d2, stop2 := newLazyDeadline(time.Now().Add(time.Hour))
	c2, cc2 := context.WithCancel(d2)
	defer cc2()
	stop2()
	select {
	case <-c2.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("child not ended at stop")
	}
}
