package engine

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/placement"
)

// Coordinator is what the rebalancing loops (RunMigrator, RunScanner)
// need of the replicated metadata store; cluster.Store implements it.
// Implementations must be safe for concurrent use.
type Coordinator interface {
	// IsLeader reports whether this node leads the metadata store now.
	// The loops act only on the leader, so that no key is migrated by
	// two nodes at once.
	IsLeader() bool
	// Map returns the current cluster map, nil before the first.
	Map() *placement.Map
	// OlderMaps returns the maps that preceded the current one, newest
	// first (as MapHistory).
	OlderMaps() []*placement.Map
	// DropMap forgets the older map of epoch.
	DropMap(ctx context.Context, epoch placement.Epoch) error
	// AllContainers returns every tenant's containers, sorted by tenant
	// and name.
	AllContainers(ctx context.Context) ([]ContainerInfo, error)
}

// Settler is an optional interface of a Coordinator that records, per
// container, the epoch from which on the older maps may hold its
// artifacts (ContainerInfo.Settled); cluster.Store implements it. A
// listing must cover the sets of the older maps from that epoch on
// (List). SettleContainers raises every container's but those in except
// to at least epoch; RunMigrator calls it on the leader after a migration
// pass over every container that began once the map of epoch epoch had
// settled and ended clean, and a move of the uploads in progress
// (MoveUploads) after it, leaving out the containers of the uploads that
// failed to move: no key of the others, nor upload in progress, is left
// only in an older map then.
type Settler interface {
	SettleContainers(ctx context.Context, epoch placement.Epoch, except []meta.ContainerRef) error
}

// Migration timing.
const (
	// MapSettle is how long a map must have been current on the leader
	// before an older map may be dropped: every node must have applied it
	// (and stopped writing with the older one) by then.
	MapSettle    = 15 * time.Second
	migrateBatch = 1000 // keys per MigrateAll call
)

// The migrator's timing; tests shorten it.
var (
	// migrateEvery is how often the leader looks for older maps to empty.
	migrateEvery = 2 * time.Second
	mapSettle    = MapSettle
	// residueLogEvery is how often the migrator says that an older map
	// is kept because its drives still hold records to move or remove.
	residueLogEvery = time.Minute
)

// RunMigrator moves data written under older maps into the current map
// (MigrateAll), then, once the map has settled and a pass that began
// after that ended clean, moves the multipart uploads in progress into
// the current map (MoveUploads), marks every container settled at the
// current epoch but those with an upload that failed to move (Settler, if
// c is one), and drops each older map from c's history once nothing lives
// only there (Residue is 0) and the current map has been current for
// MapSettle. It runs on every node and acts only on the leader, so
// that no key is migrated by two nodes at once; a new leader starts a new
// pass. It returns when ctx ends.
func (e *Engine) RunMigrator(ctx context.Context, c Coordinator, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(migrateEvery)
	defer t.Stop()
	var (
		epoch placement.Epoch                   // the current map's epoch as last seen
		since time.Time                         // when this node first saw it
		told  = map[placement.Epoch]time.Time{} // when a kept older map's residue was last logged
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := c.Map()
		if cur == nil {
			continue
		}
		if cur.Epoch != epoch {
			epoch, since = cur.Epoch, time.Now()
		}
		e.mapAge(cur.Epoch) // start the clock of pgFenced on every node, not only once leading
		if !c.IsLeader() || len(c.OlderMaps()) == 0 {
			continue
		}
		passStart := time.Now()
		clean, whole := e.migratePass(ctx, c, log)
		if !clean || c.Map().Epoch != epoch {
			continue
		}
		// Only a pass that began after every node had the map for a
		// while proves that nothing new went to an older map.
		if passStart.Sub(since) < mapSettle {
			continue
		}
		// Every node writes with the current map by now: the uploads
		// still in progress in older maps' sets move into it, so that
		// the older maps can go however long their clients pause.
		ust, uerr := e.MoveUploads(ctx)
		if uerr != nil && ctx.Err() == nil {
			log.Warn("migrate: move uploads", "moved", ust.Moved, "failed", ust.Failed, "err", uerr)
		} else if ust.Moved > 0 {
			log.Info("migrate: moved multipart uploads into the current map", "uploads", ust.Moved, "parts", ust.Parts, "bytes", ust.Bytes)
		}
		if whole && !ust.Unscanned && ctx.Err() == nil {
			// Every key of every container, and every upload in
			// progress but those that failed to move, is in the
			// current map: listings (ListUploads too) of the other
			// containers need no older map's sets from now on
			// (Settler). One upload that does not move keeps only its
			// own container's listings covering the older sets.
			settleContainers(ctx, c, epoch, ust.FailedIn, log)
		}
		for _, m := range c.OlderMaps() {
			n, err := e.Residue(ctx, m)
			if err != nil || n > 0 {
				if err != nil && ctx.Err() == nil {
					log.Warn("migrate: residue of an older map", "epoch", m.Epoch, "err", err)
				}
				if n > 0 && time.Since(told[m.Epoch]) >= residueLogEvery {
					// Why a drain or an erasure change does not finish
					// (a clean pass that moved nothing says nothing).
					told[m.Epoch] = time.Now()
					log.Info("migrate: older map kept: its drives hold records not placed for the current map", "epoch", m.Epoch, "records", n, "current", epoch)
				}
				continue
			}
			if err := c.DropMap(ctx, m.Epoch); err != nil {
				log.Warn("migrate: drop map", "epoch", m.Epoch, "err", err)
				continue
			}
			log.Info("migrate: older map emptied and dropped", "epoch", m.Epoch, "current", epoch)
		}
	}
}

// settleContainers marks every container settled at epoch (Settler), if
// c records it and some container is not yet: a Raft entry only when it
// changes something, though the migrator comes here at every clean pass
// while an older map is kept.
func settleContainers(ctx context.Context, c Coordinator, epoch placement.Epoch, except []meta.ContainerRef, log *slog.Logger) {
	st, ok := c.(Settler)
	if !ok {
		return
	}
	cs, err := c.AllContainers(ctx)
	if err == nil && !slices.ContainsFunc(cs, func(ci ContainerInfo) bool {
		return ci.Settled < uint64(epoch) && !slices.Contains(except, ci.Ref())
	}) {
		return
	}
	if err := st.SettleContainers(ctx, epoch, except); err != nil && ctx.Err() == nil {
		log.Warn("migrate: settle containers", "epoch", epoch, "err", err)
		return
	}
	if len(except) > 0 {
		log.Warn("migrate: containers settled but those with an upload in progress that did not move: their listings still need the older maps", "epoch", epoch, "unsettled", except)
		return
	}
	log.Info("migrate: every container settled: listings need no older map", "epoch", epoch)
}

// migratePass walks every key of the older maps once. It reports whether
// the pass completed without errors (clean), and whether it also left no
// key with its older copies kept because the current set lacks its
// version on some drive (whole: MigrateResult.Incomplete; such a key is
// in the current set on fewer drives than a write quorum, maybe).
func (e *Engine) migratePass(ctx context.Context, c Coordinator, log *slog.Logger) (clean, whole bool) {
	after, clean := "", true
	var total MigrateStats
	for {
		if ctx.Err() != nil || !c.IsLeader() {
			return false, false
		}
		st, err := e.MigrateAll(ctx, after, migrateBatch)
		if err != nil {
			clean = false
			if ctx.Err() == nil {
				log.Warn("migrate: pass", "err", err)
			}
		}
		total.Keys += st.Keys
		total.Moved += st.Moved
		total.Removed += st.Removed
		total.Failed += st.Failed
		total.Incomplete += st.Incomplete
		// A batch with failed keys (a move deferred while a drive is
		// offline, a key unreadable) does not stop the pass: the keys
		// after it move now, the pass is not clean, and the failed ones
		// are tried again on the next.
		if after = st.Next; after == "" {
			break
		}
	}
	if total.Moved > 0 || total.Removed > 0 || total.Failed > 0 || total.Incomplete > 0 {
		log.Info("migrate: pass done", "keys", total.Keys, "moved", total.Moved, "removed", total.Removed, "failed", total.Failed, "incomplete", total.Incomplete)
	}
	clean = clean && total.Failed == 0
	return clean, clean && total.Incomplete == 0
}

// Scanning: ScanEvery is the default interval at which the leader walks
// every container for artifacts missing from a drive of their set;
// scanPause spaces its pages so that a large cluster is scanned steadily
// rather than in a burst.
const (
	ScanEvery = time.Minute
	scanPage  = 1000
	scanPause = 100 * time.Millisecond
)

// RunScanner walks every tenant's containers (c.AllContainers) every
// interval (ScanEvery if 0) on the leader (Scan) and queues what a drive
// missed for the healer (RunHealer), so that shards lost while a drive was
// down or replaced are rebuilt even if nobody reads them. It runs in every
// mode: a single node is always its own leader. At most every
// collectEvery it also collects the parts of striped Puts that crashed
// (CollectStripeOrphans). It returns when ctx ends.
func (e *Engine) RunScanner(ctx context.Context, c Coordinator, interval time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = ScanEvery
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var collected time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.IsLeader() && time.Since(collected) >= collectEvery {
			collected = time.Now()
			st, err := e.CollectStripeOrphans(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("scan: collect stripe orphans incomplete; will retry", "err", err)
			}
			if st.Collected > 0 {
				log.Info("scan: collected the parts of crashed striped puts", "puts", st.Collected, "shards", st.Shards)
			}
		}
		// A single node has no cluster map in the store (its engine
		// has a static one) but leads its own Raft: it scans too.
		if !c.IsLeader() {
			continue
		}
		cs, err := c.AllContainers(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("scan: list containers", "err", err)
			}
			continue
		}
		var keys, queued int
		for _, ci := range cs {
			after := ""
			for {
				st, err := e.Scan(ctx, ci.Tenant, ci.Name, after, scanPage)
				keys, queued = keys+st.Keys, queued+st.Queued
				if err != nil || st.Next == "" {
					if err != nil && ctx.Err() == nil {
						log.Warn("scan", "tenant", ci.Tenant, "container", ci.Name, "err", err)
					}
					break
				}
				after = st.Next
				select {
				case <-ctx.Done():
					return
				case <-time.After(scanPause):
				}
			}
		}
		if queued > 0 {
			log.Info("scan: queued artifacts for healing", "keys", keys, "queued", queued)
		}
	}
}
