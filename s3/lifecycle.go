package s3

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/lifecycle"
)

// Bucket lifecycle. Put/Get/DeleteBucketLifecycleConfiguration keep the
// LifecycleConfiguration document (checked by lifecycle.Parse's rules)
// as the bucket's "lifecycle" configuration document, replicated like the
// others; a lifecycle.Worker applies it through LifecycleStore. The
// worker's progress through a bucket is a second document,
// "lifecycle-state", that no S3 call shows.

const (
	lifecycleKind      = "lifecycle"
	lifecycleStateKind = "lifecycle-state"
)

// The operations of the lifecycle worker's actions, as the access and
// transaction logs name them.
const (
	opLifecycleExpire       = "LifecycleExpiration"
	opLifecycleNoncurrent   = "LifecycleNoncurrentVersionExpiration"
	opLifecycleDeleteMarker = "LifecycleExpiredObjectDeleteMarker"
	opLifecycleAbortUpload  = "LifecycleAbortIncompleteMultipartUpload"
)

// lifecycleOperations are mutations no route serves.
var lifecycleOperations = []string{opLifecycleExpire, opLifecycleNoncurrent, opLifecycleDeleteMarker, opLifecycleAbortUpload}

// lifecycleError maps a refused configuration to its S3 error.
func lifecycleError(err error) error {
	var ve *lifecycle.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	switch ve.Kind {
	case lifecycle.InvalidArgument:
		return withMessage(ErrInvalidArgument, ve.Msg)
	case lifecycle.InvalidRequest:
		return withMessage(ErrInvalidRequest, ve.Msg)
	case lifecycle.NotImplemented:
		return withMessage(ErrNotImplemented, ve.Msg)
	}
	return ErrMalformedXML
}

func (op *operation) putBucketLifecycle() error {
	cs, err := op.configs()
	if err != nil {
		return err
	}
	var c lifecycle.Configuration
	if err := op.readXMLBody(&c); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return lifecycleError(err)
	}
	c.Xmlns = s3Namespace
	doc, err := xml.Marshal(c)
	if err != nil {
		return err
	}
	if err := cs.PutBucketConfig(op.ctx, op.tenant, op.bucket, lifecycleKind, doc); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusOK)
	return nil
}

func (op *operation) getBucketLifecycle() error {
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	doc, ok, err := cs.BucketConfig(op.ctx, op.tenant, op.bucket, lifecycleKind)
	if err != nil {
		return err
	}
	if !ok {
		return errNoSuchLifecycle
	}
	writeDoc(op, doc)
	return nil
}

func (op *operation) deleteBucketLifecycle() error {
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	if err := cs.DeleteBucketConfig(op.ctx, op.tenant, op.bucket, lifecycleKind); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

// expirationHeader sets x-amz-expiration on an answer about the current
// version of an object (HEAD, GET, PUT, CopyObject, Complete) that an
// enabled Expiration rule of the bucket selects, as S3 does (DIFF26
// D11): expiry-date="<the midnight GMT it expires at>",
// rule-id="<the rule's ID, URL-encoded>". The rules are this node's copy of the
// bucket's configuration (no round trip: the header informs, the worker
// decides); a rule's tag filter is matched against the object's tags,
// which its metadata holds, so prefix, size and tag filters all apply. A
// request for a version by versionId gets none: Expiration acts on
// current versions only.
func (op *operation) expirationHeader(info engine.ArtifactInfo) {
	if op.s.cfg.Configs == nil {
		return
	}
	if _, ok := op.query("versionId"); ok {
		return
	}
	c := op.s.lifecycles.get(op.s.cfg.Configs, op.tenant, op.bucket)
	if c == nil {
		return
	}
	var tags map[string]string
	if ts := objectTags(info.Metadata); len(ts) > 0 {
		tags = make(map[string]string, len(ts))
		for _, t := range ts {
			tags[t.Key] = t.Value
		}
	}
	at, id, ok := c.Expiry(info.Key, info.Size, info.Modified, tags)
	if !ok {
		return
	}
	// The rule ID URL-encoded, as S3 documents it (review 27s R3): a
	// quote, a backslash or a control character cannot break the value.
	v := `expiry-date="` + at.Format(http.TimeFormat) + `", rule-id="` + url.QueryEscape(id) + `"`
	op.r.fctx.Response.Header.Set("x-amz-expiration", v)
}

// lifecycleCache keeps each bucket's parsed lifecycle configuration with
// the document it was parsed from, so that a GET does not parse it again
// while it is unchanged.
type lifecycleCache struct {
	mu sync.RWMutex
	m  map[bucketRef]*parsedLifecycle
}

// bucketRef names a bucket: a comparable key that costs no allocation.
type bucketRef struct{ tenant, bucket string }

type parsedLifecycle struct {
	doc []byte
	cfg *lifecycle.Configuration
}

// get returns the bucket's configuration from this node's state, nil if
// it has none (or one that does not parse, which Put refused). A bucket
// without one costs no allocation (review 27s R1: every GET, HEAD and PUT
// asks).
func (lc *lifecycleCache) get(cs BucketConfigs, tenant, bucket string) *lifecycle.Configuration {
	doc, ok := cs.LocalBucketConfig(tenant, bucket, lifecycleKind)
	ref := bucketRef{tenant, bucket}
	lc.mu.RLock()
	v, cached := lc.m[ref]
	lc.mu.RUnlock()
	switch {
	case !ok && !cached:
		return nil
	case !ok:
		lc.mu.Lock()
		delete(lc.m, ref)
		lc.mu.Unlock()
		return nil
	case cached && bytes.Equal(v.doc, doc):
		return v.cfg
	}
	cfg, err := lifecycle.Parse(doc)
	if err != nil {
		return nil
	}
	lc.mu.Lock()
	if lc.m == nil {
		lc.m = map[bucketRef]*parsedLifecycle{}
	}
	lc.m[ref] = &parsedLifecycle{doc: doc, cfg: cfg}
	lc.mu.Unlock()
	return cfg
}

// LifecycleStore returns the lifecycle.Store of the server's buckets;
// tenants lists every tenant. Every action it takes is observed (access
// and transaction logs) as a request of an operation named Lifecycle*,
// with the tenant, bucket, key and version acted on.
func (s *Server) LifecycleStore(tenants func(context.Context) ([]string, error)) lifecycle.Store {
	return &lifecycleStore{s: s, tenants: tenants}
}

type lifecycleStore struct {
	s       *Server
	tenants func(context.Context) ([]string, error)
}

var _ lifecycle.Store = (*lifecycleStore)(nil)

func (l *lifecycleStore) Containers(ctx context.Context) ([]lifecycle.Container, error) {
	ts, err := l.tenants(ctx)
	if err != nil {
		return nil, err
	}
	var out []lifecycle.Container
	for _, t := range ts {
		cs, err := l.s.cfg.Engine.Containers(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("s3: lifecycle: containers of %s: %w", t, err)
		}
		for _, c := range cs {
			out = append(out, lifecycle.Container{Tenant: t, Name: c.Name})
		}
	}
	return out, nil
}

func (l *lifecycleStore) doc(ctx context.Context, c lifecycle.Container, kind string) ([]byte, bool, error) {
	if l.s.cfg.Configs == nil {
		return nil, false, nil
	}
	return l.s.cfg.Configs.BucketConfig(ctx, c.Tenant, c.Name, kind)
}

func (l *lifecycleStore) Configuration(ctx context.Context, c lifecycle.Container) ([]byte, bool, error) {
	return l.doc(ctx, c, lifecycleKind)
}

func (l *lifecycleStore) Progress(ctx context.Context, c lifecycle.Container) ([]byte, bool, error) {
	return l.doc(ctx, c, lifecycleStateKind)
}

func (l *lifecycleStore) SaveProgress(ctx context.Context, c lifecycle.Container, doc []byte) error {
	if l.s.cfg.Configs == nil {
		return nil
	}
	return l.s.cfg.Configs.PutBucketConfig(ctx, c.Tenant, c.Name, lifecycleStateKind, doc)
}

func (l *lifecycleStore) Versions(ctx context.Context, c lifecycle.Container, afterKey, afterVersion string, limit int) ([]lifecycle.Version, string, string, bool, error) {
	res, err := l.s.cfg.Engine.ListVersions(ctx, c.Tenant, c.Name, engine.VersionListOptions{KeyMarker: afterKey, VersionIDMarker: afterVersion, Limit: limit})
	if err != nil {
		return nil, "", "", false, err
	}
	vs := make([]lifecycle.Version, len(res.Versions))
	for i, v := range res.Versions {
		vs[i] = lifecycle.Version{Key: v.Key, VersionID: v.VersionID, Size: v.Size, ETag: v.ETag, Modified: v.Modified, IsLatest: v.IsLatest, DeleteMarker: v.DeleteMarker}
	}
	return vs, res.NextKey, res.NextVersion, res.Truncated, nil
}

func (l *lifecycleStore) Tags(ctx context.Context, c lifecycle.Container, key, vid string) (map[string]string, error) {
	// A scan's lookups, not a client's reads: they fill no drive's cache.
	a, err := l.s.cfg.Engine.OpenVersion(driver.WithoutFill(ctx), c.Tenant, c.Name, key, vid)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, t := range objectTags(a.Info.Metadata) {
		m[t.Key] = t.Value
	}
	return m, nil
}

// lockErr turns an object lock refusal into lifecycle.ErrProtected.
func lockErr(err error) error {
	if errors.Is(err, engine.ErrLocked) {
		return fmt.Errorf("%w: %w", lifecycle.ErrProtected, err)
	}
	return err
}

func (l *lifecycleStore) ExpireCurrent(ctx context.Context, c lifecycle.Container, v lifecycle.Version) error {
	state, err := l.s.versioningOf(ctx, c.Tenant, c.Name)
	if err != nil {
		return err
	}
	cond := func(cur *engine.ArtifactInfo) error {
		if cur == nil || cur.ETag != v.ETag {
			return lifecycle.ErrChanged
		}
		vid := cur.VersionID
		if vid == "" {
			vid = engine.NullVersion
		}
		if vid != v.VersionID || (vid == engine.NullVersion && !cur.Modified.Equal(v.Modified)) {
			return lifecycle.ErrChanged
		}
		return nil
	}
	res, err := l.s.cfg.Engine.DeleteVersion(ctx, c.Tenant, c.Name, v.Key, engine.DeleteOptions{Versioning: state, Condition: cond})
	if err != nil {
		return lockErr(err)
	}
	l.record(opLifecycleExpire, c, v.Key, res.VersionID)
	return nil
}

func (l *lifecycleStore) DeleteVersion(ctx context.Context, c lifecycle.Container, key, vid string) error {
	state, err := l.s.versioningOf(ctx, c.Tenant, c.Name)
	if err != nil {
		return err
	}
	// Only while it is not the current version: deleting by id the version
	// that made it noncurrent makes it current again, after the worker
	// listed it (probe H3 of session 7). The check and the deletion hold
	// the key's lock.
	notCurrent := func(cur *engine.ArtifactInfo) error {
		if cur == nil {
			return nil // a delete marker is current, or nothing is
		}
		id := cur.VersionID
		if id == "" {
			id = engine.NullVersion
		}
		if id == vid {
			return lifecycle.ErrChanged
		}
		return nil
	}
	res, err := l.s.cfg.Engine.DeleteVersion(ctx, c.Tenant, c.Name, key, engine.DeleteOptions{Versioning: state, VersionID: vid, Condition: notCurrent})
	if err != nil {
		return lockErr(err)
	}
	op := opLifecycleNoncurrent
	if res.DeleteMarker {
		op = opLifecycleDeleteMarker
	}
	l.record(op, c, key, vid)
	return nil
}

func (l *lifecycleStore) Uploads(ctx context.Context, c lifecycle.Container, afterKey, afterID string, limit int) ([]lifecycle.Upload, bool, error) {
	ups, more, err := l.s.cfg.Engine.ListUploads(ctx, c.Tenant, c.Name, "", afterKey, afterID, limit)
	if err != nil {
		return nil, false, err
	}
	out := make([]lifecycle.Upload, len(ups))
	for i, u := range ups {
		out[i] = lifecycle.Upload{Key: u.Key, ID: u.ID, Initiated: u.Initiated}
	}
	return out, more, nil
}

func (l *lifecycleStore) AbortUpload(ctx context.Context, c lifecycle.Container, key, id string) error {
	err := l.s.cfg.Engine.AbortUpload(ctx, c.Tenant, c.Name, key, id)
	if errors.Is(err, engine.ErrNoSuchUpload) {
		return fmt.Errorf("%w: %w", lifecycle.ErrChanged, err)
	}
	if err != nil {
		return err
	}
	l.record(opLifecycleAbortUpload, c, key, "")
	return nil
}

// record observes an action as a request of the worker's.
func (l *lifecycleStore) record(op string, c lifecycle.Container, key, vid string) {
	if l.s.cfg.Observer == nil {
		return
	}
	ev := RequestEvent{Time: time.Now(), Node: l.s.cfg.Node, RequestID: newRequestID(), Tenant: c.Tenant, Operation: op,
		Bucket: c.Name, Key: key, VersionID: vid, ObjectSize: -1, Status: http.StatusNoContent}
	l.s.cfg.Observer.ObserveRequest(&ev)
}
