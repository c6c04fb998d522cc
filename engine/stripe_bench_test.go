package engine

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/faulty"
	"github.com/vaultaire/vaultaire/driver/local"
	"github.com/vaultaire/vaultaire/placement"
)

// stripeBenchRig is 6 nodes × 2 local drives, each capped at bw bytes per
// second (faulty's bandwidth cap: the drives here share one disk), 4+2,
// with stripe width width.
func stripeBenchRig(b *testing.B, width int, bw int64) (*Engine, []string) {
	b.Helper()
	var dirs []string
	var pdrives []placement.Drive
	drives := map[placement.DriveID]driver.Driver{}
	for i := range 12 {
		id := placement.DriveID(fmt.Sprintf("d%02d", i))
		dirs = append(dirs, b.TempDir())
		d, err := local.Open(b.Context(), local.Config{Dir: dirs[i], ID: driver.DriveID(id), ClusterID: "bench", NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		f := faulty.New(d, uint64(i))
		f.SetBandwidth(bw)
		drives[id] = f
		pdrives = append(pdrives, placement.Drive{ID: id, Node: placement.NodeID(fmt.Sprintf("n%d", i/2)), Class: driver.ClassLocal})
	}
	m, err := placement.NewMap(pdrives, placement.Policy{Data: 4, Parity: 2}, placement.DefaultPGCount, 1)
	if err != nil {
		b.Fatal(err)
	}
	m.Width = width
	topo, err := NewStatic(m, drives)
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(Config{Topology: topo, Containers: &MemContainers{}})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.CreateContainer(b.Context(), "t", "c"); err != nil {
		b.Fatal(err)
	}
	return e, dirs
}

// busiestDrive returns the most bytes of shard files one of dirs holds.
func busiestDrive(b *testing.B, dirs []string) int64 {
	var most int64
	for _, dir := range dirs {
		var n int64
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && strings.Contains(p, "shards") {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		most = max(most, n)
	}
	return most
}

// peakRSS returns the process's peak resident set (VmHWM) in bytes, and
// resetPeakRSS starts it again from the current RSS (Linux).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return -1
}

func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchmarkStriped: one stream PUTs then GETs a large artifact through
// 12 drives capped at 40 MiB/s each, 4+2, unstriped (width 1: one PG's 6
// drives) and striped over 8 PGs. VAULT_STRIPE_BENCH_MIB sets the size
// (default 512), VAULT_STRIPE_WRITE_AHEAD a fixed window of a Put's parts
// in flight (default: stripeWriteAhead, up to stripeWriteBurst from the
// shared budget). Run each case in its own process for
// a meaningful peak RSS (bench/RESULTS.md):
//
//	go test ./engine -run '^$' -bench 'BenchmarkStriped/width=8' -benchtime 1x
func BenchmarkStriped(b *testing.B) {
	size := int64(512) << 20
	if s, err := strconv.Atoi(os.Getenv("VAULT_STRIPE_BENCH_MIB")); err == nil && s > 0 {
		size = int64(s) << 20
	}
	if w, err := strconv.Atoi(os.Getenv("VAULT_STRIPE_WRITE_AHEAD")); err == nil && w > 0 && w <= maxStripeWriteAhead {
		defer func(ahead, burst int) { stripeWriteAhead, stripeWriteBurst = ahead, burst }(stripeWriteAhead, stripeWriteBurst)
		stripeWriteAhead, stripeWriteBurst = w, w
	}
	const bw = 40 << 20
	for _, width := range []int{1, 8} {
		b.Run(fmt.Sprintf("width=%d", width), func(b *testing.B) {
			for _, op := range []string{"put", "get"} {
				b.Run(op, func(b *testing.B) {
					e, dirs := stripeBenchRig(b, width, bw)
					// The body repeats 8 MiB of random bytes: generating
					// them as it goes took a fifth of the CPU.
					block := make([]byte, 8<<20)
					rand.NewChaCha8([32]byte{1}).Read(block)
					body := func() io.Reader { return io.LimitReader(&repeater{b: block}, size) }
					if op == "get" {
						if _, err := e.Put(b.Context(), "t", "c", "k", body(), PutOptions{Size: size}); err != nil {
							b.Fatal(err)
						}
					}
					resetPeakRSS()
					b.SetBytes(size)
					i := 0
					for b.Loop() {
						i++
						if op == "put" {
							if _, err := e.Put(b.Context(), "t", "c", fmt.Sprint("k", i), body(), PutOptions{Size: size}); err != nil {
								b.Fatal(err)
							}
							continue
						}
						a, err := e.Open(context.Background(), "t", "c", "k")
						if err != nil {
							b.Fatal(err)
						}
						if err := a.WriteRange(b.Context(), io.Discard, 0, a.Info.Size); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(peakRSS())/(1<<20), "peakRSS-MiB")
					// The busiest drive bounds the throughput: its bytes
					// at the cap take this long at least.
					busiest := busiestDrive(b, dirs)
					b.ReportMetric(float64(busiest)/(1<<20), "busiest-drive-MiB")
					b.ReportMetric(float64(size)/(float64(busiest)/bw)/1e6, "drive-bound-MB/s")
				})
			}
		})
	}
}

// repeater reads b over and over.
type repeater struct {
	b   []byte
	off int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}
