package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/driver"
)

// CreateShard starts writing shard s. The writer buffers at most PartSize
// bytes: a shard that ends within SmallShardMax rides in a log object, one
// within PartSize is one PUT, a larger one a multipart upload.
func (d *Driver) CreateShard(ctx context.Context, s driver.Shard) (driver.ShardWriter, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("driver/remote: create shard %04x: %w", s.PG, err)
	}
	if err := d.refuseWrite("create shard"); err != nil {
		return nil, err
	}
	if err := d.begin(ctx); err != nil {
		return nil, fmt.Errorf("driver/remote: create shard %04x/%s: %w", s.PG, s.Name, err)
	}
	return &shardWriter{d: d, s: s, ctx: ctx}, nil
}

type shardWriter struct {
	d   *Driver
	s   driver.Shard
	ctx context.Context

	mu       sync.Mutex
	buf      []byte
	obj      string // the shard's own object, once it has one
	uploadID string
	parts    []types.CompletedPart
	size     int64
	err      error // sticky write error
	finished bool  // committed or aborted
}

func (w *shardWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.finished:
		return 0, errors.New("driver/remote: write after commit or abort")
	case w.err != nil:
		return 0, w.err
	}
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	n := len(p)
	part := int(w.d.cfg.PartSize)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, min(part, max(len(p), 64<<10)))
		}
		take := min(len(p), part-len(w.buf))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		w.size += int64(take)
		if len(w.buf) == part && len(p) > 0 {
			if err := w.uploadPart(w.ctx, false); err != nil {
				w.err = err
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// uploadPart sends the buffer as the next part of the multipart upload,
// starting the upload first if needed; last: the shard ends with it. On
// an encrypted drive the first part begins with the header, the chunks
// are numbered on across parts (every part but the last is PartSize
// bytes, a multiple of the chunk) and the last part ends with the short
// final chunk.
func (w *shardWriter) uploadPart(ctx context.Context, last bool) error {
	d := w.d
	if w.uploadID == "" {
		w.obj = d.objKey(w.s)
		err := d.be.write(ctx, "create upload "+w.obj, func(ctx context.Context) error {
			resp, err := d.be.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &d.cfg.Bucket, Key: &w.obj})
			if err == nil {
				w.uploadID = aws.ToString(resp.UploadId)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("driver/remote: shard %04x/%s: %w", w.s.PG, w.s.Name, err)
		}
	}
	num := int32(len(w.parts) + 1)
	var etag *string
	err := d.be.write(ctx, "upload part "+w.obj, func(ctx context.Context) error {
		var body io.ReadSeeker = bytes.NewReader(w.buf)
		n := int64(len(w.buf))
		if k, aead := d.be.sealed(w.obj); k != nil {
			var header []byte
			if num == 1 {
				header = k.header
			}
			r := newSealReader(aead, header, w.buf, uint64(num-1)*uint64(d.cfg.PartSize/encChunk), last)
			body, n = r, r.Len()
		}
		resp, err := d.be.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: &d.cfg.Bucket, Key: &w.obj, UploadId: &w.uploadID,
			PartNumber: &num, Body: body, ContentLength: aws.Int64(n)})
		if err == nil {
			etag = resp.ETag
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("driver/remote: shard %04x/%s part %d: %w", w.s.PG, w.s.Name, num, err)
	}
	w.parts = append(w.parts, types.CompletedPart{ETag: etag, PartNumber: &num})
	w.buf = w.buf[:0]
	return nil
}

// Commit makes the shard visible once its bytes and the log entry
// pointing at them are in the bucket.
func (w *shardWriter) Commit(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return errors.New("driver/remote: commit after commit or abort")
	}
	if w.err != nil {
		w.abortLocked()
		return w.err
	}
	if err := ctx.Err(); err != nil {
		w.abortLocked()
		return err
	}
	d := w.d
	var o *op
	switch {
	case w.uploadID == "" && w.size <= d.cfg.SmallShardMax:
		o = &op{e: entry{op: opShardInline, shard: w.s, data: w.buf, size: w.size}}
	case w.uploadID == "":
		w.obj = d.objKey(w.s)
		if err := d.be.put(ctx, w.obj, w.buf); err != nil {
			w.abortLocked()
			return fmt.Errorf("driver/remote: commit shard %04x/%s: %w", w.s.PG, w.s.Name, err)
		}
		o = &op{e: entry{op: opShardObject, shard: w.s, key: w.obj[len(d.cfg.Prefix):], size: w.size}}
	default:
		if err := w.complete(ctx); err != nil {
			w.abortLocked()
			return fmt.Errorf("driver/remote: commit shard %04x/%s: %w", w.s.PG, w.s.Name, err)
		}
		o = &op{e: entry{op: opShardObject, shard: w.s, key: w.obj[len(d.cfg.Prefix):], size: w.size}}
	}
	w.buf = nil
	w.finished = true
	if err := d.submit(ctx, o); err != nil {
		// The log object may have reached the bucket all the same (a lost
		// answer), so the shard's object stays: if nothing references it,
		// the next Open removes it.
		return fmt.Errorf("driver/remote: commit shard %04x/%s: %w", w.s.PG, w.s.Name, err)
	}
	return nil
}

// complete sends the last part and completes the multipart upload. A
// completion whose answer was lost and whose retry finds no upload is
// checked with a HEAD of the object.
func (w *shardWriter) complete(ctx context.Context) error {
	d := w.d
	if len(w.buf) > 0 {
		if err := w.uploadPart(ctx, true); err != nil {
			return err
		}
	}
	err := d.be.write(ctx, "complete upload "+w.obj, func(ctx context.Context) error {
		_, err := d.be.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &d.cfg.Bucket, Key: &w.obj,
			UploadId: &w.uploadID, MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts}})
		return err
	})
	if errors.Is(err, driver.ErrNotFound) {
		if size, herr := d.be.head(ctx, w.obj); herr == nil && size == w.size {
			err = nil
		}
	}
	if err == nil {
		w.uploadID = ""
	}
	return err
}

// Abort discards the write; it does nothing after Commit.
func (w *shardWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return nil
	}
	w.abortLocked()
	return nil
}

func (w *shardWriter) abortLocked() {
	w.finished = true
	w.buf = nil
	if w.uploadID != "" {
		d, obj, id := w.d, w.obj, w.uploadID
		w.uploadID = ""
		d.bg.Go(func() {
			err := d.be.call(d.closeCtx, "abort upload "+obj, func(ctx context.Context) error {
				_, err := d.be.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &d.cfg.Bucket, Key: &obj, UploadId: &id})
				return err
			})
			if err != nil && !errors.Is(err, driver.ErrNotFound) {
				d.log.Warn("remote drive: cannot abort a multipart upload (left to the bucket's lifecycle rule)", "object", obj, "err", err)
			}
		})
	} else if w.obj != "" {
		w.d.removeObject(w.obj)
	}
}

// objKey names a new object for shard s.
func (d *Driver) objKey(s driver.Shard) string {
	return d.key(fmt.Sprintf("obj/%04x/%s-%016x-%s", s.PG, s.Name, d.seq.Add(1), d.instance))
}

// ReadShard returns length bytes of shard s from off (length -1: to the
// end) with one ranged GET. A range past the end yields the bytes there
// are, then io.ErrUnexpectedEOF.
func (d *Driver) ReadShard(ctx context.Context, s driver.Shard, off, length int64) (io.ReadCloser, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("driver/remote: read shard %04x: %w", s.PG, err)
	}
	if off < 0 || length < -1 {
		return nil, fmt.Errorf("driver/remote: read shard %04x/%s: bad range %d+%d", s.PG, s.Name, off, length)
	}
	if err := d.begin(ctx); err != nil {
		return nil, fmt.Errorf("driver/remote: read shard %04x/%s: %w", s.PG, s.Name, err)
	}
	done, err := d.fresh(ctx)
	if err != nil {
		return nil, fmt.Errorf("driver/remote: read shard %04x/%s: %w", s.PG, s.Name, err)
	}
	defer done()
	d.mu.RLock()
	loc, ok := d.shards[s]
	d.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("driver/remote: read shard %04x/%s: %w", s.PG, s.Name, driver.ErrNotFound)
	}
	end := loc.size
	short := false
	if length >= 0 {
		if off+length > loc.size {
			short = true
		} else {
			end = off + length
		}
	}
	if off > loc.size {
		off, short = loc.size, true
	}
	var rc io.ReadCloser = io.NopCloser(bytes.NewReader(nil))
	if n := end - off; n > 0 {
		var err error
		rc, err = d.be.getRange(ctx, loc.obj, loc.off+off, n, d.cfg.ProgressTimeout)
		if err != nil {
			return nil, fmt.Errorf("driver/remote: read shard %04x/%s: %w", s.PG, s.Name, err)
		}
	}
	if short {
		return &shortReader{rc}, nil
	}
	return rc, nil
}

// shortReader ends a range that ran past the end of the shard with
// io.ErrUnexpectedEOF.
type shortReader struct{ io.ReadCloser }

func (r *shortReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// DeleteShard removes shard s once the log object saying so is in the
// bucket, then deletes its own object if it had one.
func (d *Driver) DeleteShard(ctx context.Context, s driver.Shard) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("driver/remote: delete shard %04x: %w", s.PG, err)
	}
	if err := d.refuseWrite("delete shard"); err != nil {
		return err
	}
	if err := d.begin(ctx); err != nil {
		return fmt.Errorf("driver/remote: delete shard %04x/%s: %w", s.PG, s.Name, err)
	}
	if err := d.submit(ctx, &op{e: entry{op: opShardDel, shard: s}}); err != nil {
		return fmt.Errorf("driver/remote: delete shard %04x/%s: %w", s.PG, s.Name, err)
	}
	return nil
}
