package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
)

// TestCompaction: after most small shards are deleted, Compact writes a
// snapshot, rewrites the sparse log objects' live shards into new ones and
// (on its next run) deletes the old ones; everything live reads back the
// same, from this driver and from a new one, which opens from the snapshot
// plus the few log objects after it.
func TestCompaction(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := s.config("", b, "compact")
	c.CompactInterval = -1
	ctx := t.Context()
	d := open(t, c)

	const n = 300
	data := func(i int) []byte { return payload(8<<10+i, uint64(i)) }
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil; i += 16 {
				errs[w] = writeShard(ctx, d, shard(i), data(i))
				if errs[w] == nil {
					_, _, errs[w] = d.PutRecord(ctx, driver.Record{Key: fmt.Sprintf("r%03d", i), Version: version(1), Data: []byte(fmt.Sprint(i))})
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	keep := func(i int) bool { return i%10 == 0 }
	for i := range n {
		if !keep(i) {
			if err := d.DeleteShard(ctx, shard(i)); err != nil {
				t.Fatal(err)
			}
			if err := d.DeleteRecord(ctx, fmt.Sprintf("r%03d", i), driver.Version{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func(sub string) int {
		t.Helper()
		var total int
		var token *string
		for {
			out, err := s.client("").ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("compact/" + sub), ContinuationToken: token})
			if err != nil {
				t.Fatal(err)
			}
			total += len(out.Contents)
			if !aws.ToBool(out.IsTruncated) {
				return total
			}
			token = out.NextContinuationToken
		}
	}
	logsBefore := count("log/")

	st, err := d.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Snapshot || st.Rewritten == 0 || st.MovedBytes == 0 {
		t.Errorf("first Compact: %+v, want a snapshot and rewritten log objects", st)
	}
	// Nothing is deleted until the next run.
	if got := count("log/"); got < logsBefore {
		t.Errorf("log objects deleted by the first run: %d, then %d", logsBefore, got)
	}
	st2, err := d.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logsAfter := count("log/")
	t.Logf("%d log objects before, %d after; first run %+v, second %+v", logsBefore, logsAfter, st, st2)
	if st2.Deleted == 0 || logsAfter > logsBefore/4 {
		t.Errorf("after compaction %d log objects of %d remain (deleted %d)", logsAfter, logsBefore, st2.Deleted)
	}
	if got := count("snap/"); got != 1 {
		t.Errorf("%d snapshots in the bucket, want 1", got)
	}

	check := func(name string, d driver.Driver) {
		t.Helper()
		for i := range n {
			got, err := readAll(ctx, d, shard(i))
			r, rerr := d.GetRecord(ctx, fmt.Sprintf("r%03d", i))
			switch {
			case keep(i) && (err != nil || !bytes.Equal(got, data(i))):
				t.Errorf("%s: shard %d: %v, %d bytes", name, i, err, len(got))
			case keep(i) && (rerr != nil || string(r.Data) != fmt.Sprint(i)):
				t.Errorf("%s: record %d: %v", name, i, rerr)
			case !keep(i) && (!errors.Is(err, driver.ErrNotFound) || !errors.Is(rerr, driver.ErrNotFound)):
				t.Errorf("%s: deleted shard/record %d: %v, %v", name, i, err, rerr)
			}
		}
	}
	check("after compaction", d)

	// More writes after the snapshot, then a new driver.
	if err := writeShard(ctx, d, shard(n+1), data(n+1)); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteShard(ctx, shard(0)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2 := open(t, c)
	opened := d2.Stats()
	if opened.Gets > 6 {
		t.Errorf("Open read %d objects, want the snapshot and the two log objects after it", opened.Gets)
	}
	if got, err := readAll(ctx, d2, shard(n+1)); err != nil || !bytes.Equal(got, data(n+1)) {
		t.Errorf("shard written after the snapshot: %v", err)
	}
	if _, err := readAll(ctx, d2, shard(0)); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("shard deleted after the snapshot: %v", err)
	}
	if err := writeShard(ctx, d2, shard(0), data(0)); err != nil {
		t.Fatal(err)
	}
	check("reopened", d2)
	// format.json, the snapshot, the log objects the compaction left
	// (those still mostly live: how many depends on how the concurrent
	// writes were batched, 7 under -race in CI once against a fixed bound
	// of 12) and the three written since (shard n+1, the delete, shard 0).
	if n := count(""); n > logsAfter+5 {
		var keys []string
		out, _ := s.client("").ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &b, Prefix: aws.String("compact/")})
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		t.Errorf("%d objects in the bucket after compaction: %s", n, strings.Join(keys, " "))
	}
}
