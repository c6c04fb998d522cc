package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/faulty"
	"github.com/vaultaire/vaultaire/placement"
)

// Review 25 of dde3073, which let a read whose write-back failed serve
// the older version k drives held. Each test failed on it: the newer
// version may have been served already (a map history's skipped
// write-back, a read fewer than m+1 drives answered), so serving the
// older one after it unsees it. The change was withdrawn; these tests
// keep it out (the read answers 503 instead: TestReadOfFailedWriteWaitsForDrives).

// r25Topo is a Static-like Topology whose map history a test sets and
// drops (MapHistory), over the same drives.
type r25Topo struct {
	cur    *placement.Map
	drives map[placement.DriveID]driver.Driver

	mu    sync.Mutex // guards older
	older []*placement.Map
}

func (t *r25Topo) Map() *placement.Map { return t.cur }

func (t *r25Topo) Drive(id placement.DriveID) (driver.Driver, error) {
	d, ok := t.drives[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownDrive, id)
	}
	return d, nil
}

func (t *r25Topo) OlderMaps() []*placement.Map {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.older)
}

func (t *r25Topo) setOlder(ms ...*placement.Map) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.older = ms
}

// newR25Rig is newDFRigPolicy over an r25Topo: the current map is of
// epoch 2; the older map (epoch 1, the same drives and sets, as most PGs
// of a map that a join or drain changed) is the history until dropped.
func newR25Rig(t *testing.T, pol placement.Policy) (*dfRig, *r25Topo, *placement.Map) {
	t.Helper()
	r, pdrives, drives := newDFDrives(t, 1, pol.SetSize())
	old, err := placement.NewMap(pdrives, pol, placement.DefaultPGCount, 1)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := placement.NewMap(pdrives, pol, placement.DefaultPGCount, 2)
	if err != nil {
		t.Fatal(err)
	}
	topo := &r25Topo{cur: cur, drives: drives}
	r.e, err = New(Config{Topology: topo, Containers: &MemContainers{}, StripeSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.e.WaitBackground)
	if err := r.e.CreateContainer(context.Background(), "t", "c"); err != nil {
		t.Fatal(err)
	}
	return r, topo, old
}

// TestReview25MapDropUnseesServedVersion: 2+2, two drives failing record
// writes, a PUT lands on the other two and fails. While the map history
// holds an older map, writeBack skips the write-back of a version held by
// k drives (migration's copy) and reads serve the new version, answered
// by all four drives. Once the older map is dropped, the write-back runs,
// fails, and openAt serves the version before: a value seen, then unseen,
// by reads every drive answered. (Before dde3073: 503.)
func TestReview25MapDropUnseesServedVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		del  bool
	}{
		{"shard files", 300 << 10, false},
		{"inline", 2 << 10, false},
		{"deletion", 300 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			r, topo, old := newR25Rig(t, placement.Policy{Data: 2, Parity: 2})
			v1 := bytes.Repeat([]byte("1"), tc.size)
			v2 := bytes.Repeat([]byte("2"), tc.size)
			if err := r.putBytes(ctx, "k", v1); err != nil {
				t.Fatal(err)
			}
			topo.setOlder(old) // a join: the history holds the map before
			r.set([]int{2, 3}, faulty.Rule{Op: faulty.OpPutRecord, Fault: faulty.EIO})
			var err error
			if tc.del {
				err = r.e.Delete(ctx, "t", "c", "k")
			} else {
				err = r.putBytes(ctx, "k", v2)
			}
			if err == nil {
				t.Fatal("the write was acknowledged with two of four drives failing record writes")
			}
			got, err := r.read(ctx, "k")
			switch {
			case tc.del && errors.Is(err, ErrNoSuchArtifact):
				t.Log("with history: the deletion served (absent)")
			case tc.del:
				t.Skipf("with history: %v (%d bytes): the deletion was not served", err, len(got))
			case err != nil:
				t.Skipf("with history: %v: the new version was not served", err)
			case bytes.Equal(got, v2):
				t.Log("with history: the new version served")
			default:
				t.Skipf("with history: the older version served")
			}
			topo.setOlder() // migration done: the older map is dropped
			for i := range 3 {
				got, err := r.read(ctx, "k")
				if err == nil && bytes.Equal(got, v1) {
					t.Fatalf("read %d after the history was dropped: the version before (%d bytes), after reads every drive answered served the %s", i, len(got), map[bool]string{true: "deletion", false: "new version"}[tc.del])
				}
				t.Logf("read %d after the drop: err %v", i, err)
			}
		})
	}
}

// TestReview25ListAgreesWithGet: 2+2, a PUT (or DELETE) that failed on two
// drives failing record writes. The listing (no write-back) serves the new
// version (or hides the key); Open now serves the version before. A
// client that lists and then GETs (or HEADs, or sends If-Match with the
// listed ETag) sees two different objects under one key for as long as
// the faults last. (Before dde3073 the GET answered 503.)
func TestReview25ListAgreesWithGet(t *testing.T) {
	for _, del := range []bool{false, true} {
		t.Run(map[bool]string{false: "put", true: "delete"}[del], func(t *testing.T) {
			ctx := t.Context()
			r := newDFRigPolicy(t, 1, placement.Policy{Data: 2, Parity: 2})
			v1 := bytes.Repeat([]byte("1"), 300<<10)
			v2 := bytes.Repeat([]byte("2"), 200<<10)
			if err := r.putBytes(ctx, "k", v1); err != nil {
				t.Fatal(err)
			}
			r.set([]int{2, 3}, faulty.Rule{Op: faulty.OpPutRecord, Fault: faulty.EIO})
			var err error
			if del {
				err = r.e.Delete(ctx, "t", "c", "k")
			} else {
				err = r.putBytes(ctx, "k", v2)
			}
			if err == nil {
				t.Fatal("the write was acknowledged")
			}
			res, err := r.e.List(ctx, "t", "c", ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			info, herr := r.e.Head(ctx, "t", "c", "k")
			switch {
			case herr != nil:
				t.Logf("head: %v (listing %d keys)", herr, len(res.Artifacts))
			case len(res.Artifacts) == 0:
				t.Fatalf("the listing hides k (the failed deletion), Head serves it: %d bytes, ETag %s", info.Size, info.ETag)
			case res.Artifacts[0].ETag != info.ETag || res.Artifacts[0].Size != info.Size:
				t.Fatalf("the listing has k as %d bytes ETag %s, Head serves %d bytes ETag %s", res.Artifacts[0].Size, res.Artifacts[0].ETag, info.Size, info.ETag)
			}
		})
	}
}

// TestReview25SlowDrivesThenFull: 2+2 (DefaultPolicy of 4 and 5 drives),
// the two drives failing record writes also slow to answer record reads
// (past the straggler grace). A read answered by the two others alone
// serves the failed PUT's version (need = min(m+1, answered) = 2, no
// write-back); the next read, every drive answering in time, serves the
// version before. (Before dde3073: 503.) This is the caveat openAt's
// doc states; it is listed because with faulty drives a slow answer is
// the common case, not a corner.
func TestReview25SlowDrivesThenFull(t *testing.T) {
	ctx := t.Context()
	r := newDFRigPolicy(t, 1, placement.Policy{Data: 2, Parity: 2})
	v1 := bytes.Repeat([]byte("1"), 300<<10)
	v2 := bytes.Repeat([]byte("2"), 300<<10)
	if err := r.putBytes(ctx, "k", v1); err != nil {
		t.Fatal(err)
	}
	eio := faulty.Rule{Op: faulty.OpPutRecord, Fault: faulty.EIO}
	r.set([]int{2, 3}, eio)
	if err := r.putBytes(ctx, "k", v2); err == nil {
		t.Fatal("the write was acknowledged")
	}
	r.set([]int{2, 3}, eio, faulty.Rule{Op: faulty.OpGetRecord, Fault: faulty.Slow, Delay: 2 * time.Second})
	got, err := r.read(ctx, "k")
	if errors.Is(err, ErrReadQuorum) {
		return // it waited for the slow drives and could not write v2 back (readRecordsConfirm)
	}
	if err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("read with two drives slow: %v (%d bytes), want v2 or ErrReadQuorum", err, len(got))
	}
	r.set([]int{2, 3}, eio)
	got, err = r.read(ctx, "k")
	if err == nil && bytes.Equal(got, v1) {
		t.Fatalf("a read every drive answered serves the version before, after a read served the new one")
	}
}

// TestReview25OnePlusThree: 1+3 (k=1, m=3, write quorum 4). A read that
// three drives answered (more than k) serves a version on three drives
// without a write-back (need = min(4, 3)); a read all four answered, the
// fourth failing writes, serves the version before. openAt's doc says
// only a read that k drives alone answered may have served it.
func TestReview25OnePlusThree(t *testing.T) {
	ctx := t.Context()
	r := newDFRigPolicy(t, 1, placement.Policy{Data: 1, Parity: 3})
	v1 := bytes.Repeat([]byte("1"), 300<<10)
	v2 := bytes.Repeat([]byte("2"), 300<<10)
	if err := r.putBytes(ctx, "k", v1); err != nil {
		t.Fatal(err)
	}
	eio := faulty.Rule{Op: faulty.OpPutRecord, Fault: faulty.EIO}
	r.set([]int{3}, eio)
	if err := r.putBytes(ctx, "k", v2); err == nil {
		t.Fatal("the write was acknowledged on three of 1+3's four drives")
	}
	r.set([]int{3}, eio, faulty.Rule{Op: faulty.OpGetRecord, Fault: faulty.Slow, Delay: 2 * time.Second})
	got, err := r.read(ctx, "k")
	if errors.Is(err, ErrReadQuorum) {
		return // it waited for the slow drives and could not write v2 back (readRecordsConfirm)
	}
	if err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("read with one drive slow: %v (%d bytes), want v2 or ErrReadQuorum", err, len(got))
	}
	r.set([]int{3}, eio)
	got, err = r.read(ctx, "k")
	if err == nil && bytes.Equal(got, v1) {
		t.Fatalf("a read all four drives answered serves the version before, after a read three answered served the new one")
	}
}

// TestWriteBackSkipNeverUnseen: 2+2, two drives failing record writes, a
// PUT lands on the other two and fails, while the map history holds an
// older map. writeBack skipped the write-back of a version on k drives
// whenever a history existed (for migration's copy of a version an older
// set holds), so a read every drive answered served the failed PUT on
// two drives; a read the other two drives answered (the first two slow
// or away) then served the version before: a value seen, then unseen.
// The skip now needs no older version held by k drives of the set
// (heldBefore): then the write-back is tried, fails, and the read answers
// 503 until the drives take writes.
func TestWriteBackSkipNeverUnseen(t *testing.T) {
	ctx := t.Context()
	r, topo, old := newR25Rig(t, placement.Policy{Data: 2, Parity: 2})
	v1 := bytes.Repeat([]byte("1"), 300<<10)
	v2 := bytes.Repeat([]byte("2"), 300<<10)
	if err := r.putBytes(ctx, "k", v1); err != nil {
		t.Fatal(err)
	}
	topo.setOlder(old)
	r.set([]int{2, 3}, faulty.Rule{Op: faulty.OpPutRecord, Fault: faulty.EIO})
	if err := r.putBytes(ctx, "k", v2); err == nil {
		t.Fatal("the write was acknowledged with two of four drives failing record writes")
	}
	got, err := r.read(ctx, "k")
	served := err == nil && bytes.Equal(got, v2)
	t.Logf("read with every drive answering: %v, new version served: %v", err, served)
	r.set([]int{0, 1}, faulty.Rule{Op: faulty.OpAll, Fault: faulty.Offline})
	got, err = r.read(ctx, "k")
	t.Logf("read with the new version's two drives away: %v (%d bytes)", err, len(got))
	if served && err == nil && bytes.Equal(got, v1) {
		t.Fatal("a read served the failed PUT's version, the next one the version before it")
	}
	if err == nil && !bytes.Equal(got, v1) {
		t.Fatalf("read with the new version's drives away: %d bytes, neither version", len(got))
	}
}
