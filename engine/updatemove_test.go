package engine

import (
	"bytes"
	"slices"
	"testing"

	"github.com/vaultaire/vaultaire/placement"
)

// TestUpdateMetadataMovesFirst (review H1 of session 18): the home set
// moved to three drives outside it (older and current sets disjoint). A
// metadata update written to the older set, then the move planned before
// it writing the version before it to the current set, which settles:
// migrate's clean-up of the older set deleted the update, lost for good.
// UpdateMetadata of a key found in an older set now moves the key first
// and updates it in the current set (unfenced: one node).
func TestUpdateMetadataMovesFirst(t *testing.T) {
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
		free := slices.DeleteFunc(slices.Clone(r.ids[:6]), func(id placement.DriveID) bool { return slices.Contains(hs, id) })
		s[0], s[1], s[2] = free[0], free[1], free[2]
		return s
	})
	r.useChain([]*placement.Map{old, cur})
	loc, newest, err := r.e.locate(ctx, "t", "c", "k")
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
	art, err := r.e.Open(ctx, "t", "c", "k")
	if err != nil {
		t.Fatal(err)
	}
	if art.Info.Metadata["x"] != "y" {
		t.Errorf("read the version before the update: %v", art.Info.Metadata)
	}
	if _, err := walkPass(ctx, r.e); err != nil {
		t.Fatalf("pass: %v", err)
	}
	r.useChain([]*placement.Map{cur})
	if art, err = r.e.Open(ctx, "t", "c", "k"); err != nil || art.Info.Metadata["x"] != "y" {
		t.Fatalf("after the older map went: %v, %v", art.Info.Metadata, err)
	}
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
}

// TestLegalHoldMovesFirst: a legal hold (or retention) change of a key
// found in an older map's set moves the key into the current map first,
// then changes it there, as UpdateMetadata does. It answered 503 ("the
// version is being migrated") until the migrator reached the key, for a
// whole drain or join (probe 19); a move planned before the change and
// run after it must not undo it.
func TestLegalHoldMovesFirst(t *testing.T) {
	ctx := t.Context()
	r := newMigRig(t)
	old := r.newMap(t, 6, placement.Policy{Data: 2, Parity: 1}, 16, 1)
	r.useChain([]*placement.Map{old})
	want := randBytes(13, 300<<10)
	r.put(t, "k", want)
	hs := slices.Clone(old.Set(pgOf(old, "t", "c", "k")))
	cur := r.remap(t, old, 6, 2, func(s []placement.DriveID) []placement.DriveID {
		if !slices.Equal(s, hs) {
			return s
		}
		free := slices.DeleteFunc(slices.Clone(r.ids[:6]), func(id placement.DriveID) bool { return slices.Contains(hs, id) })
		s[0], s[1], s[2] = free[0], free[1], free[2]
		return s
	})
	r.useChain([]*placement.Map{old, cur})
	loc, newest, err := r.e.locate(ctx, "t", "c", "k")
	if err != nil {
		t.Fatal(err)
	}
	if !loc.sameSet(old, pgOf(old, "t", "c", "k")) {
		t.Fatal("the key is not in the older map's set")
	}
	if err := r.e.SetLegalHold(ctx, "t", "c", "k", "", true); err != nil {
		t.Fatalf("SetLegalHold on a key not yet moved: %v", err)
	}
	held := func(when string) {
		t.Helper()
		art, err := r.e.Open(ctx, "t", "c", "k")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if !retentionOf(art.Info.Metadata).LegalHold {
			t.Fatalf("%s: the legal hold is gone: %v", when, art.Info.Metadata)
		}
	}
	held("right after")
	// The migrator's move planned before the change runs after it.
	if merr := r.e.move(ctx, "t", "c", "k", cur, pgOf(cur, "t", "c", "k"), loc, newest); merr != nil {
		t.Logf("move planned before: %v", merr)
	}
	held("after a move planned before it")
	if _, err := walkPass(ctx, r.e); err != nil {
		t.Fatalf("pass: %v", err)
	}
	r.useChain([]*placement.Map{cur})
	held("after the older map went")
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
}
