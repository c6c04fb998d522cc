package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// listsCut lists every record as driver/local lists, since 41ed525, one
// whose pack read fails with driver.ErrCorrupt: its version, no data,
// Truncated. GetRecord is untouched.
type listsCut struct{ driver.Driver }

func (l listsCut) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	rs, err := l.Driver.ListRecords(ctx, prefix, after, limit)
	for i := range rs {
		if rs[i].Key != "" && rs[i].Key[0] >= 0x20 {
			rs[i].Data, rs[i].Truncated = []byte{}, true
		}
	}
	return rs, err
}

// TestReview29sListedCutRecordHidesObject: a record listed with no data
// and Truncated (driver/local lists so a record whose data is lost) is
// taken as a failure of that drive's listing, not as a key the drive does
// not hold. Before, the merger dropped it with the drive counted as
// answering: with every drive listing the object so, List showed nothing
// and DeleteContainer deleted a container that was not empty. Now a
// listing with every drive so fails (read quorum), and with one drive so
// the others answer: the object is listed and the container is not empty.
func TestReview29sListedCutRecordHidesObject(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  int // drives listing every record cut without data
	}{{"every drive", 4}, {"one drive", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			wrapped := 0
			r := newRig(t, rigOptions{drives: 4, noSync: true, wrap: func(d driver.Driver) driver.Driver {
				if wrapped++; wrapped <= tc.cut {
					return listsCut{d}
				}
				return d
			}})
			r.put(t, "k", randBytes(9, 40<<10), 40<<10)
			res, err := r.e.List(t.Context(), "t", "c", ListOptions{Limit: 10})
			switch {
			case tc.cut == 4 && !errors.Is(err, ErrReadQuorum):
				t.Errorf("List with every drive's record lost: %d artifacts, %v; want ErrReadQuorum", len(res.Artifacts), err)
			case tc.cut < 4 && (err != nil || len(res.Artifacts) != 1):
				t.Errorf("List with one drive's record lost: %d artifacts, %v; want k from the others", len(res.Artifacts), err)
			}
			if err := r.e.DeleteContainer(t.Context(), "t", "c"); err == nil {
				t.Error("DeleteContainer deleted a container holding k")
			}
		})
	}
}
