package engine

import (
	"context"
	"os"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// R8: Heal excludes drives that merely lack the record from the rebuild
// sources, even though their shard files are intact.
func TestRegressHealExcludesIntactShards(t *testing.T) {
	r := newRig(t, rigOptions{drives: 6, stripeSize: 64 << 10}) // 4+2, wq 4
	key := "big"
	data := randBytes(3, 1_000_000)
	r.put(t, key, data, -1)
	// Records missed on drives 4 and 5 (an acknowledged write may look like this).
	for _, j := range []int{4, 5} {
		if err := r.faultyOf(key, j).DeleteRecord(context.Background(), indexPrefix("t", "c")+key, driver.Version{}); err != nil {
			t.Fatal(err)
		}
	}
	// One corrupt shard among the record holders.
	files := shardFiles(t, r.dirOf(key, 0))
	raw, _ := os.ReadFile(files[0])
	raw[100] ^= 1
	os.WriteFile(files[0], raw, 0o644)
	got, err := r.get(key, 0, -1)
	t.Logf("Get: err %v ok %v", err, err == nil && string(got) == string(data))
	healed, err := r.e.Heal(context.Background(), "t", "c", key)
	t.Logf("Heal: %v %v", healed, err)
	if err != nil {
		t.Errorf("Heal failed with 5 intact shard files of 6: %v", err)
	}
}
