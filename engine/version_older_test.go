package engine

import (
	"bytes"
	"testing"

	"github.com/vaultaire/vaultaire/placement"
)

// TestDeleteVersionRetryRepointsWhileOlderSetShort: deleting a key's
// current version of a container not yet settled makes the newest version
// left current; that needs the older maps' sets covered (keyVersions), so
// with an older set short the delete fails after the version is gone. A
// retry must not leave the key's pointer naming the deleted version (a
// GET then finds nothing though v1 is there): it fails again until the
// set is back, and the retry once it is makes v1 current.
func TestDeleteVersionRetryRepointsWhileOlderSetShort(t *testing.T) {
	r := newMigRig(t)
	ctx := t.Context()
	old, cur := r.olderAndCurrent(t) // 1+1 on d00, d01; 2+2 on d02..d05
	r.useChain([]*placement.Map{old, cur})
	put := func(body string) ArtifactInfo {
		t.Helper()
		info, err := r.e.Put(ctx, "t", "c", "k", bytes.NewReader([]byte(body)), PutOptions{Size: int64(len(body)), Versioning: VersioningEnabled})
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	put("v1")
	v2 := put("v2")
	off := func(on bool) {
		for _, id := range []placement.DriveID{"d00", "d01"} {
			r.topo.drives[id].SetOffline(on)
		}
	}
	off(true)
	_, err1 := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled, VersionID: v2.VersionID})
	_, err2 := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled, VersionID: v2.VersionID})
	t.Logf("DeleteVersion with the older set offline: %v; retried: %v", err1, err2)
	read := func() (string, error) {
		b, err := readAll(ctx, r.e, "k")
		return string(b), err
	}
	if err2 == nil {
		if got, err := read(); got != "v1" {
			t.Errorf("the retried DeleteVersion succeeded with the older set offline, then GET = %q, %v; want v1", got, err)
		}
	}
	off(false)
	if err2 != nil {
		if _, err := r.e.DeleteVersion(ctx, "t", "c", "k", DeleteOptions{Versioning: VersioningEnabled, VersionID: v2.VersionID}); err != nil {
			t.Fatalf("DeleteVersion retried with every drive back: %v", err)
		}
	}
	if got, err := read(); got != "v1" {
		t.Errorf("after the delete and its retries, GET = %q, %v; want v1", got, err)
	}
	// DeleteVersions (DeleteObjects' entries) alike.
	put("w1")
	w2 := put("w2")
	off(true)
	_, errs1 := r.e.DeleteVersions(ctx, "t", "c", "k", []string{w2.VersionID}, false)
	_, errs2 := r.e.DeleteVersions(ctx, "t", "c", "k", []string{w2.VersionID}, false)
	off(false)
	t.Logf("DeleteVersions with the older set offline: %v; retried: %v", errs1, errs2)
	if errs2[0] == nil {
		if got, err := read(); got != "w1" {
			t.Errorf("the retried DeleteVersions succeeded with the older set offline, then GET = %q, %v; want w1", got, err)
		}
	} else if _, errs := r.e.DeleteVersions(ctx, "t", "c", "k", []string{w2.VersionID}, false); errs[0] != nil {
		t.Fatalf("DeleteVersions retried with every drive back: %v", errs[0])
	}
	if got, err := read(); got != "w1" {
		t.Errorf("after DeleteVersions and its retries, GET = %q, %v; want w1", got, err)
	}
}
