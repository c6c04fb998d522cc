package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/faulty"
	"github.com/vaultaire/vaultaire/placement"
)

// The disk-fault hook is for TESTS ONLY: it makes the node's drives fail
// on purpose (driver/faulty), losing and corrupting data. With
// VAULT_FAULTS=FILE and VAULT_FAULTS_ENABLE=yes-break-my-drives, every
// local drive is wrapped in a faulty.Driver whose faults FILE describes,
// and FILE is read again whenever it changes (polled every
// faultsPoll), so a multi-process test can fill, fail or pull a drive of
// a running node. VAULT_FAULTS alone is refused, so the hook is never on
// by accident; without VAULT_FAULTS nothing is wrapped. FILE holds
//
//	{"seed": 1, "drives": {"<drive id>": PLAN, "*": PLAN}}
//
// where PLAN is a faulty.Plan, e.g. {"rules": [{"op": "shard-write,put-record",
// "fault": "enospc", "min_size": 512}], "bandwidth": 41943040}; "*" applies
// to the drives not named. A missing or empty FILE means no faults; an
// invalid one is logged and the previous faults stay.
const (
	faultsEnv       = "VAULT_FAULTS"
	faultsEnableEnv = "VAULT_FAULTS_ENABLE"
	faultsEnableVal = "yes-break-my-drives"
	faultsPoll      = 100 * time.Millisecond
)

// faultsFile is the content of the VAULT_FAULTS file.
type faultsFile struct {
	Seed   uint64                 `json:"seed"`
	Drives map[string]faulty.Plan `json:"drives"`
}

// plan returns the plan of drive id.
func (f *faultsFile) plan(id placement.DriveID) faulty.Plan {
	if p, ok := f.Drives[string(id)]; ok {
		return p
	}
	return f.Drives["*"]
}

// wrapFaults wraps every drive in a faulty.Driver if the test-only hook is
// enabled (see faultsEnv) and watches the rules file until ctx ends;
// otherwise it returns drives unchanged.
func wrapFaults(ctx context.Context, getenv func(string) string, drives map[placement.DriveID]driver.Driver, log *slog.Logger) (map[placement.DriveID]driver.Driver, error) {
	path := getenv(faultsEnv)
	if path == "" {
		return drives, nil
	}
	if getenv(faultsEnableEnv) != faultsEnableVal {
		return nil, fmt.Errorf("%s is a test-only hook that fails drives on purpose; refusing it without %s=%s", faultsEnv, faultsEnableEnv, faultsEnableVal)
	}
	ff, raw, err := readFaults(path)
	if err != nil {
		return nil, err
	}
	wrapped := make(map[placement.DriveID]driver.Driver, len(drives))
	fds := make(map[placement.DriveID]*faulty.Driver, len(drives))
	i := uint64(0)
	for id, d := range drives {
		fd := faulty.New(d, ff.Seed+i)
		i++
		if err := fd.Apply(ff.plan(id)); err != nil {
			return nil, fmt.Errorf("%s: drive %s: %w", faultsEnv, id, err)
		}
		wrapped[id], fds[id] = fd, fd
	}
	log.Warn("TEST-ONLY disk-fault injection enabled: drives fail on purpose", "file", path)
	go watchFaults(ctx, path, raw, fds, log)
	return wrapped, nil
}

// readFaults reads and parses the faults file; a missing or empty one
// means no faults.
func readFaults(path string) (*faultsFile, []byte, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &faultsFile{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", faultsEnv, err)
	}
	var ff faultsFile
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ff); err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", faultsEnv, path, err)
		}
		for id, p := range ff.Drives {
			if err := p.Validate(); err != nil {
				return nil, nil, fmt.Errorf("%s %s: drive %s: %w", faultsEnv, path, id, err)
			}
		}
	}
	return &ff, raw, nil
}

// watchFaults applies the faults file to the drives whenever its content
// changes, until ctx ends.
func watchFaults(ctx context.Context, path string, last []byte, fds map[placement.DriveID]*faulty.Driver, log *slog.Logger) {
	t := time.NewTicker(faultsPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		raw, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) || bytes.Equal(raw, last) {
			continue
		}
		ff, _, err := readFaults(path)
		if err != nil {
			log.Error("disk-fault rules not applied", "err", err)
			last = raw
			continue
		}
		for id, fd := range fds {
			fd.Apply(ff.plan(id)) // validated by readFaults
		}
		last = raw
		log.Warn("TEST-ONLY disk-fault rules applied", "file", path)
	}
}
