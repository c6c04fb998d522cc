package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/driver/local"
	"github.com/vaultaire/vaultaire/placement"
)

// hooked wraps a drive of a migRig: its record writes can be made to
// fail, and while the rig's hook is set each record write is followed by
// the hook, one write at a time across the rig's drives.
type hooked struct {
	driver.Driver
	rig     *migRig
	failPut atomic.Bool
}

func (h *hooked) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if h.failPut.Load() {
		return driver.Record{}, false, fmt.Errorf("test: put record: %w", driver.ErrOffline)
	}
	f := h.rig.hook.Load()
	if f == nil {
		return h.Driver.PutRecord(ctx, r)
	}
	h.rig.hookMu.Lock()
	defer h.rig.hookMu.Unlock()
	prev, ok, err := h.Driver.PutRecord(ctx, r)
	(*f)()
	return prev, ok, err
}

// migRig is a histRig over six local drives d00…d05 in temporary
// directories, whose shard files tests count.
type migRig struct {
	*histRig
	dirs   map[placement.DriveID]string
	hooked map[placement.DriveID]*hooked
	hook   atomic.Pointer[func()]
	hookMu sync.Mutex // serialises hooked record writes and the hook
}

func newMigRig(t *testing.T) *migRig {
	t.Helper()
	r := &migRig{
		histRig: &histRig{topo: &histTopo{drives: map[placement.DriveID]*drivertest.Faulty{}}},
		dirs:    map[placement.DriveID]string{},
		hooked:  map[placement.DriveID]*hooked{},
	}
	for i := range 6 {
		id := placement.DriveID(fmt.Sprintf("d%02d", i))
		dir := t.TempDir()
		d, err := local.Open(context.Background(), local.Config{Dir: dir, ID: driver.DriveID(id), ClusterID: "test", NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		h := &hooked{Driver: d, rig: r}
		r.ids = append(r.ids, id)
		r.pdrives = append(r.pdrives, placement.Drive{ID: id, Node: placement.NodeID(fmt.Sprintf("n%d", i)), Class: driver.ClassLocal})
		r.topo.drives[id] = drivertest.NewFaulty(h)
		r.dirs[id], r.hooked[id] = dir, h
	}
	now := func() time.Time { return time.Now().Add(time.Duration(r.skew.Load())) }
	containers := &MemContainers{}
	var err error
	if r.e, err = New(Config{Topology: r.topo, Containers: containers, StripeSize: 64 << 10, Now: now}); err != nil {
		t.Fatal(err)
	}
	if r.plain, err = New(Config{Topology: noHistory{r.topo}, Containers: containers, StripeSize: 64 << 10, Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := r.e.CreateContainer(t.Context(), "t", "c"); err != nil {
		t.Fatal(err)
	}
	return r
}

// useChain makes the last of maps (oldest first) current and the others
// its history.
func (r *migRig) useChain(maps []*placement.Map) {
	h := slices.Clone(maps)
	slices.Reverse(h)
	r.topo.use(h...)
}

// stored is what a migration test expects of the container: the bytes of
// each live key, how many separately encoded parts (shard files per drive)
// each has, and the keys that must read as deleted.
type stored struct {
	data  map[string][]byte
	parts map[string]int // 0 when inline
	gone  map[string]bool
}

func newStored() *stored {
	return &stored{data: map[string][]byte{}, parts: map[string]int{}, gone: map[string]bool{}}
}

// put stores data as key with metadata, in shard files unless inline.
func (s *stored) put(t *testing.T, r *migRig, key string, data []byte) {
	t.Helper()
	opts := PutOptions{Size: int64(len(data)), ContentType: "application/x-" + key, Metadata: map[string]string{"x-amz-meta-name": key}}
	if _, err := r.e.Put(t.Context(), "t", "c", key, bytes.NewReader(data), opts); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	s.data[key] = data
	s.parts[key] = 0
	if int64(len(data)) > DefaultInlineMax {
		s.parts[key] = 1
	}
	delete(s.gone, key)
}

// putMultipart stores key from two parts.
func (s *stored) putMultipart(t *testing.T, r *migRig, key string, seed uint64) {
	t.Helper()
	ctx := t.Context()
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{ContentType: "application/x-multi", Metadata: map[string]string{"x-amz-meta-parts": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	var cps []CompletePart
	for n, p := range [][]byte{randBytes(seed, MinPartSize), randBytes(seed+1, 1000)} {
		info, err := r.e.PutPart(ctx, "t", "c", key, id, n+1, bytes.NewReader(p), PutOptions{Size: int64(len(p))})
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, CompletePart{Number: n + 1, ETag: info.ETag})
		data = append(data, p...)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, cps, nil); err != nil {
		t.Fatal(err)
	}
	s.data[key], s.parts[key] = data, 2
}

func (s *stored) delete(t *testing.T, r *migRig, key string) {
	t.Helper()
	if err := r.e.Delete(t.Context(), "t", "c", key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
	delete(s.data, key)
	delete(s.parts, key)
	s.gone[key] = true
}

// heads returns Head of every live key.
func (s *stored) heads(t *testing.T, e *Engine) map[string]ArtifactInfo {
	t.Helper()
	infos := map[string]ArtifactInfo{}
	for key := range s.data {
		info, err := e.Head(t.Context(), "t", "c", key)
		if err != nil {
			t.Fatalf("Head(%q): %v", key, err)
		}
		infos[key] = info
	}
	return infos
}

func sameInfo(a, b ArtifactInfo) bool {
	return a.Key == b.Key && a.Version == b.Version && a.Size == b.Size && a.ETag == b.ETag &&
		a.ContentType == b.ContentType && a.Modified.Equal(b.Modified) && maps.Equal(a.Metadata, b.Metadata)
}

// check reads every key through e: the bytes, Head and List must be as
// stored (infos, as Head returned them before migrating), a multipart
// artifact keeps its parts, deleted keys stay deleted.
func (s *stored) check(t *testing.T, e *Engine, infos map[string]ArtifactInfo) {
	t.Helper()
	ctx := t.Context()
	for key, data := range s.data {
		if got, err := read(ctx, e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
			t.Errorf("read %s = %d bytes, %v; want the %d bytes put", key, len(got), err, len(data))
			continue
		}
		a, err := e.Open(ctx, "t", "c", key)
		if err != nil {
			t.Errorf("Open %s: %v", key, err)
			continue
		}
		if !sameInfo(a.Info, infos[key]) {
			t.Errorf("Head %s = %+v, want %+v", key, a.Info, infos[key])
		}
		if s.parts[key] == 2 {
			if off, n, ok := a.PartRange(2); a.PartCount() != 2 || !ok || off != MinPartSize || n != 1000 {
				t.Errorf("%s: PartCount %d, PartRange(2) = %d, %d, %v; want 2 parts, the second [%d, +1000)", key, a.PartCount(), off, n, ok, MinPartSize)
			}
		}
	}
	for key := range s.gone {
		if _, err := read(ctx, e, key, 0, -1); !errors.Is(err, ErrNoSuchArtifact) {
			t.Errorf("read deleted %s: %v, want ErrNoSuchArtifact", key, err)
		}
	}
	got := listed(t, e)
	if len(got) != len(s.data) {
		t.Errorf("List shows %d artifacts, want %d", len(got), len(s.data))
	}
	for key, info := range infos {
		if a, ok := got[key]; !ok || a.Version != info.Version || a.Size != info.Size || a.ETag != info.ETag || !a.Modified.Equal(info.Modified) {
			t.Errorf("List: %s = %+v, %v; want %+v", key, a, ok, info)
		}
	}
}

// checkPlaced checks every drive holds exactly what the current map
// places on it: one record of each key whose current set holds the drive
// (a tombstone for a deleted one), and one shard file per part of each
// such live key; nothing else, on old-only drives nothing at all.
func (s *stored) checkPlaced(t *testing.T, r *migRig) {
	t.Helper()
	ctx := t.Context()
	cur := r.topo.Map()
	for _, id := range r.ids {
		wantKeys := map[string]bool{}
		wantShards := 0
		for _, keys := range []map[string]bool{s.gone, boolKeys(s.data)} {
			for key := range keys {
				if slices.Contains(cur.Set(cur.PGOf("t", "c", key)), id) {
					wantKeys[key] = true
					wantShards += s.parts[key]
				}
			}
		}
		recs, err := r.topo.drives[id].ListRecords(ctx, indexPrefix("t", "c"), "", 10_000)
		if err != nil {
			t.Fatal(err)
		}
		gotKeys := map[string]bool{}
		for _, rec := range recs {
			gotKeys[rec.Key[len(indexPrefix("t", "c")):]] = true
		}
		if !maps.Equal(gotKeys, wantKeys) {
			t.Errorf("%s holds records of %v, want %v", id, slices.Sorted(maps.Keys(gotKeys)), slices.Sorted(maps.Keys(wantKeys)))
		}
		if files := shardFiles(t, r.dirs[id]); len(files) != wantShards {
			t.Errorf("%s holds %d shard files, want %d", id, len(files), wantShards)
		}
	}
}

func boolKeys(m map[string][]byte) map[string]bool {
	keys := map[string]bool{}
	for k := range m {
		keys[k] = true
	}
	return keys
}

// migrateAll walks the whole cluster with MigrateAll, limit keys a call,
// and returns the totals.
func migrateAll(t *testing.T, e *Engine, limit int) MigrateStats {
	t.Helper()
	var sum MigrateStats
	after := ""
	for range 1000 {
		st, err := e.MigrateAll(t.Context(), after, limit)
		if err != nil {
			t.Fatalf("MigrateAll(%q): %v", after, err)
		}
		if st.Keys > limit {
			t.Fatalf("MigrateAll examined %d keys, limit %d", st.Keys, limit)
		}
		sum.Keys += st.Keys
		sum.Moved += st.Moved
		sum.Removed += st.Removed
		sum.Healed += st.Healed
		sum.Copied += st.Copied
		sum.Failed += st.Failed
		if after = st.Next; after == "" {
			return sum
		}
	}
	t.Fatal("MigrateAll never finished")
	return sum
}

// migrateEach migrates every key of s, live or deleted, one by one.
func migrateEach(t *testing.T, e *Engine, s *stored) {
	t.Helper()
	for _, keys := range []map[string]bool{boolKeys(s.data), s.gone} {
		for key := range keys {
			if res, err := e.Migrate(t.Context(), "t", "c", key); err != nil {
				t.Errorf("Migrate(%s) = %+v, %v", key, res, err)
			}
		}
	}
}

// checkResidue checks that no drive of maps holds a record not placed
// for the current map.
func checkResidue(t *testing.T, e *Engine, maps []*placement.Map) {
	t.Helper()
	for _, m := range maps {
		if n, err := e.Residue(t.Context(), m); n != 0 || err != nil {
			t.Errorf("Residue(map epoch %d) = %d, %v; want 0", m.Epoch, n, err)
		}
	}
}

// migrateMaps are the map changes the migration tests go through, oldest
// map first.
var migrateMaps = []struct {
	name string
	maps func(t *testing.T, r *migRig) []*placement.Map
}{{
	name: "1+1 to 2+2 to 4+2",
	maps: func(t *testing.T, r *migRig) []*placement.Map {
		return []*placement.Map{
			r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1),
			r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 2),
			r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 3),
		}
	},
}, {
	// More PGs, and every old drive in the new sets: a set keeps a read
	// quorum of neither map while the records move unless they move in
	// order.
	name: "2+2 to 4+2 with more PGs",
	maps: func(t *testing.T, r *migRig) []*placement.Map {
		return []*placement.Map{
			r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 8, 1),
			r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 32, 2),
		}
	},
}, {
	name: "new sets avoid the old drives",
	maps: func(t *testing.T, r *migRig) []*placement.Map {
		cur := &placement.Map{Epoch: 2, Policy: placement.Policy{Data: 2, Parity: 2}, Drives: slices.Clone(r.pdrives)}
		for range 16 {
			cur.PGs = append(cur.PGs, []placement.DriveID{"d02", "d03", "d04", "d05"})
		}
		if err := cur.Validate(); err != nil {
			t.Fatal(err)
		}
		return []*placement.Map{r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1), cur}
	},
}, {
	// Slot 0 keeps its drive, whose record is placed in both sets.
	name: "2+2 set reshuffled, one slot kept",
	maps: func(t *testing.T, r *migRig) []*placement.Map {
		old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
		return []*placement.Map{old, r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
			return []placement.DriveID{s[0], "d04", s[1], s[2]}
		})}
	},
}, {
	// The current set serves the artifacts from the start: migration
	// only rebuilds the moved slot and cleans the drive it left.
	name: "2+2 set with one slot moved",
	maps: func(t *testing.T, r *migRig) []*placement.Map {
		old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
		return []*placement.Map{old, r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
			return []placement.DriveID{s[0], s[1], s[2], "d04"}
		})}
	},
}}

// TestMigrate stores artifacts under a map, grows the cluster keeping the
// older maps as history, migrates, and checks that reads see no
// difference, that nothing is left on the older placements and that every
// artifact reads without the history.
func TestMigrate(t *testing.T) {
	for _, tc := range migrateMaps {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			r := newMigRig(t)
			ms := tc.maps(t, r)
			s := newStored()
			r.useChain(ms[:1])
			s.put(t, r, "empty", nil)
			s.put(t, r, "inline", randBytes(1, 1000))
			s.put(t, r, "big", randBytes(2, 300<<10)) // 5 stripes of 64 KiB
			s.putMultipart(t, r, "multi", 3)
			s.put(t, r, "gone", randBytes(5, 300<<10))
			s.put(t, r, "over", randBytes(6, 1000))
			s.put(t, r, "dead", randBytes(7, 300<<10))
			s.delete(t, r, "dead") // a tombstone under the first map
			for i := 1; i < len(ms); i++ {
				r.useChain(ms[:i+1])
				s.put(t, r, fmt.Sprintf("later%d", i), randBytes(10+uint64(i), 200<<10))
			}
			// Under the current map: a delete and an overwrite of artifacts
			// the first map holds.
			s.delete(t, r, "gone")
			s.put(t, r, "over", randBytes(8, 2000))
			infos := s.heads(t, r.e)
			s.check(t, r.e, infos)

			sum := migrateAll(t, r.e, 3)
			if sum.Failed != 0 {
				t.Fatalf("MigrateAll: %+v", sum)
			}
			t.Logf("MigrateAll: %+v", sum)
			s.check(t, r.e, infos)
			checkResidue(t, r.e, ms)
			s.checkPlaced(t, r)

			// Idempotent: nothing left to do.
			if again := migrateAll(t, r.e, 1000); again.Moved != 0 || again.Removed != 0 || again.Healed != 0 || again.Failed != 0 {
				t.Errorf("second MigrateAll: %+v, want nothing done", again)
			}
			for _, key := range []string{"big", "multi", "gone", "never"} {
				res, err := r.e.Migrate(ctx, "t", "c", key)
				if err != nil || !res.AtHome || res.Moved || res.Removed != 0 || len(res.Healed) != 0 {
					t.Errorf("Migrate(%s) again = %+v, %v; want at home, nothing done", key, res, err)
				}
			}
			if res, _ := r.e.Migrate(ctx, "t", "c", "gone"); !res.Deleted {
				t.Errorf("Migrate(gone) = %+v, want Deleted", res)
			}

			// Drop the history: everything still reads, with or without
			// MapHistory.
			r.topo.use(ms[len(ms)-1])
			s.check(t, r.e, infos)
			s.check(t, r.plain, infos)
			s.checkPlaced(t, r)
		})
	}
}

// TestMigrateEveryStepReadable checks after every record write of a
// migration that the artifact reads back, so that a crash at any point
// leaves it readable from one of the maps; also when the migration fails
// for want of a write quorum in the new set and is rolled back.
func TestMigrateEveryStepReadable(t *testing.T) {
	for _, tc := range migrateMaps {
		for _, failNew := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/new drives failing %v", tc.name, failNew), func(t *testing.T) {
				ctx := t.Context()
				r := newMigRig(t)
				ms := tc.maps(t, r)
				s := newStored()
				r.useChain(ms[:1])
				s.put(t, r, "inline", randBytes(1, 1000))
				s.put(t, r, "big", randBytes(2, 300<<10))
				r.useChain(ms)
				infos := s.heads(t, r.e)
				if failNew {
					// The drives no older map has refuse records.
					for _, id := range r.ids {
						if !slices.ContainsFunc(ms[:len(ms)-1], func(m *placement.Map) bool { _, ok := m.Drive(id); return ok }) {
							r.hooked[id].failPut.Store(true)
						}
					}
				}
				for key, data := range s.data {
					steps := 0
					check := func() {
						steps++
						// A new context: ctx is only for the test's goroutine.
						got, err := read(context.WithoutCancel(ctx), r.e, key, 0, -1)
						if err != nil || !bytes.Equal(got, data) {
							t.Errorf("%s after record write %d: read = %d bytes, %v", key, steps, len(got), err)
						}
					}
					r.hook.Store(&check)
					res, err := r.e.Migrate(ctx, "t", "c", key)
					r.hook.Store(nil)
					t.Logf("Migrate(%s) = %+v, %v after %d record writes", key, res, err, steps)
					if err != nil && !errors.Is(err, ErrWriteQuorum) {
						t.Errorf("Migrate(%s): %v, want success or ErrWriteQuorum", key, err)
					}
				}
				s.check(t, r.e, infos)
				if failNew {
					// The failed moves left nothing behind: retried with the
					// drives back, migration completes, and Migrate gives
					// the drives that missed a move what they lack.
					for _, h := range r.hooked {
						h.failPut.Store(false)
					}
					if sum := migrateAll(t, r.e, 1000); sum.Failed != 0 {
						t.Fatalf("MigrateAll: %+v", sum)
					}
					migrateEach(t, r.e, s)
					s.check(t, r.e, infos)
				}
				s.checkPlaced(t, r)
				checkResidue(t, r.e, ms)
			})
		}
	}
}

// TestMigrateConcurrentWrites migrates keys while they are overwritten and
// deleted under the current map: the writes win, whatever the order, and
// nothing of the older map's versions is left.
func TestMigrateConcurrentWrites(t *testing.T) {
	for _, tc := range migrateMaps[:3] {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			r := newMigRig(t)
			ms := tc.maps(t, r)
			s := newStored()
			r.useChain(ms[:1])
			const n = 12
			for i := range n {
				size := 1000
				if i%2 == 1 {
					size = 200 << 10
				}
				s.put(t, r, fmt.Sprintf("k%02d", i), randBytes(uint64(100+i), size))
			}
			r.useChain(ms)
			for _, f := range r.topo.drives {
				f.SetLatency(200 * time.Microsecond)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex // guards s
			for i := range n {
				key := fmt.Sprintf("k%02d", i)
				wg.Go(func() {
					// Amid a write the current set may serve nothing yet:
					// Migrate then fails, leaving the key for the next pass.
					if _, err := r.e.Migrate(ctx, "t", "c", key); err != nil && !errors.Is(err, ErrReadQuorum) {
						t.Errorf("Migrate(%s): %v", key, err)
					}
				})
				wg.Go(func() {
					if i%3 == 2 {
						if err := r.e.Delete(ctx, "t", "c", key); err != nil {
							t.Errorf("Delete(%s): %v", key, err)
						}
						mu.Lock()
						delete(s.data, key)
						delete(s.parts, key)
						s.gone[key] = true
						mu.Unlock()
						return
					}
					data := randBytes(uint64(200+i), 150<<10+i)
					if _, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(len(data))}); err != nil {
						t.Errorf("Put(%s): %v", key, err)
					}
					mu.Lock()
					s.data[key], s.parts[key] = data, 1
					mu.Unlock()
				})
			}
			wg.Wait()
			for _, f := range r.topo.drives {
				f.SetLatency(0)
			}
			// A concurrent write may have come first, leaving the older
			// set to clean: a walk finishes it, container by container.
			var sum MigrateStats
			after := ""
			for {
				st, err := r.e.MigrateContainer(ctx, "t", "c", after, 5)
				if err != nil || st.Failed != 0 {
					t.Fatalf("MigrateContainer(%q) = %+v, %v", after, st, err)
				}
				sum.Moved += st.Moved
				if after = st.Next; after == "" {
					break
				}
			}
			if sum.Moved != 0 {
				t.Errorf("MigrateContainer after the writes moved %d keys, want 0: the writes went to the current set", sum.Moved)
			}
			infos := s.heads(t, r.e)
			s.check(t, r.e, infos)
			for _, m := range ms {
				if got, err := r.e.ContainerResidue(ctx, m, "t", "c"); got != 0 || err != nil {
					t.Errorf("ContainerResidue(map epoch %d) = %d, %v; want 0", m.Epoch, got, err)
				}
			}
			r.topo.use(ms[len(ms)-1])
			s.check(t, r.plain, infos)
			s.checkPlaced(t, r)
		})
	}
}

// TestMigrateDriveOffline migrates with a drive offline: an older map's
// drive (the artifacts move, rebuilt from parity where needed, and the
// drive is cleaned once back), or two of the new drives (the moves fail
// and leave the artifacts where they were).
func TestMigrateDriveOffline(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maps    int // index in migrateMaps
		offline []placement.DriveID
		// moved reports whether the moves succeed with the drives down.
		moved bool
	}{
		{name: "2+2 to 4+2, an old drive down", maps: 1, offline: []placement.DriveID{"d01"}, moved: true},
		{name: "1+1 to 2+2 elsewhere, an old drive down", maps: 2, offline: []placement.DriveID{"d00"}, moved: true},
		{name: "2+2 to 4+2, two new drives down", maps: 1, offline: []placement.DriveID{"d04", "d05"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			r := newMigRig(t)
			ms := migrateMaps[tc.maps].maps(t, r)
			s := newStored()
			r.useChain(ms[:1])
			s.put(t, r, "inline", randBytes(1, 1000))
			for i := range 6 {
				s.put(t, r, fmt.Sprintf("big%d", i), randBytes(uint64(2+i), 300<<10))
			}
			s.put(t, r, "dead", randBytes(9, 1000))
			s.delete(t, r, "dead")
			r.useChain(ms)
			infos := s.heads(t, r.e)
			for _, id := range tc.offline {
				r.topo.drives[id].SetOffline(true)
			}
			// A walk can miss keys only a down drive lists: migrate each.
			for _, key := range slices.Sorted(maps.Keys(s.data)) {
				res, err := r.e.Migrate(ctx, "t", "c", key)
				if res.Moved != tc.moved {
					t.Errorf("Migrate(%s) = %+v, %v; want moved %v", key, res, err, tc.moved)
				}
				if !tc.moved && !errors.Is(err, ErrWriteQuorum) {
					t.Errorf("Migrate(%s): %v, want ErrWriteQuorum", key, err)
				}
			}
			if st, err := r.e.MigrateAll(ctx, "", 1000); err == nil {
				t.Errorf("MigrateAll with drives down = %+v, want an error", st)
			}
			s.check(t, r.e, infos)
			if _, err := r.e.Residue(ctx, ms[0]); tc.moved && !errors.Is(err, ErrReadQuorum) {
				t.Errorf("Residue with an old drive down: %v, want ErrReadQuorum", err)
			}

			for _, id := range tc.offline {
				r.topo.drives[id].SetOffline(false)
			}
			if n, err := r.e.Residue(ctx, ms[0]); n == 0 || err != nil {
				t.Errorf("Residue with the drive back = %d, %v; want some", n, err)
			}
			if sum := migrateAll(t, r.e, 1000); sum.Failed != 0 {
				t.Fatalf("MigrateAll: %+v", sum)
			}
			migrateEach(t, r.e, s)
			s.check(t, r.e, infos)
			checkResidue(t, r.e, ms)
			r.topo.use(ms[len(ms)-1])
			s.check(t, r.plain, infos)
			s.checkPlaced(t, r)
		})
	}
}
