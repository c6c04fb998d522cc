package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// failList fails ListRecords while on.
type failList struct {
	driver.Driver
	on *atomic.Bool
}

func (f failList) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	if f.on.Load() {
		return nil, driver.ErrOffline
	}
	return f.Driver.ListRecords(ctx, prefix, after, limit)
}

// TestVersionAboveNeedsQuorum: the walk asking whether a version lists
// at or above a page's bound answers only if enough drives answered it.
// With three of four drives (2+2) failing their listings, it used to end
// as if none were found (no g.finish): a page after a version marker
// could then mark an older version the latest (review 29t L1).
func TestVersionAboveNeedsQuorum(t *testing.T) {
	on := new(atomic.Bool)
	n := 0
	r := newRig(t, rigOptions{drives: 4, noSync: true, wrap: func(d driver.Driver) driver.Driver {
		n++
		if n == 1 {
			return d
		}
		return failList{d, on}
	}})
	v1 := r.vput(t, "k", randBytes(1, 100), VersioningEnabled)
	v2 := r.vput(t, "k", randBytes(2, 100), VersioningEnabled)
	for _, c := range []struct {
		bound listPos
		want  bool
	}{
		{listPos{vidTime(v1.VersionID), v1.VersionID}, true},
		{listPos{vidTime(v2.VersionID) + 1, v2.VersionID}, false}, // nothing at or above: the walk ends
	} {
		above, err := r.e.versionAbove(t.Context(), "t", "c", "k\x00", c.bound)
		if err != nil || above != c.want {
			t.Fatalf("versionAbove(%v) with every drive listing: %v, %v; want %v", c.bound, above, err, c.want)
		}
	}
	bound := listPos{vidTime(v2.VersionID) + 1, v2.VersionID}
	on.Store(true)
	above, err := r.e.versionAbove(t.Context(), "t", "c", "k\x00", bound)
	if !errors.Is(err, ErrReadQuorum) {
		t.Errorf("versionAbove with 3 of 4 drives failing their listings: %v, %v; want ErrReadQuorum", above, err)
	}
}
