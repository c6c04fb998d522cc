package engine

import (
	"bytes"
	"errors"
	"maps"
	"testing"
)

// TestUpdateMetadata: a metadata update keeps the data, ETag and
// modification time, is newer than the version it replaces (a reader of a
// read quorum sees it) and older than any later write; it works with a
// drive offline (write quorum) and answers ErrNoSuchArtifact for a
// deleted key. Copy drops reserved entries and takes CopyOptions.Reserved.
func TestUpdateMetadata(t *testing.T) {
	for _, inline := range []bool{true, false} {
		r := newRig(t, rigOptions{drives: 4})
		ctx := t.Context()
		data := randBytes(3, 1000)
		if !inline {
			data = randBytes(3, 300<<10)
		}
		put, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader(data), PutOptions{Size: int64(len(data)), Metadata: map[string]string{"x-amz-meta-a": "1"}})
		if err != nil {
			t.Fatal(err)
		}
		r.faultyOf("k", 0).SetOffline(true)
		got, err := r.e.UpdateMetadata(ctx, "t", "c", "k", "", func(cur ArtifactInfo) (map[string]string, error) {
			m := maps.Clone(cur.Metadata)
			m[ReservedMetadataPrefix+"tags"] = "a=b"
			return m, nil
		})
		if err != nil {
			t.Fatalf("inline %v: UpdateMetadata: %v", inline, err)
		}
		if got.Version != successor(put.Version) || got.ETag != put.ETag || !got.Modified.Equal(put.Modified) {
			t.Fatalf("inline %v: updated %+v, put %+v", inline, got, put)
		}
		r.faultyOf("k", 0).SetOffline(false)
		// Any read quorum sees the update, even with the drive that
		// missed it: take two others away.
		r.faultyOf("k", 2).SetOffline(true)
		r.faultyOf("k", 3).SetOffline(true)
		head, err := r.e.Head(ctx, "t", "c", "k")
		if err != nil || head.Metadata[ReservedMetadataPrefix+"tags"] != "a=b" || head.Metadata["x-amz-meta-a"] != "1" {
			t.Fatalf("inline %v: head after update with drives 2, 3 offline: %+v, %v", inline, head.Metadata, err)
		}
		r.faultyOf("k", 2).SetOffline(false)
		r.faultyOf("k", 3).SetOffline(false)
		if b, err := r.get("k", 0, -1); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("inline %v: data after update: %d bytes, %v", inline, len(b), err)
		}

		// A copy takes no reserved entry of its source, only those given.
		cp, err := r.e.Copy(ctx, "t", "c", "k", "c", "copy", CopyOptions{Reserved: map[string]string{ReservedMetadataPrefix + "x": "y"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := cp.Metadata[ReservedMetadataPrefix+"tags"]; ok || cp.Metadata[ReservedMetadataPrefix+"x"] != "y" || cp.Metadata["x-amz-meta-a"] != "1" {
			t.Fatalf("inline %v: copy metadata %v", inline, cp.Metadata)
		}

		// A later put wins over the update.
		later := r.put(t, "k", []byte("later"), 5)
		if later.Version.Compare(got.Version) <= 0 {
			t.Fatalf("inline %v: a later put's version %v is not newer than the update's %v", inline, later.Version, got.Version)
		}
		if err := r.e.Delete(ctx, "t", "c", "k"); err != nil {
			t.Fatal(err)
		}
		_, err = r.e.UpdateMetadata(ctx, "t", "c", "k", "", func(cur ArtifactInfo) (map[string]string, error) { return cur.Metadata, nil })
		if !errors.Is(err, ErrNoSuchArtifact) {
			t.Fatalf("inline %v: update of a deleted key: %v", inline, err)
		}
	}
}

// TestConditionalPut: a Condition sees the newest version (nil when there
// is none), its error fails the put and stores nothing; the lock is
// refused as ErrConditionConflict when the cluster locker refuses it.
func TestConditionalPut(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	ctx := t.Context()
	errExists := errors.New("exists")
	create := func(cur *ArtifactInfo) error {
		if cur != nil {
			return errExists
		}
		return nil
	}
	if _, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader([]byte("one")), PutOptions{Size: 3, Condition: create}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader(randBytes(1, 300<<10)), PutOptions{Size: 300 << 10, Condition: create}); !errors.Is(err, errExists) {
		t.Fatalf("second create: %v, want the condition's error", err)
	}
	if b, err := r.get("k", 0, -1); err != nil || string(b) != "one" {
		t.Fatalf("k = %q, %v", b, err)
	}
	r.e.cfg.UploadLocker = refusingLocker{}
	_, err := r.e.Put(ctx, "t", "c", "k2", bytes.NewReader([]byte("two")), PutOptions{Size: 3, Condition: create})
	if !errors.Is(err, ErrConditionConflict) {
		t.Fatalf("put without the key lock: %v, want ErrConditionConflict", err)
	}
	if err := r.e.DeleteIf(ctx, "t", "c", "k", func(*ArtifactInfo) error { return nil }); !errors.Is(err, ErrConditionConflict) {
		t.Fatalf("delete without the key lock: %v, want ErrConditionConflict", err)
	}
	r.e.cfg.UploadLocker = nil
	if _, err := r.e.Head(ctx, "t", "c", "k2"); !errors.Is(err, ErrNoSuchArtifact) {
		t.Fatalf("k2 stored without its lock: %v", err)
	}
}
