package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3"
)

// storagePolicyKind is the bucket configuration kind (cluster
// configKinds) that holds a container's storage policy, a
// storagePolicyDoc as JSON. A container without one is "local".
const storagePolicyKind = "storagepolicy"

// storagePolicyDoc is a container's stored storage policy.
type storagePolicyDoc struct {
	Policy string `json:"policy"`
}

// containerPolicy returns a container's storage policy from this node's
// replicated state ("" for none): engine.Config.StoragePolicy.
func containerPolicy(store *cluster.Store) func(tenant, container string) string {
	return func(tenant, container string) string {
		raw, ok := store.LocalBucketConfig(tenant, container, storagePolicyKind)
		if !ok {
			return ""
		}
		var d storagePolicyDoc
		if json.Unmarshal(raw, &d) != nil {
			return ""
		}
		return d.Policy
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
	policy := containerPolicy(a.store)
	out := []s3.ContainerStatus{}
	for _, t := range ts {
		cs, err := a.store.Containers(ctx, t.Name)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			p := policy(c.Tenant, c.Name)
			if p == "" {
				p = engine.PolicyLocal
			}
			out = append(out, s3.ContainerStatus{Tenant: c.Tenant, Name: c.Name, Created: c.Created, Policy: p})
		}
	}
	return out, nil
}

func (a containerAdmin) SetStoragePolicy(ctx context.Context, tenant, container, policy string) error {
	if policy != engine.PolicyLocal {
		if m := a.topo.Map(); m == nil || !m.HasRemote() {
			return s3.ErrNoRemoteDrives
		}
	}
	if err := a.eng.CheckPolicyChange(ctx, tenant, container, policy); err != nil {
		return err
	}
	doc, err := json.Marshal(storagePolicyDoc{Policy: policy})
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
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
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
		fmt.Fprintln(tw, "TENANT\tNAME\tCREATED\tPOLICY")
		for _, x := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.Tenant, x.Name, x.Created.UTC().Format(time.RFC3339), x.Policy)
		}
		return tw.Flush()
	case "set-policy":
		if len(positional) != 2 {
			return errors.New("container set-policy: want BUCKET POLICY (local, hybrid or tier)")
		}
		body, _ := json.Marshal(storagePolicyDoc{Policy: positional[1]})
		return c.send(ctx, http.MethodPut, "/_vault/admin/containers/"+url.PathEscape(*tenantName)+"/"+url.PathEscape(positional[0])+"/policy", body, nil)
	}
	return fmt.Errorf("container: unknown subcommand %q", sub)
}
