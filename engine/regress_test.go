package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"testing"
	"time"
)

// R1: a failed inline overwrite whose record lands on one drive makes the
// previously acknowledged version unreadable.
func TestRegressFailedInlineOverwriteHidesAckedVersion(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10}) // 2+2
	key := "victim"
	old := randBytes(1, 500_000)
	r.put(t, key, old, -1)
	for j := 1; j < 4; j++ {
		r.faultyOf(key, j).SetOffline(true)
	}
	_, err := r.e.Put(context.Background(), "t", "c", key, bytes.NewReader([]byte("new small")), PutOptions{Size: -1})
	t.Logf("failed overwrite: %v", err)
	for j := 1; j < 4; j++ {
		r.faultyOf(key, j).SetOffline(false)
	}
	got, err := r.get(key, 0, -1)
	t.Logf("Get after failed overwrite: %d bytes, equalOld=%v, equalNew=%v, err=%v", len(got), bytes.Equal(got, old), string(got) == "new small", err)
	healed, herr := r.e.Heal(context.Background(), "t", "c", key)
	t.Logf("Heal: %v %v", healed, herr)
	if err != nil {
		t.Errorf("acknowledged version unreadable after a failed overwrite: %v", err)
	}
}

// R2: a body that ends with io.ErrUnexpectedEOF (net/http's truncated-body
// error) is stored truncated when the size is unknown.
type truncBody struct {
	data []byte
}

func (b *truncBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func TestRegressUnexpectedEOFBodyStored(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	for _, size := range []int{1000, 700_000} {
		data := randBytes(2, size)
		info, err := r.e.Put(context.Background(), "t", "c", "trunc", &truncBody{data: data}, PutOptions{Size: -1})
		t.Logf("size %d: Put err=%v info.Size=%d", size, err, info.Size)
		if err == nil {
			t.Errorf("size %d: body failing with io.ErrUnexpectedEOF was stored as a complete artifact", size)
		}
	}
}

// R3: one offline drive in the set makes Heal fail for every other drive.
func TestRegressHealBlockedByOfflineDrive(t *testing.T) {
	r := newRig(t, rigOptions{drives: 6, stripeSize: 64 << 10}) // 4+2
	key := "big"
	data := randBytes(3, 1_000_000)
	r.put(t, key, data, -1)
	// Corrupt shard 1 on disk.
	f := r.faultyOf(key, 1)
	_ = f
	files := shardFiles(t, r.dirOf(key, 1))
	raw, _ := readFile(files[0])
	raw[100] ^= 1
	writeFile(files[0], raw)
	r.faultyOf(key, 5).SetOffline(true)
	healed, err := r.e.Heal(context.Background(), "t", "c", key)
	t.Logf("Heal with drive 5 offline: %v, %v", healed, err)
	if !slices.Contains(healed, 1) || (err != nil && !errors.Is(err, ErrHealIncomplete)) {
		t.Errorf("Heal could not repair corrupt shard 1 because shard 5's drive is offline: %v, %v", healed, err)
	}
	// The offline drive is still to be checked: the artifact stays queued.
	if q := r.e.Degraded(); len(q) != 1 {
		t.Errorf("heal queue %v, want the artifact kept for the offline drive", q)
	}
}

// R4: Reader.Close blocks while a drive read is slow; ctx is not cancelled.
func TestRegressReaderCloseBlocks(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	key := "slow"
	r.put(t, key, randBytes(4, 500_000), -1)
	a, err := r.e.Open(context.Background(), "t", "c", key)
	if err != nil {
		t.Fatal(err)
	}
	r.faultyOf(key, 0).SetLatency(3 * time.Second)
	rc := a.Reader(context.Background(), 0, a.Info.Size)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	rc.Close()
	d := time.Since(start)
	t.Logf("Close took %v", d)
	if d > time.Second {
		t.Errorf("Close blocked %v waiting on a slow drive", d)
	}
}

// R5: a cancelled read reports ErrReadQuorum and queues a heal.
func TestRegressCancelledReadMisreported(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	key := "cancel"
	r.put(t, key, randBytes(5, 500_000), -1)
	a, err := r.e.Open(context.Background(), "t", "c", key)
	if err != nil {
		t.Fatal(err)
	}
	for j := range 4 {
		r.faultyOf(key, j).SetLatency(200 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = a.WriteRange(ctx, io.Discard, 0, a.Info.Size)
	t.Logf("WriteRange: %v; Degraded=%v", err, r.e.Degraded())
	if errors.Is(err, ErrReadQuorum) || len(r.e.Degraded()) != 0 {
		t.Errorf("cancellation reported as ErrReadQuorum=%v, heal queued=%v", errors.Is(err, ErrReadQuorum), len(r.e.Degraded()) != 0)
	}
}

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }
func writeFile(p string, b []byte)      { os.WriteFile(p, b, 0o644) }
