package engine

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// TestHungDriveMultipartAndList: one drive of a 4+2 set hangs (every call
// blocks until its ctx ends). Each multipart step, container listings
// (with and without prefix and delimiter), the listing of uploads, a
// scan and Heal of another artifact return within a bound and answer correctly, and the work left on the
// hung drive stops once the requests are over.
func TestHungDriveMultipartAndList(t *testing.T) {
	const bound = 8 * time.Second // PutPart waits out up to six straggler graces, on a loaded machine
	r := newRig(t, rigOptions{drives: 6, stripeSize: 64 << 10})
	keys := []string{"list/a/1", "list/a/2", "list/b", "list/c", "other"}
	for i, k := range keys {
		r.put(t, k, randBytes(uint64(10+i), 100), 100)
	}
	r.put(t, "list/gone", randBytes(9, 100), 100)
	if err := r.e.Delete(t.Context(), "t", "c", "list/gone"); err != nil {
		t.Fatal(err)
	}
	// An artifact that lost a shard, for Heal to repair around the hung
	// drive.
	healData := randBytes(20, 300<<10)
	r.put(t, "heal-me", healData, int64(len(healData)))
	lost := r.faultyOf("heal-me", 1)
	ha, err := r.e.Open(t.Context(), "t", "c", "heal-me")
	if err != nil {
		t.Fatal(err)
	}
	if err := lost.DeleteShard(t.Context(), ha.partShard(0)); err != nil {
		t.Fatal(err)
	}
	const key = "mp"
	f := r.faultyOf(key, 0) // every key of a 6-drive rig is in this set
	f.SetHang(true)
	defer f.SetHang(false)

	parent, cancel := context.WithCancel(t.Context())
	defer cancel()
	// timed runs one request with a ctx that outlives the bound, and fails
	// the test if it took longer than the bound.
	timed := func(t *testing.T, what string, op func(ctx context.Context) error) {
		t.Helper()
		ctx, stop := context.WithTimeout(parent, 4*bound)
		defer stop()
		began := time.Now()
		err := op(ctx)
		t.Logf("%s took %v", what, time.Since(began))
		if took := time.Since(began); took > bound {
			t.Errorf("%s took %v with a hung drive, want under %v", what, took, bound)
		}
		if err != nil {
			t.Fatalf("%s with a hung drive: %v", what, err)
		}
	}

	var id string
	p1, p2 := randBytes(1, MinPartSize), randBytes(2, 1000)
	var i1, i2 PartInfo
	timed(t, "CreateUpload", func(ctx context.Context) (err error) {
		id, err = r.e.CreateUpload(ctx, "t", "c", key, PutOptions{ContentType: "a/b"})
		return err
	})
	// Part 1's shards reach every drive; the drive hangs before the part's
	// record is written, which must not wait for it either.
	f.SetHang(false)
	timed(t, "PutPart 1", func(ctx context.Context) (err error) {
		i1, err = r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(p1), PutOptions{Size: int64(len(p1)), AfterBody: func() (map[string]string, error) {
			f.SetHang(true)
			return nil, nil
		}})
		return err
	})
	timed(t, "PutPart 2", func(ctx context.Context) (err error) {
		i2, err = r.e.PutPart(ctx, "t", "c", key, id, 2, bytes.NewReader(p2), PutOptions{Size: int64(len(p2))})
		return err
	})
	timed(t, "ListParts", func(ctx context.Context) error {
		parts, truncated, err := r.e.ListParts(ctx, "t", "c", key, id, 0, 1000)
		if err == nil && (truncated || len(parts) != 2 || parts[0].ETag != i1.ETag || parts[1].ETag != i2.ETag || parts[1].Size != int64(len(p2))) {
			t.Errorf("ListParts = %+v, truncated %v; want parts 1 and 2", parts, truncated)
		}
		return err
	})
	timed(t, "ListUploads", func(ctx context.Context) error {
		ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 100)
		if err == nil && (len(ups) != 1 || ups[0].ID != id) {
			t.Errorf("ListUploads = %+v, want upload %s", ups, id)
		}
		return err
	})
	timed(t, "CompleteUpload", func(ctx context.Context) error {
		info, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{{1, i1.ETag}, {2, i2.ETag}}, nil)
		if err == nil && (info.Size != int64(len(p1)+len(p2)) || info.ETag != multipartETag(p1, p2)) {
			t.Errorf("CompleteUpload = %+v", info)
		}
		return err
	})
	timed(t, "Get", func(ctx context.Context) error {
		a, err := r.e.Open(ctx, "t", "c", key)
		if err != nil {
			return err
		}
		var got bytes.Buffer
		if err := a.WriteRange(ctx, &got, 0, a.Info.Size); err != nil {
			return err
		}
		if !bytes.Equal(got.Bytes(), append(slices.Clone(p1), p2...)) {
			t.Errorf("completed artifact reads %d bytes, not the parts'", got.Len())
		}
		return nil
	})
	for _, tc := range []struct {
		name     string
		opts     ListOptions
		want     []string
		prefixes []string
	}{
		{"all", ListOptions{}, []string{"heal-me", "list/a/1", "list/a/2", "list/b", "list/c", key, "other"}, nil},
		{"prefix", ListOptions{Prefix: "list/"}, []string{"list/a/1", "list/a/2", "list/b", "list/c"}, nil},
		{"delimiter", ListOptions{Prefix: "list/", Delimiter: "/"}, []string{"list/b", "list/c"}, []string{"list/a/"}},
		{"paged", ListOptions{Prefix: "list/", Delimiter: "/", After: "list/a/", Limit: 1}, []string{"list/b"}, nil},
	} {
		timed(t, "List "+tc.name, func(ctx context.Context) error {
			res, err := r.e.List(ctx, "t", "c", tc.opts)
			if err != nil {
				return err
			}
			var got []string
			for _, a := range res.Artifacts {
				got = append(got, a.Key)
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(res.Prefixes, tc.prefixes) {
				t.Errorf("List %s = %q, prefixes %q; want %q, %q", tc.name, got, res.Prefixes, tc.want, tc.prefixes)
			}
			return nil
		})
	}
	timed(t, "Heal", func(ctx context.Context) error {
		repaired, err := r.e.Heal(ctx, "t", "c", "heal-me")
		if !errors.Is(err, ErrHealIncomplete) || !slices.Equal(repaired, []int{1}) {
			t.Errorf("Heal = %v, %v; want shard 1 repaired and ErrHealIncomplete for the hung drive", repaired, err)
		}
		if rc, err := lost.ReadShard(ctx, ha.partShard(0), 0, -1); err != nil {
			t.Errorf("shard 1 not rebuilt: %v", err)
		} else {
			rc.Close()
		}
		return nil
	})
	timed(t, "Scan", func(ctx context.Context) error {
		st, err := r.e.Scan(ctx, "t", "c", "", 1000)
		if err == nil && (st.Keys != 8 || st.Next != "") { // the 7 listed and the tombstone
			t.Errorf("Scan = %+v, want 8 keys and done", st)
		}
		return err
	})
	timed(t, "ListUploads after complete", func(ctx context.Context) error {
		ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 100)
		if err == nil && len(ups) != 0 {
			t.Errorf("ListUploads after complete = %+v, want none", ups)
		}
		return err
	})

	// The requests are over: their ctx ends, the hung drive comes back,
	// and the work left on it (stragglers and background clean-up) ends.
	cancel()
	f.SetHang(false)
	waited := make(chan struct{})
	go func() { r.e.WaitBackground(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("background work still running 30s after the requests ended")
	}
	if b, err := r.get(key, 0, -1); err != nil || !bytes.Equal(b, append(slices.Clone(p1), p2...)) {
		t.Errorf("read after the drive came back: %d bytes, %v", len(b), err)
	}
	if _, err := r.e.Heal(t.Context(), "t", "c", "heal-me"); err != nil {
		t.Errorf("Heal after the drive came back: %v", err)
	}
	if b, err := r.get("heal-me", 0, -1); err != nil || !bytes.Equal(b, healData) {
		t.Errorf("healed artifact reads %d bytes, %v", len(b), err)
	}
}

// TestHungDrivePendingCompletion: completions cut off after their marker
// (pending) are completed again by a retry, or aborted, with one drive of
// the 2+2 set hung: the settle and the look for the parts' data do not
// wait for it.
func TestHungDrivePendingCompletion(t *testing.T) {
	const bound = 8 * time.Second
	ctx := t.Context()
	c := newMemCluster(t, 4)
	cp := &crashPoint{}
	cp.arm(1 << 40)
	e1 := c.start(t, cp)
	if err := e1.CreateContainer(ctx, "t", "c"); err != nil {
		t.Fatal(err)
	}
	ups := []mpUpload{startUpload(t, e1, "retry", 1), startUpload(t, e1, "abort", 2)}
	for _, u := range ups {
		cp.arm(4) // the marker on all four drives, then nothing
		if _, err := e1.CompleteUpload(ctx, "t", "c", u.key, u.id, u.parts, nil); err == nil {
			t.Fatal("a completion cut off after its marker succeeded")
		}
	}
	e1.WaitBackground()
	drives := map[placement.DriveID]driver.Driver{}
	hung := drivertest.NewFaulty(c.mems[0])
	for i, d := range c.m.Drives {
		drives[d.ID] = c.mems[i]
	}
	drives[c.m.Drives[0].ID] = hung
	topo, err := NewStatic(c.m, drives)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := New(Config{Topology: topo, Containers: c.containers})
	if err != nil {
		t.Fatal(err)
	}
	hung.SetHang(true)
	defer hung.SetHang(false)
	rctx, cancel := context.WithTimeout(ctx, 4*bound)
	defer cancel()

	began := time.Now()
	info, err := e2.CompleteUpload(rctx, "t", "c", "retry", ups[0].id, ups[0].parts, nil)
	if took := time.Since(began); took > bound {
		t.Errorf("retried Complete took %v with a hung drive, want under %v", took, bound)
	}
	if err != nil || info.ETag != ups[0].etag {
		t.Fatalf("retried Complete with a hung drive = %+v, %v", info, err)
	}
	began = time.Now()
	err = e2.AbortUpload(rctx, "t", "c", "abort", ups[1].id)
	if took := time.Since(began); took > bound {
		t.Errorf("Abort took %v with a hung drive, want under %v", took, bound)
	}
	if err != nil {
		t.Fatalf("Abort of a pending completion with a hung drive: %v", err)
	}
	cancel()
	hung.SetHang(false)
	e2.WaitBackground()
	if b, err := readAll(ctx, e2, "retry"); err != nil || !bytes.Equal(b, ups[0].want) {
		t.Errorf("completed artifact reads %d bytes, %v", len(b), err)
	}
	if _, err := readAll(ctx, e2, "abort"); !errors.Is(err, ErrNoSuchArtifact) {
		t.Errorf("aborted upload's key: %v, want ErrNoSuchArtifact", err)
	}
}
