package cluster

import (
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/placement"
)

// Migration timing.
const (
	// migrateEvery is how often the leader looks for older maps to empty.
	migrateEvery = 2 * time.Second
	// MapSettle is how long a map must have been current on the leader
	// before an older map may be dropped: every node must have applied it
	// (and stopped writing with the older one) by then.
	MapSettle    = 15 * time.Second
	migrateBatch = 1000 // keys per MigrateAll call
)

// RunMigrator moves data written under older maps into the current map
// and drops each older map from the history once nothing lives only
// there. It runs on every node and acts only on the leader, so that no
// key is migrated by two nodes at once; a new leader starts a new pass.
// It returns when ctx ends.
func (s *Store) RunMigrator(ctx context.Context, e *engine.Engine, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(migrateEvery)
	defer t.Stop()
	var (
		epoch placement.Epoch // the current map's epoch as last seen
		since time.Time       // when this node first saw it
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := s.Map()
		if cur == nil {
			continue
		}
		if cur.Epoch != epoch {
			epoch, since = cur.Epoch, time.Now()
		}
		if s.raft.State() != raft.Leader || len(s.OlderMaps()) == 0 {
			continue
		}
		passStart := time.Now()
		if !s.migratePass(ctx, e, log) || s.Map().Epoch != epoch {
			continue
		}
		// Only a pass that began after every node had the map for a
		// while proves that nothing new went to an older map.
		if passStart.Sub(since) < MapSettle {
			continue
		}
		for _, m := range s.OlderMaps() {
			n, err := e.Residue(ctx, m)
			if err != nil || n > 0 {
				if err != nil && ctx.Err() == nil {
					log.Warn("migrate: residue of an older map", "epoch", m.Epoch, "err", err)
				}
				continue
			}
			if err := s.DropMap(ctx, m.Epoch); err != nil {
				log.Warn("migrate: drop map", "epoch", m.Epoch, "err", err)
				continue
			}
			log.Info("migrate: older map emptied and dropped", "epoch", m.Epoch, "current", epoch)
		}
	}
}

// migratePass walks every key of the older maps once. It reports whether
// the pass completed without errors.
func (s *Store) migratePass(ctx context.Context, e *engine.Engine, log *slog.Logger) bool {
	after, clean := "", true
	var total engine.MigrateStats
	for {
		if ctx.Err() != nil || s.raft.State() != raft.Leader {
			return false
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
		if after = st.Next; after == "" || err != nil {
			break
		}
	}
	if total.Moved > 0 || total.Removed > 0 || total.Failed > 0 {
		log.Info("migrate: pass done", "keys", total.Keys, "moved", total.Moved, "removed", total.Removed, "failed", total.Failed)
	}
	return clean && total.Failed == 0
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

// RunScanner walks every tenant's containers every interval (ScanEvery if
// 0) on the Raft leader (engine.Scan) and queues what a drive missed for
// the engine's healer (engine.RunHealer), so that shards lost while a
// drive was down or replaced are rebuilt even if nobody reads them. It runs
// in every mode: a single node is always its own leader. It returns when
// ctx ends.
func (s *Store) RunScanner(ctx context.Context, e *engine.Engine, interval time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = ScanEvery
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A single node has no cluster map in the store (its engine
		// has a static one) but leads its own Raft: it scans too.
		if s.raft.State() != raft.Leader {
			continue
		}
		var keys, queued int
		for _, tn := range s.fsm.tenantList() {
			for _, c := range s.fsm.containerList(tn.Name) {
				after := ""
				for {
					st, err := e.Scan(ctx, tn.Name, c.Name, after, scanPage)
					keys, queued = keys+st.Keys, queued+st.Queued
					if err != nil || st.Next == "" {
						if err != nil && ctx.Err() == nil {
							log.Warn("scan", "tenant", tn.Name, "container", c.Name, "err", err)
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
		}
		if queued > 0 {
			log.Info("scan: queued artifacts for healing", "keys", keys, "queued", queued)
		}
	}
}
