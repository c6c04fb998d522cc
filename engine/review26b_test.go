package engine

import (
	"bytes"
	"context"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/faulty"
	"github.com/vaultaire/vaultaire/placement"
)

// missPointer makes drive i of r hold raw0, key's plain record from before
// versioning, in place of the pointer record it holds now: the state of a
// drive that missed the pointer writes (acknowledged on the other three of
// 2+2's drives, w = 3), as after a slow or failing record write there.
func (r *dfRig) missPointer(t *testing.T, ctx context.Context, i int, key string, raw0 []byte) {
	t.Helper()
	ikey := indexPrefix("t", "c") + key
	cur, err := r.drives[i].GetRecord(ctx, ikey)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := unmarshalRecord(cur.Data); err != nil || !rec.Pointer {
		t.Fatalf("drive %d: %v, want a pointer record", i, err)
	}
	if err := r.drives[i].DeleteRecord(ctx, ikey, cur.Version); err != nil {
		t.Fatal(err)
	}
	old, err := unmarshalRecord(raw0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.drives[i].PutRecord(ctx, driver.Record{Key: ikey, Version: old.Version, Data: raw0}); err != nil {
		t.Fatal(err)
	}
}

// TestReview26bHealTombstoneCollectsNullVersion: 2+2, key k written
// unversioned (a plain record naming shard files on drives 0-3), then a
// DELETE with versioning enabled: adopt moves the plain record under the
// null version's key (sharing its shard files) and points k at it
// (keepReplaced: the replaced plain record's files are kept), then k gets
// a deleted pointer (the delete marker, keepReplaced again). Drive 3
// missed both pointer writes (acknowledged on 0-2) and still holds the
// plain record. Heal(k): openRecord finds the deleted pointer
// (ErrNoSuchArtifact), and healTombstone (bd0cecd) writes the deleted
// pointer to drive 3 as a plain forward write, without keepReplaced:
// collect removes the replaced plain record's shard files there, which
// are the null version's. The null version then has three shard files
// for four drives; with drives 0 and 1 failing shard reads it cannot be
// read (before bd0cecd Heal left drive 3 alone and it could).
func TestReview26bHealTombstoneCollectsNullVersion(t *testing.T) {
	healKeepsNullVersion(t, "healTombstone's write of the deleted pointer", func(ctx context.Context, r *dfRig) error {
		_, err := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled})
		return err
	})
}

// TestReview26bHealPointerCollectsNullVersion: the same through a live
// pointer (older than this review: Heal's record write of a pointer has
// no keepReplaced either). A versioned PUT over an unversioned key: adopt
// moves the plain record to the null version and points k at it, then
// v1's pointer; drive 3 missed the pointer writes. Heal(k) writes the
// pointer to drive 3 and collects the plain record's shard file there,
// the null version's.
func TestReview26bHealPointerCollectsNullVersion(t *testing.T) {
	healKeepsNullVersion(t, "Heal's write of the pointer", func(ctx context.Context, r *dfRig) error {
		v1 := bytes.Repeat([]byte("1"), 300<<10)
		_, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader(v1), PutOptions{Size: int64(len(v1)), Versioning: VersioningEnabled})
		return err
	})
}

// healKeepsNullVersion writes k unversioned on 2+2, makes the versioned
// change (which adopts the plain record as the null version and points
// k), has drive 3 miss the pointer writes (it keeps the plain record),
// heals k, and checks that the null version still reads with drives 0
// and 1 failing shard reads: what heals the pointer onto drive 3 (what)
// must not collect the plain record's shard file there, the null
// version's.
func healKeepsNullVersion(t *testing.T, what string, change func(ctx context.Context, r *dfRig) error) {
	t.Helper()
	ctx := t.Context()
	r := newDFRigPolicy(t, 1, placement.Policy{Data: 2, Parity: 2})
	v0 := bytes.Repeat([]byte("0"), 300<<10)
	if err := r.putBytes(ctx, "k", v0); err != nil {
		t.Fatal(err)
	}
	raw0, err := r.drives[3].GetRecord(ctx, indexPrefix("t", "c")+"k")
	if err != nil {
		t.Fatal(err)
	}
	if err := change(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.missPointer(t, ctx, 3, "k", raw0.Data)
	r.set([]int{0, 1}, faulty.Rule{Op: faulty.OpRead, Fault: faulty.EIO})
	if got, err := r.readVersion(ctx, "k", NullVersion); err != nil || !bytes.Equal(got, v0) {
		t.Fatalf("null version before heal, drives 0 and 1 failing shard reads: %v (%d bytes)", err, len(got))
	}
	r.set(nil)
	if _, err := r.e.Heal(ctx, "t", "c", "k"); err != nil {
		t.Logf("heal: %v", err)
	}
	r.e.WaitBackground()
	r.set([]int{0, 1}, faulty.Rule{Op: faulty.OpRead, Fault: faulty.EIO})
	got, err := r.readVersion(ctx, "k", NullVersion)
	r.set(nil)
	if err != nil || !bytes.Equal(got, v0) {
		t.Fatalf("null version with drives 0 and 1 failing shard reads after Heal(k): %v (%d bytes): %s collected the replaced plain record's shard file on drive 3, the null version's", err, len(got), what)
	}
}

// TestReview26bHealTombstoneBlockedByOneDriveAway: 2+2, a DELETE whose
// tombstone landed on drives 0 and 1 only (2 and 3 failing record
// writes). Drive 3 then stays away (every call fails), drive 2 is back.
// healTombstone returns ErrHealIncomplete at the first drive that did not
// answer, before writing anything: drive 2 keeps the deleted version's
// record and shard files for as long as drive 3 is away (F5's state),
// where Heal of a live version repairs the drives it reaches and then
// reports ErrHealIncomplete. A failed DELETE is most likely when a drive
// is away, so the roll-forward mostly waits for that drive's return.
func TestReview26bHealTombstoneBlockedByOneDriveAway(t *testing.T) {
	ctx := t.Context()
	r := newDFRigPolicy(t, 1, placement.Policy{Data: 2, Parity: 2})
	if err := r.putBytes(ctx, "k", bytes.Repeat([]byte("1"), 300<<10)); err != nil {
		t.Fatal(err)
	}
	r.set([]int{2, 3}, faulty.Rule{Op: faulty.OpPutRecord, Fault: faulty.EIO})
	if err := r.e.Delete(ctx, "t", "c", "k"); err == nil {
		t.Fatal("the delete was acknowledged on two of 2+2's drives")
	}
	r.set([]int{3}, faulty.Rule{Op: faulty.OpAll, Fault: faulty.EIO})
	_, err := r.e.Heal(ctx, "t", "c", "k")
	t.Logf("heal: %v", err)
	r.set(nil)
	raw, err := r.drives[2].GetRecord(ctx, indexPrefix("t", "c")+"k")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := unmarshalRecord(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Deleted {
		t.Fatal("drive 2 (reachable) still holds the deleted version after Heal: healTombstone writes nothing while another drive of the set is away")
	}
}
