package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Container names one tenant's container.
type Container struct{ Tenant, Name string }

// Version is one version (or delete marker) of a key, as listed.
type Version struct {
	Key, VersionID string
	Size           int64 // bytes
	ETag           string
	Modified       time.Time
	IsLatest       bool
	DeleteMarker   bool
}

// Upload is an incomplete multipart upload.
type Upload struct {
	Key, ID   string
	Initiated time.Time
}

// Errors a Store returns for actions the worker skips.
var (
	// ErrProtected: object lock (retention or legal hold) forbids
	// deleting the version.
	ErrProtected = errors.New("lifecycle: version is protected")
	// ErrChanged: the key changed since it was listed; the next pass
	// looks again.
	ErrChanged = errors.New("lifecycle: key changed since listed")
)

// Store is what the worker reads and changes. Implementations must be
// safe for concurrent use, must check object lock on every deletion
// (ErrProtected) and must record every action they take in the
// transaction log. s3.Server provides one (s3.LifecycleStore).
type Store interface {
	// Containers lists every tenant's containers.
	Containers(ctx context.Context) ([]Container, error)
	// Configuration returns a container's lifecycle configuration
	// document and whether it has one.
	Configuration(ctx context.Context, c Container) ([]byte, bool, error)
	// Versions returns up to limit versions after the markers (a key
	// alone: after every version of it), keys in byte order and each
	// key's versions newest first, and the markers of the next page
	// (more false on the last page).
	Versions(ctx context.Context, c Container, afterKey, afterVersion string, limit int) (vs []Version, nextKey, nextVersion string, more bool, err error)
	// Tags returns a version's tags.
	Tags(ctx context.Context, c Container, key, versionID string) (map[string]string, error)
	// ExpireCurrent expires v, the current version of its key, as S3's
	// DeleteObject does (a delete marker when the container is
	// versioned), unless the key's current version is no longer v
	// (ErrChanged).
	ExpireCurrent(ctx context.Context, c Container, v Version) error
	// DeleteVersion deletes one version or delete marker for good.
	DeleteVersion(ctx context.Context, c Container, key, versionID string) error
	// Uploads returns up to limit incomplete uploads after the markers.
	Uploads(ctx context.Context, c Container, afterKey, afterID string, limit int) ([]Upload, bool, error)
	// AbortUpload aborts an incomplete upload.
	AbortUpload(ctx context.Context, c Container, key, id string) error
	// Progress and SaveProgress keep the worker's progress through a
	// container (an opaque document), replicated so that a restart or a
	// new leader resumes it.
	Progress(ctx context.Context, c Container) ([]byte, bool, error)
	SaveProgress(ctx context.Context, c Container, doc []byte) error
}

// Config configures a Worker.
type Config struct {
	Store Store
	// Day is the length of a lifecycle day: 24h. A shorter day is a test
	// setting (expiry after "1 day" then takes Day); times are rounded
	// up to a multiple of Day since the Unix epoch, as AWS rounds them up
	// to the next midnight UTC.
	Day time.Duration
	// Interval is the time from one pass's start to the next; 1h.
	Interval time.Duration
	// Rate bounds the actions and listing pages per second; 50.
	Rate float64
	// Active reports whether this node runs passes (the Raft leader);
	// nil means always (a single node).
	Active func() bool
	Logger *slog.Logger
}

// Stats counts a Worker's actions since it started.
type Stats struct {
	Passes, Expired, NoncurrentDeleted, MarkersRemoved, UploadsAborted, Protected, Errors int64
}

// Worker applies containers' lifecycle rules in passes over their
// versions and uploads.
type Worker struct {
	cfg  Config
	log  *slog.Logger
	next time.Time // rate limiter: earliest next operation

	passes, expired, noncurrent, markers, aborted, protected, errs atomic.Int64
}

// New returns a Worker.
func New(cfg Config) (*Worker, error) {
	if cfg.Store == nil {
		return nil, errors.New("lifecycle: no store")
	}
	if cfg.Day < 0 || cfg.Interval < 0 || cfg.Rate < 0 {
		return nil, errors.New("lifecycle: negative day, interval or rate")
	}
	if cfg.Day == 0 {
		cfg.Day = 24 * time.Hour
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Hour
	}
	if cfg.Rate == 0 {
		cfg.Rate = 50
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Worker{cfg: cfg, log: cfg.Logger}, nil
}

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	return Stats{Passes: w.passes.Load(), Expired: w.expired.Load(), NoncurrentDeleted: w.noncurrent.Load(),
		MarkersRemoved: w.markers.Load(), UploadsAborted: w.aborted.Load(), Protected: w.protected.Load(), Errors: w.errs.Load()}
}

func (w *Worker) active() bool { return w.cfg.Active == nil || w.cfg.Active() }

// Run makes a pass every Interval while this node is active, until ctx
// ends.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		if w.active() {
			if err := w.Pass(ctx); err != nil && ctx.Err() == nil {
				w.log.Warn("lifecycle: pass", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// errInactive stops a pass when this node stops being the leader.
var errInactive = errors.New("lifecycle: no longer the active node")

// Pass applies every container's rules once. It stops early, keeping
// its progress, when ctx ends or the node stops being active.
func (w *Worker) Pass(ctx context.Context) error {
	cs, err := w.cfg.Store.Containers(ctx)
	if err != nil {
		return fmt.Errorf("lifecycle: containers: %w", err)
	}
	var errs []error
	for _, c := range cs {
		if !w.active() {
			return errInactive
		}
		if err := w.container(ctx, c); err != nil {
			if ctx.Err() != nil || errors.Is(err, errInactive) {
				return err
			}
			w.errs.Add(1)
			errs = append(errs, fmt.Errorf("lifecycle: %s/%s: %w", c.Tenant, c.Name, err))
		}
	}
	w.passes.Add(1)
	return errors.Join(errs...)
}

// wait paces operations at Rate per second.
func (w *Worker) wait(ctx context.Context) error {
	now := time.Now()
	if w.next.After(now) {
		t := time.NewTimer(w.next.Sub(now))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		now = w.next
	}
	w.next = now.Add(time.Duration(float64(time.Second) / w.cfg.Rate))
	return nil
}

// progress is a container's place in the current pass.
type progress struct {
	After string `json:"after"` // every key up to here is done
}

// checkpointEvery is how many keys the worker handles between saving its
// progress.
const checkpointEvery = 256

// pageSize is the versions and uploads listed per page.
const pageSize = 250

// container applies c's rules.
func (w *Worker) container(ctx context.Context, c Container) error {
	doc, ok, err := w.cfg.Store.Configuration(ctx, c)
	if err != nil || !ok {
		return err
	}
	cfg, err := Parse(doc)
	if err != nil {
		return err
	}
	var rules []*Rule
	for i := range cfg.Rules {
		if cfg.Rules[i].enabled() {
			rules = append(rules, &cfg.Rules[i])
		}
	}
	if len(rules) == 0 {
		return nil
	}
	var p progress
	if d, ok, err := w.cfg.Store.Progress(ctx, c); err != nil {
		return err
	} else if ok && len(d) > 0 {
		if err := json.Unmarshal(d, &p); err != nil {
			p = progress{}
		}
	}
	saved := p.After != ""
	if err := w.versions(ctx, c, rules, &p, &saved); err != nil {
		return err
	}
	if saved {
		if err := w.save(ctx, c, progress{}); err != nil {
			return err
		}
	}
	return w.uploads(ctx, c, rules)
}

func (w *Worker) save(ctx context.Context, c Container, p progress) error {
	d, _ := json.Marshal(p)
	return w.cfg.Store.SaveProgress(ctx, c, d)
}

// versions walks c's keys from p.After, a key's versions at a time.
func (w *Worker) versions(ctx context.Context, c Container, rules []*Rule, p *progress, saved *bool) error {
	var (
		group      []Version
		since      int
		key, vid   = p.After, ""
		handleLast = func() error {
			if len(group) == 0 {
				return nil
			}
			if err := w.key(ctx, c, rules, group); err != nil {
				return err
			}
			p.After = group[0].Key
			group = group[:0]
			if since++; since >= checkpointEvery {
				since = 0
				*saved = true
				return w.save(ctx, c, *p)
			}
			return nil
		}
	)
	for {
		if !w.active() {
			return errInactive
		}
		if err := w.wait(ctx); err != nil {
			return err
		}
		vs, nk, nv, more, err := w.cfg.Store.Versions(ctx, c, key, vid, pageSize)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if len(group) > 0 && group[0].Key != v.Key {
				if err := handleLast(); err != nil {
					return err
				}
			}
			group = append(group, v)
		}
		if !more {
			return handleLast()
		}
		key, vid = nk, nv
	}
}

// due reports whether a time days lifecycle days after t has come.
func (w *Worker) due(t time.Time, days int, now time.Time) bool {
	d := w.cfg.Day
	at := t.Add(time.Duration(days) * d)
	if r := at.UnixNano() % int64(d); r != 0 {
		at = at.Add(d - time.Duration(r))
	}
	return !now.Before(at)
}

// act runs one action, paced, and counts it; a protected version or a
// changed key is skipped.
func (w *Worker) act(ctx context.Context, n *atomic.Int64, f func() error) (bool, error) {
	if err := w.wait(ctx); err != nil {
		return false, err
	}
	switch err := f(); {
	case err == nil:
		n.Add(1)
		return true, nil
	case errors.Is(err, ErrProtected):
		w.protected.Add(1)
		return false, nil
	case errors.Is(err, ErrChanged):
		return false, nil
	default:
		return false, err
	}
}

// key applies the rules to one key's versions, newest first.
func (w *Worker) key(ctx context.Context, c Container, rules []*Rule, vs []Version) error {
	now := time.Now()
	tagCache := map[string]map[string]string{}
	tagsOf := func(v Version) func() (map[string]string, error) {
		return func() (map[string]string, error) {
			if t, ok := tagCache[v.VersionID]; ok {
				return t, nil
			}
			t, err := w.cfg.Store.Tags(ctx, c, v.Key, v.VersionID)
			if err != nil {
				return nil, err
			}
			tagCache[v.VersionID] = t
			return t, nil
		}
	}
	left := len(vs)
	var cur *Version
	if vs[0].IsLatest {
		cur = &vs[0]
	}
	// Expiration of the current version.
	if cur != nil && !cur.DeleteMarker {
		for _, r := range rules {
			e := r.Expiration
			if e == nil || (e.Days == nil && e.Date == nil) {
				continue
			}
			if e.Days != nil && !w.due(cur.Modified, *e.Days, now) {
				continue
			}
			if d, err := e.date(); e.Date != nil && (err != nil || now.Before(d)) {
				continue
			}
			ok, err := r.matches(cur.Key, cur.Size, tagsOf(*cur))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, err := w.act(ctx, &w.expired, func() error { return w.cfg.Store.ExpireCurrent(ctx, c, *cur) }); err != nil {
				return err
			}
			break
		}
	}
	// Noncurrent versions: vs[i] stopped being current when vs[i-1] was
	// written.
	nc := 0
	for i := 1; i < len(vs); i++ {
		v := vs[i]
		for _, r := range rules {
			n := r.NoncurrentVersionExpiration
			if n == nil || n.NoncurrentDays == nil {
				continue
			}
			if n.NewerNoncurrentVersions != nil && nc < *n.NewerNoncurrentVersions {
				continue
			}
			if !w.due(vs[i-1].Modified, *n.NoncurrentDays, now) {
				continue
			}
			ok, err := r.matches(v.Key, v.Size, tagsOf(v))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			counter := &w.noncurrent
			done, err := w.act(ctx, counter, func() error { return w.cfg.Store.DeleteVersion(ctx, c, v.Key, v.VersionID) })
			if err != nil {
				return err
			}
			if done {
				left--
			}
			break
		}
		nc++
	}
	// An expired delete marker: the current version is a marker and no
	// other version is left.
	if cur != nil && cur.DeleteMarker && left == 1 {
		for _, r := range rules {
			e := r.Expiration
			if e == nil || e.ExpiredObjectDeleteMarker == nil || !*e.ExpiredObjectDeleteMarker {
				continue
			}
			if ok, err := r.matches(cur.Key, 0, noTags); err != nil || !ok {
				continue
			}
			if _, err := w.act(ctx, &w.markers, func() error { return w.cfg.Store.DeleteVersion(ctx, c, cur.Key, cur.VersionID) }); err != nil {
				return err
			}
			break
		}
	}
	return nil
}

// uploads aborts c's incomplete uploads that a rule says are due.
func (w *Worker) uploads(ctx context.Context, c Container, rules []*Rule) error {
	var aborting []*Rule
	for _, r := range rules {
		if r.AbortIncompleteMultipartUpload != nil {
			aborting = append(aborting, r)
		}
	}
	if len(aborting) == 0 {
		return nil
	}
	now := time.Now()
	key, id := "", ""
	for {
		if !w.active() {
			return errInactive
		}
		if err := w.wait(ctx); err != nil {
			return err
		}
		ups, more, err := w.cfg.Store.Uploads(ctx, c, key, id, pageSize)
		if err != nil {
			return err
		}
		for _, u := range ups {
			for _, r := range aborting {
				if ok, _ := r.matches(u.Key, 0, noTags); !ok || !w.due(u.Initiated, *r.AbortIncompleteMultipartUpload.DaysAfterInitiation, now) {
					continue
				}
				if _, err := w.act(ctx, &w.aborted, func() error { return w.cfg.Store.AbortUpload(ctx, c, u.Key, u.ID) }); err != nil {
					return err
				}
				break
			}
		}
		if !more || len(ups) == 0 {
			return nil
		}
		key, id = ups[len(ups)-1].Key, ups[len(ups)-1].ID
	}
}

// noTags stands for the tags of what has none (markers, uploads).
func noTags() (map[string]string, error) { return nil, nil }
