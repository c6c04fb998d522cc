package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// Stripe intents: collecting the parts of a striped Put that crashed.
//
// A striped Put writes its parts' shard files to other PGs than its key's
// before the key's record names them; a crash in between leaves shard
// files that no record names and that nothing would ever find again (a
// shard file's name is a hash of the key and the part's data id). So
// before its first part a striped Put writes a stripe intent, a small
// record in the key's own PG's index under its own key space:
//
//	intent: "\x01S\x00" tenant "\x00" container "\x00" base
//
// holding the key, the striping (seed, width, PG count, layout, policy)
// and base, from which every part's data id is derived (intentDataID).
// The Put removes it once its record is written, or once it dropped its
// parts after a failure. CollectStripeOrphans (run by the scanner) takes
// each intent older than InFlightGrace: if a record of the key (or of one
// of its versions) in the set of any map of the history names the first
// part, the Put completed and only the intent goes; otherwise every
// part's shard files are deleted, then the intent. Every drive of those
// sets must answer, or the intent waits for the next pass.

// intentKeys is the index prefix of every stripe intent.
const intentKeys = "\x01S\x00"

// intentKeyMeta and intentBaseMeta are the metadata entries of an intent
// holding the artifact's key and base (hex).
const (
	intentKeyMeta  = "\x00key"
	intentBaseMeta = "\x00base"
	intentRefMeta  = "\x00ref" // the index key of a multipart part's record
)

func intentKey(tenant, container string, base [16]byte) string {
	return intentKeys + tenant + "\x00" + container + "\x00" + hex.EncodeToString(base[:])
}

// intentDataID is the data id of part i of the striped Put of base.
func intentDataID(base [16]byte, i int) [16]byte {
	h := sha256.New()
	h.Write(base[:])
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	h.Write(b[:])
	var id [16]byte
	copy(id[:], h.Sum(nil))
	return id
}

// writeIntent writes the stripe intent of a striped Put of key (record
// rec, striped under m) to rec's PG's drives, needing wq of them, and
// returns its base and unintend, which removes it.
//
// A striped multipart part (PutPart) writes one too, for its one part
// (data id intentDataID(base, 0)), with ref its part record's index key:
// a record there also names it.
func (e *Engine) writeIntent(ctx context.Context, m *placement.Map, rec *record, tenant, container, key, ref string, wq int) ([16]byte, func(), error) {
	var base [16]byte
	rand.Read(base[:])
	drives, _ := e.pgDrives(m, rec.PG)
	version, now := e.newVersion()
	in := record{
		Version: version, Modified: now.UnixNano(),
		Data: rec.Data, Parity: rec.Parity, StripeSize: rec.StripeSize, PG: rec.PG,
		Seed: rec.Seed, Width: rec.Width, PGCount: rec.PGCount, Layout: rec.Layout, Offset: rec.Offset,
		Metadata: map[string]string{intentKeyMeta: key, intentBaseMeta: hex.EncodeToString(base[:])},
	}
	if ref != "" {
		in.Metadata[intentRefMeta] = ref
	}
	ikey := intentKey(tenant, container, base)
	if err := e.putQuorum(ctx, ikey, drives, &in, wq); err != nil {
		return base, nil, fmt.Errorf("engine: put %s: stripe intent: %w", container, err)
	}
	return base, func() { e.deleteRecord(ctx, drives, ikey, driver.Version{}) }, nil
}

// CollectStats says what one CollectStripeOrphans did.
type CollectStats struct {
	Intents   int // intents looked at
	Collected int // intents whose parts no record named: their shard files deleted
	Completed int // intents whose Put completed: only the intent removed
	Shards    int // shard files deleted
}

// CollectStripeOrphans deletes the parts of striped Puts that crashed
// before writing their record (see "Stripe intents" above), for intents
// older than InFlightGrace. It returns what it did and the first error;
// an intent it could not settle is tried again on the next call.
func (e *Engine) CollectStripeOrphans(ctx context.Context) (CollectStats, error) {
	var st CollectStats
	m := e.cfg.Topology.Map()
	if m == nil {
		return st, nil
	}
	ls := e.recordSet(m)
	after := ""
	var first error
	for {
		raws, recs, truncated, err := e.listCovering(ctx, ls, intentKeys, after, 1000)
		if err != nil {
			return st, fmt.Errorf("engine: collect stripe orphans: %w", err)
		}
		for i, raw := range raws {
			after = raw.Key
			in := recs[i]
			if in.Deleted || e.cfg.Now().Sub(versionTime(in.Version)) < InFlightGrace {
				continue
			}
			f := strings.SplitN(raw.Key[len(intentKeys):], "\x00", 3)
			if len(f) != 3 {
				continue
			}
			st.Intents++
			if err := e.collectIntent(ctx, f[0], f[1], raw.Key, &st); err != nil && first == nil {
				first = fmt.Errorf("engine: collect stripe intent %s: %w", f[2], err)
			}
		}
		if !truncated || ctx.Err() != nil {
			return st, first
		}
	}
}

// collectIntent settles the intent under ikey: reads it whole, looks for
// a record naming its first part, and deletes its parts if there is none.
func (e *Engine) collectIntent(ctx context.Context, tenant, container, ikey string, st *CollectStats) error {
	cur := e.mapFor(tenant, container)
	var in *record
	for _, m := range append([]*placement.Map{cur}, e.olderMaps(cur)...) {
		for _, id := range m.Drives {
			d, err := e.cfg.Topology.Drive(id.ID)
			if err != nil || d == nil {
				continue
			}
			raw, err := d.GetRecord(ctx, ikey)
			if err != nil {
				continue
			}
			if r, err := unmarshalRecord(raw.Data); err == nil {
				in = r
				break
			}
		}
		if in != nil {
			break
		}
	}
	if in == nil {
		return nil // removed meanwhile
	}
	key := in.Metadata[intentKeyMeta]
	b, err := hex.DecodeString(in.Metadata[intentBaseMeta])
	if key == "" || len(b) != 16 || !in.striped() {
		return fmt.Errorf("malformed intent")
	}
	var base [16]byte
	copy(base[:], b)
	first := intentDataID(base, 0)
	named, err := e.anyRecordNames(ctx, tenant, container, key, in.Metadata[intentRefMeta], first)
	if err != nil {
		return err
	}
	if named {
		st.Completed++
	} else {
		n, err := e.deleteIntentParts(ctx, tenant, container, key, in, base)
		st.Shards += n
		if err != nil {
			return err
		}
		st.Collected++
		e.log.Info("collected the parts of a striped put that never completed", "tenant", tenant, "container", container, "shards", n)
	}
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for _, id := range olderDrives(append([]*placement.Map{cur}, e.olderMaps(cur)...)) {
		if d, err := e.cfg.Topology.Drive(id); err == nil && d != nil {
			if err := d.DeleteRecord(ctx, ikey, driver.Version{}); err != nil && !errors.Is(err, driver.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// anyRecordNames reports whether a record of key, or of one of its
// versions, or under index key ref (if not ""), on the drives of key's
// set in any map of the history, names data id id. Every drive must
// answer.
func (e *Engine) anyRecordNames(ctx context.Context, tenant, container, key, ref string, id [16]byte) (bool, error) {
	cur := e.mapFor(tenant, container)
	ikey := indexPrefix(tenant, container) + key
	names := func(data []byte, d driver.Driver, k string, truncated bool) (bool, error) {
		if truncated {
			raw, err := d.GetRecord(ctx, k)
			if errors.Is(err, driver.ErrNotFound) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			data = raw.Data
		}
		r, err := unmarshalRecord(data)
		if err != nil {
			return false, nil
		}
		for _, p := range r.Parts {
			if p.DataID == id {
				return true, nil
			}
		}
		return false, nil
	}
	for _, m := range append([]*placement.Map{cur}, e.olderMaps(cur)...) {
		drives, errs := e.pgDrives(m, pgOf(m, tenant, container, key))
		for j, d := range drives {
			if d == nil {
				return false, fmt.Errorf("%w: drive of shard %d: %w", ErrReadQuorum, j, errs[j])
			}
			for _, k := range []string{ikey, ref} {
				if k == "" {
					continue
				}
				raw, err := d.GetRecord(ctx, k)
				switch {
				case err == nil:
					if ok, err := names(raw.Data, d, k, false); ok || err != nil {
						return ok, err
					}
				case !errors.Is(err, driver.ErrNotFound):
					return false, err
				}
			}
			after := ""
			for {
				recs, err := d.ListRecords(ctx, ikey+"\x00", after, listBatch)
				if err != nil {
					return false, err
				}
				for _, r := range recs {
					if ok, err := names(r.Data, d, r.Key, r.Truncated); ok || err != nil {
						return ok, err
					}
				}
				if len(recs) < listBatch {
					break
				}
				after = recs[len(recs)-1].Key
			}
		}
	}
	return false, nil
}

// deleteIntentParts deletes the shard files of the parts of intent in's
// Put, in order, until maxStripeWriteAhead parts in a row are on no drive
// (a Put writes at most that many at once), and returns how many it
// deleted.
func (e *Engine) deleteIntentParts(ctx context.Context, tenant, container, key string, in *record, base [16]byte) (int, error) {
	sm := e.stripeMap(tenant, container, in)
	if sm == nil {
		e.log.Warn("stripe intent's map is gone: its parts' shard files are left", "tenant", tenant, "container", container)
		return 0, nil
	}
	deleted, missing := 0, 0
	for i := 0; missing < maxStripeWriteAhead && int64(i) <= MaxArtifactSize/(stripeChunkStripes*max(in.StripeSize, 1)); i++ {
		drives, _ := e.partDrives(sm, in, i)
		shard := shardOf(tenant, container, key, in.partPG(i), intentDataID(base, i))
		found := false
		for _, d := range drives {
			if d == nil {
				return deleted, fmt.Errorf("%w: a drive of pg %d is unavailable", ErrReadQuorum, shard.PG)
			}
			switch err := d.DeleteShard(ctx, shard); {
			case err == nil:
				deleted++
				found = true
			case !errors.Is(err, driver.ErrNotFound):
				return deleted, err
			}
		}
		if found {
			missing = 0
		} else {
			missing++
		}
	}
	return deleted, nil
}

// collectEvery bounds how often RunScanner calls CollectStripeOrphans.
const collectEvery = 10 * time.Minute
