package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/s3"
)

// raceRounds is the number of rounds of each race: a few by default,
// VAULT_E2E_RACE_ROUNDS for a longer run (the probe hit every race within
// a handful of rounds before uploads took a cluster-wide lease).
func raceRounds(t *testing.T) int {
	t.Helper()
	if v := os.Getenv("VAULT_E2E_RACE_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("VAULT_E2E_RACE_ROUNDS=%q", v)
		}
		return n
	}
	return 4
}

// TestClusterMultipartRaces races operations on one multipart upload
// through two nodes of a three-node cluster: Complete against Abort,
// against a Complete with another part list, against an UploadPart that
// replaces a part, and against the same Complete (a client's retry through
// a load balancer); then the same DELETE through two nodes. Afterwards an
// object either reads back whole with the bytes of exactly one part list
// that a Complete returned 200 for, or does not exist (never 503 or a
// truncated body), and the tenant's recorded usage equals the bytes and
// objects stored (never negative, never counted twice).
func TestClusterMultipartRaces(t *testing.T) {
	c := startCluster(t, 3)
	c.waitFormed(t, 60*time.Second)
	ctx := t.Context()
	var tn s3.NewTenant
	if err := c.admin(0).do(ctx, http.MethodPut, "/_vault/admin/tenants/race-tenant", &tn); err != nil {
		t.Fatal(err)
	}
	if err := c.admin(0).send(ctx, http.MethodPut, "/_vault/admin/tenants/race-tenant/rate", []byte(`{"rps":100000,"burst":100000}`), nil); err != nil {
		t.Fatal(err)
	}
	var cl []*awss3.Client
	for i := range c.nodes {
		cl = append(cl, c.s3Client(i, tn))
	}
	const bucket = "races"
	if _, err := cl[0].CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	rounds := raceRounds(t)

	// Part 1 is 5 MiB (the minimum of a part that is not the last), part 2
	// a few bytes; a replacement of part 2 has other bytes.
	p1 := bytes.Repeat([]byte("vaultaire-part-1"), (5<<20)/16)
	p2 := bytes.Repeat([]byte("2"), 1000)
	p2b := bytes.Repeat([]byte("b"), 1000)
	both := [][]byte{p1, p2}

	type op struct {
		node  int
		kind  string // "complete", "abort", "part"
		parts [][]byte
	}
	races := []struct {
		name string
		a, b op
	}{
		{"CompleteVsAbort", op{0, "complete", both}, op{1, "abort", nil}},
		{"CompleteVsComplete", op{0, "complete", [][]byte{p1}}, op{1, "complete", both}},
		{"CompleteVsUploadPart", op{0, "complete", both}, op{1, "part", nil}},
		{"SameCompleteTwice", op{0, "complete", both}, op{1, "complete", both}},
	}
	var stored sync.Map // key → size of the object that must exist
	for _, rc := range races {
		t.Run(rc.name, func(t *testing.T) {
			for r := range rounds {
				key := fmt.Sprintf("%s/%d", rc.name, r)
				up, err := cl[0].CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
				if err != nil {
					t.Fatal(err)
				}
				etags := map[int]string{}
				for i, body := range both {
					out, err := cl[0].UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
						PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body)})
					if err != nil {
						t.Fatal(err)
					}
					etags[i+1] = aws.ToString(out.ETag)
				}
				run := func(o op) error {
					switch o.kind {
					case "complete":
						var cp []types.CompletedPart
						for i := range o.parts {
							cp = append(cp, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: aws.String(etags[i+1])})
						}
						_, err := cl[o.node].CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
							UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: cp}})
						return err
					case "abort":
						_, err := cl[o.node].AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId})
						return err
					default:
						_, err := cl[o.node].UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
							PartNumber: aws.Int32(2), Body: bytes.NewReader(p2b)})
						return err
					}
				}
				start := make(chan struct{})
				var errA, errB error
				var wg sync.WaitGroup
				wg.Go(func() { <-start; errA = run(rc.a) })
				wg.Go(func() { <-start; errB = run(rc.b) })
				close(start)
				wg.Wait()
				for _, e := range []error{errA, errB} {
					if s := httpStatus(e); e != nil && (s == 0 || s >= 500 && s != http.StatusServiceUnavailable) {
						t.Fatalf("round %d: %v", r, e)
					}
				}
				// The object: one of the lists a Complete returned 200 for.
				var want [][][]byte
				if rc.a.kind == "complete" && errA == nil {
					want = append(want, rc.a.parts)
				}
				if rc.b.kind == "complete" && errB == nil {
					want = append(want, rc.b.parts)
				}
				if len(want) == 2 && len(want[0]) != len(want[1]) {
					t.Errorf("round %d: Completes with different part lists both answered 200", r)
				}
				got, gerr := getAll(ctx, cl[2], bucket, key)
				switch {
				case gerr != nil && errorCode(gerr) == "NoSuchKey":
					if len(want) > 0 {
						t.Errorf("round %d: a Complete answered 200 (a: %v, b: %v), the object does not exist", r, errA, errB)
					}
				case gerr != nil:
					t.Errorf("round %d: GET after the race (a: %v, b: %v): %v", r, errA, errB, gerr)
				default:
					if !matchesOne(got, want) {
						t.Errorf("round %d: GET read %d bytes, not one of the completed part lists (a: %v, b: %v)", r, len(got), errA, errB)
					}
					stored.Store(key, int64(len(got)))
				}
				// Leave no upload open: what the race left is aborted.
				if _, err := cl[2].AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId}); err != nil && errorCode(err) != "NoSuchUpload" {
					t.Fatalf("round %d: abort what is left: %v", r, err)
				}
			}
		})
	}

	// The same DELETE through two nodes at once: the object's size must
	// leave usage once.
	t.Run("DeleteTwice", func(t *testing.T) {
		body := bytes.Repeat([]byte("d"), 256<<10)
		for r := range 10 * rounds {
			key := fmt.Sprintf("delete/%d", r)
			if _, err := cl[r%3].PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
				t.Fatal(err)
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range errs {
				wg.Go(func() {
					<-start
					_, errs[i] = cl[i].DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
				})
			}
			close(start)
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatalf("round %d: delete: %v", r, err)
				}
			}
		}
	})

	// The same DELETE through all three nodes, twice each, in a tenant
	// of its own: a version's size may leave usage once at most. (Three or
	// more deletes can split the drives so that none replaced the version
	// on a majority: usage then stays high, the safe direction, so only
	// "never below what is stored" is exact here.)
	t.Run("DeleteManyWays", func(t *testing.T) {
		var dt s3.NewTenant
		if err := c.admin(1).do(ctx, http.MethodPut, "/_vault/admin/tenants/delete-tenant", &dt); err != nil {
			t.Fatal(err)
		}
		if err := c.admin(1).send(ctx, http.MethodPut, "/_vault/admin/tenants/delete-tenant/rate", []byte(`{"rps":100000,"burst":100000}`), nil); err != nil {
			t.Fatal(err)
		}
		var dc []*awss3.Client
		for i := range c.nodes {
			dc = append(dc, c.s3Client(i, dt))
		}
		if _, err := dc[1].CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("deletes")}); err != nil {
			t.Fatal(err)
		}
		const size = 256 << 10
		body := bytes.Repeat([]byte("m"), size)
		for r := range 8 * rounds {
			key := fmt.Sprintf("delete/%d", r)
			if _, err := dc[r%3].PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("deletes"), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
				t.Fatal(err)
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			errs := make([]error, 2*len(dc))
			for i := range errs {
				wg.Go(func() {
					<-start
					_, errs[i] = dc[i%len(dc)].DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("deletes"), Key: aws.String(key)})
				})
			}
			close(start)
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatalf("round %d: delete: %v", r, err)
				}
			}
		}
		// A sentinel of 1, 2 and 4 bytes through each node: once all three
		// are counted, each node has flushed its deletes' deltas too.
		for i, n := range []int{1, 2, 4} {
			if _, err := dc[i].PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("deletes"), Key: aws.String(fmt.Sprintf("sentinel/%d", i)), Body: bytes.NewReader(body[:n])}); err != nil {
				t.Fatal(err)
			}
		}
		var got s3.TenantUsage
		if _, err := retry(ctx, 15*time.Second, func(ctx context.Context) error {
			var ts []s3.TenantInfo
			if err := c.admin(0).do(ctx, http.MethodGet, "/_vault/admin/tenants", &ts); err != nil {
				return err
			}
			for _, x := range ts {
				if x.Name == "delete-tenant" {
					if got = x.Usage; (got.Bytes%size+size)%size != 7 {
						return fmt.Errorf("usage %+v: sentinels not all counted yet", got)
					}
					return nil
				}
			}
			return errors.New("delete-tenant not listed")
		}); err != nil {
			t.Fatal(err)
		}
		if got.Bytes < 7 || got.Artifacts < 3 {
			t.Fatalf("usage %+v below what is stored (3 objects, 7 bytes): a delete was subtracted twice", got)
		}
		t.Logf("usage %+v for 3 objects of 7 bytes: %d of %d deletes left uncounted (safe direction)", got, (got.Bytes-7)/size, 8*rounds)
	})

	t.Run("Usage", func(t *testing.T) {
		var want s3.TenantUsage
		stored.Range(func(_, v any) bool {
			want.Bytes += v.(int64)
			want.Artifacts++
			return true
		})
		// What the listing holds must be what the races left.
		var listed s3.TenantUsage
		p := awss3.NewListObjectsV2Paginator(cl[1], &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				listed.Bytes += aws.ToInt64(o.Size)
				listed.Artifacts++
			}
		}
		if listed != want {
			t.Fatalf("listing holds %+v, the races left %+v", listed, want)
		}
		ups, err := cl[1].ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		if len(ups.Uploads) != 0 {
			t.Fatalf("%d uploads left open", len(ups.Uploads))
		}
		// Usage is committed every second by each node.
		var got s3.TenantUsage
		if _, err := retry(ctx, 15*time.Second, func(ctx context.Context) error {
			var ts []s3.TenantInfo
			if err := c.admin(2).do(ctx, http.MethodGet, "/_vault/admin/tenants", &ts); err != nil {
				return err
			}
			for _, x := range ts {
				if x.Name == "race-tenant" {
					if got = x.Usage; got != want {
						return fmt.Errorf("usage %+v, want %+v", got, want)
					}
					return nil
				}
			}
			return errors.New("race-tenant not listed")
		}); err != nil {
			t.Fatalf("recorded usage does not match what is stored: %v", err)
		}
	})
}

// getAll reads a whole object; a body cut short is an error.
func getAll(ctx context.Context, cl *awss3.Client, bucket, key string) ([]byte, error) {
	out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return b, fmt.Errorf("read body: %w after %d bytes", err, len(b))
	}
	if n := aws.ToInt64(out.ContentLength); n != int64(len(b)) {
		return b, fmt.Errorf("read %d bytes, Content-Length %d", len(b), n)
	}
	return b, nil
}

// matchesOne reports whether got is the concatenation of one of the part
// lists.
func matchesOne(got []byte, lists [][][]byte) bool {
	for _, l := range lists {
		if bytes.Equal(got, bytes.Join(l, nil)) {
			return true
		}
	}
	return false
}
