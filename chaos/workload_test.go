package chaos

// The workload both suites run: workers send random object and metadata
// operations to random nodes and record each in a history; verify reads
// everything back through every node once the faults are over.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// source is an immutable object that copies read from.
type source struct {
	key, value string
	size       int64
}

// workload is one iteration's workload: its own keys, buckets and
// tenants, so that each iteration's history is checked on its own.
type workload struct {
	c         *testCluster
	h         *history
	bucket    string // the data bucket, shared by all iterations
	prefix    string
	keys      []string // object keys, without "obj:"
	buckets   []string // bucket names created and deleted
	tenants   []string
	sources   []source
	multipart bool   // include multipart uploads (5 MiB parts)
	bigPart   []byte // the first part of every multipart upload

	mu        sync.Mutex // guards anomalies
	anomalies []string
	ops       map[string]*atomic.Int64 // by call, for the summary
	broken    atomic.Int64             // reads whose body broke off
}

// node picks a random node that is running and not paused, or -1.
func (w *workload) node(rng *mrand.Rand) int {
	var up []int
	for i, n := range w.c.nodes {
		n.mu.Lock()
		ok := n.proc != nil && !n.stopped
		n.mu.Unlock()
		if ok && n.running() {
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		return -1
	}
	return up[rng.IntN(len(up))]
}

func (w *workload) anomaly(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.anomalies = append(w.anomalies, fmt.Sprintf(format, args...))
}

func (w *workload) count(what string) {
	w.mu.Lock()
	c := w.ops[what]
	if c == nil {
		c = new(atomic.Int64)
		w.ops[what] = c
	}
	w.mu.Unlock()
	c.Add(1)
}

// classify maps a request's error to an outcome: a refused connection or
// a 4xx changed nothing; anything else may have.
func classify(err error) string {
	switch {
	case err == nil:
		return outOK
	case errors.Is(err, syscall.ECONNREFUSED):
		return outFailed
	}
	if s := httpStatus(err); s >= 400 && s < 500 {
		return outFailed
	}
	return outUnknown
}

// one sends one random operation to node i.
func (w *workload) one(rng *mrand.Rand, i int, cl *awss3.Client) {
	ctx := context.Background()
	nodeName := w.c.nodes[i].name
	key := w.keys[rng.IntN(len(w.keys))]
	p := rng.IntN(100)
	switch {
	case p < 30: // PUT (an overwrite, once the key exists)
		sizes := []int{0, 1, 1000, 64 << 10, 129 << 10, 300 << 10, 1<<20 + 77}
		body := make([]byte, sizes[rng.IntN(len(sizes))])
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		sum := sha256.Sum256(body)
		v := hex.EncodeToString(sum[:])
		w.h.wrote(key, v, int64(len(body)))
		w.count("put")
		call := w.h.now()
		_, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: &w.bucket, Key: aws.String(key),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
		w.h.add(input{key: "obj:" + key, kind: opWrite, value: v, what: "PUT", node: nodeName}, output{outcome: classify(err)}, call)
	case p < 52: // GET
		w.count("get")
		w.read(ctx, cl, nodeName, key)
	case p < 62: // DeleteObjects of 1 to 3 keys
		w.count("delete-objects")
		ks := slices.Clone(w.keys)
		rng.Shuffle(len(ks), func(a, b int) { ks[a], ks[b] = ks[b], ks[a] })
		ks = ks[:1+rng.IntN(3)]
		var objs []types.ObjectIdentifier
		for _, k := range ks {
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(k)})
		}
		call := w.h.now()
		out, err := cl.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: &w.bucket, Delete: &types.Delete{Objects: objs}})
		outcome := map[string]string{}
		for _, k := range ks {
			outcome[k] = classify(err)
			if err == nil {
				outcome[k] = outUnknown // neither Deleted nor Errors: should not be
			}
		}
		if err == nil {
			for _, d := range out.Deleted {
				outcome[aws.ToString(d.Key)] = outOK
			}
			for _, e := range out.Errors {
				outcome[aws.ToString(e.Key)] = outUnknown
			}
		}
		for _, k := range ks {
			w.h.add(input{key: "obj:" + k, kind: opDelete, what: "DeleteObjects", node: nodeName}, output{outcome: outcome[k]}, call)
		}
	case p < 72: // copy from an immutable source
		w.count("copy")
		src := w.sources[rng.IntN(len(w.sources))]
		w.h.wrote(key, src.value, src.size)
		call := w.h.now()
		_, err := cl.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: &w.bucket, Key: aws.String(key),
			CopySource: aws.String(w.bucket + "/" + src.key)})
		w.h.add(input{key: "obj:" + key, kind: opWrite, value: src.value, what: "Copy", node: nodeName}, output{outcome: classify(err)}, call)
	case p < 76 && w.multipart: // multipart upload; only Complete is recorded
		w.count("multipart")
		w.multipartUpload(ctx, rng, cl, nodeName, key)
	case p < 84: // bucket create, delete or HEAD
		w.count("bucket")
		w.bucketOp(ctx, rng, cl, nodeName)
	case p < 92: // tenant create, delete or listing
		w.count("tenant")
		w.tenantOp(rng, i, nodeName)
	default:
		w.count("get")
		w.read(ctx, cl, nodeName, key)
	}
}

// read GETs key and records what it read. A body that is not one that
// was ever written to the key (half-written, mixed, corrupt) is an
// anomaly at once.
func (w *workload) read(ctx context.Context, cl *awss3.Client, nodeName, key string) (value string, ok bool) {
	in := input{key: "obj:" + key, kind: opRead, what: "GET", node: nodeName}
	call := w.h.now()
	out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: &w.bucket, Key: aws.String(key)})
	if err != nil {
		if errorCode(err) == "NoSuchKey" {
			w.h.add(in, output{outcome: outOK, value: ""}, call)
			return "", true
		}
		return "", false
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		w.broken.Add(1)
		return "", false
	}
	v := hex.EncodeToString(h.Sum(nil))
	if n != aws.ToInt64(out.ContentLength) {
		w.anomaly("GET %s via %s: %d bytes, Content-Length %d", key, nodeName, n, aws.ToInt64(out.ContentLength))
	}
	if size, known := w.h.known(key, v); !known {
		w.anomaly("GET %s via %s: %d bytes (sha256 %s) that were never written to it: half-visible or corrupt", key, nodeName, n, short(v))
	} else if size != n {
		w.anomaly("GET %s via %s: %d bytes, written %d", key, nodeName, n, size)
	}
	w.h.add(in, output{outcome: outOK, value: v}, call)
	return v, true
}

func (w *workload) multipartUpload(ctx context.Context, rng *mrand.Rand, cl *awss3.Client, nodeName, key string) {
	tail := make([]byte, 1+rng.IntN(100<<10))
	for j := range tail {
		tail[j] = byte(rng.Uint32())
	}
	up, err := cl.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &w.bucket, Key: aws.String(key)})
	if err != nil {
		return
	}
	var parts []types.CompletedPart
	for pn, data := range [][]byte{w.bigPart, tail} {
		out, err := cl.UploadPart(ctx, &awss3.UploadPartInput{Bucket: &w.bucket, Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(pn + 1)), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
		if err != nil {
			return
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(pn + 1)), ETag: out.ETag})
	}
	h := sha256.New()
	h.Write(w.bigPart)
	h.Write(tail)
	v := hex.EncodeToString(h.Sum(nil))
	w.h.wrote(key, v, int64(len(w.bigPart)+len(tail)))
	call := w.h.now()
	_, err = cl.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: &w.bucket, Key: aws.String(key),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	w.h.add(input{key: "obj:" + key, kind: opWrite, value: v, what: "Complete", node: nodeName}, output{outcome: classify(err)}, call)
}

// abortUploads aborts the data bucket's incomplete multipart uploads, as
// a client's upload manager or an AbortIncompleteMultipartUpload rule
// would: an upload left open by a killed node keeps its map in the
// history (its parts live in that map's set), so migration cannot finish
// while it lives.
func (w *workload) abortUploads(ctx context.Context, cl *awss3.Client) error {
	p := awss3.NewListMultipartUploadsPaginator(cl, &awss3.ListMultipartUploadsInput{Bucket: &w.bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, u := range page.Uploads {
			_, err := cl.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &w.bucket, Key: u.Key, UploadId: u.UploadId})
			var nsu *types.NoSuchUpload
			if err != nil && !errors.As(err, &nsu) {
				return err
			}
		}
	}
	return nil
}

func (w *workload) bucketOp(ctx context.Context, rng *mrand.Rand, cl *awss3.Client, nodeName string) {
	name := w.buckets[rng.IntN(len(w.buckets))]
	in := input{key: "bucket:" + name, node: nodeName}
	call := w.h.now()
	var out output
	switch rng.IntN(3) {
	case 0:
		in.kind, in.what = opCreate, "CreateBucket"
		_, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name)})
		out.outcome = classify(err)
		if c := errorCode(err); c == "BucketAlreadyOwnedByYou" || c == "BucketAlreadyExists" {
			out.outcome = outExists
		}
	case 1:
		in.kind, in.what = opRemove, "DeleteBucket"
		_, err := cl.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String(name)})
		out.outcome = classify(err)
		if errorCode(err) == "NoSuchBucket" {
			out.outcome = outMissing
		}
	default:
		in.kind, in.what = opExists, "HeadBucket"
		_, err := cl.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(name)})
		switch {
		case err == nil:
			out.outcome = outExists
		case httpStatus(err) == http.StatusNotFound:
			out.outcome = outMissing
		default:
			out.outcome = outUnknown
		}
	}
	w.h.add(in, out, call)
}

func (w *workload) tenantOp(rng *mrand.Rand, i int, nodeName string) {
	name := w.tenants[rng.IntN(len(w.tenants))]
	in := input{key: "tenant:" + name, node: nodeName}
	ctx := context.Background()
	call := w.h.now()
	var out output
	switch rng.IntN(3) {
	case 0:
		in.kind, in.what = opCreate, "CreateTenant"
		_, err := w.c.admin(ctx, i, http.MethodPut, "/_vault/admin/tenants/"+name, nil, nil)
		out.outcome = classify(err)
		if errorCode(err) == "TenantAlreadyExists" {
			out.outcome = outExists
		}
	case 1:
		in.kind, in.what = opRemove, "DeleteTenant"
		_, err := w.c.admin(ctx, i, http.MethodDelete, "/_vault/admin/tenants/"+name, nil, nil)
		out.outcome = classify(err)
		if errorCode(err) == "NoSuchTenant" {
			out.outcome = outMissing
		}
	default:
		in.kind, in.what = opExists, "ListTenants"
		var ts []struct {
			Name string `json:"name"`
		}
		_, err := w.c.admin(ctx, i, http.MethodGet, "/_vault/admin/tenants", nil, &ts)
		out.outcome = outUnknown
		if err == nil {
			out.outcome = outMissing
			for _, tn := range ts {
				if tn.Name == name {
					out.outcome = outExists
				}
			}
		}
	}
	w.h.add(in, out, call)
}

// verify reads every key of the iteration through every running node,
// retrying reads that get no answer for up to a minute, and checks that
// each node's listing agrees with its reads (same keys, same sizes). It
// also reads every bucket and tenant through every node. All reads go
// into the history.
func (w *workload) verify(t *testing.T, clients []*awss3.Client) {
	t.Helper()
	ctx := t.Context()
	for i, n := range w.c.nodes {
		if !n.running() {
			continue
		}
		found := map[string]int64{}
		for _, key := range w.keys {
			deadline := time.Now().Add(time.Minute)
			for {
				v, ok := w.read(ctx, clients[i], n.name, key)
				if ok {
					if v != "" {
						size, _ := w.h.known(key, v)
						found[key] = size
					}
					break
				}
				if time.Now().After(deadline) {
					w.anomaly("GET %s via %s: no answer for a minute after the faults ended", key, n.name)
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		listed := map[string]int64{}
		var err error
		deadline := time.Now().Add(time.Minute)
		for {
			listed, err = w.list(ctx, clients[i])
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			w.anomaly("list %s via %s: %v", w.prefix, n.name, err)
		} else {
			for _, key := range w.keys {
				gs, got := found[key]
				ls, lst := listed[key]
				switch {
				case got && !lst:
					w.anomaly("via %s: %s reads back (%d bytes) but is not listed", n.name, key, gs)
				case lst && !got:
					w.anomaly("via %s: %s is listed (%d bytes) but GET says NoSuchKey", n.name, key, ls)
				case got && gs != ls:
					w.anomaly("via %s: %s reads %d bytes, listed with %d", n.name, key, gs, ls)
				}
			}
		}
		for _, name := range w.buckets {
			call := w.h.now()
			_, err := clients[i].HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(name)})
			out := output{outcome: outExists}
			if err != nil {
				out.outcome = outMissing
				if httpStatus(err) != http.StatusNotFound {
					out.outcome = outUnknown
				}
			}
			w.h.add(input{key: "bucket:" + name, kind: opExists, what: "HeadBucket", node: n.name}, out, call)
		}
	}
}

// list returns the iteration's keys listed by a node with their sizes.
func (w *workload) list(ctx context.Context, cl *awss3.Client) (map[string]int64, error) {
	out := map[string]int64{}
	p := awss3.NewListObjectsV2Paginator(cl, &awss3.ListObjectsV2Input{Bucket: &w.bucket, Prefix: aws.String(w.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
		}
	}
	return out, nil
}

// newWorkload sets up iteration it's names under the data bucket.
func newWorkload(c *testCluster, h *history, bucket string, it int, sources []source, bigPart []byte) *workload {
	w := &workload{c: c, h: h, bucket: bucket, prefix: fmt.Sprintf("it%04d/", it), sources: sources,
		multipart: bigPart != nil, bigPart: bigPart, ops: map[string]*atomic.Int64{}}
	for k := range 5 {
		w.keys = append(w.keys, fmt.Sprintf("%sk%d", w.prefix, k))
	}
	for b := range 2 {
		w.buckets = append(w.buckets, fmt.Sprintf("chaos-it%04d-b%d", it, b))
		w.tenants = append(w.tenants, fmt.Sprintf("chaos-it%04d-t%d", it, b))
	}
	return w
}
