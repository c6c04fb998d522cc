// Package peer is the internode RPC for drives: a Server exposes the drives
// of one node over HTTP, and a Client is a driver.Driver for one drive of a
// peer node, so the engine never knows whether a drive is local.
//
// # Protocol
//
// HTTP/1.1 on the node's RPC listener (in vaultd, cluster.ListenRPC: every
// connection is a TLS 1.3 tunnel that passes the rpcauth handshake before
// its first request; cluster gives each Client, as ClientConfig.HTTP, an
// http.Client that dials the same way), one endpoint per Driver method. {id} is the path-escaped DriveID, {pg} the placement
// group in decimal, {name} the shard name. Record keys, prefixes and "after"
// bounds may be any bytes, so they travel base64url-encoded (unpadded) in the
// query, never in the path. Versions travel as 32 hex digits.
//
//	GET    /v1/drives/{id}/info                       -> 200 JSON driver.Info
//	POST   /v1/drives/{id}/shards/{pg}/{name}         body: shard bytes (chunked) + trailers -> 204
//	GET    /v1/drives/{id}/shards/{pg}/{name}?off=&len= -> 200 shard bytes (chunked) + trailers
//	DELETE /v1/drives/{id}/shards/{pg}/{name}         -> 204
//	PUT    /v1/drives/{id}/records?key=&version=      body: data -> 200
//	        X-Vault-Prev: 1 or 0, X-Vault-Prev-Version, body: previous data
//	GET    /v1/drives/{id}/records?key=               -> 200 X-Vault-Version, body: data
//	DELETE /v1/drives/{id}/records?key=&version=      -> 204
//	GET    /v1/drives/{id}/records?prefix=&after=&limit= -> 200 JSON {"records":[...]}
//
// A listing page holds at most MaxListLimit records whatever limit the
// caller asked for (the contract's "up to limit"): callers page on until an
// empty page. Listed Data is what the drive returned, already cut to
// driver.ListDataMax bytes with Truncated set.
//
// A shard write is one streaming POST. CreateShard starts the request with
// an io.Pipe as its body; every ShardWriter.Write goes straight into the
// pipe (so nothing is buffered beyond the HTTP and pipe buffers, and TCP flow
// control pushes back on the writer). Commit sets the HTTP trailers
// X-Vault-Length (decimal byte count) and X-Vault-Xxh3 (16 hex digits,
// XXH3-64 of the bytes), closes the pipe and waits for the response. The
// server streams the body into a local ShardWriter and commits it only after
// the body ended cleanly (a complete chunked encoding) AND both trailers
// match what it received; otherwise it aborts the local write. Abort closes
// the pipe with an error and cancels the request, which tears the connection
// down mid-body. So a truncated, aborted or cut-off upload never commits, and
// the drive removes its temp file. If Commit's ctx ends while the response is
// outstanding the request is cancelled and Commit reports the ctx error; the
// shard may or may not have been committed by then (the engine treats that
// write as failed either way and its garbage collection removes orphans).
//
// A shard read streams the range with chunked encoding. An error after the
// first byte (for example io.ErrUnexpectedEOF when the range runs past the
// end of the file) is sent in the X-Vault-Error trailer, so the client
// reader never mistakes a cut stream for a complete one.
//
// # Deadlines
//
// Every call is bounded by deadlines sized to the request, not by one long
// header timeout: a call with a small answer (Info, records, DeleteShard,
// a listing page) and the wait for a shard upload's answer by
// ClientConfig.CallTimeout (default 5 s); a shard stream by
// ClientConfig.ProgressTimeout (default 5 s) for each step: the first
// byte of a download, every Write of an upload and every Read of a
// download. A long shard streams as long as it keeps moving. A peer that
// misses a deadline (paused, partitioned, its drive hung) fails the call
// with driver.ErrOffline, so the engine's quorum logic goes on without it.
// A call's request carries how long its sender waits for it
// (X-Vault-Timeout: the CallTimeout, or less to the ctx's deadline); a
// Server refuses a request other than a GET that arrives after that (503
// offline) rather than apply it: a record write the engine counted as
// failed must not land afterwards, as one held by a partition and
// retransmitted by TCP once it healed did (the partition suite's "listed,
// then NoSuchKey"). The nodes' clocks need not agree: the Server learns
// each sending host's offset (late.go).
//
// # Errors
//
// Failures come back with an HTTP status and an X-Vault-Error code header
// (the body holds a human-readable message). The client maps the code back
// to the driver sentinel, so errors.Is works across the wire:
//
//	not_found      404  driver.ErrNotFound
//	stale          409  driver.ErrStale
//	invalid_name   400  driver.ErrInvalidName
//	offline        503  driver.ErrOffline (also: server ctx cancelled)
//	corrupt        422  driver.ErrCorrupt (also: shard upload trailer mismatch)
//	foreign_drive  500  driver.ErrForeignDrive
//	unexpected_eof 502  io.ErrUnexpectedEOF (shard read trailer only)
//	no_space       507  driver.ErrNoSpace (the drive is full)
//	stale_epoch    409  ErrStaleEpoch and driver.ErrOffline: a fenced write
//	no_drive       404  driver.ErrOffline: the peer does not serve that drive
//	unauthorized   401  ErrUnauthorized and driver.ErrOffline
//	bad_request    400  plain error
//	internal       500  plain error
//
// A peer that cannot be reached, drops the connection, or answers without a
// code is driver.ErrOffline. When the caller's ctx is done the ctx error is
// returned instead.
//
// # Fencing
//
// A request made within a ctx carrying a Fence (WithFence: the writer's
// map epoch and the placement group written) sends it as X-Vault-Epoch
// and X-Vault-PG; the Server puts it back into the request's ctx, so the
// drives it serves (in vaultd, wrapped by cluster.Fence) can refuse a
// write planned under an outdated map, with ErrStaleEpoch. Likewise a
// Lease (WithLease: a multipart upload's lease) travels as X-Vault-Lease.
// peer only carries them; it does not judge them.
//
// # Authentication
//
// Every request carries X-Vault-Time (unix nanoseconds), X-Vault-Nonce (a
// random string of up to 64 bytes) and X-Vault-Auth, the hex HMAC-SHA256
// under the cluster secret of
//
//	method + "\n" + escaped path + "\n" + raw query + "\n" + time + "\n" + nonce
//
// The server refuses (401, logged at Warn with the remote address) a missing
// or wrong signature and a time more than ServerConfig.MaxSkew away from its
// clock. On a listener that authenticates every connection first
// (ServerConfig.AuthenticatedConns, as vaultd runs it behind
// cluster.ListenRPC) that is all: a replayed request would need an
// authenticated connection, so no nonce is remembered and no replay cache
// can fill under load. Otherwise the server also refuses a nonce it has
// already accepted within the window: accepted nonces are remembered for
// 2×MaxSkew in a cache bounded at 100,000 entries, and when it is full of
// live nonces the server answers 503 (driver.ErrOffline) rather than forget
// one early.
//
// Bodies (shard bytes, record data, listings) are not covered by the HMAC:
// their confidentiality and integrity come from the internode TLS 1.3
// tunnel. Shard uploads also carry a length and XXH3 trailer against
// truncation and accidents, and the engine's shard blocks carry their own
// checksums.
//
// # Dependencies
//
// Of this module, peer imports only driver (the contract it serves and
// implements) and internal/rpcauth (the request signature). It knows nothing
// of placement, the engine or the cluster; cmd/vaultd wires it.
package peer
