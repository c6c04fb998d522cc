package peer

import (
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// TestReview29qRemoteServingReadFills: a GET or HEAD on one node reads the
// records of a set's drives on other nodes through their peer servers.
// Since e5b17a1 only a read whose ctx carries driver.FillKey fills a
// drive's record cache, and the mark did not cross the RPC: a remote
// drive's cache was never filled by the reads of other nodes (every
// cluster read of it went to bbolt and, for a packed record, a pread),
// where on 322a0f8 every read filled it. Fails on 04a8063.
func TestReview29qRemoteServingReadFills(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	ctx := t.Context()
	for _, k := range []string{"served", "other"} {
		if _, _, err := c.PutRecord(ctx, driver.Record{Key: k, Version: driver.Version{1}, Data: []byte("data")}); err != nil {
			t.Fatal(err)
		}
	}
	held := func(k string) bool { _, ok, _ := f.local.PeekRecord(k); return ok }
	for deadline := time.Now().Add(10 * time.Second); held("served") || held("other"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the records are still held in memory: no idle flush")
		}
	}
	if r, err := c.GetRecord(driver.WithFill(ctx), "served"); err != nil || string(r.Data) != "data" {
		t.Fatalf("get: %q, %v", r.Data, err)
	}
	if r, err := c.GetRecord(ctx, "other"); err != nil || string(r.Data) != "data" {
		t.Fatalf("get: %q, %v", r.Data, err)
	}
	if !held("served") {
		t.Error("a serving read through the peer did not fill the drive's record cache")
	}
	if held("other") {
		t.Error("a read not marked FillKey filled the drive's record cache through the peer")
	}
}
