package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/placement"
	"github.com/vaultaire/vaultaire/tenant"
)

// cmdType is the first byte of every raft log entry written by this
// package. Its values reach disk: append only, never renumber or reuse.
type cmdType uint8

const (
	cmdCreateTenant    cmdType = 1
	cmdDeleteTenant    cmdType = 2
	cmdCreateKey       cmdType = 3
	cmdDeleteKey       cmdType = 4
	cmdCreateContainer cmdType = 5
	cmdDeleteContainer cmdType = 6
	cmdPutNode         cmdType = 7
	cmdSetMap          cmdType = 8
	cmdSetLimits       cmdType = 9
	cmdUsage           cmdType = 10
	cmdDropMap         cmdType = 11
	cmdSetConfig       cmdType = 12 // bucketconfig.go
	cmdAcquireLease    cmdType = 13 // uploadlease.go
	cmdReleaseLease    cmdType = 14
	// 15..19 left for other work in flight; drain.go:
	cmdDrain      cmdType = 20
	cmdRemoveNode cmdType = 21
)

// errAccessKeyExists is returned by Apply when a proposed access key is
// already in use by any tenant. Proposers draw a new key and retry.
var errAccessKeyExists = errors.New("cluster: access key already in use")

// keyRecord is a key pair as replicated: the secret in plaintext.
type keyRecord struct {
	AccessKey string    `json:"access_key"`
	Secret    string    `json:"secret,omitempty"` // plaintext (a store without cluster secret)
	Sealed    string    `json:"sealed,omitempty"` // or sealed under the cluster secret (seal.go)
	Created   time.Time `json:"created"`
}

// newKey draws a key pair (tenant.NewKey), created at now.
func newKey(now time.Time) keyRecord {
	k := tenant.NewKey(now)
	return keyRecord{AccessKey: k.AccessKey, Secret: string(k.Secret), Created: k.Created}
}

// public returns k without its sealed form.
func (k keyRecord) public() tenant.Key {
	return tenant.Key{AccessKey: k.AccessKey, Secret: tenant.Secret(k.Secret), Created: k.Created}
}

// The command payloads, JSON encoded after the type byte. Every value the
// FSM stores (names, keys, times) is chosen by the proposer.
type (
	createTenantCmd struct {
		Name    string    `json:"name"`
		Created time.Time `json:"created"`
		Key     keyRecord `json:"key"`
	}
	deleteTenantCmd struct {
		Name string `json:"name"`
	}
	createKeyCmd struct {
		Tenant string    `json:"tenant"`
		Key    keyRecord `json:"key"`
	}
	deleteKeyCmd struct {
		Tenant    string `json:"tenant"`
		AccessKey string `json:"access_key"`
	}
	createContainerCmd struct {
		Tenant  string    `json:"tenant"`
		Name    string    `json:"name"`
		Created time.Time `json:"created"`
		// Max caps the tenant's containers (0: no cap, as in entries
		// written before the cap existed). The proposer sets it, so that
		// every node applies the same cap to the same entry.
		Max int `json:"max,omitempty"`
	}
	deleteContainerCmd struct {
		Tenant string `json:"tenant"`
		Name   string `json:"name"`
	}
)

// encodeCmd returns the log entry for a command: its type byte, then JSON.
func encodeCmd(t cmdType, payload any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte(byte(t))
	if err := json.NewEncoder(&b).Encode(payload); err != nil {
		return nil, fmt.Errorf("cluster: encode command %d: %w", t, err)
	}
	return b.Bytes(), nil
}

// tenantState is a tenant inside the FSM.
type tenantState struct {
	Name    string        `json:"name"`
	Created time.Time     `json:"created"`
	Keys    []keyRecord   `json:"keys"` // in creation order
	Limits  tenant.Limits `json:"limits"`
	Usage   tenant.Usage  `json:"usage"`
}

// fsm is the replicated state machine: tenants, their keys and their
// containers. Apply is deterministic: it reads only the log entry and the
// current state, never the clock, the disk or map iteration order.
type fsm struct {
	restores atomic.Int64 // Restore calls, for tests
	// applied is the index of the last command applied to this state
	// (raft's AppliedIndex runs ahead: it counts entries handed to the
	// FSM goroutine, not applied ones). Snapshots carry it.
	applied atomic.Uint64

	mu         sync.RWMutex                             // guards the following fields
	tenants    map[string]*tenantState                  // name → tenant
	keys       map[string]string                        // access key → tenant name (index of tenants[*].Keys)
	containers map[string]map[string]meta.ContainerInfo // tenant → name → container
	nodes      map[string]NodeInfo                      // name → registered node
	maps       []*placement.Map                         // every map in epoch order; the last is current
	configs    map[configKey]map[string][]byte          // container → kind → document (bucketconfig.go)
	public     map[string]string                        // public container name → its tenant, derived from configs (bucketconfig.go)
	leases     map[string]uploadLease                   // upload id → its lease (uploadlease.go)
	draining   map[string]bool                          // drive IDs being drained (drain.go)
	removed    map[string]bool                          // names of removed nodes (drain.go)
}

func newFSM() *fsm {
	return &fsm{
		tenants:    make(map[string]*tenantState),
		keys:       make(map[string]string),
		containers: make(map[string]map[string]meta.ContainerInfo),
		nodes:      make(map[string]NodeInfo),
		configs:    make(map[configKey]map[string][]byte),
		public:     make(map[string]string),
	}
}

var _ raft.FSM = (*fsm)(nil)

// Apply applies one committed log entry and returns nil or an error that
// the proposer gets back from Store.apply. A malformed entry yields an
// error, not a panic, on every node alike.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) == 0 {
		return errors.New("cluster: empty command")
	}
	t, body := cmdType(l.Data[0]), l.Data[1:]
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.applied.Store(l.Index)
	switch t {
	case cmdCreateTenant:
		var c createTenantCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.createTenant(c)
	case cmdDeleteTenant:
		var c deleteTenantCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.deleteTenant(c)
	case cmdCreateKey:
		var c createKeyCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.createKey(c)
	case cmdDeleteKey:
		var c deleteKeyCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.deleteKey(c)
	case cmdCreateContainer:
		var c createContainerCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.createContainer(c)
	case cmdDeleteContainer:
		var c deleteContainerCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.deleteContainer(c)
	case cmdPutNode:
		var c NodeInfo
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.putNode(c)
	case cmdSetMap:
		var c setMapCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.setMap(c)
	case cmdSetLimits:
		var c setLimitsCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.setLimits(c)
	case cmdUsage:
		var c usageCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.addUsage(c)
	case cmdDropMap:
		var c dropMapCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.dropMap(c)
	case cmdSetConfig:
		var c setConfigCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.setConfig(c)
	case cmdAcquireLease:
		var c acquireLeaseCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.acquireLease(c, l.Index)
	case cmdDrain:
		var c drainCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.drain(c)
	case cmdRemoveNode:
		var c removeNodeCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.removeNode(c)
	case cmdAdoptDrive: // remotedrive.go
		var c adoptDriveCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.adoptDrive(c)
	case cmdSettleContainers, cmdSettleContainersExcept: // settle.go
		var c settleContainersCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.settleContainers(c)
	case cmdReleaseLease:
		var c releaseLeaseCmd
		if err := json.Unmarshal(body, &c); err != nil {
			return decodeErr(t, err)
		}
		return f.releaseLease(c)
	default:
		return fmt.Errorf("cluster: unknown command type %d", t)
	}
}

func decodeErr(t cmdType, err error) error {
	return fmt.Errorf("cluster: decode command %d: %w", t, err)
}

func (f *fsm) createTenant(c createTenantCmd) error {
	if _, ok := f.tenants[c.Name]; ok {
		return fmt.Errorf("%w: %s", tenant.ErrTenantExists, c.Name)
	}
	if _, ok := f.keys[c.Key.AccessKey]; ok {
		return errAccessKeyExists
	}
	f.tenants[c.Name] = &tenantState{Name: c.Name, Created: c.Created, Keys: []keyRecord{c.Key}}
	f.keys[c.Key.AccessKey] = c.Name
	return nil
}

func (f *fsm) deleteTenant(c deleteTenantCmd) error {
	t, ok := f.tenants[c.Name]
	if !ok {
		return fmt.Errorf("%w: %s", tenant.ErrNoSuchTenant, c.Name)
	}
	if len(f.containers[c.Name]) > 0 {
		return fmt.Errorf("%w: %s owns %d containers", tenant.ErrTenantNotEmpty, c.Name, len(f.containers[c.Name]))
	}
	for _, k := range t.Keys {
		delete(f.keys, k.AccessKey)
	}
	delete(f.tenants, c.Name)
	delete(f.containers, c.Name)
	return nil
}

func (f *fsm) createKey(c createKeyCmd) error {
	t, ok := f.tenants[c.Tenant]
	if !ok {
		return fmt.Errorf("%w: %s", tenant.ErrNoSuchTenant, c.Tenant)
	}
	if _, ok := f.keys[c.Key.AccessKey]; ok {
		return errAccessKeyExists
	}
	t.Keys = append(t.Keys, c.Key)
	f.keys[c.Key.AccessKey] = c.Tenant
	return nil
}

func (f *fsm) deleteKey(c deleteKeyCmd) error {
	t, ok := f.tenants[c.Tenant]
	if !ok {
		return fmt.Errorf("%w: %s", tenant.ErrNoSuchTenant, c.Tenant)
	}
	i := slices.IndexFunc(t.Keys, func(k keyRecord) bool { return k.AccessKey == c.AccessKey })
	if i < 0 {
		return tenant.ErrUnknownAccessKey
	}
	t.Keys = slices.Delete(t.Keys, i, i+1)
	delete(f.keys, c.AccessKey)
	return nil
}

func (f *fsm) createContainer(c createContainerCmd) error {
	if _, ok := f.tenants[c.Tenant]; !ok {
		return fmt.Errorf("%w: %s", tenant.ErrNoSuchTenant, c.Tenant)
	}
	cs := f.containers[c.Tenant]
	if cs == nil {
		cs = make(map[string]meta.ContainerInfo)
		f.containers[c.Tenant] = cs
	}
	if _, ok := cs[c.Name]; ok {
		return fmt.Errorf("%w: %s/%s", meta.ErrContainerExists, c.Tenant, c.Name)
	}
	if c.Max > 0 && len(cs) >= c.Max {
		return fmt.Errorf("%w: %s has %d (the cap)", meta.ErrTooManyContainers, c.Tenant, len(cs))
	}
	// Settled: settle.go.
	cs[c.Name] = meta.ContainerInfo{Tenant: c.Tenant, Name: c.Name, Created: c.Created, Settled: uint64(f.currentEpoch())}
	return nil
}

func (f *fsm) deleteContainer(c deleteContainerCmd) error {
	cs := f.containers[c.Tenant]
	if _, ok := cs[c.Name]; !ok {
		return fmt.Errorf("%w: %s/%s", meta.ErrNoSuchContainer, c.Tenant, c.Name)
	}
	delete(cs, c.Name)
	delete(f.configs, configKey{c.Tenant, c.Name})
	f.notePublic(c.Tenant, c.Name)
	if len(cs) == 0 {
		delete(f.containers, c.Tenant)
	}
	return nil
}

// snapshotVersion is the format version of snapshotData; bump it, and keep
// reading the old one, when the layout changes.
const snapshotVersion = 3

// snapshotData is the whole FSM state as written to a snapshot. Slices are
// sorted so that equal states give byte-identical snapshots.
type snapshotData struct {
	Version    int                  `json:"version"`
	Tenants    []tenantState        `json:"tenants"`            // sorted by name
	Containers []meta.ContainerInfo `json:"containers"`         // sorted by tenant, then name; Settled absent (0) before settle.go
	Nodes      []NodeInfo           `json:"nodes"`              // sorted by name (version 2)
	Maps       []*placement.Map     `json:"maps"`               // in epoch order (version 2)
	Applied    uint64               `json:"applied"`            // fsm.applied when taken (version 2)
	Configs    []bucketConfig       `json:"configs"`            // sorted by tenant, container, kind (version 3)
	Leases     []uploadLease        `json:"leases"`             // sorted by upload (absent before version 3)
	Draining   []string             `json:"draining,omitempty"` // sorted drive IDs (drain.go)
	Removed    []string             `json:"removed,omitempty"`  // sorted node names (drain.go)
}

// Snapshot captures the state. It runs on raft's FSM goroutine, never
// concurrently with Apply; the encoding is done here so that Persist does
// not race with later Applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := snapshotData{
		Version:    snapshotVersion,
		Tenants:    make([]tenantState, 0, len(f.tenants)),
		Containers: []meta.ContainerInfo{},
	}
	for _, t := range f.tenants {
		d.Tenants = append(d.Tenants, tenantState{Name: t.Name, Created: t.Created, Keys: slices.Clone(t.Keys), Limits: t.Limits, Usage: t.Usage})
	}
	slices.SortFunc(d.Tenants, func(a, b tenantState) int { return strings.Compare(a.Name, b.Name) })
	for _, cs := range f.containers {
		for _, c := range cs {
			d.Containers = append(d.Containers, c)
		}
	}
	slices.SortFunc(d.Containers, compareContainers)
	for _, n := range f.nodes {
		d.Nodes = append(d.Nodes, n)
	}
	slices.SortFunc(d.Nodes, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	d.Maps = slices.Clone(f.maps) // maps are immutable values
	d.Applied = f.applied.Load()
	d.Configs = f.configList()
	d.Leases = f.leaseList()
	d.Draining, d.Removed = setList(f.draining), setList(f.removed)
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode snapshot: %w", err)
	}
	return fsmSnapshot(b), nil
}

func compareContainers(a, b meta.ContainerInfo) int {
	if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// Restore replaces the whole state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return fmt.Errorf("cluster: decode snapshot: %w", err)
	}
	if d.Version < 1 || d.Version > snapshotVersion {
		return fmt.Errorf("cluster: snapshot version %d not supported", d.Version)
	}
	n := newFSM()
	for _, t := range d.Tenants {
		n.tenants[t.Name] = &tenantState{Name: t.Name, Created: t.Created, Keys: t.Keys, Limits: t.Limits, Usage: t.Usage}
		for _, k := range t.Keys {
			n.keys[k.AccessKey] = t.Name
		}
	}
	for _, c := range d.Containers {
		cs := n.containers[c.Tenant]
		if cs == nil {
			cs = make(map[string]meta.ContainerInfo)
			n.containers[c.Tenant] = cs
		}
		cs[c.Name] = c
	}
	for _, nd := range d.Nodes {
		n.nodes[nd.Name] = nd
	}
	for _, m := range d.Maps {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("cluster: snapshot map epoch %d: %w", m.Epoch, err)
		}
	}
	n.maps = d.Maps
	for _, c := range d.Configs {
		k := configKey{c.Tenant, c.Container}
		if n.configs[k] == nil {
			n.configs[k] = make(map[string][]byte)
		}
		n.configs[k][c.Kind] = c.Doc
	}
	f.mu.Lock()
	f.tenants, f.keys, f.containers, f.nodes, f.maps, f.configs = n.tenants, n.keys, n.containers, n.nodes, n.maps, n.configs
	f.public = make(map[string]string)
	for k := range f.configs {
		f.notePublic(k.tenant, k.container)
	}
	f.leases = leaseMap(d.Leases)
	f.draining, f.removed = setOf(d.Draining), setOf(d.Removed)
	f.applied.Store(d.Applied)
	f.mu.Unlock()
	f.restores.Add(1)
	return nil
}

// fsmSnapshot is an encoded snapshot waiting to be persisted.
type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("cluster: write snapshot: %w", err)
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}

// Read accessors used by Store; each returns copies.

func (f *fsm) tenant(name string) (tenant.Tenant, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.tenants[name]
	if !ok {
		return tenant.Tenant{}, false
	}
	return t.public(), true
}

func (f *fsm) tenantList() []tenant.Tenant {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]tenant.Tenant, 0, len(f.tenants))
	for _, t := range f.tenants {
		out = append(out, t.public())
	}
	slices.SortFunc(out, func(a, b tenant.Tenant) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (t *tenantState) public() tenant.Tenant {
	p := tenant.Tenant{Name: t.Name, Created: t.Created, AccessKeys: make([]string, len(t.Keys)), Limits: t.Limits, Usage: t.Usage}
	for i, k := range t.Keys {
		p.AccessKeys[i] = k.AccessKey
	}
	return p
}

// lookupKey returns the tenant and key record of an access key.
func (f *fsm) lookupKey(accessKey string) (tenant string, key keyRecord, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	tenant, ok = f.keys[accessKey]
	if !ok {
		return "", keyRecord{}, false
	}
	for _, k := range f.tenants[tenant].Keys {
		if k.AccessKey == accessKey {
			return tenant, k, true
		}
	}
	return "", keyRecord{}, false // unreachable while keys indexes tenants
}

func (f *fsm) container(tenant, name string) (meta.ContainerInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	c, ok := f.containers[tenant][name]
	return c, ok
}

func (f *fsm) containerList(tenant string) []meta.ContainerInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	cs := f.containers[tenant]
	out := make([]meta.ContainerInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, c)
	}
	slices.SortFunc(out, compareContainers)
	return out
}
