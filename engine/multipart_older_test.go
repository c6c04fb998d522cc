package engine

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/vaultaire/vaultaire/placement"
)

// olderUpload starts, under the older map old alone, an upload of key in
// container c of a rig made by newMigRig, puts one part of data into it,
// then makes cur current with old kept: the upload's records are only on
// old's set (d00, d01 with olderAndCurrent) until MoveUploads moves them.
func olderUpload(t *testing.T, r *migRig, old, cur *placement.Map, key string, data []byte) (id string, part CompletePart) {
	t.Helper()
	ctx := t.Context()
	r.useChain([]*placement.Map{old})
	id, err := r.e.CreateUpload(ctx, "t", "c", key, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pi, err := r.e.PutPart(ctx, "t", "c", key, id, 1, bytes.NewReader(data), PutOptions{Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	r.useChain([]*placement.Map{old, cur})
	return id, CompletePart{Number: 1, ETag: pi.ETag}
}

// TestListUploadsCoversOlderMaps: an upload in progress begun under an
// older map, not moved yet, lives only in that map's set. ListUploads
// lists it; with that set short (more than its parity offline) and the
// container not settled it answers ErrReadQuorum rather than a listing
// without it, and so does DeleteContainer (its List of artifacts already
// refuses) rather than delete the container without aborting the upload,
// whose record a later container of the same name would then inherit.
// Once the upload is moved
// (MoveUploads) and the container settled, the older set is not needed:
// the upload is listed and completes, byte-identical, with it offline.
func TestListUploadsCoversOlderMaps(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := r.olderAndCurrent(t) // 1+1 on d00, d01; 2+2 on d02..d05
	const key = "mp/older"
	data := randBytes(21, 100<<10)
	id, part := olderUpload(t, r, old, cur, key, data)
	off := func(on bool, ids ...placement.DriveID) {
		for _, id := range ids {
			r.topo.drives[id].SetOffline(on)
		}
	}
	listed := func() ([]string, error) {
		ups, _, err := r.e.ListUploads(ctx, "t", "c", "", "", "", 10)
		var ids []string
		for _, u := range ups {
			ids = append(ids, u.ID)
		}
		return ids, err
	}
	if got, err := listed(); err != nil || !slices.Equal(got, []string{id}) {
		t.Fatalf("ListUploads, every drive up: %v, %v; want [%s]", got, err, id)
	}
	for _, tc := range []struct {
		name string
		down []placement.DriveID
		want error
	}{
		{"one older drive offline (within its parity)", []placement.DriveID{"d00"}, nil},
		{"the older set short", []placement.DriveID{"d00", "d01"}, ErrReadQuorum},
		{"two current drives offline (within its parity)", []placement.DriveID{"d02", "d03"}, nil},
	} {
		off(true, tc.down...)
		got, err := listed()
		if !errors.Is(err, tc.want) || (tc.want == nil && !slices.Equal(got, []string{id})) {
			t.Errorf("ListUploads, %s: %v, %v; want [%s], error %v", tc.name, got, err, id, tc.want)
		}
		if tc.want != nil {
			if err := r.e.DeleteContainer(ctx, "t", "c"); !errors.Is(err, tc.want) {
				t.Errorf("DeleteContainer, %s: %v; want %v", tc.name, err, tc.want)
			}
			if _, err := r.e.Container(ctx, "t", "c"); err != nil {
				t.Fatalf("the container after DeleteContainer failed, %s: %v", tc.name, err)
			}
		}
		off(false, tc.down...)
	}

	// Moved into the current map, then settled: the older set is not
	// needed any more.
	if st, err := r.e.MoveUploads(ctx); err != nil || st.Moved != 1 {
		t.Fatalf("MoveUploads = %+v, %v; want the upload moved", st, err)
	}
	if err := r.e.cfg.Containers.(Settler).SettleContainers(ctx, cur.Epoch, nil); err != nil {
		t.Fatal(err)
	}
	off(true, "d00", "d01")
	defer off(false, "d00", "d01")
	if got, err := listed(); err != nil || !slices.Equal(got, []string{id}) {
		t.Fatalf("ListUploads of a settled container, the older set offline: %v, %v; want [%s]", got, err, id)
	}
	if _, err := r.e.CompleteUpload(ctx, "t", "c", key, id, []CompletePart{part}, nil); err != nil {
		t.Fatalf("CompleteUpload, the older set offline: %v", err)
	}
	if got, err := read(ctx, r.e, key, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after Complete: %d bytes, %v; want the %d bytes put", len(got), err, len(data))
	}
	if got, err := listed(); err != nil || len(got) != 0 {
		t.Errorf("ListUploads after Complete: %v, %v; want none", got, err)
	}
}
