package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/erasure"
	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/placement"
)

// Errors returned by the Engine, possibly wrapped. The s3 package maps them
// to protocol errors.
var (
	ErrNoSuchContainer   = meta.ErrNoSuchContainer
	ErrPublicNameTaken   = meta.ErrPublicNameTaken
	ErrConfigChanged     = meta.ErrConfigChanged
	ErrConfigTooLarge    = meta.ErrConfigTooLarge
	ErrContainerExists   = meta.ErrContainerExists
	ErrTooManyContainers = meta.ErrTooManyContainers
	ErrContainerNotEmpty = errors.New("engine: container not empty")
	ErrNoSuchArtifact    = errors.New("engine: no such artifact")
	ErrInvalidName       = errors.New("engine: invalid name")
	ErrKeyTooLong        = errors.New("engine: key too long")
	ErrBadDigest         = errors.New("engine: content digest mismatch")
	ErrIncompleteBody    = errors.New("engine: body shorter or longer than declared")
	ErrTooLarge          = errors.New("engine: artifact too large")
	ErrInvalidRange      = errors.New("engine: invalid range")
	ErrReadQuorum        = errors.New("engine: read quorum not reached")
	ErrWriteQuorum       = errors.New("engine: write quorum not reached")
	ErrMetadataTooLarge  = errors.New("engine: metadata too large")
	ErrUnknownDrive      = errors.New("engine: drive not in topology")
	// ErrMetadataUnavailable is returned (wrapped) by a ContainerStore that
	// cannot commit a change now, such as a cluster without a Raft quorum.
	ErrMetadataUnavailable = meta.ErrUnavailable
	errArtifactIncomplete  = errors.New("engine: artifact shards unavailable")
)

// Limits on names and metadata.
const (
	MaxKeyLen        = 1024      // bytes of UTF-8, as S3
	MaxMetadataSize  = 8 << 10   // bytes of user metadata keys and values, a little above S3's 2 KiB
	MaxArtifactSize  = 5 << 40   // bytes (5 TiB)
	DefaultInlineMax = 128 << 10 // bytes
	maxContainerLen  = 255       // bytes
	maxTenantLen     = 64        // bytes
	listBatch        = 256       // records fetched per drive per ListRecords
	defaultTimeout   = 30 * time.Second
)

// Topology is what the engine needs of the cluster: the current map and a
// Driver for each drive in it. Implementations must be safe for concurrent
// use.
//
// Every write (Put, Delete, Copy's destination, a new multipart upload)
// goes to the drive set of the current map; an upload's parts go to the
// set it was created in (multipart_move.go). When the map changes (a node joins:
// drives are added, the epoch grows, the policy and PG → drive sets may
// change), artifacts written under an older map stay on that map's sets
// until data migration moves them. A Topology that also implements
// MapHistory lets reads by key (Open, Head, Copy's source, Heal) fall back
// to those older maps; without it, an artifact whose set the map moved
// fails with ErrReadQuorum. Drives are never removed from the map, so Drive
// must serve every drive of an older map too.
type Topology interface {
	// Map returns the current map. It must not be modified.
	Map() *placement.Map
	// Drive returns the Driver of drive id, or an error wrapping
	// ErrUnknownDrive, or driver.ErrOffline for a drive known to be
	// unreachable (its node is down): either way the engine treats the
	// drive as offline and does not wait for it. An error wrapping
	// driver.ErrRemoved says the drive left the cluster for good: the
	// migrator and Residue then count an older map's copies on it as
	// lost rather than waiting for it (MigrateAll).
	Drive(id placement.DriveID) (driver.Driver, error)
}

// FencedTopology is an optional interface of a Topology whose drives
// refuse writes planned under an outdated map (cluster: fenced map
// epochs). DriveIn returns the Driver of drive id for operations on PG pg
// planned under map m; the engine resolves every PG's drives through it
// when the Topology has it, and takes a refused write like any failed
// drive (the write fails without its quorum, ErrWriteQuorum).
type FencedTopology interface {
	DriveIn(m *placement.Map, pg uint32, id placement.DriveID) (driver.Driver, error)
}

// MapHistory is an optional interface of a Topology that remembers the maps
// that preceded its current one, for reads until migration (Migrate) has
// moved the artifacts written under them.
//
// OlderMaps returns them newest first, excluding Map; maps with an epoch not
// below Map's are ignored, so a map change between the two calls is
// harmless. The maps must not be modified. A map may be dropped from the
// history once migration has moved every artifact off its sets: when
// Residue reports 0 for it.
//
// A read by key takes the current map's set first. Only if that set
// answered with a read quorum and holds no record of the key (no version,
// no tombstone) does it try the older maps' sets in turn, each at its own
// PG with its own policy, and read the artifact from the first that holds
// one. A record counts for a set only if it was written for it (the map's
// k+m, the PG and the drive's slot): a drive in both sets may still hold
// the older map's record. One more case falls back: the current set holds
// a live version on fewer than k drives (drives that kept their slot) and
// an older set holds that same version on k. A current set that does not
// reach read quorum fails the read rather than fall back, which could
// resurrect deleted data.
type MapHistory interface {
	OlderMaps() []*placement.Map
}

// ContainerInfo describes a Container. It is meta's, so that a
// ContainerStore (cluster) need not import engine.
type ContainerInfo = meta.ContainerInfo

// ContainerStore keeps which Containers each tenant owns. Implementations
// must be safe for concurrent use and return ErrContainerExists and
// ErrNoSuchContainer (possibly wrapped) as documented.
type ContainerStore interface {
	// CreateContainer records c, or fails with ErrContainerExists.
	CreateContainer(ctx context.Context, c ContainerInfo) error
	// DeleteContainer forgets a container, or fails with ErrNoSuchContainer.
	DeleteContainer(ctx context.Context, tenant, name string) error
	// Container returns one container, or ErrNoSuchContainer.
	Container(ctx context.Context, tenant, name string) (ContainerInfo, error)
	// Containers returns a tenant's containers sorted by name.
	Containers(ctx context.Context, tenant string) ([]ContainerInfo, error)
}

// Config configures an Engine.
type Config struct {
	Topology   Topology
	Containers ContainerStore
	// StripeSize is the bytes of artifact data per stripe; 0 means
	// erasure.DefaultStripeSize.
	StripeSize int64
	// InlineMax is the largest artifact stored inside its metadata records;
	// 0 means DefaultInlineMax, negative disables inlining.
	InlineMax int64
	// HealQueue bounds the number of artifacts remembered for healing; 0
	// means 10,000.
	HealQueue int
	// HealInterval is how often RunHealer works through the heal queue;
	// 0 means DefaultHealInterval. It is also the first retry delay of an
	// artifact that could not be healed, doubled at each failure up to
	// HealBackoffMax.
	HealInterval time.Duration
	// HealBackoffMax caps the retry delay of an artifact that keeps
	// failing to heal; 0 means DefaultHealBackoffMax.
	HealBackoffMax time.Duration
	Logger         *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnUsage, if set, is told how each successful write changed a
	// tenant's stored bytes and artifact count: a put adds its size minus
	// the version it replaced, a delete subtracts the deleted version,
	// multipart parts count as they arrive and leave on abort or complete
	// (the completed artifact takes their place). Sizes are of the data
	// before erasure coding. It is called on the request's goroutine and
	// must not block.
	OnUsage func(tenant string, bytes, artifacts int64)
	// UploadHold is how long after its last part (or its creation) a
	// multipart upload in progress keeps the older map it lives in:
	// Residue counts it meanwhile, so migration does not drop the map
	// under it. 0 means DefaultUploadHold; negative, uploads never keep a
	// map.
	UploadHold time.Duration
	// UploadLocker, if set, serialises each multipart upload's part
	// commits, completion, abort and sweep across nodes; nil (a single
	// node) serialises them in this process only.
	UploadLocker UploadLocker
	// StoragePolicy, if set, returns a container's storage policy
	// (PolicyLocal, PolicyHybrid, PolicyTier; "" or unknown means
	// PolicyLocal). It is called on every operation and must be fast
	// and safe for concurrent use (cluster: the node's replicated bucket
	// configuration).
	StoragePolicy func(tenant, container string) string
	// Tiered, if set, reports whether a container may hold artifacts the
	// tier policy moved to remote drives: its policy is or once was
	// PolicyTier. Reads by key of such a container fall back to the
	// remote layout; nil means "when its policy is PolicyTier".
	Tiered func(tenant, container string) bool
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Topology == nil || c.Containers == nil {
		return errors.New("engine: config needs a Topology and a ContainerStore")
	}
	if c.StripeSize == 0 {
		c.StripeSize = erasure.DefaultStripeSize
	}
	if c.InlineMax == 0 {
		c.InlineMax = DefaultInlineMax
	}
	if c.HealQueue == 0 {
		c.HealQueue = 10_000
	}
	if c.HealInterval <= 0 {
		c.HealInterval = DefaultHealInterval
	}
	if c.HealBackoffMax <= 0 {
		c.HealBackoffMax = DefaultHealBackoffMax
	}
	if c.HealBackoffMax < c.HealInterval {
		c.HealBackoffMax = c.HealInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.StripeSize < 4096 || c.StripeSize > 64<<20 {
		return fmt.Errorf("engine: stripe size %d outside [4 KiB, 64 MiB]", c.StripeSize)
	}
	return nil
}

// Engine stores Artifacts. It is safe for concurrent use.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	codecs sync.Map // codecKey → *erasure.Codec

	lastVersion atomic.Int64   // unix nanos of the last version issued
	bg          sync.WaitGroup // background work: stragglers and their cleanups (quorum.go)
	st          stats

	healMu sync.Mutex              // guards the following fields
	heal   map[HealItem]*healEntry // artifacts seen degraded, waiting to be healed
	// blocked indexes the queued artifacts by the drives that kept their
	// last heal from completing (heal.go, blockHeal and drivesBack).
	blocked map[placement.DriveID]map[HealItem]struct{}

	seeds seedCache  // balanced stripe seeds of the current map (stripe.go)
	parts partBudget // extra parts striped requests may have in flight (stripe.go)
	layoutCache

	uploadMu    sync.Mutex             // guards uploadLocks
	uploadLocks map[string]*uploadLock // by upload id: serialises part commits, completion and abort

	moveRetries sync.Map // upload id -> moveRetry: when MoveUploads tries a failed move again
	mapSeen     mapSeen  // when this Engine first saw the current map (mapAge)
}

// UploadLocker serialises the operations on one multipart upload across
// the nodes of a cluster (cluster.Store implements it with a
// Raft-replicated lease). LockUpload blocks until this node holds id's
// lock, or fails, wrapping ErrMetadataUnavailable when the lock could not
// be had in a bounded wait; the engine then fails the operation (the
// client retries) and never proceeds without the lock. Held reports
// whether the lock is certainly still held (judged by the local monotonic
// clock with a margin); the engine checks it before each destructive step
// (writing records, deleting parts' shard files). unlock releases it.
type UploadLocker interface {
	LockUpload(ctx context.Context, id string) (held func() bool, unlock func(), err error)
}

// UploadFencer is an optional interface of an UploadLocker whose drives
// fence writes by lease (cluster): FenceUpload returns ctx carrying this
// node's current lease of upload id, and the engine makes the writes of
// an operation under the lease with it, so that a node paused past its
// lease cannot overwrite what the next holder did.
type UploadFencer interface {
	FenceUpload(ctx context.Context, id string) context.Context
}

// UploadLeases is an optional interface of an UploadLocker: UploadLeased
// reports whether some node holds upload id's lease now (an operation on
// it is going on: a part streaming into an upload a map change left in
// an older set holds it throughout). Residue counts such an upload as
// active however long ago its last part was.
type UploadLeases interface {
	UploadLeased(id string) bool
}

// uploadLock serialises the record changes of one multipart upload on this
// node. Across nodes Config.UploadLocker serialises them.
type uploadLock struct {
	mu   sync.Mutex
	refs int
}

// uploadHold is a held upload lock.
type uploadHold struct {
	held   func() bool // nil: the local lock only, held until unlock
	unlock func()
	// ctx is the caller's ctx, carrying the lease for the writes made
	// under it with an UploadFencer.
	ctx context.Context
}

// check fails, wrapping ErrMetadataUnavailable, if the cluster lock may
// have expired: another node may now work on the upload.
func (h *uploadHold) check() error {
	if h.held != nil && !h.held() {
		return fmt.Errorf("%w: upload lock expired", ErrMetadataUnavailable)
	}
	return nil
}

// lockUpload locks upload id on this node and, with an UploadLocker, in
// the cluster, and returns the hold; the caller must call its unlock.
func (e *Engine) lockUpload(ctx context.Context, id string) (*uploadHold, error) {
	unlockLocal := e.lockLocal(id)
	if e.cfg.UploadLocker == nil {
		return &uploadHold{unlock: unlockLocal, ctx: ctx}, nil
	}
	held, unlock, err := e.cfg.UploadLocker.LockUpload(ctx, id)
	if err != nil {
		unlockLocal()
		return nil, fmt.Errorf("engine: lock upload: %w", err)
	}
	if f, ok := e.cfg.UploadLocker.(UploadFencer); ok {
		ctx = f.FenceUpload(ctx, id)
	}
	return &uploadHold{held: held, unlock: func() { unlock(); unlockLocal() }, ctx: ctx}, nil
}

// lockLocal locks id on this node and returns its unlock.
func (e *Engine) lockLocal(id string) func() {
	e.uploadMu.Lock()
	l := e.uploadLocks[id]
	if l == nil {
		l = &uploadLock{}
		e.uploadLocks[id] = l
	}
	l.refs++
	e.uploadMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		e.uploadMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(e.uploadLocks, id)
		}
		e.uploadMu.Unlock()
	}
}

// New returns an Engine for c.
func New(c Config) (*Engine, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Engine{cfg: c, log: c.Logger, heal: make(map[HealItem]*healEntry), blocked: make(map[placement.DriveID]map[HealItem]struct{}), layoutCache: layoutCache{layouts: make(map[layoutKey]*placement.Map)}, uploadLocks: make(map[string]*uploadLock), parts: make(partBudget, stripeBudgetParts)}, nil
}

type codecKey struct {
	k, m   int
	stripe int64
}

func (e *Engine) codec(k, m int, stripe int64) (*erasure.Codec, error) {
	key := codecKey{k, m, stripe}
	if c, ok := e.codecs.Load(key); ok {
		return c.(*erasure.Codec), nil
	}
	c, err := erasure.New(erasure.Config{Data: k, Parity: m, StripeSize: stripe})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	actual, _ := e.codecs.LoadOrStore(key, c)
	return actual.(*erasure.Codec), nil
}

// newVersion returns a version newer than every version this Engine issued
// before: unix nanoseconds (strictly increasing) then 8 random bytes, so
// versions from different nodes at the same instant still differ.
func (e *Engine) newVersion() (driver.Version, time.Time) {
	now := e.cfg.Now()
	ns := now.UnixNano()
	for {
		last := e.lastVersion.Load()
		if ns <= last {
			ns = last + 1
		}
		if e.lastVersion.CompareAndSwap(last, ns) {
			break
		}
	}
	var v driver.Version
	binary.BigEndian.PutUint64(v[:8], uint64(ns))
	rand.Read(v[8:])
	return v, time.Unix(0, ns)
}

// validTenant reports whether t is a usable tenant name.
func validTenant(t string) error {
	if t == "" || len(t) > maxTenantLen || hasControl(t) || strings.Contains(t, "/") || !utf8.ValidString(t) {
		return fmt.Errorf("%w: tenant %q", ErrInvalidName, t)
	}
	return nil
}

func validContainer(c string) error {
	if c == "" || len(c) > maxContainerLen || hasControl(c) || strings.Contains(c, "/") || !utf8.ValidString(c) {
		return fmt.Errorf("%w: container %q", ErrInvalidName, c)
	}
	return nil
}

// hasControl reports whether s holds a byte below 0x20. Tenant and
// container names never do, so index key spaces that start with such a
// byte (multipart uploads) cannot collide with theirs.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}

// validKey reports whether key is a usable artifact key: 1 to 1024 bytes of
// valid UTF-8 without NUL. Valid UTF-8 never contains the byte 0xff, which
// listing relies on.
func validKey(key string) error {
	switch {
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes", ErrKeyTooLong, len(key))
	case key == "" || !utf8.ValidString(key) || strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w: artifact key", ErrInvalidName)
	}
	return nil
}

// indexPrefix is the index key prefix of every artifact of a container.
// Tenant and container names contain no NUL, so prefixes never overlap.
func indexPrefix(tenant, container string) string {
	return tenant + "\x00" + container + "\x00"
}

// HealItem names an artifact seen degraded.
type HealItem struct {
	Tenant, Container, Key string
}

// queueHeal queues it for healing: a read or scan found it degraded.
func (e *Engine) queueHeal(it HealItem) {
	e.st.degraded.Add(1)
	e.enqueueHeal(it)
}

// queueHealWritten is queueHeal for an artifact its own write left short
// of a drive (put.go): its heal checks the shards' presence rather than
// verifying them in full, unless something else queues it too (addHeal).
func (e *Engine) queueHealWritten(it HealItem) {
	e.st.degraded.Add(1)
	e.addHeal(it, true)
}

// Degraded returns the artifacts that reads found degraded and that have not
// been healed since, in no particular order, including those waiting out a
// retry delay.
func (e *Engine) Degraded() []HealItem {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	items := make([]HealItem, 0, len(e.heal))
	for it := range e.heal {
		items = append(items, it)
	}
	return items
}

// present returns which of drives the topology provides (are not nil):
// the mask of a write to every drive of a set.
func present(drives []driver.Driver) []bool {
	ok := make([]bool, len(drives))
	for j, d := range drives {
		ok[j] = d != nil
	}
	return ok
}

// pgDrives resolves the drives of pg in shard order. A drive the topology
// cannot provide is nil; errs holds why.
func (e *Engine) pgDrives(m *placement.Map, pg uint32) ([]driver.Driver, []error) {
	set := m.Set(pg)
	ds := make([]driver.Driver, len(set))
	errs := make([]error, len(set))
	ft, fenced := e.cfg.Topology.(FencedTopology)
	for i, id := range set {
		if fenced {
			ds[i], errs[i] = ft.DriveIn(m, pg, id)
		} else {
			ds[i], errs[i] = e.cfg.Topology.Drive(id)
		}
		if errs[i] == nil && ds[i] == nil {
			errs[i] = fmt.Errorf("%w: %s", ErrUnknownDrive, id)
		}
	}
	return ds, errs
}

// shardName names the shard files of one artifact version's data. Keys
// never reach a file name: only this hash does.
func shardName(tenant, container, key string, dataID [16]byte) string {
	key = baseKey(key) // a version's data keeps its key's names (version.go)
	h := sha256.New()
	h.Write([]byte(indexPrefix(tenant, container)))
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(dataID[:])
	return hex.EncodeToString(h.Sum(nil))
}

// shardOf returns the shard file of one part's data.
func shardOf(tenant, container, key string, pg uint32, dataID [16]byte) driver.Shard {
	return driver.Shard{PG: pg, Name: shardName(tenant, container, key, dataID)}
}

func metadataSize(m map[string]string) int {
	n := 0
	for k, v := range m {
		if !IsReservedMetadata(k) { // bounded by their owners
			n += len(k) + len(v)
		}
	}
	return n
}

// checkContainer validates the names and that the container exists.
func (e *Engine) checkContainer(ctx context.Context, tenant, container string) error {
	if err := validTenant(tenant); err != nil {
		return err
	}
	if err := validContainer(container); err != nil {
		return err
	}
	if _, err := e.cfg.Containers.Container(ctx, tenant, container); err != nil {
		return err
	}
	return nil
}

// mapOf is a test seam: the map the engine is using.
func (e *Engine) mapOf() *placement.Map { return e.cfg.Topology.Map() }
