package cluster

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vaultaire/vaultaire/meta"
)

// Bucket configuration documents (CORS today; versioning, lifecycle,
// policy and tagging later) are replicated through Raft: one document of
// each kind per tenant and container, set and deleted by one generic
// command, removed with its container and carried in snapshots.

// MaxConfigSize bounds one configuration document.
const MaxConfigSize = 64 << 10

// configKinds are the kinds of configuration documents the FSM accepts.
// Append only: the names reach the log.
var configKinds = []string{"cors", "tagging", "versioning", "objectlock", "lifecycle", "lifecycle-state", "storagepolicy", "acl", "policy"}

// publicKinds are the kinds whose presence makes a container public
// (anonymously readable: a public-read ACL, a policy allowing anonymous
// GetObject). A public container's name is claimed across tenants: the
// FSM refuses a public kind for a container when another tenant's
// container of the name has one, so the name alone (all an unsigned
// request has) finds one tenant. The claim is the document itself:
// deleting it, or the container, releases the name in the same command,
// and snapshots carry it.
var publicKinds = []string{"acl", "policy"}

// setConfigCmd sets (Doc non-nil) or deletes (Doc nil) one document.
type setConfigCmd struct {
	Tenant    string `json:"tenant"`
	Container string `json:"container"`
	Kind      string `json:"kind"`
	Doc       []byte `json:"doc,omitempty"`
	Delete    bool   `json:"delete,omitempty"`
	// If, when set, makes the write conditional on the container's
	// document of another kind being, when the command is applied, what
	// the writer read: IfDoc, or absent when IfAbsent.
	IfKind   string `json:"if_kind,omitempty"`
	IfDoc    []byte `json:"if_doc,omitempty"`
	IfAbsent bool   `json:"if_absent,omitempty"`
}

// bucketConfig is one stored document, as in a snapshot.
type bucketConfig struct {
	Tenant    string `json:"tenant"`
	Container string `json:"container"`
	Kind      string `json:"kind"`
	Doc       []byte `json:"doc"`
}

// configKey locates a container's documents inside the FSM.
type configKey struct{ tenant, container string }

func (f *fsm) setConfig(c setConfigCmd) error {
	if !slices.Contains(configKinds, c.Kind) {
		return fmt.Errorf("cluster: unknown configuration kind %q", c.Kind)
	}
	if err := checkConfigSize(c.Kind, c.Doc); err != nil {
		return err
	}
	if _, ok := f.containers[c.Tenant][c.Container]; !ok {
		return fmt.Errorf("%w: %s/%s", meta.ErrNoSuchContainer, c.Tenant, c.Container)
	}
	k := configKey{c.Tenant, c.Container}
	if c.IfKind != "" {
		cur, ok := f.configs[k][c.IfKind]
		if ok == c.IfAbsent || ok && !bytes.Equal(cur, c.IfDoc) {
			return fmt.Errorf("%w: %s/%s: %s", meta.ErrConfigChanged, c.Tenant, c.Container, c.IfKind)
		}
	}
	if !c.Delete && slices.Contains(publicKinds, c.Kind) {
		if t, ok := f.publicOwner(c.Container); ok && t != c.Tenant {
			return fmt.Errorf("%w: %s", meta.ErrPublicNameTaken, c.Container)
		}
	}
	defer f.notePublic(c.Tenant, c.Container)
	if c.Delete {
		delete(f.configs[k], c.Kind)
		if len(f.configs[k]) == 0 {
			delete(f.configs, k)
		}
		return nil
	}
	if f.configs[k] == nil {
		f.configs[k] = make(map[string][]byte)
	}
	f.configs[k][c.Kind] = slices.Clone(c.Doc)
	return nil
}

// notePublic brings f.public up to date for one container after its
// documents changed: the name maps to the tenant while the container has
// a public document, and stops mapping to it otherwise. The caller holds
// f.mu for writing.
func (f *fsm) notePublic(tenant, name string) {
	for _, kind := range publicKinds {
		if _, ok := f.configs[configKey{tenant, name}][kind]; ok {
			f.public[name] = tenant
			return
		}
	}
	if f.public[name] == tenant {
		delete(f.public, name)
	}
}

func (f *fsm) config(tenant, container, kind string) ([]byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d, ok := f.configs[configKey{tenant, container}][kind]
	return slices.Clone(d), ok
}

// configList returns every document sorted by tenant, container and kind.
// The caller holds f.mu.
func (f *fsm) configList() []bucketConfig {
	out := []bucketConfig{}
	for k, kinds := range f.configs {
		for kind, doc := range kinds {
			out = append(out, bucketConfig{Tenant: k.tenant, Container: k.container, Kind: kind, Doc: doc})
		}
	}
	slices.SortFunc(out, func(a, b bucketConfig) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		if c := strings.Compare(a.Container, b.Container); c != 0 {
			return c
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return out
}

// PutBucketConfig sets a container's document of a kind. It fails with
// meta.ErrNoSuchContainer if the container does not exist.
func (s *Store) PutBucketConfig(ctx context.Context, tenant, container, kind string, doc []byte) error {
	if doc == nil {
		doc = []byte{}
	}
	if err := checkConfigSize(kind, doc); err != nil {
		return err
	}
	return s.applyCmd(ctx, cmdSetConfig, setConfigCmd{Tenant: tenant, Container: container, Kind: kind, Doc: doc})
}

// checkConfigSize refuses, with meta.ErrConfigTooLarge, a document the
// state machine would refuse for its size (setConfig): refused there, the
// error comes back through Raft as one no caller can tell from a failure.
func checkConfigSize(kind string, doc []byte) error {
	if len(doc) > MaxConfigSize {
		return fmt.Errorf("%w: %s configuration of %d bytes exceeds %d", meta.ErrConfigTooLarge, kind, len(doc), MaxConfigSize)
	}
	return nil
}

// PutBucketConfigIf is PutBucketConfig applied only if the container's
// document of kind ifKind is then ifDoc (absent when ifDoc is nil), as
// the caller read it; otherwise it fails with meta.ErrConfigChanged. Two
// documents whose rules depend on each other (versioning and object lock)
// are written so, so that writes racing through two nodes cannot both
// pass checks made against each other's old state.
func (s *Store) PutBucketConfigIf(ctx context.Context, tenant, container, kind string, doc []byte, ifKind string, ifDoc []byte) error {
	if doc == nil {
		doc = []byte{}
	}
	if err := checkConfigSize(kind, doc); err != nil {
		return err
	}
	return s.applyCmd(ctx, cmdSetConfig, setConfigCmd{Tenant: tenant, Container: container, Kind: kind, Doc: doc,
		IfKind: ifKind, IfDoc: ifDoc, IfAbsent: ifDoc == nil})
}

// DeleteBucketConfig removes a container's document of a kind; removing
// one that is not there succeeds. It returns once every answering node
// has applied it.
func (s *Store) DeleteBucketConfig(ctx context.Context, tenant, container, kind string) error {
	return s.applyCmd(ctx, cmdSetConfig, setConfigCmd{Tenant: tenant, Container: container, Kind: kind, Delete: true})
}

// BucketConfig returns a container's document of a kind and whether it
// has one. A follower that misses syncs with the leader first, so a
// document set through any node is seen once its Put returned.
func (s *Store) BucketConfig(ctx context.Context, tenant, container, kind string) ([]byte, bool, error) {
	d, ok := s.fsm.config(tenant, container, kind)
	if !ok && s.syncWithLeader(ctx) {
		d, ok = s.fsm.config(tenant, container, kind)
	}
	return d, ok, nil
}

// FreshBucketConfig is BucketConfig for a write that acts on the
// document (versioning, object lock): it reflects every change that
// returned on any node before the call, also on a node that was paused
// or cut off meanwhile (Fresh), or fails wrapping meta.ErrUnavailable.
func (s *Store) FreshBucketConfig(ctx context.Context, tenant, container, kind string) ([]byte, bool, error) {
	if err := s.Fresh(ctx); err != nil {
		return nil, false, err
	}
	d, ok := s.fsm.config(tenant, container, kind)
	return d, ok, nil
}

// LocalBucketConfig is BucketConfig from this node's state alone, never
// asking the leader: for lookups unauthenticated requests cause (CORS
// preflights) and per-request ones. Set and delete return only once every
// answering node has applied them, so it is current for those nodes.
func (s *Store) LocalBucketConfig(tenant, container, kind string) ([]byte, bool) {
	return s.fsm.config(tenant, container, kind)
}

// publicOwner returns the tenant whose container of the name is public:
// one map lookup (f.public), since unauthenticated requests call it. The
// caller holds f.mu.
func (f *fsm) publicOwner(name string) (string, bool) {
	t, ok := f.public[name]
	return t, ok
}

// PublicBucketOwner returns, from this node's state alone, the tenant
// whose container of the name is public (has an "acl" or "policy"
// document), if any: at most one is.
func (s *Store) PublicBucketOwner(name string) (string, bool) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.publicOwner(name)
}

// ContainerTenants returns, from this node's state alone, the tenants
// owning a container of the name, sorted.
func (s *Store) ContainerTenants(name string) []string {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	var out []string
	for t, cs := range s.fsm.containers {
		if _, ok := cs[name]; ok {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}
