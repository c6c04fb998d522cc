package local

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Returning index.db's free pages to the file system (see punchFree): once
// the free pages not yet returned reach reclaimMin bytes and 1/reclaimFrac
// of the index, at most every reclaimInterval, and in any case for no more
// than about 1/reclaimDuty of the drive's time.
//
// The copy-on-write of every commit frees a few pages that the next commit
// reuses: with 16 PUTs of 4 KiB in flight that alone kept a few hundred KiB
// free and pending, and punching them was a wasted journal operation each
// (with 256 KiB and 1/64, reclaim took 5 % of the CPU of a PUT-only run
// and held its writers; with these thresholds it does not show).
const (
	reclaimMin      = 1 << 20
	reclaimFrac     = 32
	reclaimInterval = time.Second
	reclaimDuty     = 100
	// reclaimCheck is how often maybeReclaim may look (a stat of
	// index.db).
	reclaimCheck = 100 * time.Millisecond
)

// maybeReclaim is checkReclaim at most every reclaimCheck, for callers
// as frequent as record writes. It must be called between begin and end.
func (d *Driver) maybeReclaim() {
	now, last := time.Now().UnixNano(), d.lastCheck.Load()
	if now-last < int64(reclaimCheck) || !d.lastCheck.CompareAndSwap(last, now) {
		return
	}
	d.checkReclaim()
}

// checkReclaim schedules a reclaim if enough index pages have been freed
// since the last one. It must be called between begin and end (d.db open).
func (d *Driver) checkReclaim() {
	if d.noPunch.Load() || d.reclaiming.Load() {
		return
	}
	st := d.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * d.pageSize // pending pages become free
	if free < reclaimMin {
		return
	}
	size := d.committedSize()
	if n := d.unreturned(free, size); n < reclaimMin || n*reclaimFrac < size {
		return
	}
	d.scheduleReclaim(time.Until(time.Unix(0, d.nextReclaim.Load())))
}

// unreturned returns the bytes of index.db's free pages still allocated
// and not left so by the last complete pass: the blocks the file holds
// beyond its live pages (size less the free bytes), less d.residue.
//
// The free pages themselves cannot tell: a page punched by one pass can be
// reused by a commit and freed again by the next, allocated once more.
func (d *Driver) unreturned(free, size int64) int64 {
	a := allocatedBytes(d.db.Path())
	if a < 0 {
		return free
	}
	return a - (size - free) - d.residue.Load()
}

// pendingFree returns unreturned for the index as it is now.
func (d *Driver) pendingFree() int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed.Load() || d.offline != nil || d.db == nil {
		return 0
	}
	st := d.db.Stats()
	return d.unreturned(int64(st.FreePageN+st.PendingPageN)*d.pageSize, d.committedSize())
}

// committedSize returns index.db's size as of its last commit, from a read
// transaction. (d.indexSize, noted by the committer inside its
// transaction, misses the pages the commit itself allocates when it
// writes the changed nodes: after a flush growing the index by 5 MiB,
// unreturned counted those 5 MiB of new live pages as free ones not
// returned.) It must be called between begin and end, or with d.mu held:
// no reader that punchFree does not wait for.
func (d *Driver) committedSize() int64 {
	var size int64
	if err := d.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		return d.indexSize.Load()
	}
	return size
}

// scheduleReclaim runs reclaim after wait unless one is scheduled.
func (d *Driver) scheduleReclaim(wait time.Duration) {
	if d.reclaiming.CompareAndSwap(false, true) {
		// Not in the caller's goroutine: it holds d.mu shared, which
		// reclaim takes exclusively.
		time.AfterFunc(max(wait, 0), d.reclaim)
	}
}

// reclaim returns a round of the index's free pages to the file system and
// schedules the next round if there are more.
func (d *Driver) reclaim() {
	n, more, err := d.punchFree()
	d.nextReclaim.Store(time.Now().Add(reclaimInterval).UnixNano())
	d.reclaiming.Store(false)
	if n > 0 {
		d.log.Debug("free index pages returned", "bytes", n)
	}
	switch {
	case errors.Is(err, errNoPunch):
		d.noPunch.Store(true)
		d.log.Info("index free pages stay allocated: the file system cannot punch holes", "err", err)
	case err != nil:
		d.log.Warn("returning free index pages failed", "err", err)
	case more:
		d.scheduleReclaim(reclaimRoundGap)
	case d.pendingFree() >= reclaimMin:
		// Pages freed behind the pass: another, even if no write comes.
		d.scheduleReclaim(reclaimInterval)
	case d.passYoung.Load() > 0 && !d.followUp.Swap(true):
		// Pages the pass left to the next one, however few: one more
		// pass returns them if nothing takes them meanwhile (it leaves
		// none but those freed since, which wait for the thresholds).
		d.scheduleReclaim(reclaimInterval)
		return
	}
	if !more {
		d.followUp.Store(false)
	}
}

// punchBlock returns the block size punchFree punches whole blocks of:
// the file system's (statfs f_bsize: larger on XFS or ext4 with bigger
// blocks or bigalloc, where punching part of a block only zeroes it), at
// least 4 KiB.
func (d *Driver) punchBlock() int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(d.dir, &st); err != nil || st.Bsize < 4096 {
		return 4096
	}
	return int64(st.Bsize)
}

// errNoPunch marks a file system that cannot punch holes.
var errNoPunch = errors.New("punching holes not supported")

// Bounds of one round of punchFree, which holds the drive's writers off: a
// punch is a file-system journal operation (about 15 ms each on this
// project's loaded VM).
const (
	reclaimRoundRuns = 32
	reclaimRoundGap  = 200 * time.Millisecond
)

// reclaimRoundTime bounds a round's walk too, punching or not: a walk
// that finds little to punch held the writers off for the whole index
// (0.15 to 0.5 s for 130 MiB of 1 KiB pages on this project's VM, growing
// with the index). (A variable for tests.)
var reclaimRoundTime = 50 * time.Millisecond

// punchFree deallocates the blocks of index.db's free pages (punching holes;
// the file keeps its size), at most reclaimRoundRuns runs of pages or
// reclaimRoundTime per call, and returns the bytes punched and whether
// free pages were left for another round.
//
// bbolt never shrinks its file: the pages freed by deletes and by the
// copy-on-write of every commit go on its freelist and are reused by later
// commits, but stay allocated on disk meanwhile, so deleting half of what a
// drive holds frees no space. A free page holds nothing anyone reads: bbolt
// writes a page (pwrite, allocating blocks again) before a tree refers to
// it.
//
// Which free pages: only those the walk before this one found free too
// (d.seen). The pages a commit frees are mostly the old copies of the
// nodes it rewrote, which the next commits take again: while an index
// grows, punching them as soon as they are free undid itself at every
// flush (review 20 M2: 57 of 60 MiB punched while an index grew to 28 MiB
// were taken again, TestReclaimSparesPagesTheNextFlushTakes). A page freed
// since the last walk is left for the next pass, at most reclaimInterval
// later if nothing takes it; the pass's residue leaves such pages out, so
// that the next pass comes.
//
// Which pages are free: the read-write transaction is begun with d.mu held
// exclusively, so no read transaction is open, and beginning it releases
// every pending page (freed by a commit but possibly read by an older
// transaction) to the free list; Freed then reports exactly the free pages.
// d.mu is released at once: read transactions begun afterwards see the
// last commit, whose tree holds no free page, and writers wait for this
// transaction, so no free page is reused while it punches. It changes
// nothing and is rolled back: no commit, no fsync. Crash safety is bbolt's
// own: the free pages are not part of the tree of the last commit (fsynced),
// the one bbolt falls back to if a later meta page is torn.
func (d *Driver) punchFree() (punched int64, more bool, err error) {
	d.mu.Lock()
	if d.closed.Load() || d.offline != nil || d.db == nil {
		d.mu.Unlock()
		return 0, false, nil
	}
	db, ps, blk := d.db, d.pageSize, d.punchBlock()
	tx, err := db.Begin(true)
	d.mu.Unlock()
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	f, err := os.OpenFile(db.Path(), os.O_RDWR, 0)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	high := int(tx.Size() / ps)
	d.seenMu.Lock()
	defer d.seenMu.Unlock()
	if need := (high + 63) / 64; len(d.seen) < need {
		d.seen = append(d.seen, make([]uint64, need-len(d.seen))...)
	}
	seen := d.seen
	deadline := time.Now().Add(reclaimRoundTime)
	var runs int
	var runStart, runLen, resume int64
	flush := func() error {
		if runLen == 0 {
			return nil
		}
		// Whole blocks only: punching part of one (index pages smaller
		// than a block) would zero it, a write at every pass.
		off := (runStart*ps + blk - 1) / blk * blk
		n := (runStart+runLen)*ps/blk*blk - off
		runLen = 0
		if n <= 0 || isHole(f, off, n) {
			return nil // punched by an earlier round
		}
		// Each round punches at least once, so rounds always progress.
		if runs > 0 && (runs >= reclaimRoundRuns || time.Now().After(deadline)) {
			more = true
			resume = runStart
			return nil
		}
		runs++
		if err := punchHole(f, off, n); err != nil {
			return err
		}
		punched += n
		return nil
	}
	// Pages 0 and 1 are the meta pages. Walk node by node: a node's
	// overflow pages are not free, and their headers are data. A round
	// continues where the last one stopped (a node boundary or a free
	// page, as both are where a walk steps), so a long index is covered
	// in rounds rather than walked from the start each time.
	start := d.reclaimFrom.Load()
	if start <= 2 || start >= int64(high) {
		// (2 too: where a complete pass leaves the next, not only the
		// drive's first pass, 0. Counted once per drive, the free pages
		// of that first pass made every later residue 0, and a drive
		// whose free pages left share blocks with live ones reclaimed
		// every second, punching nothing.)
		start = 2
		// A pass over the whole index begins: what is free now is what
		// it returns. Pages freed behind the walk meanwhile count as
		// new for the next pass.
		st := db.Stats()
		d.passFree.Store(int64(st.FreePageN + st.PendingPageN))
		d.passYoung.Store(0)
	}
	var young int64
	dropped := int(start) // the walk unmaps what it read every trimBytes
	for id := int(start); id < high && !more; {
		if (id-dropped)*int(ps) >= trimBytes {
			if err := dropMapped(db.Info().Data, int(tx.Size())); err != nil {
				return punched, false, fmt.Errorf("unmap index pages: %w", err)
			}
			dropped = id
		}
		info, err := tx.Page(id)
		if err != nil {
			return punched, false, fmt.Errorf("page %d: %w", id, err)
		}
		if info == nil {
			break
		}
		if info.Type == "free" {
			if bit := uint64(1) << (id % 64); seen[id/64]&bit != 0 {
				if runLen == 0 {
					runStart = int64(id)
				}
				runLen++
			} else {
				// Free since the last walk: left for the next.
				if err := flush(); err != nil {
					return punched, false, err
				}
				if more {
					break
				}
				seen[id/64] |= bit
				young++
			}
			id++
			continue
		}
		if err := flush(); err != nil {
			return punched, false, err
		}
		for p := id; p <= id+info.OverflowCount && p < high; p++ {
			seen[p/64] &^= 1 << (p % 64)
		}
		if !more && id > int(start) && time.Now().After(deadline) {
			// Out of time at a node boundary, after at least one
			// node: the next round goes on from here.
			more, resume = true, int64(id)
			break
		}
		id += 1 + info.OverflowCount
	}
	if err := flush(); err != nil {
		return punched, false, err
	}
	d.passYoung.Add(young)
	if more {
		d.reclaimFrom.Store(resume)
	} else {
		d.reclaimFrom.Store(2)
		// What the pass left allocated (parts of blocks; the pages
		// freed behind the walk and those it left for the next pass do
		// not count) is the residue the next pass is measured from.
		st := db.Stats()
		free := int64(st.FreePageN) * ps
		left := int64(0)
		if a := allocatedBytes(db.Path()); a >= 0 {
			left = a - (tx.Size() - free) - max(int64(st.FreePageN)-d.passFree.Load(), 0)*ps - d.passYoung.Load()*ps
		}
		d.residue.Store(max(left, 0))
	}
	// The walk read the header of every node through the mapping.
	return punched, more, dropMapped(db.Info().Data, int(tx.Size()))
}
