package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/local"
	"github.com/vaultaire/vaultaire/placement"
)

// openDrives opens one local drive per data directory and returns the
// placement map over them. The first start records the layout; later
// starts must present the same directories in the same order. A drive
// that cannot be opened is returned offline (local.Attach) rather than
// keeping the node from starting; runProbes brings it in when it recovers.
// secret is the cluster secret in cluster mode, else nil (remote.go).
func openDrives(ctx context.Context, f *serverFlags, secret []byte, log *slog.Logger) (map[placement.DriveID]driver.Driver, *placement.Map, *nodeState, func(), error) {
	var dirs []string
	for _, d := range strings.Split(f.data, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		dirs = append(dirs, abs)
	}
	if len(dirs) == 0 {
		return nil, nil, nil, nil, errors.New("--data names no directory")
	}
	if err := os.MkdirAll(dirs[0], 0o755); err != nil {
		return nil, nil, nil, nil, err
	}
	statePath := filepath.Join(dirs[0], "node.json")
	var st nodeState
	exists, err := loadJSON(statePath, &st)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read %s: %w", statePath, err)
	}
	if !exists {
		pol, err := placement.DefaultPolicy(len(dirs) + len(f.remoteSpecs))
		if err != nil {
			return nil, nil, nil, nil, err
		}
		st = nodeState{ClusterID: randomString(16, "abcdef0123456789"), Node: f.name, Dirs: dirs, Policy: pol.String(), PGs: placement.DefaultPGCount, Remotes: remoteNames(f.remoteSpecs)}
		for i := range dirs {
			st.Drives = append(st.Drives, fmt.Sprintf("%s-d%d", st.Node, i))
		}
	} else if !slices.Equal(st.Dirs, dirs) {
		return nil, nil, nil, nil, fmt.Errorf("this node was created with --data %s; start it with the same directories in the same order", strings.Join(st.Dirs, ","))
	}
	if err := checkRemotes(&st, f.remoteSpecs); err != nil {
		return nil, nil, nil, nil, err
	}
	var pol placement.Policy
	if _, err := fmt.Sscanf(st.Policy, "%d+%d", &pol.Data, &pol.Parity); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("node.json: policy %q: %w", st.Policy, err)
	}
	drives := map[placement.DriveID]driver.Driver{}
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	var pdrives []placement.Drive
	for i, dir := range dirs {
		id := placement.DriveID(st.Drives[i])
		// A drive that cannot be opened (failed, read-only, foreign)
		// starts offline: the erasure sets may tolerate it, and the
		// probe loop takes it in when it recovers.
		d, err := local.Attach(ctx, local.Config{Dir: filepath.Join(dir, "drive"), ID: id, ClusterID: st.ClusterID, Logger: log})
		if err != nil {
			closeAll()
			return nil, nil, nil, nil, fmt.Errorf("open drive %s: %w", dir, err)
		}
		if err := d.Err(); err != nil {
			log.Error("starting with a drive offline", "drive", id, "dir", dir, "err", err)
		}
		closers = append(closers, d.Close)
		drives[id] = d
		pdrives = append(pdrives, placement.Drive{ID: id, Node: placement.NodeID(st.Node), Class: driver.ClassLocal})
	}
	seen := &encryptedSeen{st: &st, path: statePath, saved: exists, log: log}
	if pdrives, err = attachRemotes(ctx, f.remoteSpecs, seen, secret, drives, pdrives, &closers, log); err != nil {
		closeAll()
		return nil, nil, nil, nil, err
	}
	m, err := placement.NewMap(pdrives, pol, st.PGs, 1)
	if err != nil {
		closeAll()
		return nil, nil, nil, nil, err
	}
	if !exists {
		if err := seen.save(); err != nil {
			closeAll()
			return nil, nil, nil, nil, err
		}
	}
	return drives, m, &st, closeAll, nil
}

// localDrives adapts the node's drives for the RPC server.
func localDrives(m map[driver.DriveID]driver.Driver) func(driver.DriveID) (driver.Driver, bool) {
	return func(id driver.DriveID) (driver.Driver, bool) {
		d, ok := m[id]
		return d, ok
	}
}

// defaultProbeInterval is the default --probe-interval.
const defaultProbeInterval = 10 * time.Second

// prober is a drive that can check its own health (*local.Driver).
type prober interface {
	Probe(ctx context.Context) error
}

// runProbes health-checks every drive that can (local and remote) every
// interval until ctx ends: a drive that stopped serving goes offline
// (drive_online 0), an offline one that recovered, or came back empty as
// a replaced disk, comes back online, to be refilled by the scanner and
// healer; back is called then (the engine's RetryHeals), so that heals
// queued during the outage do not wait out their backoff.
func runProbes(ctx context.Context, drives map[placement.DriveID]driver.Driver, interval time.Duration, back func(), log *slog.Logger) {
	// Each drive on its own: a remote drive's probe may take seconds
	// (its HEAD, a verification step: driver/remote verify.go) or hang to
	// its timeout, which must not delay the other drives' probes.
	var wg sync.WaitGroup
	for id, d := range drives {
		if p, ok := d.(prober); ok {
			wg.Go(func() { probeLoop(ctx, id, p, interval, back, log) })
		}
	}
	wg.Wait()
}

// probeLoop is runProbes for one drive.
func probeLoop(ctx context.Context, id placement.DriveID, p prober, interval time.Duration, back func(), log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(interval, 30*time.Second))
		err := p.Probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !failing:
			log.Warn("drive offline", "drive", id, "err", err)
		case err == nil && failing:
			log.Info("drive back online", "drive", id)
			back()
		}
		failing = err != nil
	}
}
