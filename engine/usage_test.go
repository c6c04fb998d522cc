package engine

import (
	"bytes"
	"context"
	"sync"
	"testing"
)

type usageTotals struct {
	mu               sync.Mutex
	bytes, artifacts int64
}

func (u *usageTotals) add(tenant string, b, a int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.bytes += b
	u.artifacts += a
}

func (u *usageTotals) get() (int64, int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bytes, u.artifacts
}

// TestUsage: OnUsage deltas add up to what is stored, through puts,
// overwrites, deletes, copies and multipart uploads.
func TestUsage(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	u := &usageTotals{}
	r.e.cfg.OnUsage = u.add
	ctx := context.Background()
	put := func(key string, n int) {
		t.Helper()
		if _, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(make([]byte, n)), PutOptions{Size: int64(n)}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name             string
		do               func()
		bytes, artifacts int64
	}{
		{"put inline", func() { put("a", 100) }, 100, 1},
		{"put sharded", func() { put("b", 300<<10) }, 100 + 300<<10, 2},
		{"overwrite smaller", func() { put("b", 1000) }, 1100, 2},
		{"delete", func() {
			if err := r.e.Delete(ctx, "t", "c", "a"); err != nil {
				t.Fatal(err)
			}
		}, 1000, 1},
		{"delete missing", func() {
			if err := r.e.Delete(ctx, "t", "c", "nothing"); err != nil {
				t.Fatal(err)
			}
		}, 1000, 1},
		{"copy", func() {
			if _, err := r.e.Copy(ctx, "t", "c", "b", "c", "b2", CopyOptions{}); err != nil {
				t.Fatal(err)
			}
		}, 2000, 2},
		{"multipart", func() {
			id, err := r.e.CreateUpload(ctx, "t", "c", "mp", PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{700, 400} { // part 1 uploaded twice
				if _, err := r.e.PutPart(ctx, "t", "c", "mp", id, 1, bytes.NewReader(make([]byte, n)), PutOptions{Size: int64(n)}); err != nil {
					t.Fatal(err)
				}
			}
			if b, a := u.get(); b != 2400 || a != 3 {
				t.Errorf("with a part in flight: %d bytes, %d artifacts; want 2400, 3 (the upload is one)", b, a)
			}
			p, _, err := r.e.ListParts(ctx, "t", "c", "mp", id, 0, 10)
			if err != nil || len(p) != 1 {
				t.Fatalf("parts %v, %v", p, err)
			}
			if _, err := r.e.CompleteUpload(ctx, "t", "c", "mp", id, []CompletePart{{1, p[0].ETag}}, nil); err != nil {
				t.Fatal(err)
			}
		}, 2400, 3},
		{"aborted multipart", func() {
			id, err := r.e.CreateUpload(ctx, "t", "c", "mp2", PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.e.PutPart(ctx, "t", "c", "mp2", id, 1, bytes.NewReader(make([]byte, 300)), PutOptions{Size: 300}); err != nil {
				t.Fatal(err)
			}
			if b, a := u.get(); b != 2700 || a != 4 {
				t.Errorf("with an upload open: %d bytes, %d artifacts; want 2700, 4", b, a)
			}
			if err := r.e.AbortUpload(ctx, "t", "c", "mp2", id); err != nil {
				t.Fatal(err)
			}
		}, 2400, 3},
	}
	for _, s := range steps {
		s.do()
		if b, a := u.get(); b != s.bytes || a != s.artifacts {
			t.Errorf("after %s: %d bytes, %d artifacts; want %d, %d", s.name, b, a, s.bytes, s.artifacts)
		}
	}
	st := r.e.Stats()
	if st.Encodes == 0 || st.Decodes == 0 {
		t.Errorf("stats %+v: want encodes and decodes counted", st)
	}
}
