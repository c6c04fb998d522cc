package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/peer"
	"github.com/vaultaire/vaultaire/placement"
)

// Fenced map epochs (issue 14.7).
//
// Every write the engine makes through a Topology (DriveIn) carries the
// epoch of the map it was planned under and the placement group it
// writes into (peer.Fence, in the ctx; over the RPC as two headers). The
// drives of every node are wrapped by its Fence, which refuses a write
// whose PG's drive set differs between the map it was planned under and
// the newest map the node knows, with an error matching
// peer.ErrStaleEpoch (and, through the RPC, driver.ErrOffline), and counts
// it (Fence.Refused, the vaultaire_fence_refused_writes_total metric). The
// check runs when a shard write starts and again at its commit, and before
// every record write and delete, so a writer paused with SIGSTOP in the
// middle of a map change cannot land bytes in a PG slot it no longer owns
// once the receiving node has seen the new map. The writer's quorum logic
// takes a refused drive as unavailable: the write fails (S3 503) and is
// retried by the client under the new map. Writes under a multipart
// upload's lease (checkLease) to a map still kept pass even if their PG
// moved: an upload stays in the set it was created in until it is
// completed or aborted, and the lease serialises them.
//
// A write planned under the current map, or under an older one in which
// its PG's drive set is what it is now, passes: a map change fails only
// the in-flight writes it actually moves. A write under a map the node no
// longer keeps (dropped after migration) is refused. A node whose own map
// lags behind an epoch a write already carried waits up to fenceCatchUp
// for its Raft state to catch up before judging an older write, and
// refuses it if it cannot, so a lagging receiver does not take a stale
// write a current one would refuse. Writes without a fence (a single node,
// the scanner's clean-up, older peers) are not fenced.
const fenceCatchUp = 2 * time.Second

// mapSource is what a Fence needs of the Store.
type mapSource interface {
	Map() *placement.Map
	OlderMaps() []*placement.Map
}

// Fence judges the map epochs writes carry against this node's maps (see
// above). Its zero value is not usable: NewFence. It is safe for
// concurrent use.
type Fence struct {
	src     atomic.Pointer[mapSource]
	leases  atomic.Pointer[Store] // upload leases, for writes under one
	seen    atomic.Uint64         // the highest epoch a write carried
	refused atomic.Uint64
	log     *slog.Logger
	logRate rate.Sometimes
}

// NewFence returns a Fence that lets everything through until Use gives
// it the node's maps (the RPC listener starts before the Store opens).
func NewFence(log *slog.Logger) *Fence {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fence{log: log, logRate: rate.Sometimes{First: 10, Interval: time.Second}}
}

// Use makes f judge writes against s's maps.
func (f *Fence) Use(s *Store) {
	var src mapSource = s
	f.src.Store(&src)
	f.leases.Store(s)
}

// Refused returns how many writes f refused since it was made.
func (f *Fence) Refused() uint64 { return f.refused.Load() }

// Check returns nil if the write of ctx may go ahead, or an error matching
// peer.ErrStaleEpoch if its fence is stale.
func (f *Fence) Check(ctx context.Context) error {
	if err := f.checkLease(ctx); err != nil {
		return err
	}
	fc, ok := peer.FenceFrom(ctx)
	if !ok {
		return nil
	}
	for {
		s := f.seen.Load()
		if fc.Epoch <= s || f.seen.CompareAndSwap(s, fc.Epoch) {
			break
		}
	}
	sp := f.src.Load()
	if sp == nil {
		return nil
	}
	src := *sp
	cur := src.Map()
	if cur == nil {
		return nil
	}
	if seen := placement.Epoch(f.seen.Load()); placement.Epoch(fc.Epoch) < seen && cur.Epoch < seen {
		// Another writer knows a newer map than this node: catch up
		// before judging an older write.
		deadline := time.Now().Add(fenceCatchUp)
		for cur.Epoch < seen && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
			cur = src.Map()
		}
		if cur.Epoch < seen && placement.Epoch(fc.Epoch) >= cur.Epoch {
			return f.refuse(fc, fmt.Sprintf("this node's map (epoch %d) lags behind epoch %d another write carried", cur.Epoch, seen))
		}
	}
	e := placement.Epoch(fc.Epoch)
	if e >= cur.Epoch {
		return nil
	}
	var then *placement.Map
	for _, m := range src.OlderMaps() {
		if m.Epoch == e {
			then = m
			break
		}
	}
	_, leased := peer.LeaseFrom(ctx) // checked above: still the upload's lease
	switch {
	case then == nil:
		return f.refuse(fc, fmt.Sprintf("map epoch %d is no longer kept (current %d)", e, cur.Epoch))
	case leased:
		// A multipart upload keeps its placement until it is completed
		// or aborted, and its map stays kept meanwhile (engine Residue
		// counts it): writes to it under its current lease go ahead.
		return nil
	case then.PGCount() != cur.PGCount() || int(fc.PG) >= cur.PGCount():
		return f.refuse(fc, fmt.Sprintf("placement groups changed since epoch %d (current %d)", e, cur.Epoch))
	case !slices.Equal(then.Set(fc.PG), cur.Set(fc.PG)):
		return f.refuse(fc, fmt.Sprintf("PG %d moved since epoch %d (current %d)", fc.PG, e, cur.Epoch))
	}
	return nil
}

// checkLease refuses a write made under a multipart upload's lease (a
// peer.Lease in ctx) once that lease is no longer the upload's: this
// node first applies the Raft index that granted it (waiting up to
// fenceCatchUp), then compares the holder's token.
func (f *Fence) checkLease(ctx context.Context) error {
	l, ok := peer.LeaseFrom(ctx)
	if !ok {
		return nil
	}
	s := f.leases.Load()
	if s == nil {
		return nil
	}
	deadline := time.Now().Add(fenceCatchUp)
	for s.fsm.applied.Load() < l.Index {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return f.refuseLease(l, fmt.Sprintf("this node has not applied the lease's index %d", l.Index))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cur, ok := s.fsm.lease(l.Upload)
	if !ok || cur.Token != l.Token {
		holder := "nobody"
		if ok {
			holder = cur.Node
		}
		return f.refuseLease(l, "the lease is now held by "+holder)
	}
	return nil
}

func (f *Fence) refuseLease(l peer.Lease, why string) error {
	f.refused.Add(1)
	f.logRate.Do(func() {
		f.log.Warn("cluster: refused a write under a lost upload lease", "upload", l.Upload, "why", why)
	})
	return fmt.Errorf("%w: upload %s lease (index %d): %s", peer.ErrStaleEpoch, l.Upload, l.Index, why)
}

// refuse counts and logs a refused write.
func (f *Fence) refuse(fc peer.Fence, why string) error {
	f.refused.Add(1)
	f.logRate.Do(func() {
		f.log.Warn("cluster: refused a write under a stale map epoch", "epoch", fc.Epoch, "pg", fc.PG, "why", why)
	})
	return fmt.Errorf("%w: epoch %d, PG %d: %s", peer.ErrStaleEpoch, fc.Epoch, fc.PG, why)
}

// Wrap returns d with its writes fenced by f. The drives a node serves
// (to its own engine and over the RPC) are wrapped once, by cmd/vaultd.
func (f *Fence) Wrap(d driver.Driver) driver.Driver {
	fd := &fencedDriver{Driver: d, f: f}
	if p, ok := d.(peeker); ok {
		return peekingFenced{fd, p}
	}
	return fd
}

// WrapAll wraps every drive of ds.
func (f *Fence) WrapAll(ds map[placement.DriveID]driver.Driver) map[placement.DriveID]driver.Driver {
	out := make(map[placement.DriveID]driver.Driver, len(ds))
	for id, d := range ds {
		out[id] = f.Wrap(d)
	}
	return out
}

// fencedDriver is a local drive whose writes f judges.
type fencedDriver struct {
	driver.Driver
	f *Fence
}

var _ driver.Driver = (*fencedDriver)(nil)

func (d *fencedDriver) CreateShard(ctx context.Context, s driver.Shard) (driver.ShardWriter, error) {
	if err := d.f.Check(ctx); err != nil {
		return nil, err
	}
	sw, err := d.Driver.CreateShard(ctx, s)
	if err != nil {
		return nil, err
	}
	return &fencedWriter{ShardWriter: sw, f: d.f}, nil
}

func (d *fencedDriver) DeleteShard(ctx context.Context, s driver.Shard) error {
	if err := d.f.Check(ctx); err != nil {
		return err
	}
	return d.Driver.DeleteShard(ctx, s)
}

func (d *fencedDriver) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if err := d.f.Check(ctx); err != nil {
		return driver.Record{}, false, err
	}
	return d.Driver.PutRecord(ctx, r)
}

func (d *fencedDriver) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	if err := d.f.Check(ctx); err != nil {
		return err
	}
	return d.Driver.DeleteRecord(ctx, key, v)
}

// peeker is a drive that answers some record reads from memory
// (driver/local's PeekRecord, which the engine asks before a fan-out).
// The wrappers here have the method only if the drive they wrap has it:
// a drive of another node never answers, and the engine peeks only when
// every drive of a set can (review 29p L2).
type peeker interface {
	PeekRecord(key string) (driver.Record, bool, error)
}

// peekingFenced is a fencedDriver of a drive that peeks (reads are not
// fenced).
type peekingFenced struct {
	*fencedDriver
	p peeker
}

func (d peekingFenced) PeekRecord(key string) (driver.Record, bool, error) {
	return d.p.PeekRecord(key)
}

// fencedWriter checks the fence again at commit: the map may have changed
// while the shard streamed.
type fencedWriter struct {
	driver.ShardWriter
	f *Fence
}

func (w *fencedWriter) Commit(ctx context.Context) error {
	if err := w.f.Check(ctx); err != nil {
		w.ShardWriter.Abort()
		return err
	}
	return w.ShardWriter.Commit(ctx)
}

// epochDriver is a drive as a writer planned it: every write it makes
// carries the fence (map epoch and PG) it was resolved for.
type epochDriver struct {
	driver.Driver
	fc peer.Fence
}

func (d *epochDriver) CreateShard(ctx context.Context, s driver.Shard) (driver.ShardWriter, error) {
	sw, err := d.Driver.CreateShard(peer.WithFence(ctx, d.fc), s)
	if err != nil {
		return nil, err
	}
	return &epochWriter{ShardWriter: sw, fc: d.fc}, nil
}

func (d *epochDriver) DeleteShard(ctx context.Context, s driver.Shard) error {
	return d.Driver.DeleteShard(peer.WithFence(ctx, d.fc), s)
}

func (d *epochDriver) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	return d.Driver.PutRecord(peer.WithFence(ctx, d.fc), r)
}

func (d *epochDriver) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	return d.Driver.DeleteRecord(peer.WithFence(ctx, d.fc), key, v)
}

// peekingEpoch is an epochDriver of a drive that peeks.
type peekingEpoch struct {
	*epochDriver
	p peeker
}

func (d peekingEpoch) PeekRecord(key string) (driver.Record, bool, error) {
	return d.p.PeekRecord(key)
}

type epochWriter struct {
	driver.ShardWriter
	fc peer.Fence
}

func (w *epochWriter) Commit(ctx context.Context) error {
	return w.ShardWriter.Commit(peer.WithFence(ctx, w.fc))
}

// DriveIn returns the Driver of drive id for a write to PG pg planned
// under map m (engine.FencedTopology): its writes carry m's epoch and pg,
// and the drive's node refuses them once pg has moved (fence.go).
func (t *Topology) DriveIn(m *placement.Map, pg uint32, id placement.DriveID) (driver.Driver, error) {
	d, err := t.Drive(id)
	if err != nil || d == nil {
		return d, err
	}
	return withEpoch(d, peer.Fence{Epoch: uint64(m.Epoch), PG: pg}), nil
}

// withEpoch returns d with its writes carrying fc (epochDriver), and
// PeekRecord if d has it.
func withEpoch(d driver.Driver, fc peer.Fence) driver.Driver {
	ed := &epochDriver{Driver: d, fc: fc}
	if p, ok := d.(peeker); ok {
		return peekingEpoch{ed, p}
	}
	return ed
}
