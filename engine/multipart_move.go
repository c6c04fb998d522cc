package engine

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// Multipart uploads across map changes.
//
// An upload keeps the placement it was created with: its record, its
// parts' records and their shard files stay in its PG's set of the map
// current then (findUpload looks there when the current map's set does
// not hold it), parts uploaded after a map change go there too, under the
// upload's lease (which the drives' map-epoch fence honours), until the
// migrator moves the upload into the current map (MoveUploads,
// multipart_relocate.go). Residue counts it meanwhile while it is active
// (Config.UploadHold): an upload the migrator cannot move and whose client
// went away stops holding the map, and answers NoSuchUpload once the map
// is dropped.
//
// Completing it before it moves cannot write the artifact's record into
// that older set: reads take the current map's set first, so an older
// version of the key there would hide it, and migration would remove it.
// So the completion copies the chosen parts into the key's set of the
// current map (decoded from the upload's set, encoded with the current
// policy, keeping each part's boundaries and ETag, striped as a Put
// would be) before anything is committed, and the artifact's record
// names the copies. The marker, which stays with the upload, says where
// (movedKey); the parts' originals are dropped with the part records.
// Copies left by a completion that failed are unreferenced shard files,
// as a crashed Put leaves.

// movedKey is the metadata entry of a completion marker whose artifact
// was written into another map's set than the upload's: "epoch pg" of
// that map and the key's PG in it.
const movedKey = "\x00moved"

// uploadEpochKey is the metadata entry of an upload record naming the
// epoch of the map it was created in, and so lives in.
const uploadEpochKey = "\x00epoch"

// partsGenKey is the metadata entry of an upload record whose parts'
// records are under a generation of its part keys (partsID): the epoch
// of the map the migrator moved the upload into (MoveUploads). So a
// moved upload's part records never share a key with those it was moved
// from, which a drive in both sets holds until they are removed: writing
// one never replaces the other.
const partsGenKey = "\x00pgen"

// uploadContainerKey is the metadata entry of an upload record naming
// the Created time (Unix nanoseconds) of the container it was created in:
// a container deleted and made again under the same name is another one,
// and must not inherit an upload whose record a CreateUpload racing the
// deletion wrote after DeleteContainer aborted the uploads (ATTACK24 F3).
// Records without it (older code) belong to any container of the name.
const uploadContainerKey = "\x00cont"

// ofContainer reports whether upload record r belongs to the container
// created at created (uploadContainerKey).
func ofContainer(r *record, created time.Time) bool {
	v, ok := r.Metadata[uploadContainerKey]
	return !ok || v == strconv.FormatInt(created.UnixNano(), 10)
}

// completionVidKey, in a completion marker, names the version id under
// whose version key the completion writes its artifact: a completion into
// a versioned container (completeUploadVersion) makes its version there
// directly and then points the key at it, as a versioned put does, never
// leaving a plain record at the key for another writer to replace or
// adopt (review 25f F1, F2). Markers without it wrote the key's own
// record.
const completionVidKey = "\x00vid"

// artKey is the key whose records hold the artifact of the completion
// marker mk records (completionVidKey): a version key of key, or key.
func artKey(key string, mk *record) string {
	if vid := mk.Metadata[completionVidKey]; vid != "" {
		return versionKey(key, vid)
	}
	return key
}

// uploadKeysMeta are the metadata entries of upload records and markers
// that are the engine's, not the upload's (uploadOf drops them).
var uploadKeysMeta = []string{partNumbersKey, movedKey, uploadEpochKey, partsGenKey, uploadContainerKey, completionVidKey}

// partsID is the id under which upload id, whose record (or marker, or
// tombstone) is r, keeps its part records (partKey).
func partsID(id string, r *record) string {
	if g := r.Metadata[partsGenKey]; g != "" {
		return id + "." + g
	}
	return id
}

// withPlacement returns meta with the entries of upload record r that say
// where the upload lives (uploadEpochKey, partsGenKey), for the records
// that follow r: its marker, its tombstone, the upload a marker reverts
// to. meta is copied first if it gets an entry.
func withPlacement(meta map[string]string, r *record) map[string]string {
	copied := false
	for _, k := range []string{uploadEpochKey, partsGenKey, uploadContainerKey} {
		v, ok := r.Metadata[k]
		if !ok {
			continue
		}
		if !copied {
			meta, copied = maps.Clone(meta), true
			if meta == nil {
				meta = map[string]string{}
			}
		}
		meta[k] = v
	}
	return meta
}

// artSet is where a completion's artifact record and parts' data are: a
// PG's drive set and its policy.
type artSet struct {
	m      *placement.Map
	pg     uint32
	drives []driver.Driver
	data   int
	parity int
	stripe record // the artifact's striping (Seed, Width, PGCount, Layout)
}

// record returns a record of as holding parts, for their locations.
func (as artSet) record(parts []part) *record {
	r := as.stripe
	r.PG, r.Data, r.Parity, r.Parts = as.pg, as.data, as.parity, parts
	return &r
}

// uploadSet is the set of the upload at, for a completion in it.
func uploadSet(at uploadAt, up *record) artSet {
	return artSet{m: at.m, pg: at.pg, drives: at.drives, data: up.Data, parity: up.Parity,
		stripe: record{Seed: up.Seed, Width: up.Width, PGCount: up.PGCount, Layout: up.Layout}}
}

// completionSet returns where completing the upload at (record up)
// writes the artifact: the upload's own set, unless a map change placed
// key elsewhere since (moved reports it), then key's set in the current
// map.
func (e *Engine) completionSet(tenant, container, key string, at uploadAt, up *record) (as artSet, moved bool) {
	cur := e.mapFor(tenant, container)
	pg := pgOf(cur, tenant, container, key)
	if at.pg == pg && !at.moved(cur, up) {
		return uploadSet(at, up), false
	}
	drives, _ := e.pgDrives(cur, pg)
	return artSet{m: cur, pg: pg, drives: drives, data: cur.Policy.Data, parity: cur.Policy.Parity}, true
}

// markerSet returns where completion marker mk, read from drives (the
// upload's set, at.m's), wrote its artifact: the upload's set, or the
// set movedKey names in the map of that epoch (the current one if the
// history no longer has it: migration moved whatever was there).
func (e *Engine) markerSet(tenant, container, key string, at uploadAt, mk *record) artSet {
	v, ok := mk.Metadata[movedKey]
	if !ok {
		return uploadSet(at, mk)
	}
	f := strings.Fields(v)
	cur := e.mapFor(tenant, container)
	m := cur
	var stripe record
	if len(f) == 6 {
		stripe.Seed, _ = strconv.ParseUint(f[2], 10, 64)
		stripe.Width, _ = strconv.Atoi(f[3])
		stripe.PGCount, _ = strconv.Atoi(f[4])
		stripe.Layout, _ = strconv.ParseUint(f[5], 10, 64)
	}
	if len(f) >= 2 {
		epoch, _ := strconv.ParseUint(f[0], 10, 64)
		for _, o := range append([]*placement.Map{cur}, e.olderMaps(cur)...) {
			if uint64(o.Epoch) == epoch {
				m = o
				break
			}
		}
	}
	pg := pgOf(m, tenant, container, key)
	drives, _ := e.pgDrives(m, pg)
	return artSet{m: m, pg: pg, drives: drives, data: m.Policy.Data, parity: m.Policy.Parity, stripe: stripe}
}

// copyParts copies the data of the parts (part records of the upload in
// the set at) that need says into as, the key's set of the current map
// or the upload's own, where rec, the artifact's record (its striping
// set), places part i: decoded from their own drives, encoded with as's
// policy, each copy checked against the part's size and ETag. It returns
// the artifact's parts, in order (the copies, and the others as they
// are), and drop, which deletes every shard file it committed; on error
// it has called it.
func (e *Engine) copyParts(ctx context.Context, tenant, container, key string, at uploadAt, parts []*record, need []bool, as artSet, rec *record) ([]part, func(), error) {
	codec, err := e.codec(as.data, as.parity, rec.StripeSize)
	if err != nil {
		return nil, nil, err
	}
	type placed struct {
		drives    []driver.Driver
		shard     driver.Shard
		committed []bool
	}
	var done []placed
	drop := func() {
		for _, p := range done {
			e.deleteShards(ctx, p.drives, p.shard, p.committed)
		}
	}
	wq := max(as.data, as.parity+1)
	out := make([]part, len(parts))
	answered := make([]bool, len(at.drives))
	for j := range answered {
		answered[j] = true
	}
	for i, src := range parts {
		pt := src.Parts[0]
		out[i] = pt
		if !need[i] {
			continue
		}
		// The part's record, as every drive of the upload's set holds it,
		// reads its data wherever its striping put it (artifactAt).
		recs := make([]*record, len(at.drives))
		for j := range recs {
			r := *src
			r.Shard = j
			recs[j] = &r
		}
		a, err := e.artifactAt(tenant, container, key, location{m: at.m, pg: at.pg, drives: at.drives, recs: recs, raw: recs, answered: answered}, src)
		if err != nil {
			drop()
			return nil, nil, err
		}
		var id [16]byte
		rand.Read(id[:])
		drives, derrs := e.partDrives(as.m, rec, i)
		p := placed{drives: drives, shard: shardOf(tenant, container, key, rec.partPG(i), id), committed: make([]bool, len(drives))}
		done = append(done, p)
		digest, release := newETagHash(true)
		body := a.Reader(ctx, 0, pt.Size)
		size, err := e.putShards(ctx, codec, drives, derrs, p.shard, body, wq, digest, p.committed)
		body.Close()
		sum := digest.Sum(nil)
		release()
		if err == nil && (size != pt.Size || !etagMatches(pt.ETag, sum)) {
			err = fmt.Errorf("%w: a part's bytes read do not match its size or ETag", ErrBadDigest)
		}
		if err != nil {
			drop()
			return nil, nil, fmt.Errorf("engine: complete upload: copy part %d into map epoch %d pg %d: %w", i+1, as.m.Epoch, rec.partPG(i), err)
		}
		out[i] = part{DataID: id, Size: pt.Size, ETag: pt.ETag}
	}
	return out, drop, nil
}

// preCopy is the copying of parts a completion does before it takes the
// upload's lock (copyAhead): copying can take longer than the lease.
type preCopy struct {
	at     uploadAt
	as     artSet
	stripe record     // the artifact record's striping the copies are placed by
	src    [][16]byte // the chosen parts' data ids
	parts  []part     // the artifact's parts: the copies, and the others
	drop   func()     // deletes the copies
}

// fits reports whether p was made for the upload at and the artifact set
// as: the upload's map, and the artifact's map and PG, are still those.
func (p *preCopy) fits(at uploadAt, as artSet) bool {
	return p != nil && p.at.m.Epoch == at.m.Epoch && p.at.pg == at.pg && p.as.m.Epoch == as.m.Epoch && p.as.pg == as.pg
}

// copyAhead copies, without the upload's lock, the parts a completion of
// the upload with parts would copy (CompleteUpload): nil if there are
// none or anything is amiss, which the completion, under the lock, then
// finds and answers. The completion uses the copies only if it chooses
// the same parts' data under the same maps; else it drops them.
func (e *Engine) copyAhead(ctx context.Context, tenant, container, key, uploadID string, parts []CompletePart) *preCopy {
	up, at, err := e.activeUpload(ctx, tenant, container, key, uploadID)
	if err != nil {
		return nil
	}
	_, recs, err := e.allParts(ctx, tenant, container, partsID(uploadID, up), at.drives, up.Data)
	if err != nil {
		return nil
	}
	as, moved := e.completionSet(tenant, container, key, at, up)
	rec := record{Data: as.data, Parity: as.parity, StripeSize: up.StripeSize, PG: as.pg}
	if moved {
		e.setStriping(&rec, as.m, stripeWidth(as.m))
	} else {
		rec.Seed, rec.Width, rec.PGCount, rec.Layout = up.Seed, up.Width, up.PGCount, up.Layout
	}
	chosen := make([]*record, len(parts))
	need := make([]bool, len(parts))
	src := make([][16]byte, len(parts))
	copying := false
	for i, cp := range parts {
		p, ok := recs[cp.Number]
		if !ok || strings.Trim(cp.ETag, `"`) != p.ETag || len(p.Parts) != 1 {
			return nil
		}
		chosen[i], src[i] = p, p.Parts[0].DataID
		need[i] = moved || p.partPG(0) != rec.partPG(i)
		copying = copying || need[i]
	}
	if !copying {
		return nil
	}
	out, drop, err := e.copyParts(ctx, tenant, container, key, at, chosen, need, as, &rec)
	if err != nil {
		return nil
	}
	return &preCopy{at: at, as: as, stripe: rec, src: src, parts: out, drop: drop}
}
