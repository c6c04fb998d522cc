package engine

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver/faulty"
	"github.com/vaultaire/vaultaire/placement"
)

// TestReadWaitsForWriteQuorum: 2+2 (k = 2, write quorum 3), a PUT of v2
// lands only on drives 0 and 1 (2 and 3 fail record writes, and keep
// failing them). Reads then run with one pair or the other slow past the
// straggler grace but within confirmWait. A read answered by one pair
// alone served what that pair held without a write-back (need was cut to
// the two answers): v2 through drives 0 and 1, then v1 through 2 and 3,
// a version seen and then unseen (REVIEW25 F3). Every read now waits for
// a write quorum's answers, finds v2 on fewer than m+1 drives, cannot
// write it back and answers ErrReadQuorum; once served, v2 must never
// give way to v1.
func TestReadWaitsForWriteQuorum(t *testing.T) {
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
		t.Fatal("the write was acknowledged on two of 2+2's drives")
	}
	slow := faulty.Rule{Op: faulty.OpGetRecord, Fault: faulty.Slow, Delay: 2 * time.Second}
	steps := []struct {
		name string
		slow []int
	}{
		{"drives 2 and 3 slow", []int{2, 3}},
		{"drives 0 and 1 slow", []int{0, 1}},
		{"none slow", nil},
		{"drives 2 and 3 slow again", []int{2, 3}},
	}
	served := ""
	for _, s := range steps {
		r.set([]int{2, 3}, eio)
		for _, i := range s.slow {
			if i >= 2 {
				r.drives[i].SetRules(eio, slow)
			} else {
				r.drives[i].SetRules(slow)
			}
		}
		got, err := r.read(ctx, "k")
		switch {
		case err != nil && !errors.Is(err, ErrReadQuorum):
			t.Fatalf("%s: %v, want the version or ErrReadQuorum", s.name, err)
		case err != nil:
		case bytes.Equal(got, v2):
			served = "v2"
		case bytes.Equal(got, v1):
			if served == "v2" {
				t.Fatalf("%s: served v1 after a read served v2", s.name)
			}
			served = "v1"
		default:
			t.Fatalf("%s: read %d bytes of neither version", s.name, len(got))
		}
		t.Logf("%s: err %v, served so far %q", s.name, err, served)
	}
	if served != "" {
		t.Fatalf("a read served %s while v2 was on two drives that could not be written back", served)
	}
	r.set(nil)
	got, err := r.read(ctx, "k")
	if err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("after the faults cleared: %v (%d bytes), want v2 written back", err, len(got))
	}
}

// TestReadServesWithDrivesAway: 2+2, two drives away. A read does not
// wait for drives that fail at once (they answer, with an error), and one
// that hangs holds it up by confirmWait at most: the artifact, written to
// all four, is served from the two that answer, as before.
func TestReadServesWithDrivesAway(t *testing.T) {
	ctx := t.Context()
	r := newDFRigPolicy(t, 1, placement.Policy{Data: 2, Parity: 2})
	v := bytes.Repeat([]byte("v"), 300<<10)
	if err := r.putBytes(ctx, "k", v); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		rule faulty.Rule
	}{
		{"failing", faulty.Rule{Op: faulty.OpGetRecord, Fault: faulty.EIO}},
		{"hung", faulty.Rule{Op: faulty.OpGetRecord, Fault: faulty.Slow, Delay: time.Minute}},
	} {
		r.set([]int{2, 3}, c.rule)
		began := time.Now()
		got, err := r.read(ctx, "k")
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("%s: %v (%d bytes), want the artifact from the two drives left", c.name, err, len(got))
		}
		t.Logf("%s: read in %v", c.name, time.Since(began))
	}
	r.set(nil)
}

// TestHealRollsTombstoneForward: 2+2, a DELETE whose tombstone landed on
// two drives only (the other two failing record writes) failed, and the
// tombstone, held by k drives and newest, is what reads serve. Heal found
// no artifact (ErrNoSuchArtifact), dropped the key from its queue and
// left the other two drives with the deleted version's record and shard
// files until some read rolled the tombstone forward (REVIEW25 F5). Heal
// now writes it to every drive of the set, as a read's write-back would.
func TestHealRollsTombstoneForward(t *testing.T) {
	ctx := t.Context()
	r := newDFRigPolicy(t, 1, placement.Policy{Data: 2, Parity: 2})
	if err := r.putBytes(ctx, "k", bytes.Repeat([]byte("1"), 300<<10)); err != nil {
		t.Fatal(err)
	}
	r.set([]int{2, 3}, faulty.Rule{Op: faulty.OpPutRecord, Fault: faulty.EIO})
	if err := r.e.Delete(ctx, "t", "c", "k"); err == nil {
		t.Fatal("the delete was acknowledged on two of 2+2's drives")
	}
	r.set(nil)
	if _, err := r.e.Heal(ctx, "t", "c", "k"); err != nil {
		t.Fatalf("heal: %v", err)
	}
	for i, d := range r.drives {
		raw, err := d.GetRecord(ctx, indexPrefix("t", "c")+"k")
		if err != nil {
			t.Fatalf("drive %d: %v", i, err)
		}
		rec, err := unmarshalRecord(raw.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !rec.Deleted {
			t.Errorf("drive %d holds the deleted version after Heal, not the tombstone", i)
		}
	}
}

// TestVersionListLatestIsPointerTarget: a versioned PUT that failed after
// its version record landed on two of 2+2's drives leaves a version no
// pointer names; GET serves the version before. ListVersions marked the
// newest listed version latest, the failed one: the listing reads only
// the records' heads, and a pointer's target is in its metadata. It must
// mark what GET serves.
func TestVersionListLatestIsPointerTarget(t *testing.T) {
	ctx := t.Context()
	r := newDFRigPolicy(t, 1, placement.Policy{Data: 2, Parity: 2})
	put := func(b []byte) (ArtifactInfo, error) {
		return r.e.Put(ctx, "t", "c", "k", bytes.NewReader(b), PutOptions{Size: int64(len(b)), Versioning: VersioningEnabled})
	}
	first, err := put(bytes.Repeat([]byte("1"), 300<<10))
	if err != nil {
		t.Fatal(err)
	}
	r.set([]int{2, 3}, faulty.Rule{Op: faulty.OpPutRecord, Fault: faulty.EIO})
	if _, err := put(bytes.Repeat([]byte("2"), 300<<10)); err == nil {
		t.Fatal("the write was acknowledged on two of 2+2's drives")
	}
	r.set(nil)
	a, err := r.e.Open(ctx, "t", "c", "k")
	if err != nil {
		t.Fatal(err)
	}
	if a.Info.VersionID != first.VersionID {
		t.Fatalf("GET serves %s, want the first, %s", a.Info.VersionID, first.VersionID)
	}
	res, err := r.e.ListVersions(ctx, "t", "c", VersionListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	latest := ""
	for _, v := range res.Versions {
		if v.IsLatest {
			latest += v.VersionID
		}
	}
	if latest != first.VersionID {
		t.Fatalf("ListVersions marks %q latest, GET serves %s", latest, first.VersionID)
	}
}
