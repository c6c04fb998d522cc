package bench_test

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/internal/testnode"
)

// diskUse is what the drive directories occupy: allocated blocks
// (st_blocks, as du counts them), split by kind of file.
type diskUse struct {
	index, packs, shards, other int64 // bytes of allocated blocks
	files                       int   // shard files
}

func (u diskUse) total() int64 { return u.index + u.packs + u.shards + u.other }

// measureDisk sums the allocated blocks of every file under dirs.
func measureDisk(t *testing.T, dirs []string) diskUse {
	t.Helper()
	var u diskUse
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed during the walk (a record log segment after a flush)
			}
			if err != nil || !e.Type().IsRegular() {
				return err
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			n := fi.Sys().(*syscall.Stat_t).Blocks * 512
			rel, _ := filepath.Rel(dir, path)
			switch {
			case filepath.Base(path) == "index.db":
				u.index += n
			case strings.HasPrefix(rel, "packs"+string(filepath.Separator)):
				u.packs += n
			case strings.HasPrefix(rel, "shards"+string(filepath.Separator)):
				u.shards += n
				u.files++
			default:
				u.other += n
			}
			return nil
		})
		if err != nil {
			t.Fatalf("measure %s: %v", dir, err)
		}
	}
	return u
}

// TestSpace stores the issue 18 mix on one node with 4 drives (2+2):
// small artifacts of 1–64 KiB and a few of 20 MiB, 4,000 + 10 at full
// scale (VAULT_BENCH_SPACE=1; 343 MB), 400 + 1 otherwise. It compares the
// blocks the drives allocate with the ideal, logical bytes × (k+m)/k, then
// overwrites half of the artifacts (new sizes from the same distribution)
// and deletes the other half, and compares again with what is left.
func TestSpace(t *testing.T) {
	if testing.Short() {
		t.Skip("writes tens of MB with fsyncs")
	}
	small, large := 400, 1
	if os.Getenv("VAULT_BENCH_SPACE") == "1" {
		small, large = 4000, 10
	}
	const (
		largeSize = 20 << 20
		ratioMax  = 2 // (k+m)/k of 2+2
	)
	n := testnode.Start(t, nil)
	c := client(n.Endpoint)
	bucket := "space"
	if _, err := c.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(18, 5))
	pool := make([]byte, largeSize+64<<10)
	for i := range pool {
		pool[i] = byte(rng.Uint32())
	}
	newSize := func(i int) int {
		if i >= small {
			return largeSize
		}
		return 1<<10 + rng.IntN(63<<10+1)
	}
	sizes := make([]int, small+large)
	for i := range sizes {
		sizes[i] = newSize(i)
	}
	key := func(i int) string { return "a/" + strconv.Itoa(i) }
	put := func(ids []int) {
		t.Helper()
		var wg sync.WaitGroup
		work := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range work {
					off := (i * 7919) % (len(pool) - sizes[i])
					_, err := c.PutObject(t.Context(), &awss3.PutObjectInput{
						Bucket: aws.String(bucket), Key: aws.String(key(i)),
						Body: bytes.NewReader(pool[off : off+sizes[i]]), ContentLength: aws.Int64(int64(sizes[i])),
					})
					if err != nil {
						t.Errorf("put %s: %v", key(i), err)
					}
				}
			})
		}
		for _, i := range ids {
			work <- i
		}
		close(work)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	report := func(stage string, live []int) float64 {
		t.Helper()
		var logical int64
		for _, i := range live {
			logical += int64(sizes[i])
		}
		ideal := logical * ratioMax
		// Give the drives' background reclaim of free index pages
		// (driver/local) time to run, and their record logs time to be
		// flushed into index.db (a second after the writes stop; the
		// log's segments are transient, up to a few MiB per drive): wait
		// until the figure stops falling and the logs are empty.
		const logsFlushed = 1 << 20
		u := measureDisk(t, n.Dirs)
		for still, deadline := 0, time.Now().Add(5*time.Minute); (still < 3 || u.other >= logsFlushed) && time.Now().Before(deadline); {
			time.Sleep(time.Second)
			if v := measureDisk(t, n.Dirs); v.total() < u.total() || v.other < u.other {
				u, still = v, 0
			} else {
				still++
			}
		}
		r := float64(u.total()) / float64(ideal)
		t.Logf("%s: %d artifacts, %.1f MB logical, ideal %.1f MB, allocated %.1f MB = %.4fx "+
			"(index.db %.1f MB, packs %.1f MB, %d shard files %.1f MB, other %.1f MB; %.0f bytes over the ideal per artifact)",
			stage, len(live), mb(logical), mb(ideal), mb(u.total()), r,
			mb(u.index), mb(u.packs), u.files, mb(u.shards), mb(u.other), float64(u.total()-ideal)/float64(len(live)))
		return r
	}

	all := make([]int, len(sizes))
	for i := range all {
		all[i] = i
	}
	put(all)
	loaded := report("loaded", all)

	// Overwrite the even half with new sizes, delete the odd half.
	var even, odd []int
	for _, i := range all {
		if i%2 == 0 || i == small { // keep a large artifact at small scale
			even = append(even, i)
		} else {
			odd = append(odd, i)
		}
	}
	for _, i := range even {
		sizes[i] = newSize(i)
	}
	put(even)
	for _, i := range odd {
		if _, err := c.DeleteObject(t.Context(), &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key(i))}); err != nil {
			t.Fatalf("delete %s: %v", key(i), err)
		}
	}
	churned := report("overwritten and deleted half", even)
	// Write the deleted half again: the space freed must be reused.
	for _, i := range odd {
		sizes[i] = newSize(i)
	}
	put(odd)
	refilled := report("deleted half written again", all)
	// Issue 18's bounds (1.02x loaded, 1.05x after the churn), which the
	// packs meet (driver/local pack.go; figures in bench/RESULTS.md), and
	// a little above the refill's figure. At the small scale a drive's
	// fixed slack weighs ten times more: up to reclaimMin (1 MiB,
	// driver/local) of free index pages left allocated, 4 MiB of the 4
	// drives.
	slack := 0.0
	if small < 4000 {
		slack = 0.025
	}
	for _, c := range []struct {
		stage      string
		got, limit float64
	}{
		{"loaded", loaded, 1.02 + slack},
		{"overwritten and deleted half", churned, 1.05 + slack},
		{"deleted half written again", refilled, 1.035 + slack},
	} {
		if c.got > c.limit {
			t.Errorf("%s: %.4fx the ideal, want at most %.2fx", c.stage, c.got, c.limit)
		}
	}
}

func mb(n int64) float64 { return float64(n) / 1e6 }
