package cluster

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// scaleSink is a raft.SnapshotSink in memory.
type scaleSink struct{ bytes.Buffer }

func (*scaleSink) ID() string    { return "scale" }
func (*scaleSink) Cancel() error { return nil }
func (*scaleSink) Close() error  { return nil }

// scaleState is what fillFSM loaded, to check a restored FSM against.
type scaleState struct {
	tenants, containers, nodes int
	applyTime                  time.Duration
	commands                   int
}

// fillFSM applies, through fsm.Apply as raft would, tenants tenants (one
// key each, sealed as with a cluster secret), containersPer containers for
// each, nodes nodes of drivesPer drives and one cluster map over them.
func fillFSM(tb testing.TB, f *fsm, tenants, containersPer, nodes, drivesPer int) scaleState {
	tb.Helper()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	sealed := strings.Repeat("s", 91) // base64 of a 40-byte secret sealed with AES-GCM
	var log [][]byte
	add := func(ct cmdType, payload any) {
		b, err := encodeCmd(ct, payload)
		if err != nil {
			tb.Fatal(err)
		}
		log = append(log, b)
	}
	for i := range tenants {
		name := fmt.Sprintf("tenant-%06d", i)
		add(cmdCreateTenant, createTenantCmd{Name: name, Created: t0, Key: keyRecord{AccessKey: fmt.Sprintf("VLT%017d", i), Sealed: sealed, Created: t0}})
		for c := range containersPer {
			add(cmdCreateContainer, createContainerCmd{Tenant: name, Name: fmt.Sprintf("bucket-%04d", c), Created: t0})
		}
	}
	var drives []placement.Drive
	for n := range nodes {
		name := fmt.Sprintf("node-%04d", n)
		zone := fmt.Sprintf("zone-%d", n%10)
		info := NodeInfo{Name: name, S3Addr: fmt.Sprintf("10.0.%d.%d:9000", n/250, n%250), RaftAddr: "10.0.0.1:9001", RPCAddr: "10.0.0.1:9002", Gossip: "10.0.0.1:9003"}
		for d := range drivesPer {
			id := fmt.Sprintf("%s-d%02d", name, d)
			info.Drives = append(info.Drives, MemberDrive{ID: id, Class: string(driver.ClassLocal), Zone: zone})
			drives = append(drives, placement.Drive{ID: driver.DriveID(id), Node: placement.NodeID(name), Zone: zone, Class: driver.ClassLocal})
		}
		add(cmdPutNode, info)
	}
	p := placement.Policy{Data: 12, Parity: 4}
	if len(drives) < p.SetSize() {
		p = placement.Policy{Data: 1, Parity: 0}
	}
	m, err := placement.NewMap(drives, p, placement.PGCountFor(len(drives), p.SetSize()), 1)
	if err != nil {
		tb.Fatal(err)
	}
	add(cmdSetMap, setMapCmd{Map: m})

	start := time.Now()
	for i, b := range log {
		if r := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: b}); r != nil {
			tb.Fatalf("apply %d: %v", i+1, r)
		}
	}
	return scaleState{tenants: tenants, containers: tenants * containersPer, nodes: nodes, applyTime: time.Since(start), commands: len(log)}
}

// checkScaleRestore snapshots f, restores the snapshot into a new FSM and
// checks that it holds what fillFSM put in and snapshots to the same bytes.
func checkScaleRestore(tb testing.TB, f *fsm, want scaleState) (snap []byte, snapTime, restoreTime time.Duration) {
	tb.Helper()
	start := time.Now()
	s, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	var sink scaleSink
	if err := s.Persist(&sink); err != nil {
		tb.Fatal(err)
	}
	s.Release()
	snapTime = time.Since(start)

	g := newFSM()
	start = time.Now()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		tb.Fatal(err)
	}
	restoreTime = time.Since(start)
	containers := 0
	for _, cs := range g.containers {
		containers += len(cs)
	}
	if len(g.tenants) != want.tenants || len(g.keys) != want.tenants || containers != want.containers || len(g.nodes) != want.nodes || len(g.maps) != 1 {
		tb.Fatalf("restored %d tenants, %d keys, %d containers, %d nodes, %d maps; want %d, %d, %d, %d, 1",
			len(g.tenants), len(g.keys), containers, len(g.nodes), len(g.maps), want.tenants, want.tenants, want.containers, want.nodes)
	}
	s2, err := g.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	var again scaleSink
	if err := s2.Persist(&again); err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), sink.Bytes()) {
		tb.Fatalf("the restored state snapshots to %d bytes that differ from the original %d", again.Len(), sink.Len())
	}
	return sink.Bytes(), snapTime, restoreTime
}

// TestFSMScaleSmall is the always-run version of BenchmarkFSMScale: 1,000
// tenants with 10 containers each and 20 nodes survive a snapshot and
// restore intact.
func TestFSMScaleSmall(t *testing.T) {
	f := newFSM()
	want := fillFSM(t, f, 1000, 10, 20, 4)
	checkScaleRestore(t, f, want)
}

// BenchmarkFSMScale measures the Raft state of a large cluster: 100,000
// tenants (one sealed key each), 1,000,000 containers, 1,000 nodes of 12
// drives and their cluster map. It reports the apply rate, the snapshot's
// size and the times to take and to restore it. Run it with
//
//	go test -run '^$' -bench FSMScale -benchtime 1x -timeout 30m ./cluster
func BenchmarkFSMScale(b *testing.B) {
	for b.Loop() {
		f := newFSM()
		want := fillFSM(b, f, 100_000, 10, 1000, 12)
		snap, snapTime, restoreTime := checkScaleRestore(b, f, want)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rate := float64(want.commands) / want.applyTime.Seconds()
		b.Logf("%d tenants, %d containers, %d nodes: %d commands applied in %v (%.0f/s); snapshot %.1f MB taken in %v, restored in %v; heap in use %.0f MB",
			want.tenants, want.containers, want.nodes, want.commands, want.applyTime.Round(time.Millisecond), rate,
			float64(len(snap))/(1<<20), snapTime.Round(time.Millisecond), restoreTime.Round(time.Millisecond), float64(ms.HeapInuse)/(1<<20))
		b.ReportMetric(rate, "applies/s")
		b.ReportMetric(float64(len(snap))/(1<<20), "snapshot-MB")
		b.ReportMetric(restoreTime.Seconds(), "restore-s")
	}
}
