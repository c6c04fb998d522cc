package local

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/vaultaire/vaultaire/driver"
	bolt "go.etcd.io/bbolt"
)

// TestReviewPack3TransientENOENTNotLost: 0203bcc treats ENOENT on opening
// a pack as errLost, so logical returns the stored Version alone and a
// newer version replaces the record "like a CRC mismatch". But ENOENT is
// also what every pack open returns while the packs directory itself is
// unreachable for a moment (moved, a lazy unmount, a path component
// replaced): the pack file is intact. The put then succeeds with prev
// lacking its data, and the flush kills and punches the intact extent.
// The engine (recordwrite putOne) cannot unmarshal prev, so it neither
// collects the old shards nor, when the write misses quorum, restores the
// previous record in undo: that drive's copy of an intact record is lost.
// Before 0203bcc the put failed (ErrCorrupt) and changed nothing. A pack
// is ENOENT legitimately only when it is really gone: the directory
// exists, and no reader can see an emptied pack's removal (packs.mu).
func TestReviewPack3TransientENOENTNotLost(t *testing.T) {
	c, d, old, f := packedNotOpen(t)
	ctx := t.Context()
	p := d.commit.packs
	dir := filepath.Join(c.Dir, packsDir)
	if err := os.Rename(dir, dir+".away"); err != nil { // the packs directory unreachable for a moment
		t.Fatal(err)
	}
	prev, ok, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: stamp(), Data: patterned("new", 9<<10)})
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	p.fmu.Lock()
	p.files[1] = f
	p.fmu.Unlock()
	if err == nil && ok && !bytes.Equal(prev.Data, old) {
		t.Errorf("PutRecord over an intact record whose packs directory was briefly unreachable (ENOENT): ok, prev of %d bytes (want an error or the %d bytes replaced): a transient ENOENT treated as lost data", len(prev.Data), len(old))
	}
}

// revFailBoltWrites makes bbolt's page and meta writes of db fail with EIO
// while fail is set (bbolt v1.5: DB.ops.writeAt, unexported).
func revFailBoltWrites(t *testing.T, db *bolt.DB, fail *atomic.Bool) {
	t.Helper()
	v := reflect.ValueOf(db).Elem().FieldByName("ops").FieldByName("writeAt")
	if !v.IsValid() {
		t.Skip("bbolt without DB.ops.writeAt")
	}
	v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	orig := v.Interface().(func([]byte, int64) (int, error))
	v.Set(reflect.ValueOf(func(b []byte, off int64) (int, error) {
		if fail.Load() {
			return 0, syscall.EIO
		}
		return orig(b, off)
	}))
}

// TestReviewPack3FailedCommitAppendsLeak: flush now calls
// packs.committed(ch) after any bbolt Commit error, also one that failed
// before bbolt wrote its meta page (a page write's EIO or ENOSPC, the
// file's growth): that transaction is visible nowhere, on the disk or in
// the process, yet its appends count as committed and no rollback ever
// drops them. Each retry of the flush (one a second while writes arrive)
// appends the held data again: a persistently failing index.db write
// grows the active pack by up to the held bytes per retry, without
// bound, and the space stays allocated after the fault clears (only a
// dead neighbour's gap, much later, frees it). Whether the failed commit
// is visible can be read back: bbolt's current pack-end is ch's
// (committed) or the one before it (roll back).
func TestReviewPack3FailedCommitAppendsLeak(t *testing.T) {
	oldIdle := flushIdle
	flushIdle = time.Hour // this goroutine runs the flushes
	t.Cleanup(func() { flushIdle = oldIdle })
	c := testConfig(t, true)
	d := open(t, c)
	ctx := t.Context()
	const n, size, retries = 4, 64 << 10, 5
	put, flush := genPutter(t, d, n, size)
	cm := &d.commit
	p := cm.packs
	put(0)
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	gen := p.end // one generation's bytes in the pack
	put(1)
	var fail atomic.Bool
	revFailBoltWrites(t, d.db, &fail)
	fail.Store(true)
	for range retries {
		if err := flush(); err == nil {
			t.Fatal("flush with failing index.db writes did not fail")
		}
	}
	path := filepath.Join(c.Dir, packsDir, packName(p.active))
	during, alloc := p.end, revAlloc(t, path)
	fail.Store(false)
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		k := fmt.Sprintf("k%d", i)
		if r, err := d.GetRecord(ctx, k); err != nil || !bytes.Equal(r.Data, patterned(fmt.Sprint(k, 1), size)) {
			t.Fatalf("get %s: %v", k, err)
		}
	}
	t.Logf("during the fault: pack end %d, %d bytes allocated (one generation %d); after the next commit: end %d, %d allocated (freed there because generation 0 died next to it)", during, alloc, gen, p.end, revAlloc(t, path))
	// Generation 0 (committed) and at most one failed attempt's appends
	// kept is tolerated.
	if during > 2*gen {
		t.Errorf("active pack end %d, %d bytes allocated, after %d flushes failing in bbolt's page writes (nothing committed, in the process or on the disk): want at most %d; every failed attempt's appends are kept, never rolled back", during, alloc, retries, 2*gen)
	}
}
