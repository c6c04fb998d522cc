package s3

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLazyDeadline checks lazyDeadline against context.WithDeadline: the
// same Err and Done at the deadline, on stop, and for a derived context,
// whether Done was asked before or not.
func TestLazyDeadline(t *testing.T) {
	closed := func(c context.Context) bool {
		select {
		case <-c.Done():
			return true
		default:
			return false
		}
	}
	t.Run("deadline, Err only", func(t *testing.T) {
		c, stop := newLazyDeadline(time.Now().Add(20 * time.Millisecond))
		defer stop()
		if err := c.Err(); err != nil {
			t.Fatalf("Err before the deadline = %v, want nil", err)
		}
		time.Sleep(30 * time.Millisecond)
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err after the deadline = %v, want DeadlineExceeded", err)
		}
		if !closed(c) {
			t.Fatal("Done not closed after Err reported the deadline")
		}
	})
	t.Run("deadline, Done", func(t *testing.T) {
		c, stop := newLazyDeadline(time.Now().Add(20 * time.Millisecond))
		defer stop()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed at the deadline")
		}
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err = %v, want DeadlineExceeded", err)
		}
	})
	for _, asked := range []bool{false, true} {
		c, stop := newLazyDeadline(time.Now().Add(time.Hour))
		if asked && closed(c) {
			t.Fatal("Done closed before the deadline")
		}
		stop()
		if err := c.Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("Done asked before stop %v: Err = %v, want Canceled", asked, err)
		}
		if !closed(c) {
			t.Errorf("Done asked before stop %v: Done not closed after stop", asked)
		}
		if d, ok := c.Deadline(); !ok || time.Until(d) < 59*time.Minute {
			t.Errorf("Deadline = %v, %v", d, ok)
		}
	}
	t.Run("derived", func(t *testing.T) {
		c, stop := newLazyDeadline(time.Now().Add(time.Hour))
		child, cancel := context.WithCancel(c)
		defer cancel()
		stop()
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("derived context not canceled by stop")
		}
		if c.Value("k") != nil {
			t.Error("Value of a key never set is not nil")
		}
	})
}
