package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// cleanupTimeout bounds removing what a run wrote.
const cleanupTimeout = 10 * time.Minute

// runner is the state of one run shared by its workers.
type runner struct {
	cfg    Config
	client *s3.Client
	stream *streamer // uploads with PayloadStreaming
	bucket string
	prefix string // key prefix, ends in "/"
	pool   *pool
	rec    *recorder
	keys   *keyspace // get, mixed, list: the prepared objects

	seq atomic.Int64 // put and multipart: key sequence
}

// Run validates cfg, prepares a bucket, runs the workload and removes what
// it wrote. It returns the result even when err is not nil, if anything was
// measured: operation failures are counted in Result.Errors, not returned;
// err reports a run that could not be prepared or cleaned up.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		for _, x := range b {
			seed = seed<<8 | uint64(x)
		}
	}
	id := runID()
	hc := newHTTPClient(cfg)
	r := &runner{cfg: cfg, client: newClient(cfg, hc), stream: newStreamer(cfg, hc), pool: newPool(seed), prefix: "vbench/"}
	if cfg.Bucket != "" {
		r.bucket, r.prefix = cfg.Bucket, "vbench-"+id+"/"
	} else {
		r.bucket = "vbench-" + id
	}
	res := &Result{
		Workload: cfg.Workload, Endpoint: cfg.Endpoint, Bucket: r.bucket, Size: cfg.Size, Sizes: FormatSizes(cfg.Sizes),
		Concurrency: cfg.Concurrency, Verify: cfg.Verify, Errors: map[string]int64{},
	}
	switch cfg.Workload {
	case Get, Mixed, List:
		res.Objects = cfg.Objects
	}
	if cfg.Workload == Mixed {
		res.Mix = cfg.Mix.String()
	}

	if cfg.Bucket == "" {
		if _, err := r.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &r.bucket}); err != nil {
			code := errorCode(err)
			res.Errors[code]++
			res.Samples = map[string]string{code: err.Error()}
			return res, fmt.Errorf("bench: create bucket %s: %w", r.bucket, err)
		}
	}
	err := r.prepareAndRun(ctx, res, seed)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if cerr := r.cleanup(cctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return res, err
}

func (r *runner) prepareAndRun(ctx context.Context, res *Result, seed uint64) error {
	cfg := r.cfg
	switch cfg.Workload {
	case Get, Mixed, List:
		r.keys = newKeyspace(cfg.Objects, seed)
		if err := r.prepare(ctx); err != nil {
			return err
		}
	}
	start := time.Now()
	measured := start.Add(cfg.Warmup)
	r.rec = newRecorder(measured)
	res.Started = measured

	// Operations run under ctx alone: at the deadline workers stop starting
	// new ones and let those in flight finish (bounded by OpTimeout), so
	// that no request is cut off half-way and leaves work behind on the
	// server. An operation is measured (its latency, its error) if it ends
	// inside the measured window; with an Ops bound, if it also started
	// inside it, so that exactly Ops operations are measured. The rates
	// count each successful operation's share of the window (inWindow).
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = measured.Add(cfg.Duration)
	}
	stopProgress := r.progress(ctx, measured)
	var tickets atomic.Int64
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() {
			wk := r.newWorker(w, seed)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !deadline.IsZero() && !t0.Before(deadline) {
					return
				}
				startedIn := !t0.Before(measured)
				if startedIn && cfg.Ops > 0 && tickets.Add(1) > cfg.Ops {
					return
				}
				op, bytes, keys, err := wk.op(ctx)
				end := time.Now()
				if err == nil && (cfg.Ops == 0 || startedIn) {
					if f := inWindow(t0, end, measured, deadline); f > 0 {
						r.rec.share(f, bytes, keys)
					}
				}
				if end.Before(measured) || (!deadline.IsZero() && end.After(deadline)) || (cfg.Ops > 0 && !startedIn) {
					continue
				}
				if err != nil {
					if ctx.Err() != nil && !errors.Is(err, errVerify) {
						return // interrupted
					}
					r.rec.fail(end, errorCode(err), err.Error())
					continue
				}
				r.rec.ok(op, end, end.Sub(t0), bytes, keys)
			}
		})
	}
	wg.Wait()
	end := time.Now()
	if !deadline.IsZero() && end.After(deadline) {
		end = deadline
	}
	stopProgress()
	r.rec.result(res, max(end.Sub(measured), 0))
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bench: run interrupted: %w", err)
	}
	return nil
}

// progress prints a line to cfg.Progress each second until stop is called.
func (r *runner) progress(ctx context.Context, measured time.Time) (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastOps, lastBytes int64
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				if now.Before(measured) {
					fmt.Fprintf(r.cfg.Progress, "bench: %s warming up, %.0fs left\n", r.cfg.Workload, measured.Sub(now).Seconds())
					continue
				}
				ops, bytes, errs := r.rec.snapshot()
				fmt.Fprintf(r.cfg.Progress, "bench: %s %5.0fs  %8d ops/s  %9.1f MiB/s  %d ops  %d errors\n",
					r.cfg.Workload, now.Sub(measured).Seconds(), ops-lastOps,
					float64(bytes-lastBytes)/(1<<20), ops, errs)
				lastOps, lastBytes = ops, bytes
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// prepare writes the objects of the keyspace with Concurrency workers.
func (r *runner) prepare(ctx context.Context) error {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "bench: preparing %d objects of %s in %s\n", r.cfg.Objects, FormatSize(r.cfg.Size), r.bucket)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Concurrency)
	for i := range r.cfg.Objects {
		g.Go(func() error {
			key := r.objKey(i)
			err := r.putObject(gctx, key, 1, r.cfg.sizeOf(key))
			if err != nil {
				return fmt.Errorf("bench: prepare %s: %w", key, err)
			}
			r.keys.present[i] = true
			r.keys.gen[i] = 1
			return nil
		})
	}
	return g.Wait()
}

func (r *runner) objKey(i int) string { return fmt.Sprintf("%sobj-%07d", r.prefix, i) }

func (r *runner) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.cfg.OpTimeout)
}

func (r *runner) putObject(ctx context.Context, key string, gen uint32, size int64) error {
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	body := r.pool.reader(key, gen, 0, size)
	if r.cfg.Payload == PayloadStreaming {
		_, err := r.stream.put(ctx, r.bucket, key, nil, body, size)
		return err
	}
	_, err := r.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &r.bucket, Key: &key, Body: body, ContentLength: aws.Int64(size),
	}, r.payloadOption())
	return err
}

// uploadPart uploads part num of upload id and returns its ETag.
func (r *runner) uploadPart(ctx context.Context, key, id string, num int32, body io.Reader, size int64) (*string, error) {
	if r.cfg.Payload == PayloadStreaming {
		q := url.Values{"partNumber": {strconv.Itoa(int(num))}, "uploadId": {id}}
		etag, err := r.stream.put(ctx, r.bucket, key, q, body, size)
		return &etag, err
	}
	out, err := r.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &r.bucket, Key: &key, UploadId: &id, PartNumber: &num, Body: body, ContentLength: aws.Int64(size),
	}, r.payloadOption())
	if err != nil {
		return nil, err
	}
	return out.ETag, nil
}

// payloadOption makes an SDK upload send UNSIGNED-PAYLOAD under
// PayloadUnsigned (it sends the body's hash otherwise over http).
func (r *runner) payloadOption() func(*s3.Options) {
	return func(o *s3.Options) {
		if r.cfg.Payload == PayloadUnsigned {
			o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
		}
	}
}

// cleanup deletes every object under the run's prefix, aborts its multipart
// uploads and, if the run created the bucket, deletes the bucket. A request
// the server was still finishing when the run ended can leave an object
// behind after the listing, so a non-empty bucket is swept again.
func (r *runner) cleanup(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := r.sweep(ctx)
		if err != nil || r.cfg.Bucket != "" {
			return err
		}
		_, err = r.client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &r.bucket})
		if err == nil {
			return nil
		}
		if errorCode(err) != "BucketNotEmpty" || attempt == 5 {
			return fmt.Errorf("bench: cleanup: delete bucket %s: %w", r.bucket, err)
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
}

// sweep deletes the run's objects and aborts its multipart uploads.
func (r *runner) sweep(ctx context.Context) error {
	var errs []error
	ups := s3.NewListMultipartUploadsPaginator(r.client, &s3.ListMultipartUploadsInput{Bucket: &r.bucket, Prefix: &r.prefix})
	for ups.HasMorePages() {
		page, err := ups.NextPage(ctx)
		if err != nil {
			break // not every server lists uploads; objects matter more
		}
		for _, u := range page.Uploads {
			r.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &r.bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	pages := s3.NewListObjectsV2Paginator(r.client, &s3.ListObjectsV2Input{Bucket: &r.bucket, Prefix: &r.prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(gctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("bench: cleanup: list %s: %w", r.bucket, err))
			break
		}
		if len(page.Contents) == 0 {
			continue
		}
		objs := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			objs[i] = types.ObjectIdentifier{Key: o.Key}
		}
		g.Go(func() error { return r.deleteObjects(gctx, objs) })
	}
	if err := g.Wait(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// deleteObjects deletes objs with one multi-object delete, falling back to
// single deletes if the server does not support it.
func (r *runner) deleteObjects(ctx context.Context, objs []types.ObjectIdentifier) error {
	out, err := r.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: &r.bucket, Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
	})
	if err == nil && len(out.Errors) == 0 {
		return nil
	}
	for _, o := range objs {
		if _, err := r.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &r.bucket, Key: o.Key}); err != nil && errorCode(err) != "NoSuchKey" {
			return fmt.Errorf("bench: cleanup: delete %s: %w", *o.Key, err)
		}
	}
	return nil
}

// newHTTPClient returns what sends cfg's requests: cfg.HTTPClient, or a
// transport with an idle connection for every request in flight and no
// compression.
func newHTTPClient(cfg Config) s3.HTTPClient {
	if cfg.HTTPClient != nil {
		return cfg.HTTPClient
	}
	conns := cfg.Concurrency * max(cfg.PartConcurrency, 1)
	return awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = conns + 16
		t.MaxIdleConnsPerHost = conns + 16
		t.DisableCompression = true
		t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	})
}

// newClient returns an S3 client for cfg sending through hc: path-style,
// SigV4, no retries, checksums only where S3 requires them.
func newClient(cfg Config, hc s3.HTTPClient) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint:               aws.String(cfg.Endpoint),
		Region:                     cfg.Region,
		Credentials:                credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		UsePathStyle:               true,
		RetryMaxAttempts:           1,
		HTTPClient:                 hc,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// errorCode names an operation failure: the S3 error code when the server
// sent one, else a class of client-side failure.
func errorCode(err error) string {
	var ae smithy.APIError
	var re *awshttp.ResponseError
	var ne net.Error
	switch {
	case errors.Is(err, errVerify):
		return "VerifyFailed"
	case errors.As(err, &ae) && ae.ErrorCode() != "":
		return ae.ErrorCode()
	case errors.Is(err, context.DeadlineExceeded):
		return "Timeout"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &ne):
		return "NetworkError"
	case errors.As(err, &re) && re.HTTPStatusCode() != 0:
		return fmt.Sprintf("HTTP%d", re.HTTPStatusCode())
	}
	return "ClientError"
}

// runID is unique per run and valid in a bucket name.
func runID() string {
	var b [4]byte
	rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
