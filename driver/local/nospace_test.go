package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and returns
// it; the test is skipped where mounting is not allowed (not root, no
// mount(8)). The file system is unmounted when the test ends.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Lazily, if something still holds it open.
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full.
func fill(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return path
		}
	}
}

// TestFullDisk runs a drive on a real file system that fills up: writes of
// shards and records fail with driver.ErrNoSpace, and the drive stays
// online, reads and deletes working, until space is freed and writes work
// again. (A write probe failing with ENOSPC used to take a full drive
// offline, hiding everything on it.)
func TestFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, 4<<20)
	ctx := t.Context()
	d, err := Open(ctx, Config{Dir: filepath.Join(mnt, "drive"), ID: "d0", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	setReserve(t, d, 0) // the file system's own ENOSPC, as when others fill it

	keep := bytes.Repeat([]byte("kept shard "), 6000)
	if err := putProbeShard(ctx, d, keep); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "keep", Version: driver.Version{1}, Data: []byte("kept record")}); err != nil {
		t.Fatal(err)
	}
	filler := fill(t, mnt, "filler")

	// A shard write fails with ErrNoSpace, at Create, Write or Commit.
	big := driver.Shard{PG: 3, Name: "ffeeddccbbaa99887766554433221100"}
	err = func() error {
		w, err := d.CreateShard(ctx, big)
		if err != nil {
			return err
		}
		defer w.Abort()
		if _, err := w.Write(make([]byte, 1<<20)); err != nil {
			return err
		}
		return w.Commit(ctx)
	}()
	if !errors.Is(err, driver.ErrNoSpace) {
		t.Fatalf("shard write on a full disk: err = %v, want driver.ErrNoSpace", err)
	}
	if _, err := d.ReadShard(ctx, big, 0, -1); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("failed shard write visible: ReadShard err = %v, want ErrNotFound", err)
	}
	// A record too large for the index's free pages fails the same way.
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "big", Version: driver.Version{1}, Data: make([]byte, 1<<20)}); !errors.Is(err, driver.ErrNoSpace) {
		t.Fatalf("large record on a full disk: err = %v, want driver.ErrNoSpace", err)
	}

	// The drive stays online and serves what it holds. (Fill again: the
	// failed writes gave back what they had taken.)
	filler2 := fill(t, mnt, "filler2")
	// The health check must find a full drive healthy: failing it took
	// the drive offline (aborting writes, failing reads in flight) and
	// reopened it on every probe.
	if err := d.check(); err != nil {
		t.Fatalf("health check of a full drive: %v", err)
	}
	if err := d.Probe(ctx); err != nil {
		t.Fatalf("Probe of a full drive: %v (a full drive must stay online)", err)
	}
	rc, err := d.ReadShard(ctx, probeShard, 0, -1)
	if err != nil {
		t.Fatalf("read on a full disk: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, keep) {
		t.Fatalf("read on a full disk: %d bytes, err %v; want the %d bytes written", len(got), err, len(keep))
	}
	if r, err := d.GetRecord(ctx, "keep"); err != nil || string(r.Data) != "kept record" {
		t.Fatalf("GetRecord on a full disk: %q, %v", r.Data, err)
	}
	if _, err := d.GetRecord(ctx, "big"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("failed record put visible: err = %v, want ErrNotFound", err)
	}
	if err := d.DeleteShard(ctx, probeShard); err != nil {
		t.Fatalf("delete on a full disk: %v", err)
	}

	// Space freed: writes work again.
	for _, f := range []string{filler, filler2} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := putProbeShard(ctx, d, keep); err != nil {
		t.Fatalf("write after space was freed: %v", err)
	}
	if _, _, err := d.PutRecord(ctx, driver.Record{Key: "big", Version: driver.Version{2}, Data: make([]byte, 1<<20)}); err != nil {
		t.Fatalf("large record after space was freed: %v", err)
	}
}

// TestFullDriveDeletes fills a drive through its own writes, as S3 PUTs do,
// until it refuses them, then deletes: the tombstones, record deletes and
// shard deletes must all succeed and free the space, and writes work
// again. Without the reserve (spaceReserve) the drive filled the file
// system and refused the deletes too: a store full of data could not be
// emptied (session 20, aws s3 rm answered InsufficientStorage).
func TestFullDriveDeletes(t *testing.T) {
	mnt := mountTmpfs(t, 16<<20)
	ctx := t.Context()
	d, err := Open(ctx, Config{Dir: filepath.Join(mnt, "drive"), ID: "d0", ClusterID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	setReserve(t, d, spaceFloor)
	var shards []driver.Shard
	var keys []string
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("16 MiB took 1000 artifacts of 64 KiB")
		}
		s := driver.Shard{PG: 1, Name: fmt.Sprintf("%016x", i)}
		key := fmt.Sprintf("t/c/k%04d", i)
		_, _, rerr := d.PutRecord(ctx, driver.Record{Key: key, Version: stamp(), Data: make([]byte, 2<<10)})
		err := rerr
		if err == nil {
			keys = append(keys, key)
			err = putShard(ctx, d, s, make([]byte, 64<<10))
		}
		if errors.Is(err, driver.ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		shards = append(shards, s)
		time.Sleep(spaceCheck / 4) // as writes come, a few within each look at the free space
	}
	if len(shards) < 10 {
		t.Fatalf("only %d artifacts of 64 KiB fit in 16 MiB", len(shards))
	}
	// The records go into index.db and the record log starts a new
	// segment, whose first frame needs fresh blocks.
	flushHeld(t, d)
	for _, key := range keys {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: key, Version: stamp(), Data: []byte("tombstone")}); err != nil {
			t.Fatalf("tombstone over %s on a full drive: %v", key, err)
		}
	}
	for _, s := range shards {
		if err := d.DeleteShard(ctx, s); err != nil {
			t.Fatalf("delete shard %s on a full drive: %v", s.Name, err)
		}
	}
	for _, key := range keys {
		if err := d.DeleteRecord(ctx, key, driver.Version{}); err != nil {
			t.Fatalf("delete record %s on a full drive: %v", key, err)
		}
	}
	time.Sleep(2 * spaceCheck)
	if err := putShard(ctx, d, driver.Shard{PG: 1, Name: "ffffffffffffffff"}, make([]byte, 64<<10)); err != nil {
		t.Fatalf("write once the deletes freed space: %v", err)
	}
}

// putShard writes and commits shard s.
func putShard(ctx context.Context, d *Driver, s driver.Shard, data []byte) error {
	w, err := d.CreateShard(ctx, s)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit(ctx)
}
