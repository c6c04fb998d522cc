package engine

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestConcurrentPutLastCompletedWins: of two concurrent puts of one key,
// the one whose body completes last is what readers see afterwards, as in
// S3, whichever started first.
func TestConcurrentPutLastCompletedWins(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	for _, tc := range []struct {
		name        string
		size        int
		finishFirst int // which put's body completes first: 0 the one started first
	}{
		{"inline/started-first-finishes-last", 1000, 1},
		{"inline/started-last-finishes-last", 1000, 0},
		{"sharded/started-first-finishes-last", 300 << 10, 1},
		{"sharded/started-last-finishes-last", 300 << 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "race-" + tc.name
			bodies := [2][]byte{bytes.Repeat([]byte("B"), tc.size), bytes.Repeat([]byte("A"), tc.size)}
			var pws [2]*io.PipeWriter
			var errs [2]chan error
			for i := range 2 {
				pr, pw := io.Pipe()
				pws[i], errs[i] = pw, make(chan error, 1)
				go func() {
					_, err := r.e.Put(t.Context(), "t", "c", key, pr, PutOptions{Size: int64(tc.size)})
					pr.CloseWithError(err)
					errs[i] <- err
				}()
				// Half the body, then the body stalls.
				if _, err := pw.Write(bodies[i][:tc.size/2]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond) // the second put starts later by the clock too
			}
			finish := func(i int) {
				t.Helper()
				if _, err := pws[i].Write(bodies[i][tc.size/2:]); err != nil {
					t.Fatal(err)
				}
				pws[i].Close()
				if err := <-errs[i]; err != nil {
					t.Fatalf("put %d: %v", i, err)
				}
			}
			first := tc.finishFirst
			finish(first)
			finish(1 - first)
			got, err := r.get(key, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			if want := bodies[1-first]; !bytes.Equal(got, want) {
				t.Errorf("GET after both puts: %q..., want the last completed put's %q...", got[:1], want[:1])
			}
		})
	}
}
