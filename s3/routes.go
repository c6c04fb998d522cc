package s3

import (
	"net/http"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/vaultaire/vaultaire/console"
	"github.com/vaultaire/vaultaire/engine"
)

// A route is one operation the server answers: its name (the operation
// label of metrics and the event logs), whether it changes stored state
// when it succeeds (the transaction log records those), which requests
// it serves and its handler. Requests are routed once, from their
// headers, before the rate limiter; the first route that matches serves.
// Adding an operation is one entry here plus its handler.
type route struct {
	name     string
	mutation bool
	match    func(t *target) bool
	serve    func(op *operation) error
}

// target is what a request is routed by: its method, raw path, bucket and
// key, query and whether it names a copy source.
type target struct {
	method      string
	path        string
	bucket, key string
	query       *fasthttp.Args
	copySource  bool
}

func (t *target) has(name string) bool { return t.query.Has(name) }

// Levels of an S3 request: the service, a bucket or an object.
const (
	service = iota
	bucketLevel
	objectLevel
)

func (t *target) level() int {
	switch {
	case t.bucket == "":
		return service
	case t.key == "":
		return bucketLevel
	}
	return objectLevel
}

// on matches a method at a level, on requests without ?acl (which only
// the ACL routes serve) that meet every condition.
func on(level int, method string, conds ...func(*target) bool) func(*target) bool {
	return func(t *target) bool {
		if t.level() != level || t.method != method || level != service && t.has("acl") {
			return false
		}
		for _, c := range conds {
			if !c(t) {
				return false
			}
		}
		return true
	}
}

// acl matches ACL requests of a method at a level.
func acl(level int, method string) func(*target) bool {
	return func(t *target) bool { return t.level() == level && t.method == method && t.has("acl") }
}

func q(name string) func(*target) bool       { return func(t *target) bool { return t.has(name) } }
func noQ(name string) func(*target) bool     { return func(t *target) bool { return !t.has(name) } }
func copySource(t *target) bool              { return t.copySource }
func listV2(t *target) bool                  { return string(t.query.Peek("list-type")) == "2" }
func fails(err error) func(*operation) error { return func(*operation) error { return err } }

// uploadID is the uploadId query parameter of a multipart request.
func (op *operation) uploadID() string { v, _ := op.query("uploadId"); return v }

// routes are the S3 operations, in the order they are matched.
var routes = []route{
	{name: "ListBuckets", match: on(service, http.MethodGet), serve: (*operation).listBuckets},
	{name: "GetBucketAcl", match: acl(bucketLevel, http.MethodGet), serve: (*operation).getACL},
	{name: "PutBucketAcl", match: acl(bucketLevel, http.MethodPut), serve: (*operation).putACL},
	{name: "GetObjectAcl", match: acl(objectLevel, http.MethodGet), serve: (*operation).getACL},
	{name: "PutObjectAcl", match: acl(objectLevel, http.MethodPut), serve: (*operation).putACL},

	{name: "PutBucketPolicy", mutation: true, match: on(bucketLevel, http.MethodPut, q("policy")), serve: (*operation).putBucketPolicy},
	{name: "GetBucketPolicy", match: on(bucketLevel, http.MethodGet, q("policy")), serve: (*operation).getBucketPolicy},
	{name: "DeleteBucketPolicy", mutation: true, match: on(bucketLevel, http.MethodDelete, q("policy")), serve: (*operation).deleteBucketPolicy},
	{name: "GetBucketPolicyStatus", match: on(bucketLevel, http.MethodGet, q("policyStatus")), serve: (*operation).getBucketPolicyStatus},
	{name: "PutBucketCors", mutation: true, match: on(bucketLevel, http.MethodPut, q("cors")), serve: (*operation).putBucketCors},
	{name: "GetBucketCors", match: on(bucketLevel, http.MethodGet, q("cors")), serve: (*operation).getBucketCors},
	{name: "DeleteBucketCors", mutation: true, match: on(bucketLevel, http.MethodDelete, q("cors")), serve: (*operation).deleteBucketCors},
	{name: "PutBucketLifecycleConfiguration", mutation: true, match: on(bucketLevel, http.MethodPut, q("lifecycle")), serve: (*operation).putBucketLifecycle},
	{name: "GetBucketLifecycleConfiguration", match: on(bucketLevel, http.MethodGet, q("lifecycle")), serve: (*operation).getBucketLifecycle},
	{name: "DeleteBucketLifecycle", mutation: true, match: on(bucketLevel, http.MethodDelete, q("lifecycle")), serve: (*operation).deleteBucketLifecycle},
	{name: "PutObjectLockConfiguration", mutation: true, match: on(bucketLevel, http.MethodPut, q("object-lock")), serve: (*operation).putObjectLockConfiguration},
	{name: "GetObjectLockConfiguration", match: on(bucketLevel, http.MethodGet, q("object-lock")), serve: (*operation).getObjectLockConfiguration},
	{name: "PutObjectRetention", mutation: true, match: on(objectLevel, http.MethodPut, q("retention")), serve: (*operation).putObjectRetention},
	{name: "GetObjectRetention", match: on(objectLevel, http.MethodGet, q("retention")), serve: (*operation).getObjectRetention},
	{name: "PutObjectLegalHold", mutation: true, match: on(objectLevel, http.MethodPut, q("legal-hold")), serve: (*operation).putObjectLegalHold},
	{name: "GetObjectLegalHold", match: on(objectLevel, http.MethodGet, q("legal-hold")), serve: (*operation).getObjectLegalHold},
	{name: "PutBucketVersioning", mutation: true, match: on(bucketLevel, http.MethodPut, q("versioning")), serve: (*operation).putBucketVersioning},
	{name: "GetBucketVersioning", match: on(bucketLevel, http.MethodGet, q("versioning")), serve: (*operation).getBucketVersioning},
	// CORS preflights are unauthenticated (browsers send no credentials).
	{name: preflightRoute, match: func(t *target) bool { return t.level() != service && t.method == http.MethodOptions },
		serve: (*operation).preflightCors},

	{name: "PutBucketTagging", mutation: true, match: on(bucketLevel, http.MethodPut, q("tagging")), serve: (*operation).putBucketTagging},
	{name: "GetBucketTagging", match: on(bucketLevel, http.MethodGet, q("tagging")), serve: (*operation).getBucketTagging},
	{name: "DeleteBucketTagging", mutation: true, match: on(bucketLevel, http.MethodDelete, q("tagging")), serve: (*operation).deleteBucketTagging},
	{name: "PutObjectTagging", mutation: true, match: on(objectLevel, http.MethodPut, q("tagging")), serve: (*operation).putObjectTagging},
	{name: "GetObjectTagging", match: on(objectLevel, http.MethodGet, q("tagging")), serve: (*operation).getObjectTagging},
	{name: "DeleteObjectTagging", mutation: true, match: on(objectLevel, http.MethodDelete, q("tagging")), serve: (*operation).deleteObjectTagging},
	{name: "GetObjectAttributes", match: on(objectLevel, http.MethodGet, q("attributes")), serve: (*operation).getObjectAttributes},

	{name: "CreateBucket", mutation: true, match: on(bucketLevel, http.MethodPut), serve: (*operation).createBucket},
	{name: "HeadBucket", match: on(bucketLevel, http.MethodHead), serve: (*operation).headBucket},
	{name: "DeleteBucket", mutation: true, match: on(bucketLevel, http.MethodDelete), serve: (*operation).deleteBucket},
	{name: "GetBucketLocation", match: on(bucketLevel, http.MethodGet, q("location")), serve: (*operation).bucketLocation},
	{name: "ListMultipartUploads", match: on(bucketLevel, http.MethodGet, q("uploads")), serve: (*operation).listUploads},
	{name: "ListObjectVersions", match: on(bucketLevel, http.MethodGet, q("versions")), serve: (*operation).listVersions},
	{name: "ListObjectsV2", match: on(bucketLevel, http.MethodGet, listV2), serve: func(op *operation) error { return op.listObjects(true) }},
	{name: "ListObjects", match: on(bucketLevel, http.MethodGet), serve: func(op *operation) error { return op.listObjects(false) }},
	{name: "DeleteObjects", mutation: true, match: on(bucketLevel, http.MethodPost, q("delete")), serve: (*operation).deleteObjects},
	// Browser form uploads authenticate with their form's signed policy,
	// not their headers (postobject.go).
	{name: postObjectRoute, mutation: true, match: on(bucketLevel, http.MethodPost, postForm), serve: (*operation).postObject},

	{name: "UploadPartCopy", match: on(objectLevel, http.MethodPut, q("uploadId"), q("partNumber"), copySource),
		serve: func(op *operation) error { return op.uploadPart(op.uploadID(), true) }},
	{name: "UploadPart", match: on(objectLevel, http.MethodPut, q("uploadId"), q("partNumber")),
		serve: func(op *operation) error { return op.uploadPart(op.uploadID(), false) }},
	{name: "CompleteMultipartUpload", mutation: true, match: on(objectLevel, http.MethodPost, q("uploadId")),
		serve: func(op *operation) error { return op.completeUpload(op.uploadID()) }},
	{name: "AbortMultipartUpload", match: on(objectLevel, http.MethodDelete, q("uploadId")),
		serve: func(op *operation) error { return op.abortUpload(op.uploadID()) }},
	{name: "ListParts", match: on(objectLevel, http.MethodGet, q("uploadId")),
		serve: func(op *operation) error { return op.listParts(op.uploadID()) }},
	{name: "CreateMultipartUpload", match: on(objectLevel, http.MethodPost, q("uploads")), serve: (*operation).createUpload},
	{name: "GetObject", match: on(objectLevel, http.MethodGet), serve: (*operation).getObject},
	{name: "HeadObject", match: on(objectLevel, http.MethodHead, noQ("uploadId")), serve: (*operation).getObject},
	// Any other use of uploadId or partNumber.
	{name: unknownOperation, serve: fails(ErrInvalidRequest), match: func(t *target) bool {
		return t.level() == objectLevel && !t.has("acl") && (t.has("uploadId") || t.has("partNumber"))
	}},
	// ?uploads names the multipart collection: a PUT or DELETE with it must
	// not overwrite or delete the object.
	{name: unknownOperation, serve: fails(ErrInvalidRequest), match: func(t *target) bool {
		return t.level() == objectLevel && t.has("uploads") && (t.method == http.MethodPut || t.method == http.MethodDelete)
	}},
	{name: "CopyObject", mutation: true, match: on(objectLevel, http.MethodPut, copySource), serve: (*operation).copyObject},
	{name: "PutObject", mutation: true, match: on(objectLevel, http.MethodPut), serve: (*operation).putObject},
	{name: "DeleteObject", mutation: true, match: on(objectLevel, http.MethodDelete), serve: (*operation).deleteObject},
}

// preflightRoute names the CORS preflight, the one S3 route served without
// authentication.
const preflightRoute = "PreflightCors"

// unknownOperation names a request no route serves.
const unknownOperation = "Unknown"

var (
	methodNotAllowed = &route{name: unknownOperation, serve: fails(ErrMethodNotAllowed)}
	notImplemented   = &route{name: unknownOperation, serve: fails(ErrNotImplemented)}
)

// unsupported lists subresources this server does not implement (or
// implements only where served says): a request naming one gets
// NotImplemented rather than a wrong answer.
var unsupported = []string{
	"accelerate", "analytics", "cors", "encryption", "intelligent-tiering", "inventory",
	"legal-hold", "lifecycle", "logging", "metrics", "notification", "object-lock", "ownershipControls",
	"policy", "policyStatus", "publicAccessBlock", "replication", "requestPayment", "restore",
	"retention", "select", "tagging", "torrent", "versioning", "versions", "website", "attributes",
}

// A headerRule refuses requests of some operations that carry a header
// asking for something this server does not do (encryption, object lock,
// tags, conditional writes): silently ignoring it would leave the client
// believing its object is protected, encrypted or tagged when it is not.
type headerRule struct {
	header string   // lower case; a name ending in "-" matches as a prefix
	ops    []string // route names it applies to; none means every route
	// allowed reports a value that asks for nothing (e.g. an empty tag
	// set); nil means any value is refused.
	allowed func(v string) bool
	err     *Error
}

var (
	objectWrites = []string{"PutObject", "CopyObject", "CreateMultipartUpload"}
	emptyOK      = func(v string) bool { return v == "" }
)

// headerRules are the headers no route implements yet.
var headerRules = []headerRule{
	{header: "x-amz-server-side-encryption", err: errSSENotImplemented},
	{header: "x-amz-server-side-encryption-", err: errSSENotImplemented},
	{header: "x-amz-copy-source-server-side-encryption-", err: errSSENotImplemented},
	// PutObject, CopyObject and CreateMultipartUpload take object lock
	// headers (objectlock.go).
	{header: "x-amz-website-redirect-location", ops: objectWrites, err: ErrNotImplemented, allowed: emptyOK},
	// Every object is stored alike (one erasure policy per container's
	// storage layout): S3's classes are accepted and stored as STANDARD,
	// as they ask for nothing that would be lost; a class S3 does not
	// know is refused, as S3 refuses it.
	{header: "x-amz-storage-class", ops: objectWrites, err: errInvalidStorageClass, allowed: knownStorageClass},
	// If-Match and If-None-Match are answered by GetObject and HeadObject
	// and, as conditional writes, by PutObject, CopyObject,
	// CompleteMultipartUpload and (If-Match) DeleteObject (conditional.go).
	{header: "if-none-match", ops: []string{"DeleteObject"}, err: errConditionalWrite},
	{header: "x-amz-if-match-last-modified-time", ops: []string{"DeleteObject"}, err: errConditionalWrite},
	{header: "x-amz-if-match-size", ops: []string{"DeleteObject"}, err: errConditionalWrite},
}

// knownStorageClass reports whether v names one of S3's storage classes.
func knownStorageClass(v string) bool {
	switch v {
	case "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
		"GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE":
		return true
	}
	return false
}

// refusedHeader returns the error of the first header rule a request of
// route rt breaks, or nil.
func refusedHeader(rt *route, h *fasthttp.RequestHeader) error {
	for k, v := range h.All() {
		if !hasPrefixFold(k, "x-amz-") && !hasPrefixFold(k, "if-") {
			continue
		}
		for i := range headerRules {
			r := &headerRules[i]
			if !(len(k) == len(r.header) && hasPrefixFold(k, r.header) || strings.HasSuffix(r.header, "-") && hasPrefixFold(k, r.header)) {
				continue
			}
			if len(r.ops) > 0 && !slices.Contains(r.ops, rt.name) {
				continue
			}
			if r.allowed != nil && r.allowed(string(v)) {
				continue
			}
			return r.err
		}
	}
	return nil
}

// hasPrefixFold reports whether the header name k begins with prefix,
// given in lowercase, ignoring ASCII case: no lowercase copy of every
// header name of every request.
func hasPrefixFold(k []byte, prefix string) bool {
	if len(k) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// resolve returns the route of an S3 request.
func resolve(t *target) *route {
	for _, sub := range unsupported {
		if t.has(sub) && !served(sub, t) {
			return notImplemented
		}
	}
	return first(routes, t)
}

// served reports the uses of an unsupported subresource that routes do
// serve: ListObjectVersions, bucket versioning, and bucket CORS (and preflights, whatever
// their query).
func served(sub string, t *target) bool {
	switch sub {
	case "versions":
		return t.key == "" && t.method == http.MethodGet
	case "versioning", "object-lock":
		return t.key == "" && (t.method == http.MethodGet || t.method == http.MethodPut)
	case "retention", "legal-hold":
		return t.key != "" && (t.method == http.MethodGet || t.method == http.MethodPut)
	case "cors":
		return t.key == "" || t.method == http.MethodOptions
	case "lifecycle", "policy":
		return t.key == ""
	case "policyStatus":
		return t.key == "" && t.method == http.MethodGet
	case "tagging":
		return t.method == http.MethodGet || t.method == http.MethodPut || t.method == http.MethodDelete
	case "attributes":
		return t.key != "" && t.method == http.MethodGet
	}
	return false
}

func first(rs []route, t *target) *route {
	for i := range rs {
		if rs[i].match(t) {
			return &rs[i]
		}
	}
	return methodNotAllowed
}

// dispatch checks what every S3 request must satisfy and serves it by its
// route.
func (op *operation) dispatch(rt *route) error {
	defer op.releaseQuota()
	if rt == notImplemented {
		return ErrNotImplemented
	}
	if rt.name != preflightRoute {
		op.corsResponse()
	}
	if _, err := contentMD5(&op.r.fctx.Request.Header); err != nil {
		return err
	}
	_, isACL := op.query("acl")
	if isACL && op.bucket != "" && validBucketName(op.bucket) && len(op.key) <= engine.MaxKeyLen {
		return rt.serve(op)
	}
	if err := op.checkACLHeaders(rt.name == "CreateBucket"); err != nil {
		return err
	}
	if err := refusedHeader(rt, &op.r.fctx.Request.Header); err != nil {
		return err
	}
	if v, ok := op.query("versionId"); ok && !engine.ValidVersionID(v) {
		return ErrInvalidVersion
	}
	switch {
	case op.bucket == "":
	case !validBucketName(op.bucket):
		if string(op.r.fctx.Method()) == http.MethodPut && op.key == "" {
			return ErrInvalidBucketName
		}
		return ErrNoSuchBucket
	case len(op.key) > engine.MaxKeyLen:
		return ErrKeyTooLong
	}
	return rt.serve(op)
}

// vaultRoutes are the operations on the node's reserved /_vault/ paths.
var vaultRoutes = []route{
	{name: "Health", match: path("/_vault/health"), serve: (*operation).health},
	{name: "Metrics", match: path("/_vault/metrics"), serve: (*operation).metrics},
	{name: "Console", match: func(t *target) bool { return t.path+"/" == console.Prefix || strings.HasPrefix(t.path, console.Prefix) },
		serve: func(op *operation) error { console.Serve(op.r.fctx, op.path); return nil }},
	{name: "Admin", match: tenants(http.MethodGet, func(n string) bool { return n == "" }), serve: asRoot(listTenants)},
	{name: "AdminAddKey", mutation: true, match: tenants(http.MethodPost, suffix("/keys")), serve: asRoot(func(op *operation, name string) error {
		return op.sendTenant(op.s.cfg.Admin.AddKey(op.ctx, strings.TrimSuffix(name, "/keys")))
	})},
	{name: "AdminSetRate", mutation: true, match: tenants(http.MethodPut, suffix("/rate")), serve: asRoot(setLimits)},
	{name: "AdminSetQuota", mutation: true, match: tenants(http.MethodPut, suffix("/quota")), serve: asRoot(setLimits)},
	{name: "AdminCreateTenant", mutation: true, match: tenants(http.MethodPut, oneName), serve: asRoot(func(op *operation, name string) error {
		return op.sendTenant(op.s.cfg.Admin.CreateTenant(op.ctx, name))
	})},
	{name: "AdminDeleteTenant", mutation: true, match: tenants(http.MethodDelete, oneName), serve: asRoot(deleteTenant)},
	{name: "Admin", match: tenants("", func(string) bool { return true }), serve: asRoot(func(*operation, string) error { return ErrMethodNotAllowed })},
	{name: "Admin", match: func(t *target) bool { return t.path == containersPath && t.method == http.MethodGet }, serve: containerAdmin(listContainers)},
	{name: "AdminSetStoragePolicy", mutation: true, match: func(t *target) bool {
		_, _, ok := containerPolicyPath(t.path)
		return ok && t.method == http.MethodPut
	}, serve: containerAdmin(setStoragePolicy)},
	{name: "Admin", match: path("/_vault/admin/cluster"), serve: (*operation).clusterStatus},
	{name: "AdminCluster", mutation: true, match: func(t *target) bool {
		op, ok := strings.CutPrefix(t.path, "/_vault/admin/cluster/")
		return ok && oneName(op) && t.method == http.MethodPost
	}, serve: (*operation).clusterControl},
	{name: "Admin", match: func(*target) bool { return true }, serve: fails(errNoAdminResource)},
}

// path matches a /_vault/ path.
func path(p string) func(*target) bool { return func(t *target) bool { return t.path == p } }

const tenantsPath = "/_vault/admin/tenants"

// tenantName is the rest of a /_vault/admin/tenants/... path.
func tenantName(p string) (string, bool) {
	if p == tenantsPath {
		return "", true
	}
	return strings.CutPrefix(p, tenantsPath+"/")
}

// tenants matches a method ("" for any) on the tenants API whose path,
// after /_vault/admin/tenants/, meets cond.
func tenants(method string, cond func(name string) bool) func(*target) bool {
	return func(t *target) bool {
		name, ok := tenantName(t.path)
		return ok && (method == "" || t.method == method) && cond(name)
	}
}

func suffix(s string) func(string) bool {
	return func(n string) bool { return strings.HasSuffix(n, s) }
}
func oneName(n string) bool { return n != "" && !strings.Contains(n, "/") }

// Operations returns the names of every route (the operation label
// values of metrics), "Unknown" included, each once.
func Operations() []string {
	names := []string{unknownOperation}
	for _, r := range slices.Concat(routes, vaultRoutes) {
		if !slices.Contains(names, r.name) {
			names = append(names, r.name)
		}
	}
	return names
}

// mutations are the names of the routes that change stored state.
var mutations = func() map[string]bool {
	m := make(map[string]bool)
	for _, r := range slices.Concat(routes, vaultRoutes) {
		m[r.name] = m[r.name] || r.mutation
	}
	for _, n := range lifecycleOperations {
		m[n] = true
	}
	m[TierOperation] = true     // no route: the tier policy's background moves
	m[RelayoutOperation] = true // nor the moves of a storage policy change
	return m
}()
