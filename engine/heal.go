package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// TombstoneGrace is how long a deletion's tombstone is kept after every
// drive of its set holds it, so that a write that started before the delete
// and lands late is still refused as stale.
const TombstoneGrace = 15 * time.Minute

// Heal repairs key's current version in place. Every reachable drive of its
// placement group whose shard fails verification gets a rebuilt shard and a
// fresh record; a drive whose shard is intact but whose record is missing or
// left over from a failed write gets the record only. Drives that cannot be
// written are skipped. Heal returns the shard indexes it repaired. For a
// deleted key it removes the tombstone once every drive holds it and it is
// older than TombstoneGrace. An artifact that reads find in an older map's
// set (MapHistory) is repaired in that set; moving it is Migrate's job.
func (e *Engine) Heal(ctx context.Context, tenant, container, key string) ([]int, error) {
	item := HealItem{tenant, container, key}
	a, err := e.Open(ctx, tenant, container, key)
	if errors.Is(err, ErrNoSuchArtifact) {
		e.unqueueHeal(item)
		return nil, e.purgeTombstone(ctx, tenant, container, key)
	}
	if err != nil {
		return nil, err
	}
	ikey := indexPrefix(tenant, container) + key
	n := len(a.drives)
	segs := a.segments()
	// needData[p][j]: part p's shard on drive j must be rebuilt.
	needData := make([][]bool, len(segs))
	needRecord := make([]bool, n)
	for p, size := range segs {
		needData[p] = make([]bool, n)
		for j, d := range a.drives {
			if d == nil {
				continue
			}
			intact := a.codec.Verify(ctx, size, j, a.partOpen(p)) == nil
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("engine: heal: %w", err)
			}
			needData[p][j] = !intact
			needRecord[j] = needRecord[j] || !intact || a.holders[j] == nil
		}
	}
	// A record newer than the current version is the remains of a failed
	// write: remove it so the current one can be written back. One written
	// for another placement (the drive is also in the current map's set and
	// the artifact was found in an older map's) is not this set's to
	// remove: leave that drive alone. So is, when healing in an older map's
	// set, this very version placed for another set: migration moved it
	// there.
	for j, d := range a.drives {
		if !needRecord[j] {
			continue
		}
		got, err := d.GetRecord(ctx, ikey)
		if err != nil || got.Version.Compare(a.rec.Version) < 0 {
			continue
		}
		r, err := unmarshalRecord(got.Data)
		other := err == nil && (r.Data != a.rec.Data || r.Parity != a.rec.Parity || r.PG != a.rec.PG || r.Shard != j)
		if got.Version == a.rec.Version {
			if a.older && err == nil && (other || !sameData(r, a.rec)) {
				needRecord[j] = false
			}
			continue
		}
		if other {
			needRecord[j] = false
			continue
		}
		if err := d.DeleteRecord(ctx, ikey, got.Version); err != nil && !errors.Is(err, driver.ErrNotFound) {
			needRecord[j] = false
		}
	}
	// Rebuilt shards come from the other drives only.
	for j := range needRecord {
		for p := range segs {
			if needData[p][j] {
				a.holders[j] = nil
			}
		}
	}
	var inline [][]byte
	if a.rec.IsInline {
		inline = make([][]byte, n)
	}
	for p, size := range segs {
		ws := make(map[int]io.Writer)
		bufs := make(map[int]*bytes.Buffer)
		sws := make(map[int]driver.ShardWriter)
		for j := range n {
			if !needData[p][j] || !needRecord[j] {
				continue
			}
			if a.rec.IsInline {
				bufs[j] = new(bytes.Buffer)
				ws[j] = bufs[j]
				continue
			}
			sw, err := a.drives[j].CreateShard(ctx, a.partShard(p))
			if err != nil {
				e.log.Warn("heal: drive not writable", "pg", a.rec.PG, "shard", j, "err", err)
				needRecord[j] = false
				continue
			}
			sws[j], ws[j] = sw, sw
		}
		if len(ws) == 0 {
			continue
		}
		_, err := a.codec.Rebuild(ctx, size, a.partOpen(p), ws)
		for j, sw := range sws {
			if err == nil {
				if cerr := sw.Commit(ctx); cerr != nil {
					e.log.Warn("heal: shard commit failed", "pg", a.rec.PG, "shard", j, "err", cerr)
					needRecord[j] = false
				}
			}
			sw.Abort()
		}
		if err != nil {
			return nil, fmt.Errorf("engine: heal %s: %w", container, err)
		}
		for j, b := range bufs {
			inline[j] = b.Bytes()
		}
	}
	var repaired []int
	for j, need := range needRecord {
		if need {
			repaired = append(repaired, j)
		}
	}
	if len(repaired) == 0 {
		e.unqueueHeal(item)
		return nil, nil
	}
	if err := e.writeRecords(ctx, tenant, container, key, a.drives, a.rec, inline, needRecord, len(repaired)); err != nil {
		return nil, fmt.Errorf("engine: heal: %w", err)
	}
	e.unqueueHeal(item)
	e.st.repairs.Add(1)
	e.st.shards.Add(uint64(len(repaired)))
	e.log.Info("healed artifact", "pg", a.rec.PG, "shards", repaired)
	return repaired, nil
}

// purgeTombstone removes key's tombstone from every drive of its set once
// all of them hold it, it is older than TombstoneGrace and no older map's
// set (MapHistory) may still hold a version it hides.
func (e *Engine) purgeTombstone(ctx context.Context, tenant, container, key string) error {
	m := e.cfg.Topology.Map()
	drives, _ := e.pgDrives(m, m.PGOf(tenant, container, key))
	ikey := indexPrefix(tenant, container) + key
	recs, answered := e.readRecords(ctx, drives, ikey)
	if answered < len(drives) {
		return nil // try again when every drive is back
	}
	t := recs[0]
	for _, r := range recs {
		if r == nil || t == nil || r.Version != t.Version || !r.Deleted {
			return nil
		}
	}
	if e.cfg.Now().Sub(time.Unix(0, t.Modified)) < TombstoneGrace {
		return nil
	}
	if e.olderSetsHold(ctx, m, tenant, container, key) {
		return nil // until migration has moved or removed that version
	}
	for j, d := range drives {
		if err := d.DeleteRecord(ctx, ikey, t.Version); err != nil && !errors.Is(err, driver.ErrNotFound) && !errors.Is(err, driver.ErrStale) {
			return fmt.Errorf("engine: purge tombstone on shard %d: %w", j, err)
		}
	}
	return nil
}

func (e *Engine) unqueueHeal(it HealItem) {
	e.healMu.Lock()
	defer e.healMu.Unlock()
	delete(e.heal, it)
}

// DefaultHealInterval is the default Config.HealInterval.
const DefaultHealInterval = 10 * time.Second

// RunHealer repairs, every Config.HealInterval, the artifacts that reads found
// degraded (Degraded), until ctx ends. An artifact that cannot be healed
// yet (its drives are still down) stays queued for the next round.
// Artifacts nobody reads are not found this way; a scrubber that walks
// every key is not built yet.
func (e *Engine) RunHealer(ctx context.Context) {
	t := time.NewTicker(e.cfg.HealInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, it := range e.Degraded() {
			if ctx.Err() != nil {
				return
			}
			hctx, cancel := context.WithTimeout(ctx, time.Minute)
			shards, err := e.Heal(hctx, it.Tenant, it.Container, it.Key)
			cancel()
			if err != nil && ctx.Err() == nil {
				e.log.Debug("heal failed; will retry", "container", it.Container, "err", err)
			} else if len(shards) > 0 {
				e.log.Debug("healed", "container", it.Container, "shards", shards)
			}
		}
	}
}
