package engine

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// TestPointerRaceTwoNodes: two writes of one versioned key through two
// nodes (two Engines over the same drives, each with its own pointer
// lock). Node 1 stores its version first but writes the key's pointer
// last (held between the two, as a slow node is), with the newer pointer
// record: the pointer named node 1's version although node 2's is newer,
// so GET read one version while ListObjectVersions marked the other
// latest (probe M1, 03_versioned_race_two_nodes.py). The pointer must end
// on the newest version, and GET, HEAD through either node and the
// listing agree on it.
func TestPointerRaceTwoNodes(t *testing.T) {
	put := func(e *Engine, key, body string) (string, error) {
		info, err := e.Put(context.Background(), "t", "c", key, bytes.NewReader([]byte(body)), PutOptions{Size: int64(len(body)), Versioning: VersioningEnabled})
		return info.VersionID, err
	}
	marker := func(e *Engine, key, _ string) (string, error) {
		res, err := e.DeleteVersion(context.Background(), "t", "c", key, DeleteOptions{Versioning: VersioningEnabled})
		return res.VersionID, err
	}
	type op func(e *Engine, key, body string) (string, error)
	for _, tc := range []struct {
		name          string
		first, second op
		markerLatest  bool // the second write is a delete marker
	}{
		{"PUT held, then PUT", put, put, false},
		{"delete marker held, then PUT", marker, put, false},
		{"PUT held, then delete marker", put, marker, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 6})
			ctx := t.Context()
			e1 := r.e
			e2, err := New(Config{Topology: e1.cfg.Topology, Containers: e1.cfg.Containers, StripeSize: e1.cfg.StripeSize})
			if err != nil {
				t.Fatal(err)
			}
			const key = "k"
			if _, err := put(e1, key, "base"); err != nil {
				t.Fatal(err)
			}
			unlock := e1.lockPointer("t", "c", key) // node 1 stalls before its pointer
			type result struct {
				vid string
				err error
			}
			done := make(chan result, 1)
			go func() {
				vid, err := tc.first(e1, key, "from node 1")
				done <- result{vid, err}
			}()
			deadline := time.Now().Add(10 * time.Second)
			for {
				vs, err := e2.keyVersions(ctx, "t", "c", key)
				if err == nil && len(vs) == 2 {
					break // node 1's version is stored
				}
				if time.Now().After(deadline) {
					unlock()
					t.Fatalf("node 1's version was not stored: %v, %v", vs, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			second, err := tc.second(e2, key, "from node 2")
			if err != nil {
				unlock()
				t.Fatal(err)
			}
			unlock()
			first := <-done
			if first.err != nil {
				t.Fatal(first.err)
			}
			e1.WaitBackground()
			e2.WaitBackground()

			res, err := e1.ListVersions(ctx, "t", "c", VersionListOptions{Prefix: key})
			if err != nil {
				t.Fatal(err)
			}
			latest := ""
			for _, v := range res.Versions {
				if v.IsLatest {
					latest = v.VersionID
				}
			}
			if len(res.Versions) != 3 || res.Versions[0].VersionID != second || latest != second {
				t.Fatalf("versions %+v: want 3, node 2's %s newest and latest (node 1's %s)", res.Versions, second, first.vid)
			}
			for i, e := range []*Engine{e1, e2} {
				a, err := e.Open(ctx, "t", "c", key)
				var dm *DeleteMarkerError
				switch {
				case tc.markerLatest && errors.As(err, &dm):
					if dm.VersionID != second {
						t.Errorf("GET through node %d: delete marker %s, listing's latest %s", i+1, dm.VersionID, second)
					}
				case err != nil:
					t.Errorf("GET through node %d: %v, listing's latest is %s (node 2's)", i+1, err, second)
				case tc.markerLatest:
					t.Errorf("GET through node %d reads version %s, listing's latest is node 2's delete marker %s", i+1, a.Info.VersionID, second)
				default:
					var buf bytes.Buffer
					if err := a.WriteRange(ctx, &buf, 0, a.Info.Size); err != nil {
						t.Fatal(err)
					}
					if a.Info.VersionID != second || buf.String() != "from node 2" {
						t.Errorf("GET through node %d reads version %s (%q), listing's latest is %s (node 2's)", i+1, a.Info.VersionID, buf.String(), second)
					}
				}
			}
		})
	}
}

// heldPointer is a drive whose PutRecord of one index key waits, while
// armed, until release is closed: a node's pointer write slow to arrive.
type heldPointer struct {
	driver.Driver
	ikey    string
	armed   atomic.Bool
	waiting chan struct{} // gets a value when a write starts waiting
	release chan struct{}
}

func (h *heldPointer) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if r.Key == h.ikey && h.armed.Load() {
		h.waiting <- struct{}{}
		<-h.release
	}
	return h.Driver.PutRecord(ctx, r)
}

// TestPointerRaceStaleRefusal is the other order: node 2 takes its
// pointer's record version first but its write reaches the drives last,
// after node 1's newer pointer to node 1's older version: every drive
// refuses node 2's pointer as stale, and the write counted that as done,
// leaving the pointer on the older version. Node 2 must write its pointer
// again, newer.
func TestPointerRaceStaleRefusal(t *testing.T) {
	r := newRig(t, rigOptions{drives: 6})
	ctx := t.Context()
	e1 := r.e
	const key = "k"
	release := make(chan struct{})
	held := map[placement.DriveID]driver.Driver{}
	var holders []*heldPointer
	for i, id := range r.ids {
		h := &heldPointer{Driver: r.faulty[i], ikey: indexPrefix("t", "c") + key, waiting: make(chan struct{}, 8), release: release}
		holders = append(holders, h)
		held[id] = h
	}
	topo, err := NewStatic(e1.mapOf(), held)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := New(Config{Topology: topo, Containers: e1.cfg.Containers, StripeSize: e1.cfg.StripeSize})
	if err != nil {
		t.Fatal(err)
	}
	vput := func(e *Engine, body string) (string, error) {
		info, err := e.Put(context.Background(), "t", "c", key, bytes.NewReader([]byte(body)), PutOptions{Size: int64(len(body)), Versioning: VersioningEnabled})
		return info.VersionID, err
	}
	if _, err := vput(e1, "base"); err != nil {
		t.Fatal(err)
	}
	// Node 1 stores its version, then stalls before its pointer.
	unlock := e1.lockPointer("t", "c", key)
	type result struct {
		vid string
		err error
	}
	done1, done2 := make(chan result, 1), make(chan result, 1)
	go func() { vid, err := vput(e1, "from node 1"); done1 <- result{vid, err} }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if vs, err := e2.keyVersions(ctx, "t", "c", key); err == nil && len(vs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			unlock()
			t.Fatal("node 1's version was not stored")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Node 2 stores a newer version; its pointer write is held on every drive.
	for _, h := range holders {
		h.armed.Store(true)
	}
	go func() { vid, err := vput(e2, "from node 2"); done2 <- result{vid, err} }()
	for _, h := range holders {
		select {
		case <-h.waiting:
		case <-time.After(10 * time.Second):
			unlock()
			close(release)
			t.Fatal("node 2's pointer write did not reach the drives")
		}
	}
	for _, h := range holders {
		h.armed.Store(false)
	}
	time.Sleep(2 * time.Millisecond) // node 1's pointer version is newer by the clock
	unlock()
	first := <-done1
	close(release)
	second := <-done2
	if first.err != nil || second.err != nil {
		t.Fatalf("node 1: %v; node 2: %v", first.err, second.err)
	}
	e1.WaitBackground()
	e2.WaitBackground()
	a, err := e1.Open(ctx, "t", "c", key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e1.ListVersions(ctx, "t", "c", VersionListOptions{Prefix: key})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Versions) != 3 || !res.Versions[0].IsLatest || res.Versions[0].VersionID != second.vid {
		t.Fatalf("versions %+v: want node 2's %s newest and latest", res.Versions, second.vid)
	}
	if a.Info.VersionID != second.vid {
		t.Fatalf("GET reads version %s (node 1's is %s), listing's latest is node 2's %s", a.Info.VersionID, first.vid, second.vid)
	}
}
