// Package tenant holds what a tenant is and the rules that apply to one:
// its name, its access keys and their secrets (which never print), its
// rate limit, bandwidth and quota, and the decisions taken on them at the S3
// front end (RateLimiter, Meter). It declares the store it needs (Store:
// limits and committed usage, and committing usage changes); cluster.Store
// implements it, and its tenant operations return this package's errors.
//
// It imports nothing of this module: cluster and s3 import it, never the
// reverse (it knows neither Raft nor S3; cmd/vaultd wires a Meter and a
// RateLimiter into the s3 server, whose Quota and Limiter interfaces they
// satisfy).
//
// # Rate limits
//
// RateLimiter is an s3.Limiter: one token bucket (golang.org/x/time/rate)
// per tenant, DefaultRPS requests per second with bursts of DefaultBurst
// unless the tenant's replicated Limits say otherwise. At most MaxLimiters
// buckets are kept (least recently used evicted; an evicted tenant starts
// again with a full bucket). The limiter shapes before it refuses: a
// request whose token comes within MaxWait (DefaultMaxWait, 1 s) waits for
// it, so a sequential client over its rate is slowed down, never failed;
// at most MaxWaiters (DefaultMaxWaiters) of a tenant's requests wait at
// once per node, since each holds a connection. A request that would wait
// longer, or finds the waiters full, is refused with 503 SlowDown and
// Retry-After before its body is read.
//
// In a cluster the rate is cluster-wide (Traffic): every second
// (DefaultShareWindow) each node rolls its per-tenant request counts into
// rates and gossips them (cluster.Membership.ShareTraffic), and it allows
// a tenant rate × max(s, 1/(2N)) (the burst likewise), where s is its
// share of the tenant's requests cluster-wide in the last window and N
// the live nodes. A tenant sending round robin to N nodes gets rate/N on
// each, rate in all; one talking to a single node gets all of its rate
// there. In a steady state the cluster allows at most
// rate × (1 + (N-1)/(2N)) < 1.5 × rate (reached only when a tenant sends
// a trickle to every node but one); when the traffic moves, the shares
// follow within about two windows, and a tenant new everywhere gets its
// full rate on every node for the first window. A node counts at most
// DefaultMaxTraffic active tenants; reports expire after 3 windows.
//
// # Bandwidth
//
// A tenant may also have a bandwidth (Limits.BytesIn, Limits.BytesOut:
// bytes per second of request and response bodies). RateLimiter.WaitIn
// and WaitOut (s3.Bandwidth) shape it with a token bucket per tenant and
// direction, a quarter second of the rate deep (at least MinBytesBurst):
// a stream in progress is slowed to the rate, never refused. Bandwidth is
// enforced per node: a tenant streaming through N nodes at once gets up
// to N times it.
//
// # Quotas
//
// Meter is both the engine's OnUsage sink and an s3.Quota. Each node adds
// the changes its own writes make to a pending batch and commits the batch
// through the Store (Raft) every FlushInterval; the committed totals are
// replicated to every node. Admit checks committed totals plus this node's
// pending changes plus the reservations of this node's uploads in flight
// against the tenant's quota, refusing an upload up front (403
// QuotaExceeded) when its declared size does not fit, and capping a
// streamed body at what is left. An admitted upload reserves its declared
// size (Content-Length, the decoded length of an aws-chunked body, a
// part's size, a copy's source size) and its artifact until the request
// ends, by which time a stored upload's usage is in the pending batch; so
// uploads admitted at the same moment on one node cannot together exceed
// the quota.
//
// Worst-case overshoot: a node sees its own writes and reservations at
// once, but another node's writes only after that node's next flush
// commits (FlushInterval plus a Raft round trip), and never its
// reservations. So with N nodes a tenant can exceed its quota by at most
// the bytes the other N-1 nodes accepted in the last FlushInterval (plus a
// commit), plus, on each node, the bodies of undeclared size (chunked
// transfer encoding) in flight, which reserve nothing and are each capped
// at what was left when they were admitted. An overwrite whose full size
// does not fit is admitted for what it adds beyond what its key stores
// (the s3 server asks again with the difference and no new artifact); a
// delete of that key racing with it can let the tenant overshoot by the
// replaced size.
package tenant
