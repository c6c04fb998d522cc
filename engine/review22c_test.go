package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// artifactPutFault fails the writes of one key's artifact record (ikey)
// while fail is set: a drive away during a Complete's artifact write.
type artifactPutFault struct {
	driver.Driver
	ikey string
	fail atomic.Bool
}

func (f *artifactPutFault) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if f.fail.Load() && r.Key == f.ikey {
		return driver.Record{}, false, fmt.Errorf("test: put the artifact record: %w", driver.ErrOffline)
	}
	return f.Driver.PutRecord(ctx, r)
}

// failedCompleteWeakMarker is the set-up of the tests below: B1's
// (movedWithRemains: the moved record and part on curSet[0..2], the
// older set's remains kept, curSet[3] away), then a Complete that fails:
// every drive up refuses its artifact record (nothing of it is left),
// and the revert needs every drive, so the marker stays on curSet[0..2]
// with the part records; the client got an error. curSet[3] is back on
// return. It returns the marker.
func failedCompleteWeakMarker(t *testing.T, r *migRig, key string, data []byte) (cur *placement.Map, id string, part1 CompletePart, curSet []placement.DriveID, mk *record) {
	t.Helper()
	ctx := t.Context()
	_, cur, id, part1, _, curSet = movedWithRemains(t, r, key, data)
	ikey := indexPrefix("t", "c") + key
	var afs []*artifactPutFault
	for _, did := range curSet[:3] {
		af := &artifactPutFault{Driver: r.topo.drives[did], ikey: ikey}
		af.fail.Store(true)
		afs = append(afs, af)
		r.topo.drives[did] = drivertest.NewFaulty(af)
	}
	if info, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err == nil {
		t.Fatalf("CompleteUpload with %s away and %v refusing the artifact: %+v; want it failed", curSet[3], curSet[:3], info)
	} else {
		t.Logf("CompleteUpload (failing, as the client sees it): %v", err)
	}
	for _, af := range afs {
		af.fail.Store(false)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err == nil {
		t.Fatalf("the failed Complete's artifact is served (%d bytes): not the case under test", len(got))
	}
	raw, err := r.topo.drives[curSet[2]].GetRecord(ctx, uploadKey("t", "c", key, id))
	if err != nil {
		t.Fatalf("no marker left on %s: %v", curSet[2], err)
	}
	if mk, err = unmarshalRecord(raw.Data); err != nil || !isMarker(mk) {
		t.Fatalf("%s holds no marker: %v", curSet[2], err)
	}
	r.topo.drives[curSet[3]].SetOffline(false)
	return
}

// retriedComplete retries the failed Complete and reads the object back:
// it should complete the upload with its acknowledged part (as on main and
// before 2f168aa), not answer NoSuchUpload.
func retriedComplete(t *testing.T, r *migRig, key, id string, part1 CompletePart) ([]byte, error) {
	t.Helper()
	ctx := t.Context()
	parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10)
	t.Logf("ListParts: %d parts, %v", len(parts), err)
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part1}, nil); err != nil {
		return nil, fmt.Errorf("CompleteUpload retried after the failed one: %w", err)
	}
	return read(ctx, r.e, key, 0, -1)
}

// TestReview22cFailedCompleteRetriedMoveAborts (review 22c F1): a failed
// Complete's marker (failedCompleteWeakMarker) on one drive after two
// of its holders lost it (as the F1 tests of review 22/22b set up). The
// first reconcile pass takes it for a failed Complete (partsLost: the
// parts' data are there) and writes the older set's part over the
// current set's part record, which collects the shard files the marker
// names; its upload record write then fails (two drives refuse it) and
// is undone, the marker put back. The next pass finds the marker's
// parts' data gone and, since 2f168aa, takes the completion for one that
// happened and was deleted: it aborts the upload, deleting the older
// set's acknowledged part, and a retried Complete answers NoSuchUpload.
// Before 2f168aa (c76609b) the pass reconciled the upload in progress;
// on main (4fbfa98^1) the retried Complete completes it. Fixed: the
// move's part writes collect what they replaced only once the moved
// record is on its write quorum, and a failed move puts them back.
func TestReview22cFailedCompleteRetriedMoveAborts(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/failed-complete-retried-move"
	data := randBytes(2401, 1000)
	cur, id, part1, curSet, mk := failedCompleteWeakMarker(t, r, key, data)
	ukey := uploadKey("t", "c", key, id)
	wipeUploadRecord(t, r, key, id, curSet[0], curSet[1])
	faults := map[placement.DriveID]*uploadRecordFault{}
	for _, did := range curSet[:2] {
		f := &uploadRecordFault{Driver: r.topo.drives[did], ukey: ukey, epoch: fmt.Sprint(cur.Epoch)}
		f.failPut.Store(true)
		faults[did] = f
		r.topo.drives[did] = drivertest.NewFaulty(f)
	}
	r.e.moveRetries.Delete(id)
	st, err := r.e.MoveUploads(ctx)
	t.Logf("pass with the moved record refused on %v: %+v, %v", curSet[:2], st, err)
	for _, f := range faults {
		f.failPut.Store(false)
	}
	pg := cur.PGOf("t", "c", key)
	for _, did := range curSet[:3] {
		for _, p := range mk.Parts {
			rc, err := r.topo.drives[did].ReadShard(ctx, shardOf("t", "c", key, pg, p.DataID), 0, 0)
			if err != nil {
				t.Errorf("after the failed pass, %s has no shard file of the marker's part: %v; want it kept until the moved record replaces the marker", did, err)
				continue
			}
			rc.Close()
		}
	}
	for pass := range 2 {
		r.e.moveRetries.Delete(id)
		st, err := r.e.MoveUploads(ctx)
		t.Logf("pass %d: %+v, %v", pass, st, err)
	}
	for _, did := range curSet {
		for _, p := range mk.Parts {
			if rc, err := r.topo.drives[did].ReadShard(ctx, shardOf("t", "c", key, pg, p.DataID), 0, 0); err == nil {
				rc.Close()
				t.Errorf("after the reconcile, %s still has a shard file of the failed Complete's part; want it collected once the moved record replaced the marker", did)
			}
		}
	}
	got, err := retriedComplete(t, r, key, id, part1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the reconcile passes: %d bytes, %v (NoSuchUpload: %v); want the upload completed with its acknowledged part 1", len(got), err, errors.Is(err, ErrNoSuchUpload))
	}
}

// TestReview22cFailedCompleteDisksReplacedAborts (review 22c F1, no
// failed pass): as above, but the two disks replaced lose what they
// held, the part's shard files too (in-progress parts are not healed).
// The current set then holds the marker's part on curSet[2] only (the
// move wrote it with curSet[3] away): fewer than k, so partsLost says
// lost at once and the reconcile aborts the upload, deleting the older
// set's remains, the only whole copy of the acknowledged part 1. Before
// 2f168aa the reconcile restored the upload in progress from them.
// Fixed: a key's tombstone stays while a marker of its uploads does
// (markersHold), so a pending completion is one that failed, and the
// reconcile counts no shard files.
func TestReview22cFailedCompleteDisksReplacedAborts(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	const key = "mp/failed-complete-disks-replaced"
	data := randBytes(2402, 1000)
	cur, id, part1, curSet, mk := failedCompleteWeakMarker(t, r, key, data)
	wipeUploadRecord(t, r, key, id, curSet[0], curSet[1])
	pg := cur.PGOf("t", "c", key)
	for _, did := range curSet[:2] {
		for _, p := range mk.Parts {
			if err := r.topo.drives[did].DeleteShard(ctx, shardOf("t", "c", key, pg, p.DataID)); err != nil {
				t.Logf("%s: delete the part's shard file: %v", did, err)
			}
		}
	}
	for pass := range 2 {
		r.e.moveRetries.Delete(id)
		st, err := r.e.MoveUploads(ctx)
		t.Logf("pass %d: %+v, %v", pass, st, err)
	}
	got, err := retriedComplete(t, r, key, id, part1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the reconcile passes: %d bytes, %v (NoSuchUpload: %v); want the upload completed with its acknowledged part 1", len(got), err, errors.Is(err, ErrNoSuchUpload))
	}
}
