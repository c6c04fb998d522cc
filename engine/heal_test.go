package engine

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// flipShardByte flips one byte in the shard file of key on drive j.
func flipShardByte(t *testing.T, r *rig, key string, j int) {
	t.Helper()
	files := shardFiles(t, r.dirOf(key, j))
	if len(files) != 1 {
		t.Fatalf("drive of shard %d holds %d shard files, want 1", j, len(files))
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	raw[100] ^= 1
	if err := os.WriteFile(files[0], raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHealDespiteOfflineDrive: with one drive of the set offline, Heal
// still repairs a corrupt shard on another drive, reports
// ErrHealIncomplete and keeps the artifact queued for the offline drive.
// The repaired shard then serves a read that needs it.
func TestHealDespiteOfflineDrive(t *testing.T) {
	r := newRig(t, rigOptions{drives: 6, stripeSize: 64 << 10}) // 4+2
	key := "big"
	data := randBytes(3, 1_000_000)
	r.put(t, key, data, -1)
	flipShardByte(t, r, key, 1)
	r.faultyOf(key, 5).SetOffline(true)
	healed, err := r.e.Heal(t.Context(), "t", "c", key)
	r.faultyOf(key, 5).SetOffline(false)
	if !slices.Equal(healed, []int{1}) || !errors.Is(err, ErrHealIncomplete) {
		t.Fatalf("Heal with drive 5 offline = %v, %v; want [1], ErrHealIncomplete", healed, err)
	}
	if q := r.e.Degraded(); len(q) != 1 || q[0] != (HealItem{"t", "c", key}) {
		t.Fatalf("heal queue %v, want the artifact kept for the offline drive", q)
	}
	// Shards 1, 3, 4 and 5 must serve: shard 1 only can if it was repaired.
	r.faultyOf(key, 0).SetOffline(true)
	r.faultyOf(key, 2).SetOffline(true)
	got, err := r.get(key, 0, -1)
	r.faultyOf(key, 0).SetOffline(false)
	r.faultyOf(key, 2).SetOffline(false)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through the repaired shard: equal %v, %v", bytes.Equal(got, data), err)
	}
}

// TestHealUsesShardsOfDrivesMissingRecord: drives that missed only the
// record (as an acknowledged write may leave them) keep intact shard
// files, which a read and Heal use as sources: with one more shard
// corrupt, 5 of 6 files are intact and the artifact is repaired in full.
func TestHealUsesShardsOfDrivesMissingRecord(t *testing.T) {
	r := newRig(t, rigOptions{drives: 6, stripeSize: 64 << 10}) // 4+2, wq 4
	key := "big"
	data := randBytes(3, 1_000_000)
	r.put(t, key, data, -1)
	for _, j := range []int{4, 5} {
		if err := r.faultyOf(key, j).DeleteRecord(t.Context(), indexPrefix("t", "c")+key, driver.Version{}); err != nil {
			t.Fatal(err)
		}
	}
	flipShardByte(t, r, key, 0)
	if got, err := r.get(key, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: equal %v, %v", bytes.Equal(got, data), err)
	}
	healed, err := r.e.Heal(t.Context(), "t", "c", key)
	if err != nil || !slices.Equal(healed, []int{0, 4, 5}) {
		t.Fatalf("Heal = %v, %v; want [0 4 5]", healed, err)
	}
	if healed, err := r.e.Heal(t.Context(), "t", "c", key); err != nil || len(healed) != 0 {
		t.Fatalf("second Heal = %v, %v; want nothing to do", healed, err)
	}
}
