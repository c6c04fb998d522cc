package remote

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	"golang.org/x/sync/errgroup"

	"github.com/vaultaire/vaultaire/driver"
)

// Defaults of Config.
const (
	DefaultSmallShardMax      = 1 << 20
	DefaultPartSize           = 8 << 20
	MinPartSize               = 5 << 20 // the S3 minimum for all parts but the last
	DefaultMaxBatchBytes      = 32 << 20
	DefaultMaxConcurrent      = 16
	DefaultOpTimeout          = 30 * time.Second
	DefaultAttemptTimeout     = 10 * time.Second
	DefaultProgressTimeout    = 10 * time.Second
	DefaultMaxAttempts        = 5
	DefaultMaxBackoff         = 2 * time.Second
	DefaultBreakerThreshold   = 3
	DefaultBreakerCooldown    = time.Second
	DefaultBreakerMaxCooldown = 30 * time.Second
	DefaultCompactInterval    = 5 * time.Minute
	DefaultSnapshotEvery      = 1000
	DefaultCompactRatio       = 0.5
	DefaultCompactMinReclaim  = 256 << 20
)

// Config configures a remote Driver.
type Config struct {
	// Endpoint is the service's base URL, "https://host[:port]".
	Endpoint string
	// Region is the signing region; "us-east-1" if empty.
	Region string
	// Bucket holds the drive; it must exist.
	Bucket string
	// Prefix, if set, is the key prefix under which the drive lives in
	// the bucket ("a/b/"; a missing trailing slash is added).
	Prefix string
	// AccessKey and SecretKey sign the requests. They are never logged.
	AccessKey, SecretKey string

	// ID and ClusterID are written to format.json in the bucket on first
	// use; later Opens refuse another cluster (driver.ErrForeignDrive) or
	// another drive id.
	ID        driver.DriveID
	ClusterID string
	// Restamp, if set, is a cluster id this Driver may take over: a
	// format.json naming it (and ID) is rewritten to name ClusterID (the
	// write passes Fence) instead of being refused. vaultd sets it to the
	// node's own id, so that a single node's remote drive moves with the
	// node into a cluster; no other writer can hold a drive stamped with
	// it. A ReadOnly Driver never restamps.
	Restamp string
	// Logger receives operational messages. Nil discards them.
	Logger *slog.Logger

	// KEK, if set, is the 32-byte key-encryption key: a drive formatted
	// with it is encrypted (crypt.go), everything written under the prefix
	// but format.json sealed with a random data key that format.json holds
	// wrapped under KEK. Nil: a new drive is stored in the clear, as
	// before. A drive formatted without a KEK stays in the clear (a
	// warning at Open says how to convert it: Encrypt); an
	// encrypted one needs its KEK, or one of OldKEKs, to open. Never logged.
	KEK Key
	// OldKEKs are KEKs a drive's data key may still be wrapped under: one
	// that opens it is replaced by KEK in format.json (not by a ReadOnly
	// Driver), so a KEK is rotated by moving it here and setting a new one.
	OldKEKs []Key
	// Encrypt: the operator asks that a plaintext drive (formatted before
	// encryption) be made encrypted (vaultd --remote-encrypt): Open with a
	// KEK deletes the drive's objects and formats it afresh, encrypted,
	// for the engine's scanner and healer to refill, as a replaced disk.
	// Ignored on an encrypted drive, without a KEK and when ReadOnly.
	Encrypt bool
	// RequireEncrypted: the drive is known to be encrypted (the caller saw
	// it so: OnFormat). A format.json without a data key is then refused
	// (ErrDowngraded) instead of opening the drive in plaintext: the
	// provider holds format.json, and one that replaced it (and the
	// objects) with plaintext ones must not make this node write the
	// drive's data, the healer's refill included, in the clear.
	RequireEncrypted bool
	// OnFormat, if set, is called each time Open has checked (or written)
	// format.json, with whether the drive is encrypted: the caller keeps
	// that, to set RequireEncrypted at later Opens.
	OnFormat func(encrypted bool)

	// SmallShardMax: shards of at most this many bytes ride in log objects
	// (no request of their own). 0 means DefaultSmallShardMax.
	SmallShardMax int64
	// PartSize is the most bytes a shard writer buffers: a larger shard is
	// a multipart upload of PartSize parts. 0 means DefaultPartSize; at
	// least MinPartSize.
	PartSize int64
	// MaxBatchBytes caps one log object. 0 means DefaultMaxBatchBytes.
	MaxBatchBytes int64
	// MaxQueueBytes caps the mutations queued for the next log objects
	// (records, small shards' bytes): a call that would pass it waits
	// for room, or its context. 0 means 2 × MaxBatchBytes.
	MaxQueueBytes int64
	// MaxConcurrent caps the requests in flight. 0: DefaultMaxConcurrent.
	MaxConcurrent int
	// OpTimeout bounds a call, all its attempts included (for a shard
	// stream: the wait for its first byte). 0: DefaultOpTimeout.
	OpTimeout time.Duration
	// AttemptTimeout bounds one attempt's wait for the answer's headers
	// (and its dial). 0: DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// ProgressTimeout bounds each Read of a shard stream. 0:
	// DefaultProgressTimeout.
	ProgressTimeout time.Duration
	// MaxAttempts is the attempts per request (retries + 1). 0:
	// DefaultMaxAttempts.
	MaxAttempts int
	// MaxBackoff caps the jittered exponential backoff between attempts.
	// 0: DefaultMaxBackoff.
	MaxBackoff time.Duration
	// BreakerThreshold failed calls in a row open the circuit breaker.
	// 0: DefaultBreakerThreshold.
	BreakerThreshold int
	// BreakerCooldown is the first wait before a trial call; it doubles
	// while trials fail, up to BreakerMaxCooldown. 0: the defaults.
	BreakerCooldown, BreakerMaxCooldown time.Duration
	// ProbeQuiet: see the constant. 0: ProbeQuiet.
	ProbeQuiet time.Duration
	// VerifyEvery is how often Probe compares the index with a listing of
	// the bucket, spread over probes, to find objects lost while
	// format.json was kept (see verify.go). 0: DefaultVerifyEvery;
	// negative: never.
	VerifyEvery time.Duration

	// CompactInterval is how often the background compaction looks at the
	// log objects (see Compact). 0: DefaultCompactInterval; negative: never.
	CompactInterval time.Duration
	// SnapshotEvery log objects written since the last snapshot make the
	// background compaction write one. 0: DefaultSnapshotEvery.
	SnapshotEvery int
	// CompactRatio: a log object whose live shard bytes are below this
	// fraction of its size is rewritten. 0: DefaultCompactRatio.
	CompactRatio float64
	// CompactMinReclaim: the background compaction runs before
	// SnapshotEvery when dead or sparse log objects hold at least this
	// many bytes. 0: DefaultCompactMinReclaim.
	CompactMinReclaim int64

	// Existing makes Open and Attach refuse a prefix without format.json
	// instead of formatting it: a node adopting a drive expects to find
	// it, and an empty bucket there is a configuration mistake.
	Existing bool

	// Reformat: the operator states that the bucket lost this drive's
	// format.json (and maybe more) and that its prefix is the drive's
	// (vaultd --remote-reformat): Open writes format.json again over
	// what the prefix holds, instead of refusing a prefix without it,
	// and loads the index from the log objects left. What the loss took
	// is then missing from the drive, as on a replaced disk: the engine's
	// scanner and healer refill it, and verification (verify.go, whose
	// first pass begins at the first probe) finds the shard objects gone
	// under surviving log entries. Without format.json the drive's
	// identity cannot be checked (log objects do not carry it), hence an
	// operator's word, for one start. Ignored when format.json is there.
	Reformat bool

	// Fence, if set, is asked before every request that changes the
	// bucket (PUT, DELETE, multipart upload); an error refuses the write
	// with ErrFenced and driver.ErrOffline, and Info fails likewise. It
	// must be cheap (it runs per request) and safe for concurrent use. In
	// a cluster it says whether this node still owns the drive (see the
	// package doc, "Ownership and fencing").
	Fence Fencer

	// ReadOnly opens the drive as a reader next to its owner (see
	// readonly.go): the bucket is never written (no format, no orphan
	// removal, no compaction; every write fails with ErrReadOnly and
	// driver.ErrOffline), it must hold format.json (Existing), and every
	// read first brings the index up to date with the bucket, so it
	// answers as the owner's index did at some moment after the call
	// began.
	ReadOnly bool
	// ReaderIdle is how long a ReadOnly Driver keeps its index once no
	// read came (a standby whose owner is back): it is then dropped and
	// read again from the bucket by the next read. 0 means
	// DefaultReaderIdle; negative, never dropped.
	ReaderIdle time.Duration
}

// DefaultReaderIdle is the default Config.ReaderIdle.
const DefaultReaderIdle = 10 * time.Minute

// Fencer says whether a Driver may still write its bucket: Fence returns
// nil if so.
type Fencer interface {
	Fence(ctx context.Context) error
}

// FenceFunc adapts a function to a Fencer.
type FenceFunc func(ctx context.Context) error

// Fence calls f.
func (f FenceFunc) Fence(ctx context.Context) error { return f(ctx) }

// ParseURL parses "https://host[:port]/bucket[/prefix]?region=R" into the
// endpoint, region, bucket and prefix of a Config. Optional parameters:
// timeout (Config.OpTimeout, a Go duration such as 10s) and concurrency
// (Config.MaxConcurrent). Credentials are never part of the URL: one with
// user information is refused.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, which may hold a secret.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return Config{}, fmt.Errorf("remote URL: %w", err)
	}
	if u.User != nil {
		return Config{}, errors.New("remote URL: credentials do not belong in the URL; use the environment or a key file")
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return Config{}, fmt.Errorf("remote URL %q: want https://host[:port]/bucket[/prefix]", u.Redacted())
	}
	path := strings.Trim(u.Path, "/")
	bucket, prefix, _ := strings.Cut(path, "/")
	if bucket == "" {
		return Config{}, fmt.Errorf("remote URL %q: no bucket", u.Redacted())
	}
	q := u.Query()
	c := Config{Endpoint: u.Scheme + "://" + u.Host, Region: q.Get("region"), Bucket: bucket, Prefix: prefix}
	for k := range q {
		switch k {
		case "region":
		case "timeout":
			if c.OpTimeout, err = time.ParseDuration(q.Get(k)); err != nil || c.OpTimeout <= 0 {
				return Config{}, fmt.Errorf("remote URL: timeout %q: want a positive duration such as 10s", q.Get(k))
			}
		case "concurrency":
			if c.MaxConcurrent, err = strconv.Atoi(q.Get(k)); err != nil || c.MaxConcurrent <= 0 {
				return Config{}, fmt.Errorf("remote URL: concurrency %q: want a positive integer", q.Get(k))
			}
		case "verify":
			// How often verification lists the bucket (verify.go); off
			// turns it off.
			if v := q.Get(k); v == "off" {
				c.VerifyEvery = -1
			} else if c.VerifyEvery, err = time.ParseDuration(v); err != nil || c.VerifyEvery < time.Minute {
				return Config{}, fmt.Errorf("remote URL: verify %q: want a duration of at least 1m, such as 30m, or off", v)
			}
		default:
			return Config{}, fmt.Errorf("remote URL: unknown parameter %q (region, timeout, concurrency, verify)", k)
		}
	}
	return c, nil
}

func (c *Config) setDefaults() error {
	switch {
	case c.Endpoint == "" || c.Bucket == "":
		return errors.New("driver/remote: config: Endpoint and Bucket are required")
	case c.AccessKey == "" || c.SecretKey == "":
		return errors.New("driver/remote: config: AccessKey and SecretKey are required")
	case c.ID == "" || c.ClusterID == "":
		return errors.New("driver/remote: config: ID and ClusterID are required")
	}
	for i, k := range append([]Key{c.KEK}, c.OldKEKs...) {
		if (k != nil || i > 0) && len(k) != 32 {
			return fmt.Errorf("driver/remote: config: a KEK is %d bytes, want 32", len(k))
		}
	}
	if c.Prefix = strings.Trim(c.Prefix, "/"); c.Prefix != "" {
		c.Prefix += "/"
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.ReaderIdle == 0 {
		c.ReaderIdle = DefaultReaderIdle
	}
	def(&c.SmallShardMax, DefaultSmallShardMax)
	def(&c.PartSize, DefaultPartSize)
	def(&c.MaxBatchBytes, DefaultMaxBatchBytes)
	def(&c.MaxQueueBytes, 2*c.MaxBatchBytes)
	if c.PartSize < MinPartSize {
		return fmt.Errorf("driver/remote: config: PartSize %d below %d", c.PartSize, MinPartSize)
	}
	if c.KEK != nil || len(c.OldKEKs) > 0 {
		// Every part but the last of an encrypted shard holds whole chunks.
		c.PartSize = (c.PartSize + encChunk - 1) / encChunk * encChunk
	}
	c.SmallShardMax = min(c.SmallShardMax, c.PartSize)
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BreakerThreshold <= 0 {
		c.BreakerThreshold = DefaultBreakerThreshold
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	dur(&c.OpTimeout, DefaultOpTimeout)
	dur(&c.AttemptTimeout, DefaultAttemptTimeout)
	dur(&c.ProgressTimeout, DefaultProgressTimeout)
	dur(&c.MaxBackoff, DefaultMaxBackoff)
	dur(&c.BreakerCooldown, DefaultBreakerCooldown)
	dur(&c.BreakerMaxCooldown, DefaultBreakerMaxCooldown)
	dur(&c.ProbeQuiet, ProbeQuiet)
	if c.VerifyEvery == 0 {
		c.VerifyEvery = DefaultVerifyEvery
	}
	if c.CompactInterval == 0 {
		c.CompactInterval = DefaultCompactInterval
	}
	if c.SnapshotEvery <= 0 {
		c.SnapshotEvery = DefaultSnapshotEvery
	}
	if c.CompactRatio <= 0 || c.CompactRatio > 1 {
		c.CompactRatio = DefaultCompactRatio
	}
	def(&c.CompactMinReclaim, DefaultCompactMinReclaim)
	return nil
}

// recItem is one record of the in-memory index. Data is never modified
// once stored.
type recItem struct {
	key     string
	version driver.Version
	data    []byte
}

func recLess(a, b recItem) bool { return a.key < b.key }

// shardLoc says where a committed shard's bytes are.
type shardLoc struct {
	obj    string // full object key: a log object (inline) or the shard's own object
	off    int64  // offset in obj
	size   int64
	inline bool
}

// Driver is a driver.Driver on a bucket prefix of an S3-compatible
// service. Create it with Open or Attach and release it with Close.
type Driver struct {
	cfg      Config
	log      *slog.Logger
	be       *backend
	cnt      counters
	instance string
	seq      atomic.Uint64

	closeOnce   sync.Once
	closing     chan struct{}
	closeCtx    context.Context // cancelled by Close
	closeCancel context.CancelFunc
	bg          sync.WaitGroup
	bgMu        sync.Mutex // held by goBG while it adds to bg, and by Close while it closes closing

	// loaded is set once the index has been read from the bucket;
	// until then every call is driver.ErrOffline (loadErr says why).
	loaded  atomic.Bool
	loadMu  sync.Mutex
	loadErr error

	mu       sync.RWMutex // guards the index below
	records  *btree.BTreeG[recItem]
	shards   map[driver.Shard]shardLoc
	segs     map[string]*segment // every log object in the bucket, by key
	applied  uint64              // sequence of the last log object applied
	snapSeq  uint64              // sequence the current snapshot covers (0: none)
	snapKey  string
	since    int // log objects written or replayed past the snapshot
	recBytes int64
	shBytes  int64
	// journaling is set while lost's reload reads the bucket: each
	// flush then adds what it applied to journal, which the reload
	// applies to the index it read before swapping it in (lost.go).
	journaling bool
	journal    []journaled

	rmu       sync.Mutex // guards rnext, rbusy, rreads and rlast: a reader's refreshes (readonly.go)
	rnext     *round     // the refresh reads wait for that has not begun
	rbusy     bool       // a refreshLoop runs
	rreads    int        // reads in progress
	rlast     time.Time  // when the last read began
	refreshes atomic.Uint64
	reloads   atomic.Uint64
	drops     atomic.Uint64

	compactMu  sync.Mutex // serialises compactions
	pendingDel []string   // log objects to delete on the next compaction (under compactMu)

	flushMu    sync.Mutex              // held by each flush, and by lost's reload while it starts its journal (lost.go)
	lostMu     sync.Mutex              // one lost (a probe, then its reload), or verification step, at a time; guards vpass and vnext
	lrun       atomic.Pointer[lostRun] // the reload after format.json was lost, while it runs (lost.go)
	formatSeen atomic.Int64            // unix nanoseconds of Probe's last HEAD of format.json that answered
	lostCount  atomic.Uint64

	vpass    *verifyPass // the verification in progress (verify.go); nil: none
	vnext    time.Time   // when the next verification may begin
	vrewrite *rewrite    // the snapshot verification writes again on closeCtx; nil: none (under lostMu)
	// dropped holds the large-shard objects whose shards were deleted
	// from the index as lost, with when (under lostMu): their objects are
	// left (review 28r M2); one that a later pass lists was there after
	// all, and goes (verify.go, review 28r2).
	dropped      map[string]time.Time
	verifyPasses atomic.Uint64
	lostObjects  atomic.Uint64 // objects verification found lost

	cmu      sync.Mutex // guards queue, qbytes, line and flushing
	queue    []*op
	qbytes   int64 // the cost of the queued ops
	flushing bool
	// line holds the callers waiting for room in the queue, in arrival
	// order, each as the channel (chan struct{}, buffer 1) roomMade
	// signals when it is the head and may fit.
	line list.List
}

var _ driver.Driver = (*Driver)(nil)

// Open opens the drive on c's bucket prefix, formatting it on first use,
// and reads its index from the bucket. It fails if the backend cannot be
// reached.
func Open(ctx context.Context, c Config) (*Driver, error) {
	d, err := newDriver(c)
	if err != nil {
		return nil, err
	}
	if err := d.load(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Attach is Open for a server: if the backend cannot be reached, or its
// format.json is foreign, the Driver is returned offline (every call
// failing with driver.ErrOffline, Err saying why) and loads in the
// background once the backend answers. Only a bad Config is an error.
func Attach(ctx context.Context, c Config) (*Driver, error) {
	d, err := newDriver(c)
	if err != nil {
		return nil, err
	}
	if err := d.load(ctx); err != nil {
		d.log.Error("remote drive offline: cannot load its index", "err", err)
	}
	return d, nil
}

func newDriver(c Config) (*Driver, error) {
	if err := c.setDefaults(); err != nil {
		return nil, err
	}
	if c.ReadOnly {
		c.Existing = true
		c.Fence = FenceFunc(func(context.Context) error { return ErrReadOnly })
	}
	var inst [4]byte
	rand.Read(inst[:])
	d := &Driver{
		cfg:      c,
		log:      c.Logger.With("drive", string(c.ID), "bucket", c.Bucket, "prefix", c.Prefix),
		instance: hex.EncodeToString(inst[:]),
		closing:  make(chan struct{}),
		loadErr:  errors.New("not loaded yet"),
	}
	d.resetIndex()
	d.closeCtx, d.closeCancel = context.WithCancel(context.Background())
	d.be = &backend{
		s3: newClient(&d.cfg, &d.cnt), bucket: c.Bucket, sem: make(chan struct{}, c.MaxConcurrent),
		br: newBreaker(c.BreakerThreshold, c.BreakerCooldown, c.BreakerMaxCooldown), timeout: c.OpTimeout,
		cnt: &d.cnt, closed: d.closing, fence: c.Fence, prefix: c.Prefix,
	}
	d.bg.Go(d.probeLoop)
	d.bg.Go(d.compactLoop)
	if c.ReadOnly && c.ReaderIdle > 0 {
		d.rlast = time.Now()
		d.bg.Go(d.idleLoop)
	}
	return d, nil
}

// errFenceWait bounds how long Err waits on Config.Fence.
const errFenceWait = 200 * time.Millisecond

// Err returns why the drive is offline, or nil.
func (d *Driver) Err() error {
	if d.loaded.Load() {
		if d.be.br.isOpen() {
			return errBreakerOpen
		}
		if d.cfg.Fence != nil && !d.cfg.ReadOnly {
			// Err is a status (metrics, logs): it does not wait long on a
			// fence that has to confirm its permission first.
			ctx, cancel := context.WithTimeout(context.Background(), errFenceWait)
			defer cancel()
			if err := d.cfg.Fence.Fence(ctx); err != nil {
				return fmt.Errorf("%w: %w", ErrFenced, err)
			}
		}
		return nil
	}
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	return d.loadErr
}

// Stats returns the requests and bytes sent to the backend so far.
func (d *Driver) Stats() Stats {
	c := &d.cnt
	d.be.br.mu.Lock()
	opens := d.be.br.opens
	d.be.br.mu.Unlock()
	return Stats{Puts: c.puts.Load(), Posts: c.posts.Load(), Gets: c.gets.Load(), Lists: c.lists.Load(), Heads: c.heads.Load(),
		Deletes: c.deletes.Load(), BytesSent: c.sent.Load(), BytesRecv: c.recv.Load(), Retries: c.retries.Load(),
		Failures: c.failures.Load(), Opens: opens}
}

// format is the content of format.json.
type format struct {
	Version   int            `json:"version"`
	ClusterID string         `json:"cluster_id"`
	DriveID   driver.DriveID `json:"drive_id"`
	Enc       *encFormat     `json:"enc,omitempty"` // an encrypted drive's wrapped data key (crypt.go)
}

// formatJSON is format.json for this drive, with the wrapped data key it
// holds if it is encrypted (lost() writes the same one again).
func (d *Driver) formatJSON() []byte {
	f := format{Version: formatVersion, ClusterID: d.cfg.ClusterID, DriveID: d.cfg.ID}
	if k := d.be.keys.Load(); k != nil {
		f.Enc = &k.format
	}
	b, _ := json.Marshal(f)
	return b
}

// Encrypted reports whether the drive is encrypted at the provider (see
// crypt.go); false until it is loaded.
func (d *Driver) Encrypted() bool { return d.be.keys.Load() != nil }

const formatVersion = 1

func (d *Driver) key(rel string) string { return d.cfg.Prefix + rel }

// load checks or writes format.json and replays the log objects into the
// index. It does nothing once loaded.
func (d *Driver) load(ctx context.Context) (err error) {
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	if d.loaded.Load() {
		return nil
	}
	defer func() {
		if err != nil {
			d.loadErr = fmt.Errorf("driver/remote: open %s/%s: %w", d.cfg.Bucket, d.cfg.Prefix, err)
			err = d.loadErr
		}
	}()
	if err := d.checkFormat(ctx); err != nil {
		return err
	}
	if d.cfg.OnFormat != nil {
		d.cfg.OnFormat(d.Encrypted())
	}
	d.resetIndex() // what an earlier attempt read
	maxSeq, nlogs, err := d.loadIndex(ctx)
	if err != nil {
		return err
	}
	if !d.cfg.ReadOnly {
		if maxSeq, err = d.removeOrphans(ctx, maxSeq); err != nil {
			return err
		}
	}
	d.seq.Store(maxSeq)
	d.applied = maxSeq
	d.loadErr = nil
	d.loaded.Store(true)
	d.log.Info("remote drive opened", "log_objects", nlogs, "records", d.records.Len(), "shards", len(d.shards), "shard_bytes", d.shBytes, "read_only", d.cfg.ReadOnly)
	return nil
}

// loadIndex reads the index from the bucket into d's (empty) index: the
// newest snapshot, then the log objects after it in sequence order. It
// returns the highest sequence it saw and the number of log objects.
//
// The log objects are listed before the snapshots: a compaction writes a
// snapshot before it deletes the log objects the snapshot covers, so a log
// object missing from the listing is covered by a snapshot the second
// listing shows. An object deleted between the listing and its GET
// (a newer snapshot covers it) fails the load with driver.ErrNotFound;
// the caller loads again.
func (d *Driver) loadIndex(ctx context.Context) (uint64, int, error) {
	logs, err := d.be.list(ctx, d.key("log/"))
	if err != nil {
		return 0, 0, err
	}
	snaps, err := d.be.list(ctx, d.key("snap/"))
	if err != nil {
		return 0, 0, err
	}
	return d.loadListed(ctx, logs, snaps, math.MaxUint64)
}

// loadListed is loadIndex from listings of log/ and snap/ taken in that
// order, ignoring the objects past sequence upTo.
func (d *Driver) loadListed(ctx context.Context, logs, snaps []object, upTo uint64) (uint64, int, error) {
	var maxSeq uint64
	for _, o := range logs {
		if seq, ok := seqOf(o.Key); ok && seq <= upTo {
			d.segs[o.Key] = &segment{seq: seq, size: o.Size}
			maxSeq = max(maxSeq, seq)
		}
	}
	// The newest snapshot holds the index as of its sequence: only the
	// log objects after it are replayed.
	for i := len(snaps) - 1; i >= 0; i-- {
		seq, ok := seqOf(snaps[i].Key)
		if !ok || seq > upTo {
			continue
		}
		if err := d.loadSnapshot(ctx, snaps[i]); err != nil {
			return 0, 0, err
		}
		d.snapSeq, d.snapKey = seq, snaps[i].Key
		maxSeq = max(maxSeq, seq)
		break
	}
	var todo []object
	for _, o := range logs {
		if seq, ok := seqOf(o.Key); ok && seq > d.snapSeq && seq <= upTo {
			todo = append(todo, o)
		}
	}
	if err := d.replayAll(ctx, todo); err != nil {
		return 0, 0, err
	}
	return maxSeq, len(logs), nil
}

// replayAll applies log objects logs in their order, reading their
// indexes half of Config.MaxConcurrent at a time (a round of that many
// at once, so that no more indexes than that are held): a reload of
// many log objects over a slow link takes a fraction of one GET after
// another (remote 29).
func (d *Driver) replayAll(ctx context.Context, logs []object) error {
	par := max(1, d.cfg.MaxConcurrent/2)
	for len(logs) > 0 {
		round := logs[:min(len(logs), par)]
		logs = logs[len(round):]
		idx, ns := make([][]entry, len(round)), make([]int, len(round))
		g, gctx := errgroup.WithContext(ctx)
		for i, o := range round {
			g.Go(func() (err error) {
				idx[i], ns[i], err = d.readIndex(gctx, o)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		d.mu.Lock()
		for i, o := range round {
			for j := range idx[i] {
				d.apply(&idx[i][j], o.Key, int64(logHeader+ns[i]))
			}
			d.since++
		}
		d.mu.Unlock()
	}
	return nil
}

// removeOrphans deletes the objects under obj/ that the index does not
// reference and returns maxSeq raised to their sequences.
func (d *Driver) removeOrphans(ctx context.Context, maxSeq uint64) (uint64, error) {
	objs, err := d.be.list(ctx, d.key("obj/"))
	if err != nil {
		return 0, err
	}
	referenced := map[string]bool{}
	for _, l := range d.shards {
		if !l.inline {
			referenced[l.obj] = true
		}
	}
	for _, o := range objs {
		if !shardObject.MatchString(strings.TrimPrefix(o.Key, d.cfg.Prefix)) {
			continue // not a shard object's name: not this drive's to remove (another drive's prefix nested here)
		}
		if seq, ok := seqOf(o.Key); ok {
			maxSeq = max(maxSeq, seq)
		}
		if !referenced[o.Key] {
			// A crash between upload and commit, or a lost delete.
			if err := d.be.delete(ctx, o.Key); err != nil && !errors.Is(err, driver.ErrNotFound) {
				d.log.Warn("remote drive: cannot remove an orphan shard object", "object", o.Key, "err", err)
			}
		}
	}
	return maxSeq, nil
}

// resetIndex empties the index.
func (d *Driver) resetIndex() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records, d.shards, d.segs = btree.NewG(32, recLess), map[driver.Shard]shardLoc{}, map[string]*segment{}
	d.applied, d.snapSeq, d.snapKey, d.since, d.recBytes, d.shBytes = 0, 0, "", 0, 0, 0
}

// seqOf extracts the sequence number of a log or shard object key
// (".../<16 hex>-<instance>").
// shardObject matches the names of large shard objects under the
// prefix (shard.go objectKey).
var shardObject = regexp.MustCompile(`^obj/[0-9a-f]{4,8}/[0-9a-f]+-[0-9a-f]{16}-[0-9a-f]{8}$`)

func seqOf(key string) (uint64, bool) {
	i := strings.LastIndexByte(key, '-')
	if i < 16 {
		return 0, false
	}
	var v uint64
	if _, err := fmt.Sscanf(key[i-16:i], "%016x", &v); err != nil {
		return 0, false
	}
	return v, true
}

func (d *Driver) checkFormat(ctx context.Context) error {
	fkey := d.key("format.json")
	d.be.keys.Store(nil)
	size, err := d.be.head(ctx, fkey)
	if errors.Is(err, driver.ErrNotFound) && d.cfg.Reformat && !d.cfg.ReadOnly {
		// The operator's word is for a format.json the bucket lost, not
		// for one a flaky provider failed to show once (the flag may be
		// left on, the URL may name another drive's prefix): a second
		// HEAD lostConfirm later must miss it too, as lost() asks, and
		// the write creates it only if it is still absent, so that
		// another drive's format.json is never replaced (review 28r2).
		select {
		case <-time.After(lostConfirm):
		case <-ctx.Done():
			return ctx.Err()
		}
		if size, err = d.be.head(ctx, fkey); errors.Is(err, driver.ErrNotFound) {
			d.log.Error("remote drive: format.json is missing; writing it again over what the prefix holds, as --remote-reformat asks: what the bucket lost is refilled by the healer", "object", fkey)
			if err := d.recoverKey(ctx); err != nil {
				return fmt.Errorf("%s is missing: %w", fkey, err)
			}
			if err := d.be.putIfAbsent(ctx, fkey, d.formatJSON()); !errors.Is(err, errPrecondition) {
				return err
			}
			// It was there after all: check it like any other.
			d.be.keys.Store(nil)
			size, err = d.be.head(ctx, fkey)
		}
	}
	switch {
	case errors.Is(err, driver.ErrNotFound) && d.cfg.Existing:
		return fmt.Errorf("%s is missing: this is not the drive %s (wrong bucket or prefix?), or the bucket lost it (then restart once with --remote-reformat); refusing to format it", fkey, d.cfg.ID)
	case errors.Is(err, driver.ErrNotFound):
		// A prefix holding anything else is not ours to format.
		if objs, err := d.be.list(ctx, d.cfg.Prefix); err != nil {
			return err
		} else if len(objs) > 0 {
			return fmt.Errorf("%s is missing but the prefix holds %d objects (%s...); refusing to format (if the bucket lost this drive's format.json, restart once with --remote-reformat)", fkey, len(objs), objs[0].Key)
		}
		d.newKey()
		return d.be.put(ctx, fkey, d.formatJSON())
	case err != nil:
		return err
	case size <= 0 || size > 1<<16:
		return fmt.Errorf("%s: %d bytes: %w", fkey, size, driver.ErrCorrupt)
	}
	b, err := d.be.getBytes(ctx, fkey, 0, size)
	if err != nil {
		return err
	}
	var f format
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%s: %w: %v", fkey, driver.ErrCorrupt, err)
	}
	restamp := false
	switch {
	case f.Version != formatVersion:
		return fmt.Errorf("%s: unsupported format version %d", fkey, f.Version)
	case f.ClusterID != d.cfg.ClusterID && f.ClusterID == d.cfg.Restamp && f.DriveID == d.cfg.ID && !d.cfg.ReadOnly:
		restamp = true
	case f.ClusterID != d.cfg.ClusterID:
		return fmt.Errorf("%s: cluster id %q, configured %q: %w", fkey, f.ClusterID, d.cfg.ClusterID, driver.ErrForeignDrive)
	case f.DriveID != d.cfg.ID:
		return fmt.Errorf("%s: drive id %q, configured %q", fkey, f.DriveID, d.cfg.ID)
	}
	if f.Enc == nil && d.cfg.RequireEncrypted && !(d.cfg.Encrypt && d.cfg.KEK != nil && !d.cfg.ReadOnly) {
		return fmt.Errorf("%s: %w", fkey, ErrDowngraded)
	}
	rewrap, err := d.useKey(f.Enc)
	if err != nil {
		return fmt.Errorf("%s: %w", fkey, err)
	}
	if f.Enc == nil && d.cfg.KEK != nil {
		if d.cfg.Encrypt && !d.cfg.ReadOnly {
			return d.convert(ctx, fkey)
		}
		d.log.Warn("remote drive: stored in plaintext at the provider (formatted before encryption); to encrypt it, restart once with --remote-encrypt naming it: it is formatted afresh, encrypted, and the healer refills it")
	}
	switch {
	case restamp:
		if err := d.be.put(ctx, fkey, d.formatJSON()); err != nil {
			return fmt.Errorf("%s: restamp from cluster %q: %w", fkey, f.ClusterID, err)
		}
		d.log.Warn("remote drive: format.json re-stamped for this cluster", "from", f.ClusterID, "to", d.cfg.ClusterID)
	case rewrap:
		if err := d.be.put(ctx, fkey, d.formatJSON()); err != nil {
			return fmt.Errorf("%s: rewrap the data key under the KEK: %w", fkey, err)
		}
		d.log.Warn("remote drive: data key rewrapped under the current KEK", "from_kek_id", f.Enc.KEKID, "to_kek_id", d.be.keys.Load().format.KEKID)
	}
	return nil
}

// newKey gives a drive being formatted a new data key, wrapped under the
// KEK: none without a KEK (plaintext).
func (d *Driver) newKey() {
	if d.cfg.KEK == nil {
		d.be.keys.Store(nil)
		return
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	d.be.keys.Store(newKeyring(dek, wrapDEK(d.cfg.KEK, dek, d.cfg.ID), kekID(d.cfg.KEK)))
}

// useKey unwraps the data key of format.json's enc (nil: a plaintext
// drive) and installs it; rewrap reports one unwrapped under an old KEK
// and wrapped again under the KEK, for the caller to write (never by a
// ReadOnly Driver).
func (d *Driver) useKey(enc *encFormat) (rewrap bool, err error) {
	if enc == nil {
		return false, nil
	}
	if enc.Scheme != encScheme || enc.Chunk != encChunk {
		return false, fmt.Errorf("unsupported encryption scheme %q, chunk %d (this build: %q, %d)", enc.Scheme, enc.Chunk, encScheme, encChunk)
	}
	kid, err := hex.DecodeString(enc.KEKID)
	if err != nil || len(kid) != kekIDLen {
		return false, fmt.Errorf("kek_id %q: %w", enc.KEKID, driver.ErrCorrupt)
	}
	return d.installKey(enc.DEK, [kekIDLen]byte(kid))
}

// installKey unwraps wrapped (under the KEK of id kid) and installs it,
// wrapped again under the KEK if an old one opened it and the Driver may
// write (then rewrap).
func (d *Driver) installKey(wrapped []byte, kid [kekIDLen]byte) (rewrap bool, err error) {
	dek, old, err := unwrapDEK(&d.cfg, wrapped, hex.EncodeToString(kid[:]))
	if err != nil {
		return false, err
	}
	if old && d.cfg.KEK != nil && !d.cfg.ReadOnly {
		d.be.keys.Store(newKeyring(dek, wrapDEK(d.cfg.KEK, dek, d.cfg.ID), kekID(d.cfg.KEK)))
		return true, nil
	}
	d.be.keys.Store(newKeyring(dek, wrapped, kid))
	return false, nil
}

// recoverKey finds the data key of a drive whose format.json the bucket
// lost (Reformat): in the header of an object left under log/, snap/ or
// obj/ (one ranged GET), unwrapped with the KEK or an old one. The newest
// log object is read first: its header has the data key wrapped as
// format.json last had it (after a KEK rotation, older objects keep the
// old wrapping). A prefix holding none gets a new key; one whose objects
// are plaintext stays so.
func (d *Driver) recoverKey(ctx context.Context) error {
	if d.cfg.KEK == nil && len(d.cfg.OldKEKs) == 0 {
		return nil
	}
	for _, p := range []string{"log/", "snap/", "obj/"} {
		objs, err := d.be.list(ctx, d.key(p))
		if err != nil {
			return err
		}
		slices.Reverse(objs)
		for _, o := range objs {
			if _, ok := seqOf(o.Key); !ok || o.Size < int64(encHeader) {
				continue
			}
			h, err := d.be.getRaw(ctx, o.Key, 0, int64(encHeader))
			if err != nil {
				return err
			}
			kid, wrapped, ok := parseEncHeader(h)
			if !ok {
				if d.cfg.RequireEncrypted {
					return fmt.Errorf("the objects left are plaintext (%s): %w", o.Key, ErrDowngraded)
				}
				// The newest object may be the provider's: the drive is
				// plaintext only if no other object is encrypted (review
				// 30e: a planted plaintext object made recovery write a
				// plaintext format.json over an encrypted drive).
				if enc, err := d.anyEncrypted(ctx); err != nil {
					return err
				} else if enc != "" {
					return fmt.Errorf("the newest object %s is plaintext but %s is encrypted: not writing a plaintext format.json over an encrypted drive: %w", o.Key, enc, ErrDowngraded)
				}
				d.log.Warn("remote drive: the objects left are plaintext: format.json is written again without encryption", "object", o.Key)
				return nil
			}
			id, _ := hex.DecodeString(kid)
			if _, err := d.installKey(append([]byte{}, wrapped...), [kekIDLen]byte(id)); err != nil {
				return fmt.Errorf("recovering the data key from %s: %w", o.Key, err)
			}
			d.log.Warn("remote drive: data key recovered from an object's header", "object", o.Key, "kek_id", kid)
			return nil
		}
	}
	d.newKey()
	return nil
}

// anyEncrypted returns an object of the drive's whose header says it is
// encrypted, among the newest few of log/ and snap/ and some of obj/ (a
// ranged GET of the header each), or "".
func (d *Driver) anyEncrypted(ctx context.Context) (string, error) {
	for _, p := range []string{"log/", "snap/", "obj/"} {
		objs, _, err := d.be.listPage(ctx, d.key(p), "")
		if err != nil {
			return "", err
		}
		slices.Reverse(objs)
		for _, o := range objs[:min(len(objs), 8)] {
			if _, ok := seqOf(o.Key); !ok || o.Size < int64(encHeader) {
				continue
			}
			h, err := d.be.getRaw(ctx, o.Key, 0, int64(encHeader))
			if err != nil {
				return "", err
			}
			if _, _, ok := parseEncHeader(h); ok {
				return o.Key, nil
			}
		}
	}
	return "", nil
}

// convert formats a plaintext drive afresh, encrypted (Encrypt with a
// KEK): it deletes the drive's objects, then writes format.json with a
// new data key; the healer refills the drive. A failure leaves the
// plaintext format.json, and the next Open with Encrypt goes on.
func (d *Driver) convert(ctx context.Context, fkey string) error {
	d.log.Warn("remote drive: plaintext drive reformatted encrypted, as --remote-encrypt asks: its objects are deleted and the healer refills it")
	for _, p := range []string{"log/", "snap/", "obj/"} {
		objs, err := d.be.list(ctx, d.key(p))
		if err != nil {
			return err
		}
		for _, o := range objs {
			if _, ok := seqOf(o.Key); !ok || p == "obj/" && !shardObject.MatchString(strings.TrimPrefix(o.Key, d.cfg.Prefix)) {
				continue
			}
			if err := d.be.delete(ctx, o.Key); err != nil && !errors.Is(err, driver.ErrNotFound) {
				return fmt.Errorf("reformat encrypted: %w", err)
			}
		}
	}
	d.newKey()
	if err := d.be.put(ctx, fkey, d.formatJSON()); err != nil {
		d.be.keys.Store(nil)
		return fmt.Errorf("reformat encrypted: %w", err)
	}
	return nil
}

// indexPeek is how much of a log object Open reads first: most indexes
// fit, so one GET reads each.
const indexPeek = 64 << 10

// replay reads log object o's index and applies it.
func (d *Driver) replay(ctx context.Context, o object) (uint64, error) {
	seq, ok := seqOf(o.Key)
	if !ok {
		d.log.Warn("remote drive: ignoring a foreign object under log/", "object", o.Key)
		return 0, nil
	}
	entries, n, err := d.readIndex(ctx, o)
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range entries {
		d.apply(&entries[i], o.Key, int64(logHeader+n))
	}
	return seq, nil
}

// loadSnapshot applies snapshot object o.
func (d *Driver) loadSnapshot(ctx context.Context, o object) error {
	entries, _, err := d.readIndex(ctx, o)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range entries {
		d.apply(&entries[i], o.Key, 0)
	}
	return nil
}

// readIndex reads and decodes the index of log or snapshot object o; n is
// its length.
func (d *Driver) readIndex(ctx context.Context, o object) ([]entry, int, error) {
	head, err := d.be.getBytes(ctx, o.Key, 0, min(int64(indexPeek), o.Size))
	if err != nil {
		return nil, 0, err
	}
	n, sum, err := parseHeader(head)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", o.Key, err)
	}
	if logHeader+n > len(head) {
		rest, err := d.be.getBytes(ctx, o.Key, int64(len(head)), int64(logHeader+n-len(head)))
		if err != nil {
			return nil, 0, err
		}
		head = append(head, rest...)
	}
	if logHeader+n > len(head) {
		return nil, 0, fmt.Errorf("%s: %w", o.Key, errShort)
	}
	entries, err := decodeIndex(head[logHeader:logHeader+n], sum)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", o.Key, err)
	}
	return entries, n, nil
}

// apply applies one committed entry of log object logKey (whose data
// section starts at base) to the index, under d.mu. It returns the object
// of a large shard it replaced or deleted, to be removed.
func (d *Driver) apply(e *entry, logKey string, base int64) (orphan string) {
	switch e.op {
	case opRecPut:
		cur, ok := d.records.Get(recItem{key: e.key})
		if ok && cur.version.Compare(e.version) > 0 {
			return "" // only in replay of an unacknowledged write
		}
		if ok {
			d.recBytes -= int64(len(cur.key) + driver.VersionSize + len(cur.data))
		}
		d.records.ReplaceOrInsert(recItem{key: e.key, version: e.version, data: e.data})
		d.recBytes += int64(len(e.key) + driver.VersionSize + len(e.data))
	case opRecDel:
		if cur, ok := d.records.Get(recItem{key: e.key}); ok && cur.version == e.version {
			d.records.Delete(cur)
			d.recBytes -= int64(len(cur.key) + driver.VersionSize + len(cur.data))
		}
	case opShardInline, opShardObject, opShardDel, opShardRef:
		if old, ok := d.shards[e.shard]; ok {
			d.shBytes -= old.size
			if old.inline {
				if sg := d.segs[old.obj]; sg != nil {
					sg.live -= old.size
				}
			} else {
				orphan = old.obj
			}
			delete(d.shards, e.shard)
		}
		switch e.op {
		case opShardRef:
			obj := d.key(e.key)
			d.shards[e.shard] = shardLoc{obj: obj, off: e.off, size: e.size, inline: e.inline}
			if sg := d.segs[obj]; e.inline && sg != nil {
				sg.live += e.size
			}
		case opShardInline:
			d.shards[e.shard] = shardLoc{obj: logKey, off: base + e.off, size: e.size, inline: true}
			if sg := d.segs[logKey]; sg != nil {
				sg.live += e.size
			}
		case opShardObject:
			obj := d.key(e.key)
			d.shards[e.shard] = shardLoc{obj: obj, size: e.size}
			if obj == orphan {
				orphan = ""
			}
		default:
			return orphan
		}
		d.shBytes += e.size
	}
	return orphan
}

// begin checks ctx and that the drive is loaded and open.
func (d *Driver) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-d.closing:
		return fmt.Errorf("%w: closed", driver.ErrOffline)
	default:
	}
	if !d.loaded.Load() {
		return fmt.Errorf("%w: %w", driver.ErrOffline, d.Err())
	}
	return nil
}

// Info returns the drive's identity and usage from memory: it costs no
// request. It fails with driver.ErrOffline while the index is not loaded
// or the circuit breaker is open. Total and Free are 0 (unknown).
func (d *Driver) Info(ctx context.Context) (driver.Info, error) {
	if err := d.begin(ctx); err != nil {
		return driver.Info{}, fmt.Errorf("driver/remote: info: %w", err)
	}
	if d.be.br.isOpen() {
		return driver.Info{}, fmt.Errorf("driver/remote: info: %w: %w", driver.ErrOffline, errBreakerOpen)
	}
	if d.cfg.ReadOnly {
		return driver.Info{}, fmt.Errorf("driver/remote: info: %w: %w", driver.ErrOffline, ErrReadOnly)
	}
	if d.cfg.Fence != nil {
		if err := d.cfg.Fence.Fence(ctx); err != nil {
			return driver.Info{}, fmt.Errorf("driver/remote: info: %w: %w: %w", driver.ErrOffline, ErrFenced, err)
		}
	}
	d.mu.RLock()
	used := d.recBytes + d.shBytes
	d.mu.RUnlock()
	return driver.Info{ID: d.cfg.ID, ClusterID: d.cfg.ClusterID, Class: "remote", Usage: driver.Usage{Used: uint64(max(used, 0))}}, nil
}

// Probe checks the backend with a HEAD of format.json (loading the index
// first if Attach could not) and closes the circuit breaker when it
// answers. While the breaker is closed and the backend answered a call,
// and the HEAD, in the last ProbeQuiet, it sends nothing: a periodic
// health check costs a busy drive one request per ProbeQuiet. A backend
// that answers without format.json lost the drive's data (see lost); a
// HEAD that answers is followed by a step of the verification that finds
// a loss sparing format.json (verify.go).
func (d *Driver) Probe(ctx context.Context) error {
	select {
	case <-d.closing:
		return fmt.Errorf("driver/remote: probe: %w: closed", driver.ErrOffline)
	default:
	}
	if !d.loaded.Load() {
		return d.load(ctx)
	}
	now := time.Now()
	if q := d.cfg.ProbeQuiet; !d.be.br.isOpen() && now.Sub(time.Unix(0, d.be.lastOK.Load())) < q && now.Sub(time.Unix(0, d.formatSeen.Load())) < q {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.OpTimeout)
	defer cancel()
	_, err := d.be.s3HeadDirect(cctx, d.key("format.json"))
	if err != nil && isNotFound(err) && !d.cfg.ReadOnly {
		d.be.answered(false)
		return d.lost(ctx)
	}
	if err != nil {
		if ctx.Err() == nil {
			d.cnt.failures.Add(1)
		}
		return fmt.Errorf("driver/remote: probe: %w: %w", driver.ErrOffline, err)
	}
	if d.be.br.isOpen() {
		d.log.Info("remote drive: backend answers again; circuit breaker closed")
	}
	d.be.answered(true)
	d.formatSeen.Store(now.UnixNano())
	return d.verifyStep(ctx)
}

// lostConfirm is how long lost waits before the HEAD that confirms a
// missing format.json.
const lostConfirm = 500 * time.Millisecond

// Losses returns how many times Probe found the drive's format.json gone
// and reloaded the index (see lost).
func (d *Driver) Losses() uint64 { return d.lostCount.Load() }

// ProbeQuiet is how recent an answered call, and Probe's last HEAD of
// format.json, make Probe skip its HEAD: a healthy drive costs one HEAD
// per ProbeQuiet, which finds the loss of its objects (see lost).
const ProbeQuiet = 30 * time.Second

// probeLoop loads an offline drive and probes an open breaker, at the
// breaker's cooldown, until Close.
func (d *Driver) probeLoop() {
	t := time.NewTicker(min(d.cfg.BreakerCooldown, time.Second))
	defer t.Stop()
	ctx := d.closeCtx
	// Load attempts back off like the breaker: a backend that stays down
	// (or a foreign bucket) costs a few requests a minute, not a second.
	lastLoad, wait := time.Now(), d.cfg.BreakerCooldown
	for {
		select {
		case <-d.closing:
			return
		case <-t.C:
		}
		switch {
		case !d.loaded.Load():
			if time.Since(lastLoad) >= wait {
				lastLoad = time.Now()
				if err := d.load(ctx); err == nil {
					d.log.Info("remote drive: backend reachable; index loaded")
				} else {
					wait = min(2*wait, d.cfg.BreakerMaxCooldown)
				}
			}
		case d.be.br.due():
			d.Probe(ctx)
		}
	}
}

// Close stops the background work. Calls afterwards fail with
// driver.ErrOffline; writes in progress are aborted by their callers.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() {
		d.bgMu.Lock()
		close(d.closing)
		d.bgMu.Unlock()
		d.closeCancel()
	})
	d.bg.Wait()
	return nil
}

// goBG runs f in a goroutine Close waits for, unless Close has begun
// (then it returns false and f does not run): a goroutine is never
// added to bg while Close waits for it with nothing left (which
// sync.WaitGroup forbids).
func (d *Driver) goBG(f func()) bool {
	d.bgMu.Lock()
	defer d.bgMu.Unlock()
	select {
	case <-d.closing:
		return false
	default:
	}
	d.bg.Go(f)
	return true
}

// cloneData returns a copy of b that is never nil.
func cloneData(b []byte) []byte {
	return append([]byte{}, b...)
}
