package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestClockSkew: two engines share drives, as two nodes of a cluster do;
// one's clock runs an hour ahead. A write through the slow node after a
// write through the fast one must still win, whether it is a put, a
// delete or a completed multipart upload.
func TestClockSkew(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	fast, err := New(Config{Topology: r.e.cfg.Topology, Containers: r.e.cfg.Containers, Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	get := func(key string) ([]byte, error) {
		a, err := r.e.Open(ctx, "t", "c", key)
		if err != nil {
			return nil, err
		}
		rd := a.Reader(ctx, 0, a.Info.Size)
		defer rd.Close()
		return io.ReadAll(rd)
	}
	for _, tc := range []struct {
		name string
		size int
	}{{"inline", 100}, {"sharded", 300 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			key := "skew-" + tc.name
			old := bytes.Repeat([]byte("F"), tc.size)
			if _, err := fast.Put(ctx, "t", "c", key, bytes.NewReader(old), PutOptions{Size: int64(len(old))}); err != nil {
				t.Fatal(err)
			}
			newer := bytes.Repeat([]byte("s"), tc.size)
			info, err := r.e.Put(ctx, "t", "c", key, bytes.NewReader(newer), PutOptions{Size: int64(len(newer))})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := get(key); err != nil || !bytes.Equal(got, newer) {
				t.Fatalf("after the slow node's put: %d bytes, %v; want the slow node's bytes", len(got), err)
			}
			if !info.Modified.After(time.Now().Add(59 * time.Minute)) {
				t.Errorf("the winning version's time %v did not move past the fast clock", info.Modified)
			}
			// The winner's shards survive garbage collection: read again
			// through a degraded path too.
			r.faultyOf(key, 0).SetCorruptReads(true)
			if got, err := get(key); err != nil || !bytes.Equal(got, newer) {
				t.Errorf("degraded read after re-versioning: %d bytes, %v", len(got), err)
			}
			r.faultyOf(key, 0).SetCorruptReads(false)
			// A delete through the slow node after another fast write.
			if _, err := fast.Put(ctx, "t", "c", key, bytes.NewReader(old), PutOptions{Size: int64(len(old))}); err != nil {
				t.Fatal(err)
			}
			if err := r.e.Delete(ctx, "t", "c", key); err != nil {
				t.Fatal(err)
			}
			if _, err := get(key); !errors.Is(err, ErrNoSuchArtifact) {
				t.Errorf("after the slow node's delete: %v, want ErrNoSuchArtifact", err)
			}
		})
	}
}
