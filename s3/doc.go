// Package s3 is the S3 front end: it serves the S3 REST API over fasthttp
// as a thin adapter over the engine. It parses requests (path-style and
// virtual-host-style), authenticates them with AWS Signature V4 (s3/sigv4),
// resolves the access key to a tenant, calls the engine and writes S3 XML
// responses. It is the only package that speaks of buckets and objects, and
// the only one that knows S3 error codes (see errors.go).
//
// Request bodies are streamed (fasthttp StreamRequestBody) straight into the
// engine and responses are streamed out of it; no object is ever held in
// memory.
//
// No body is read before its request is authenticated. A request with a
// body is routed, authenticated and rate-limited from its headers alone,
// as soon as they arrive (headerReceived), before fasthttp reads any of
// the body; a client's "Expect: 100-continue" is answered only then. A
// request refused there, or later before its body was read to the end, is
// answered at once and its connection closed: the server sends the answer,
// shuts its side down and discards what the client still sends for at
// most two seconds (a lingering close), so unread body bytes are never
// parsed as a next request and no connection waits on a body nobody will
// read. An admitted body must keep arriving at Config.BodyRateMin bytes
// per Config.BodyRateWindow; headers must arrive within
// Config.HeaderTimeout. A request with both Content-Length and
// Transfer-Encoding is refused (RFC 9112 §6.1). Client connections are
// capped in the server's own accept loop (conncap.go), in all
// (Config.MaxConns) and per source address (Config.MaxConnsPerIP, on by
// default): one over a cap is answered 429 or 503 SlowDown and closed
// within two seconds, before any of it is read.
//
// Every request is routed once, from its headers, by the route table
// (routes.go), before the rate limiter: the route names the operation for
// metrics and the event logs, says whether it is a mutation (the
// transaction log) and serves it. Errors become S3 errors in one table
// (errors.go).
//
// Paths under /_vault/ are reserved for the node itself: /_vault/health
// and the web console's static files under /_vault/console/ (package
// console; unauthenticated), /_vault/metrics (Prometheus text; it names
// tenants, so only the metrics bearer token or root's signature reads it,
// unless Config.MetricsOpen) and /_vault/admin/... (root credentials
// only).
//
// Unsigned requests are refused but for two cases. A plain GetObject or
// HeadObject (no credentials of any kind, no body, no query but x-id) of
// a public bucket (public-read ACL or a bucket policy allowing anonymous
// s3:GetObject; acl.go, policy.go) is served as the bucket's owner,
// counted and rate-limited to it (anonymous.go): public bucket names are
// claimed across tenants in the replicated state, so the name finds one
// tenant. The other is the CORS preflight (OPTIONS on a
// bucket or object, cors.go), which browsers send without credentials: it
// takes no body, is not rate-limited (it has no tenant) and is answered
// from this node's replicated state alone. Bucket names are unique per
// tenant only, so a preflight is answered from the rules of the one tenant
// owning a bucket of that name, and refused (403 AccessForbidden) when
// none or several do. Bucket configuration (CORS, versioning) is stored
// through BucketConfigs, which cluster.Store implements.
//
// Versioning (versioning.go): a bucket's state (Enabled, Suspended, or
// never set) is read from this node's replicated configuration on every
// write and passed to the engine, which stores each version as its own
// artifact (engine/version.go). Objects carry x-amz-version-id once their
// bucket is versioned ("null" for those written before or while
// suspended); GET, HEAD, DELETE and copy sources take versionId; a delete
// marker answers 404 NoSuchKey as the newest version and 405
// MethodNotAllowed by id, with x-amz-delete-marker: true. Object lock
// (objectlock.go) keeps a bucket's default retention in its configuration
// and a version's retention in the engine, which refuses to delete a
// protected version (AccessDenied, whoever asks).
//
// Lifecycle (lifecycle.go): Put/Get/DeleteBucketLifecycle keep a bucket's
// LifecycleConfiguration (checked by package lifecycle) as its
// "lifecycle" configuration document. LifecycleStore gives a
// lifecycle.Worker the buckets, versions, tags and uploads, expires and
// deletes through the engine (object lock still refuses), and observes
// each action as a request of an operation named Lifecycle*, so that it
// reaches the access and transaction logs.
//
// Browser form uploads (POST Object on a bucket, postobject.go) are routed
// from their headers like any request but authenticated from their form:
// the fields before the file (bounded in size) carry a SigV4-signed policy
// whose signature, expiry and conditions are checked before the file part
// streams into the engine. They are the one route whose body is read
// before its request is authenticated, and only those bounded fields.
//
// Object tags live in a reserved entry of the object's metadata record
// (tagging.go); bucket tags are a bucket configuration document. Writes
// with If-Match / If-None-Match are checked and written atomically by the
// engine under a cluster-wide per-key lock (conditional.go).
//
// Of this module, s3 imports only engine (the data path), console (the
// web console's embedded files, which imports nothing of the module), s3/sigv4
// (signature verification) and the package that declares the tenant
// store's errors (for the error table: the admin API's and the quota's).
// The node's other parts reach it through interfaces declared here (Keys,
// BucketConfigs, Admin, Limiter, Quota, Observer); metrics and events import s3 for its
// RequestEvent and route names, never the other way round.
package s3
