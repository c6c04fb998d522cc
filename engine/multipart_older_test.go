package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// olderUpload starts, under the older map old alone, an upload of key in
// container c of a rig made by newMigRig, puts one part of data into it,
// then makes cur current with old kept: the upload's records are only on
// old's set (d00, d01 with olderAndCurrent) until MoveUploads moves them.
func olderUpload(t *testing.T, r *migRig, old, cur *placement.Map, key string, data []byte) (id string, part CompletePart) {
	t.Helper()
	ctx := t.Context()
	r.useChain([]*placement.Map{old})
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pi, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{old, cur})
	return id, CompletePart{Number: 1, ETag: pi.ETag}
}

// TestListUploadsCoversOlderMaps: an upload in progress begun under an
// older map, not moved yet, lives only in that map's set. ListUploads
// lists it; with that set short (more than its parity offline) and the
// container not settled it answers ErrReadQuorum rather than a listing
// without it, and so does DeleteContainer (its List of artifacts already
// refuses) rather than delete the container without aborting the upload,
// whose record a later container of the same name would then inherit.
// Once the upload is moved
// (MoveUploads) and the container settled, the older set is not needed:
// the upload is listed and completes, byte-identical, with it offline.
func TestListUploadsCoversOlderMaps(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := r.olderAndCurrent(t) // 1+1 on d00, d01; 2+2 on d02..d05
	const key = "mp/older"
	data := randBytes(21, 100<<10)
	id, part := olderUpload(t, r, old, cur, key, data)
	off := func(on bool, ids ...placement.DriveID) {
		for _, id := range ids {
			r.topo.drives[id].SetOffline(on)
		}
	}
	listed := func() ([]string, error) {
		ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10)
		var ids []string
		for _, u := range ups {
			ids = append(ids, u.ID)
		}
		return ids, err
	}
	if got, err := listed(); err != nil || !slices.Equal(got, []string{id}) {
		t.Fatalf("ListUploads, every drive up: %v, %v; want [%s]", got, err, id)
	}
	for _, tc := range []struct {
		name string
		down []placement.DriveID
		want error
	}{
		{"one older drive offline (within its parity)", []placement.DriveID{"d00"}, nil},
		{"the older set short", []placement.DriveID{"d00", "d01"}, ErrReadQuorum},
		{"two current drives offline (within its parity)", []placement.DriveID{"d02", "d03"}, nil},
	} {
		off(true, tc.down...)
		got, err := listed()
		if !errors.Is(err, tc.want) || (tc.want == nil && !slices.Equal(got, []string{id})) {
			t.Errorf("ListUploads, %s: %v, %v; want [%s], error %v", tc.name, got, err, id, tc.want)
		}
		if tc.want != nil {
			if err := r.e.DeleteContainer(ctx, "t", "c"); !errors.Is(err, tc.want) {
				t.Errorf("DeleteContainer, %s: %v; want %v", tc.name, err, tc.want)
			}
			if _, err := r.e.Container(ctx, "t", "c"); err != nil {
				t.Fatalf("the container after DeleteContainer failed, %s: %v", tc.name, err)
			}
		}
		off(false, tc.down...)
	}

	// Moved into the current map, then settled: the older set is not
	// needed any more.
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 {
		t.Fatalf("MoveUploads = %+v, %v; want the upload moved", st, err)
	}
	if err := r.e.cfg.Containers.(Settler).SettleContainers(ctx, cur.Epoch); err != nil {
		t.Fatal(err)
	}
	off(true, "d00", "d01")
	defer off(false, "d00", "d01")
	if got, err := listed(); err != nil || !slices.Equal(got, []string{id}) {
		t.Fatalf("ListUploads of a settled container, the older set offline: %v, %v; want [%s]", got, err, id)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part}, nil); err != nil {
		t.Fatalf("CompleteUpload, the older set offline: %v", err)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after Complete: %d bytes, %v; want the %d bytes put", len(got), err, len(data))
	}
	if got, err := listed(); err != nil || len(got) != 0 {
		t.Errorf("ListUploads after Complete: %v, %v; want none", got, err)
	}
}

// uploadRecordFault is a drive that fails, for one upload's record (ukey),
// the writes of its moved record (one naming epoch) when failPut is set,
// and every delete (a rollback's) when failDelete is set: a drive that
// went away part way through a move's record write and its rollback.
type uploadRecordFault struct {
	driver.Driver
	ukey, epoch         string
	failPut, failDelete atomic.Bool
}

func (f *uploadRecordFault) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if f.failPut.Load() && r.Key == f.ukey {
		if rec, err := unmarshalRecord(r.Data); err == nil && rec.Metadata[uploadEpochKey] == f.epoch {
			return driver.Record{}, false, fmt.Errorf("test: put the moved upload record: %w", driver.ErrOffline)
		}
	}
	return f.Driver.PutRecord(ctx, r)
}

func (f *uploadRecordFault) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	if f.failDelete.Load() && key == f.ukey {
		return fmt.Errorf("test: delete the upload record: %w", driver.ErrOffline)
	}
	return f.Driver.DeleteRecord(ctx, key, v)
}

// TestUploadMoveRecordWriteFailsPartWay: moving an upload (MoveUploads)
// writes its record into the current set, over drives the older set
// shares. That write lands on two shared drives only, fails on the
// others (below the current set's write quorum), and its rollback fails
// on the two it landed on (they went away). The upload must survive:
// the parts copied into the current set stay (a drive of it kept the
// moved record, so it may serve the upload); with the current set below
// its read quorum, the older set still serves it through the older
// records the moved ones carry (Prev); and it is listed and completes
// with its part, byte-identical, whether completed right away or after
// a later move pass (every drive back) finished the move. Once finished,
// every drive of the current set holds the moved record without Prev and
// the older map holds nothing of it.
func TestUploadMoveRecordWriteFailsPartWay(t *testing.T) {
	for _, tc := range []struct {
		name string
		maps func(t *testing.T, r *migRig) (old, cur *placement.Map)
		// below, if set, takes the current set below its read quorum
		// while leaving the two drives the record landed on.
		below []placement.DriveID
	}{{
		name: "2+1 on 3 drives to 2+2 on 4",
		maps: func(t *testing.T, r *migRig) (*placement.Map, *placement.Map) {
			return r.newMap(t, 3, placement.Policy{Data: 2, Parity: 1}, 16, 1), r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 2)
		},
	}, {
		name: "1+1 on 2 drives to 4+2 on 6",
		maps: func(t *testing.T, r *migRig) (*placement.Map, *placement.Map) {
			return r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1), r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
		},
		below: []placement.DriveID{"d02", "d03", "d04", "d05"},
	}} {
		for _, later := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/after another pass %v", tc.name, later), func(t *testing.T) {
				r := newMigRig(t)
				ctx := t.Context()
				old, cur := tc.maps(t, r)
				const key = "mp/partway"
				data := randBytes(31, 100<<10)
				id, part := olderUpload(t, r, old, cur, key, data)
				ukey := uploadKey("t", "c", key, id)
				faults := map[placement.DriveID]*uploadRecordFault{}
				for _, did := range cur.Drives {
					f := &uploadRecordFault{Driver: r.topo.drives[did.ID], ukey: ukey, epoch: fmt.Sprint(cur.Epoch)}
					faults[did.ID] = f
					r.topo.drives[did.ID] = drivertest.NewFaulty(f)
				}
				oldSet, curSet := old.Set(old.PGOf("t", "c", key)), cur.Set(cur.PGOf("t", "c", key))
				var took []placement.DriveID // shared drives the record lands on
				for _, did := range curSet {
					if slices.Contains(oldSet, did) && len(took) < 2 {
						took = append(took, did)
						faults[did].failDelete.Store(true)
					} else {
						faults[did].failPut.Store(true)
					}
				}
				if st, err := r.e.MoveUploads(ctx); err == nil || st.Moved != 0 {
					t.Fatalf("MoveUploads with the record write failing part way = %+v, %v; want it failed", st, err)
				}
				for _, f := range faults {
					f.failPut.Store(false)
					f.failDelete.Store(false)
				}
				for _, did := range took {
					raw, err := r.topo.drives[did].GetRecord(ctx, ukey)
					if err != nil {
						t.Fatalf("drive %s: %v", did, err)
					}
					rec, err := unmarshalRecord(raw.Data)
					if err != nil || rec.Metadata[uploadEpochKey] != fmt.Sprint(cur.Epoch) {
						t.Fatalf("drive %s holds a record of epoch %q, %v; want the moved record, epoch %d (the rollback failed)", did, rec.Metadata[uploadEpochKey], err, cur.Epoch)
					}
				}
				listParts := func(what string) {
					t.Helper()
					if parts, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 10); err != nil || len(parts) != 1 || parts[0].ETag != part.ETag {
						t.Fatalf("ListParts %s: %+v, %v; want part 1 with ETag %s", what, parts, err, part.ETag)
					}
				}
				if len(tc.below) > 0 {
					for _, did := range tc.below {
						r.topo.drives[did].SetOffline(true)
					}
					listParts("with the current set below its read quorum")
					for _, did := range tc.below {
						r.topo.drives[did].SetOffline(false)
					}
				}
				if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 1 || ups[0].ID != id {
					t.Fatalf("ListUploads after the failed move: %+v, %v; want upload %s", ups, err, id)
				}
				if later {
					r.e.moveRetries.Delete(id)
					if _, err := r.e.MoveUploads(ctx); err != nil {
						t.Fatalf("MoveUploads, every drive back: %v", err)
					}
					if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
						t.Errorf("Residue(old map) after the move finished = %d, %v; want 0", n, err)
					}
					for _, did := range curSet {
						raw, err := r.topo.drives[did].GetRecord(ctx, ukey)
						if err != nil {
							t.Fatalf("drive %s after the move finished: %v", did, err)
						}
						if rec, err := unmarshalRecord(raw.Data); err != nil || rec.Prev != nil || rec.Metadata[uploadEpochKey] != fmt.Sprint(cur.Epoch) {
							t.Errorf("drive %s after the move finished: record of epoch %q carrying a Prev %v, %v; want the moved record (epoch %d) without Prev", did, rec.Metadata[uploadEpochKey], rec.Prev != nil, err, cur.Epoch)
						}
					}
				}
				listParts("")
				if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part}, nil); err != nil {
					t.Fatalf("CompleteUpload: %v", err)
				}
				if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read after Complete: %d bytes, %v; want the %d bytes put", len(got), err, len(data))
				}
			})
		}
	}
}
