package local

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Trimming the index's mapped pages (see trimIndex): a drive unmaps them
// once its calls may have mapped trimBytes since the last time, or after
// trimInterval if they mapped anything at all.
const (
	trimBytes    = 8 << 20
	trimInterval = time.Second
	// faultWindow is what one index lookup is taken to map besides the
	// bytes it reads. Linux maps the cached pages around a faulting one
	// (fault-around), whole large folios on ext4 since 6.16: one read of
	// a bbolt index written moments before mapped 128 KiB on this project's
	// 6.18 VM, 75 KiB on average over 100 random reads, and one read of a
	// file written in 1 MiB writes mapped 1 MiB.
	faultWindow = 256 << 10
	// itemCost is what a listing is taken to map per record besides its
	// bytes: a sparse leaf (after deletes) can hold a record or two per
	// 4 KiB page.
	itemCost = 4 << 10
	// trimGrowth is how much the process's file-backed resident memory
	// must have grown since the last trim for a trim to run: a drive's
	// count of what its calls may have mapped is a guess that lookups of
	// pages already mapped (a hot key) inflate, and each trim costs a
	// page-table walk and the faults that map the pages again.
	trimGrowth = 1 << 20
)

// trims are the process's drives, trimmed together: whether to trim is
// decided by the file-backed memory the process holds resident, which
// counts every drive's mapping (and the executable's pages) at once.
var trims struct {
	mu     sync.Mutex
	drives map[*Driver]struct{}
	base   int64        // fileResident() after the last trim, -1 if unknown
	count  atomic.Int64 // drives trimmed (tests)
}

// registerTrim adds d to the drives trimmed together; unregisterTrim
// takes it out before it closes.
func registerTrim(d *Driver) {
	trims.mu.Lock()
	defer trims.mu.Unlock()
	if trims.drives == nil {
		trims.drives = map[*Driver]struct{}{}
	}
	trims.drives[d] = struct{}{}
}

func unregisterTrim(d *Driver) {
	trims.mu.Lock()
	defer trims.mu.Unlock()
	delete(trims.drives, d)
}

// touch records that a call may have mapped n bytes of index.db.
func (d *Driver) touch(n int) { d.touched.Add(int64(n)) }

// maybeTrim trims the process's drives if the calls since d's last trim
// may have mapped trimBytes, or anything trimInterval ago, and the
// process's file-backed resident memory grew by trimGrowth since the last
// trim. It must be called between begin and end (d.db open). Only one
// caller trims at a time.
func (d *Driver) maybeTrim() {
	t := d.touched.Load()
	if t <= 0 {
		return
	}
	now := time.Now().UnixNano()
	last := d.lastTrim.Load()
	if t < trimBytes && now-last < int64(trimInterval) {
		return
	}
	if !d.lastTrim.CompareAndSwap(last, now) {
		return // another caller is trimming
	}
	d.touched.Add(-t)
	if !trims.mu.TryLock() {
		return // another drive is trimming them all
	}
	defer trims.mu.Unlock()
	if rss := fileResident(); rss >= 0 && rss-trims.base < trimGrowth {
		return // nothing much mapped since: the pages were mapped already
	}
	for o := range trims.drives {
		if o == d { // its call holds d.mu already
			d.trim()
			continue
		}
		end, err := o.begin(context.Background())
		if err != nil {
			continue // closing or offline
		}
		o.trim()
		end()
	}
	trims.base = fileResident()
}

// trim unmaps the index's pages; it must be called between begin and end.
func (d *Driver) trim() {
	trims.count.Add(1)
	if err := d.db.View(func(tx *bolt.Tx) error { return d.dropIndexPages(tx) }); err != nil {
		d.log.Warn("unmapping index pages failed", "err", err)
	}
}

// dropIndexPages drops the pages of index.db that bbolt's memory map holds
// resident in this process. tx must be open: it holds bbolt's mmap lock,
// which a remap (the file growing) takes exclusively, so the mapping cannot
// move meanwhile, and it covers at least tx.Size() bytes.
//
// bbolt reads the index through a read-only shared mapping of index.db and
// writes it with pwrite. Every page a lookup, a listing or a commit reads
// stays mapped afterwards, so the process's resident set (VmRSS, VmHWM)
// grows to the whole index: for small inline artifacts that is most of
// what was written (4 drives × 25,000 records of 4 KiB PUTs held ~400 MiB
// of index.db resident beside ~25 MiB of Go heap). Those pages are page
// cache, not process memory. Unmapping them (MADV_DONTNEED, which for a
// shared file mapping only clears page-table entries; bbolt never writes
// through the mapping) leaves them cached and reclaimable like any other
// file page, and the next access maps them again (a minor fault, no I/O
// while they are cached).
func (d *Driver) dropIndexPages(tx *bolt.Tx) error {
	return dropMapped(d.db.Info().Data, int(tx.Size()))
}
