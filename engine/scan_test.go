package engine

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// TestScanFindsMissedWrites: keys written while a drive was offline are
// found by Scan (without being read) and repaired by the healer.
func TestScanFindsMissedWrites(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	ctx := context.Background()
	for i := range 20 {
		r.put(t, fmt.Sprintf("before-%02d", i), randBytes(uint64(i), 2000), -1)
	}
	r.faulty[0].SetOffline(true)
	missed := 0
	for i := range 20 {
		key := fmt.Sprintf("during-%02d", i)
		r.put(t, key, randBytes(uint64(100+i), 200_000), -1)
		if slices.Contains(r.e.mapOf().Set(r.e.mapOf().PGOf("t", "c", key)), r.ids[0]) {
			missed++
		}
	}
	// While the drive is down, it cannot be listed: nothing is queued for it.
	st, err := r.e.Scan(ctx, "t", "c", "", 1000)
	if err != nil || st.Keys != 40 || st.Queued != 0 {
		t.Fatalf("scan with the drive down: %+v, %v; want 40 keys, none queued", st, err)
	}
	r.faulty[0].SetOffline(false)
	// In pages of 7 keys.
	queued, after := 0, ""
	for {
		st, err := r.e.Scan(ctx, "t", "c", after, 7)
		if err != nil {
			t.Fatal(err)
		}
		queued += st.Queued
		if after = st.Next; after == "" {
			break
		}
	}
	if missed == 0 || queued != missed || len(r.e.Degraded()) != missed {
		t.Fatalf("queued %d (heal queue %d), want the %d keys whose set holds the drive", queued, len(r.e.Degraded()), missed)
	}
	for _, it := range r.e.Degraded() {
		if _, err := r.e.Heal(ctx, it.Tenant, it.Container, it.Key); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := r.e.Scan(ctx, "t", "c", "", 1000); err != nil || st.Queued != 0 {
		t.Errorf("scan after healing: %+v, %v; want nothing queued", st, err)
	}
}
