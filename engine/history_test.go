package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// histTopo is a Topology over in-memory drives whose map a test switches,
// remembering the maps before it (MapHistory).
type histTopo struct {
	drives map[placement.DriveID]*drivertest.Faulty

	mu      sync.Mutex                 // guards maps and removed
	maps    []*placement.Map           // the current map, then older ones newest first
	removed map[placement.DriveID]bool // drives whose node left the cluster (driver.ErrRemoved)
}

// remove makes drive id one of a node removed from the cluster.
func (h *histTopo) remove(id placement.DriveID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.removed == nil {
		h.removed = map[placement.DriveID]bool{}
	}
	h.removed[id] = true
}

var (
	_ Topology   = (*histTopo)(nil)
	_ MapHistory = (*histTopo)(nil)
)

func (h *histTopo) Map() *placement.Map {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.maps) == 0 {
		return nil // before the first map, as cluster's Topology
	}
	return h.maps[0]
}

func (h *histTopo) OlderMaps() []*placement.Map {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.maps[1:])
}

func (h *histTopo) Drive(id placement.DriveID) (driver.Driver, error) {
	h.mu.Lock()
	gone := h.removed[id]
	h.mu.Unlock()
	if gone {
		return nil, fmt.Errorf("%w: %s", driver.ErrRemoved, id)
	}
	d, ok := h.drives[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownDrive, id)
	}
	return d, nil
}

// use makes maps[0] the current map and the rest its history.
func (h *histTopo) use(maps ...*placement.Map) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.maps = maps
}

// noHistory is the same topology without MapHistory.
type noHistory struct{ h *histTopo }

func (n noHistory) Map() *placement.Map { return n.h.Map() }

func (n noHistory) Drive(id placement.DriveID) (driver.Driver, error) { return n.h.Drive(id) }

// histRig is two Engines over the same six in-memory drives d00…d05 and
// containers: e sees the map history, plain does not.
type histRig struct {
	topo     *histTopo
	e, plain *Engine
	ids      []placement.DriveID
	pdrives  []placement.Drive
	skew     atomic.Int64   // nanoseconds added to the clock
	conts    *MemContainers // the containers of e and plain
}

func newHistRig(t *testing.T) *histRig {
	t.Helper()
	r := &histRig{topo: &histTopo{drives: map[placement.DriveID]*drivertest.Faulty{}}}
	for i := range 6 {
		id := placement.DriveID(fmt.Sprintf("d%02d", i))
		r.ids = append(r.ids, id)
		r.pdrives = append(r.pdrives, placement.Drive{ID: id, Node: placement.NodeID(fmt.Sprintf("n%d", i)), Class: driver.ClassLocal})
		r.topo.drives[id] = drivertest.NewFaulty(&drivertest.Mem{MemID: driver.DriveID(id)})
	}
	now := func() time.Time { return time.Now().Add(time.Duration(r.skew.Load())) }
	containers := &MemContainers{}
	r.conts = containers
	var err error
	r.e, err = New(Config{Topology: r.topo, Containers: containers, StripeSize: 64 << 10, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	r.plain, err = New(Config{Topology: noHistory{r.topo}, Containers: containers, StripeSize: 64 << 10, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.e.CreateContainer(t.Context(), "t", "c"); err != nil {
		t.Fatal(err)
	}
	return r
}

// newMap is placement.NewMap over the first n drives.
func (r *histRig) newMap(t *testing.T, n int, p placement.Policy, pgs int, epoch placement.Epoch) *placement.Map {
	t.Helper()
	m, err := placement.NewMap(r.pdrives[:n], p, pgs, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// olderAndCurrent returns the two maps of a migration: the older one, 1+1
// on d00 and d01 (epoch 1), and the current one, 2+2 on d02..d05 (epoch 2).
func (r *histRig) olderAndCurrent(t *testing.T) (old, cur *placement.Map) {
	t.Helper()
	old = r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
	cur, err := placement.NewMap(r.pdrives[2:6], placement.Policy{Data: 2, Parity: 2}, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	return old, cur
}

// remap returns a map over the first n drives with old's policy and PG
// count whose PG sets are set(old's set).
func (r *histRig) remap(t *testing.T, old *placement.Map, n int, epoch placement.Epoch, set func([]placement.DriveID) []placement.DriveID) *placement.Map {
	t.Helper()
	m := &placement.Map{Epoch: epoch, Policy: old.Policy, Drives: slices.Clone(r.pdrives[:n])}
	for pg := range old.PGCount() {
		m.PGs = append(m.PGs, set(slices.Clone(old.Set(uint32(pg)))))
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

func (r *histRig) put(t *testing.T, key string, data []byte) ArtifactInfo {
	t.Helper()
	info, err := r.e.Put(t.Context(), "t", "c", key, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// read returns bytes [off, off+length) of key as e serves them; length -1
// means to the end.
func read(ctx context.Context, e *Engine, key string, off, length int64) ([]byte, error) {
	a, err := e.Open(ctx, "t", "c", key)
	if err != nil {
		return nil, err
	}
	if length < 0 {
		length = a.Info.Size - off
	}
	var buf bytes.Buffer
	err = a.WriteRange(ctx, &buf, off, length)
	return buf.Bytes(), err
}

// listed returns every artifact List shows, by key, failing on a key
// listed twice.
func listed(t *testing.T, e *Engine) map[string]ArtifactInfo {
	t.Helper()
	res, err := e.List(t.Context(), "t", "c", ListOptions{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	got := map[string]ArtifactInfo{}
	for _, a := range res.Artifacts {
		if _, dup := got[a.Key]; dup {
			t.Errorf("List shows %q twice", a.Key)
		}
		got[a.Key] = a
	}
	return got
}

// TestMapHistoryReads writes artifacts under one map, moves to another
// keeping the first as history, and checks every read path and that
// writes under the new map win.
func TestMapHistoryReads(t *testing.T) {
	type maps struct{ old, cur *placement.Map }
	for _, tc := range []struct {
		name string
		maps func(t *testing.T, r *histRig) maps
		// plainErr is what an Engine without the history gets reading an
		// artifact written under the old map (an empty one needs no shard,
		// so if plainEmpty it reads fine).
		plainErr   error
		plainEmpty bool
		// heal is what Heal of that artifact repairs under the new map.
		heal []int
	}{{
		// Every 2+2 set of 4 drives holds the two old drives, whose
		// records are the old map's.
		name: "1+1 on 2 drives to 2+2 on 4",
		maps: func(t *testing.T, r *histRig) maps {
			return maps{r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1), r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 2)}
		},
		plainErr: ErrReadQuorum,
	}, {
		name: "2+2 on 4 drives to 4+2 on 6",
		maps: func(t *testing.T, r *histRig) maps {
			return maps{r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1), r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 2)}
		},
		plainErr: ErrReadQuorum,
	}, {
		name: "PG count changes",
		maps: func(t *testing.T, r *histRig) maps {
			return maps{r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 8, 1), r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 64, 2)}
		},
		plainErr: ErrReadQuorum,
	}, {
		// The new sets share no drive with the old ones: the current set
		// holds nothing at all of the old artifacts.
		name: "new sets avoid the old drives",
		maps: func(t *testing.T, r *histRig) maps {
			old := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
			cur := &placement.Map{Epoch: 2, Policy: placement.Policy{Data: 2, Parity: 2}, Drives: slices.Clone(r.pdrives)}
			for range 16 {
				cur.PGs = append(cur.PGs, []placement.DriveID{"d02", "d03", "d04", "d05"})
			}
			if err := cur.Validate(); err != nil {
				t.Fatal(err)
			}
			return maps{old, cur}
		},
		plainErr: ErrNoSuchArtifact,
	}, {
		// Same policy, one slot kept: the current set holds the old
		// version on one drive, fewer than k = 2, and its other old drives
		// sit in other slots.
		name: "2+2 set reshuffled, one slot kept",
		maps: func(t *testing.T, r *histRig) maps {
			old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
			return maps{old, r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
				return []placement.DriveID{s[0], "d04", s[1], s[2]}
			})}
		},
		plainErr:   ErrReadQuorum,
		plainEmpty: true,
	}, {
		// Same policy, one slot moved to a new drive: the current set
		// holds the old version on three drives and serves it degraded;
		// Heal rebuilds the moved slot.
		name: "2+2 set with one slot moved",
		maps: func(t *testing.T, r *histRig) maps {
			old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
			return maps{old, r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
				return []placement.DriveID{s[0], s[1], s[2], "d04"}
			})}
		},
		heal: []int{3},
	}} {
		for _, size := range []int{0, 1000, 300 << 10} { // empty, inline, 5 stripes of shard files
			t.Run(fmt.Sprintf("%s/%d bytes", tc.name, size), func(t *testing.T) {
				ctx := t.Context()
				r := newHistRig(t)
				ms := tc.maps(t, r)
				r.topo.use(ms.old)
				old, over, gone := randBytes(1, size), randBytes(2, size+1), randBytes(3, size+2)
				oldInfo := r.put(t, "old", old)
				r.put(t, "over", over)
				r.put(t, "gone", gone)
				r.put(t, "healed", old)

				r.topo.use(ms.cur, ms.old)
				if got, err := read(ctx, r.e, "old", 0, -1); err != nil || !bytes.Equal(got, old) {
					t.Fatalf("read old = %d bytes, %v; want the %d bytes put under the old map", len(got), err, len(old))
				}
				off, length := int64(size/3), int64(size/3)
				if got, err := read(ctx, r.e, "old", off, length); err != nil || !bytes.Equal(got, old[off:off+length]) {
					t.Fatalf("read old [%d, +%d) = %d bytes, %v", off, length, len(got), err)
				}
				if info, err := r.e.Head(ctx, "t", "c", "old"); err != nil || info.ETag != oldInfo.ETag || info.Size != oldInfo.Size || info.Version != oldInfo.Version {
					t.Fatalf("Head old = %+v, %v; want %+v", info, err, oldInfo)
				}
				wantErr := tc.plainErr
				if size == 0 && tc.plainEmpty {
					wantErr = nil
				}
				if _, err := read(ctx, r.plain, "old", 0, -1); !errors.Is(err, wantErr) {
					t.Errorf("without history: read old: got %v, want %v", err, wantErr)
				}
				if _, err := r.e.Copy(ctx, "t", "c", "old", "c", "copy", CopyOptions{}); err != nil {
					t.Fatalf("Copy old: %v", err)
				}
				if got, err := read(ctx, r.e, "copy", 0, -1); err != nil || !bytes.Equal(got, old) {
					t.Fatalf("read copy = %d bytes, %v", len(got), err)
				}
				if got, err := r.e.Heal(ctx, "t", "c", "healed"); err != nil || !slices.Equal(got, tc.heal) {
					t.Fatalf("Heal healed = %v, %v; want %v", got, err, tc.heal)
				}
				if got, err := read(ctx, r.e, "healed", 0, -1); err != nil || !bytes.Equal(got, old) {
					t.Fatalf("read healed = %d bytes, %v", len(got), err)
				}

				// Writes go to the new map and win over the old one.
				fresh, newer := randBytes(4, size+3), randBytes(5, size+4)
				r.put(t, "fresh", fresh)
				r.put(t, "over", newer)
				if err := r.e.Delete(ctx, "t", "c", "gone"); err != nil {
					t.Fatal(err)
				}
				for _, c := range []struct {
					key  string
					want []byte
					err  error
				}{
					{"old", old, nil},
					{"fresh", fresh, nil},
					{"over", newer, nil},
					{"gone", nil, ErrNoSuchArtifact},
				} {
					got, err := read(ctx, r.e, c.key, 0, -1)
					if !errors.Is(err, c.err) || (c.err == nil && !bytes.Equal(got, c.want)) {
						t.Errorf("read %s = %d bytes, %v; want %d bytes, %v", c.key, len(got), err, len(c.want), c.err)
					}
				}
				// What the new map wrote needs no history.
				if got, err := read(ctx, r.plain, "fresh", 0, -1); err != nil || !bytes.Equal(got, fresh) {
					t.Errorf("without history: read fresh = %d bytes, %v", len(got), err)
				}
				if _, err := r.e.Head(ctx, "t", "c", "gone"); !errors.Is(err, ErrNoSuchArtifact) {
					t.Errorf("Head gone: %v, want ErrNoSuchArtifact", err)
				}
				want := map[string]int64{"old": int64(size), "copy": int64(size), "healed": int64(size), "fresh": int64(len(fresh)), "over": int64(len(newer))}
				got := listed(t, r.e)
				if len(got) != len(want) {
					t.Errorf("List shows %d artifacts, want %d: %v", len(got), len(want), got)
				}
				for k, n := range want {
					if a, ok := got[k]; !ok || a.Size != n {
						t.Errorf("List: %s = %+v, %v; want %d bytes", k, a, ok, n)
					}
				}

				// Past the tombstone's grace Heal may purge it, but never
				// so that the old map's version comes back.
				r.skew.Store(int64(2 * TombstoneGrace))
				if _, err := r.e.Heal(ctx, "t", "c", "gone"); err != nil {
					t.Fatalf("Heal gone: %v", err)
				}
				if _, err := read(ctx, r.e, "gone", 0, -1); !errors.Is(err, ErrNoSuchArtifact) {
					t.Errorf("after heal past the grace: read gone: %v, want ErrNoSuchArtifact", err)
				}
				if _, ok := listed(t, r.e)["gone"]; ok {
					t.Error("after heal past the grace: List shows gone")
				}
			})
		}
	}
}

// TestMapHistoryChain grows the cluster twice, 1+1 → 2+2 → 4+2, writing
// under each map, including a multipart artifact under the first.
func TestMapHistoryChain(t *testing.T) {
	ctx := t.Context()
	r := newHistRig(t)
	m1 := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
	m2 := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 2)
	m3 := r.newMap(t, 6, placement.Policy{Data: 4, Parity: 2}, 16, 3)
	want := map[string][]byte{}

	r.topo.use(m1)
	want["a"] = randBytes(10, 300<<10)
	r.put(t, "a", want["a"])
	want["small"] = randBytes(11, 100)
	r.put(t, "small", want["small"])
	id, err := r.e.CreateUpload(ctx, "t", "c", "multi", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := randBytes(12, MinPartSize), randBytes(13, 1000)
	var cps []CompletePart
	for n, p := range [][]byte{p1, p2} {
		info, err := r.e.PutPart(ctx, "t", "c", "multi", id, n+1, bytes.NewReader(p), PutOptions{Size: int64(len(p))})
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, CompletePart{Number: n + 1, ETag: info.ETag})
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", "multi", id, cps, nil); err != nil {
		t.Fatal(err)
	}
	want["multi"] = append(slices.Clone(p1), p2...)

	r.topo.use(m2, m1)
	want["b"] = randBytes(14, 200<<10)
	r.put(t, "b", want["b"])

	r.topo.use(m3, m2, m1)
	want["c"] = randBytes(15, 500<<10)
	r.put(t, "c", want["c"])

	check := func(t *testing.T, e *Engine, want map[string][]byte, missing map[string]error) {
		t.Helper()
		for k, data := range want {
			if got, err := read(ctx, e, k, 0, -1); err != nil || !bytes.Equal(got, data) {
				t.Errorf("read %s = %d bytes, %v; want %d bytes", k, len(got), err, len(data))
			}
		}
		for k, wantErr := range missing {
			if _, err := read(ctx, e, k, 0, -1); !errors.Is(err, wantErr) {
				t.Errorf("read %s: %v, want %v", k, err, wantErr)
			}
		}
	}
	check(t, r.e, want, nil)
	if got, err := r.e.Head(ctx, "t", "c", "multi"); err != nil || got.Size != int64(len(want["multi"])) {
		t.Errorf("Head multi = %+v, %v", got, err)
	}
	a, err := r.e.Open(ctx, "t", "c", "multi")
	if err != nil {
		t.Fatal(err)
	}
	if off, n, ok := a.PartRange(2); !ok || off != MinPartSize || n != 1000 {
		t.Errorf("PartRange(2) = %d, %d, %v", off, n, ok)
	}
	if got := listed(t, r.e); len(got) != len(want) {
		t.Errorf("List shows %v, want %d artifacts", got, len(want))
	}
	// Without history only what the current map wrote is readable.
	check(t, r.plain, map[string][]byte{"c": want["c"]}, map[string]error{"a": ErrReadQuorum, "b": ErrReadQuorum, "multi": ErrReadQuorum})

	// A history that no longer reaches the first map.
	r.topo.use(m3, m2)
	check(t, r.e, map[string][]byte{"b": want["b"], "c": want["c"]}, map[string]error{"a": ErrReadQuorum, "small": ErrReadQuorum, "multi": ErrReadQuorum})

	r.topo.use(m3, m2, m1)
	if err := r.e.Delete(ctx, "t", "c", "a"); err != nil {
		t.Fatal(err)
	}
	delete(want, "a")
	want["b"] = randBytes(16, 10)
	r.put(t, "b", want["b"])
	check(t, r.e, want, map[string]error{"a": ErrNoSuchArtifact, "never": ErrNoSuchArtifact})
	if got := listed(t, r.e); len(got) != len(want) {
		t.Errorf("List shows %v, want %d artifacts", got, len(want))
	}
}

// TestMapHistoryQuorum checks that only a current set that reached read
// quorum lets a read fall back, and that an older set must reach its own.
func TestMapHistoryQuorum(t *testing.T) {
	for _, tc := range []struct {
		name    string
		avoid   bool     // the 2+2 sets avoid the old drives d00, d01
		offline []string // drives down when reading
		key     string
		want    error
	}{
		{name: "all up", key: "old"},
		{name: "missing everywhere", key: "never", want: ErrNoSuchArtifact},
		{name: "current set at quorum", offline: []string{"d03"}, key: "old"},
		// d00 alone could serve the 1+1 set, but the current set missed
		// quorum: it might hold a tombstone.
		{name: "current set below quorum", offline: []string{"d01", "d02", "d03"}, key: "old", want: ErrReadQuorum},
		{name: "current set below quorum, key only there", offline: []string{"d01", "d02", "d03"}, key: "new", want: ErrReadQuorum},
		{name: "older set below quorum", avoid: true, offline: []string{"d00", "d01"}, key: "old", want: ErrReadQuorum},
		{name: "older set below quorum, key missing", avoid: true, offline: []string{"d00", "d01"}, key: "never", want: ErrReadQuorum},
		{name: "older set down, key in current set", avoid: true, offline: []string{"d00", "d01"}, key: "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHistRig(t)
			m1 := r.newMap(t, 2, placement.Policy{Data: 1, Parity: 1}, 16, 1)
			m2 := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 2)
			if tc.avoid {
				for pg := range m2.PGs {
					m2.PGs[pg] = []placement.DriveID{"d02", "d03", "d04", "d05"}
				}
				m2.Drives = slices.Clone(r.pdrives)
			}
			r.topo.use(m1)
			data := randBytes(20, 1000)
			r.put(t, "old", data)
			r.topo.use(m2, m1)
			r.put(t, "new", data)
			for _, id := range tc.offline {
				r.topo.drives[placement.DriveID(id)].SetOffline(true)
			}
			got, err := read(t.Context(), r.e, tc.key, 0, -1)
			if !errors.Is(err, tc.want) || (tc.want == nil && !bytes.Equal(got, data)) {
				t.Errorf("read %s = %d bytes, %v; want %v", tc.key, len(got), err, tc.want)
			}
		})
	}
}

// TestMapHistoryStrayShard checks that a drive whose record of the version
// is placed in another slot is never read: its shard file has the same name
// and valid checksums but another shard's bytes.
func TestMapHistoryStrayShard(t *testing.T) {
	ctx := t.Context()
	r := newHistRig(t)
	old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	// Slots 0 and 1 keep their drives; slot 2 gets the drive of old slot 3.
	cur := r.remap(t, old, 5, 2, func(s []placement.DriveID) []placement.DriveID {
		return []placement.DriveID{s[0], s[1], s[3], "d04"}
	})
	r.topo.use(old)
	data := randBytes(30, 300<<10)
	r.put(t, "k", data)
	r.topo.use(cur, old)
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read = %d bytes, %v", len(got), err)
	}
	// Lose shard 0's file: the current set keeps two records (k), so it
	// serves the read, and must not take slot 2's file as shard 2.
	ikey := indexPrefix("t", "c") + "k"
	d := r.topo.drives[cur.Set(cur.PGOf("t", "c", "k"))[0]]
	raw, err := d.GetRecord(ctx, ikey)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := unmarshalRecord(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteShard(ctx, shardOf("t", "c", "k", rec.PG, rec.Parts[0].DataID)); err != nil {
		t.Fatal(err)
	}
	if got, err := read(ctx, r.e, "k", 0, -1); !errors.Is(err, ErrReadQuorum) && !bytes.Equal(got, data) {
		t.Fatalf("read with shard 0 lost = %d bytes (md5 %s), %v; want the bytes put or ErrReadQuorum", len(got), md5hex(got), err)
	}
}

// TestMapHistoryHealLeavesOtherPlacement checks that healing an artifact
// found in an older map's set leaves alone a newer record placed for
// another set (a write under the current map that landed meanwhile).
func TestMapHistoryHealLeavesOtherPlacement(t *testing.T) {
	ctx := t.Context()
	r := newHistRig(t)
	old := r.newMap(t, 4, placement.Policy{Data: 2, Parity: 2}, 16, 1)
	cur := &placement.Map{Epoch: 2, Policy: placement.Policy{Data: 1, Parity: 1}, Drives: slices.Clone(r.pdrives)}
	for range 16 {
		cur.PGs = append(cur.PGs, []placement.DriveID{"d04", "d05"})
	}
	if err := cur.Validate(); err != nil {
		t.Fatal(err)
	}
	r.topo.use(old)
	data := randBytes(40, 1000)
	r.put(t, "k", data)
	r.topo.use(cur, old)

	// Slot 3's drive lost its record and now holds a newer one of another
	// placement.
	ikey := indexPrefix("t", "c") + "k"
	d := r.topo.drives[old.Set(old.PGOf("t", "c", "k"))[3]]
	if err := d.DeleteRecord(ctx, ikey, driver.Version{}); err != nil {
		t.Fatal(err)
	}
	v, now := r.e.newVersion()
	other := record{Version: v, Deleted: true, Modified: now.UnixNano(), Data: 1, Parity: 1, StripeSize: 64 << 10, PG: 99}
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: ikey, Version: v, Data: other.marshal()}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.Heal(ctx, "t", "c", "k"); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	if got, err := d.GetRecord(ctx, ikey); err != nil || got.Version != v {
		t.Errorf("after Heal the other placement's record is %v, %v; want version %v kept", got.Version, err, v)
	}
	if got, err := read(ctx, r.e, "k", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read = %d bytes, %v", len(got), err)
	}
}
