package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	bolt "go.etcd.io/bbolt"
)

// TestReviewPack2RollbackAfterUncertainCommit: bbolt's Commit can return
// an error after it wrote the meta page (its fdatasync failed): the
// transaction is then the one bbolt serves (and may be on the disk), but
// flush sees an error with beforeCommit false, so packs.committed is not
// called and doneEnd stays at the end before it. The next flush failing
// before its commit rolls back to that stale end: it truncates data that
// committed transaction references and moves p.end back under its
// extents. The flush after that appends at the same offsets: its new
// extents have the keys of the extents it kills, so apply deletes them
// from "extents" and punches them after the commit: acknowledged records
// lost.
//
// The uncertain commit is emulated by running applyMutations over the
// held mutations in a committed bbolt transaction without freePacks,
// leaving the mutations held, which is the state flush leaves.
func TestReviewPack2RollbackAfterUncertainCommit(t *testing.T) {
	t.Run("flushB-fails", func(t *testing.T) { revUncertain(t, true) })
	t.Run("control-no-flushB", func(t *testing.T) { revUncertain(t, false) })
}

func revUncertain(t *testing.T, failB bool) {
	oldIdle := flushIdle
	flushIdle = time.Hour // this goroutine runs the flushes
	t.Cleanup(func() { flushIdle = oldIdle })
	c := testConfig(t, false)
	d, err := Open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const n, size = 4, 64 << 10
	put, flush := genPutter(t, d, n, size)
	cm := &d.commit
	p := cm.packs
	put(0)
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	put(1)
	// Flush A: its commit is written, but bbolt returns an error.
	cm.memMu.Lock()
	fl := maps.Clone(cm.mem.byKey)
	cm.memMu.Unlock()
	if err := d.db.Update(func(tx *bolt.Tx) error {
		_, err := applyMutations(tx, slices.Sorted(maps.Keys(fl)), fl, cm.seq, p)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Flush B fails before its commit (the packs directory's fsync).
	if failB {
		dir := p.dir
		p.dir, p.created = filepath.Join(dir, "gone"), true
		if err := flush(); err == nil {
			t.Fatal("flush B did not fail")
		}
		p.dir = dir
	}
	// Flush C commits.
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		for i := range n {
			k := fmt.Sprintf("k%d", i)
			if r, err := d.GetRecord(ctx, k); err != nil || !bytes.Equal(r.Data, patterned(fmt.Sprint(k, 1), size)) {
				t.Errorf("%s: get %s: %v (data equal %v)", when, k, err, err == nil && bytes.Equal(r.Data, patterned(fmt.Sprint(k, 1), size)))
			}
		}
	}
	check("after flush C")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(t, c)
	check("after reopen")
}

// TestReviewPack2ProbeReformatsV1DriveAsV2: a drive of format 1 (made
// before packs) whose disk is replaced by an empty one is reformatted by
// Probe as version 2 with packs, and keeps that across a reopen.
func TestReviewPack2ProbeReformatsV1DriveAsV2(t *testing.T) {
	c := testConfig(t, false)
	packsEnabled = false
	d, err := Open(t.Context(), c)
	packsEnabled = true
	if err != nil {
		t.Fatal(err)
	}
	if f := readFormat(t, c.Dir); f.Version != 1 {
		t.Fatalf("format %d, want 1", f.Version)
	}
	ctx := t.Context()
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "old", Version: stamp(), Data: patterned("o", 50<<10)}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	ents, _ := os.ReadDir(c.Dir)
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(c.Dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if f := readFormat(t, c.Dir); f.Version != 2 {
		t.Fatalf("reformatted as %d, want 2", f.Version)
	}
	if d.commit.packs == nil {
		t.Fatal("no packs after the reformat")
	}
	big := patterned("b", 50<<10)
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "big", Version: stamp(), Data: big}); err != nil {
		t.Fatal(err)
	}
	flushHeld(t, d)
	if _, ok := storedRef(storedValue(t, d, "big")); !ok {
		t.Fatal("big not packed after the reformat")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(t, c)
	if r, err := d.GetRecord(ctx, "big"); err != nil || !bytes.Equal(r.Data, big) {
		t.Fatalf("get big after reopen: %v", err)
	}
	if _, err := d.GetRecord(ctx, "old"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("old record on the replaced drive: %v", err)
	}
}

// TestReviewPack2FutureFormatRefused: format.json of version 3 is refused.
func TestReviewPack2FutureFormatRefused(t *testing.T) {
	c := testConfig(t, false)
	d := open(t, c)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(format{Version: 3, ClusterID: c.ClusterID, DriveID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, formatFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := Open(t.Context(), c); err == nil {
		d.Close()
		t.Fatal("format 3 opened")
	}
}

// TestReviewPack2MissingPackBlocksHeal: a record whose pack file is gone
// (ENOENT: permanent, not a transient failure) can no longer be replaced
// by a newer version nor deleted by version: logical returns it as
// unreadable rather than as its Version alone, as it does for a checksum
// mismatch. Only an unconditional delete clears it. Documents the
// behaviour; an engine repair writing a newer version fails on that
// drive for ever.
func TestReviewPack2MissingPackBlocksHeal(t *testing.T) {
	revSetPackMax(t, 40<<10)
	c := testConfig(t, true)
	d := open(t, c)
	ctx := t.Context()
	v0 := stamp()
	for _, k := range []string{"k", "z"} { // k in pack 1, z in pack 2 (pack 1 sealed)
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: v0, Data: patterned(k, 50<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	flushHeld(t, d)
	if ref, ok := storedRef(storedValue(t, d, "k")); !ok || ref.id != 1 || d.commit.packs.active == 1 {
		t.Fatalf("k in %+v, active pack %d", ref, d.commit.packs.active)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(c.Dir, packsDir, packName(1)), filepath.Join(c.Dir, "lost.dat")); err != nil {
		t.Fatal(err)
	}
	d = open(t, c)
	_, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: patterned("b", 50<<10)})
	t.Logf("put newer version over a record whose (sealed) pack is lost: %v", err)
	err2 := d.DeleteRecord(ctx, "k", v0)
	t.Logf("delete by version: %v", err2)
	err3 := d.DeleteRecord(ctx, "k", driver.Version{})
	t.Logf("unconditional delete: %v", err3)
	if err != nil {
		t.Errorf("a record whose pack file was lost cannot be replaced by a newer version: %v", err)
	}
}
