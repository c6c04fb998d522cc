package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/vaultaire/vaultaire/placement"
)

// TestProbe14DisjointLayouts (VAULT_PROBE14=1): with more local drives
// than the local layout's set plus the hybrid layout's data shards (here
// 20 local drives, a 12+4 local set and a 12-data hybrid set: no, 2+2 by
// an operator-chosen policy), a key's local set and hybrid set can share
// no drive. Then a key written under one layout and overwritten or
// deleted under the other is read, once the policy flipped back and
// before the re-layout walk reached it, from the first layout's set, which
// still holds k records of the first version: newerElsewhere sees nothing
// (no shared drive holds the newer record).
func TestProbe14DisjointLayouts(t *testing.T) {
	if os.Getenv("VAULT_PROBE14") != "1" {
		t.Skip("VAULT_PROBE14=1")
	}
	for _, tc := range []struct {
		name        string
		first, then string
		del         bool
		chosen      bool
	}{
		{"overwrite local->hybrid", PolicyLocal, PolicyHybrid, false, false},
		{"delete local->hybrid", PolicyLocal, PolicyHybrid, true, false},
		{"overwrite hybrid->local", PolicyHybrid, PolicyLocal, false, false},
		{"delete hybrid->local", PolicyHybrid, PolicyLocal, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 20 local drives, 2 remote, an operator-chosen 4+2 (vaultd
			// cluster set-erasure): local sets of 6, hybrid 4 local + 2 remote.
			r := newRig(t, rigOptions{drives: 22, remote: 2, noSync: true, policy: placement.Policy{Data: 4, Parity: 2}})
			r.e.cfg.Topology.Map().Chosen = true
			var policy atomic.Value
			policy.Store(tc.first)
			r.e.cfg.StoragePolicy = func(string, string) string { return policy.Load().(string) }
			ctx := context.Background()
			const n = 120
			disjoint := 0
			for i := range n {
				k := fmt.Sprintf("k%03d", i)
				r.put(t, k, randBytes(uint64(i), 3000), 3000)
			}
			policy.Store(tc.then)
			for i := range n {
				k := fmt.Sprintf("k%03d", i)
				if tc.del {
					if err := r.e.Delete(ctx, "t", "c", k); err != nil {
						t.Fatal(err)
					}
				} else {
					r.put(t, k, randBytes(uint64(1000+i), 3001), 3001)
				}
			}
			r.e.WaitBackground()
			policy.Store(tc.first) // flipped back, before any re-layout
			bad := 0
			for i := range n {
				k := fmt.Sprintf("k%03d", i)
				a, b := r.e.layoutSetsFor(k, tc.first, tc.then)
				shared := 0
				for _, d := range a {
					if slices.Contains(b, d) {
						shared++
					}
				}
				if shared == 0 {
					disjoint++
				}
				got, err := r.get(k, 0, -1)
				switch {
				case tc.del && errors.Is(err, ErrNoSuchArtifact):
				case !tc.del && err == nil && bytes.Equal(got, randBytes(uint64(1000+i), 3001)):
				default:
					bad++
					if bad <= 5 {
						t.Errorf("HIGH: %s (sets share %d drives): read after flip back: %d bytes (first version: %v), err %v", k, shared, len(got), bytes.Equal(got, randBytes(uint64(i), 3000)), err)
					}
				}
			}
			t.Logf("%d of %d keys in PGs whose two layouts' sets share no drive; %d bad reads", disjoint, n, bad)
		})
	}
}

// layoutSetsFor returns the drive sets of key under two layouts.
func (e *Engine) layoutSetsFor(key, a, b string) (sa, sb []string) {
	raw := e.cfg.Topology.Map()
	set := func(pol string) []string {
		l := layoutOfPolicy(pol)
		m := e.layoutMap(raw, l)
		var out []string
		for _, d := range m.Set(pgOf(m, "t", "c", key)) {
			out = append(out, string(d))
		}
		return out
	}
	return set(a), set(b)
}
