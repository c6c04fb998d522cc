package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/zeebo/xxh3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/erasure"
	"github.com/vaultaire/vaultaire/placement"
)

// Striping across placement groups (3FS-style): a large plain Put is cut
// into parts of stripeChunkStripes stripes each, and part i's shard files
// go to PG stripePGs(seed)[i mod Width] instead of the key's own PG, whose
// drives keep the records only. The rule of which PG (partPG) and which
// drives (partDrives) hold a part lives here and nowhere else.

// stripeChunkStripes is the number of stripes in each part of a striped
// Put: 4 MiB of data with the default 1 MiB stripe, so that each drive
// gets 1 to 2 MiB of a part (k=4, k=2) in one sequential file, and a
// window of stripeReadAhead parts in flight per request is 16 MiB. Four
// stripes with a window of 4 came out best of 4 or 8 stripes and windows
// of 4 or 8 in BenchmarkStriped: a window of 8 read about 20% faster and
// needed 1.7 times the memory (bench/RESULTS.md).
const stripeChunkStripes = 4

// maxWidth is the widest stripe a record may name.
const maxWidth = placement.MaxWidth

// stripeReadAhead is how many parts of a striped artifact a read decodes
// at once, in parallel, from different drive sets; stripeReadBurst how
// many it may while the engine's shared budget of extra parts lasts.
const (
	stripeReadAhead = 4
	stripeReadBurst = 8
)

// stripeWriteAhead is how many parts a striped Put writes at once, in
// parallel, to different drive sets, and stripeWriteBurst how many it may
// while the engine's shared budget of extra parts (partBudget) lasts; the
// burst bounds how many parts in a row a crashed Put can have left
// (deleteIntentParts). In BenchmarkStriped (width 8, drives capped at
// 40 MiB/s) a window of 4 wrote at 1.4x the unstriped rate, 8 at
// 1.8-1.9x and 12 at 1.95-2.1x, with a peak RSS of 77, 112 and 142 MiB
// (bench/RESULTS.md): every Put gets 8, and a lone stream 12.
// Variables only so that the benchmark can compare windows; never larger
// than maxStripeWriteAhead, which the collector relies on.
var (
	stripeWriteAhead = 8
	stripeWriteBurst = 12
)

// maxStripeWriteAhead bounds stripeWriteBurst.
const maxStripeWriteAhead = 16

// stripeBudgetParts is how many parts, beyond their own windows, all the
// striped requests of an engine may have in flight together: a lone
// stream reaches its burst, and many streams at once cost no more memory
// than their base windows plus this (16 parts of 4 MiB).
const stripeBudgetParts = 16

// partBudget is an engine's shared budget of extra parts in flight (a
// counting semaphore). A nil budget has none to give.
type partBudget chan struct{}

// take takes up to n parts of the budget, without waiting, and returns how
// many it took; the caller gives them back.
func (b partBudget) take(n int) int {
	for i := range n {
		select {
		case b <- struct{}{}:
		default:
			return i
		}
	}
	return max(n, 0)
}

// give returns n parts taken.
func (b partBudget) give(n int) {
	for range n {
		<-b
	}
}

// stripeWidth returns the stripe width new writes use under m: the map's
// Width, at most its PG count; 1 means unstriped.
func stripeWidth(m *placement.Map) int {
	return max(1, min(m.Width, m.PGCount(), maxWidth))
}

// stripePGs returns the width distinct PGs, of pgCount, that seed draws:
// part i of a striped record is in the i mod width'th.
func stripePGs(seed uint64, width, pgCount int) []uint32 {
	rng := rand.New(rand.NewPCG(seed, 0x7374726970650000))
	pgs := make([]uint32, 0, width)
	for len(pgs) < width && len(pgs) < pgCount {
		if pg := uint32(rng.IntN(pgCount)); !slices.Contains(pgs, pg) {
			pgs = append(pgs, pg)
		}
	}
	return pgs
}

// striped reports whether r's parts are spread over several PGs.
func (r *record) striped() bool { return r.Width > 1 && !r.IsInline }

// partPG returns the PG holding part p's shard files: the one rule.
func (r *record) partPG(p int) uint32 {
	if !r.striped() {
		return r.PG
	}
	return stripePGs(r.Seed, r.Width, r.PGCount)[(p+r.Offset)%r.Width]
}

// layoutOf fingerprints the drive sets, in m, of the PGs a record striped
// with seed, width and pgCount uses; 0 if m cannot place it (another PG
// count). A map that changes any of those sets changes it.
func layoutOf(m *placement.Map, seed uint64, width, pgCount int) uint64 {
	if m.PGCount() != pgCount {
		return 0
	}
	h := xxh3.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(m.Policy.Data)<<32|uint64(m.Policy.Parity))
	h.Write(b[:])
	for _, pg := range stripePGs(seed, width, pgCount) {
		for _, id := range m.Set(pg) {
			h.WriteString(string(id))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return h.Sum64() | 1
}

// stripedIn reports whether r's parts are where m puts them: true for an
// unstriped record.
func stripedIn(r *record, m *placement.Map) bool {
	return !r.striped() || r.Layout == layoutOf(m, r.Seed, r.Width, r.PGCount)
}

// seedChoices is how many random seeds balancedSeeds weighs for a map,
// and keptSeeds how many of the best it keeps.
const (
	seedChoices = 16384
	keptSeeds   = 32
)

// seedCache holds the balanced seeds of the last map and width striped
// under.
type seedCache struct {
	mu    sync.Mutex
	m     *placement.Map
	width int
	seeds []uint64
}

// balancedSeeds returns seeds whose width PGs spread a striped artifact
// most evenly over m's drives: the fewest slots on the busiest drive,
// then on the busiest node. W PGs drawn at random put half again the mean
// load on the busiest drive (12 drives, 4+2, W=8), and the busiest drive
// bounds the throughput of the whole artifact (BenchmarkStriped); the
// best of seedChoices seeds balances it exactly there. The search (a few
// tens of ms) runs once per map and width; the seed alone still gives
// the PGs, so locations stay computed.
func (e *Engine) balancedSeeds(m *placement.Map, width int) []uint64 {
	c := &e.seeds
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == m && c.width == width {
		return c.seeds
	}
	node := make(map[placement.DriveID]placement.NodeID, len(m.Drives))
	for _, d := range m.Drives {
		node[d.ID] = d.Node
	}
	drives := make(map[placement.DriveID]int, len(m.Drives))
	nodes := make(map[placement.NodeID]int)
	bestScore := -1
	var best []uint64
	for range seedChoices {
		seed := rand.Uint64()
		clear(drives)
		clear(nodes)
		busiest, busiestNode := 0, 0
		for _, pg := range stripePGs(seed, width, m.PGCount()) {
			for _, id := range m.Set(pg) {
				drives[id]++
				nodes[node[id]]++
				busiest, busiestNode = max(busiest, drives[id]), max(busiestNode, nodes[node[id]])
			}
		}
		switch score := busiest<<16 | busiestNode; {
		case bestScore < 0 || score < bestScore:
			best, bestScore = append(best[:0], seed), score
		case score == bestScore && len(best) < keptSeeds:
			best = append(best, seed)
		}
	}
	c.m, c.width, c.seeds = m, width, best
	return best
}

// setStriping makes rec, about to be written under m, striped with width
// PGs and one of m's balanced seeds; a no-op for a width of 1.
func (e *Engine) setStriping(rec *record, m *placement.Map, width int) {
	if width <= 1 {
		return
	}
	seeds := e.balancedSeeds(m, width)
	rec.Seed, rec.Width, rec.PGCount = seeds[rand.IntN(len(seeds))], width, m.PGCount()
	rec.Layout = layoutOf(m, rec.Seed, rec.Width, rec.PGCount)
}

// partDrives resolves the drives, in shard order, of part p of rec as map
// m places it (m is the map rec is placed in: stripedIn).
func (e *Engine) partDrives(m *placement.Map, rec *record, p int) ([]driver.Driver, []error) {
	return e.pgDrives(m, rec.partPG(p))
}

// stripeMap returns the newest map, the current one first then the
// MapHistory, in which striped rec is placed, or nil if none is (the
// history no longer reaches it). The maps are the container's layout
// (mapFor), then the remote layout, where tiered records live.
func (e *Engine) stripeMap(tenant, container string, rec *record) *placement.Map {
	cur := e.mapFor(tenant, container)
	curs := append([]*placement.Map{cur}, e.otherLayouts(cur)...)
	if raw := e.cfg.Topology.Map(); raw != nil && raw.HasRemote() && cur.Layout != placement.LayoutRemote {
		curs = append(curs, e.layoutMap(raw, placement.LayoutRemote))
	}
	for _, c := range curs {
		for _, m := range append([]*placement.Map{c}, e.olderMaps(c)...) {
			if stripedIn(rec, m) {
				return m
			}
		}
	}
	return nil
}

// deletePartShards removes the shard files of slot j of every part of rec,
// a record read from home (slot j of rec.PG's set): on home for the parts
// in rec.PG, on the part's own drive for the others, reached without a
// map fence; with home nil, only the latter. Parts whose map the history
// no longer has are left (logged): nothing can find them.
func (e *Engine) deletePartShards(ctx context.Context, tenant, container, key string, rec *record, j int, home driver.Driver, skip func(part) bool) error {
	var m *placement.Map
	var errs []error
	for p, pt := range rec.Parts {
		if skip != nil && skip(pt) {
			continue
		}
		pg := rec.partPG(p)
		d := home
		if pg != rec.PG {
			if m == nil {
				if m = e.stripeMap(tenant, container, rec); m == nil {
					e.log.Warn("striped part's map is gone: shard files left", "pg", pg, "shard", j)
					return nil
				}
			}
			// Unfenced: the file's name holds rec's own random data id, so
			// no newer write can own it, and a fence would refuse every
			// delete planned under a map whose PG has moved since, which is
			// when the migrator replaces rec (its parts would stay forever).
			set := m.Set(pg)
			if j >= len(set) {
				continue
			}
			var err error
			if d, err = e.cfg.Topology.Drive(set[j]); err != nil || d == nil {
				continue // a drive gone from the topology: nothing reaches its files
			}
		}
		if d == nil {
			continue // no home given: only the parts in other PGs
		}
		err := d.DeleteShard(ctx, shardOf(tenant, container, key, pg, pt.DataID))
		if err != nil && !errors.Is(err, driver.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stripedPart is one part of a striped Put being written: its drives, its
// shard file and the drives that committed it.
type stripedPart struct {
	drives    []driver.Driver
	shard     driver.Shard
	committed []bool
}

// putStriped stores body as the parts of rec, striped under m (rec's
// Seed and Width set): it cuts body into parts of stripeChunkStripes
// stripes and writes up to stripeWriteAhead of them at once, each to its
// own PG's drives (putShards, a write quorum each), the MD5 of the whole
// body computed in order alongside; up to stripeWriteBurst while the
// engine's budget of extra parts lasts. Memory is that many parts. A
// body longer than size (if known, else than maxSize) fails with
// ErrIncompleteBody (ErrTooLarge). It returns the parts, drop, which
// removes every shard file committed, and done, to call once the record
// naming the parts is written; on error it has called drop.
//
// Before the first part it writes a stripe intent (see
// CollectStripeOrphans) to rec's own PG's drives, naming where the parts
// go; drop and done remove it. A crash before either leaves it, for the
// collector to delete the parts if no record names them.
func (e *Engine) putStriped(ctx context.Context, codec *erasure.Codec, m *placement.Map, rec *record, tenant, container, key string, body io.Reader, size, maxSize int64, wq int, digest hash.Hash) (parts []part, drop func(), done func() (degraded bool), err error) {
	base, unintend, err := e.writeIntent(ctx, m, rec, tenant, container, key, "", wq)
	if err != nil {
		return nil, nil, nil, err
	}
	limit := maxSize
	if size >= 0 {
		limit = size
	}
	body = io.LimitReader(body, limit+1)
	chunk := stripeChunkStripes * rec.StripeSize
	var placed []*stripedPart
	drop = func() {
		for _, pp := range placed {
			e.deleteShards(ctx, pp.drives, pp.shard, pp.committed)
		}
		unintend()
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	window := min(stripeWriteAhead, maxStripeWriteAhead)
	extra := e.parts.take(min(stripeWriteBurst, maxStripeWriteAhead) - window)
	defer e.parts.give(extra)
	window += extra
	free := make(chan []byte, window)
	for range window {
		free <- nil // allocated on first use
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var werr error // the first part write's error
	var total int64
	for i := 0; ; i++ {
		buf := <-free
		mu.Lock()
		failed := werr != nil
		mu.Unlock()
		if failed {
			break
		}
		if buf == nil {
			buf = make([]byte, chunk)
		}
		got, rerr := erasure.ReadFull(body, buf)
		if rerr != nil {
			err = fmt.Errorf("engine: put %s: read body: %w", container, rerr)
			break
		}
		if got == 0 && i > 0 {
			break
		}
		if total += int64(got); total > limit {
			err = ErrTooLarge
			if size >= 0 {
				err = ErrIncompleteBody
			}
			break
		}
		digest.Write(buf[:got])
		id := intentDataID(base, i)
		parts = append(parts, part{DataID: id, Size: int64(got)})
		drives, derrs := e.partDrives(m, rec, i)
		pp := &stripedPart{drives: drives, shard: shardOf(tenant, container, key, rec.partPG(i), id), committed: make([]bool, len(drives))}
		placed = append(placed, pp)
		wg.Go(func() {
			_, perr := e.putShards(wctx, codec, pp.drives, derrs, pp.shard, bytes.NewReader(buf[:got]), wq, nil, pp.committed)
			if perr != nil {
				mu.Lock()
				if werr == nil {
					werr = fmt.Errorf("engine: put pg %d: %w", pp.shard.PG, perr)
				}
				mu.Unlock()
				cancel()
			}
			free <- buf
		})
		if got < len(buf) {
			break
		}
	}
	if err != nil {
		cancel() // the body failed: stop the parts in flight
	}
	wg.Wait()
	if err == nil {
		err = werr
	}
	if err != nil {
		drop()
		return nil, nil, nil, err
	}
	// A part committed on its write quorum but not on every drive of its
	// set is degraded, and the key's own records, on every drive, do not
	// show it to the scanner: done says so, for the caller to queue a heal
	// once the record is stored (probe H2 of session 7: a missing part
	// shard waited for a read or the monthly scrub, and losing a node
	// meanwhile made the artifact unreadable).
	degraded := false
	for _, pp := range placed {
		for j, d := range pp.drives {
			degraded = degraded || d == nil || !pp.committed[j]
		}
	}
	return parts, drop, func() bool { unintend(); return degraded }, nil
}
