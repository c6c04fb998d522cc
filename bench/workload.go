package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// keyspace tracks the prepared objects of get, mixed and list: which exist,
// at which write generation, and which an operation is using, so that
// concurrent mixed operations never race on one key. Safe for concurrent
// use once prepared.
type keyspace struct {
	mu      sync.Mutex // guards the following fields
	rng     *rand.Rand
	present []bool
	gen     []uint32 // generation of the content last written
	busy    []bool
}

func newKeyspace(n int, seed uint64) *keyspace {
	return &keyspace{
		rng:     rand.New(rand.NewPCG(seed, 7)),
		present: make([]bool, n), gen: make([]uint32, n), busy: make([]bool, n),
	}
}

// acquire picks an idle key, present if wantPresent, and marks it busy. It
// returns ok false if none was found in a bounded number of tries.
func (k *keyspace) acquire(wantPresent bool) (i int, gen uint32, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for range 64 {
		i = k.rng.IntN(len(k.busy))
		if !k.busy[i] && k.present[i] == wantPresent {
			k.busy[i] = true
			return i, k.gen[i], true
		}
	}
	return 0, 0, false
}

// release marks key i idle with its new state.
func (k *keyspace) release(i int, present bool, gen uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.busy[i], k.present[i], k.gen[i] = false, present, gen
}

// worker runs operations one at a time. It is owned by one goroutine.
type worker struct {
	r   *runner
	id  int
	rng *rand.Rand
	buf []byte // GET scratch, reused

	listToken *string // list: where the next page starts
	listSeen  int     // list: keys seen in this pass
}

func (r *runner) newWorker(id int, seed uint64) *worker {
	return &worker{r: r, id: id, rng: rand.New(rand.NewPCG(seed, uint64(id)+100)), buf: make([]byte, 512<<10)}
}

// op runs one operation and returns its name, the payload bytes moved and,
// for list, the keys listed.
func (w *worker) op(ctx context.Context) (name string, bytes, keys int64, err error) {
	r := w.r
	switch r.cfg.Workload {
	case Put:
		key := fmt.Sprintf("%sput-%d", r.prefix, r.seq.Add(1))
		n := r.cfg.sizeOf(key)
		return "put", n, 0, r.putObject(ctx, key, 1, n)
	case Get:
		i := w.rng.IntN(len(r.keys.gen))
		n, err := w.get(ctx, r.objKey(i), r.keys.gen[i])
		return "get", n, 0, err
	case Mixed:
		return w.mixed(ctx)
	case List:
		n, err := w.listPage(ctx)
		return "list", 0, n, err
	case Multipart:
		key := fmt.Sprintf("%smp-%d", r.prefix, r.seq.Add(1))
		return "multipart", r.cfg.Size, 0, w.multipart(ctx, key)
	}
	panic("bench: unknown workload " + string(r.cfg.Workload))
}

func (w *worker) get(ctx context.Context, key string, gen uint32) (int64, error) {
	r := w.r
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	out, err := r.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &r.bucket, Key: &key})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	if r.cfg.Verify {
		return verify(out.Body, r.pool.reader(key, gen, 0, r.cfg.sizeOf(key)), w.buf)
	}
	return io.CopyBuffer(io.Discard, out.Body, w.buf)
}

func (w *worker) mixed(ctx context.Context) (string, int64, int64, error) {
	r := w.r
	m := r.cfg.Mix
	x := w.rng.IntN(m.total())
	op := "put"
	switch {
	case x < m.Get:
		op = "get"
	case x < m.Get+m.Head:
		op = "head"
	case x < m.Get+m.Head+m.Delete:
		op = "delete"
	}
	i, gen, ok := r.keys.acquire(op != "put")
	if !ok { // nothing in the wanted state: write instead
		op = "put"
		if i, gen, ok = r.keys.acquire(false); !ok {
			i, gen, ok = r.keys.acquire(true)
		}
		if !ok {
			return "", 0, 0, fmt.Errorf("bench: mixed: no idle key (objects too few for the concurrency)")
		}
	}
	key := r.objKey(i)
	present := op != "delete"
	var n int64
	var err error
	switch op {
	case "get":
		n, err = w.get(ctx, key, gen)
	case "head":
		err = w.head(ctx, key)
	case "delete":
		err = w.delete(ctx, key)
	case "put":
		gen++
		n = r.cfg.sizeOf(key)
		err = r.putObject(ctx, key, gen, n)
	}
	if err != nil && (op == "put" || op == "delete") {
		// The key's state is unknown: keep it out of reads by treating it as
		// absent; the next put rewrites it.
		present = false
	}
	r.keys.release(i, present, gen)
	return op, n, 0, err
}

func (w *worker) head(ctx context.Context, key string) error {
	ctx, cancel := w.r.opCtx(ctx)
	defer cancel()
	out, err := w.r.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &w.r.bucket, Key: &key})
	if want := w.r.cfg.sizeOf(key); err == nil && w.r.cfg.Verify && aws.ToInt64(out.ContentLength) != want {
		return fmt.Errorf("%w: HEAD %s: size %d, want %d", errVerify, key, aws.ToInt64(out.ContentLength), want)
	}
	return err
}

func (w *worker) delete(ctx context.Context, key string) error {
	ctx, cancel := w.r.opCtx(ctx)
	defer cancel()
	_, err := w.r.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &w.r.bucket, Key: &key})
	return err
}

// listPage lists one page, continuing where the worker's last page ended;
// each worker pages through the whole prepared prefix, then starts over.
func (w *worker) listPage(ctx context.Context) (int64, error) {
	r := w.r
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	out, err := r.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: &r.bucket, Prefix: &r.prefix, MaxKeys: aws.Int32(int32(r.cfg.ListPage)), ContinuationToken: w.listToken,
	})
	if err != nil {
		w.listToken, w.listSeen = nil, 0
		return 0, err
	}
	n := len(out.Contents)
	w.listSeen += n
	if aws.ToBool(out.IsTruncated) && out.NextContinuationToken != nil {
		w.listToken = out.NextContinuationToken
		return int64(n), nil
	}
	seen := w.listSeen
	w.listToken, w.listSeen = nil, 0
	if r.cfg.Verify && seen != r.cfg.Objects {
		return int64(n), fmt.Errorf("%w: listed %d keys, want %d", errVerify, seen, r.cfg.Objects)
	}
	return int64(n), nil
}

// multipart uploads key in parts of PartSize, PartConcurrency at a time,
// and with Verify reads it back.
func (w *worker) multipart(ctx context.Context, key string) error {
	r := w.r
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	up, err := r.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &r.bucket, Key: &key})
	if err != nil {
		return err
	}
	nparts := int((r.cfg.Size + r.cfg.PartSize - 1) / r.cfg.PartSize)
	nparts = max(nparts, 1)
	parts := make([]types.CompletedPart, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.PartConcurrency)
	for p := range nparts {
		g.Go(func() error {
			start := int64(p) * r.cfg.PartSize
			size := min(r.cfg.PartSize, r.cfg.Size-start)
			num := int32(p + 1)
			etag, err := r.uploadPart(gctx, key, *up.UploadId, num, r.pool.reader(key, 1, start, size), size)
			if err != nil {
				return err
			}
			parts[p] = types.CompletedPart{ETag: etag, PartNumber: &num}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		r.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &r.bucket, Key: &key, UploadId: up.UploadId})
		return err
	}
	_, err = r.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &r.bucket, Key: &key, UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil || !r.cfg.Verify {
		return err
	}
	_, err = w.get(ctx, key, 1)
	return err
}
