package engine

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// keyFail wraps a drive: PutRecord fails for index keys fail accepts.
type keyFail struct {
	driver.Driver
	fail atomic.Pointer[func(key string) bool]
}

func (k *keyFail) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if f := k.fail.Load(); f != nil && (*f)(r.Key) {
		return driver.Record{}, false, fmt.Errorf("probe: put record %q: %w", r.Key, driver.ErrOffline)
	}
	return k.Driver.PutRecord(ctx, r)
}

// keyFails puts a keyFail between every drive of r and its Faulty.
func keyFails(r *migRig) map[placement.DriveID]*keyFail {
	kf := map[placement.DriveID]*keyFail{}
	for _, id := range r.ids {
		k := &keyFail{Driver: r.hooked[id]}
		kf[id] = k
		r.topo.drives[id] = drivertest.NewFaulty(k)
	}
	return kf
}

// probeUpload creates an upload of key under the rig's current map and
// puts parts (number -> bytes), returning the id and ETags.
func probeUpload(t *testing.T, r *migRig, key string, parts map[int][]byte) (string, map[int]string) {
	t.Helper()
	ctx := t.Context()
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{ContentType: "application/x-probe"})
	if err != nil {
		t.Fatal(err)
	}
	etags := map[int]string{}
	for _, n := range mapsKeys(parts) {
		pi, err := r.e.PutPart(ctx, "t", "c", key, id, n, bytes.NewReader(parts[n]), PutOptions{Size: int64(len(parts[n]))})
		if err != nil {
			t.Fatalf("PutPart(%d): %v", n, err)
		}
		etags[n] = pi.ETag
	}
	return id, etags
}

func mapsKeys(m map[int][]byte) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// probeComplete completes the upload with every part, reads it back and
// compares.
func probeComplete(t *testing.T, r *migRig, key, id string, parts map[int][]byte, etags map[int]string) {
	t.Helper()
	ctx := t.Context()
	listed, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 1000)
	if err != nil {
		t.Fatalf("ListParts: %v", err)
	}
	if len(listed) != len(parts) {
		t.Errorf("ListParts = %+v, want %d parts", listed, len(parts))
	}
	for _, p := range listed {
		if p.ETag != etags[p.Number] || p.Size != int64(len(parts[p.Number])) {
			t.Errorf("ListParts: part %d ETag %s size %d; want %s %d", p.Number, p.ETag, p.Size, etags[p.Number], len(parts[p.Number]))
		}
	}
	var cps []CompletePart
	var want []byte
	for _, n := range mapsKeys(parts) {
		cps = append(cps, CompletePart{Number: n, ETag: etags[n]})
		want = append(want, parts[n]...)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	got, err := read(ctx, r.e, key, 0, -1)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read after Complete = %d bytes, %v; want the %d bytes of the parts", len(got), err, len(want))
	}
}

// TestProbe16MoveFailsBeforeUploadRecord: the move writes every part's
// record into the current set, then the upload's record write fails (a
// crash at that point leaves the same). The upload is still in its older
// set; a retried MoveUploads, then Complete, must give back every part.
func TestProbe16MoveFailsBeforeUploadRecord(t *testing.T) {
	for _, tc := range mapChanges {
		t.Run(tc.name, func(t *testing.T) {
			r := newMigRig(t)
			ctx := t.Context()
			old, cur := tc.maps(t, r)
			kf := keyFails(r)
			r.useChain([]*placement.Map{old})
			const key = "mp/crash"
			parts := map[int][]byte{1: randBytes(31, MinPartSize), 2: randBytes(32, MinPartSize), 3: randBytes(33, 1000)}
			id, etags := probeUpload(t, r, key, parts)
			r.useChain([]*placement.Map{old, cur})
			failUp := func(k string) bool { return strings.HasPrefix(k, uploadKeys) }
			for _, k := range kf {
				k.fail.Store(&failUp)
			}
			st, err := r.e.MoveUploads(ctx)
			t.Logf("MoveUploads with upload records failing = %+v, %v", st, err)
			for _, k := range kf {
				k.fail.Store(nil)
			}
			if err == nil {
				t.Fatal("MoveUploads succeeded with every upload record write failing")
			}
			r.skew.Store(int64(moveRetryFirst + time.Second)) // past the failed move's wait
			st, err = r.e.MoveUploads(ctx)
			t.Logf("MoveUploads again = %+v, %v", st, err)
			if err != nil {
				t.Errorf("MoveUploads retried: %v", err)
			}
			probeComplete(t, r, key, id, parts, etags)
			probeShardFiles(t, r, len(parts)*cur.Policy.SetSize())
		})
	}
}

// probeShardFiles waits until the rig's drives hold want shard files.
func probeShardFiles(t *testing.T, r *migRig, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		total := 0
		for _, id := range r.ids {
			total += len(shardFiles(t, r.dirs[id]))
		}
		if total == want {
			return
		}
		if time.Now().After(deadline) {
			for _, id := range r.ids {
				t.Logf("%s: %v", id, shardFiles(t, r.dirs[id]))
			}
			t.Fatalf("%d shard files on the drives, want %d", total, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProbe16CompleteAfterFailedMove: as above, but the client completes
// the upload (still in its older set) instead of a retried move.
func TestProbe16CompleteAfterFailedMove(t *testing.T) {
	completeAfterFailedMove(t, false)
}

// TestProbe16FailedMoveLeaks (F3): after a failed move and a Complete in
// the older set, the move's part records and copies in the current set
// are left for good: nothing names or collects them.
func TestProbe16FailedMoveLeaks(t *testing.T) {
	completeAfterFailedMove(t, true)
}

func completeAfterFailedMove(t *testing.T, leaks bool) {
	for _, tc := range mapChanges {
		t.Run(tc.name, func(t *testing.T) {
			r := newMigRig(t)
			ctx := t.Context()
			old, cur := tc.maps(t, r)
			kf := keyFails(r)
			r.useChain([]*placement.Map{old})
			const key = "mp/crash"
			parts := map[int][]byte{1: randBytes(41, MinPartSize), 2: randBytes(42, 1000)}
			id, etags := probeUpload(t, r, key, parts)
			r.useChain([]*placement.Map{old, cur})
			failUp := func(k string) bool { return strings.HasPrefix(k, uploadKeys) }
			for _, k := range kf {
				k.fail.Store(&failUp)
			}
			_, err := r.e.MoveUploads(ctx)
			for _, k := range kf {
				k.fail.Store(nil)
			}
			if err == nil {
				t.Fatal("MoveUploads succeeded with every upload record write failing")
			}
			probeComplete(t, r, key, id, parts, etags)
			if leaks {
				probeShardFiles(t, r, len(parts)*cur.Policy.SetSize())
				probeNoRecordsOf(t, r, id)
			}
		})
	}
}

// probeNoRecordsOf checks that no drive holds a part record of upload id.
func probeNoRecordsOf(t *testing.T, r *migRig, id string) {
	t.Helper()
	for _, did := range r.ids {
		recs, err := r.topo.drives[did].ListRecords(t.Context(), "\x01P\x00", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if strings.Contains(rec.Key, id) {
				t.Errorf("drive %s still holds %q", did, rec.Key)
			}
		}
	}
}

// TestProbe16CompletedUploadComesBack: the move succeeds but an older
// drive is offline during its clean-up, so the older upload records
// stay; the client completes the moved upload; the drive comes back and
// MoveUploads runs again; the artifact is overwritten and the sweeper
// removes the completion's marker. The completed upload must not come
// back: not listed, not completable again over the newer artifact.
func TestProbe16CompletedUploadComesBack(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := mapChanges[2].maps(t, r) // 1+1 on d00, d01 to 2+2 on d02..d05
	r.useChain([]*placement.Map{old})
	const key = "mp/back"
	parts := map[int][]byte{1: randBytes(51, MinPartSize), 2: randBytes(52, 1000)}
	id, etags := probeUpload(t, r, key, parts)
	r.useChain([]*placement.Map{old, cur})
	r.topo.drives["d00"].SetOffline(true)
	st, err := r.e.MoveUploads(ctx)
	t.Logf("MoveUploads with d00 offline = %+v, %v", st, err)
	if st.Moved != 1 {
		t.Fatalf("MoveUploads with d00 offline = %+v, %v; want the upload moved", st, err)
	}
	cps := []CompletePart{{Number: 1, ETag: etags[1]}, {Number: 2, ETag: etags[2]}}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	r.topo.drives["d00"].SetOffline(false)
	st, err = r.e.MoveUploads(ctx)
	t.Logf("MoveUploads with d00 back = %+v, %v", st, err)
	for _, did := range []placement.DriveID{"d00", "d01"} {
		recs, _ := r.topo.drives[did].ListRecords(ctx, "\x01", "", 1000)
		for _, rec := range recs {
			if strings.Contains(rec.Key, id) {
				t.Logf("older drive %s still holds %q after the second MoveUploads", did, rec.Key)
			}
		}
	}
	newer := randBytes(53, 5000)
	if _, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(newer), PutOptions{Size: int64(len(newer))}); err != nil {
		t.Fatal(err)
	}
	n, err := r.e.SweepUploads(ctx)
	t.Logf("SweepUploads = %d, %v", n, err)
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10)
	if err != nil || len(ups) != 0 {
		t.Errorf("ListUploads after the completion was overwritten and swept = %+v, %v; want none", ups, err)
	}
	if ps, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 100); err == nil {
		t.Errorf("ListParts of the completed upload = %+v, want ErrNoSuchUpload", ps)
	}
	info, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil)
	t.Logf("CompleteUpload again = %+v, %v", info, err)
	got, err := read(ctx, r.e, key, 0, -1)
	if err != nil || !bytes.Equal(got, newer) {
		t.Errorf("read after the second Complete = %d bytes, %v; want the %d bytes of the newer Put", len(got), err, len(newer))
	}
}

// probe16Changes are more map changes: slots kept at the same index with
// the same policy (records placed in both sets), and striping switched
// off. (A change that leaves the upload's records placed for the current
// map, such as striping switched on over the same sets, moves nothing.)
var probe16Changes = []struct {
	name string
	maps func(t *testing.T, r *migRig) (old, cur *placement.Map)
}{{
	name: "2+2 reshuffled, slot 0 kept",
	maps: func(t *testing.T, r *migRig) (*placement.Map, *placement.Map) {
		old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
		return old, r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
			return []placement.DriveID{s[0], "d04", s[1], s[2]}
		})
	},
}, {
	name: "2+2 one slot moved",
	maps: func(t *testing.T, r *migRig) (*placement.Map, *placement.Map) {
		old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
		return old, r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
			return []placement.DriveID{s[0], s[1], s[2], "d04"}
		})
	},
}, {
	name: "striping switched off, 4+2 to 2+2",
	maps: func(t *testing.T, r *migRig) (*placement.Map, *placement.Map) {
		old, cur := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 1), r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 2)
		old.Width = 4
		return old, cur
	},
}}

// TestProbe16MoreMapChanges runs the move tests over probe16Changes.
func TestProbe16MoreMapChanges(t *testing.T) {
	saved := mapChanges
	mapChanges = probe16Changes
	defer func() { mapChanges = saved }()
	t.Run("moves", TestUploadMovesWithMigration)
	t.Run("failed move", TestProbe16MoveFailsBeforeUploadRecord)
	t.Run("complete after failed move", TestProbe16CompleteAfterFailedMove)
}

// TestProbe16SparsePartsAndUsage: parts 2, 7 and 10000 (striped: each
// at its own Offset) move, are replaced after the move and completed;
// the bytes read are the parts', and usage (OnUsage) ends at the
// artifact's size and one artifact.
func TestProbe16SparsePartsAndUsage(t *testing.T) {
	for _, tc := range mapChanges {
		t.Run(tc.name, func(t *testing.T) {
			r := newMigRig(t)
			ctx := t.Context()
			var bytesUsed, arts atomic.Int64
			r.e.cfg.OnUsage = func(_ string, b, a int64) { bytesUsed.Add(b); arts.Add(a) }
			old, cur := tc.maps(t, r)
			r.useChain([]*placement.Map{old})
			const key = "mp/sparse"
			parts := map[int][]byte{2: randBytes(61, MinPartSize), 7: randBytes(62, MinPartSize+3), 10000: randBytes(63, 777)}
			id, etags := probeUpload(t, r, key, parts)
			r.useChain([]*placement.Map{old, cur})
			if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 || st.Parts != 3 {
				t.Fatalf("MoveUploads = %+v, %v", st, err)
			}
			// Replace part 7 after the move.
			parts[7] = randBytes(64, MinPartSize+5)
			pi, err := r.e.PutPart(ctx, "t", "c", key, id, 7, bytes.NewReader(parts[7]), PutOptions{Size: int64(len(parts[7]))})
			if err != nil {
				t.Fatal(err)
			}
			etags[7] = pi.ETag
			r.useChain([]*placement.Map{cur})
			probeComplete(t, r, key, id, parts, etags)
			total := int64(len(parts[2]) + len(parts[7]) + len(parts[10000]))
			if b, a := bytesUsed.Load(), arts.Load(); b != total || a != 1 {
				t.Errorf("usage after Complete: %d bytes, %d artifacts; want %d, 1", b, a, total)
			}
			probeShardFiles(t, r, 3*cur.Policy.SetSize())
		})
	}
}

// TestProbe16PendingMarkerInOlderMap: a Complete of an upload living in
// the older set fails after writing its marker and cannot revert it (a
// drive of the artifact's set away), leaving a pending completion in the
// older set. MoveUploads leaves it, Residue lets the older map go; once
// dropped, the client's retried Complete must still complete (or the
// upload at least exist), not answer NoSuchUpload with no artifact: the
// older map is kept until the completion is reverted and the upload moved.
func TestProbe16PendingMarkerInOlderMap(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := mapChanges[2].maps(t, r) // 1+1 on d00, d01 to 2+2 on d02..d05
	kf := keyFails(r)
	r.useChain([]*placement.Map{old})
	const key = "mp/pending"
	parts := map[int][]byte{1: randBytes(71, MinPartSize), 2: randBytes(72, 1000)}
	id, etags := probeUpload(t, r, key, parts)
	r.useChain([]*placement.Map{old, cur})
	ikey := indexPrefix("t", "c") + key
	failArt := func(k string) bool { return k == ikey }
	for _, k := range kf {
		k.fail.Store(&failArt)
	}
	r.topo.drives["d05"].SetOffline(true)
	cps := []CompletePart{{Number: 1, ETag: etags[1]}, {Number: 2, ETag: etags[2]}}
	_, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil)
	t.Logf("CompleteUpload with the artifact's record failing = %v", err)
	for _, k := range kf {
		k.fail.Store(nil)
	}
	r.topo.drives["d05"].SetOffline(false)
	if err == nil {
		t.Fatal("CompleteUpload succeeded")
	}
	st, err := r.e.MoveUploads(ctx)
	t.Logf("MoveUploads = %+v, %v", st, err)
	n, err := r.e.Residue(ctx, old)
	held, herr := r.e.UploadsHolding(ctx, []*placement.Map{old})
	t.Logf("Residue(old) = %d, %v; UploadsHolding = %d, %v", n, err, held, herr)
	if n == 0 || err != nil {
		t.Fatalf("Residue(old) with a pending completion in it = %d, %v; want > 0", n, err)
	}
	// Past UploadCompletionGrace the sweeper reverts the completion, the
	// migrator moves the upload, and the older map can go.
	r.skew.Store(int64(UploadCompletionGrace + time.Minute))
	if n, err := r.e.SweepUploads(ctx); err != nil {
		t.Fatalf("SweepUploads = %d, %v", n, err)
	}
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 {
		t.Fatalf("MoveUploads after the sweep = %+v, %v; want the upload moved", st, err)
	}
	r.skew.Store(0)
	if n, err := r.e.Residue(ctx, old); n != 0 || err != nil {
		t.Fatalf("Residue(old) after the move = %d, %v; want 0", n, err)
	}
	r.useChain([]*placement.Map{cur}) // the older map dropped: nothing holds it
	info, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil)
	t.Logf("retried CompleteUpload after the older map was dropped = %+v, %v", info, err)
	got, rerr := read(ctx, r.e, key, 0, -1)
	want := append(append([]byte{}, parts[1]...), parts[2]...)
	if err != nil || rerr != nil || !bytes.Equal(got, want) {
		t.Errorf("retried Complete = %v; read = %d bytes, %v; want the upload completed", err, len(got), rerr)
	}
}

// TestProbe16HybridMove: an upload of a hybrid container (data shards
// local, parity remote) moves with a map change that adds a local and a
// remote drive, and completes.
func TestProbe16HybridMove(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	r.pdrives[4].Class, r.pdrives[5].Class = driver.ClassRemote, driver.ClassRemote
	r.e.cfg.StoragePolicy = func(string, string) string { return PolicyHybrid }
	pd := func(ids ...int) []placement.Drive {
		var ds []placement.Drive
		for _, i := range ids {
			ds = append(ds, r.pdrives[i])
		}
		return ds
	}
	old, err := placement.NewMap(pd(0, 1, 2, 4), placement.Policy{Data: 2, Parity: 1}, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := placement.NewMap(pd(0, 1, 2, 3, 4, 5), placement.Policy{Data: 3, Parity: 2}, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{old})
	const key = "mp/hybrid"
	parts := map[int][]byte{1: randBytes(81, MinPartSize), 3: randBytes(82, 4321)}
	id, etags := probeUpload(t, r, key, parts)
	r.useChain([]*placement.Map{old, cur})
	st, err := r.e.MoveUploads(ctx)
	t.Logf("MoveUploads = %+v, %v", st, err)
	if err != nil || st.Moved != 1 {
		t.Fatalf("MoveUploads = %+v, %v; want the upload moved", st, err)
	}
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Uploads != 0 {
		t.Errorf("MoveUploads again = %+v, %v; want nothing left", st, err)
	}
	r.useChain([]*placement.Map{cur})
	probeComplete(t, r, key, id, parts, etags)
	hc := r.e.mapFor("t", "c")
	probeShardFiles(t, r, 2*hc.Policy.SetSize())
	probeNoRecordsOf(t, r, id)
}

// TestProbe16SharedSlotDriveAwayDuringMove (S4): a drive in both sets at
// the same slot and policy is away during the move; back, it holds the
// older part records, placed for the current set too. After the clean-up
// pass and Complete, no part record of the upload may be left.
func TestProbe16SharedSlotDriveAwayDuringMove(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	cur := r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
		return []placement.DriveID{s[0], s[1], s[2], "d04"}
	})
	r.useChain([]*placement.Map{old})
	const key = "mp/slot"
	parts := map[int][]byte{1: randBytes(91, MinPartSize), 2: randBytes(92, 999)}
	id, etags := probeUpload(t, r, key, parts)
	r.useChain([]*placement.Map{old, cur})
	away := cur.Set(cur.PGOf("t", "c", key))[0]
	r.topo.drives[away].SetOffline(true)
	st, err := r.e.MoveUploads(ctx)
	t.Logf("MoveUploads with %s away = %+v, %v", away, st, err)
	r.topo.drives[away].SetOffline(false)
	st, err = r.e.MoveUploads(ctx)
	t.Logf("MoveUploads with %s back = %+v, %v", away, st, err)
	r.useChain([]*placement.Map{cur})
	probeComplete(t, r, key, id, parts, etags)
	probeNoRecordsOf(t, r, id)
	// The copies were written with the drive away, as any write then:
	// Heal rebuilds its shards.
	if _, err := r.e.Heal(ctx, "t", "c", key); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	probeShardFiles(t, r, 2*cur.Policy.SetSize())
}

// TestProbe16DoneMarkersDoNotHold: uploads completed before and after
// the map change (markers in the older set, done) do not keep the older
// map once migration has moved the artifacts.
func TestProbe16DoneMarkersDoNotHold(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := mapChanges[0].maps(t, r)
	r.useChain([]*placement.Map{old})
	complete := func(key string, seed uint64) {
		t.Helper()
		parts := map[int][]byte{1: randBytes(seed, 1000)}
		id, etags := probeUpload(t, r, key, parts)
		if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{{Number: 1, ETag: etags[1]}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	complete("mp/before", 101)
	idAfter, etags := probeUpload(t, r, "mp/after", map[int][]byte{1: randBytes(102, 1000)})
	r.useChain([]*placement.Map{old, cur})
	if _, err := r.e.CompleteUpload(ctx, "t", "c", "mp/after", idAfter, []CompletePart{{Number: 1, ETag: etags[1]}}, nil); err != nil {
		t.Fatal(err)
	}
	migrateUntilClean(t, r.e)
	if st, err := r.e.MoveUploads(ctx); err != nil {
		t.Fatalf("MoveUploads = %+v, %v", st, err)
	}
	if n, err := r.e.Residue(ctx, old); n != 0 || err != nil {
		t.Errorf("Residue(old) with done markers only = %d, %v; want 0", n, err)
	}
}
