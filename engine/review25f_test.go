package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// Review 25f: de9efc5 (a versioned completion holds key's lock from its
// plain record to its adoption; adopt takes it on a plain record).

// pausePartDeletes pauses DeleteRecord of part records (CompleteUpload's
// step 3, after the artifact's plain record is written) while armed,
// until release is closed; reached is closed at the first one.
type pausePartDeletes struct {
	driver.Driver
	p *partPause
}

type partPause struct {
	armed            atomic.Bool
	once             sync.Once
	reached, release chan struct{}
}

func (f pausePartDeletes) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	if f.p.armed.Load() && strings.HasPrefix(key, "\x01P\x00") {
		f.p.once.Do(func() { close(f.p.reached) })
		<-f.p.release
	}
	return f.Driver.DeleteRecord(ctx, key, v)
}

// gatedReader blocks its first Read until open is closed, signalling
// started when it is first called.
type gatedReader struct {
	r             io.Reader
	once          sync.Once
	started, open chan struct{}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.once.Do(func() { close(g.started) })
	<-g.open
	return g.r.Read(p)
}

// TestReview25fPutPointerOverwritesCompletion (F1): a versioned PUT of
// the key whose adopt(NullVersion) ran before the completion wrote its
// plain record (it found a pointer or nothing: no key lock taken) and
// which is still streaming its body. Its pointer then lands while the
// completion, key lock held, is in CompleteUpload's step 3 (deleting
// part records: one sequential round per part, long for 10,000 parts):
// the pointer replaces the completion's plain record (keepReplaced:
// its shard files kept, named by nothing). The completion's adopt(vid)
// then finds a pointer and adopts nothing, and CompleteUploadVersion
// answers success with version vid, which does not exist: the
// acknowledged object is lost (review 25d P2b by another route; the key
// lock does not cover a writer that never finds a plain record). Fixed:
// the completion writes its version key directly and points the key at
// it (completionVidKey); the PUT's pointer replaces only a pointer.
func TestReview25fPutPointerOverwritesCompletion(t *testing.T) {
	ctx := t.Context()
	p := &partPause{reached: make(chan struct{}), release: make(chan struct{})}
	r := newRig(t, rigOptions{drives: 4, wrap: func(d driver.Driver) driver.Driver { return pausePartDeletes{d, p} }})
	id, err := r.e.CreateUpload(ctx, "t", "c", "m", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := randBytes(51, 200<<10)
	pi, err := r.e.PutPart(ctx, "t", "c", "m", id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	// Another client's versioned PUT: past its adopt, streaming its body.
	other := randBytes(52, 100<<10)
	g := &gatedReader{r: bytes.NewReader(other), started: make(chan struct{}), open: make(chan struct{})}
	put := make(chan error, 1)
	go func() {
		_, err := r.e.Put(ctx, "t", "c", "m", g, PutOptions{Size: int64(len(other)), Versioning: VersioningEnabled})
		put <- err
	}()
	<-g.started
	// The completion, paused in its step 3.
	p.armed.Store(true)
	type answer struct {
		info ArtifactInfo
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		info, err := r.e.CompleteUploadVersion(ctx, "t", "c", "m", id, []CompletePart{{1, pi.ETag}}, nil, VersioningEnabled)
		done <- answer{info, err}
	}()
	select {
	case <-p.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the completion never reached its step 3")
	}
	close(g.open) // the PUT finishes: its pointer replaces the plain record
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	p.armed.Store(false)
	close(p.release)
	a := <-done
	if a.err != nil {
		t.Fatalf("CompleteUploadVersion: %v", a.err)
	}
	r.e.WaitBackground()
	t.Logf("completion answered version %s; versions %v", a.info.VersionID, r.versionsOf(t, "m"))
	if b, err := r.vget(t, "m", a.info.VersionID); err != nil || !bytes.Equal(b, body) {
		t.Errorf("the version the completion answered (%s): %d bytes, %v; want the upload's body", a.info.VersionID, len(b), err)
	}
}

// TestReview25fSuspendedPutCollectsAdopted (F2): versioning Suspended,
// a completion and a Suspended PUT of the key at once. Before the
// completion wrote its null version directly (completionVidKey), its
// adopt of the key's plain record could write the null version naming
// shard files the PUT's pointer had just collected: both answered
// success and the key read neither body (the reviewer's interleaving,
// played on the old adopt path). Now both write the null version key,
// the later one wins, and the null version reads whole as one of the two
// bodies; run with several keys for several interleavings.
func TestReview25fSuspendedPutCollectsAdopted(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	for i := range 6 {
		key := fmt.Sprintf("m%d", i)
		id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		body := randBytes(uint64(53+i), 200<<10)
		pi, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
		if err != nil {
			t.Fatal(err)
		}
		other := randBytes(uint64(154+i), 100<<10)
		var wg sync.WaitGroup
		var cinfo ArtifactInfo
		var cerr, perr error
		wg.Go(func() {
			cinfo, cerr = r.e.CompleteUploadVersion(ctx, "t", "c", key, id, []CompletePart{{1, pi.ETag}}, nil, VersioningSuspended)
		})
		wg.Go(func() {
			time.Sleep(time.Duration(i) * time.Millisecond)
			_, perr = r.e.Put(ctx, "t", "c", key, bytes.NewReader(other), PutOptions{Size: int64(len(other)), Versioning: VersioningSuspended})
		})
		wg.Wait()
		if cerr != nil || perr != nil {
			t.Fatalf("%s: completion %v, put %v", key, cerr, perr)
		}
		if cinfo.VersionID != NullVersion {
			t.Errorf("%s: the completion answered version %q, want null", key, cinfo.VersionID)
		}
		r.e.WaitBackground()
		got, err := r.vget(t, key, NullVersion)
		if err != nil || !(bytes.Equal(got, body) || bytes.Equal(got, other)) {
			t.Errorf("%s: the null version: %d bytes, %v; want one of the two bodies", key, len(got), err)
		}
	}
}

// TestReview25fLockedPathsOnPlainKey: every path that holds key's lock
// and reaches adopt on a plain record (written before versioning)
// finishes: a conditional versioned PUT, a conditional delete marker, a
// conditional versioned completion, an unconditional one, a versioned
// Copy onto itself; each on a fresh plain key (the local lock is not
// reentrant: a self-deadlock would hang).
func TestReview25fLockedPathsOnPlainKey(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	any := func(*ArtifactInfo) error { return nil }
	body := randBytes(55, 50<<10)
	upload := func(key string) (string, []CompletePart) {
		id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pi, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))})
		if err != nil {
			t.Fatal(err)
		}
		return id, []CompletePart{{1, pi.ETag}}
	}
	steps := map[string]func(key string) error{
		"conditional put": func(key string) error {
			_, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(body), PutOptions{Size: int64(len(body)), Versioning: VersioningEnabled, Condition: any})
			return err
		},
		"conditional delete marker": func(key string) error {
			_, err := r.e.DeleteVersion(ctx, "t", "c", key, DeleteOptions{Versioning: VersioningEnabled, Condition: any})
			return err
		},
		"delete marker": func(key string) error {
			_, err := r.e.DeleteVersion(ctx, "t", "c", key, DeleteOptions{Versioning: VersioningEnabled})
			return err
		},
		"conditional completion": func(key string) error {
			id, parts := upload(key)
			_, err := r.e.CompleteUploadIf(ctx, "t", "c", key, id, parts, nil, any, VersioningEnabled)
			return err
		},
		"completion": func(key string) error {
			id, parts := upload(key)
			_, err := r.e.CompleteUploadVersion(ctx, "t", "c", key, id, parts, nil, VersioningEnabled)
			return err
		},
		"copy onto itself": func(key string) error {
			_, err := r.e.Copy(ctx, "t", "c", key, "c", key, CopyOptions{Versioning: VersioningEnabled, Condition: any})
			return err
		},
	}
	for name, step := range steps {
		key := strings.ReplaceAll(name, " ", "-")
		r.vput(t, key, body, Unversioned) // the plain record
		done := make(chan error, 1)
		go func() { done <- step(key) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: hung (self-deadlock on key's lock?)", name)
		}
		if b, err := r.vget(t, key, NullVersion); err != nil || !bytes.Equal(b, body) {
			t.Errorf("%s: the null version: %d bytes, %v", name, len(b), err)
		}
	}
}
