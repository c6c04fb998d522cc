package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// The partition suite's object anomaly (chaos.TestPartitions, about one
// iteration in twenty before the fix), taken apart into its two causes,
// each replayed deterministically on one engine with a write held in
// flight on some drives.

// gated is a drive whose PutRecord of one version blocks, once, until the
// test lets it fail: a record write held in flight on that drive (a
// partitioned or paused peer) while the others answer.
type gated struct {
	*drivertest.Faulty
	mu      sync.Mutex // guards the following fields
	v       driver.Version
	armed   bool
	pass    bool // the held write lands once released (holdThenLand)
	release chan struct{}
	refused driver.Version // refuseAsStale
	// getHeld and getEntered gate the next GetRecord (holdGet).
	getHeld, getEntered chan struct{}
}

// holdGet makes the drive's next GetRecord signal entered, then wait
// until release is closed: a writer paused between its attempt and its
// look at the drives that refused it.
func (g *gated) holdGet(entered, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.getEntered, g.getHeld = entered, release
}

func (g *gated) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	g.mu.Lock()
	entered, release := g.getEntered, g.getHeld
	g.getEntered, g.getHeld = nil, nil
	g.mu.Unlock()
	if release != nil {
		close(entered)
		select {
		case <-release:
		case <-ctx.Done():
			return driver.Record{}, ctx.Err()
		}
	}
	return g.Faulty.GetRecord(ctx, key)
}

// refuseAsStale makes the drive refuse the next record write of version v
// as stale without storing it: a newer version was there, and was rolled
// back before the writer looked.
func (g *gated) refuseAsStale(v driver.Version) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refused = v
}

func (g *gated) hold(v driver.Version, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.v, g.armed, g.pass, g.release = v, true, false, release
}

// holdThenLand is hold, but the record lands once release is closed: a
// write slow to reach that drive.
func (g *gated) holdThenLand(v driver.Version, release chan struct{}) {
	g.hold(v, release)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pass = true
}

func (g *gated) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	g.mu.Lock()
	held := g.armed && r.Version == g.v
	if held {
		g.armed = false
	}
	release, pass := g.release, g.pass
	refused := r.Version == g.refused
	if refused {
		g.refused = driver.Version{}
	}
	g.mu.Unlock()
	if refused {
		return driver.Record{}, false, fmt.Errorf("gated: %w", driver.ErrStale)
	}
	if held {
		select {
		case <-release:
			if pass {
				return g.Faulty.PutRecord(ctx, r)
			}
		case <-ctx.Done():
		}
		return driver.Record{}, false, errors.New("gated: the drive did not take the record")
	}
	return g.Faulty.PutRecord(ctx, r)
}

// gatedSet is an Engine over six local drives (4+2, the test rig of
// engine_test.go with each drive gated) and key's set in shard order.
func gatedSet(t *testing.T, key string) (*Engine, []*gated) {
	t.Helper()
	byID := map[driver.DriveID]*gated{}
	r := newRig(t, rigOptions{drives: 6, noSync: true, policy: placement.Policy{Data: 4, Parity: 2},
		wrap: func(d driver.Driver) driver.Driver {
			g := &gated{Faulty: d.(*drivertest.Faulty)}
			byID[driveID(t, d)] = g
			return g
		}})
	t.Cleanup(r.e.WaitBackground)
	m := r.e.mapOf()
	var set []*gated
	for _, id := range m.Set(m.PGOf("t", "c", key)) {
		set = append(set, byID[id])
	}
	return r.e, set
}

// driveID returns d's identity.
func driveID(t *testing.T, d driver.Driver) driver.DriveID {
	t.Helper()
	info, err := d.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.ID
}

// tombstoneWrite starts a delete of key (a new version's record write,
// as Delete makes it) to the drives of mask and returns its version and
// the channel its outcome arrives on.
func tombstoneWrite(t *testing.T, e *Engine, key string, v driver.Version, mask []bool) <-chan error {
	t.Helper()
	m := e.mapOf()
	pg := m.PGOf("t", "c", key)
	drives, _ := e.pgDrives(m, pg)
	rec := record{Version: v, Deleted: true, Modified: time.Now().UnixNano(),
		Data: m.Policy.Data, Parity: m.Policy.Parity, StripeSize: e.cfg.StripeSize, PG: pg}
	done := make(chan error, 1)
	go func() {
		_, err := e.artifactWrite("t", "c", key, drives, m.Policy.WriteQuorum()).latest(context.Background(), &rec, nil, mask)
		done <- err
	}()
	return done
}

// waitRecord waits until drive d holds version v of key.
func waitRecord(t *testing.T, d driver.Driver, key string, v driver.Version) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := d.GetRecord(t.Context(), indexPrefix("t", "c")+key)
		if err == nil && got.Version == v {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the record of version %v did not land: %v, %v", v, got.Version, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadServesOnlyWhatStays is the first cause: a read served the newest
// version although fewer than a write quorum of drives held it (no older
// version was held by k), the remains of a write still in flight; the
// write then failed and was rolled back, and a later read served the older
// version again: a deletion seen, then unseen. A read must write the
// version it serves back to a write quorum first (ABD), and a failed new
// version is not taken back.
func TestReadServesOnlyWhatStays(t *testing.T) {
	const key = "seen-unseen"
	e, set := gatedSet(t, key)
	old := []byte("the acknowledged version")
	if _, err := e.Put(t.Context(), "t", "c", key, bytes.NewReader(old), PutOptions{Size: -1}); err != nil {
		t.Fatal(err)
	}
	// A DELETE lands on drives 0 and 1; on 2 to 5 it hangs.
	v, _ := e.newVersion()
	release := make(chan struct{})
	for _, g := range set[2:] {
		g.hold(v, release)
	}
	done := tombstoneWrite(t, e, key, v, []bool{true, true, true, true, true, true})
	waitRecord(t, set[0], key, v)
	waitRecord(t, set[1], key, v)
	// A read answered by drives 0 to 3 (4 and 5 cut off) sees the
	// deletion on two drives and the older version on two.
	set[4].SetOffline(true)
	set[5].SetOffline(true)
	_, err := e.Open(t.Context(), "t", "c", key)
	first := err
	if err != nil && !errors.Is(err, ErrNoSuchArtifact) && !errors.Is(err, ErrReadQuorum) {
		t.Fatalf("read during the delete: %v", err)
	}
	// The delete fails (its drives 2 to 5 never take it).
	close(release)
	if err := <-done; !errors.Is(err, ErrWriteQuorum) {
		t.Fatalf("the delete with 2 of 6 drives: %v, want ErrWriteQuorum", err)
	}
	e.WaitBackground()
	set[4].SetOffline(false)
	set[5].SetOffline(false)
	a, err := e.Open(t.Context(), "t", "c", key)
	switch {
	case errors.Is(first, ErrNoSuchArtifact) && err == nil:
		t.Fatalf("a read served the deletion, a later read the older version (%s) again: seen, then unseen", a.Info.ETag)
	case errors.Is(first, ErrNoSuchArtifact) && !errors.Is(err, ErrNoSuchArtifact):
		t.Fatalf("after a read served the deletion: %v, want ErrNoSuchArtifact", err)
	case first != nil && !errors.Is(first, ErrNoSuchArtifact):
		t.Fatalf("the read during the delete refused (%v); it can write the deletion back to drives 2 and 3", first)
	}
}

// TestStaleRefusalStays is the second cause: a write counted a drive that
// refused it as stale (a newer version is there) towards its write quorum
// and was acknowledged; the newer version's own write then failed and was
// rolled back, putting the version before both back on that drive. With
// two such drives the version before both was again on k drives and
// served: the acknowledged write lost. New versions are no longer rolled
// back, so the refusal stands.
func TestStaleRefusalStays(t *testing.T) {
	// Newer inline: a newer inline version on fewer than k drives is
	// still rolled back (its records hold the version before's only
	// inline shards), so a refusal for it does not count (rollbackable):
	// the small PUT, whose first attempt is on fewer than k drives (no
	// read can have served it), is written again above it. Counted, the
	// small PUT was acknowledged with 2 of the k = 4 shards it needs, and
	// the version before came back. The delete's first attempt, on 2
	// drives, may have been served (a read that meets it newest writes it
	// back): it is not written again under a newer version
	// (TestWriteTakesEffectOnce) and fails, the version before standing.
	for _, tc := range []struct{ newerInline, ackedPut bool }{{false, false}, {true, false}, {true, true}} {
		newerInline := tc.newerInline
		t.Run(fmt.Sprintf("newer inline %v, acknowledged %s", newerInline, map[bool]string{false: "delete", true: "small PUT"}[tc.ackedPut]), func(t *testing.T) {
			const key = "stale-counted"
			e, set := gatedSet(t, key)
			ikey := indexPrefix("t", "c") + key
			// The inline records of a content, for a write made by hand.
			recordsOf := func(content string) []*record {
				t.Helper()
				if _, err := e.Put(t.Context(), "t", "c", key, bytes.NewReader([]byte(content)), PutOptions{Size: -1}); err != nil {
					t.Fatal(err)
				}
				var recs []*record
				for _, g := range set {
					raw, err := g.GetRecord(t.Context(), ikey)
					if err != nil {
						t.Fatal(err)
					}
					r, err := unmarshalRecord(raw.Data)
					if err != nil {
						t.Fatal(err)
					}
					recs = append(recs, r)
				}
				return recs
			}
			newerRecs := recordsOf("the newer write")
			ackedRecs := recordsOf("the acknowledged small PUT")
			m := e.mapOf()
			drives, _ := e.pgDrives(m, m.PGOf("t", "c", key))
			// inlineWrite starts a write of recs' content as version v
			// to the drives of mask.
			inlineWrite := func(recs []*record, v driver.Version, mask []bool) <-chan error {
				rec := *recs[0]
				rec.Version, rec.Modified = v, time.Now().UnixNano()
				inline := make([][]byte, len(set))
				for j, r := range recs {
					inline[j] = r.Inline
				}
				done := make(chan error, 1)
				go func() {
					_, err := e.artifactWrite("t", "c", key, drives, m.Policy.WriteQuorum()).latest(context.Background(), &rec, inline, mask)
					done <- err
				}()
				return done
			}
			old := []byte("the version before both")
			oldInfo, err := e.Put(t.Context(), "t", "c", key, bytes.NewReader(old), PutOptions{Size: -1})
			if err != nil {
				t.Fatal(err)
			}
			oldETag := oldInfo.ETag
			v1, _ := e.newVersion() // the write to be acknowledged
			v2, _ := e.newVersion() // a newer one, landing first on drives 0 and 1
			release := make(chan struct{})
			set[2].hold(v2, release)
			mask := []bool{true, true, true, false, false, false}
			var newer <-chan error
			if newerInline {
				newer = inlineWrite(newerRecs, v2, mask)
			} else {
				newer = tombstoneWrite(t, e, key, v2, mask)
			}
			waitRecord(t, set[0], key, v2)
			waitRecord(t, set[1], key, v2)
			// The write of v1 reaches drives 2 and 3, drives 0 and 1
			// refuse it as stale, 4 and 5 are cut off.
			set[4].SetOffline(true)
			set[5].SetOffline(true)
			first := []bool{true, true, true, true, false, false}
			var acked error
			if tc.ackedPut {
				acked = <-inlineWrite(ackedRecs, v1, first)
			} else {
				acked = <-tombstoneWrite(t, e, key, v1, first)
			}
			close(release)
			if acked != nil && !errors.Is(acked, ErrWriteQuorum) {
				t.Fatalf("the write of v1 on drives 0 to 3, two of them holding a newer version: %v", acked)
			}
			if err := <-newer; !errors.Is(err, ErrWriteQuorum) {
				t.Fatalf("the newer write with 2 of 3 drives: %v, want ErrWriteQuorum", err)
			}
			e.WaitBackground()
			set[4].SetOffline(false)
			set[5].SetOffline(false)
			failed := newerInline && !tc.ackedPut
			switch {
			case failed && acked == nil:
				t.Fatal("the delete met a newer version in flight on 2 drives and was acknowledged; want it failed, not written again")
			case !failed && acked != nil:
				t.Fatalf("the write of v1: %v, want it acknowledged", acked)
			}
			a, err := e.Open(t.Context(), "t", "c", key)
			switch {
			case failed && err != nil:
				t.Fatalf("after the failed delete: %v, want the version before", err)
			case failed:
				if a.Info.ETag != oldETag {
					t.Fatalf("after the failed delete: etag %s, want the version before's %s", a.Info.ETag, oldETag)
				}
			case tc.ackedPut && err != nil:
				t.Fatalf("after an acknowledged small PUT: %v", err)
			case tc.ackedPut:
				var buf bytes.Buffer
				if err := a.WriteRange(t.Context(), &buf, 0, a.Info.Size); err != nil {
					t.Fatal(err)
				}
				if buf.String() != "the acknowledged small PUT" {
					t.Fatalf("after an acknowledged small PUT: %q reads back", buf.String())
				}
			case err == nil:
				t.Fatalf("after an acknowledged delete: the version before it (%s, %v) reads back", a.Info.ETag, a.Info.Version)
			case !errors.Is(err, ErrNoSuchArtifact):
				t.Fatalf("after an acknowledged delete: %v, want ErrNoSuchArtifact", err)
			}
		})
	}
}

// TestStaleRefusalRolledBack: two drives refused a delete as stale for a
// newer version that was rolled back before the delete looked at them:
// they hold the version before again (a large one, which stays), older
// than the delete. Counted, the refusals acknowledged the delete with
// two records, and the version before, on k drives, read back.
func TestStaleRefusalRolledBack(t *testing.T) {
	const key = "refused-then-rolled-back"
	e, set := gatedSet(t, key)
	old := bytes.Repeat([]byte("o"), 300<<10) // shard files: not inline
	if _, err := e.Put(t.Context(), "t", "c", key, bytes.NewReader(old), PutOptions{Size: int64(len(old))}); err != nil {
		t.Fatal(err)
	}
	v1, _ := e.newVersion()
	set[0].refuseAsStale(v1)
	set[1].refuseAsStale(v1)
	set[4].SetOffline(true)
	set[5].SetOffline(true)
	err := <-tombstoneWrite(t, e, key, v1, []bool{true, true, true, true, true, true})
	e.WaitBackground()
	set[4].SetOffline(false)
	set[5].SetOffline(false)
	if err != nil {
		t.Fatalf("the delete, on drives 0 to 3 once written again: %v, want it acknowledged", err)
	}
	if a, err := e.Open(t.Context(), "t", "c", key); err == nil {
		t.Fatalf("after an acknowledged delete: the version before it (%d bytes, %v) reads back", a.Info.Size, a.Info.Version)
	} else if !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("after an acknowledged delete: %v, want ErrNoSuchArtifact", err)
	}
}

// TestWriteBackInline: a small (inline) version left on exactly k drives
// by a PUT that missed its quorum is written back by the next read, which
// encodes its shards again from the bytes it read (found by the crash
// suite: the write-back's re-encoding dereferenced a nil digest and the
// node panicked on a GET).
func TestWriteBackInline(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4}) // 2+2: k = 2, m+1 = 3
	ctx := t.Context()
	old := r.put(t, "k", []byte("old bytes"), 9)
	r.faultyOf("k", 2).SetOffline(true)
	r.faultyOf("k", 3).SetOffline(true)
	if _, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader([]byte("new bytes")), PutOptions{Size: 9}); err == nil {
		t.Fatal("a PUT reaching 2 of 4 drives succeeded; want a missed quorum")
	}
	r.faultyOf("k", 2).SetOffline(false)
	r.faultyOf("k", 3).SetOffline(false)
	got, err := r.get("k", 0, -1)
	if err != nil || (string(got) != "new bytes" && string(got) != "old bytes") {
		t.Fatalf("read after the failed PUT: %q, %v", got, err)
	}
	// What the read served stays: with the two drives that missed the
	// PUT alone, a read still finds it.
	r.faultyOf("k", 0).SetOffline(true)
	r.faultyOf("k", 1).SetOffline(true)
	again, err := r.get("k", 0, -1)
	if err != nil || !bytes.Equal(again, got) {
		t.Fatalf("read from the other drives: %q, %v; want %q (old version %v)", again, err, got, old.Version)
	}
}

// TestHealKeepsWriteInFlight is the partition suite's third cause (an
// acknowledged write later read as absent, with heals of its set around
// the cut): Heal took a record newer than the version it repairs for the
// remains of a failed write and deleted it, to write the older version
// back. It may be a write still in flight: here a delete lands on drives
// 4 and 5 (which lack the older version's records: they need healing),
// Heal runs, then the delete lands on drives 2 and 3 and is acknowledged
// with four drives, two of which Heal had turned back to the older
// version: that version was on k drives again and served.
func TestHealKeepsWriteInFlight(t *testing.T) {
	const key = "heal-in-flight"
	e, set := gatedSet(t, key)
	ikey := indexPrefix("t", "c") + key
	if _, err := e.Put(t.Context(), "t", "c", key, bytes.NewReader([]byte("the version before")), PutOptions{Size: -1}); err != nil {
		t.Fatal(err)
	}
	for _, g := range set[4:] { // lost: drives 4 and 5 need healing
		got, err := g.GetRecord(t.Context(), ikey)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.DeleteRecord(t.Context(), ikey, got.Version); err != nil {
			t.Fatal(err)
		}
	}
	v, _ := e.newVersion()
	fail, land := make(chan struct{}), make(chan struct{})
	set[0].hold(v, fail)
	set[1].hold(v, fail)
	set[2].holdThenLand(v, land)
	set[3].holdThenLand(v, land)
	done := tombstoneWrite(t, e, key, v, []bool{true, true, true, true, true, true})
	waitRecord(t, set[4], key, v)
	waitRecord(t, set[5], key, v)
	// Heal sees the version before on drives 0 to 3 (k): it serves it and
	// repairs drives 4 and 5, which hold the delete in flight.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, herr := e.Heal(ctx, "t", "c", key)
	if herr != nil && !errors.Is(herr, ErrHealIncomplete) {
		t.Fatalf("heal during the delete: %v", herr)
	}
	close(land)
	close(fail)
	if err := <-done; err != nil {
		t.Fatalf("the delete, on drives 2 to 5: %v, want it acknowledged", err)
	}
	e.WaitBackground()
	if a, err := e.Open(t.Context(), "t", "c", key); !errors.Is(err, ErrNoSuchArtifact) {
		var etag string
		if a != nil {
			etag = a.Info.ETag
		}
		t.Fatalf("after the acknowledged delete: %v (etag %q), want ErrNoSuchArtifact: heal took the delete back", err, etag)
	}
}

// TestWriteTakesEffectOnce is the partition suite's anomaly of session 14
// (CI seed 842107483: a Copy whose client gave up was read, overwritten by
// acknowledged PUTs, then read again). A write that met a refusal for a
// newer version that may yet be rolled back was written again under a
// newer version although its first attempt had landed on k drives: a read
// had served it meanwhile, another write was acknowledged over it, and the
// second attempt then put the same write above that one. A write takes
// effect once: an attempt a read may have served is never written again
// under another version.
func TestWriteTakesEffectOnce(t *testing.T) {
	const key = "takes-effect-once"
	e, set := gatedSet(t, key)
	put := func(content string) {
		t.Helper()
		if _, err := e.Put(t.Context(), "t", "c", key, strings.NewReader(content), PutOptions{Size: -1}); err != nil {
			t.Fatalf("PUT %q: %v", content, err)
		}
	}
	read := func() string {
		t.Helper()
		a, err := e.Open(t.Context(), "t", "c", key)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var buf bytes.Buffer
		if err := a.WriteRange(t.Context(), &buf, 0, a.Info.Size); err != nil {
			t.Fatalf("read: %v", err)
		}
		return buf.String()
	}
	inlineRecs := func(content string) []*record {
		t.Helper()
		put(content)
		var recs []*record
		for _, g := range set {
			raw, err := g.GetRecord(t.Context(), indexPrefix("t", "c")+key)
			if err != nil {
				t.Fatal(err)
			}
			r, err := unmarshalRecord(raw.Data)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		return recs
	}
	m := e.mapOf()
	drives, _ := e.pgDrives(m, m.PGOf("t", "c", key))
	write := func(recs []*record, v driver.Version, mask []bool) <-chan error {
		rec := *recs[0]
		rec.Version, rec.Modified = v, time.Now().UnixNano()
		inline := make([][]byte, len(recs))
		for j, r := range recs {
			inline[j] = r.Inline
		}
		done := make(chan error, 1)
		go func() {
			_, err := e.artifactWrite("t", "c", key, drives, m.Policy.WriteQuorum()).latest(context.Background(), &rec, inline, mask)
			done <- err
		}()
		return done
	}
	newerRecs, copyRecs := inlineRecs("a newer write, in flight"), inlineRecs("the copy")
	put("the version before")

	vCopy, _ := e.newVersion()
	vNewer, _ := e.newVersion()
	// The newer write lands on drive 5 and hangs on drive 0.
	failNewer := make(chan struct{})
	defer func() { close(failNewer) }()
	set[0].hold(vNewer, failNewer)
	newer := write(newerRecs, vNewer, []bool{true, false, false, false, false, true})
	waitRecord(t, set[5], key, vNewer)
	// The copy lands on drives 0 to 4 (k = 4 of them, its write quorum),
	// drive 5 refuses it for the newer version; the copy's writer pauses
	// before it looks at drive 5.
	entered, resume := make(chan struct{}), make(chan struct{})
	set[5].holdGet(entered, resume)
	copied := write(copyRecs, vCopy, []bool{true, true, true, true, true, true})
	<-entered
	if got := read(); got != "the copy" {
		t.Fatalf("read with the copy on 5 drives: %q, want the copy", got)
	}
	// The PUT misses drive 5, which keeps the newer write in flight: a
	// refusal that stays unsettled when the copy looks.
	set[5].SetOffline(true)
	put("an acknowledged PUT after that read")
	set[5].SetOffline(false)
	close(resume)
	if err := <-copied; err != nil && !errors.Is(err, ErrWriteQuorum) {
		t.Fatalf("the copy: %v", err)
	}
	if got := read(); got != "an acknowledged PUT after that read" {
		t.Fatalf("after a read served the copy and a PUT acknowledged after that read: %q reads back (the copy took effect twice)", got)
	}
	close(failNewer)
	failNewer = make(chan struct{})
	if err := <-newer; !errors.Is(err, ErrWriteQuorum) {
		t.Fatalf("the newer write on 1 of 6 drives: %v, want ErrWriteQuorum", err)
	}
	e.WaitBackground()
	if got := read(); got != "an acknowledged PUT after that read" {
		t.Fatalf("after the newer write failed: %q reads back", got)
	}
}
