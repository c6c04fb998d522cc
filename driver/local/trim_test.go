//go:build linux

package local

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// mappedKiB returns the resident KiB of the mappings of file in this
// process, from /proc/self/smaps.
func mappedKiB(t *testing.T, file string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatalf("smaps: %v", err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			in = len(fields) >= 6 && fields[5] == file // a mapping's header line
		case in && fields[0] == "Rss:":
			n, err := strconv.Atoi(fields[1])
			if err != nil {
				t.Fatalf("smaps Rss %q: %v", sc.Text(), err)
			}
			total += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("smaps: %v", err)
	}
	return total
}

// TestIndexPagesUnmapped checks that the pages of index.db bbolt's mapping
// holds resident stay bounded however much of the index the drive's calls
// read (writes, lookups, listings), and that records read back intact after
// their pages were unmapped.
func TestIndexPagesUnmapped(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 100 MB index")
	}
	keepInIndex(t)
	c := testConfig(t, true) // the mapping does not depend on fsyncs
	d := open(t, c)
	index := filepath.Join(c.Dir, indexFile)
	const (
		records = 36000
		size    = 2048 // the shard of a 4 KiB artifact on 2+2
		workers = 16
	)
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8)}, size/2) }
	key := func(i int) string { return fmt.Sprintf("t\x00b\x00%08x", uint32(i)*2654435761) } // spread over the key space
	// A flush maps every leaf it changes until it ends (bbolt's commit
	// reads the old pages' records through the mapping), with the pages
	// the kernel maps around each (up to faultWindow): bounded by the
	// flush's size, not the index's. Small flushes keep that below what
	// the rest may map.
	defer func(n int) { flushOps = n }(flushOps)
	flushOps = 64
	// What calls may map between two trims, twice, what a flush maps,
	// what a reclaim walk maps between the trims it runs (trimBytes of
	// node headers and the pages around them), and some slack.
	limit := (2*trimBytes + flushOps*faultWindow + trimBytes + faultWindow + 4<<20) >> 10 // KiB
	peak := 0
	sample := func(what string) {
		if m := mappedKiB(t, index); m > peak {
			peak = m
			if m > limit {
				t.Errorf("%s: %d KiB of index.db resident, want at most %d", what, m, limit)
			}
		}
	}

	// A sampler catches what a flush maps while it runs, not only what
	// is left mapped between calls.
	stop := make(chan struct{})
	var sampled sync.WaitGroup
	var sampleMu sync.Mutex
	sampled.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			sampleMu.Lock()
			sample("during the puts")
			sampleMu.Unlock()
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < records; i += workers {
				r := driver.Record{Key: key(i), Data: val(i)}
				r.Version[15] = 1
				if _, _, err := d.PutRecord(t.Context(), r); err != nil {
					t.Errorf("PutRecord %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampled.Wait()
	sample("after the puts")
	fi, err := os.Stat(index)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size()>>10 < 2*int64(limit) {
		t.Fatalf("index.db is %d KiB: too small to tell (want at least %d)", fi.Size()>>10, 2*limit)
	}

	for i := range records {
		r, err := d.GetRecord(t.Context(), key(i))
		if err != nil {
			t.Fatalf("GetRecord %d: %v", i, err)
		}
		if !bytes.Equal(r.Data, val(i)) {
			t.Fatalf("GetRecord %d: data differs", i)
		}
		if i%1000 == 0 {
			sample("lookups")
		}
	}
	sample("after the lookups")

	n, after := 0, ""
	for {
		rs, err := d.ListRecords(t.Context(), "", after, 5000)
		if err != nil {
			t.Fatalf("ListRecords: %v", err)
		}
		sample("listing")
		if len(rs) == 0 {
			break
		}
		n += len(rs)
		after = rs[len(rs)-1].Key
	}
	if n != records {
		t.Fatalf("listed %d records, want %d", n, records)
	}
	t.Logf("index.db %d KiB, at most %d KiB of it resident", fi.Size()>>10, peak)
}

// TestHotLookupsDoNotTrim checks that lookups of pages already mapped (one
// hot key read over and over) do not unmap the index: each such lookup
// counts faultWindow towards a trim, but the process maps nothing new.
func TestHotLookupsDoNotTrim(t *testing.T) {
	d := open(t, testConfig(t, true))
	r := driver.Record{Key: "t\x00b\x00hot", Data: bytes.Repeat([]byte{7}, 2048)}
	r.Version[15] = 1
	if _, _, err := d.PutRecord(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	const lookups = 5000 // would count 5000 × faultWindow: 156 trims of 8 MiB
	before := trims.count.Load()
	for i := range lookups {
		got, err := d.GetRecord(t.Context(), r.Key)
		if err != nil {
			t.Fatalf("GetRecord %d: %v", i, err)
		}
		if !bytes.Equal(got.Data, r.Data) {
			t.Fatalf("GetRecord %d: data differs", i)
		}
	}
	// A couple of trims may follow the test binary mapping its own pages.
	if n := trims.count.Load() - before; n > 4 {
		t.Errorf("%d lookups of one key trimmed %d times, want at most 4", lookups, n)
	}
}
