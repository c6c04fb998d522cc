package remote_test

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/local"
	"github.com/vaultaire/vaultaire/driver/remote"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/placement"
)

// TestEngineEconomy measures, through the engine, what artifacts cost the
// remote backend: a stripe of 4 local drives and 2 remote ones (4+2, each
// stripe's two remote shards in two buckets of one backend), 1,000 small
// artifacts (inline in records, 4 KiB and 64 KiB) and large ones (256 MiB,
// scaled to a GiB), written one at a time and 16 at a time. Every artifact
// reads back byte-identical with both remote drives closed (offline).
func TestEngineEconomy(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 512 MiB through the engine")
	}
	s := startVaultd(t)
	ctx := t.Context()
	drives := map[placement.DriveID]driver.Driver{}
	var pdrives []placement.Drive
	for i := range 4 {
		id := placement.DriveID(fmt.Sprintf("l%d", i))
		d, err := local.Open(ctx, local.Config{Dir: t.TempDir(), ID: driver.DriveID(id), ClusterID: "econ", NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		drives[id] = d
		pdrives = append(pdrives, placement.Drive{ID: id, Node: "n1", Class: driver.ClassLocal})
	}
	var remotes []*remote.Driver
	for i := range 2 {
		id := placement.DriveID(fmt.Sprintf("r%d", i))
		c := s.config("", s.bucket(t), "")
		c.ID, c.ClusterID, c.CompactInterval = driver.DriveID(id), "econ", -1
		d := open(t, c)
		remotes = append(remotes, d)
		drives[id] = d
		pdrives = append(pdrives, placement.Drive{ID: id, Node: "n1", Zone: "remote:" + string(id), Class: driver.ClassRemote})
	}
	m, err := placement.NewMap(pdrives, placement.Policy{Data: 4, Parity: 2}, placement.DefaultPGCount, 1)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := engine.NewStatic(m, drives)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Topology: topo, Containers: &engine.MemContainers{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.CreateContainer(ctx, "t", "c"); err != nil {
		t.Fatal(err)
	}
	stats := func() remote.Stats {
		var st remote.Stats
		for _, d := range remotes {
			x := d.Stats()
			st.Puts, st.Posts, st.Gets, st.Lists, st.Heads, st.Deletes = st.Puts+x.Puts, st.Posts+x.Posts, st.Gets+x.Gets, st.Lists+x.Lists, st.Heads+x.Heads, st.Deletes+x.Deletes
			st.BytesSent, st.BytesRecv = st.BytesSent+x.BytesSent, st.BytesRecv+x.BytesRecv
		}
		return st
	}
	bodies := map[string][]byte{}
	var mu sync.Mutex
	put := func(key string, body []byte) {
		if _, err := eng.Put(ctx, "t", "c", key, bytes.NewReader(body), engine.PutOptions{Size: int64(len(body))}); err != nil {
			t.Errorf("Put %s: %v", key, err)
			return
		}
		mu.Lock()
		bodies[key] = body
		mu.Unlock()
	}
	// limit is the most requests per unit the design allows.
	run := func(name string, n, size, conc int, scale float64, unit string, limit float64) {
		before := stats()
		var wg sync.WaitGroup
		for w := range conc {
			wg.Go(func() {
				for i := w; i < n; i += conc {
					put(fmt.Sprintf("%s/%d", name, i), payload(size, uint64(i)))
				}
			})
		}
		wg.Wait()
		st := stats().Sub(before)
		t.Logf("%-34s per %s: %6.0f requests to the backend (%5.0f PUT, %4.0f POST, %3.0f GET), %8.2f MiB sent, for %8.2f MiB of artifacts",
			name, unit, float64(st.Requests())*scale, float64(st.Puts)*scale, float64(st.Posts)*scale, float64(st.Gets)*scale,
			float64(st.BytesSent)*scale/(1<<20), float64(n*size)*scale/(1<<20))
		if float64(st.Requests())*scale > limit {
			t.Errorf("%s: %.0f requests per %s, want at most %.0f", name, float64(st.Requests())*scale, unit, limit)
		}
		if st.Gets+st.Lists+st.Heads != 0 {
			t.Errorf("%s: writes read from the backend: %+v", name, st)
		}
	}
	// A small artifact is one record per remote drive (its data inline);
	// a larger one a shard and a record, each at most one shared PUT.
	run("4 KiB artifacts, sequential", 1000, 4<<10, 1, 1, "1,000 artifacts", 2*1000)
	run("4 KiB artifacts, 16 writers", 1000, 4<<10, 16, 1, "1,000 artifacts", 2*1000/2)
	run("256 KiB artifacts, 16 writers", 1000, 256<<10, 16, 1, "1,000 artifacts", 2*2*1000/2)
	// 1 GiB is 512 MiB on the two remote drives: 64 parts of 8 MiB plus
	// a few requests per shard.
	run("256 MiB artifacts", 2, 256<<20, 1, 2, "GiB", 200)

	// Reads with the remote drives up: what do they cost the backend?
	before := stats()
	for key, want := range bodies {
		a, err := eng.Open(ctx, "t", "c", key)
		if err != nil {
			t.Fatalf("Open %s: %v", key, err)
		}
		rc := a.Reader(ctx, 0, int64(len(want)))
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v", key, len(got), err)
		}
	}
	rd := stats().Sub(before)
	t.Logf("reading back all %d artifacts with the remotes up: %d requests to the backend (%d GET), %.2f MiB received",
		len(bodies), rd.Requests(), rd.Gets, float64(rd.BytesRecv)/(1<<20))

	// Both remote drives gone: every artifact is rebuilt from the local
	// shards.
	for _, d := range remotes {
		d.Close()
	}
	for key, want := range bodies {
		a, err := eng.Open(ctx, "t", "c", key)
		if err != nil {
			t.Fatalf("Open %s with the remotes offline: %v", key, err)
		}
		rc := a.Reader(ctx, 0, int64(len(want)))
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s with the remotes offline: %d bytes, %v", key, len(got), err)
		}
	}
}
