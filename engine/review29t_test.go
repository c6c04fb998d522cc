package engine

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// cutAllLost lists every record (upload records too) as driver/local
// lists one whose data is lost: its version, no data, Truncated.
type cutAllLost struct{ driver.Driver }

func (l cutAllLost) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	rs, err := l.Driver.ListRecords(ctx, prefix, after, limit)
	for i := range rs {
		rs[i].Data, rs[i].Truncated = []byte{}, true
	}
	return rs, err
}

// slowList answers ListRecords only after 2 s (past maxStraggle) once on.
type slowList struct {
	driver.Driver
	on *atomic.Bool
}

func (s slowList) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	if s.on.Load() {
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Driver.ListRecords(ctx, prefix, after, limit)
}

// review29tRig: 4 drives, 2+2 (one set, k = 2). d00 and d03 list every
// record lost, d01 is slow (once on), d02 is fine. Before 41ed525 d00 and
// d03 failed ListRecords: the listing waited for d01 (only d02 answered,
// short of k) and answered. Since 4f54fc3 a lost record fails the drive's
// listing too, but only after the fan-out accepted its batch as an
// answer: d00, d02, d03 make the quorum, d01 is dropped after the
// straggler grace, then d00 and d03 drop out and the listing fails.
func review29tRig(t *testing.T) (*rig, *atomic.Bool) {
	on := new(atomic.Bool)
	n := 0
	r := newRig(t, rigOptions{drives: 4, noSync: true, wrap: func(d driver.Driver) driver.Driver {
		n++
		switch n {
		case 1, 4:
			return cutAllLost{d}
		case 2:
			return slowList{d, on}
		}
		return d
	}})
	return r, on
}

// TestReview29tLostRecordAcceptedAsAnswer: List (the merger's fill).
func TestReview29tLostRecordAcceptedAsAnswer(t *testing.T) {
	r, on := review29tRig(t)
	r.put(t, "k", randBytes(9, 40<<10), 40<<10)
	on.Store(true)
	res, err := r.e.List(t.Context(), "t", "c", ListOptions{Limit: 10})
	if err != nil || len(res.Artifacts) != 1 {
		t.Errorf("List, d00 and d03 listing k lost, d01 slow: %d artifacts, %v; want k from d01 and d02 (as before 41ed525)", len(res.Artifacts), err)
	}
}

// TestReview29tLostRecordAcceptedAsAnswerUploads: ListUploads (listMerged).
func TestReview29tLostRecordAcceptedAsAnswerUploads(t *testing.T) {
	r, on := review29tRig(t)
	if _, err := r.e.CreateUpload(t.Context(), "t", "c", "u", PutOptions{}); err != nil {
		t.Fatal(err)
	}
	on.Store(true)
	ups, _, err := r.e.ListUploads(t.Context(), "t", "c", "", "", "", 100)
	if err != nil || len(ups) != 1 {
		t.Errorf("ListUploads, d00 and d03 listing the upload lost, d01 slow: %d uploads, %v; want it from d01 and d02 (as before 41ed525)", len(ups), err)
	}
}
