package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/faulty"
	"github.com/vaultaire/vaultaire/placement"
)

// readVersionOf reads version vid of key in container "c" through e.
func readVersionOf(ctx context.Context, e *Engine, key, vid string) ([]byte, error) {
	a, err := e.OpenVersion(ctx, "t", "c", key, vid)
	if err != nil {
		return nil, err
	}
	rd := a.Reader(ctx, 0, a.Info.Size)
	defer rd.Close()
	return io.ReadAll(rd)
}

// TestReview26cMigratePointerCollectsNullVersion (passes: what holds):
// B1's case through migration. 2+2 on
// d00-d03, k written unversioned, then a versioned PUT: adopt moves the
// plain record under the null version's key (same shard files) and points
// k at it, then at v1. The set's slot-3 drive D missed the pointer writes
// (acknowledged on the other three) and still holds the plain record. A
// map change (16 to 32 PGs) moves the key to another PG whose set keeps D
// in slot 3: writeMoved writes k's pointer to D as a copied write, not
// keepReplaced, and collect deletes the replaced plain record's files on
// D; but they are the old PG's files, which the null version's own move
// does not keep (it copies to the new PG), so nothing is lost. (A map
// that keeps the PG and swaps a drive takes migrate's at-home path,
// Heal, which dda8649 covers.)
func TestReview26cMigratePointerCollectsNullVersion(t *testing.T) {
	for _, stale := range []bool{false, true} {
		name := "control"
		if stale {
			name = "stale"
		}
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			r := newMigRig(t)
			old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
			r.useChain([]*placement.Map{old})
			nm, err := placement.NewMap(r.pdrives[:4], placement.Policy{Data: 2, Parity: 2}, 32, 2)
			if err != nil {
				t.Fatal(err)
			}
			// A key the new map places in another PG (writeMoved), whose
			// set keeps the old set's slot-3 drive in slot 3.
			key := ""
			for i := range 1000 {
				k := fmt.Sprintf("k%d", i)
				po, pn := pgOf(old, "t", "c", k), pgOf(nm, "t", "c", k)
				if po != pn && old.Set(po)[3] == nm.Set(pn)[3] {
					key = k
					break
				}
			}
			if key == "" {
				t.Fatal("no key")
			}
			v0 := bytes.Repeat([]byte("0"), 300<<10)
			v1 := bytes.Repeat([]byte("1"), 300<<10)
			r.put(t, key, v0)
			set := old.Set(pgOf(old, "t", "c", key))
			d := r.topo.drives[set[3]]
			ikey := indexPrefix("t", "c") + key
			raw0, err := d.GetRecord(ctx, ikey)
			if err != nil {
				t.Fatal(err)
			}
			info, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(v1), PutOptions{Size: int64(len(v1)), Versioning: VersioningEnabled})
			if err != nil {
				t.Fatal(err)
			}
			if stale {
				cur, err := d.GetRecord(ctx, ikey)
				if err != nil {
					t.Fatal(err)
				}
				if err := d.DeleteRecord(ctx, ikey, cur.Version); err != nil {
					t.Fatal(err)
				}
				if _, _, err := d.PutRecord(ctx, driver.Record{Key: ikey, Version: raw0.Version, Data: raw0.Data}); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := readVersionOf(ctx, r.e, key, NullVersion); err != nil || !bytes.Equal(got, v0) {
				t.Fatalf("null version before the map change: %v (%d bytes)", err, len(got))
			}
			nset := nm.Set(pgOf(nm, "t", "c", key))
			t.Logf("old set %v pg %d, new set %v pg %d", set, pgOf(old, "t", "c", key), nset, pgOf(nm, "t", "c", key))
			r.useChain([]*placement.Map{old, nm})
			for _, k := range []string{key, versionKey(key, NullVersion), versionKey(key, info.VersionID)} {
				res, err := r.e.migrate(ctx, "t", "c", k, nil)
				t.Logf("migrate %q: %+v %v", k, res, err)
			}
			r.e.WaitBackground()
			r.topo.drives[set[1]].SetOffline(true)
			r.topo.drives[set[2]].SetOffline(true)
			got, err := readVersionOf(ctx, r.e, key, NullVersion)
			r.topo.drives[set[1]].SetOffline(false)
			r.topo.drives[set[2]].SetOffline(false)
			if err != nil || !bytes.Equal(got, v0) {
				t.Fatalf("null version after migration, slots 1 and 2 away (d04 and %s should serve it): %v (%d bytes): migration's pointer write collected the replaced plain record's shard files on %s, the null version's", set[3], err, len(got), set[3])
			}
		})
	}
}

// TestReview26cReplayStaleRefusalCollectsNewerVersionsFiles: a replay
// (Heal's record write, a read's write-back) of a plain record refused as
// stale by a drive that took a metadata update of the same version
// meanwhile (UpdateMetadata: a newer record naming the same shard files).
// Heal read R, rebuilt drive 3's shard and is about to write R there;
// UpdateMetadata writes R' everywhere first. collect's stale branch
// (gone = rec, no keepReplaced, no copied) deletes R's files on drive 3,
// which R' names: the live version loses a shard, silently. Migration's
// copies avoid this with copied (review F5 of session 17); replay does
// not. Older than dda8649 (Heal's forward write had the same hole).
func TestReview26cReplayStaleRefusalCollectsNewerVersionsFiles(t *testing.T) {
	ctx := t.Context()
	r := newDFRigPolicy(t, 1, placement.Policy{Data: 2, Parity: 2})
	v0 := bytes.Repeat([]byte("0"), 300<<10)
	if err := r.putBytes(ctx, "k", v0); err != nil {
		t.Fatal(err)
	}
	loc, rec, err := r.e.locate(ctx, "t", "c", "k") // what Heal (or Open) read
	if err != nil || rec == nil {
		t.Fatal(err)
	}
	if _, err := r.e.UpdateMetadata(ctx, "t", "c", "k", "", func(ArtifactInfo) (map[string]string, error) {
		return map[string]string{"x": "y"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	mask := make([]bool, len(loc.drives))
	mask[3] = true
	w := r.e.artifactWrite("t", "c", "k", loc.drives, 1)
	w.replay(rec)
	t.Logf("replayed write (as heal.go's): %v", w.write(ctx, rec, nil, mask))
	r.e.WaitBackground()
	var fail []int // the drives of slots 0 and 1
	for i, d := range r.drives {
		if driver.Driver(d) == loc.drives[0] || driver.Driver(d) == loc.drives[1] {
			fail = append(fail, i)
		}
	}
	r.set(fail, faulty.Rule{Op: faulty.OpRead, Fault: faulty.EIO})
	got, err := r.read(ctx, "k")
	r.set(nil)
	if err != nil || !bytes.Equal(got, v0) {
		t.Fatalf("k with drives 0 and 1 failing shard reads, after a replay refused as stale by the metadata update on drive 3: %v (%d bytes): collect deleted the shard file the newer record names", err, len(got))
	}
}

// TestReview26cSuspendedReplayLeaksSupersededNull: the garbage dda8649's
// replay comment accepts, and nothing reclaims (no collector scans for
// shard files no record names; stripe_gc only follows stripe intents).
// 2+2, k written unversioned (plain record P, its files on every drive),
// then a PUT with versioning Suspended: the new null version, and the
// pointer write collects P's files (point's collect), but the drive of
// slot 3 fails record writes and keeps P and its files. Heal(k) writes
// the pointer there with keepReplaced: P's file stays, named by no record
// on any drive (the null version is the new one), for good.
func TestReview26cSuspendedReplayLeaksSupersededNull(t *testing.T) {
	knownOpen(t, "review 26c C2 (LOW leak): a replayed pointer keeps a superseded null version's files on a drive that missed the pointer; nothing reclaims them")
	ctx := t.Context()
	r := newDFRigPolicy(t, 1, placement.Policy{Data: 2, Parity: 2})
	v0 := bytes.Repeat([]byte("0"), 300<<10)
	v1 := bytes.Repeat([]byte("1"), 300<<10)
	if err := r.putBytes(ctx, "k", v0); err != nil {
		t.Fatal(err)
	}
	loc, p, err := r.e.locate(ctx, "t", "c", "k")
	if err != nil || p == nil || len(p.Parts) != 1 {
		t.Fatalf("%v %v", p, err)
	}
	slot3 := -1
	for i, d := range r.drives {
		if driver.Driver(d) == loc.drives[3] {
			slot3 = i
		}
	}
	r.set([]int{slot3}, faulty.Rule{Op: faulty.OpPutRecord, Fault: faulty.EIO})
	_, err = r.e.Put(ctx, "t", "c", "k", bytes.NewReader(v1), PutOptions{Size: int64(len(v1)), Versioning: VersioningSuspended})
	r.set(nil)
	if err != nil {
		t.Fatal(err)
	}
	r.e.WaitBackground()
	if _, err := r.e.Heal(ctx, "t", "c", "k"); err != nil {
		t.Logf("heal: %v", err)
	}
	if _, err := r.e.Heal(ctx, "t", "c", versionKey("k", NullVersion)); err != nil {
		t.Logf("heal null: %v", err)
	}
	r.e.WaitBackground()
	if rr, err := loc.drives[3].GetRecord(ctx, indexPrefix("t", "c")+"k"); err != nil {
		t.Fatal(err)
	} else if rec, _ := unmarshalRecord(rr.Data); !rec.Pointer {
		t.Fatalf("slot 3 still holds the plain record after Heal")
	}
	var left []int
	for j, d := range loc.drives {
		if rd, err := d.ReadShard(ctx, shardOf("t", "c", "k", p.PG, p.Parts[0].DataID), 0, 1); err == nil {
			rd.Close()
			left = append(left, j)
		}
	}
	if len(left) > 0 {
		t.Fatalf("the superseded null version's shard files are left on slots %v after Heal, named by no record", left)
	}
}
