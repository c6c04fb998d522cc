package peer

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/faulty"
)

// A full drive behind a peer is driver.ErrNoSpace on the caller's side too,
// so a cluster answers a full disk as a single node does (507), not as a
// failing or unreachable drive.
func TestNoSpaceCrossesTheWire(t *testing.T) {
	f := newFixture(t)
	full := faulty.New(f.local, 1)
	full.SetRules(faulty.Rule{Op: faulty.OpShardWrite | faulty.OpPutRecord, Fault: faulty.NoSpace})
	s, err := NewServer(ServerConfig{
		Drives: DriveMap(map[driver.DriveID]driver.Driver{testDrive: full}),
		Secret: testSecret,
		Logger: slog.New(slog.NewTextHandler(f.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	f.addr = ts.Listener.Addr().String()
	c := f.client(t, nil)
	ctx := t.Context()

	_, _, err = c.PutRecord(ctx, driver.Record{Key: "k", Version: driver.Version{1}, Data: []byte("v")})
	if !errors.Is(err, driver.ErrNoSpace) || errors.Is(err, driver.ErrOffline) {
		t.Errorf("PutRecord on a full peer drive: %v, want driver.ErrNoSpace (not ErrOffline)", err)
	}
	err = func() error {
		w, err := c.CreateShard(ctx, driver.Shard{PG: 1, Name: "00112233445566778899"})
		if err != nil {
			return err
		}
		defer w.Abort()
		if _, err := w.Write(bytes.Repeat([]byte("x"), 1<<16)); err != nil {
			return err
		}
		return w.Commit(ctx)
	}()
	if !errors.Is(err, driver.ErrNoSpace) {
		t.Errorf("shard write on a full peer drive: %v, want driver.ErrNoSpace", err)
	}
}
