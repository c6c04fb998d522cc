package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// naiveList is the oracle: S3 listing semantics over a sorted key slice.
func naiveList(keys []string, o ListOptions) (artifacts, prefixes []string, truncated bool) {
	count := 0
	seen := map[string]bool{}
	for _, k := range keys {
		if !strings.HasPrefix(k, o.Prefix) {
			continue
		}
		entry, isPrefix := k, false
		if o.Delimiter != "" {
			if i := strings.Index(k[len(o.Prefix):], o.Delimiter); i >= 0 {
				entry, isPrefix = k[:len(o.Prefix)+i+len(o.Delimiter)], true
			}
		}
		if entry <= o.After || seen[entry] {
			continue
		}
		if count == o.Limit {
			return artifacts, prefixes, true
		}
		seen[entry] = true
		count++
		if isPrefix {
			prefixes = append(prefixes, entry)
		} else {
			artifacts = append(artifacts, entry)
		}
	}
	return artifacts, prefixes, false
}

// listAll pages through a listing, checking each page against the oracle.
func listAll(t *testing.T, e *Engine, keys []string, o ListOptions) (pages int) {
	t.Helper()
	for {
		res, err := e.List(context.Background(), "t", "c", o)
		if err != nil {
			t.Fatalf("List(%+v): %v", o, err)
		}
		wantA, wantP, wantT := naiveList(keys, o)
		var gotA []string
		for _, a := range res.Artifacts {
			gotA = append(gotA, a.Key)
		}
		if !slices.Equal(gotA, wantA) || !slices.Equal(res.Prefixes, wantP) || res.Truncated != wantT {
			t.Fatalf("List(%+v):\n got %d artifacts %q… prefixes %q truncated %v\nwant %d artifacts %q… prefixes %q truncated %v",
				o, len(gotA), head(gotA), head(res.Prefixes), res.Truncated, len(wantA), head(wantA), head(wantP), wantT)
		}
		pages++
		if !res.Truncated {
			return pages
		}
		o.After = res.Next
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func TestList10000(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 puts")
	}
	r := newRig(t, rigOptions{drives: 4})
	var keys []string
	for i := range 10_000 {
		var k string
		switch i % 4 {
		case 0:
			k = fmt.Sprintf("photos/%04d/img.jpg", i)
		case 1:
			k = fmt.Sprintf("photos/%04d.jpg", i)
		case 2:
			k = fmt.Sprintf("logs/2026/%02d/%05d.log", i%12, i)
		default:
			k = fmt.Sprintf("top-%05d", i)
		}
		keys = append(keys, k)
	}
	var wg sync.WaitGroup
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for k := range work {
				if _, err := r.e.Put(context.Background(), "t", "c", k, strings.NewReader(k), PutOptions{Size: int64(len(k))}); err != nil {
					t.Errorf("Put(%q): %v", k, err)
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	// Delete every 7th key: tombstones must stay hidden.
	var live []string
	for i, k := range keys {
		if i%7 == 0 {
			if err := r.e.Delete(context.Background(), "t", "c", k); err != nil {
				t.Fatal(err)
			}
			continue
		}
		live = append(live, k)
	}
	slices.Sort(live)

	if pages := listAll(t, r.e, live, ListOptions{Limit: 1000}); pages != (len(live)+999)/1000 {
		t.Fatalf("full listing took %d pages", pages)
	}
	for _, o := range []ListOptions{
		{Limit: 997},
		{Delimiter: "/", Limit: 3},
		{Delimiter: "/", Limit: 1000},
		{Prefix: "photos/", Delimiter: "/", Limit: 500},
		{Prefix: "photos/", Delimiter: "/", Limit: 1},
		{Prefix: "logs/2026/", Delimiter: "/", Limit: 5},
		{Prefix: "logs/", Limit: 333},
		{Prefix: "top-0", Limit: 250, After: "top-00500"},
		{Delimiter: "/", After: "logs/", Limit: 10},         // marker is a common prefix
		{Prefix: "photos/", Delimiter: ".", Limit: 100},     // other delimiter
		{Prefix: "photos/", Delimiter: "/img", Limit: 1000}, // multi-byte delimiter
		{Prefix: "nothing-here/", Limit: 10},
	} {
		listAll(t, r.e, live, o)
	}
}

func TestListTrailingSlashAndPrefixKeys(t *testing.T) {
	r := newRig(t, rigOptions{drives: 2})
	keys := []string{"a", "a/", "a/b", "a//c", "ab", "a0", "b/"}
	for _, k := range keys {
		r.put(t, k, []byte(k), -1)
	}
	slices.Sort(keys)
	for _, o := range []ListOptions{{Limit: 100}, {Delimiter: "/", Limit: 100}, {Prefix: "a/", Delimiter: "/", Limit: 100}, {Delimiter: "/", Limit: 1}} {
		listAll(t, r.e, keys, o)
	}
}
