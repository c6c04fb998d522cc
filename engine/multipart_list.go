package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// listNewest returns up to limit records under prefix sorting after after,
// merged across drives (newest version per key), in key order. Each drive
// is asked for limit+1 records, which is enough: a key among the first
// limit of the union is among the first limit of every drive holding it.
// It needs k of the first own drives to answer (the others, an older
// map's, are merged as they answer but never make up for a missing one of
// these) and does not wait for those slower than the straggler grace once
// k did (fanOut); see List for why the merge of any read quorum holds
// every key's newest version. It suits drives that are one set; a listing
// of a whole map's drives uses listCovering.
func (e *Engine) listNewest(ctx context.Context, drives []driver.Driver, own int, prefix, after string, limit int, k int) ([]driver.Record, []*record, bool, error) {
	return e.listMerged(ctx, drives, prefix, after, limit, nil, func(answered []bool) (bool, string) {
		n := 0
		for _, a := range answered[:min(own, len(answered))] {
			if a {
				n++
			}
		}
		return n >= k, fmt.Sprintf("%d of %d drives answered", n, own)
	})
}

// listCovering is listNewest over the drives of a listSet: it needs the
// drives that answered to cover every PG of each map it must cover (see
// List).
func (e *Engine) listCovering(ctx context.Context, ls listSet, prefix, after string, limit int) ([]driver.Record, []*record, bool, error) {
	return e.listCoveringPick(ctx, ls, prefix, after, limit, nil)
}

// pickable returns the record a pick function of listMerged looks at:
// r, or for a record the listing cut after its head (longer than
// driver.ListDataMax: an upload with much user metadata) the whole record
// read from d, as a cut head has no metadata, its map epoch among it
// (review 24b S2: strayUpload could not tell such a record a stray). If
// that read fails, r.
// A drive gets pickReadTimeout for each such read; one that takes longer
// (*slow set) is not asked again during the listing (review 24c N3: a
// drive that hangs after listing would hold the listing).
func (e *Engine) pickable(ctx context.Context, d driver.Driver, raw driver.Record, r *record, slow *bool) *record {
	if !raw.Truncated || r.Deleted || *slow {
		return r
	}
	rctx, cancel := context.WithTimeout(ctx, pickReadTimeout)
	data, found, err := wholeRecord(rctx, d, raw)
	cancel()
	if err != nil && ctx.Err() == nil {
		*slow = true
	}
	if err != nil || !found {
		return r
	}
	whole, err := unmarshalRecord(data)
	if err != nil || whole.Version != r.Version {
		return r // changed meanwhile: the listed one stands
	}
	return whole
}

// pickReadTimeout bounds pickable's read of one whole record.
const pickReadTimeout = 2 * time.Second

// listCoveringPick is listCovering merging only the records pick accepts
// (see listMerged).
func (e *Engine) listCoveringPick(ctx context.Context, ls listSet, prefix, after string, limit int, pick func(j int, raw driver.Record, r *record) bool) ([]driver.Record, []*record, bool, error) {
	return e.listMerged(ctx, ls.drives, prefix, after, limit, pick, func(answered []bool) (bool, string) {
		ids := make(map[placement.DriveID]bool, len(ls.ids))
		for i, a := range answered {
			if a {
				ids[ls.ids[i]] = true
			}
		}
		return ls.covers(ids), fmt.Sprintf("%d of %d drives answered, too few of some set (or, with remote drives, of the whole map) answered", len(ids), len(ls.ids))
	})
}

// listMerged is listNewest with the quorum given by enough: it stops
// waiting (but for the straggler grace) once enough(answered) holds,
// where answered[j] says whether drives[j] answered, and fails with
// ErrReadQuorum and enough's reason if it does not hold in the end.
// With pick, a record r that drives[j] listed is merged only if
// pick(j, raw, r) holds (pick also sees every record listed); a key whose
// every record pick refused is still returned, in its place in the page
// (so that the page's end and the next page's start stay those of the
// records listed), with a nil record.
func (e *Engine) listMerged(ctx context.Context, drives []driver.Driver, prefix, after string, limit int, pick func(j int, raw driver.Record, r *record) bool, enough func(answered []bool) (bool, string)) ([]driver.Record, []*record, bool, error) {
	type listed struct {
		recs []driver.Record
		err  error
	}
	res, done := fanOutUntil(ctx, e, len(drives), func(j int) bool { return drives[j] != nil },
		func(_ int, accepted []bool) bool {
			ok, _ := enough(accepted)
			return ok
		},
		func(ctx context.Context, j int) listed {
			recs, err := drives[j].ListRecords(ctx, prefix, after, limit+1)
			return listed{recs, err}
		},
		// listedLost: no answer, as below (review 29t: accepted, it made
		// the quorum and a slower drive was dropped after the grace).
		func(l listed) bool { return l.err == nil && !slices.ContainsFunc(l.recs, listedLost) }, nil)
	type entry struct {
		raw driver.Record
		rec *record
	}
	newest := map[string]entry{}
	answered := make([]bool, len(drives))
	slow := make([]bool, len(drives)) // pickable
	for j, l := range res {
		if !done[j] || l.err != nil || slices.ContainsFunc(l.recs, listedLost) {
			continue // listedLost: as a listing that failed on this drive
		}
		answered[j] = true
		for _, raw := range l.recs {
			// Listed data may be cut after the record's head.
			r, err := unmarshalRecord(raw.Data)
			if raw.Truncated {
				r, err = unmarshalHead(raw.Data)
			}
			if err != nil {
				continue
			}
			if pick != nil && !pick(j, raw, e.pickable(ctx, drives[j], raw, r, &slow[j])) {
				if _, ok := newest[raw.Key]; !ok {
					newest[raw.Key] = entry{raw: raw} // refused: its key only
				}
				continue
			}
			if cur, ok := newest[raw.Key]; !ok || cur.rec == nil || r.Version.Compare(cur.rec.Version) > 0 {
				newest[raw.Key] = entry{raw, r}
			}
		}
	}
	if ok, why := enough(answered); !ok {
		return nil, nil, false, fmt.Errorf("%w: list: %s", ErrReadQuorum, why)
	}
	keys := slices.Sorted(maps.Keys(newest))
	truncated := len(keys) > limit
	keys = keys[:min(len(keys), limit)]
	raws := make([]driver.Record, len(keys))
	recs := make([]*record, len(keys))
	for i, key := range keys {
		raws[i], recs[i] = newest[key].raw, newest[key].rec
	}
	return raws, recs, truncated, nil
}

// ListParts returns up to limit parts of an upload numbered above after.
func (e *Engine) ListParts(ctx context.Context, tenant, container, key, uploadID string, after, limit int) ([]PartInfo, bool, error) {
	_, parts, truncated, err := e.ListUploadParts(ctx, tenant, container, key, uploadID, after, limit)
	return parts, truncated, err
}

// ListUploadParts is ListParts that also returns the upload, as
// ListUploads describes it (its metadata says how its parts are checked).
func (e *Engine) ListUploadParts(ctx context.Context, tenant, container, key, uploadID string, after, limit int) (Upload, []PartInfo, bool, error) {
	up, at, err := e.activeUpload(ctx, tenant, container, key, uploadID)
	drives := at.drives
	if err != nil {
		return Upload{}, nil, false, err
	}
	if limit <= 0 || limit > MaxPartNum {
		limit = 1000
	}
	start := ""
	if after > 0 {
		start = partKey(tenant, container, partsID(uploadID, up), after)
	}
	prefix := partPrefix(tenant, container, partsID(uploadID, up))
	raws, recs, truncated, err := e.listNewest(ctx, drives, len(drives), prefix, start, limit, up.Data)
	if err != nil {
		return Upload{}, nil, false, err
	}
	parts := make([]PartInfo, 0, len(raws))
	for i, raw := range raws {
		var n int
		fmt.Sscanf(raw.Key[len(prefix):], "%d", &n)
		parts = append(parts, PartInfo{Number: n, Size: recs[i].Size, ETag: recs[i].ETag, Modified: time.Unix(0, recs[i].Modified), Metadata: withoutReserved(recs[i].Metadata)})
	}
	return uploadOf(key, uploadID, up), parts, truncated, nil
}

// allParts returns every part record of an upload (under its partsID
// uploadID), by part number.
func (e *Engine) allParts(ctx context.Context, tenant, container, uploadID string, drives []driver.Driver, k int) (map[int]driver.Record, map[int]*record, error) {
	raws := map[int]driver.Record{}
	recs := map[int]*record{}
	prefix := partPrefix(tenant, container, uploadID)
	after := ""
	for {
		page, precs, truncated, err := e.listNewest(ctx, drives, len(drives), prefix, after, 1000, k)
		if err != nil {
			return nil, nil, err
		}
		for i, raw := range page {
			var n int
			fmt.Sscanf(raw.Key[len(prefix):], "%d", &n)
			rec := precs[i]
			if raw.Truncated {
				// Only the head was listed: read the whole record.
				if rec, err = e.readNewest(ctx, drives, raw.Key, k); err != nil {
					return nil, nil, err
				}
			}
			raws[n], recs[n] = raw, rec
			after = raw.Key
		}
		if !truncated {
			return raws, recs, nil
		}
	}
}

// ListUploads returns up to limit uploads in progress in a container whose
// keys start with prefix and sort after after (or equal after with an
// upload id above afterID), in key then id order. Completed uploads (see
// CompletedUploadRetention) are not listed.
func (e *Engine) ListUploads(ctx context.Context, tenant, container, prefix, after, afterID string, limit int) ([]Upload, bool, error) {
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return nil, false, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	m := e.mapFor(tenant, container)
	ls := e.uploadSet(m, e.settledOf(ctx, tenant, container))
	base := uploadPrefix(tenant, container)
	start := ""
	if after != "" {
		start = base + after + "\x00" + afterID
		if afterID == "" {
			start = base + after + "\x00\xff"
		}
	}
	// A record left on a drive no kept map places it at, by a map gone
	// from the history, is no upload findUpload would serve (review 23b
	// R3): not listed, as SweepUploads removes it.
	// Nor is one of a container deleted before this one was made under
	// its name (ATTACK24 F3).
	ms := e.uploadMaps(m)
	info, err := e.cfg.Containers.Container(ctx, tenant, container)
	if err != nil {
		return nil, false, err
	}
	synced := false // info re-read from the synced store (inContainer)
	pick := func(j int, raw driver.Record, r *record) bool {
		key, _, _ := strings.Cut(raw.Key[len(base):], "\x00")
		if strayUpload(r, ms, ls.ids[j], tenant, container, key) {
			return false
		}
		if !ofContainer(r, info.Created) && !synced {
			synced = true
			if fresh, err := e.syncedContainer(ctx, tenant, container); err == nil {
				info = fresh
			}
		}
		return ofContainer(r, info.Created)
	}
	var ups []Upload
	for {
		raws, recs, truncated, err := e.listCoveringPick(ctx, ls, base+prefix, start, limit, pick)
		if err != nil {
			return nil, false, err
		}
		for i, raw := range raws {
			if len(ups) == limit {
				return ups, true, nil
			}
			start = raw.Key
			if recs[i] == nil || isMarker(recs[i]) || recs[i].Deleted {
				continue
			}
			key, id, _ := strings.Cut(raw.Key[len(base):], "\x00")
			ups = append(ups, uploadOf(key, id, recs[i]))
		}
		if !truncated {
			return ups, false, nil
		}
	}
}

// recordSet returns the listSet of the upload records (or stripe
// intents) of a container whose map is m: covering m, walking also the
// other layouts' and the older maps' drives (an upload holds the map it
// started under, Residue, and a drained drive leaves the current map
// before its uploads end).
func (e *Engine) recordSet(m *placement.Map) listSet {
	return e.uploadSet(m, noOlderCover)
}

// uploadSet is recordSet for the upload records of a container settled
// at epoch settled (settledOf): it covers also the older maps' sets an
// upload in progress may still live in only (olderToCover), as List
// does for keys. Without them, a listing with more than an older set's
// parity down answered without the uploads begun under that map and not
// moved yet (MoveUploads).
func (e *Engine) uploadSet(m *placement.Map, settled placement.Epoch) listSet {
	cover := append([]*placement.Map{m}, e.olderToCover(m, settled)...)
	s := e.listSetOf(cover, append(e.otherLayouts(m), e.olderMaps(m)...))
	s.wholeIfLayouts(e, m)
	return s
}
