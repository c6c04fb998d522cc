package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// leasedLocker is an UploadLocker (and UploadLeases) by which upload id's
// lease is held by some node, as a part streaming into it holds it.
type leasedLocker struct{ id string }

func (l leasedLocker) LockUpload(context.Context, string) (func() bool, func(), error) {
	return func() bool { return true }, func() {}, nil
}

func (l leasedLocker) UploadLeased(id string) bool { return id == l.id }

// migrateUntilClean runs MigrateAll passes until one has no error.
func migrateUntilClean(t *testing.T, e *Engine) {
	t.Helper()
	for range 5 {
		after, clean := "", true
		for {
			st, err := e.MigrateAll(t.Context(), after, 1000)
			clean = clean && err == nil
			if after = st.Next; after == "" {
				break
			}
		}
		if clean {
			return
		}
	}
	t.Fatal("MigrateAll: no clean pass in 5")
}

// mapChanges are the map changes the multipart tests move an upload
// across: the older map, then the current one.
var mapChanges = []struct {
	name string
	maps func(t *testing.T, r *migRig) (old, cur *placement.Map)
}{{
	name: "2+2 on 4 drives to 4+2 on 6",
	maps: func(t *testing.T, r *migRig) (*placement.Map, *placement.Map) {
		return r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1), r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
	},
}, {
	name: "same policy, every set moved",
	maps: func(t *testing.T, r *migRig) (*placement.Map, *placement.Map) {
		old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
		return old, r.remap(t, old, 6, 2, func(s []placement.DriveID) []placement.DriveID {
			return []placement.DriveID{"d04", "d05", s[2], s[3]}
		})
	},
}, {
	name: "1+1 on 2 drives, both drained, to 2+2 on 4 others",
	maps: func(t *testing.T, r *migRig) (*placement.Map, *placement.Map) {
		cur, err := placement.NewMap(r.pdrives[2:6], placement.Policy{Data: 2, Parity: 2}, 16, 2)
		if err != nil {
			t.Fatal(err)
		}
		return r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1), cur
	},
}, {
	name: "striped over 4 PGs, 2+2 on 4 drives to 4+2 on 6",
	maps: func(t *testing.T, r *migRig) (*placement.Map, *placement.Map) {
		old, cur := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1), r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)
		old.Width, cur.Width = 4, 4
		return old, cur
	},
}}

// TestMultipartAcrossMapChange: an upload created, and given parts, under
// one map keeps working after a map change moved its key's set: parts are
// uploaded and replaced into the upload's own set, Residue keeps the older
// map while the upload goes on (not once it is idle past UploadHold),
// Complete copies the parts into the key's current set (winning over the
// version migration moved there), a retried Complete answers the same
// artifact, and once migrated the older map holds nothing and no shard
// file of the upload's parts is left.
func TestMultipartAcrossMapChange(t *testing.T) {
	for _, tc := range mapChanges {
		t.Run(tc.name, func(t *testing.T) {
			r := newMigRig(t)
			ctx := t.Context()
			old, cur := tc.maps(t, r)
			r.useChain([]*placement.Map{old})
			const key = "mp/join"
			if _, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(randBytes(9, 300_000)), PutOptions{Size: 300_000}); err != nil {
				t.Fatal(err)
			}
			id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{ContentType: "application/x-join"})
			if err != nil {
				t.Fatal(err)
			}
			parts := map[int][]byte{1: randBytes(1, MinPartSize), 2: randBytes(2, MinPartSize)}
			put := func(n int, b []byte) PartInfo {
				t.Helper()
				pi, err := r.e.PutPart(ctx, "t", "c", key, id, n, bytes.NewReader(b), PutOptions{Size: int64(len(b))})
				if err != nil {
					t.Fatalf("PutPart(%d): %v", n, err)
				}
				return pi
			}
			put(1, parts[1])
			put(2, parts[2])

			r.useChain([]*placement.Map{old, cur})
			// Listed from the older map's drives too: they may have
			// left the current map (drained).
			if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 1 || ups[0].ID != id {
				t.Fatalf("ListUploads after the map change = %+v, %v; want upload %s", ups, err, id)
			}
			migrateUntilClean(t, r.e) // moves the key's older version into its current set
			if n, err := r.e.Residue(ctx, old); err != nil || n == 0 {
				t.Fatalf("Residue(old map) with an upload going on in it = %d, %v; want > 0", n, err)
			}
			if n, err := r.e.UploadsHolding(ctx, []*placement.Map{old}); err != nil || n != 1 {
				t.Fatalf("UploadsHolding(old map) = %d, %v; want 1", n, err)
			}
			// Idle past UploadHold (a client or a crash left it), the
			// upload no longer keeps the map.
			r.skew.Store(int64(DefaultUploadHold + time.Minute))
			n, err := r.e.Residue(ctx, old)
			held, herr := r.e.UploadsHolding(ctx, []*placement.Map{old})
			// ... unless its lease is held: a part is streaming into it.
			r.e.cfg.UploadLocker = leasedLocker{id}
			leased, lerr := r.e.Residue(ctx, old)
			r.e.cfg.UploadLocker = nil
			r.skew.Store(0)
			if err != nil || n != 0 || herr != nil || held != 0 {
				t.Fatalf("with the upload idle past UploadHold: Residue(old map) = %d, %v, UploadsHolding = %d, %v; want 0", n, err, held, herr)
			}
			if lerr != nil || leased == 0 {
				t.Fatalf("with the upload's lease held past UploadHold: Residue(old map) = %d, %v; want > 0", leased, lerr)
			}
			parts[2] = randBytes(3, MinPartSize) // replaced after the change
			put(2, parts[2])
			parts[3] = randBytes(4, 1000)
			put(3, parts[3])
			listed, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 100)
			if err != nil || len(listed) != 3 {
				t.Fatalf("ListParts = %d parts, %v; want 3", len(listed), err)
			}
			var cps []CompletePart
			for _, p := range listed {
				cps = append(cps, CompletePart{Number: p.Number, ETag: p.ETag})
			}
			info, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil)
			if err != nil {
				t.Fatalf("CompleteUpload: %v", err)
			}
			want := bytes.Join([][]byte{parts[1], parts[2], parts[3]}, nil)
			check := func(when string) {
				t.Helper()
				a, err := r.e.Open(ctx, "t", "c", key)
				if err != nil {
					t.Fatalf("%s: Open: %v", when, err)
				}
				var got bytes.Buffer
				if err := a.WriteRange(ctx, &got, 0, a.Info.Size); err != nil || !bytes.Equal(got.Bytes(), want) {
					t.Fatalf("%s: read %d bytes, %v; want the %d bytes of parts 1-3", when, got.Len(), err, len(want))
				}
				if a.Info.ETag != info.ETag || !strings.HasSuffix(a.Info.ETag, "-3") || a.PartCount() != 3 {
					t.Fatalf("%s: ETag %s, %d parts; want %s, 3", when, a.Info.ETag, a.PartCount(), info.ETag)
				}
			}
			check("after Complete")
			again, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil)
			if err != nil || again.ETag != info.ETag {
				t.Fatalf("retried CompleteUpload = %s, %v; want %s", again.ETag, err, info.ETag)
			}
			if err := r.e.AbortUpload(ctx, "t", "c", key, id); !errors.Is(err, ErrNoSuchUpload) {
				t.Fatalf("AbortUpload after Complete = %v, want ErrNoSuchUpload", err)
			}
			migrateUntilClean(t, r.e)
			if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
				t.Fatalf("Residue(old map) after Complete and migration = %d, %v; want 0", n, err)
			}
			r.useChain([]*placement.Map{cur}) // the older map dropped
			check("after the older map is dropped")
			// Only the artifact's shard files remain: one per part on
			// each drive of its set.
			probeShardFiles(t, r, 3*cur.Policy.SetSize())
		})
	}
}

// TestListUploadsQuorumIsTheCurrentMaps: the older maps' drives are listed
// for uploads started under them, but never stand in for the current
// map's: with more than its parity offline, a listing fails rather than
// answer without an upload in progress whose record only those hold; with
// the older map's drives offline, upload and artifact listings of a
// container settled at the current epoch still answer.
func TestListUploadsQuorumIsTheCurrentMaps(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := r.olderAndCurrent(t) // 1+1 on d00, d01; 2+2 on d02..d05
	r.useChain([]*placement.Map{old, cur})
	off := func(on bool, ids ...placement.DriveID) {
		for _, id := range ids {
			r.topo.drives[id].SetOffline(on)
		}
	}
	// The upload's record lands on d03, d04, d05 only.
	off(true, "d02")
	id, err := r.e.CreateUpload(ctx, "t", "c", "k", PutOptions{})
	if err != nil {
		t.Fatalf("CreateUpload with d02 offline: %v", err)
	}
	off(false, "d02")
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 1 || ups[0].ID != id {
		t.Fatalf("ListUploads, every drive up: %+v, %v; want upload %s", ups, err, id)
	}
	// Only d02 (which missed the record) and the older d00, d01 answer.
	off(true, "d03", "d04", "d05")
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("ListUploads with 3 of the current map's 4 drives offline: %+v, %v; want ErrReadQuorum", ups, err)
	}
	if n, err := r.e.SweepUploads(ctx); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("SweepUploads with 3 of the current map's 4 drives offline: %d, %v; want ErrReadQuorum", n, err)
	}
	off(false, "d03", "d04", "d05")
	// A listing, of artifacts or uploads, needs the older map's sets
	// while the container's keys or uploads may still be there only
	// (created before the older map was current: probe F2 of session 14;
	// TestListUploadsCoversOlderMaps), and not once a clean migration
	// pass settled it at the current epoch (Settler, RunMigrator): an
	// older map is kept until then, and one node down after a join
	// would otherwise fail every listing until it returns (session 14).
	off(true, "d00", "d01")
	if res, err := r.e.List(ctx, "t", "c", ListOptions{}); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("List of an unsettled container with the older map's drives offline: %+v, %v; want ErrReadQuorum", res, err)
	}
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); !errors.Is(err, ErrReadQuorum) {
		t.Errorf("ListUploads of an unsettled container with the older map's drives offline: %+v, %v; want ErrReadQuorum", ups, err)
	}
	if err := r.e.cfg.Containers.(Settler).SettleContainers(ctx, cur.Epoch, nil); err != nil {
		t.Fatal(err)
	}
	if res, err := r.e.List(ctx, "t", "c", ListOptions{}); err != nil {
		t.Errorf("List of a settled container with the older map's drives offline: %+v, %v; want an answer", res, err)
	}
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 1 {
		t.Errorf("ListUploads of a settled container with the older map's drives offline: %+v, %v; want the upload", ups, err)
	}
}

// TestUploadMovesWithMigration: an upload in progress in an older map's
// set moves into its key's set of the current map (MoveUploads) whether
// or not its client is active, with its parts' ETags, sizes and its
// content type; the older map then holds nothing of it and can be
// dropped; parts are added and the upload completed through the current
// map alone; and nothing of the older set's copies is left.
func TestUploadMovesWithMigration(t *testing.T) {
	for _, tc := range mapChanges {
		t.Run(tc.name, func(t *testing.T) {
			r := newMigRig(t)
			ctx := t.Context()
			old, cur := tc.maps(t, r)
			r.useChain([]*placement.Map{old})
			const key = "mp/moved"
			id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{ContentType: "application/x-moved", Metadata: map[string]string{"color": "blue"}})
			if err != nil {
				t.Fatal(err)
			}
			parts := map[int][]byte{1: randBytes(11, MinPartSize), 2: randBytes(12, MinPartSize), 3: randBytes(13, MinPartSize)}
			etags := map[int]string{}
			put := func(n int, b []byte) {
				t.Helper()
				pi, err := r.e.PutPart(ctx, "t", "c", key, id, n, bytes.NewReader(b), PutOptions{Size: int64(len(b))})
				if err != nil {
					t.Fatalf("PutPart(%d): %v", n, err)
				}
				etags[n] = pi.ETag
			}
			put(1, parts[1])
			put(2, parts[2])
			put(3, parts[3])

			r.useChain([]*placement.Map{old, cur})
			st, err := r.e.MoveUploads(ctx)
			if err != nil || st.Uploads != 1 || st.Moved != 1 || st.Parts != 3 || st.Bytes != 3*MinPartSize {
				t.Fatalf("MoveUploads = %+v, %v; want 1 upload moved with its 3 parts", st, err)
			}
			// Active (its last part just now), it no longer holds the map.
			if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
				t.Fatalf("Residue(old map) after the move = %d, %v; want 0", n, err)
			}
			if st, err := r.e.MoveUploads(ctx); err != nil || st.Uploads != 0 {
				t.Fatalf("MoveUploads again = %+v, %v; want nothing left to move", st, err)
			}
			r.useChain([]*placement.Map{cur}) // the older map dropped
			ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10)
			if err != nil || len(ups) != 1 || ups[0].ID != id || ups[0].ContentType != "application/x-moved" || ups[0].Metadata["color"] != "blue" {
				t.Fatalf("ListUploads after the move = %+v, %v; want upload %s with its type and metadata", ups, err, id)
			}
			listed, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 100)
			if err != nil || len(listed) != 3 {
				t.Fatalf("ListParts after the move = %+v, %v; want 3 parts", listed, err)
			}
			for _, p := range listed {
				if p.ETag != etags[p.Number] || p.Size != MinPartSize {
					t.Fatalf("part %d after the move: ETag %s, %d bytes; want %s, %d", p.Number, p.ETag, p.Size, etags[p.Number], MinPartSize)
				}
			}
			parts[2] = randBytes(14, MinPartSize) // replaced after the move
			put(2, parts[2])
			parts[4] = randBytes(15, 1000)
			put(4, parts[4])
			var cps []CompletePart
			for n := 1; n <= 4; n++ {
				cps = append(cps, CompletePart{Number: n, ETag: etags[n]})
			}
			info, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil)
			if err != nil {
				t.Fatalf("CompleteUpload after the move: %v", err)
			}
			a, err := r.e.Open(ctx, "t", "c", key)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			want := bytes.Join([][]byte{parts[1], parts[2], parts[3], parts[4]}, nil)
			var got bytes.Buffer
			if err := a.WriteRange(ctx, &got, 0, a.Info.Size); err != nil || !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("read %d bytes, %v; want the %d bytes of parts 1-4", got.Len(), err, len(want))
			}
			if a.Info.ETag != info.ETag || a.Info.ContentType != "application/x-moved" {
				t.Fatalf("ETag %s, type %q; want %s, application/x-moved", a.Info.ETag, a.Info.ContentType, info.ETag)
			}
			// Only the artifact's shard files remain (one per part on
			// each drive of its sets), and no drive outside the key's
			// current set holds a record of the upload.
			home := cur.Set(cur.PGOf("t", "c", key))
			probeShardFiles(t, r, 4*cur.Policy.SetSize())
			for _, did := range r.ids {
				if slices.Contains(home, did) {
					continue
				}
				recs, err := r.topo.drives[did].ListRecords(ctx, "\x01", "", 1000)
				if err != nil {
					t.Fatal(err)
				}
				for _, rec := range recs {
					if strings.Contains(rec.Key, id) {
						t.Errorf("drive %s, outside the key's current set, still holds %q", did, rec.Key)
					}
				}
			}
		})
	}
}

// TestPartStreamingWhileUploadMoves: a part that streamed into the
// upload's older set while the migrator moved the upload is refused
// (the client sends it again), not acknowledged into a set nobody reads.
func TestPartStreamingWhileUploadMoves(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := mapChanges[2].maps(t, r) // to other drives
	r.useChain([]*placement.Map{old})
	const key = "mp/racing"
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := randBytes(21, MinPartSize)
	if _, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	type result struct {
		pi  PartInfo
		err error
	}
	done := make(chan result, 1)
	go func() {
		pi, err := r.e.PutPart(ctx, "t", "c", key, id, 2, pr, PutOptions{Size: int64(len(body))})
		done <- result{pi, err}
	}()
	if _, err := pw.Write(body[:1<<20]); err != nil { // the part is streaming into the older set
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{old, cur})
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 {
		t.Fatalf("MoveUploads while a part streams = %+v, %v; want the upload moved", st, err)
	}
	if _, err := pw.Write(body[1<<20:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	res := <-done
	listed, _, lerr := r.e.ListParts(ctx, "t", "c", key, id, 0, 100)
	if lerr != nil {
		t.Fatal(lerr)
	}
	switch {
	case res.err == nil && (len(listed) != 2 || listed[1].ETag != res.pi.ETag):
		t.Fatalf("part 2 acknowledged (ETag %s) but the moved upload lists %+v", res.pi.ETag, listed)
	case res.err != nil && !errors.Is(res.err, ErrMetadataUnavailable):
		t.Fatalf("part 2 = %v; want ErrMetadataUnavailable (send it again)", res.err)
	case res.err != nil && len(listed) != 1:
		t.Fatalf("part 2 refused, but the upload lists %+v", listed)
	}
	// Sent again, it lands in the current set.
	if _, err := r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(body), PutOptions{Size: int64(len(body))}); err != nil {
		t.Fatalf("PutPart(2) again: %v", err)
	}
	if listed, _, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 100); err != nil || len(listed) != 2 {
		t.Fatalf("ListParts = %+v, %v; want 2 parts", listed, err)
	}
}

// TestUploadMoveBacksOff: an upload whose move failed is not tried again
// on every pass (each try copies its parts), but after a wait that grows.
func TestUploadMoveBacksOff(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := mapChanges[2].maps(t, r) // 1+1 on d00, d01 to 2+2 on d02..d05
	r.useChain([]*placement.Map{old})
	const key = "mp/backoff"
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := randBytes(31, 1000)
	if _, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(body), PutOptions{Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{old, cur})
	for _, id := range []placement.DriveID{"d02", "d03", "d04"} { // the current set cannot take writes
		r.topo.drives[id].SetOffline(true)
	}
	if st, err := r.e.MoveUploads(ctx); err == nil || st.Moved != 0 || st.Failed != 1 {
		t.Fatalf("MoveUploads with 3 of the current set's 4 drives offline = %+v, %v; want it failed", st, err)
	}
	for _, id := range []placement.DriveID{"d02", "d03", "d04"} {
		r.topo.drives[id].SetOffline(false)
	}
	if st, _ := r.e.MoveUploads(ctx); st.Moved != 0 || st.Failed != 1 {
		t.Fatalf("MoveUploads right after the failure = %+v; want it left for later", st)
	}
	r.skew.Store(int64(moveRetryFirst + time.Second))
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 {
		t.Fatalf("MoveUploads after the wait = %+v, %v; want the upload moved", st, err)
	}
}

// overlapLocker is an UploadLocker that lets every caller in and records
// how many held a lock at once.
type overlapLocker struct {
	mu       sync.Mutex
	cur, top int
}

func (l *overlapLocker) LockUpload(context.Context, string) (func() bool, func(), error) {
	l.mu.Lock()
	l.cur++
	l.top = max(l.top, l.cur)
	l.mu.Unlock()
	var once sync.Once
	return func() bool { return true }, func() {
		once.Do(func() {
			l.mu.Lock()
			l.cur--
			l.mu.Unlock()
		})
	}, nil
}

// TestMoveUploadsAtOnce: MoveUploads moves several uploads at a time
// (each under its lease throughout its copy), every one of them whole.
func TestMoveUploadsAtOnce(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := mapChanges[0].maps(t, r)
	r.useChain([]*placement.Map{old})
	const uploads = 6
	ids := make([]string, uploads)
	data := make([][]byte, uploads)
	for i := range uploads {
		key := fmt.Sprintf("mp/%d", i)
		id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids[i], data[i] = id, randBytes(uint64(40+i), MinPartSize)
		if _, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(data[i]), PutOptions{Size: MinPartSize}); err != nil {
			t.Fatalf("PutPart(%s): %v", key, err)
		}
	}
	lk := &overlapLocker{}
	r.e.cfg.UploadLocker = lk
	r.useChain([]*placement.Map{old, cur})
	st, err := r.e.MoveUploads(ctx)
	if err != nil || st.Uploads != uploads || st.Moved != uploads || st.Parts != uploads {
		t.Fatalf("MoveUploads = %+v, %v; want %d uploads moved with a part each", st, err, uploads)
	}
	if lk.top < 2 || lk.top > moveUploadsAtOnce {
		t.Errorf("at most %d uploads moved at once, want 2 to %d", lk.top, moveUploadsAtOnce)
	}
	r.useChain([]*placement.Map{cur}) // the older map dropped
	for i := range uploads {
		key := fmt.Sprintf("mp/%d", i)
		parts, _, err := r.e.ListParts(ctx, "t", "c", key, ids[i], 0, 10)
		if err != nil || len(parts) != 1 {
			t.Fatalf("ListParts(%s) = %+v, %v", key, parts, err)
		}
		if _, err := r.e.CompleteUpload(ctx, "t", "c", key, ids[i], []CompletePart{{Number: 1, ETag: parts[0].ETag}}, nil); err != nil {
			t.Fatalf("CompleteUpload(%s): %v", key, err)
		}
		if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data[i]) {
			t.Fatalf("%s after the move: %d bytes, %v", key, len(got), err)
		}
	}
}
