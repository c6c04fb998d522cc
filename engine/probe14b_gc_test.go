package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// TestProbe14bCollectorAfterFlip: a striped Put under the local layout
// completes while one drive of its key's set went offline after the
// intent was written, so the removal
// of its stripe intent misses that drive and the intent stays there. The
// container then goes hybrid. Past InFlightGrace, CollectStripeOrphans
// lists the intent and asks anyRecordNames whether a record names its
// first part, looking only in the key's set of the container's current
// layout (hybrid) and the older maps, not otherLayouts, where the
// completed artifact's record is: it decides the Put never completed and
// deletes every part's shard files of an acknowledged artifact.
func TestProbe14bCollectorAfterFlip(t *testing.T) {
	// (held up in the probe of session 14: kept as a regression test)
	for _, dir := range []struct{ from, to string }{{PolicyLocal, PolicyHybrid}, {PolicyHybrid, PolicyLocal}} {
		t.Run(dir.from+"->"+dir.to, func(t *testing.T) {
			r := newP14Rig(t, 6, 2, placement.Policy{}, 4)
			ctx := t.Context()
			r.policy.Store(dir.from)
			m := r.e.mapFor("t", "c")
			// (Held up: a key's sets under the two layouts always share
			// drives, classTable ranks a PG's drives alike, so
			// anyRecordNames finds the record through the shared ones.)
			const key = "big"
			set := m.Set(m.PGOf("t", "c", key))
			size := 10 * stripeChunkStripes * (64 << 10)
			data := randBytes(9, size)
			// The drive goes offline once the intent is written (the Put
			// reads its body after writeIntent).
			body := &errAfterReader{r: bytes.NewReader(data), n: 1, at: func() { r.offline(true, set[len(set)-1]) }}
			info, err := r.e.Put(ctx, "t", "c", key, body, PutOptions{Size: int64(size)})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			r.e.WaitBackground()
			r.offline(false, set[len(set)-1])
			rec := r.homeRec(t, m, key)
			t.Logf("layout %s set %v, record striped %v width %d parts %d", m.Layout, set, rec != nil && rec.striped(), rec.Width, len(rec.Parts))
			if err := r.e.CheckPolicyChange(ctx, "t", "c", dir.to); err != nil {
				t.Fatal(err)
			}
			r.policy.Store(dir.to)
			if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read after flip: %v (equal %v)", err, bytes.Equal(got, data))
			}
			r.skew.Store(int64(InFlightGrace + time.Minute))
			st, err := r.e.CollectStripeOrphans(ctx)
			t.Logf("CollectStripeOrphans: %+v, %v", st, err)
			r.e.WaitBackground()
			got, err := read(ctx, r.e, key, 0, -1)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("acknowledged striped artifact (etag %s) after the collector: read %v (equal %v)", info.ETag, err, bytes.Equal(got, data))
			}
		})
	}
}

// homeRec returns key's record on the first drive of its set in m that has one.
func (r *p14Rig) homeRec(t *testing.T, m *placement.Map, key string) *record {
	t.Helper()
	for _, id := range m.Set(m.PGOf("t", "c", key)) {
		raw, err := r.faulty[id].GetRecord(t.Context(), indexPrefix("t", "c")+key)
		if err != nil {
			continue
		}
		rec, err := unmarshalRecord(raw.Data)
		if err == nil {
			return rec
		}
	}
	t.Fatalf("no record of %s", key)
	return nil
}
