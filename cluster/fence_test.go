package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/driver/peer"
	"github.com/vaultaire/vaultaire/placement"
)

var fenceSecret = []byte("fence-test-secret-0123456789abcdef")

// fenceFixture is a Store whose map is at epoch 2 (6 drives, then a 7th),
// a Fence over it and one memory drive served through a real peer Server
// wrapped by the Fence, with a peer Client to it.
type fenceFixture struct {
	s      *Store
	f      *Fence
	mem    *drivertest.Mem
	client *peer.Client
	moved  uint32 // a PG whose set differs between epochs 1 and 2
	kept   uint32 // a PG whose set is the same in both
}

// history is a fixed map history: a Fence's view of a Store.
type history []*placement.Map // newest first

func (h history) Map() *placement.Map         { return h[0] }
func (h history) OlderMaps() []*placement.Map { return h[1:] }

func newFenceFixture(t *testing.T, keep bool) *fenceFixture {
	t.Helper()
	ctx := t.Context()
	s := newStore(t)
	var ds []MemberDrive
	for i := range 6 {
		ds = append(ds, MemberDrive{ID: fmt.Sprintf("d%d", i), Class: "local"})
	}
	if err := s.RegisterNode(ctx, NodeInfo{Name: "a", Drives: ds}); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterNode(ctx, NodeInfo{Name: "b", Drives: []MemberDrive{{ID: "d6", Class: "local"}}}); err != nil {
		t.Fatal(err)
	}
	cur, old := s.Map(), s.OlderMaps()
	if cur.Epoch != 2 || len(old) != 1 || old[0].Epoch != 1 {
		t.Fatalf("maps: current %d, older %v; want 2 and [1]", cur.Epoch, old)
	}
	fx := &fenceFixture{s: s, f: NewFence(nil), mem: &drivertest.Mem{MemID: "d0"}}
	fx.f.Use(s)
	srv, err := peer.NewServer(peer.ServerConfig{
		Drives: peer.DriveMap(map[driver.DriveID]driver.Driver{"d0": fx.f.Wrap(fx.mem)}),
		Secret: fenceSecret,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	if fx.client, err = peer.NewClient(peer.ClientConfig{Addr: ts.Listener.Addr().String(), Drive: "d0", Secret: fenceSecret}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fx.client.CloseIdleConnections)
	if !keep {
		return fx
	}
	m2 := *old[0]
	m2.Epoch = 2
	m2.PGs = slices.Clone(m2.PGs)
	fx.moved, fx.kept = 3, 4
	m2.PGs[fx.moved] = slices.Clone(m2.PGs[fx.moved])
	m2.PGs[fx.moved][0], m2.PGs[fx.moved][1] = m2.PGs[fx.moved][1], m2.PGs[fx.moved][0]
	var src mapSource = history{&m2, old[0]}
	fx.f.src.Store(&src)
	return fx
}

// TestFenceRefusesStaleWrites writes through the RPC and to the drive
// directly under each epoch: a write planned under epoch 1 into a PG the
// second map moved is refused (ErrStaleEpoch, which the engine takes as
// an offline drive), counted and leaves nothing behind; the others land.
func TestFenceRefusesStaleWrites(t *testing.T) {
	fx := newFenceFixture(t, true)
	ctx := t.Context()
	tests := []struct {
		name   string
		fence  *peer.Fence
		pg     uint32
		refuse bool
	}{
		{"no fence", nil, fx.moved, false},
		{"current epoch", &peer.Fence{Epoch: 2}, fx.moved, false},
		{"old epoch, PG kept its set", &peer.Fence{Epoch: 1}, fx.kept, false},
		{"old epoch, PG moved", &peer.Fence{Epoch: 1}, fx.moved, true},
		{"dropped epoch", &peer.Fence{Epoch: 0}, fx.kept, true},
	}
	for i, tt := range tests {
		for _, via := range []struct {
			name string
			d    driver.Driver
		}{{"rpc", fx.client}, {"local", fx.f.Wrap(fx.mem)}} {
			t.Run(tt.name+"/"+via.name, func(t *testing.T) {
				wctx := ctx
				if tt.fence != nil {
					f := *tt.fence
					f.PG = tt.pg
					wctx = peer.WithFence(ctx, f)
				}
				before := fx.f.Refused()
				key := fmt.Sprintf("k%d-%s", i, via.name)
				_, _, recErr := via.d.PutRecord(wctx, driver.Record{Key: key, Version: driver.Version{1}, Data: []byte("v")})
				sh := driver.Shard{PG: tt.pg, Name: fmt.Sprintf("%032x", i*2+len(via.name))}
				shErr := writeShard(wctx, via.d, sh, []byte("shard bytes"))
				_, getRec := fx.mem.GetRecord(ctx, key)
				_, getSh := fx.mem.ReadShard(ctx, sh, 0, -1)
				if !tt.refuse {
					if recErr != nil || shErr != nil || getRec != nil || getSh != nil {
						t.Fatalf("put record %v, write shard %v, stored: record %v, shard %v; want all nil", recErr, shErr, getRec, getSh)
					}
					if got := fx.f.Refused() - before; got != 0 {
						t.Fatalf("refused %d writes, want 0", got)
					}
					return
				}
				for _, err := range []error{recErr, shErr} {
					if !errors.Is(err, peer.ErrStaleEpoch) {
						t.Fatalf("write: %v, want ErrStaleEpoch", err)
					}
					if via.name == "rpc" && !errors.Is(err, driver.ErrOffline) {
						t.Fatalf("write over rpc: %v, want it to match driver.ErrOffline too", err)
					}
				}
				if !errors.Is(getRec, driver.ErrNotFound) || getSh == nil {
					t.Fatalf("after refused writes: record %v, shard %v; want both absent", getRec, getSh)
				}
				if got := fx.f.Refused() - before; got != 2 {
					t.Fatalf("refused %d writes, want 2", got)
				}
			})
		}
	}
}

// writeShard writes and commits one shard.
func writeShard(ctx context.Context, d driver.Driver, sh driver.Shard, b []byte) error {
	sw, err := d.CreateShard(ctx, sh)
	if err != nil {
		return err
	}
	if _, err := sw.Write(b); err != nil {
		sw.Abort()
		return err
	}
	return sw.Commit(ctx)
}

// TestFenceRefusesAtCommit is the paused writer: a shard stream opened
// under the current map whose PG moves before it commits is refused at
// the commit and not stored.
func TestFenceRefusesAtCommit(t *testing.T) {
	fx := newFenceFixture(t, false)
	ctx := t.Context()
	for _, via := range []struct {
		name string
		d    driver.Driver
	}{{"rpc", fx.client}, {"local", fx.f.Wrap(fx.mem)}} {
		t.Run(via.name, func(t *testing.T) {
			cur := fx.s.Map()
			wctx := peer.WithFence(ctx, peer.Fence{Epoch: uint64(cur.Epoch)})
			sh := driver.Shard{PG: 0, Name: fmt.Sprintf("%032x", len(via.name))}
			sw, err := via.d.CreateShard(wctx, sh)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sw.Write(bytes.Repeat([]byte("x"), 1<<20)); err != nil {
				t.Fatal(err)
			}
			next := fmt.Sprintf("d%d", len(cur.Drives))
			if err := fx.s.RegisterNode(ctx, NodeInfo{Name: "n" + next, Drives: []MemberDrive{{ID: next, Class: "local"}}}); err != nil {
				t.Fatal(err)
			}
			if slices.Equal(fx.s.Map().Set(0), cur.Set(0)) {
				t.Fatal("the new map kept PG 0's set; the test needs one that moves")
			}
			before := fx.f.Refused()
			if err := sw.Commit(wctx); !errors.Is(err, peer.ErrStaleEpoch) {
				t.Fatalf("commit after the map moved the PG: %v, want ErrStaleEpoch", err)
			}
			if _, err := fx.mem.ReadShard(ctx, sh, 0, -1); err == nil {
				t.Fatal("refused shard was stored")
			}
			if fx.f.Refused() != before+1 {
				t.Fatalf("refused count %d, want %d", fx.f.Refused(), before+1)
			}
		})
	}
}

// TestFenceLaggingNode: once a write carried an epoch newer than this
// node's map, an older write is judged only after the node caught up,
// and refused if it cannot within fenceCatchUp.
func TestFenceLaggingNode(t *testing.T) {
	fx := newFenceFixture(t, false)
	ctx := t.Context()
	d := fx.f.Wrap(fx.mem)
	if _, _, err := d.PutRecord(peer.WithFence(ctx, peer.Fence{Epoch: 3, PG: fx.moved}), driver.Record{Key: "new", Version: driver.Version{1}}); err != nil {
		t.Fatalf("write under a newer epoch: %v", err)
	}
	_, _, err := d.PutRecord(peer.WithFence(ctx, peer.Fence{Epoch: 2, PG: fx.kept}), driver.Record{Key: "old", Version: driver.Version{1}})
	if !errors.Is(err, peer.ErrStaleEpoch) {
		t.Fatalf("write under epoch 2 after one under 3 on a node at 2: %v, want ErrStaleEpoch", err)
	}
}

// TestFenceRefusesLostLease: writes made under a multipart upload's lease
// (Store.FenceUpload) land while the lease is this node's, and are
// refused (and counted) once another node took it over after expiry or it
// was released: a node paused past its lease cannot overwrite the next
// holder's work.
func TestFenceRefusesLostLease(t *testing.T) {
	fx := newFenceFixture(t, false)
	s, ctx := fx.s, t.Context()
	put := func(d driver.Driver, wctx context.Context, key string) error {
		_, _, err := d.PutRecord(wctx, driver.Record{Key: key, Version: driver.Version{1}, Data: []byte("v")})
		return err
	}
	for _, tt := range []struct {
		name string
		lose func(t *testing.T, id string, release func())
	}{
		{"taken over after expiry", func(t *testing.T, id string, _ func()) {
			err := s.applyCmd(ctx, cmdAcquireLease, acquireLeaseCmd{Upload: id, Node: "other", Token: "t2",
				TTL: int64(uploadLeaseTTL), Now: time.Now().Add(uploadLeaseTTL + time.Second).UnixNano()})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"released", func(t *testing.T, _ string, release func()) { release() }},
	} {
		for _, via := range []struct {
			name string
			d    driver.Driver
		}{{"rpc", fx.client}, {"local", fx.f.Wrap(fx.mem)}} {
			t.Run(tt.name+"/"+via.name, func(t *testing.T) {
				id := "upload-" + tt.name + via.name
				_, unlock, err := s.LockUpload(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				lctx := s.FenceUpload(ctx, id)
				if _, ok := peer.LeaseFrom(lctx); !ok {
					t.Fatal("FenceUpload of a held lease put no lease in the ctx")
				}
				if err := put(via.d, lctx, id+"-held"); err != nil {
					t.Fatalf("write under the held lease: %v", err)
				}
				tt.lose(t, id, unlock)
				before := fx.f.Refused()
				err = put(via.d, lctx, id+"-lost")
				if !errors.Is(err, peer.ErrStaleEpoch) {
					t.Fatalf("write under the lost lease: %v, want ErrStaleEpoch", err)
				}
				if _, err := fx.mem.GetRecord(ctx, id+"-lost"); !errors.Is(err, driver.ErrNotFound) {
					t.Fatalf("refused record stored: %v", err)
				}
				if fx.f.Refused() != before+1 {
					t.Fatalf("refused count %d, want %d", fx.f.Refused(), before+1)
				}
			})
		}
	}
	// A lease granted at an index this node has not applied (its Raft
	// state lags) is refused after fenceCatchUp.
	lag := peer.WithLease(ctx, peer.Lease{Upload: "u", Token: "t", Index: s.fsm.applied.Load() + 1000})
	if err := put(fx.f.Wrap(fx.mem), lag, "lagging"); !errors.Is(err, peer.ErrStaleEpoch) {
		t.Fatalf("write under a lease this node has not seen: %v, want ErrStaleEpoch", err)
	}
}

// TestUploadLeaseRenewed: a lease held longer than its ttl stays with its
// holder (renewed with the same token), writes under it still pass the
// fence, another node cannot take it meanwhile, and it is free once
// unlocked. Before session 12 a lease was trusted for ttl-margin (20 s)
// from its acquisition and never renewed: a part streamed for longer into
// an upload a map change left in an older set always failed.
func TestUploadLeaseRenewed(t *testing.T) {
	ttl, margin := uploadLeaseTTL, uploadLeaseMargin
	uploadLeaseTTL, uploadLeaseMargin = 1500*time.Millisecond, 300*time.Millisecond
	defer func() { uploadLeaseTTL, uploadLeaseMargin = ttl, margin }()
	fx := newFenceFixture(t, false)
	s, ctx := fx.s, t.Context()
	held, unlock, err := s.LockUpload(ctx, "long")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	lctx := s.FenceUpload(ctx, "long")
	take := func() error {
		return s.applyCmd(ctx, cmdAcquireLease, acquireLeaseCmd{Upload: "long", Node: "other", Token: "t2", TTL: int64(uploadLeaseTTL), Now: time.Now().UnixNano()})
	}
	for i := range 8 { // 4 ttls
		time.Sleep(uploadLeaseTTL / 2)
		if !held() {
			t.Fatalf("%v after LockUpload: held() is false; want the lease renewed", time.Duration(i+1)*uploadLeaseTTL/2)
		}
		if err := take(); !errors.Is(err, errUploadLeased) {
			t.Fatalf("another node's acquire %v after LockUpload: %v, want errUploadLeased", time.Duration(i+1)*uploadLeaseTTL/2, err)
		}
	}
	if _, _, err := fx.client.PutRecord(lctx, driver.Record{Key: "long-write", Version: driver.Version{1}, Data: []byte("v")}); err != nil {
		t.Fatalf("write under the renewed lease: %v", err)
	}
	unlock()
	if err := take(); err != nil {
		t.Fatalf("another node's acquire after unlock: %v", err)
	}
}

// peekingMem is a drive that answers record reads from memory, as
// driver/local's PeekRecord does.
type peekingMem struct{ *drivertest.Mem }

func (peekingMem) PeekRecord(string) (driver.Record, bool, error) {
	return driver.Record{Data: []byte("peeked")}, true, nil
}

// TestFenceWrappersPeekOnlyWhatPeeks: the fence wrappers have PeekRecord
// exactly when the drive they wrap does, so that a set with a drive of
// another node (which never peeks) is not peeked at all (review 29p L2).
func TestFenceWrappersPeekOnlyWhatPeeks(t *testing.T) {
	f := NewFence(nil)
	for _, tc := range []struct {
		name  string
		d     driver.Driver
		peeks bool
	}{
		{"peeking drive", peekingMem{&drivertest.Mem{MemID: "p"}}, true},
		{"plain drive", &drivertest.Mem{MemID: "m"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wrapped := map[string]driver.Driver{
				"fenced": f.Wrap(tc.d),
				"epoch":  withEpoch(tc.d, peer.Fence{Epoch: 1}),
			}
			for name, w := range wrapped {
				p, ok := w.(peeker)
				if ok != tc.peeks {
					t.Errorf("%s wrapper has PeekRecord: %v, want %v", name, ok, tc.peeks)
					continue
				}
				if ok {
					if r, hit, err := p.PeekRecord("k"); !hit || err != nil || string(r.Data) != "peeked" {
						t.Errorf("%s wrapper's PeekRecord: %q, %v, %v; want the drive's", name, r.Data, hit, err)
					}
				}
			}
		})
	}
}
