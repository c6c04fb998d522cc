package local

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
)

// TestReview29sListUnreachablePacksNotLost: 41ed525 lists a record whose
// data does not read back with its version, no data and Truncated, for
// any driver.ErrCorrupt of the pack read. But pack.go's read wraps every
// failure in ErrCorrupt, also those it deliberately does not call a loss
// (errLost): the packs directory briefly unreachable (moved, unmounted:
// "loses nothing"), a pack that cannot be opened (EMFILE, EACCES), an
// I/O error. For those the listing now reports every packed record as
// holding no readable data: the engine's listings drop it (its head does
// not decode: the drive counts as answering without it), so an object
// whose drives all hit it is not listed, and DeleteContainer's emptiness
// check passes over a container that is not empty; the scrubber counts
// it corrupt and heals it, in vain (a write over a value that cannot be
// read fails: logical). Before 41ed525 the page failed. Only a loss the
// driver knows (errLost, errChecksum: as logical) may be listed cut.
func TestReview29sListUnreachablePacksNotLost(t *testing.T) {
	revSetPackMax(t, 40<<10)
	c := testConfig(t, true)
	d := open(t, c)
	ctx := t.Context()
	for _, k := range []string{"a", "k", "z"} {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: k, Version: stamp(), Data: patterned(k, 50<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	flushHeld(t, d)
	if _, ok := storedRef(storedValue(t, d, "k")); !ok {
		t.Fatal("k is not packed")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(t, c) // k's pack not open yet: read opens it
	dir := filepath.Join(c.Dir, packsDir)
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	recs, err := d.ListRecords(ctx, "", "", 100)
	for _, r := range recs {
		if r.Key == "k" && len(r.Data) == 0 {
			t.Errorf("packs/ briefly unreachable: k listed as %+v (err %v); want the listing to fail, as before 41ed525: nothing is lost", r, err)
		}
	}
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	if r, err := d.GetRecord(driver.Uncached(ctx), "k"); err != nil || len(r.Data) != 50<<10 {
		t.Fatalf("packs/ back: GetRecord of k: %d bytes, %v; want it whole", len(r.Data), err)
	}
}
