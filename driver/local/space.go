package local

import (
	"time"

	"golang.org/x/sys/unix"
)

// Free space kept for deletes. A drive whose file system has less than
// spaceReserve available (a sixteenth of a smaller one) refuses what adds data (new shards, shard writes,
// record writes that grow the index) with driver.ErrNoSpace, and goes on
// taking deletes, tombstones and the record log and index commits they
// need. Without it a full drive refused deletes too: each needs a frame of
// the record log (a new segment after a flush needs fresh blocks) and
// index pages, so a full store could not be emptied through S3 at all.
var spaceReserve int64 = 64 << 20

// spaceReserveShare: a file system smaller than spaceReserve times this
// (a test's tmpfs) keeps 1/spaceReserveShare of itself instead, but at
// least spaceFloor: what a record log flush needs (a new segment's 1 MiB
// zero-fill, the index pages of up to flushBytes of records) with room for
// the writes that pass within a spaceCheck.
var spaceReserveShare int64 = 16

const spaceFloor = 4 << 20

// spaceCheck is how long a look at the file system's free space is
// reused: at a GB/s, well under the reserve is written meanwhile.
const spaceCheck = 10 * time.Millisecond

// smallRecord is the size of a record a drive short of space still takes
// when the key holds no larger one: a tombstone or a delete marker, a
// large artifact's record without its shards.
const smallRecord = 1 << 10

// lowOnSpace reports whether d's file system has less than spaceReserve
// (or a sixteenth of its size) available, looking at most every
// spaceCheck.
func (d *Driver) lowOnSpace() bool {
	now := time.Now().UnixNano()
	at := d.spaceAt.Load()
	if now-at < int64(spaceCheck) || !d.spaceAt.CompareAndSwap(at, now) {
		return d.spaceLow.Load()
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.dir, &st); err != nil {
		d.spaceLow.Store(false) // cannot tell: the writes themselves will
		return false
	}
	reserve := min(spaceReserve, max(int64(st.Blocks)*int64(st.Bsize)/spaceReserveShare, spaceFloor))
	low := int64(st.Bavail)*int64(st.Bsize) < reserve
	d.spaceLow.Store(low)
	return low
}
