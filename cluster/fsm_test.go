package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/placement"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

func snapshotBytes(t *testing.T, f *fsm) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

func mustEncode(t *testing.T, ct cmdType, payload any) []byte {
	t.Helper()
	b, err := encodeCmd(ct, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// commandLog is a log exercising every command, including failing ones,
// with generated keys.
func commandLog(t *testing.T) [][]byte {
	t.Helper()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var log [][]byte
	add := func(ct cmdType, p any) { log = append(log, mustEncode(t, ct, p)) }
	var keys []keyRecord
	for i := range 20 {
		name := fmt.Sprintf("t%02d", i%7) // repeats: some creates fail
		k := newKey(t0.Add(time.Duration(i) * time.Second))
		keys = append(keys, k)
		add(cmdCreateTenant, createTenantCmd{Name: name, Created: k.Created, Key: k})
		add(cmdCreateKey, createKeyCmd{Tenant: name, Key: newKey(k.Created)})
		add(cmdCreateKey, createKeyCmd{Tenant: "t03", Key: keys[0]}) // duplicate access key
		for j := range 5 {
			add(cmdCreateContainer, createContainerCmd{Tenant: name, Name: fmt.Sprintf("c%d", (i+j)%9), Created: k.Created})
		}
		add(cmdDeleteContainer, deleteContainerCmd{Tenant: fmt.Sprintf("t%02d", i%5), Name: fmt.Sprintf("c%d", i%9)})
		add(cmdDeleteKey, deleteKeyCmd{Tenant: name, AccessKey: keys[i/2].AccessKey})
		add(cmdDeleteTenant, deleteTenantCmd{Name: fmt.Sprintf("t%02d", i%11)})
		add(cmdSettleContainers, settleContainersCmd{Epoch: placement.Epoch(i % 2)}) // 1 fails: no map
	}
	log = append(log, []byte{200, '{', '}'}, []byte{byte(cmdCreateTenant), 'x'}, nil)
	return log
}

func applyAll(f *fsm, log [][]byte) []string {
	var results []string
	for i, data := range log {
		r := f.Apply(&raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: data})
		results = append(results, fmt.Sprint(r))
	}
	return results
}

func TestFSMDeterminism(t *testing.T) {
	log := commandLog(t)
	a, b := newFSM(), newFSM()
	ra, rb := applyAll(a, log), applyAll(b, log)
	if strings.Join(ra, "\n") != strings.Join(rb, "\n") {
		t.Error("the same log gave different Apply results")
	}
	sa, sb := snapshotBytes(t, a), snapshotBytes(t, b)
	if !bytes.Equal(sa, sb) {
		t.Fatalf("the same log gave different snapshots:\n%s\n%s", sa, sb)
	}
	var d snapshotData
	if err := json.Unmarshal(sa, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Tenants) == 0 || len(d.Containers) == 0 {
		t.Errorf("log left %d tenants and %d containers; want some of each", len(d.Tenants), len(d.Containers))
	}
	// Snapshots are stable across repeated calls (no map order) and
	// survive a restore round trip.
	for range 5 {
		if !bytes.Equal(snapshotBytes(t, a), sa) {
			t.Fatal("repeated Snapshot differs")
		}
	}
	c := newFSM()
	if err := c.Restore(io.NopCloser(bytes.NewReader(sa))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, c), sa) {
		t.Error("snapshot after Restore differs")
	}
	// Restore replaces, not merges.
	d2 := newFSM()
	applyAll(d2, [][]byte{mustEncode(t, cmdCreateTenant, createTenantCmd{Name: "stray", Key: newKey(time.Time{})})})
	if err := d2.Restore(io.NopCloser(bytes.NewReader(sa))); err != nil {
		t.Fatal(err)
	}
	if _, ok := d2.tenant("stray"); ok || !bytes.Equal(snapshotBytes(t, d2), sa) {
		t.Error("Restore kept state from before")
	}
}
