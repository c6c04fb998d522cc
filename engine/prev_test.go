package engine

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// prevRig: a key written under 4+2 on 6 drives, d05 force-removed, the
// current map 3+2 on 5 (the carry-Prev case of writeMoved).
func prevRig(t *testing.T, size int) (*migRig, *placement.Map, *placement.Map, []byte) {
	t.Helper()
	r := newMigRig(t)
	old := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 1)
	r.useChain([]*placement.Map{old})
	want := randBytes(uint64(size), size)
	r.put(t, "k", want)
	r.topo.remove("d05")
	removed, err := placement.NewMap(r.pdrives[:5], placement.Policy{Data: 3, Parity: 2}, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{old, removed})
	return r, old, removed, want
}

// carryCrash runs Migrate on "k" stopping (every drive offline) right
// after its record write number stop, then brings the drives back.
func carryCrash(t *testing.T, r *migRig, stop int) {
	t.Helper()
	writes := 0
	crash := func() {
		if writes++; writes == stop {
			for _, id := range r.ids[:5] {
				r.topo.drives[id].SetOffline(true)
			}
		}
	}
	r.hook.Store(&crash)
	_, err := r.e.Migrate(t.Context(), "t", "c", "k")
	r.hook.Store(nil)
	for _, id := range r.ids[:5] {
		r.topo.drives[id].SetOffline(false)
	}
	if writes < stop {
		t.Fatalf("only %d record writes (migrate: %v)", writes, err)
	}
}

// TestDropPrevsStaleKeepsLiveFiles: the interleaving of a
// migrate pass (its re-locate, then dropPrevs) with a metadata update (a
// new version naming the same shard files) landing in between. dropPrevs'
// writes are refused as stale, and collect's stale branch deleted rec's
// own shard files: the live version's, on every drive (review F1 of
// session 17; dropPrevs now leaves a stale refusal alone).
func TestDropPrevsStaleKeepsLiveFiles(t *testing.T) {
	ctx := t.Context()
	r, _, _, want := prevRig(t, 300<<10)
	carryCrash(t, r, 5)                                // every drive holds the moved version with Prev; dropPrevs not run
	loc, newest, err := r.e.locate(ctx, "t", "c", "k") // migrate's re-locate
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.UpdateMetadata(ctx, "t", "c", "k", "", func(ArtifactInfo) (map[string]string, error) {
		return map[string]string{"x": "y"}, nil
	}); err != nil {
		t.Fatalf("UpdateMetadata: %v", err)
	}
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after the update: %d bytes, %v", len(got), err)
	}
	perr := r.e.dropPrevs(ctx, "t", "c", "k", loc, newest) // migrate goes on
	t.Logf("dropPrevs: %v", perr)
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after dropPrevs met the newer version: %d bytes (want %d), %v", len(got), len(want), err)
	}
}

// olderFiles returns the shard files on d00..d04 now.
func olderFilesOf(t *testing.T, r *migRig) []string {
	var fs []string
	for _, id := range r.ids[:5] {
		fs = append(fs, shardFiles(t, r.dirs[id])...)
	}
	return fs
}

// TestVersionedPutCollectsPrev: after the carry writes (every drive
// holds the moved version with Prev, dropPrevs not run yet), a versioned
// PUT adopts the plain record as the null version (sameSet: the version
// key's record shares the current placement's files) and replaces the
// plain record with a pointer, collecting nothing (keepReplaced). The
// Prev-bearing records are gone, so nothing names the older placement's
// shard files any more: they are left for ever, and Residue lets the
// older map go.
func TestVersionedPutCollectsPrev(t *testing.T) {
	ctx := t.Context()
	r, old, _, want := prevRig(t, 300<<10)
	older := olderFilesOf(t, r)
	carryCrash(t, r, 5)
	if _, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader([]byte("v2")), PutOptions{Size: 2, Versioning: VersioningEnabled}); err != nil {
		t.Fatal(err)
	}
	if _, err := walkPass(ctx, r.e); err != nil {
		t.Fatalf("pass: %v", err)
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
		t.Fatalf("Residue(old) = %d, %v", n, err)
	}
	a, err := r.e.OpenVersion(ctx, "t", "c", "k", NullVersion)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.WriteRange(ctx, &buf, 0, a.Info.Size); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("null version: %d bytes, %v", buf.Len(), err)
	}
	left := 0
	for _, f := range older {
		if _, err := os.Stat(f); err == nil {
			left++
		}
	}
	if left > 0 {
		t.Errorf("%d of the older placement's %d shard files left, named by no record, with the older map droppable", left, len(older))
	}
}

// TestDropPrevsStaleVersionedPut: as
// TestDropPrevsStaleKeepsLiveFiles, the newer version being a
// versioned PUT: adopt makes the plain record the null version, sharing
// its shard files, and the pointer refuses dropPrevs' writes as stale.
func TestDropPrevsStaleVersionedPut(t *testing.T) {
	ctx := t.Context()
	r, _, _, want := prevRig(t, 300<<10)
	carryCrash(t, r, 5)
	loc, newest, err := r.e.locate(ctx, "t", "c", "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader([]byte("v2")), PutOptions{Size: 2, Versioning: VersioningEnabled}); err != nil {
		t.Fatal(err)
	}
	perr := r.e.dropPrevs(ctx, "t", "c", "k", loc, newest)
	t.Logf("dropPrevs: %v", perr)
	a, err := r.e.OpenVersion(ctx, "t", "c", "k", NullVersion)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.WriteRange(ctx, &buf, 0, a.Info.Size); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("the null version after dropPrevs met the pointer: %d bytes (want %d), %v", buf.Len(), len(want), err)
	}
}

// TestRemoveRecordPrevKeepsFiles: removeRecord deletes a
// record's own files sparing those keepFile says the current version
// still uses (keepStripedFile: a version moved slot by slot shares its
// data ids), but deletes the Prev's files with no skip at all. A Prev
// written by a slot-by-slot striped move (moveStriped → writeMoved carry)
// names the very same files (same PG, same data ids), so removing such a
// record from a drive leaving the home set deletes the files keepFile
// protects. Shown directly: a striped record carrying itself as Prev,
// keepFile keeping everything.
func TestRemoveRecordPrevKeepsFiles(t *testing.T) {
	ctx := t.Context()
	r := newMigRig(t)
	m := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 1)
	m.Width = 4
	r.useChain([]*placement.Map{m})
	r.put(t, "k", randBytes(7, 1<<20))
	pg := pgOf(m, "t", "c", "k")
	id := m.Set(pg)[0]
	d := r.topo.drives[id]
	ikey := indexPrefix("t", "c") + "k"
	raw, err := d.GetRecord(ctx, ikey)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := unmarshalRecord(raw.Data)
	if err != nil || !rec.striped() {
		t.Fatalf("record: %v striped=%v", err, rec != nil && rec.striped())
	}
	prev := *rec
	withPrev := *rec
	withPrev.Prev = &prev
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: ikey, Version: rec.Version, Data: withPrev.marshal()}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		for _, id := range r.ids {
			n += len(shardFiles(t, r.dirs[id]))
		}
		return n
	}
	before := count()
	if _, err := r.e.removeRecord(ctx, id, "t", "c", "k", ikey, func(*record) bool { return false }, func(*record, part) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if after := count(); after != before {
		t.Errorf("keepFile kept every file, yet removeRecord deleted %d of %d shard files (the Prev's, unskipped)", before-after, before)
	}
}

func TestRecordPrevRoundTrip(t *testing.T) {
	base := record{Version: driver.Version{1, 2}, Size: 10, ETag: "e", Modified: 5, Data: 3, Parity: 2, StripeSize: 1 << 16, PG: 3, Shard: 1,
		Parts: []part{{DataID: [16]byte{9}, Size: 10, ETag: "p"}}, Metadata: map[string]string{"a": "b"}}
	striped := base
	striped.Width, striped.PGCount, striped.Seed, striped.Layout = 4, 16, 77, 88
	offset := striped
	offset.Offset = 2
	inline := base
	inline.IsInline, inline.Parts, inline.Inline = true, nil, []byte("xyz")
	for _, outer := range []record{base, striped, offset, inline} {
		for _, prev := range []record{base, striped, offset, inline} {
			o := outer
			p := prev
			p.Shard = 4
			o.Prev = &p
			b := o.marshal()
			if b[1] != recordFormatPrev {
				t.Fatalf("format %d", b[1])
			}
			got, err := unmarshalRecord(b)
			if err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if got.Prev == nil || got.Prev.Shard != 4 || got.Width != o.Width || got.Offset != o.Offset || got.Prev.Width != p.Width || got.Prev.Offset != p.Offset || string(got.Prev.Inline) != string(p.Inline) || string(got.Inline) != string(o.Inline) {
				t.Errorf("round trip: %+v", got)
			}
			if !bytes.Equal(got.marshal(), b) {
				t.Errorf("re-marshal differs")
			}
			h, err := unmarshalHead(b[:40])
			if err != nil || h.Version != o.Version {
				t.Errorf("head of a cut format-4 record: %v", err)
			}
			// nested Prev: forged by hand
			inner := o.marshal()
			o2 := outer
			o2.Prev = &p
			bb := o2.marshal()
			_ = inner
			_ = bb
		}
	}
	// without Prev: unchanged formats
	if b := base.marshal(); b[1] != recordFormat {
		t.Errorf("base format %d", b[1])
	}
	// nested: Prev marshalled with its own Prev is cut to one level by marshal
	p2 := base
	p1 := base
	p1.Prev = &p2
	o := base
	o.Prev = &p1
	got, err := unmarshalRecord(o.marshal())
	if err != nil || got.Prev == nil || got.Prev.Prev != nil {
		t.Errorf("nested via marshal: %v %+v", err, got)
	}
}

// TestMoveStripedPrevRemovedKeepsFiles: F3 end to end. A striped
// key under 2+2 (width 4) moves slot by slot to B (one other PG's slot 0
// changes) with two home drives offline: the two live home drives carry
// Prev (same files). Then map C moves home slot 0 to another drive. With
// every drive back, a migration pass moves B to C, completes it and
// cleanOlder removes the record from the old home slot 0 drive:
// removeRecord spares (keepFile) the record's own part files that C still
// uses, but deletes the Prev's, the very same files.
func TestMoveStripedPrevRemovedKeepsFiles(t *testing.T) {
	for _, offline := range []bool{false, true} {
		t.Run(fmt.Sprintf("home drives offline %v", offline), func(t *testing.T) { moveStripedPrevRemoved(t, offline) })
	}
}

func moveStripedPrevRemoved(t *testing.T, offline bool) {
	ctx := t.Context()
	r := newMigRig(t)
	a := r.newMap(t, 6, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	a.Width = 4
	r.useChain([]*placement.Map{a})
	want := randBytes(11, 1<<20)
	r.put(t, "k", want)
	home := pgOf(a, "t", "c", "k")
	hs := slices.Clone(a.Set(home))
	ar, err := r.e.Open(ctx, "t", "c", "k")
	if err != nil {
		t.Fatal(err)
	}
	// A part PG whose slot 0 can go to a drive outside its set and the
	// home set's last two slots (the parts' PGs are drawn at random).
	var other uint32 = home
	for p := range ar.rec.Parts {
		q := ar.rec.partPG(p)
		free := slices.ContainsFunc(r.ids, func(id placement.DriveID) bool {
			return !slices.Contains(a.Set(q), id) && !slices.Contains(hs[2:], id)
		})
		if q != home && free {
			other = q
			break
		}
	}
	if other == home {
		t.Skip("no part PG with a drive to swap in (the seed's draw)")
	}
	swap0 := func(s []placement.DriveID, not []placement.DriveID) []placement.DriveID {
		for _, id := range r.ids {
			if !slices.Contains(s, id) && !slices.Contains(not, id) {
				s[0] = id
				return s
			}
		}
		t.Fatal("no drive to swap in")
		return s
	}
	pgIdx := 0
	b := r.remap(t, a, 6, 2, func(s []placement.DriveID) []placement.DriveID {
		defer func() { pgIdx++ }()
		if uint32(pgIdx) == other {
			return swap0(s, hs[2:])
		}
		return s
	})
	b.Width = 4
	r.useChain([]*placement.Map{a, b})
	r.topo.drives[hs[2]].SetOffline(offline)
	r.topo.drives[hs[3]].SetOffline(offline)
	res, err := r.e.Migrate(ctx, "t", "c", "k")
	t.Logf("A→B: %+v, %v", res, err)
	pgIdx = 0
	c := r.remap(t, b, 6, 3, func(s []placement.DriveID) []placement.DriveID {
		defer func() { pgIdx++ }()
		if uint32(pgIdx) == home {
			return swap0(s, nil)
		}
		return s
	})
	c.Width = 4
	r.useChain([]*placement.Map{a, b, c})
	r.topo.drives[hs[2]].SetOffline(false)
	r.topo.drives[hs[3]].SetOffline(false)
	for i := range 2 {
		_, err := walkPass(ctx, r.e)
		t.Logf("pass %d: %v", i+1, err)
	}
	art, err := r.e.Open(ctx, "t", "c", "k")
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for p := range art.rec.Parts {
		for j := range 4 {
			d := art.partDrive(p, j)
			if d == nil {
				continue
			}
			rc, err := d.ReadShard(ctx, art.partShard(p), 0, 1)
			if err != nil {
				missing++
				t.Errorf("part %d (pg %d) slot %d: %v", p, art.rec.partPG(p), j, err)
				continue
			}
			rc.Close()
		}
	}
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Errorf("read: %d bytes, %v", len(got), err)
	}
	t.Logf("missing shard files of the current version: %d", missing)
}

// TestMoveStripedStaleKeepsLiveFiles (pre-existing pattern, the
// F1 fix does not cover it): a slot-by-slot striped move writes a record
// naming the files the older set already serves (same PG, same data ids).
// A metadata update (a newer version naming those files too) landing
// after migrate's locate and before the move's record writes makes them
// stale; writeMoved's collect deletes rec's own files: the live ones.
func TestMoveStripedStaleKeepsLiveFiles(t *testing.T) {
	ctx := t.Context()
	r := newMigRig(t)
	old := r.newMap(t, 6, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	old.Width = 4
	r.useChain([]*placement.Map{old})
	want := randBytes(11, 1<<20)
	r.put(t, "k", want)
	home := pgOf(old, "t", "c", "k")
	hs := slices.Clone(old.Set(home))
	cur := r.remap(t, old, 6, 2, func(s []placement.DriveID) []placement.DriveID {
		if slices.Equal(s, hs) {
			return s
		}
		for _, id := range r.ids {
			if !slices.Contains(s, id) {
				s[0] = id
				break
			}
		}
		return s
	})
	cur.Width = 4
	r.useChain([]*placement.Map{old, cur})
	loc, newest, err := r.e.locate(ctx, "t", "c", "k") // migrate's
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.UpdateMetadata(ctx, "t", "c", "k", "", func(ArtifactInfo) (map[string]string, error) {
		return map[string]string{"x": "y"}, nil
	}); err != nil {
		t.Fatalf("UpdateMetadata: %v", err)
	}
	merr := r.e.move(ctx, "t", "c", "k", cur, pgOf(cur, "t", "c", "k"), loc, newest)
	t.Logf("move: %v", merr)
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after the move met the newer version: %d bytes (want %d), %v", len(got), len(want), err)
	}
}

// updateInPlace writes a successor of key's version with metadata meta to
// the drives holding the version, wherever they are: UpdateMetadata's
// write as it was before it moved a key found in an older set first (a
// writer to an older set that a move planned before it races).
func updateInPlace(t *testing.T, e *Engine, key string, meta map[string]string) {
	t.Helper()
	a, err := e.Open(t.Context(), "t", "c", key)
	if err != nil {
		t.Fatal(err)
	}
	rec := *a.rec
	rec.Metadata, rec.Version = meta, successor(a.rec.Version)
	ok := make([]bool, len(a.drives))
	for j, h := range a.holders {
		ok[j] = h != nil && a.drives[j] != nil
	}
	if err := e.artifactWrite("t", "c", a.rkey, a.drives, max(rec.Data, rec.Parity+1)).write(t.Context(), &rec, nil, ok); err != nil {
		t.Fatalf("update in place: %v", err)
	}
}

// TestMoveAfterUpdateServesUpdate: a metadata update written to the drives
// holding the version, here the older map's set (migration has not moved
// the key yet; UpdateMetadata itself now moves it first, updateInPlace). A move planned before the update (migrate's locate came
// first) then writes the version before it to the current set, slot by
// slot (two of the 2+1 set's slots changed). The current set then holds
// the older version on k drives and the update on one (the drive both
// sets share): a read must serve the acknowledged update, found in the
// older set, not the older version (it did: the current set settled).
func TestMoveAfterUpdateServesUpdate(t *testing.T) {
	ctx := t.Context()
	r := newMigRig(t)
	old := r.newMap(t, 6, placement.Policy{Data: 2, Parity: 1}, 16, 1)
	r.useChain([]*placement.Map{old})
	want := randBytes(12, 300<<10)
	r.put(t, "k", want)
	home := pgOf(old, "t", "c", "k")
	hs := slices.Clone(old.Set(home))
	cur := r.remap(t, old, 6, 2, func(s []placement.DriveID) []placement.DriveID {
		if !slices.Equal(s, hs) {
			return s
		}
		// Two of its three slots to drives outside it: the current set
		// cannot serve the version yet, so migrate moves it (slot by slot).
		free := slices.DeleteFunc(slices.Clone(r.ids[:6]), func(id placement.DriveID) bool { return slices.Contains(hs, id) })
		s[0], s[1] = free[0], free[1]
		return s
	})
	r.useChain([]*placement.Map{old, cur})
	loc, newest, err := r.e.locate(ctx, "t", "c", "k") // migrate's
	if err != nil {
		t.Fatal(err)
	}
	updateInPlace(t, r.e, "k", map[string]string{"x": "y"})
	merr := r.e.move(ctx, "t", "c", "k", cur, pgOf(cur, "t", "c", "k"), loc, newest)
	t.Logf("move: %v", merr)
	art, err := r.e.Open(ctx, "t", "c", "k")
	if err != nil {
		t.Fatal(err)
	}
	if art.Info.Metadata["x"] != "y" {
		t.Fatalf("read the version before the update: %v", art.Info.Metadata)
	}
	// A pass moves the update too; then the older map may go.
	if _, err := walkPass(ctx, r.e); err != nil {
		t.Fatalf("pass: %v", err)
	}
	if n, err := r.e.Residue(ctx, old); err != nil || n != 0 {
		t.Fatalf("Residue(old) = %d, %v", n, err)
	}
	r.useChain([]*placement.Map{cur})
	if art, err = r.e.Open(ctx, "t", "c", "k"); err != nil || art.Info.Metadata["x"] != "y" {
		t.Fatalf("after the older map went: %v, %v", art.Info.Metadata, err)
	}
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read: %d bytes (want %d), %v", len(got), len(want), err)
	}
}

// TestRollForwardDropsPrev: a completion's roll-forward writes the served
// record to the drives lacking it; a Prev that record carries names the
// files of the slot it was read from, so the records written carry none
// (review F4b of session 17).
func TestRollForwardDropsPrev(t *testing.T) {
	ctx := t.Context()
	r := newRig(t, rigOptions{drives: 4})
	r.put(t, "k", randBytes(13, 300<<10), -1)
	m := r.e.mapOf()
	drives, _ := r.e.pgDrives(m, m.PGOf("t", "c", "k"))
	ikey := indexPrefix("t", "c") + "k"
	recs, _ := r.e.readRecordsEach(ctx, drives, ikey)
	cur := *recs[0]
	prev := *recs[0]
	cur.Prev = &prev
	cur.Version = successor(cur.Version)
	behind := slices.Clone(recs)
	behind[2], behind[3] = nil, nil // lacking it: rolled forward there
	r.e.rollForward(ctx, "t", "c", "k", drives, &cur, behind)
	after, _ := r.e.readRecordsEach(ctx, drives, ikey)
	for _, j := range []int{2, 3} {
		if after[j] == nil || after[j].Version != cur.Version {
			t.Fatalf("drive %d: not rolled forward: %+v", j, after[j])
		}
		if after[j].Prev != nil {
			t.Errorf("drive %d: rolled-forward record carries a Prev (of slot %d)", j, after[j].Prev.Shard)
		}
	}
}

// TestHealRebuildsPrevFiles: while a carry is interrupted (the older set
// serving through the Prevs of the records already written), a Prev's
// shard file lost on its drive is rebuilt in place by Heal: the drive's
// record is the newer placement's (not rewritten), the older set's data
// there is the Prev's file (review F4a of session 17: Heal skipped the
// drive, reported nothing and left the older set without a spare).
func TestHealRebuildsPrevFiles(t *testing.T) {
	ctx := t.Context()
	r, _, _, want := prevRig(t, 300<<10)
	carryCrash(t, r, 2)
	ikey := indexPrefix("t", "c") + "k"
	// The carry's writes run in parallel: more than two may have landed
	// before the crash. Put the older records back on all but two drives,
	// so that the current set (3+2) serves nothing and the older one
	// serves, through the two Prevs.
	var d driver.Driver
	var prev *record
	carried := 0
	for _, id := range r.ids[:5] {
		raw, err := r.topo.drives[id].GetRecord(ctx, ikey)
		if err != nil {
			continue
		}
		rec, err := unmarshalRecord(raw.Data)
		if err != nil || rec.Prev == nil {
			continue
		}
		if carried++; carried > 2 {
			if _, _, err := r.topo.drives[id].PutRecord(ctx, driver.Record{Key: ikey, Version: raw.Version, Data: rec.Prev.marshal()}); err != nil {
				t.Fatalf("put the older record back on %s: %v", id, err)
			}
			continue
		}
		d, prev = r.topo.drives[id], rec.Prev
	}
	if carried < 2 {
		t.Fatalf("%d records carry a Prev after the interrupted carry, want at least 2", carried)
	}
	if a, err := r.e.Open(ctx, "t", "c", "k"); err != nil || !a.older {
		t.Fatalf("Open after the interrupted carry: older set serving %v, %v; want the older set", err == nil && a.older, err)
	}
	name := shardOf("t", "c", "k", prev.PG, prev.Parts[0].DataID)
	if err := d.DeleteShard(ctx, name); err != nil {
		t.Fatalf("delete the Prev's shard file: %v", err)
	}
	healed, err := r.e.Heal(ctx, "t", "c", "k")
	t.Logf("Heal: %v, %v", healed, err)
	rc, err := d.ReadShard(ctx, name, 0, 1)
	if err != nil {
		t.Fatalf("the Prev's shard file after Heal: %v", err)
	}
	rc.Close()
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
}
