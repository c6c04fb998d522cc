// Package events records what a node served: an access log with one line
// per request and a transaction log with one line per state change. Both
// are fed by the S3 server through s3.Observer (a *Log is one) and never
// slow the request path: ObserveRequest copies the event into a bounded
// queue and returns; a full queue drops the event and counts the drop.
//
//	log, err := events.Open(events.Config{Dir: "/data/d0/events"})
//	...
//	srv, err := s3.New(s3.Config{..., Observer: log})
//	...
//	defer log.Close() // drains both queues, flushes and fsyncs
//
// # Files
//
// Everything lives in Config.Dir:
//
//	access.log                                     the access log being written
//	access-20260102T150405.123456789Z.log          rotated access logs (UTC, oldest first by name)
//	txn.log                                        the transaction log being written
//	txn-20260102T150405.123456789Z.log             rotated transaction logs
//
// A file is rotated before a line would take it past Config.MaxFileBytes:
// it is flushed, fsynced, closed and renamed with the UTC time of the
// rotation (fixed width, so names sort in time order), and a new file is
// started. The newest MaxFiles (access) and MaxTxnFiles (txn) rotated files
// are kept and older ones deleted. Files whose names do not match are
// never touched.
//
// Both files are JSON Lines: UTF-8, one JSON object per line, each line
// ended by "\n". Strings are escaped so that no line ever holds a raw
// newline or control character: bytes that are not valid UTF-8 become
// U+FFFD, and when a key is not valid UTF-8 its exact bytes are also given
// in key_base64 (standard base64). Every field listed below is present, in
// the order listed (key_base64 only when needed); readers must ignore fields they do not know (fields may be
// added, never renamed or removed) and should skip a line that does not
// parse, such as the partial last line a crash can leave (the next line
// written after a restart starts on a fresh line).
//
// # Access log
//
// One line per request served, written by one goroutine through a buffer
// flushed at least every second (Config.FlushInterval) and on Close:
//
//	time         string  when the request arrived, RFC 3339 with nanoseconds, UTC
//	node         string  node that served it
//	request_id   string  as returned to the client in x-amz-request-id
//	tenant       string  authenticated tenant, "" if none; for an anonymous
//	                     read of a public bucket, the bucket's owner
//	operation    string  S3 operation ("PutObject", "GetObject", ...); "Unknown"
//	                     before routing; "Admin", "Health", "Metrics" and
//	                     "Admin*" for /_vault
//	bucket       string  container, "" if none
//	key          string  artifact key, "" if none
//	key_base64   string  only when key is not valid UTF-8: its exact bytes
//	bytes_in     number  request body bytes read (as received; 0 when refused unread)
//	bytes_out    number  response body bytes sent (less than the object for a cut-off GET)
//	object_size  number  size of the artifact read or written, -1 if none
//	status       number  HTTP status
//	error_code   string  S3 error code, "" on success
//	latency_ms   number  time to serve, in milliseconds (fractional); for a
//	                     streamed download, the time to the response headers
//	client       string  client address, host:port
//	user_agent   string  User-Agent header
//	anonymous    bool    true for an unsigned read of a public bucket, whose
//	                     tenant is the bucket's owner, not the client (lines
//	                     written before the field existed lack it)
//
// Example:
//
//	{"time":"2026-01-02T15:04:05.123456789Z","node":"n1","request_id":"4F1A...","tenant":"alice","operation":"GetObject","bucket":"photos","key":"2026/cat.jpg","bytes_in":0,"bytes_out":48213,"object_size":48213,"status":200,"error_code":"","latency_ms":1.734,"client":"10.0.0.7:51234","user_agent":"aws-sdk-go-v2/1.47.7","anonymous":false}
//
// Access lines are best effort: when Config.Buffer events are already
// queued the next one is dropped and counted (Stats), and a warning is
// logged at most once a minute.
//
// # Transaction log
//
// One line per request that changed stored state, as
// s3.RequestEvent.Mutation decides: a successful PutObject, CopyObject,
// DeleteObject, DeleteObjects, CompleteMultipartUpload, CreateBucket,
// DeleteBucket, an Admin* operation that changes tenants, keys or
// limits, or an action of the lifecycle worker (LifecycleExpiration,
// LifecycleNoncurrentVersionExpiration, LifecycleExpiredObjectDeleteMarker,
// LifecycleAbortIncompleteMultipartUpload: the tenant, bucket, key and the
// version deleted or the delete marker added; request_id is the worker's
// own). It is written by its own goroutine with group commit: it takes
// everything queued, writes it, fsyncs, and repeats, at most every 10 ms.
//
//	time         string  when the request arrived, RFC 3339 with nanoseconds, UTC
//	node         string  node that served it
//	request_id   string  as returned to the client
//	tenant       string  tenant that made the change
//	operation    string  one of the operations above, or "Dropped"
//	bucket       string  container
//	key          string  artifact key, "" for bucket and admin operations
//	key_base64   string  only when key is not valid UTF-8: its exact bytes
//	version_id   string  version written or deleted (hex), "" if none
//	etag         string  ETag of the artifact written, "" if none
//	object_size  number  size of the artifact written, -1 if none
//	source       string  CopyObject only: "bucket/key" it copied
//	keys         array   DeleteObjects only: the keys it deleted
//
// Mutations are queued separately from access events, in a larger queue
// (Config.TxnBuffer). If that queue ever fills, the mutation is dropped,
// counted (TxnStats) and a warning is logged at most every ten seconds; the
// gap is also recorded in the file itself, before the next batch, as
//
//	{"time":"...","node":"n1","operation":"Dropped","dropped":12}
//
// meaning that 12 mutations served before this point (the time is when the
// gap was written) are missing from the log. A reader
// auditing the history must treat such a line as a hole.
//
// # Using the transaction log
//
// The transaction log is the node's history of changes: who (tenant,
// client request id) changed what (bucket, key, version_id, etag, size)
// and when. Replaying it in order rebuilds the namespace: which artifact
// versions were created and deleted in which buckets, and which buckets
// and tenants existed. It holds no object data: a replay that rebuilds
// content reads each version_id from the store (or another copy). Lines
// are in the order the node finished the requests, which for
// concurrent requests can differ from their start times; order by time
// within a key only after accounting for that. Each node writes its own
// log: a cluster's history is the merge of its nodes' logs by time.
//
// What s3.RequestEvent does not yet carry limits a replay: a DeleteObject
// line carries no version_id (the tombstone's), and keys listed in a
// DeleteObjects line that did not exist are listed all the same (S3
// reports them deleted). Admin* lines name the root tenant that called as
// tenant and the tenant acted upon as key.
//
// The log is written asynchronously, after the change is made and usually
// after the client has been answered, so it is not a write-ahead log: a crash can lose the batch that was not yet fsynced
// (the mutations of the last 10 ms or so), and a node that stops
// without Close loses what was still queued. A "Dropped" line marks every
// other loss.
//
// # Parquet export
//
// Export (vaultd events export) writes either log as one Parquet file for
// analytics tools (DuckDB, pandas/pyarrow, Spark): one row per line, one
// column per field above (AccessRow, TxnRow), with the same names.
// time is TIMESTAMP(MICROS, UTC), required (nanoseconds are truncated);
// numbers are INT64 (latency_ms DOUBLE); strings are UTF-8 BYTE_ARRAY;
// keys is a LIST of strings; dropped is the count of a "Dropped" line.
// Every column but time is optional and null when the line lacks the
// field, so lines of older or newer writers fit. Columns are compressed
// with zstd (or snappy).
//
// Export streams: it reads the rotated files oldest first, then the
// current file up to where it ended when the export began, one line at a
// time, and writes a row group every RowGroupRows rows or RowGroupSize
// bytes of lines, so memory is bounded by one row group whatever the size
// of the log. --since is inclusive and --until exclusive, compared with
// the line's full-precision time; rotated files renamed before --since
// are not read at all. Lines that do not parse or have no time, and an
// unterminated last line, are skipped and counted; unknown fields are
// ignored. Rows are in file order, which is roughly but not strictly time
// order.
//
// With Config.Parquet (vaultd server --events-parquet; off by default)
// each rotated file is also converted, in the background, into a Parquet
// file beside it with the same name and the suffix .parquet
// (access-20260102T150405.123456789Z.parquet), written to a temporary
// file and renamed, so a .parquet file is always complete. The newest
// MaxFiles (access) and MaxTxnFiles (txn) Parquet files are kept. Files
// rotated while the option was off, or whose conversion was cut short by
// Close or a crash, are converted at the next Open. The JSON files are
// kept and rotated as before. A query engine can read the whole history
// at once, e.g. read_parquet('events/access-*.parquet') in DuckDB.
//
// Of this module, events imports only s3 (s3.RequestEvent and the
// s3.Observer it implements); nothing but cmd/vaultd imports it.
package events
