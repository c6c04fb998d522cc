// Package local implements driver.Driver on a directory of a local file
// system: one Driver per disk.
//
// # Layout
//
// Under Config.Dir:
//
//	format.json                      {"version":1,"cluster_id":...,"drive_id":...}
//	index.db                         bbolt database: the sorted record index
//	wal-<seq>.log                    the record log in front of index.db
//	packs/pack-<id>.dat              the data of large records (pack.go)
//	shards/<pg>/<nn>/<name>          committed shard files
//	tmp/<random>                     shard writes in progress
//
// <pg> is the placement group as (at least) 4 lowercase hex digits, <name> is
// the shard name (16 to 128 lowercase hex characters, checked by
// driver.Shard.Validate before anything touches the disk) and <nn> its first
// two characters. No other caller-provided string ever becomes part of a
// path: record keys live only inside index.db, as bbolt keys of the bucket
// "records". In an index created before packs (value format 1) each value
// is the 16-byte Version followed by the data; in one created since
// (format 2, the meta bucket's "value-format") the Version, a kind byte,
// then the data, or for data of 4 KiB and more a reference to where a
// pack file holds it (see pack.go).
//
// format.json is written once, atomically, on the first Open; later Opens
// refuse a drive formatted for another cluster (driver.ErrForeignDrive) or
// carrying another drive id. bbolt's file lock on index.db keeps a second
// process from opening the same drive.
//
// # Failed and replaced drives
//
// Attach is Open for a server: a drive that cannot be opened (a failed or
// read-only disk, a path that is not a directory, a foreign drive) comes
// back offline rather than as an error, every call failing with
// driver.ErrOffline. Probe, called periodically, takes a drive offline when
// it stops serving (format.json gone or foreign, index.db replaced, a test
// write under tmp/ failing, as on a disk remounted read-only) and opens an
// offline one again. A directory that has come back empty (a replaced disk)
// is formatted afresh with the configured cluster and drive ids, so healing
// can refill it; a drive whose format.json names another cluster or drive,
// or an index.db without format.json, is never formatted over. shards/ or
// tmp/ removed under a running Driver are recreated by the next write.
//
// # Full drives
//
// ENOSPC and EDQUOT from shard writes, commits and record writes come back
// wrapping driver.ErrNoSpace (and the errno), so the engine and the S3
// layer can tell a full drive from a failing one. A full drive stays
// online: Probe does not count a write probe that fails for want of space,
// so the drive keeps serving reads and deletes (which free space) and its
// writes succeed again as soon as there is room.
//
// # Durability
//
// Unless Config.NoSync is set, an acknowledged write is on stable storage:
//
//   - ShardWriter.Commit fsyncs the temp file, renames it over the final
//     name and fsyncs the directory holding it; directories it had to create
//     are fsynced into their parents first. A crash before the rename leaves
//     a file in tmp/, which the next Open removes, so nothing is visible.
//   - PutRecord and DeleteRecord return after the record log frame holding
//     them (wal-*.log, wal.go) has been written and fdatasynced; concurrent
//     calls share one frame and one fdatasync (group commit). The records
//     are served from memory until a flush, running beside later writes,
//     writes them into index.db in one bbolt transaction (committed and
//     fsynced); that happens once 4,096 records or 4 MiB are held, a log
//     segment reaches 64 MiB, the drive is quiet for a second, or it is
//     closed. Open replays the frames index.db does not hold yet, in order,
//     up to the first torn or corrupt one (never acknowledged: frames are
//     acknowledged in order). A log segment is filled with zeros ahead of
//     its frames, so an append's fdatasync writes no file-system metadata.
//   - DeleteShard fsyncs the directory the file was removed from.
//   - A flush moving record data to a pack appends it and fdatasyncs the
//     pack before the transaction referencing it commits; Open cuts the
//     active pack back to the end that index.db has committed.
//
// # Memory
//
// bbolt reads index.db through a read-only shared memory map, and every page
// a call reads stays mapped, counting in the process's resident set: with
// small inline artifacts the whole index would end up resident. A drive
// unmaps the index's pages (MADV_DONTNEED, which leaves them in the page
// cache) once its calls may have mapped about 8 MiB since the last time,
// or a second later, and a long listing does so as it goes; see trim.go.
//
// # Record cache
//
// GetRecord keeps the records that a client's GET or HEAD read
// (driver.FillKey) fetched from index.db in a cache (at most 8 MiB of
// values of up to 64 KiB each, evicted at random), so that a key read
// again costs a map lookup instead of a bbolt read transaction (and, for
// data held in a pack, a pread): every GET or HEAD reads the record of
// each drive of the set. Other reads (listings, deletes, heals) use the
// cache but do not fill it. The cache only ever holds what index.db held as
// of the last flush, behind the record log's mutations, which override it:
// a read fills it only if no flush committed since the read began, each
// flush drops the keys it wrote as it commits, and a reopen starts afresh
// (see cache.go). PeekRecord answers from the record log's memory and the
// cache alone, never waiting for I/O, so that the engine can read a hot
// key's records without a goroutine per drive. Reads whose context carries
// driver.Uncached (the scrubber's) bypass the cache.
//
// # Free index pages
//
// bbolt never shrinks index.db: pages freed by deletes, overwrites and the
// copy-on-write of every commit are reused by later commits but stay
// allocated meanwhile. Once enough have been freed (1 MiB and 1/32 of the
// index), the drive punches holes in them (fallocate PUNCH_HOLE; the file
// keeps its size) in short rounds that hold writers off for at most 50 ms,
// at most every second, so deleted data frees disk space; see reclaim.go.
// A file system that cannot punch holes keeps them allocated.
//
// # Usage accounting
//
// Info reports Usage.Used as the bytes of committed shard files, counted by
// a walk of shards/ on Open and kept up to date by Commit and DeleteShard,
// plus the size of index.db and the blocks the packs occupy (looked at
// most every 10 s). The shard count is approximate: concurrent
// commits replacing the same name, or files changed behind the Driver's back,
// can make it drift until the next Open.
package local
