// Package remote implements driver.Driver on one bucket (or bucket and key
// prefix) of an S3-compatible service (Quotaless, Lyve Cloud, B2, Wasabi,
// MinIO, another Vaultaire), through aws-sdk-go-v2. It may import driver and
// the AWS SDK, nothing else of this module.
//
// # Layout
//
// Under the prefix P, everything the driver needs lives in the bucket, so a
// new Driver on an existing bucket and prefix (another node adopting the
// drive) sees every committed shard and record:
//
//	P/format.json                          {"version":1,"cluster_id":...,"drive_id":...}
//	P/log/<seq>-<instance>                 group-commit objects: an index of mutations + small shard bytes
//	P/snap/<seq>-<instance>                the whole index as of log object <seq> (written by Compact)
//	P/obj/<pg>/<name>-<seq>-<instance>     large shards, one object each (multipart above PartSize)
//
// With Config.KEK, every object but format.json is encrypted (crypt.go:
// a data key wrapped under the KEK in format.json and in each object's
// header, 16 KiB AES-256-GCM chunks under a per-object key); the layouts
// below are then those of the plaintext, and every offset and size the
// rest of the driver handles is a plaintext one: the backend maps them to
// the covering chunks, so a read is still one ranged GET. What the
// provider sees is object names (a large shard's name, its PG and the
// sequence), sizes and timing.
//
// <seq> is 16 hex digits, increasing within an instance and, since an
// instance starts past every sequence it found in the bucket, across
// instances; <instance> is random per Open, so two instances never
// overwrite each other's objects. Record keys and shard names never become
// anything but bytes inside log objects, except the validated hex shard name
// in a large shard's object key.
//
// A log object is
//
//	"VLTLOG01" | uint32 index length | uint64 XXH3 of the index | index | data
//
// The index lists mutations in order: record puts (key, version, data),
// record deletes (key, the version deleted), shard puts (inline: offset and
// length in the data section; or the key and size of a large shard's
// object) and shard deletes. A snapshot has the same format, with record
// puts and shard locations (object, offset, size) and no data section. Open
// lists P/log/ and P/snap/, loads the newest snapshot, reads the index of
// each log object after it with one ranged GET (two if it is large; half
// of MaxConcurrent at a time) and replays them in sequence order,
// last-writer-wins by Version for records, so the in-memory index is what
// was acknowledged. Shard bytes are not read at Open.
//
// # Group commit and request economy
//
// Every mutation (PutRecord, DeleteRecord, a small shard's Commit, the
// pointer to a large shard's object, DeleteShard) is queued; one flusher
// writes all queued mutations as one log object with one PUT, then applies
// them to the in-memory index and acknowledges them. So concurrent calls
// share a request, and a shard of at most SmallShardMax bytes costs no
// request of its own: its bytes ride in the log object. Reads of records
// (GetRecord, ListRecords) and Info are answered from memory and cost no
// request; a shard read is one ranged GET. Large shards are streamed: each
// writer buffers at most PartSize bytes, sent with one PUT when the shard
// ends there and as multipart parts otherwise. Replaced and deleted large
// shard objects are removed with a DELETE; objects under P/obj/ that the
// index does not reference (a crash between upload and commit) are removed
// at Open. Every HTTP attempt is counted in Stats (requests by method,
// bytes sent and received).
//
// # Compaction
//
// Deletes and replacements leave dead bytes in log objects. Compact (run
// in the background every CompactInterval when SnapshotEvery log objects
// were written, or CompactMinReclaim bytes are dead) writes a snapshot,
// deletes the log objects it covers that hold no live shard, and moves the
// live shards of those below CompactRatio into new log objects of up to
// MaxBatchBytes (tens of MiB), deleting the old ones on its next run. So
// small shards end up packed in segments of tens of MiB, and Open reads a
// snapshot plus the log objects written since. Incomplete multipart
// uploads of a crashed writer are left to the bucket's lifecycle rule
// (AbortIncompleteMultipartUpload).
//
// # Memory
//
// The index lives in memory: every record with its data (the engine's
// metadata records, and the data of artifacts small enough to be inlined
// in them), and a location (about 100 bytes) per shard. Shard bytes are
// never held beyond one writer's PartSize buffer, the small shards of the
// group commit in flight (at most MaxBatchBytes) and those queued for the
// next ones (at most MaxQueueBytes): a call that would pass that cap
// waits for room or its context, so a backend that stalls holds its
// writers back rather than their bytes without bound.
//
// # A bad provider
//
// Each call is bounded by Config.OpTimeout (all attempts), each attempt's
// wait for response headers by Config.AttemptTimeout, and each Read of a
// shard stream by Config.ProgressTimeout. Failed attempts on 5xx, 429,
// SlowDown, throttling and connection errors are retried by the SDK's
// standard retryer with exponential backoff and full jitter (no client-side
// retry quota); a shard stream cut mid-body resumes with a ranged GET from
// where it stopped. At most Config.MaxConcurrent requests wait for an
// answer at once (a shard stream stops counting once its headers arrived,
// so streams a slow client leaves unread never starve other calls); the
// wait for a slot counts against the call timeout.
// A circuit breaker counts calls that failed after their retries: after
// Config.BreakerThreshold in a row it opens and every call that needs the
// backend fails at once with driver.ErrOffline (as does Info, the health
// check); after a cooldown (doubling up to Config.BreakerMaxCooldown) one
// call or a background probe (a HEAD of format.json) is let through, and
// its success closes the breaker. Record reads keep being served from
// memory while the breaker is open.
//
// # Durability
//
// A mutation is acknowledged only after the PUT of its log object
// succeeded (and a large shard's object before that). A call that failed
// may still have reached the bucket (a PUT whose answer was lost), so after
// a restart an unacknowledged mutation can appear, as with a local drive's
// interrupted write; the engine treats such writes as failed and cleans up.
// Only one Driver instance may write a bucket prefix at a time: see below.
//
// The bucket can still lose objects behind the driver (a provider
// incident, a lifecycle rule, an operator's clean-up). Probe finds a lost
// format.json with its HEAD (lost.go) and, in steps spread
// over probes, compares a listing of log/ and obj/ with the index at
// most once per Config.VerifyEvery (verify.go); either way the shards
// whose bytes are gone are deleted from the index, so the engine's
// scanner and healer refill them, as on a replaced disk.
//
// # Ownership and fencing
//
// Two writers on one prefix would corrupt it: each replays only what it
// found at Open, and one's compaction deletes log objects the other's
// index points into. In a cluster a remote drive is therefore owned by one
// node at a time, and the driver is given a Config.Fence that it asks
// before every request that changes the bucket (each PUT, DELETE and
// multipart request), and again right before each attempt of it is sent
// (after the wait for a request slot and between the SDK's retries); when
// the fence refuses, the request is not sent and the call fails with
// ErrFenced wrapped in driver.ErrOffline (so the engine treats the drive
// as unavailable; the breaker is not fed), and Info fails likewise. The
// fence costs no request: it reads the node's memory.
//
// vaultd's fence is the owner record the cluster map holds for the drive
// (cluster.Store.OwnerFence): the node the drive is attached to and an
// owner epoch, 1 when it was first declared. Registering a node never
// moves a remote drive; adoption (another node started with the same
// --remote after the owner was lost) is a Raft command that checks the
// current owner and epoch and bumps the epoch, so of two racing adopters
// one wins. The check passes while the map still attaches the drive to
// this node at the epoch it claimed it with, in a state this node
// brought up to the leader's with a sync (a leader read index; on the
// leader, VerifyLeader) that began less than cluster.OwnerLease (5 s) ago
// by the monotonic clock. An adoption acknowledged before that sync began
// is in the state and refused; one acknowledged after it finds the
// permission ending within OwnerLease. The monotonic clock runs on while
// a process is stopped, so an owner resumed after a pause (SIGSTOP, a VM
// freeze) must sync again before it sends: a deposed leader's VerifyLeader
// fails, a deposed follower learns of the adoption (session 10's probe
// saw a resumed owner that was the Raft leader write for a moment: being
// the leader proved nothing). A write that passed the check is sent within
// the call timeout (OpTimeout) or abandoned. The adopter therefore waits
// OwnerLease + OpTimeout after its adoption committed before it opens the
// drive (reading the bucket, replaying the log) and writes: by then the
// deposed owner's last write has landed, and the adopter's index includes
// everything the old owner acknowledged. An adopter opens with
// Config.Existing: a bucket prefix without format.json (a mistyped URL) is
// refused, not formatted as an empty drive. The bound relies on both nodes
// measuring durations alike (monotonic clocks, no bound on wall-clock skew
// needed), on the backend not applying a request long after the client
// gave up on it, and on the process not being paused in the instants
// between the last check and the request's bytes reaching the socket (no
// fence short of the backend's own conditional writes closes that). vaultd
// refuses to adopt while gossip shows the owner alive, unless forced
// (--remote-adopt-force); a forced adoption is safe by the same argument,
// the owner being deposed through Raft.
//
// # Readers
//
// Any number of read-only Drivers (Config.ReadOnly) may open the prefix
// beside its one writer: they never send a PUT, POST or DELETE, never
// format or compact, and refresh their index from the bucket before every
// read (one LIST of the log objects written since, shared by concurrent
// reads; the whole index again after a compaction), so a read answers as
// the owner's index stood at some moment after the read began and never
// with bytes the owner had replaced or deleted before it (readonly.go
// gives the argument). vaultd's standby nodes use them to serve a remote
// drive whose owner node is down.
package remote
