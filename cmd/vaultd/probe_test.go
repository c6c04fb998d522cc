package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// probeDrive is a drive whose health probe fails while fail is set.
type probeDrive struct {
	driver.Driver
	fail   atomic.Bool
	probes atomic.Int64
}

func (d *probeDrive) Probe(context.Context) error {
	d.probes.Add(1)
	if d.fail.Load() {
		return errors.New("probe: offline")
	}
	return nil
}

// TestRunProbesCallsBack: runProbes calls back once when a drive whose
// probe failed answers again (the server passes the engine's
// RetryHeals, so heals queued during an outage do not wait out their
// backoff, minutes after a long one), and not while it stays healthy or
// stays down.
func TestRunProbesCallsBack(t *testing.T) {
	d := &probeDrive{}
	var backs atomic.Int64
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runProbes(ctx, map[placement.DriveID]driver.Driver{"d0": d}, 5*time.Millisecond, func() { backs.Add(1) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	probed := func(n int64) {
		t.Helper()
		want := d.probes.Load() + n
		for deadline := time.Now().Add(10 * time.Second); d.probes.Load() < want; {
			if time.Now().After(deadline) {
				t.Fatalf("%d probes after 10 s, want %d", d.probes.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	probed(3)
	if n := backs.Load(); n != 0 {
		t.Fatalf("healthy drive: back called %d times", n)
	}
	d.fail.Store(true)
	probed(3)
	if n := backs.Load(); n != 0 {
		t.Fatalf("drive down: back called %d times", n)
	}
	d.fail.Store(false)
	probed(3)
	if n := backs.Load(); n != 1 {
		t.Fatalf("drive back: back called %d times, want 1", n)
	}
}

// hungProbeDrive is a drive whose probe hangs until its ctx ends.
type hungProbeDrive struct{ driver.Driver }

func (hungProbeDrive) Probe(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestRunProbesHungDrive: a drive whose probe hangs (a remote backend
// hung, each probe waiting out its timeout of at least 30 s) does not
// hold up the probes of the node's other drives: each is probed on its
// own (they were probed one after another, so one hung remote delayed
// every local drive's probe by 30 s a round).
func TestRunProbesHungDrive(t *testing.T) {
	d := &probeDrive{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runProbes(ctx, map[placement.DriveID]driver.Driver{"hung": hungProbeDrive{}, "d0": d}, 5*time.Millisecond, func() {}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for d.probes.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := d.probes.Load(); n < 5 {
		t.Fatalf("%d probes of a healthy drive in 5 s beside a hung one, want at least 5", n)
	}
}
