package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// ScanStats reports one Scan call.
type ScanStats struct {
	Keys   int    // keys looked at
	Queued int    // keys queued for healing
	Next   string // where the next call continues; "" when the container is done
}

// Scan walks a container's keys in the current map, up to limit keys after
// after, and queues for healing every key whose newest version is missing
// from a drive of its set that answered (a drive that was down or
// unreachable when the version was written, or lost its record). It
// compares only the record indexes, which the drives list cheaply; Heal,
// run by RunHealer, then rebuilds what is missing. Drives that cannot be
// listed are left out of the comparison, so an unreachable node does not
// flood the heal queue. Keys found only in older maps are the migrator's.
// A tier container's keys are compared in the remote layout's sets too,
// where its tiered artifacts live.
func (e *Engine) Scan(ctx context.Context, tenant, container, after string, limit int) (ScanStats, error) {
	if limit <= 0 {
		limit = 1000
	}
	m := e.mapFor(tenant, container)
	maps := []*placement.Map{m}
	if rm := e.tierMap(); rm != nil && rm != m && e.tiered(tenant, container) {
		// A tier container's tiered artifacts live in the remote
		// layout's sets (tier.go): a remote drive that lost their
		// records must be found too (attack 27 F1, a tier bucket).
		maps = append(maps, rm)
	}
	base := indexPrefix(tenant, container)
	type dcur struct {
		id placement.DriveID
		c  *cursor
	}
	var curs []dcur
	seen := map[placement.DriveID]bool{}
	for _, mm := range maps {
		for _, dr := range mm.Drives {
			if seen[dr.ID] {
				continue
			}
			seen[dr.ID] = true
			d, err := e.cfg.Topology.Drive(dr.ID)
			if err != nil || d == nil {
				continue
			}
			curs = append(curs, dcur{dr.ID, &cursor{d: d, after: base + after}})
		}
	}
	var st ScanStats
	for st.Keys < limit {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("engine: scan: %w", err)
		}
		var minKey string
		found := false
		// Each batch is read from every drive in parallel; a drive that
		// misses the straggler grace (up to Parity of them) is dropped from
		// this scan as not listed, rather than hold it (see Engine.fill).
		cursors := make([]*cursor, len(curs))
		for i, c := range curs {
			cursors[i] = c.c
		}
		e.fill(ctx, cursors, base, atMostMissing(m.Policy.Parity), false) // a record listed lost has its version: Scan compares those
		for _, c := range curs {
			if len(c.c.buf) > 0 && (!found || c.c.buf[0].Key < minKey) {
				minKey, found = c.c.buf[0].Key, true
			}
		}
		if !found {
			st.Next = ""
			return st, nil
		}
		key := minKey[len(base):]
		sets := make([][]placement.DriveID, len(maps))
		for i, mm := range maps {
			sets[i] = mm.Set(pgOf(mm, tenant, container, key))
		}
		have := map[placement.DriveID]driver.Version{}
		listed := map[placement.DriveID]bool{}
		for _, c := range curs {
			listed[c.id] = c.c.failed == nil
			if len(c.c.buf) == 0 || c.c.buf[0].Key != minKey {
				continue
			}
			// Only the key's sets count: records elsewhere are older
			// placements, the migrator's to move.
			if slices.ContainsFunc(sets, func(set []placement.DriveID) bool { return slices.Contains(set, c.id) }) {
				have[c.id] = c.c.buf[0].Version
			}
			c.c.buf = c.c.buf[1:]
		}
		st.Keys++
		st.Next = key
		if slices.ContainsFunc(sets, func(set []placement.DriveID) bool { return missesNewest(set, have, listed) }) {
			e.queueHeal(HealItem{tenant, container, key})
			st.Queued++
		}
	}
	return st, nil
}

// missesNewest reports whether a drive of set that was listed lacks the
// newest version another drive of set holds (have: the versions the
// drives hold).
func missesNewest(set []placement.DriveID, have map[placement.DriveID]driver.Version, listed map[placement.DriveID]bool) bool {
	var newest driver.Version
	held := false
	for _, id := range set {
		if v, ok := have[id]; ok {
			held = true
			if v.Compare(newest) > 0 {
				newest = v
			}
		}
	}
	if !held {
		return false
	}
	for _, id := range set {
		if v, ok := have[id]; listed[id] && (!ok || v.Compare(newest) < 0) {
			return true
		}
	}
	return false
}
