package remote_test

import (
	"errors"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
)

// TestRestamp: a drive formatted for cluster "single" opens for cluster
// "cluster-test" only with Restamp "single", and not read-only, not for
// another drive id and not with another Restamp; once re-stamped it opens
// for the new cluster without Restamp, keeps what it held, and the old id
// is refused.
func TestRestamp(t *testing.T) {
	s := startMinIO(t)
	b := s.bucket(t)
	ctx := t.Context()
	old := s.config("", b, "drive")
	old.ClusterID, old.CompactInterval = "single", -1
	d := open(t, old)
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: driver.Version{15: 1}, Data: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	d.Close()

	tests := []struct {
		name    string
		restamp string
		id      driver.DriveID
		ro      bool
	}{
		{"no restamp", "", "remote-test", false},
		{"another restamp", "other", "remote-test", false},
		{"another drive", "single", "remote-other", false},
		{"read-only", "single", "remote-test", true},
	}
	for _, tc := range tests {
		c := s.config("", b, "drive")
		c.Restamp, c.ID, c.ReadOnly, c.CompactInterval = tc.restamp, tc.id, tc.ro, -1
		if d, err := remote.Open(ctx, c); err == nil {
			d.Close()
			t.Errorf("%s: opened a drive of cluster %q as %q", tc.name, old.ClusterID, c.ClusterID)
		} else if tc.id == "remote-test" && !errors.Is(err, driver.ErrForeignDrive) {
			t.Errorf("%s: %v, want driver.ErrForeignDrive", tc.name, err)
		}
	}
	c := s.config("", b, "drive")
	c.Restamp, c.CompactInterval = "single", -1
	open(t, c).Close()
	c.Restamp = ""
	d = open(t, c)
	if r, err := d.GetRecord(ctx, "k"); err != nil || string(r.Data) != "kept" {
		t.Errorf("after the restamp: record %q, %v; want kept", r.Data, err)
	}
	d.Close()
	if d, err := remote.Open(ctx, old); !errors.Is(err, driver.ErrForeignDrive) {
		if err == nil {
			d.Close()
		}
		t.Errorf("the old cluster id after the restamp: %v, want driver.ErrForeignDrive", err)
	}
}
