package remote_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/local"
	"github.com/vaultaire/vaultaire/driver/remote"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/internal/faultproxy"
	"github.com/vaultaire/vaultaire/placement"
)

// remoteRig is an engine on 4 local drives and 2 remote ones (two buckets
// of one backend, both behind one fault proxy) under a 4+2 map, with a
// hybrid container "hyb" (data shards local, parity remote), a local one
// "loc" (every shard local) and a tier one "tr".
type remoteRig struct {
	eng     *engine.Engine
	locals  []driver.Driver
	remotes []*remote.Driver
	buckets []string // the remote drives' buckets
	proxy   *faultproxy.Proxy
}

func newRemoteRig(t *testing.T, s server) *remoteRig {
	t.Helper()
	ctx := t.Context()
	rig := &remoteRig{proxy: proxy(t, s.endpoint)}
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
		rig.locals = append(rig.locals, d)
		pdrives = append(pdrives, placement.Drive{ID: id, Node: "n1", Class: driver.ClassLocal})
	}
	for i := range 2 {
		id := placement.DriveID(fmt.Sprintf("r%d", i))
		b := s.bucket(t)
		rig.buckets = append(rig.buckets, b)
		c := s.config(rig.proxy.URL, b, "")
		c.ID, c.ClusterID, c.CompactInterval = driver.DriveID(id), "econ", -1
		d := open(t, c)
		rig.remotes = append(rig.remotes, d)
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
	policy := func(_, container string) string {
		switch container {
		case "hyb":
			return engine.PolicyHybrid
		case "tr":
			return engine.PolicyTier
		}
		return engine.PolicyLocal
	}
	rig.eng, err = engine.New(engine.Config{Topology: topo, Containers: &engine.MemContainers{}, StoragePolicy: policy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rig.eng.WaitBackground)
	for _, c := range []string{"hyb", "loc", "tr"} {
		if err := rig.eng.CreateContainer(ctx, "t", c); err != nil {
			t.Fatal(err)
		}
	}
	return rig
}

// stats sums what the remote drives sent to the backend.
func (r *remoteRig) stats() remote.Stats {
	var st remote.Stats
	for _, d := range r.remotes {
		x := d.Stats()
		st.Puts, st.Posts, st.Gets, st.Lists, st.Heads, st.Deletes = st.Puts+x.Puts, st.Posts+x.Posts, st.Gets+x.Gets, st.Lists+x.Lists, st.Heads+x.Heads, st.Deletes+x.Deletes
		st.BytesSent, st.BytesRecv = st.BytesSent+x.BytesSent, st.BytesRecv+x.BytesRecv
	}
	return st
}

func (r *remoteRig) put(t *testing.T, container, key string, body []byte) error {
	t.Helper()
	_, err := r.eng.Put(t.Context(), "t", container, key, bytes.NewReader(body), engine.PutOptions{Size: int64(len(body))})
	return err
}

// get reads key back and checks it is want.
func (r *remoteRig) get(t *testing.T, container, key string, want []byte) error {
	t.Helper()
	a, err := r.eng.Open(t.Context(), "t", container, key)
	if err != nil {
		return fmt.Errorf("open %s/%s: %w", container, key, err)
	}
	rc := a.Reader(t.Context(), 0, int64(len(want)))
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("read %s/%s: %d bytes (want %d), %v", container, key, len(got), len(want), err)
	}
	return nil
}

// figuresBackend is a real MinIO when one was built (make minio), else a
// second Vaultaire.
func figuresBackend(t *testing.T) (server, string) {
	t.Helper()
	if minioBin() != "" {
		return startMinIO(t), "MinIO"
	}
	t.Log("no MinIO binary (make minio): the backend is a second Vaultaire")
	return startVaultd(t), "Vaultaire"
}

// TestEngineEconomy measures, through the engine, what artifacts of a
// hybrid container cost the remote backend: a stripe of 4 local drives and
// 2 remote ones (4+2, each stripe's two parity shards in two buckets of
// one backend), 1,000 small artifacts (inline in records, 4 KiB, and 256
// KiB ones) and large ones (256 MiB, scaled to a GiB), written one at a
// time and 16 at a time. Every artifact reads back byte-identical, with
// nothing read from the backend, and again with both remote drives closed
// (offline). The figures are in bench/RESULTS.md ("Remote drives").
func TestEngineEconomy(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 512 MiB through the engine")
	}
	s, name := figuresBackend(t)
	rig := newRemoteRig(t, s)
	t.Logf("backend: %s", name)
	bodies := map[string][]byte{}
	var mu sync.Mutex
	put := func(key string, body []byte) {
		if err := rig.put(t, "hyb", key, body); err != nil {
			t.Errorf("Put %s: %v", key, err)
			return
		}
		mu.Lock()
		bodies[key] = body
		mu.Unlock()
	}
	// limit is the most requests per unit the design allows.
	run := func(name string, n, size, conc int, scale float64, unit string, limit float64) {
		before := rig.stats()
		var wg sync.WaitGroup
		for w := range conc {
			wg.Go(func() {
				for i := w; i < n; i += conc {
					put(fmt.Sprintf("%s/%d", name, i), payload(size, uint64(i)))
				}
			})
		}
		wg.Wait()
		rig.eng.WaitBackground()
		st := rig.stats().Sub(before)
		t.Logf("| %s | per %s | %.0f | %.0f | %.0f | %.2f MiB | %.2f MiB |",
			name, unit, float64(st.Requests())*scale, float64(st.Puts)*scale, float64(st.Posts)*scale,
			float64(st.BytesSent)*scale/(1<<20), float64(n*size)*scale/(1<<20))
		if float64(st.Requests())*scale > limit {
			t.Errorf("%s: %.0f requests per %s, want at most %.0f", name, float64(st.Requests())*scale, unit, limit)
		}
		if st.Puts == 0 {
			t.Errorf("%s: nothing sent to the remote drives: the hybrid container's parity is not there", name)
		}
		if st.Gets+st.Lists+st.Heads != 0 {
			t.Errorf("%s: writes read from the backend: %+v", name, st)
		}
	}
	t.Logf("| workload | unit | requests | PUT | POST | bytes sent | artifact bytes |")
	// A small artifact is one record per remote drive (its data inline);
	// a larger one a shard and a record, each at most one shared PUT.
	run("4 KiB artifacts, sequential", 1000, 4<<10, 1, 1, "1,000 artifacts", 2*1000)
	run("4 KiB artifacts, 16 writers", 1000, 4<<10, 16, 1, "1,000 artifacts", 2*1000/2)
	run("256 KiB artifacts, 16 writers", 1000, 256<<10, 16, 1, "1,000 artifacts", 2*2*1000/2)
	// 1 GiB is 512 MiB on the two remote drives: 64 parts of 8 MiB plus
	// a few requests per shard.
	run("256 MiB artifacts", 2, 256<<20, 1, 2, "GiB", 200)

	// Reads of a hybrid container with the remote drives up cost the
	// backend nothing: the data shards are local.
	before := rig.stats()
	for key, want := range bodies {
		if err := rig.get(t, "hyb", key, want); err != nil {
			t.Fatal(err)
		}
	}
	if rd := rig.stats().Sub(before); rd.Requests() != 0 {
		t.Errorf("reading back %d hybrid artifacts with the remotes up sent %d requests to the backend (%d GET), want none", len(bodies), rd.Requests(), rd.Gets)
	}

	// Both remote drives gone: every artifact is still read from the
	// local shards.
	for _, d := range rig.remotes {
		d.Close()
	}
	for key, want := range bodies {
		if err := rig.get(t, "hyb", key, want); err != nil {
			t.Fatalf("with the remotes offline: %v", err)
		}
	}
}

// TestRemoteInStripe measures, in one run, the throughput of a hybrid
// container (4+2, parity on the remote drives) against a local one (every
// shard on the 4 local drives), and the latency of PUTs and GETs of the
// hybrid container with the backend answering at once and with every
// response of the backend delayed by 2s. It asserts the invariants, not
// timings: every write is acknowledged and reads back byte-identical,
// hybrid GETs send nothing to the backend, and none waits for the delayed
// backend. The figures are in bench/RESULTS.md ("Remote drives"); it
// runs under make bench-remote, not in make test.
func TestRemoteInStripe(t *testing.T) {
	if os.Getenv("VAULT_BENCH_REMOTE") == "" {
		t.Skip("writes 1.5 GiB through the engine: make bench-remote (VAULT_BENCH_REMOTE=1)")
	}
	s, name := figuresBackend(t)
	rig := newRemoteRig(t, s)
	t.Logf("backend: %s", name)

	// Throughput: 8 artifacts of 16 MiB by 4 writers, then read back by
	// 4 readers, local and hybrid alternately, 3 rounds.
	const n, size, conc, rounds = 8, 16 << 20, 4, 3
	body := payload(size, 42)
	tput := func(container string, round int) (putMBs, getMBs float64) {
		t.Helper()
		each := func(f func(i int) error) float64 {
			start := time.Now()
			var wg sync.WaitGroup
			for w := range conc {
				wg.Go(func() {
					for i := w; i < n; i += conc {
						if err := f(i); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			return float64(n*size) / (1 << 20) / time.Since(start).Seconds()
		}
		key := func(i int) string { return fmt.Sprintf("tput/%d/%d", round, i) }
		putMBs = each(func(i int) error { return rig.put(t, container, key(i), body) })
		getMBs = each(func(i int) error { return rig.get(t, container, key(i), body) })
		return putMBs, getMBs
	}
	var locPut, locGet, hybPut, hybGet []float64
	for r := range rounds {
		p, g := tput("loc", r)
		locPut, locGet = append(locPut, p), append(locGet, g)
		before := rig.stats()
		p, g = tput("hyb", r)
		hybPut, hybGet = append(hybPut, p), append(hybGet, g)
		if st := rig.stats().Sub(before); st.Puts == 0 {
			t.Errorf("round %d: the hybrid writes sent nothing to the remote drives", r)
		}
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	t.Logf("| 16 MiB artifacts, 4 clients | local (2+2 on 4 local drives) | hybrid (4+2, 2 parity remote) | hybrid / local |")
	t.Logf("| PUT MiB/s (median of %d) | %.0f | %.0f | %.2f |", rounds, med(locPut), med(hybPut), med(hybPut)/med(locPut))
	t.Logf("| GET MiB/s (median of %d) | %.0f | %.0f | %.2f |", rounds, med(locGet), med(hybGet), med(hybGet)/med(locGet))

	// Latency: 4 clients, 1 MiB artifacts (sharded, not inline), 200
	// PUTs then 200 GETs, with the backend normal then delayed by 2s.
	const latN, latSize, delay = 200, 1 << 20, 2 * time.Second
	latBody := payload(latSize, 43)
	lat := func(phase string) (puts, gets []time.Duration, remoteGets uint64) {
		t.Helper()
		var mu sync.Mutex
		each := func(out *[]time.Duration, f func(i int) error) {
			var wg sync.WaitGroup
			for w := range conc {
				wg.Go(func() {
					for i := w; i < latN; i += conc {
						start := time.Now()
						err := f(i)
						took := time.Since(start)
						if err != nil {
							t.Errorf("%s: %v", phase, err)
						}
						mu.Lock()
						*out = append(*out, took)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
		}
		key := func(i int) string { return fmt.Sprintf("lat/%s/%d", phase, i) }
		each(&puts, func(i int) error { return rig.put(t, "hyb", key(i), latBody) })
		before := rig.stats()
		each(&gets, func(i int) error { return rig.get(t, "hyb", key(i), latBody) })
		slices.Sort(puts)
		slices.Sort(gets)
		return puts, gets, rig.stats().Sub(before).Gets
	}
	pct := func(v []time.Duration, p float64) time.Duration { return v[int(p*float64(len(v)-1))] }
	normPuts, normGets, normRemote := lat("normal")
	rig.proxy.Set(faultproxy.Faults{Latency: delay})
	slowPuts, slowGets, slowRemote := lat("slow")
	rig.proxy.Set(faultproxy.Faults{})
	rig.eng.WaitBackground()
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	t.Logf("| hybrid, 1 MiB, 4 clients | backend normal p50 / p99 | backend +2 s p50 / p99 | p99 slow / normal |")
	t.Logf("| PUT | %s / %s | %s / %s | %.2f |", ms(pct(normPuts, .5)), ms(pct(normPuts, .99)), ms(pct(slowPuts, .5)), ms(pct(slowPuts, .99)), float64(pct(slowPuts, .99))/float64(pct(normPuts, .99)))
	t.Logf("| GET | %s / %s | %s / %s | %.2f |", ms(pct(normGets, .5)), ms(pct(normGets, .99)), ms(pct(slowGets, .5)), ms(pct(slowGets, .99)), float64(pct(slowGets, .99))/float64(pct(normGets, .99)))
	if normRemote+slowRemote != 0 {
		t.Errorf("hybrid GETs sent %d GETs to the backend (%d of them while it was slow), want none: the data shards are local", normRemote+slowRemote, slowRemote)
	}
	if slowest := slowGets[len(slowGets)-1]; slowest >= delay {
		t.Errorf("a hybrid GET took %v with the backend delayed by %v: it waited on the remote", slowest, delay)
	}
}
