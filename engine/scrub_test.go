package engine

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// TestScrubberRepairsBitrot: bytes flipped in shard files nobody reads (and
// a shard file removed) are found by the scrubber within its period and
// rebuilt, byte for byte; its status counts them.
func TestScrubberRepairsBitrot(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	const n = 60
	for i := range n {
		r.put(t, fmt.Sprintf("k%03d", i), randBytes(uint64(i), 150_000+i*1000), -1)
	}
	// A Put answers once a write quorum has its shards; a drive slower
	// than the straggler grace (a loaded machine) commits its own a
	// moment later.
	var files []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		files = files[:0]
		for _, dir := range r.dirs {
			files = append(files, shardFiles(t, dir)...)
		}
		if len(files) == 4*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shard files, want %d", len(files), 4*n)
		}
	}
	orig := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		orig[f] = b
	}
	// Damage 5 files (2% of 240): four with a flipped byte (in the
	// checksum, the first block, the middle, the last byte) and one
	// removed.
	rng := rand.New(rand.NewPCG(1, 2))
	victims := slices.Clone(files)
	rng.Shuffle(len(victims), func(i, j int) { victims[i], victims[j] = victims[j], victims[i] })
	victims = victims[:5]
	for i, f := range victims[:4] {
		b := slices.Clone(orig[f])
		off := []int{3, 100, len(b) / 2, len(b) - 1}[i]
		b[off] ^= 0x40
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(victims[4]); err != nil {
		t.Fatal(err)
	}

	drives := map[placement.DriveID]driver.Driver{}
	for i, id := range r.ids {
		drives[id] = r.faulty[i]
	}
	s, err := r.e.NewScrubber(ScrubConfig{Drives: drives, Period: 2 * time.Second, Rate: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	total := func() (corrupt, repaired, passes uint64) {
		for _, st := range s.Status() {
			corrupt += st.Corrupt
			repaired += st.Repaired
			passes += min(st.Passes, 1)
		}
		return
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, rep, p := total(); c >= 5 && rep >= 5 && p == 4 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if c, rep, p := total(); c != 5 || rep != 5 || p != 4 {
		t.Fatalf("scrubber status %+v: %d corrupt, %d repaired, %d drives with a full pass; want 5, 5, 4", s.Status(), c, rep, p)
	}
	for _, f := range victims {
		if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, orig[f]) {
			t.Errorf("%s after the scrub: %d bytes, %v; want the original %d bytes", f, len(got), err, len(orig[f]))
		}
	}
	var shards uint64
	for _, st := range s.Status() {
		shards += st.Shards
		// With a 2 s period the next pass may have begun on a loaded
		// machine: its progress then starts again from 0.
		if st.Bytes == 0 || st.Passes == 0 || st.Progress() != 1 && !st.PassStarted.After(st.LastPass) {
			t.Errorf("drive %s: %+v, progress %v; want bytes verified and the pass done", st.Drive, st, st.Progress())
		}
	}
	if shards < 4*n {
		t.Errorf("%d shards verified, want at least %d", shards, 4*n)
	}
	if q := r.e.Degraded(); len(q) != 0 {
		t.Errorf("heal queue %v after the repairs", q)
	}
}

// TestScrubberPacesToRate: a pass reads no faster than the rate cap.
func TestScrubberPacesToRate(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	for i := range 8 {
		r.put(t, fmt.Sprintf("k%d", i), randBytes(uint64(i), 400_000), -1)
	}
	drives := map[placement.DriveID]driver.Driver{r.ids[0]: r.faulty[0]}
	const rateBps = 512 << 10
	s, err := r.e.NewScrubber(ScrubConfig{Drives: drives, Period: time.Millisecond, Rate: rateBps})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	time.Sleep(time.Second)
	cancel()
	<-done
	st := s.Status()[0]
	// 1 s at 512 KiB/s plus the 256 KiB burst.
	if st.Bytes == 0 || st.Bytes > rateBps+scrubBurst+64<<10 {
		t.Fatalf("%d bytes verified in 1 s at %d bytes/s", st.Bytes, rateBps)
	}
}

// TestScrubberWaitsForOfflineDrive: a drive offline when its pass starts
// is reported (Err) and scrubbed once it is back, at the usual pace.
func TestScrubberWaitsForOfflineDrive(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4, stripeSize: 64 << 10})
	for i := range 5 {
		r.put(t, fmt.Sprintf("k%d", i), randBytes(uint64(i), 200_000), -1)
	}
	files := shardFiles(t, r.dirs[0])
	orig, err := os.ReadFile(files[2])
	if err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(orig)
	bad[len(bad)/2] ^= 1
	if err := os.WriteFile(files[2], bad, 0o600); err != nil {
		t.Fatal(err)
	}
	r.faulty[0].SetOffline(true)
	s, err := r.e.NewScrubber(ScrubConfig{Drives: map[placement.DriveID]driver.Driver{r.ids[0]: r.faulty[0]}, Period: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(1500 * time.Millisecond)
	if st := s.Status()[0]; st.Err == "" || st.Passes != 0 || st.Corrupt != 0 {
		t.Fatalf("status with the drive offline: %+v", st)
	}
	r.faulty[0].SetOffline(false)
	deadline := time.Now().Add(30 * time.Second)
	for s.Status()[0].Repaired == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := s.Status()[0]; st.Corrupt != 1 || st.Repaired != 1 || st.Err != "" {
		t.Fatalf("status after the drive came back: %+v", st)
	}
	if got, err := os.ReadFile(files[2]); err != nil || !bytes.Equal(got, orig) {
		t.Fatalf("shard file after the scrub: %v", err)
	}
}
