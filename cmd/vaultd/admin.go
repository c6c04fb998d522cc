package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/metrics"
	"github.com/vaultaire/vaultaire/placement"
	"github.com/vaultaire/vaultaire/s3"
)

// adminAdapter exposes the cluster store as the s3 admin backend.
type adminAdapter struct{ store *cluster.Store }

func (a adminAdapter) CreateTenant(ctx context.Context, name string) (s3.NewTenant, error) {
	if name == "root" {
		return s3.NewTenant{}, s3.ErrTenantExists
	}
	t, k, err := a.store.CreateTenant(ctx, name)
	if err != nil {
		return s3.NewTenant{}, err
	}
	return s3.NewTenant{Name: t.Name, AccessKey: k.AccessKey, SecretKey: string(k.Secret)}, nil
}

func (a adminAdapter) AddKey(ctx context.Context, name string) (s3.NewTenant, error) {
	k, err := a.store.CreateKey(ctx, name)
	if err != nil {
		return s3.NewTenant{}, err
	}
	return s3.NewTenant{Name: name, AccessKey: k.AccessKey, SecretKey: string(k.Secret)}, nil
}

func (a adminAdapter) DeleteTenant(ctx context.Context, name string) error {
	if name == "root" {
		return s3.ErrAccessDenied
	}
	return a.store.DeleteTenant(ctx, name)
}

func (a adminAdapter) Tenants(ctx context.Context) ([]s3.TenantInfo, error) {
	ts, err := a.store.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	var out []s3.TenantInfo
	for _, t := range ts {
		out = append(out, s3.TenantInfo{
			Name: t.Name, Created: t.Created, AccessKeys: t.AccessKeys,
			Limits: s3.TenantLimits{RPS: t.Limits.RPS, Burst: t.Limits.Burst, BytesIn: t.Limits.BytesIn, BytesOut: t.Limits.BytesOut,
				MaxBytes: t.Limits.MaxBytes, MaxArtifacts: t.Limits.MaxArtifacts},
			Usage: s3.TenantUsage{Bytes: t.Usage.Bytes, Artifacts: t.Usage.Artifacts},
		})
	}
	return out, nil
}

// statusAdmin adds the cluster status to the admin API, and in cluster
// mode the cluster's controls (s3.ClusterControl).
type statusAdmin struct {
	adminAdapter
	status    func(context.Context) cluster.Status
	clustered bool
}

// erasureRequest is the body of POST /_vault/admin/cluster/erasure.
type erasureRequest struct {
	// Data and Parity are the policy K+M; both 0 keep the current one.
	Data   int `json:"data"`
	Parity int `json:"parity"`
	Width  int `json:"width"` // 0 keeps the current width
	// DefaultWidth returns the width to the default for the drive count
	// (--width auto or 0).
	DefaultWidth bool `json:"default_width,omitempty"`
}

// drainRequest is the body of POST /_vault/admin/cluster/drain.
type drainRequest struct {
	Node  string `json:"node"`
	Drive string `json:"drive"`
	Undo  bool   `json:"undo"`
}

// removeRequest is the body of POST /_vault/admin/cluster/remove.
type removeRequest struct {
	Node  string `json:"node"`
	Force bool   `json:"force"`
}

// decodeStrict decodes a JSON object into v, refusing unknown fields.
func decodeStrict(body []byte, v any, want string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		return &s3.Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "Want " + want + "."}
	}
	return nil
}

// ClusterControl serves the cluster commands of the admin API:
// "erasure" (vaultd cluster set-erasure) answers with the new map's
// cluster.MapStatus, "drain" with the cluster.DrainStatus, "remove" with
// {}.
func (a statusAdmin) ClusterControl(ctx context.Context, op string, body []byte) (any, error) {
	if !a.clustered {
		return nil, s3.ErrNotClustered
	}
	switch op {
	case "erasure":
		var req erasureRequest
		if err := decodeStrict(body, &req, `{"data": K, "parity": M, "width": W, "default_width": false}`); err != nil {
			return nil, err
		}
		c := cluster.ErasureChange{Width: req.Width, DefaultWidth: req.DefaultWidth}
		if req.Data != 0 || req.Parity != 0 {
			c.Policy = &placement.Policy{Data: req.Data, Parity: req.Parity}
		}
		m, err := a.store.ChangeErasure(ctx, c)
		if err != nil {
			return nil, clusterError(err)
		}
		return cluster.MapStatusOf(m), nil
	case "drain":
		var req drainRequest
		if err := decodeStrict(body, &req, `{"node": NAME, "drive": ID, "undo": false}`); err != nil {
			return nil, err
		}
		ds, err := a.store.Drain(ctx, req.Node, req.Drive, req.Undo)
		if err != nil {
			return nil, clusterError(err)
		}
		return ds, nil
	case "remove":
		var req removeRequest
		if err := decodeStrict(body, &req, `{"node": NAME, "force": false}`); err != nil {
			return nil, err
		}
		if err := a.store.RemoveNode(ctx, req.Node, req.Force); err != nil {
			return nil, clusterError(err)
		}
		return struct{}{}, nil
	default:
		return nil, &s3.Error{Status: http.StatusNotFound, Code: "NotFound", Message: fmt.Sprintf("No cluster operation %q.", op)}
	}
}

// clusterError turns a refusal of the cluster into a client error that
// says why; other errors go to the s3 error table.
func clusterError(err error) error {
	if errors.Is(err, cluster.ErrRefused) {
		return &s3.Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: err.Error()}
	}
	return err
}

// ClusterStatus returns this node's view of the cluster.
func (a statusAdmin) ClusterStatus(ctx context.Context) (any, error) {
	return a.status(ctx), nil
}

// singleStatus is a single node's status: its Raft state, its static map
// and its drives.
func singleStatus(ctx context.Context, node string, store *cluster.Store, m *placement.Map, drives map[placement.DriveID]driver.Driver) cluster.Status {
	ri := store.RaftInfo()
	st := cluster.Status{
		Node: node, Term: ri.Term, CommitIndex: ri.Commit, AppliedIndex: ri.Applied,
		Map: cluster.MapStatusOf(m),
	}
	if ri.State == "leader" {
		st.Leader = node
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, dr := range m.Drives {
		ds := cluster.DriveStatus{ID: string(dr.ID), Node: string(dr.Node), Zone: dr.Zone, Class: string(dr.Class), State: "ok"}
		info, err := drives[dr.ID].Info(pctx)
		if err != nil {
			ds.State, ds.Error = "offline", err.Error()
		} else {
			ds.Used, ds.Free, ds.Total = info.Usage.Used, info.Usage.Free, info.Usage.Total
		}
		st.Drives = append(st.Drives, ds)
	}
	slices.SortFunc(st.Drives, func(a, b cluster.DriveStatus) int { return strings.Compare(a.ID, b.ID) })
	return st
}

// scrubStatus converts the scrubber's status for the admin API.
func scrubStatus(ss []engine.ScrubStatus) []cluster.ScrubStatus {
	out := make([]cluster.ScrubStatus, 0, len(ss))
	for _, s := range ss {
		out = append(out, cluster.ScrubStatus{
			Drive: string(s.Drive), Passes: s.Passes, Progress: s.Progress(), PassStarted: s.PassStarted, LastPass: s.LastPass,
			Bytes: s.Bytes, Shards: s.Shards, Corrupt: s.Corrupt, Repaired: s.Repaired, Error: s.Err,
		})
	}
	return out
}

// SetRate sets a tenant's request rate limit.
func (a adminAdapter) SetRate(ctx context.Context, name string, rps float64, burst int) error {
	return a.store.SetRate(ctx, name, rps, burst)
}

// SetBandwidth sets a tenant's bandwidth.
func (a adminAdapter) SetBandwidth(ctx context.Context, name string, in, out int64) error {
	return a.store.SetBandwidth(ctx, name, in, out)
}

// SetQuota sets a tenant's quota.
func (a adminAdapter) SetQuota(ctx context.Context, name string, maxBytes, maxArtifacts int64) error {
	return a.store.SetQuota(ctx, name, maxBytes, maxArtifacts)
}

// driveSamples turns the cluster's drive status into metrics samples.
func driveSamples(ds []cluster.DriveStatus) []metrics.DriveSample {
	out := make([]metrics.DriveSample, 0, len(ds))
	for _, d := range ds {
		out = append(out, metrics.DriveSample{ID: d.ID, Node: d.Node, Class: d.Class, Online: d.State == "ok", Used: d.Used, Free: d.Free, Total: d.Total})
	}
	return out
}

// localDriveSamples probes a single node's drives.
func localDriveSamples(ctx context.Context, node string, m *placement.Map, drives map[placement.DriveID]driver.Driver) []metrics.DriveSample {
	var out []metrics.DriveSample
	for _, dr := range m.Drives {
		s := metrics.DriveSample{ID: string(dr.ID), Node: node, Class: string(dr.Class)}
		if d, ok := drives[dr.ID]; ok {
			if info, err := d.Info(ctx); err == nil {
				s.Online, s.Used, s.Free, s.Total = true, info.Usage.Used, info.Usage.Free, info.Usage.Total
			}
		}
		out = append(out, s)
	}
	return out
}

// uploadsHolding counts the multipart uploads in progress that keep the
// older maps in the history (engine.UploadsHolding), for the status: 0
// when there are none, -1 when a drive could not be listed within a few
// seconds.
func uploadsHolding(ctx context.Context, eng *engine.Engine, older []*placement.Map) int {
	if len(older) == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	n, err := eng.UploadsHolding(ctx, older)
	if err != nil {
		return -1
	}
	return n
}
