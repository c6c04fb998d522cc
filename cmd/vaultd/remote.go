package main

// Remote drives (--remote NAME=URL): an S3-compatible bucket as a drive of
// class "remote" (driver/remote), on a single node for now.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
	"github.com/vaultaire/vaultaire/metrics"
	"github.com/vaultaire/vaultaire/placement"
)

// remoteSpec is one --remote flag, its credentials filled in by
// loadRemoteCredentials.
type remoteSpec struct {
	name string // lowercase
	cfg  remote.Config
}

// remoteName is a --remote NAME: it becomes part of a drive id and of
// environment variable names.
var remoteName = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,31}$`)

// parseRemotes parses the --remote flags into f.remoteSpecs.
func (f *serverFlags) parseRemotes() error {
	specs, err := parseRemoteFlags(f.remotes, f.clustered())
	f.remoteSpecs = specs
	return err
}

// parseRemoteFlags parses --remote values: NAME=https://host[:port]/bucket[/prefix]?region=R.
func parseRemoteFlags(flags []string, clustered bool) ([]remoteSpec, error) {
	var out []remoteSpec
	for _, v := range flags {
		name, raw, ok := strings.Cut(v, "=")
		name = strings.ToLower(name)
		if !ok || !remoteName.MatchString(name) {
			return nil, fmt.Errorf("--remote %q: want NAME=https://host[:port]/bucket[/prefix]?region=R, NAME of letters, digits and _ (at most 32)", redactRemote(v))
		}
		cfg, err := remote.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("--remote %s: %w", name, err)
		}
		if slices.ContainsFunc(out, func(s remoteSpec) bool { return s.name == name }) {
			return nil, fmt.Errorf("--remote %s given twice", name)
		}
		out = append(out, remoteSpec{name: name, cfg: cfg})
	}
	if len(out) > 0 && clustered {
		return nil, errors.New("--remote is not yet available in cluster mode (single node only)")
	}
	return out, nil
}

// redactRemote hides anything that looks like user information in a
// --remote value before it is echoed in an error.
func redactRemote(v string) string {
	if i := strings.Index(v, "@"); i >= 0 {
		if j := strings.Index(v, "://"); j >= 0 && j < i {
			return v[:j+3] + "REDACTED" + v[i:]
		}
		return "REDACTED"
	}
	return v
}

// remoteCredFile is the JSON of a credentials file.
type remoteCredFile struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// loadRemoteCredentials fills in each remote's keys: from
// VAULT_REMOTE_<NAME>_ACCESS_KEY and _SECRET_KEY, or from the JSON file
// named by VAULT_REMOTE_<NAME>_CREDENTIALS ({"access_key":..,"secret_key":..}),
// which must not be readable by group or others.
func loadRemoteCredentials(specs []remoteSpec, getenv func(string) string) error {
	for i := range specs {
		s := &specs[i]
		env := "VAULT_REMOTE_" + strings.ToUpper(s.name)
		ak, sk, file := getenv(env+"_ACCESS_KEY"), getenv(env+"_SECRET_KEY"), getenv(env+"_CREDENTIALS")
		switch {
		case ak != "" && sk != "":
		case ak != "" || sk != "":
			return fmt.Errorf("--remote %s: set both %s_ACCESS_KEY and %s_SECRET_KEY", s.name, env, env)
		case file != "":
			fi, err := os.Stat(file)
			if err != nil {
				return fmt.Errorf("--remote %s: %s_CREDENTIALS: %w", s.name, env, err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				return fmt.Errorf("--remote %s: credentials file %s has mode %04o: it must be readable by its owner only (chmod 600)", s.name, file, fi.Mode().Perm())
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("--remote %s: %w", s.name, err)
			}
			var cf remoteCredFile
			if err := json.Unmarshal(b, &cf); err != nil || cf.AccessKey == "" || cf.SecretKey == "" {
				return fmt.Errorf("--remote %s: credentials file %s: want {\"access_key\":...,\"secret_key\":...}", s.name, file)
			}
			ak, sk = cf.AccessKey, cf.SecretKey
		default:
			return fmt.Errorf("--remote %s: no credentials: set %s_ACCESS_KEY and %s_SECRET_KEY, or %s_CREDENTIALS to a mode-0600 JSON file", s.name, env, env, env)
		}
		s.cfg.AccessKey, s.cfg.SecretKey = ak, sk
	}
	return nil
}

// remoteNames returns the names of specs, in flag order, as node.json
// records them.
func remoteNames(specs []remoteSpec) []string {
	out := []string{}
	for _, s := range specs {
		out = append(out, s.name)
	}
	return out
}

// remoteDriveID is the drive id of remote NAME. It does not name the node,
// so that another node can adopt the drive.
func remoteDriveID(name string) placement.DriveID { return placement.DriveID("remote-" + name) }

// checkRemotes compares the --remote names with those node.json recorded
// when the node was created: adding or removing a remote drive would
// re-place every artifact.
func checkRemotes(st *nodeState, specs []remoteSpec) error {
	if names := remoteNames(specs); !slices.Equal(st.Remotes, names) && !(len(st.Remotes) == 0 && len(names) == 0) {
		return fmt.Errorf("this node was created with --remote drives %q; start it with the same names in the same order (got %q)", st.Remotes, names)
	}
	return nil
}

// attachRemotes opens each remote drive (offline if its backend cannot be
// reached now: the driver loads it in the background) and adds it to
// drives and pdrives, as a drive of class remote in a failure domain (zone)
// of its own, attached to this node.
func attachRemotes(ctx context.Context, specs []remoteSpec, st *nodeState, drives map[placement.DriveID]driver.Driver, pdrives []placement.Drive, closers *[]func() error, log *slog.Logger) ([]placement.Drive, error) {
	for _, s := range specs {
		id := remoteDriveID(s.name)
		cfg := s.cfg
		cfg.ID, cfg.ClusterID = driver.DriveID(id), st.ClusterID
		cfg.Logger = log.With("component", "remote", "remote", s.name)
		d, err := remote.Attach(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("--remote %s: %w", s.name, err)
		}
		if err := d.Err(); err != nil {
			log.Error("starting with a remote drive offline", "drive", id, "endpoint", cfg.Endpoint, "bucket", cfg.Bucket, "err", err)
		}
		*closers = append(*closers, d.Close)
		drives[id] = d
		pdrives = append(pdrives, placement.Drive{ID: id, Node: placement.NodeID(st.Node), Zone: "remote:" + s.name, Class: driver.ClassRemote})
	}
	return pdrives, nil
}

// scrubbed returns the drives the node's scrubber reads: its local ones. A
// remote drive is not scrubbed: a pass would read (and pay for) every byte
// it holds.
func scrubbed(drives map[placement.DriveID]driver.Driver, m *placement.Map) map[placement.DriveID]driver.Driver {
	out := map[placement.DriveID]driver.Driver{}
	for id, d := range drives {
		if dr, ok := m.Drive(id); ok && dr.Class == driver.ClassRemote {
			continue
		}
		out[id] = d
	}
	return out
}

// remoteSamples returns the metrics provider of the remote drives among
// drives (nil when there are none, which leaves the series out).
func remoteSamples(drives map[placement.DriveID]driver.Driver) func() []metrics.RemoteSample {
	type named struct {
		id string
		d  *remote.Driver
	}
	var rs []named
	for id, d := range drives {
		if r, ok := d.(*remote.Driver); ok {
			rs = append(rs, named{string(id), r})
		}
	}
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b named) int { return strings.Compare(a.id, b.id) })
	return func() []metrics.RemoteSample {
		out := make([]metrics.RemoteSample, 0, len(rs))
		for _, r := range rs {
			s := r.d.Stats()
			out = append(out, metrics.RemoteSample{
				Drive: r.id, Online: r.d.Err() == nil,
				Requests: map[string]uint64{"PUT": s.Puts, "POST": s.Posts, "GET": s.Gets, "LIST": s.Lists, "HEAD": s.Heads, "DELETE": s.Deletes},
				Sent:     s.BytesSent, Received: s.BytesRecv, Retries: s.Retries, Failures: s.Failures, Opens: s.Opens,
			})
		}
		return out
	}
}
