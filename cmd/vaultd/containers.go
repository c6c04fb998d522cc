package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vaultaire/vaultaire/bench"
	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/s3"
)

// storagePolicyKind is the bucket configuration kind (cluster
// configKinds) that holds a container's storage policy, a
// storagePolicyDoc as JSON. A container without one is "local".
const storagePolicyKind = "storagepolicy"

// policyDoc is the stored document: the policy, and whether the
// container was ever tier (then it may hold tiered artifacts, which reads
// must keep finding after the policy changes).
type policyDoc struct {
	s3.StoragePolicy
	Tiered bool `json:"tiered,omitempty"`
	// Relayout is the move of the container's artifacts into the
	// policy's layout after a change of layout (runRelayout), nil if the
	// layout never changed while the container could hold artifacts.
	Relayout *relayoutState `json:"relayout,omitempty"`
}

// storedPolicy returns a container's storage policy from this node's
// replicated state (Policy "" for none).
func storedPolicy(store *cluster.Store, tenant, container string) policyDoc {
	var d policyDoc
	if raw, ok := store.LocalBucketConfig(tenant, container, storagePolicyKind); ok {
		if json.Unmarshal(raw, &d) != nil {
			return policyDoc{}
		}
	}
	return d
}

// containerPolicy returns a container's storage policy name:
// engine.Config.StoragePolicy.
func containerPolicy(store *cluster.Store) func(tenant, container string) string {
	return func(tenant, container string) string { return storedPolicy(store, tenant, container).Policy }
}

// containerTiered reports whether a container's policy is or was tier:
// engine.Config.Tiered.
func containerTiered(store *cluster.Store) func(tenant, container string) bool {
	return func(tenant, container string) bool {
		d := storedPolicy(store, tenant, container)
		return d.Tiered || d.Policy == engine.PolicyTier
	}
}

// containerAdmin adds the containers API (s3.ContainerAdmin) to the admin
// backend.
type containerAdmin struct {
	statusAdmin
	topo engine.Topology
	eng  *engine.Engine
}

var _ s3.ContainerAdmin = containerAdmin{}

func (a containerAdmin) ContainerList(ctx context.Context) ([]s3.ContainerStatus, error) {
	ts, err := a.store.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	out := []s3.ContainerStatus{}
	for _, t := range ts {
		cs, err := a.store.Containers(ctx, t.Name)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			p := storedPolicy(a.store, c.Tenant, c.Name)
			if p.Policy == "" {
				p.Policy = engine.PolicyLocal
			}
			cs := s3.ContainerStatus{Tenant: c.Tenant, Name: c.Name, Created: c.Created, StoragePolicy: p.StoragePolicy}
			if p.Relayout != nil {
				r := p.Relayout.RelayoutStatus
				cs.Relayout = &r
			}
			out = append(out, cs)
		}
	}
	return out, nil
}

func (a containerAdmin) SetStoragePolicy(ctx context.Context, tenant, container string, p s3.StoragePolicy) error {
	policy := p.Policy
	if policy != engine.PolicyLocal {
		if m := a.topo.Map(); m == nil || !m.HasRemote() {
			return s3.ErrNoRemoteDrives
		}
	}
	if err := a.eng.CheckPolicyChange(ctx, tenant, container, policy); err != nil {
		return err
	}
	old := storedPolicy(a.store, tenant, container)
	next := policyDoc{StoragePolicy: p, Tiered: old.Tiered || old.Policy == engine.PolicyTier || p.Policy == engine.PolicyTier, Relayout: old.Relayout}
	if to := engine.PolicyLayout(policy); to != engine.PolicyLayout(old.Policy) {
		// The layout changes: new writes take the new one at once, and
		// the leader's runRelayout moves what the container holds.
		next.Relayout = &relayoutState{RelayoutStatus: s3.RelayoutStatus{Layout: string(to)}}
	}
	doc, err := json.Marshal(next)
	if err != nil {
		return err
	}
	return a.store.PutBucketConfig(ctx, tenant, container, storagePolicyKind, doc)
}

func runContainer(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("container: want list or set-policy")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("vaultd container "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", envOr(getenv, "VAULT_ENDPOINT", "http://127.0.0.1:9000"), "a node's S3 endpoint")
	data := fs.String("data", "./data", "data directory to read generated root credentials from when the environment has none")
	asJSON := fs.Bool("json", false, "list: print JSON")
	tenantName := fs.String("tenant", "root", "set-policy: the tenant owning the container")
	afterDays := fs.Int("after-days", 0, "set-policy tier: move artifacts last modified at least this many days ago (0: not by age)")
	largerThan := fs.String("larger-than", "0", "set-policy tier: move artifacts of at least this size, such as 1GiB (0: not by size); with neither threshold, 30 days")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	c, err := newAdminClient(getenv, *endpoint, *data)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		if len(positional) != 0 {
			return errors.New("container list: takes no arguments")
		}
		var cs []s3.ContainerStatus
		if err := c.do(ctx, http.MethodGet, "/_vault/admin/containers", &cs); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(cs)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tNAME\tCREATED\tPOLICY\tRELAYOUT")
		for _, x := range cs {
			p := x.Policy
			if p == engine.PolicyTier {
				var th []string
				if x.TierAfterDays > 0 {
					th = append(th, fmt.Sprintf("after %d days", x.TierAfterDays))
				}
				if x.TierMinBytes > 0 {
					th = append(th, "from "+humanBytes(uint64(x.TierMinBytes)))
				}
				p += " (" + strings.Join(th, " or ") + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", x.Tenant, x.Name, x.Created.UTC().Format(time.RFC3339), p, relayoutText(x.Relayout))
		}
		return tw.Flush()
	case "set-policy":
		if len(positional) != 2 {
			return errors.New("container set-policy: want BUCKET POLICY (local, hybrid or tier)")
		}
		p := s3.StoragePolicy{Policy: positional[1], TierAfterDays: *afterDays}
		if p.TierMinBytes, err = bench.ParseSize(*largerThan); err != nil {
			return fmt.Errorf("--larger-than: %w", err)
		}
		body, _ := json.Marshal(p)
		return c.send(ctx, http.MethodPut, "/_vault/admin/containers/"+url.PathEscape(*tenantName)+"/"+url.PathEscape(positional[0])+"/policy", body, nil)
	}
	return fmt.Errorf("container: unknown subcommand %q", sub)
}

// runTier applies the tier storage policy every interval until ctx ends:
// each container whose policy is tier has the artifacts past its
// thresholds moved to the remote drives (engine.TierContainer; each
// version of a versioned key by itself), and the hidden remote copies of
// artifacts overwritten or deleted since are removed. Each move is an
// event (s3.TierOperation, with the version id) for the metrics and the
// transaction log.
// In a cluster only the Raft leader (lead) runs the passes.
func runTier(ctx context.Context, eng *engine.Engine, store *cluster.Store, interval time.Duration, lead func() bool, obs s3.Observer, node string, log *slog.Logger) {
	everyContainer(ctx, store, interval, lead, "tier", log, func(c meta.ContainerInfo) {
		p := storedPolicy(store, c.Tenant, c.Name)
		if p.Policy != engine.PolicyTier {
			return
		}
		rule := engine.TierRule{Age: time.Duration(p.TierAfterDays) * 24 * time.Hour, MinSize: p.TierMinBytes}
		st, err := eng.TierContainer(ctx, c.Tenant, c.Name, rule, func(a engine.ArtifactInfo) {
			obs.ObserveRequest(&s3.RequestEvent{Time: time.Now(), Node: node, Tenant: c.Tenant, Operation: s3.TierOperation,
				Bucket: c.Name, Key: a.Key, VersionID: a.VersionID, ObjectSize: a.Size, ETag: a.ETag, Status: http.StatusOK})
		})
		if err != nil {
			log.Warn("tier: pass", "tenant", c.Tenant, "container", c.Name, "failed", st.Failed, "err", err)
		}
		if st.Moved > 0 {
			log.Info("tier: moved artifacts to remote drives", "tenant", c.Tenant, "container", c.Name, "artifacts", st.Moved, "bytes", st.Bytes)
		}
		if st.Collected > 0 {
			log.Info("tier: removed hidden remote copies of overwritten or deleted artifacts", "tenant", c.Tenant, "container", c.Name, "artifacts", st.Collected, "bytes", st.CollectedBytes)
		}
	})
}

// everyContainer calls fn for every container of every tenant, every
// interval until ctx ends; in a cluster only while this node is the Raft
// leader (lead). name prefixes its log lines.
func everyContainer(ctx context.Context, store *cluster.Store, interval time.Duration, lead func() bool, name string, log *slog.Logger, fn func(meta.ContainerInfo)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if lead != nil && !lead() {
			continue
		}
		ts, err := store.Tenants(ctx)
		if err != nil {
			log.Warn(name+": list tenants", "err", err)
			continue
		}
		for _, tn := range ts {
			cs, err := store.Containers(ctx, tn.Name)
			if err != nil {
				log.Warn(name+": list containers", "tenant", tn.Name, "err", err)
				continue
			}
			for _, c := range cs {
				if ctx.Err() != nil {
					return
				}
				fn(c)
			}
		}
	}
}
