package engine

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHungDriveDoesNotHoldRequests: one drive of the set hangs (every
// call blocks until its ctx ends, as a paused node or a stuck disk). Put
// and Get still return within a bound with the right bytes, the work left
// on the hung drive stops when the requests' ctx ends, and no temp shard
// is left behind on it.
func TestHungDriveDoesNotHoldRequests(t *testing.T) {
	const bound = 5 * time.Second // a few straggler graces, on a loaded machine
	r := newRig(t, rigOptions{drives: 6, stripeSize: 64 << 10})
	for _, tc := range []struct {
		name  string
		size  int
		shard int  // the hung drive's slot in the set
		mid   bool // the drive hangs once half the body was read
	}{
		{"inline/data", 1000, 0, false},
		{"inline/parity", 1000, 5, false},
		{"sharded/data", 1 << 20, 1, false},
		{"sharded/parity", 1 << 20, 4, false},
		{"sharded-small/data", 200 << 10, 0, false},
		{"sharded/data/mid-stream", 2 << 20, 2, true},
		{"sharded/parity/mid-stream", 2 << 20, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "hang-" + tc.name
			old := randBytes(1, tc.size)
			r.put(t, key, old, int64(len(old))) // an older version, for the read to pass over
			f := r.faultyOf(key, tc.shard)
			defer f.SetHang(false)
			var body io.Reader

			ctx, cancel := context.WithCancel(t.Context())
			data := randBytes(2, tc.size)
			if tc.mid {
				body = io.MultiReader(bytes.NewReader(data[:tc.size/2]), hangAt{f}, bytes.NewReader(data[tc.size/2:]))
			} else {
				f.SetHang(true)
				body = bytes.NewReader(data)
			}
			began := time.Now()
			if _, err := r.e.Put(ctx, "t", "c", key, body, PutOptions{Size: int64(len(data))}); err != nil {
				t.Fatalf("Put with a hung drive: %v", err)
			}
			if took := time.Since(began); took > bound {
				t.Errorf("Put took %v with a hung drive, want under %v", took, bound)
			}
			began = time.Now()
			a, err := r.e.Open(ctx, "t", "c", key)
			if err != nil {
				t.Fatalf("Open with a hung drive: %v", err)
			}
			var got bytes.Buffer
			if err := a.WriteRange(ctx, &got, 0, a.Info.Size); err != nil {
				t.Fatalf("read with a hung drive: %v", err)
			}
			if took := time.Since(began); took > bound {
				t.Errorf("Get took %v with a hung drive, want under %v", took, bound)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Errorf("Get returned %d bytes not the put's %d", got.Len(), len(data))
			}

			// The requests are over: their ctx ends, and with it the work
			// still waiting on the hung drive.
			cancel()
			waited := make(chan struct{})
			go func() { r.e.WaitBackground(); close(waited) }()
			select {
			case <-waited:
			case <-time.After(30 * time.Second):
				t.Fatal("background work still running 30s after the requests' ctx ended")
			}
			tmps, err := os.ReadDir(filepath.Join(r.dirOf(key, tc.shard), "tmp"))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if len(tmps) != 0 {
				t.Errorf("%d temp files left on the hung drive", len(tmps))
			}

			f.SetHang(false)
			// Once the drive is back, the artifact still reads (now from
			// every drive) and heals.
			f.SetHang(false)
			if b, err := r.get(key, 0, -1); err != nil || !bytes.Equal(b, data) {
				t.Errorf("read after the drive came back: %d bytes, %v", len(b), err)
			}
			if _, err := r.e.Heal(t.Context(), "t", "c", key); err != nil {
				t.Errorf("heal after the drive came back: %v", err)
			}
		})
	}
}

// hangAt is an empty body piece that turns the hang fault of f on when
// the body reaches it.
type hangAt struct{ f interface{ SetHang(bool) } }

func (h hangAt) Read([]byte) (int, error) {
	h.f.SetHang(true)
	return 0, io.EOF
}
