package engine

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"
)

func multipartETag(parts ...[]byte) string {
	h := md5.New()
	for _, p := range parts {
		s := md5.Sum(p)
		h.Write(s[:])
	}
	return fmt.Sprintf("%s-%d", hex.EncodeToString(h.Sum(nil)), len(parts))
}

func TestMultipartUpload(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 256 << 10})
	ctx := context.Background()
	id, err := r.e.CreateUpload(ctx, "t", "c", "big", PutOptions{ContentType: "video/mp4", Metadata: map[string]string{"x-amz-meta-a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2, p3 := randBytes(1, MinPartSize), randBytes(2, MinPartSize+17), randBytes(3, 1000)
	put := func(n int, data []byte) PartInfo {
		t.Helper()
		info, err := r.e.PutPart(ctx, "t", "c", "big", id, n, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
		if err != nil {
			t.Fatalf("PutPart %d: %v", n, err)
		}
		return info
	}
	i3 := put(3, p3)
	put(2, randBytes(99, MinPartSize)) // replaced below
	i2 := put(2, p2)
	i1 := put(1, p1)
	parts, truncated, err := r.e.ListParts(ctx, "t", "c", "big", id, 0, 1000)
	if err != nil || truncated || len(parts) != 3 || parts[1].ETag != i2.ETag || parts[1].Size != int64(len(p2)) {
		t.Fatalf("ListParts = %+v, %v, %v", parts, truncated, err)
	}
	if parts, truncated, _ := r.e.ListParts(ctx, "t", "c", "big", id, 1, 1); len(parts) != 1 || parts[0].Number != 2 || !truncated {
		t.Fatalf("ListParts after 1, max 1 = %+v %v", parts, truncated)
	}
	ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 100)
	if err != nil || len(ups) != 1 || ups[0].Key != "big" || ups[0].ID != id {
		t.Fatalf("ListUploads = %+v, %v", ups, err)
	}
	if res, err := r.e.List(ctx, "t", "c", ListOptions{}); err != nil || len(res.Artifacts) != 0 {
		t.Fatalf("an upload in progress is listed as an artifact: %+v, %v", res.Artifacts, err)
	}

	for _, tc := range []struct {
		parts []CompletePart
		want  error
	}{
		{[]CompletePart{{2, i2.ETag}, {1, i1.ETag}}, ErrInvalidPartOrder},
		{[]CompletePart{{1, i1.ETag}, {2, "bad"}}, ErrInvalidPart},
		{[]CompletePart{{1, i1.ETag}, {4, i3.ETag}}, ErrInvalidPart},
		{[]CompletePart{{1, i1.ETag}, {3, i3.ETag}, {5, i3.ETag}}, ErrInvalidPart},
	} {
		if _, err := r.e.CompleteUpload(ctx, "t", "c", "big", id, tc.parts, nil); !errors.Is(err, tc.want) {
			t.Fatalf("Complete(%v): err = %v, want %v", tc.parts, err, tc.want)
		}
	}
	info, err := r.e.CompleteUpload(ctx, "t", "c", "big", id, []CompletePart{{1, `"` + i1.ETag + `"`}, {2, i2.ETag}, {3, i3.ETag}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	whole := append(append(bytes.Clone(p1), p2...), p3...)
	if info.ETag != multipartETag(p1, p2, p3) || info.Size != int64(len(whole)) {
		t.Fatalf("Complete info = %+v", info)
	}
	got, err := r.get("big", 0, -1)
	if err != nil || !bytes.Equal(got, whole) {
		t.Fatalf("Get assembled: %d bytes, %v", len(got), err)
	}
	// A range across the part boundary.
	off := int64(MinPartSize - 10)
	if got, err := r.get("big", off, 30); err != nil || !bytes.Equal(got, whole[off:off+30]) {
		t.Fatalf("range across parts: %v", err)
	}
	head, err := r.e.Head(ctx, "t", "c", "big")
	if err != nil || head.ContentType != "video/mp4" || head.Metadata["x-amz-meta-a"] != "1" {
		t.Fatalf("Head = %+v, %v", head, err)
	}
	if _, _, err := r.e.ListParts(ctx, "t", "c", "big", id, 0, 10); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("ListParts after complete: %v", err)
	}
	// Each drive holds exactly the three used parts' shards.
	for _, dir := range r.dirs {
		if files := shardFiles(t, dir); len(files) != 3 {
			t.Fatalf("%s holds %d shard files, want 3", dir, len(files))
		}
	}
	// Corrupt one part's shard on one drive: reads repair, Heal rewrites it.
	files := shardFiles(t, r.dirOf("big", 0))
	raw, err := os.ReadFile(files[1])
	if err != nil {
		t.Fatal(err)
	}
	raw[100] ^= 1
	if err := os.WriteFile(files[1], raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := r.get("big", 0, -1); err != nil || !bytes.Equal(got, whole) {
		t.Fatalf("Get with a corrupt part shard: %v", err)
	}
	if healed, err := r.e.Heal(ctx, "t", "c", "big"); err != nil || len(healed) != 1 || healed[0] != 0 {
		t.Fatalf("Heal = %v, %v", healed, err)
	}
	// Overwriting with a plain Put frees the parts.
	r.put(t, "big", []byte("small now"), -1)
	for _, dir := range r.dirs {
		if files := shardFiles(t, dir); len(files) != 0 {
			t.Fatalf("%s holds %d shard files after overwrite, want 0", dir, len(files))
		}
	}
}

func TestMultipartAbortAndTooSmall(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 256 << 10})
	ctx := context.Background()
	id, err := r.e.CreateUpload(ctx, "t", "c", "k", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.e.PutPart(ctx, "t", "c", "k", id, 1, bytes.NewReader(randBytes(1, 1000)), PutOptions{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.e.PutPart(ctx, "t", "c", "k", id, 2, bytes.NewReader(randBytes(2, 1000)), PutOptions{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", "k", id, []CompletePart{{1, a.ETag}, {2, b.ETag}}, nil); !errors.Is(err, ErrEntityTooSmall) {
		t.Fatalf("Complete with a small first part: %v", err)
	}
	if _, err := r.e.PutPart(ctx, "t", "c", "k", "0123456789abcdef0123456789abcdef", 1, bytes.NewReader(nil), PutOptions{Size: 0}); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("PutPart to unknown upload: %v", err)
	}
	if err := r.e.AbortUpload(ctx, "t", "c", "k", id); err != nil {
		t.Fatal(err)
	}
	if err := r.e.AbortUpload(ctx, "t", "c", "k", id); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("second Abort: %v", err)
	}
	for _, dir := range r.dirs {
		if files := shardFiles(t, dir); len(files) != 0 {
			t.Fatalf("%s holds %d shard files after abort", dir, len(files))
		}
	}
	if ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10); err != nil || len(ups) != 0 {
		t.Fatalf("ListUploads after abort = %+v, %v", ups, err)
	}
}
