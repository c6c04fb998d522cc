package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

var probeShard = driver.Shard{PG: 3, Name: "00112233445566778899aabbccddeeff"}

// writeShard writes and commits probeShard with body.
func putProbeShard(ctx context.Context, d *Driver, body []byte) error {
	w, err := d.CreateShard(ctx, probeShard)
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		w.Abort()
		return err
	}
	return w.Commit(ctx)
}

// checkServes writes a shard and a record on d and reads them back.
func checkServes(t *testing.T, d *Driver) {
	t.Helper()
	ctx := t.Context()
	if err := putProbeShard(ctx, d, []byte("shard bytes")); err != nil {
		t.Fatalf("write shard: %v", err)
	}
	rc, err := d.ReadShard(ctx, probeShard, 0, -1)
	if err != nil {
		t.Fatalf("read shard: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "shard bytes" {
		t.Fatalf("read shard: %q, %v", got, err)
	}
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "k", Version: driver.Version{1}, Data: []byte("v")}); err != nil {
		t.Fatalf("put record: %v", err)
	}
	if r, err := d.GetRecord(ctx, "k"); err != nil || string(r.Data) != "v" {
		t.Fatalf("get record: %+v, %v", r, err)
	}
}

// readFormat returns format.json of dir.
func readFormat(t *testing.T, dir string) format {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, formatFile))
	if err != nil {
		t.Fatal(err)
	}
	var f format
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestProbeReformatsReplacedDrive: a drive whose contents vanish under a
// running Driver (a replaced disk) is taken offline by Probe and brought
// back empty, with its format record for the same cluster and drive id.
func TestProbeReformatsReplacedDrive(t *testing.T) {
	for _, tc := range []struct {
		name string
		wipe func(dir string) error
	}{
		{"contents removed", func(dir string) error {
			ents, err := os.ReadDir(dir)
			for _, e := range ents {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
			return err
		}},
		{"directory removed", os.RemoveAll},
		{"directory replaced", func(dir string) error {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			return os.Mkdir(dir, 0o700)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t, false)
			d := open(t, c)
			checkServes(t, d)
			if err := tc.wipe(c.Dir); err != nil {
				t.Fatal(err)
			}
			if err := d.Probe(t.Context()); err != nil {
				t.Fatalf("Probe of a wiped drive: %v, want it reformatted and online", err)
			}
			if f := readFormat(t, c.Dir); f.ClusterID != c.ClusterID || f.DriveID != c.ID {
				t.Fatalf("format record after reformat: %+v", f)
			}
			if recs, err := d.ListRecords(t.Context(), "", "", 10); err != nil || len(recs) != 0 {
				t.Fatalf("records of the replaced drive: %v, %v; want none", recs, err)
			}
			if _, err := d.ReadShard(t.Context(), probeShard, 0, -1); !errors.Is(err, driver.ErrNotFound) {
				t.Fatalf("shard of the replaced drive: %v, want ErrNotFound", err)
			}
			checkServes(t, d)
			if err := d.Probe(t.Context()); err != nil {
				t.Fatalf("Probe of a healthy drive: %v", err)
			}
		})
	}
}

// TestShardDirsRecreated: shard writes still succeed after shards/ and tmp/
// were removed behind the Driver's back.
func TestShardDirsRecreated(t *testing.T) {
	c := testConfig(t, false)
	d := open(t, c)
	checkServes(t, d)
	for _, sub := range []string{shardsDir, tmpDir} {
		if err := os.RemoveAll(filepath.Join(c.Dir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	if err := putProbeShard(t.Context(), d, []byte("again")); err != nil {
		t.Fatalf("write after the layout was removed: %v", err)
	}
	got, err := os.ReadFile(d.shardPath(probeShard))
	if err != nil || string(got) != "again" {
		t.Fatalf("shard file: %q, %v", got, err)
	}
}

// TestAttachOffline: Attach returns a drive that cannot be opened offline,
// and Probe brings it online once it is fixed; a drive of another cluster
// is never formatted over.
func TestAttachOffline(t *testing.T) {
	t.Run("path is a file", func(t *testing.T) {
		c := testConfig(t, false)
		c.Dir = filepath.Join(c.Dir, "drive")
		if err := os.WriteFile(c.Dir, []byte("not a drive"), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := Attach(t.Context(), c)
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		t.Cleanup(func() { d.Close() })
		if d.Err() == nil {
			t.Fatal("drive on a regular file is online")
		}
		if _, err := d.Info(t.Context()); !errors.Is(err, driver.ErrOffline) {
			t.Fatalf("Info of an offline drive: %v, want ErrOffline", err)
		}
		if _, err := d.CreateShard(t.Context(), probeShard); !errors.Is(err, driver.ErrOffline) {
			t.Fatalf("CreateShard of an offline drive: %v, want ErrOffline", err)
		}
		if err := d.Probe(t.Context()); err == nil {
			t.Fatal("Probe of a drive still broken succeeded")
		}
		if err := os.Remove(c.Dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(c.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := d.Probe(t.Context()); err != nil || d.Err() != nil {
			t.Fatalf("Probe of the fixed drive: %v (Err %v)", err, d.Err())
		}
		checkServes(t, d)
	})
	t.Run("foreign drive", func(t *testing.T) {
		c := testConfig(t, false)
		other := c
		other.ClusterID = "another"
		if err := open(t, other).Close(); err != nil {
			t.Fatal(err)
		}
		d, err := Attach(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		if !errors.Is(d.Err(), driver.ErrForeignDrive) {
			t.Fatalf("Err: %v, want ErrForeignDrive", d.Err())
		}
		if err := d.Probe(t.Context()); !errors.Is(err, driver.ErrForeignDrive) {
			t.Fatalf("Probe: %v, want ErrForeignDrive", err)
		}
		if f := readFormat(t, c.Dir); f.ClusterID != "another" {
			t.Fatalf("format record rewritten: %+v", f)
		}
	})
	t.Run("foreign drive swapped in while online", func(t *testing.T) {
		c := testConfig(t, false)
		d := open(t, c)
		b, _ := json.Marshal(format{Version: formatVersion, ClusterID: "another", DriveID: c.ID})
		if err := os.WriteFile(filepath.Join(c.Dir, formatFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.Probe(t.Context()); !errors.Is(err, driver.ErrForeignDrive) {
			t.Fatalf("Probe: %v, want ErrForeignDrive", err)
		}
		if _, err := d.GetRecord(t.Context(), "k"); !errors.Is(err, driver.ErrOffline) {
			t.Fatalf("GetRecord: %v, want ErrOffline", err)
		}
		if f := readFormat(t, c.Dir); f.ClusterID != "another" {
			t.Fatalf("format record rewritten: %+v", f)
		}
	})
}

// TestProbeReadOnly: a drive remounted read-only (a bind mount, which stops
// root too) goes offline at the next Probe and comes back once writable.
func TestProbeReadOnly(t *testing.T) {
	c := testConfig(t, false)
	d := open(t, c)
	checkServes(t, d)
	// Held in the record log only (no flush yet) as the drive goes.
	if _, _, err := d.PutRecord(t.Context(), driver.Record{Key: "logged", Version: driver.Version{1}, Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := roMount(c.Dir); err != nil {
		t.Skipf("cannot bind-mount read-only here: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			syscall.Unmount(c.Dir, 0)
		}
	})
	if err := d.Probe(t.Context()); err == nil || !errors.Is(d.Err(), syscall.EROFS) {
		t.Fatalf("Probe of a read-only drive: %v (Err %v), want offline with EROFS", err, d.Err())
	}
	if _, err := d.Info(t.Context()); !errors.Is(err, driver.ErrOffline) {
		t.Fatalf("Info of the read-only drive: %v, want ErrOffline", err)
	}
	if err := syscall.Unmount(c.Dir, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if err := d.Probe(t.Context()); err != nil {
		t.Fatalf("Probe after the remount: %v", err)
	}
	// What the drive held before is still there.
	if r, err := d.GetRecord(t.Context(), "logged"); err != nil || string(r.Data) != "x" {
		t.Fatalf("record held in the log when the drive went offline: %q, %v", r.Data, err)
	}
	rc, err := d.ReadShard(t.Context(), probeShard, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, []byte("shard bytes")) {
		t.Fatalf("shard after coming back: %q", got)
	}
}

// roMount bind-mounts dir read-only over itself.
func roMount(dir string) error {
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	if err := syscall.Mount("", dir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		syscall.Unmount(dir, 0)
		return err
	}
	return nil
}

// TestProbeUnderLoad: taking a drive offline and back while calls are in
// flight neither races nor wedges it; it ends online and serving.
func TestProbeUnderLoad(t *testing.T) {
	c := testConfig(t, true)
	d := open(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				s := driver.Shard{PG: uint32(w), Name: fmt.Sprintf("%016x", i)}
				if sw, err := d.CreateShard(ctx, s); err == nil {
					sw.Write([]byte("x"))
					sw.Commit(ctx)
				}
				d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("k%d-%d", w, i), Version: driver.Version{1}})
				d.ListRecords(ctx, "", "", 10)
				if rc, err := d.ReadShard(ctx, s, 0, -1); err == nil {
					io.ReadAll(rc)
					rc.Close()
				}
			}
		})
	}
	for range 3 {
		time.Sleep(200 * time.Millisecond)
		ents, _ := os.ReadDir(c.Dir)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(c.Dir, e.Name()))
		}
		d.Probe(t.Context())
	}
	wg.Wait()
	// A wipe racing a reopen can leave an index.db without format.json,
	// which is refused; a disk replaced for real comes back empty.
	ents, _ := os.ReadDir(c.Dir)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(c.Dir, e.Name()))
	}
	if err := d.Probe(t.Context()); err != nil {
		t.Fatalf("drive after the load: %v", err)
	}
	checkServes(t, d)
}
