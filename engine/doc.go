// Package engine is the one entry point for data operations: it stores,
// reads, lists, copies and deletes tenant-scoped Artifacts in Containers,
// orchestrating placement, erasure coding and drivers.
//
// # Data path
//
// Put resolves the artifact's placement group (PG) from hash(tenant,
// container, key) and the PG's ordered drive set from the cluster map. It
// then streams the body through erasure coding, one stripe at a time, with
// shard i of every stripe written to drive i of the set, all drives in
// parallel, while the MD5 for the ETag is computed alongside. Shard files are
// committed (fsync + rename) on every drive that received them (a drive
// that falls behind is dropped, see Quorum), and only then is the
// artifact's metadata record written to those drives. The record's version
// is taken then, once the body is stored, so of concurrent puts of one key
// the one that completes last wins, as in S3. The record is
// what makes an artifact visible, so a body that fails midway, or a crash
// before the records are written, leaves nothing visible. Artifacts of at
// most Config.InlineMax bytes skip shard files: each drive's shard is kept
// inside that drive's record, so a small read is one lookup per drive.
//
// # Striping across placement groups
//
// A map with a stripe width W > 1 (placement.Map.Width, `vaultd cluster
// set-erasure K+M --width W`) spreads each large plain Put over W PGs, as
// 3FS does, so one artifact is written and read by many drive sets at
// once (stripe.go). A body of more than stripeChunkStripes stripes (4 MiB
// with the default 1 MiB stripe) is cut into parts of that many stripes,
// each erasure-coded on its own with its own shard files (the record's
// Parts, as a multipart artifact's); part i goes to PG
// stripePGs(seed)[i mod W], W distinct PGs a random seed draws from the
// map's PGs. The record, written to the key's own PG's drives as always,
// keeps the seed, W and the PG count (record format 2), so the parts'
// locations are computed, not stored: record.partPG is the one rule for
// which PG holds part i and Engine.partDrives for which drives; slot j of
// every part is on drive j of its PG's set, the slot of the record that
// names it on the key's own set. A Put writes stripeWriteAhead parts at a
// time, and a read decodes stripeReadAhead, in parallel, in a bounded
// window, each growing to its burst while the engine's shared budget of
// extra parts lasts (memory: that many parts per request, and the budget
// for all of them); a range reads only the parts it covers. Smaller bodies, inline ones and maps of width 0 or 1 keep the
// single-PG layout (record format 1, which still reads: format 2 is
// written only for striped records). A multipart upload under a map of
// width over 1 is striped too: its record draws the seed, part n's shard
// files go to the ((n-1) mod W)'th PG (its part record says so with an
// Offset, format 3), where the artifact's record places the part if
// parts 1, 2, ... are completed in order; a part completed at another
// index is copied to its place by CompleteUpload. Such a part may be up
// to 5 GiB: reads decode it in pieces of stripeChunkStripes stripes.
// A striped write's shard files land in other PGs before the record that
// names them, so it first writes a stripe intent (stripe_gc.go) to the
// key's PG, removed once the record is written: CollectStripeOrphans,
// run by RunScanner, deletes the parts of a write that crashed in
// between, once its intent is older than InFlightGrace and no record
// names them.
//
// Map changes: the record also keeps a fingerprint (Layout) of the drive
// sets, in the map it was written under, of the W PGs. A record counts as
// placed for a map (placedIn) only if that map gives those PGs the same
// sets, so when a map change moves any part's PG, the record stops being
// placed for the current map even if the key's own set kept its drives:
// reads find it in the older map (MapHistory) that still places it,
// Residue counts it, and MigrateAll moves it like any artifact of an
// older map: slot by slot when the policy and PG count stay (each part's
// changed slots copied from their old holders, the same files kept
// elsewhere, the record written again with the new fingerprint:
// moveStriped, migrate_striped.go), else re-encoding every part into the
// current map, striped again; no per-PG scan of other PGs' shard files is
// needed, as every part is reached from its record. Heal verifies and rebuilds slot j of every
// part on the part's own drive; the scrubber of the drive holding slot
// j's record verifies slot j of every part, wherever it is, so each shard
// is verified once per period; deletes, overwrites and migration remove
// each part's shard files from the drives of the map that places the
// record (the current one or the newest older one that does).
//
// Get reads the records of the PG's drives in parallel and takes the newest
// version. Deleted artifacts are tombstone records with a newer version, so
// drives that missed a write or a delete still resolve to the right answer.
// Shards are read from the data drives first; a missing or corrupt shard is
// rebuilt from parity and the artifact is queued for healing.
//
// # Storage policies and drive classes
//
// A container has a storage policy (Config.StoragePolicy; cluster keeps it
// as the container's "storagepolicy" bucket configuration): PolicyLocal
// (the default), PolicyHybrid or PolicyTier. The policy picks a
// placement.Layout, and mapFor (layout.go) is the one function that turns
// (tenant, container) into the map every operation on the container's
// artifacts uses: Map.ForLayout of the current cluster map, cached per
// map. That map has the cluster map's epoch and PG hashing but its own
// policy and PG → drive sets: local keeps every shard on local drives
// (so with remote drives present the default no longer places shards on
// them; without remote drives it is the cluster map itself), hybrid puts
// the k data shards on local drives and the parity shards on remote
// drives, and tier writes like local; TierContainer (run by cmd/vaultd
// every --tier-interval) moves the artifacts past the container's age or
// size threshold to the remote layout (tier.go). Put, reads, heal, scan, list,
// multipart and migration all take their map from mapFor, and the older
// maps of a MapHistory are derived with the same layout. A policy change
// that moves where writes go (to or from hybrid) takes effect at once for
// new writes; the artifacts the container holds stay readable on the
// other layout's sets (locate tries them, otherLayouts) until
// RelayoutContainer, which cmd/vaultd's leader runs after the change,
// moves them into the new layout (relayout.go). A read whose shards such
// a move (or migration, or a tier move) removed under it goes on from the
// set now serving the same version (Artifact.WriteRange). The change is
// refused while the container has a multipart upload in progress
// (CheckPolicyChange).
//
// A tiered artifact (TierArtifact) is copied with its version, ETag,
// metadata and modification time into its PG of the remote layout
// (placement.LayoutRemote, re-encoded with that layout's policy), and then
// its records and shard files are removed from the local set. Reads by
// key of a container that is or was tier (Config.Tiered) try the remote
// layout after the current and older maps (fallbackMaps), as they try an
// older map: a key the local set holds no record of is served from there.
// A later put or delete of the key goes to the local set and hides the
// tiered version; a tombstone over it is kept (not purged) while the
// remote layout holds the version, and the next TierContainer pass
// removes the hidden remote copy (collectTiered). The versions of a
// versioned key are tiered one by one under their version keys, current
// and noncurrent, keeping their ids; pointers and delete markers stay
// local.
//
// Reads are local first. Shards are read data shards first, k at a time,
// and a shard that fails or whose block is late by the codec's ReadStall
// (the hedge delay, 500 ms by default) gets a replacement read from
// parity. Under hybrid the data shards are the local ones, so a read while
// the local drives answer sends nothing to a remote drive (records of
// remote drives are answered from their in-memory index), and one whose
// local drive is slow or lost reads remote parity after the hedge delay.
//
// # Healing
//
// Three things find what needs repair, and Heal repairs it: reads queue an
// artifact they found degraded; Scan, run periodically by the leader (on a
// single node, the node), compares the drives' record indexes and queues
// what a drive misses, such as everything on a replaced disk; a Scrubber on
// every node verifies the block checksums of every shard on the node's own
// drives, spread over a period (a month by default) and capped in bytes per
// second, and repairs what fails at once. RunHealer works through the
// queue; an artifact it cannot repair yet (a drive that needs it is offline
// or refuses writes, or holds a newer record younger than InFlightGrace,
// whose write may still be in flight and acknowledged: ErrHealIncomplete)
// stays queued and is retried with an exponential backoff. The queue is bounded: what does not fit is found
// again by the next scan or scrub pass.
//
// # Multipart uploads across nodes and usage
//
// The operations that change one multipart upload (a part's commit,
// CompleteUpload, AbortUpload, the upload sweeper) are serialised by a
// lock per upload: an in-process mutex, plus, with Config.UploadLocker (a
// cluster: the Raft-replicated leases of cluster.Store), a lease held by
// one node at a time. A node that cannot get the lease in a bounded wait
// fails the operation with ErrMetadataUnavailable (503, the client
// retries); it never proceeds unlocked. The lease is checked again before
// each destructive step (the part record, the completion marker, the
// artifact record, an abort); a node paused for longer than the lease's
// safety margin between that check and the step's end can still overlap
// with the next holder (fenced epochs will close that). Migration keeps
// the local lock only: only the Raft leader migrates.
//
// # Conditional writes and metadata updates
//
// A Put with PutOptions.Condition, DeleteIf and CompleteUploadIf check
// their condition against the key's newest version under a per-key lock
// and write under it (keylock.go): the upload lock (and, in a cluster,
// its Raft lease) under a name derived from the key. A conditional put
// stores its body before taking the lock, so the lock covers a record
// read and a record write. Of two conditional writes of a key through any
// nodes, the second sees the first; a lock not had in the bounded wait
// fails with ErrConditionConflict. UpdateMetadata (object tags) rewrites
// only a version's metadata records, under the same lock, with the
// version's successor (the version plus one): newer than what it replaces,
// so reads of a read quorum, heals and migration need nothing special,
// older than any later write, so a racing put still wins. Metadata entries
// named with ReservedMetadataPrefix belong to the engine's users (the
// object's tags), are not user metadata (not counted in MaxMetadataSize,
// not copied by Copy) and are never shown as such by s3.
//
// Usage (Config.OnUsage) takes a replaced version's size out only when the
// write replaced it on a strict majority of the set's k+m drives, or on
// exactly half of them including slot 0 (replacedByMajority): two writes
// racing to replace one version (the same DELETE through two nodes, a put
// racing a delete) cannot both claim it. When no write claims it (drives
// failed, or three or more racing writes split the drives) usage stays
// too high: the safe direction for a quota.
//
// # Map changes
//
// The cluster map (Topology) grows when nodes join: drives are added, the
// epoch increases, and the policy and PG → drive sets may change. Writes
// always go to the current map. Until data migration moves them, artifacts
// written under an older map stay readable if the Topology implements
// MapHistory: a read by key whose current set reached read quorum and holds
// no record of the key reads it from the newest older map whose set does,
// with that map's drives and policy. A tombstone or a newer version in the
// current set always wins, so deleting or overwriting such an artifact
// needs nothing special; the shard files left on the older set are
// migration's to collect. Heal keeps a tombstone while an older set still
// holds a version it hides, and while a completion marker of an upload
// of the key remains (markersHold): without it, a completion that
// happened and was deleted would read as one that never did. Listing
// merges the drives of the current map and of the older maps, and needs
// an older map's sets covered while the container may still have keys
// there (see Listing). A multipart upload lives in the set of the map it
// was created in until the migrator moves it (below).
//
// Migration moves the artifacts and lets the older maps go, moving only
// what the map change moved when it can (migrate_shard.go): when the
// policy and PG stay and only some slots get new drives (placement.Plan),
// a slot's shard files are copied from the drive that held that slot,
// verified block by block on the way, and its record written; a slot whose
// old holder cannot give them is rebuilt from k others (Heal). So adding a
// node moves about its share of the bytes, each read once. Otherwise
// Migrate takes one key: if an older set serves its newest version, it
// copies it into the current set, decoded and re-encoded with the current
// policy onto new shard files (a multipart artifact part by part, an inline one inline),
// keeping its version, modification time, size, ETag, content type and
// metadata, and writes the records with that same version by a plain
// record write, so a version written meanwhile stays the newer one and
// wins. Drives in both sets have their older record replaced, and the
// shard files it named collected. Drives that held nothing of the older
// set's are written first and the shared ones in an order that keeps one
// of the two sets at read quorum throughout, so a crash leaves the
// artifact readable; a copy short of write quorum is rolled back. When no
// order can (every drive of the current set shared, the older set with
// fewer spare shards than the current set needs drives: a forced removal
// that changed the policy), each shared drive's new record carries the
// older record it replaces (record.Prev), whose shard files stay: reads
// of the older set use it, so that set keeps its read quorum however far
// the writes got, and Migrate rewrites the records without it, collecting
// those files, once the current set holds the version on every drive
// (dropPrevs; until then Residue counts them). Once
// the current set serves the key (also a deletion, copied as a tombstone
// if an older set held it), Migrate gives current drives that missed the
// version what they lack, then removes the key's records and shard files
// from the older sets' drives outside the current set, whatever their
// versions, except the live version's own copies while the current set
// does not hold it on every drive (one offline, a heal that failed): those
// stay, counted by Residue, until a later pass finds the set complete
// (MigrateResult.Incomplete). Where the sets share drives, writing the
// current set replaces the older set's copies there, so a move that
// would leave the version with fewer spare shards than the older set
// gives it (a drive of the current set offline) is put off until a pass
// finds the set whole (errMoveDeferred, writeMoved): migration never
// leaves a version with less redundancy than it had. A drive of an older
// map whose node was removed from the cluster (driver.ErrRemoved) is
// neither listed nor cleaned: what only it held is lost, and waiting for
// it would keep its maps for ever. MigrateAll (or MigrateContainer) walks, a bounded page at a
// time, every key with a record on an older map's drive, which also finds
// the leftovers of keys deleted or overwritten under the current map, and
// Residue counts the records a map's drives hold that are not placed for
// the current map. RunMigrator (rebalance.go), acting on the metadata
// store's leader only (Coordinator), calls MigrateAll until a pass ends
// with nothing failed, then drops from the history (through Raft) each
// older map whose Residue is 0: no read needs it any more. After such a
// clean pass begun once the map settled, and the move of the uploads in
// progress after it, it marks every container settled at the current
// epoch but those with an upload that did not move (Settler), so that
// listings stop needing the older maps' sets though the maps themselves
// may be kept a while
// (an upload holding them, a drive down at the Residue count). A multipart
// upload in progress keeps its placement until then: parts uploaded after
// a map change still go to the upload's set (under its lease, which the
// drives' map-epoch fence honours), Residue counts the upload while it is
// active so that its map stays, and completing it copies the chosen parts
// into the key's current set (multipart_move.go). Once the map has
// settled, RunMigrator moves every upload still in an older set into the
// current one (MoveUploads, multipart_relocate.go), parts and all, so the
// older map can go however long its client pauses.
//
// # Quorum
//
// For a policy of k data and m parity shards the write quorum is k (k+1 when
// k == m, so two disjoint write quorums cannot both succeed) and the read
// quorum is k. A Put that cannot commit shards on a write quorum of drives
// fails with ErrWriteQuorum and leaves nothing. One whose records then miss
// the write quorum also fails with ErrWriteQuorum, an ambiguous failure:
// the records that landed stay (new versions are never rolled back, and
// their shard files are kept), so the version may still become visible, as
// with any distributed store. The one exception is an inline version on
// fewer than k drives, which no read can decode: it is rolled back, as its
// records replaced the only copies of the version before.
//
// Reads are linearizable (the partition suite checks it): a read serves
// the newest version unless an older one is on k of the drives that
// answered (then the newest is the remains of a failed write), and before
// returning it makes sure m+1 drives hold that version or a newer one,
// writing its record back to the drives that lack it (ABD's write-back;
// WriteBacks in Stats). From then on every read quorum meets it and no
// older version can be on k drives, so no later read returns an older one.
// A read that cannot get it there fails with ErrReadQuorum rather than
// answer either version. A drive that refuses a write as stale (a newer
// version is there) counts towards its quorum only if that newer version
// stays: the writer reads the drive's record after the refusal, and a live
// inline one (rolled back when fewer than k drives took it, above), or one
// no newer than the write (rolled back meanwhile), does not count. After
// such a rollback the drive holds the version before again, older than the
// write: counted, an acknowledged delete was outlived by the version
// before, and a small PUT was acknowledged with 2 of its k shards
// (TestStaleRefusalStays, TestStaleRefusalRolledBack). A new version
// naming no shard files (a small PUT, a delete, a pointer) is then written
// again under a version above the refusing one (at most eight times,
// after a random wait that doubles each time, so that many writers of one
// key thin out: TestContendedSmallPutsAllSucceed): where it lands it
// replaces the inline version, whose rollback then finds
// a newer version and leaves it, so the write stands on a write quorum
// whichever way the inline write ends; as it was still in flight when the
// newer write began, it may linearize after it. A new version naming
// shard files is not written again (the newer write may have collected
// its files where it replaced it): short of its quorum it fails with
// ErrWriteQuorum, its outcome unknown, as any write left short; so does a
// heal (retried later) or a read's write-back (the read fails with
// ErrReadQuorum). A read that cannot reach k drives fails with
// ErrReadQuorum; it never returns bytes it could not verify. A record
// write that a peer receives only after the writer gave it up (held by a
// partition) is refused there, not applied (driver/peer), so a failed
// write does not surface once its request has ended, except through its
// remains on the drives it reached in time, which a later read may still
// roll forward: its outcome was unknown.
//
// Requests wait for a quorum, not for the slowest drive. Record reads and
// writes and shard commits return once a quorum answered and the other
// drives had a short grace (twice as long as the quorum took, 300 ms
// to 1 s); a shard writer that falls a few stripes behind a write quorum for
// a second is dropped mid-stream, and a read whose shard block is late
// reads parity in its place. Work still running on the slow drives is
// owned by the Engine (WaitBackground), stops when the request's ctx ends
// or the driver's deadline passes, and cleans up after itself: an
// uncommitted shard is aborted, a late one deleted, a late record rolled
// back or its replaced shards collected. What the slow drive missed is the
// healer's to restore.
//
// # Listing
//
// Every drive keeps a sorted index of the records it holds. List merges the
// drives' indexes, resolving each key to its newest version and hiding
// tombstones; it reads a page at a time from each drive and never holds a
// whole container in memory. A listing (List, ListVersions, ListUploads,
// the upload sweep) is complete when the drives that answered hold at
// least k drives of every PG's set (pgsCovered): each key's newest record
// is on a write quorum of its set, which any k of the set meet. So a wide
// map lists on with a whole node down, and a listing that cannot cover
// every PG fails with ErrReadQuorum rather than answer a partial page.
// List and ListVersions also cover the sets of the older maps (MapHistory)
// that may still hold keys of the container: those of its settled epoch
// (ContainerInfo.Settled) or later. A container is settled at the epoch
// it was created under, and RunMigrator raises every container to the
// current epoch after a clean migration pass that began once the map
// settled (Settler): from then on a node down in an older map's sets no
// longer fails its listings, while before it a key only such a set holds
// is never left out of a page (probe F2 of session 14). ListUploads
// covers the same older maps' sets (olderToCover): an upload in progress
// begun under an older map lives only in its set until MoveUploads moves
// it, and RunMigrator settles a container only once none of its uploads
// failed to move (an upload that does not move keeps its own container's
// listings covering the older sets, not every container's). The upload
// sweep and the stripe intents' collection cover the current map only
// (what they miss, the next pass finds). An upload record left, by a
// drive that missed a completion or an abort, in the set of a map since
// dropped from the history, on a drive where no kept map places it, is
// never read by findUpload: ListUploads does not list it, and the sweep
// removes it with its parts there once nothing serves the upload
// (strayUpload, sweepStrays).
//
// # Versions
//
// With versioning (the container's state comes with each write), every
// version of a key is an artifact of its own under a version key, key +
// NUL + version id, placed and named as the key so that its records and
// shard files live on the key's drives. The key's own record is then a
// pointer naming its current version (deleted when that is a delete
// marker). Healing, scans, scrubbing, migration, usage and container
// emptiness count versions like any artifact; List hides version keys and
// keys whose current version is a delete marker; ListVersions lists them.
// See version.go. A version may carry a retention and a legal hold (object
// lock, lock.go) in its record's reserved metadata; DeleteVersion refuses
// a protected version (ErrLocked).
//
// Container metadata (which containers a tenant owns) lives behind the
// ContainerStore interface; engine never decides how it is replicated.
//
// # Files
//
// Each file has one job:
//
//   - engine.go: Config, the Topology, MapHistory and ContainerStore
//     interfaces engine needs, New, names and versions.
//   - put.go: Put (inline and streamed), shard writing (putShards, lanes),
//     Delete and Copy.
//   - read.go: Open, the choice of the version a read serves
//     (chooseVersion), quorum record reads, and reading an Artifact's bytes.
//   - history.go: where a key's records are (locate) across the current
//     and older maps.
//   - stripe.go: striping across PGs: which PG and drives hold a part
//     (partPG, partDrives), the striped Put (putStriped); stripe_gc.go:
//     stripe intents and CollectStripeOrphans.
//   - recordwrite.go: recordWrite, the one quorum write of metadata
//     records: put, finish (tally, then roll back or collect), the
//     last-writer-wins retry for new versions (latest).
//   - quorum.go: fanOut, returning at a quorum plus the straggler grace,
//     and the background clean-ups of stragglers.
//   - record.go: the on-drive record format.
//   - list.go, container.go: listings and containers.
//   - version.go: versioned keys (version keys, pointers, delete markers,
//     ListVersions, DeleteVersion, CompleteUploadVersion).
//   - lock.go: versions' retention and legal hold (object lock).
//   - multipart.go (create, parts), multipart_list.go, multipart_complete.go
//     (completion markers, settle, revert), multipart_abort.go (abort and
//     the upload sweeper), multipart_move.go (uploads across map changes,
//     copying parts at completion).
//   - heal.go, scan.go, scrub.go: repair, and finding what needs it.
//   - migrate.go (moving one key), migrate_shard.go (moving only the changed
//     slots), migrate_walk.go (walking the older maps' keys, Residue).
//   - rebalance.go: the leader's loops, RunMigrator and RunScanner, over
//     the Coordinator interface the metadata store satisfies.
//   - static.go (a fixed Topology), stats.go, etag.go.
//
// # Imports
//
// engine imports, of this module, only driver, erasure, placement and meta
// (the container description and errors it shares with the metadata
// store). It knows nothing of S3, HTTP, tenants' keys and quotas, or Raft:
// cluster satisfies its interfaces (Topology, MapHistory, ContainerStore,
// Coordinator) without either importing the other, and s3 maps its errors
// to protocol errors.
package engine
