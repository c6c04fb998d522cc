package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/vaultaire/vaultaire/driver"
)

// CreateShard starts one streaming upload of shard s to the peer (see the
// package documentation). Errors the peer reports before Commit, such as a
// missing drive, surface from Write or Commit.
func (c *Client) CreateShard(ctx context.Context, s driver.Shard) (driver.ShardWriter, error) {
	const op = "create shard"
	if err := s.Validate(); err != nil {
		return nil, c.errorf(op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf(op, err)
	}
	reqCtx, wd, cancel := deadline(ctx)
	body := newBodyPipe()
	req, err := c.newRequest(reqCtx, http.MethodPost, shardPath(s), nil, body)
	if err != nil {
		cancel()
		return nil, c.errorf(op, err)
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Trailer = http.Header{hdrLength: nil, hdrSum: nil}
	w := &shardWriter{
		c:       c,
		ctx:     ctx,
		op:      fmt.Sprintf("write shard %d/%s", s.PG, s.Name),
		req:     req,
		pw:      body,
		cancel:  cancel,
		reqCtx:  reqCtx,
		wd:      wd,
		hash:    xxh3.New(),
		started: body.started,
		done:    make(chan struct{}),
	}
	go func() {
		defer close(w.done)
		_, _, err := c.finish(ctx, w.op, req, smallResponse)
		w.err = stalled(reqCtx, err)
		// Writes still blocked in the pipe fail now.
		body.closeRead(errResponded)
	}()
	return w, nil
}

// errResponded fails pipe writes once the peer has answered.
var errResponded = errors.New("peer answered before the shard was committed")

// errAborted fails the upload when the writer is aborted.
var errAborted = errors.New("shard write aborted")

// Writer states.
const (
	writing = iota
	committed
	aborted
)

// shardWriter streams one shard into a POST request body.
type shardWriter struct {
	c *Client
	// ctx is the ctx given to CreateShard, which the request also uses;
	// io.Writer has no ctx parameter.
	ctx    context.Context
	op     string
	req    *http.Request
	pw     *bodyPipe          // the request's body
	cancel context.CancelFunc // cancels the request
	reqCtx context.Context    // the request's
	// wd cancels the request when a Write or Commit waits longer than the
	// Client's ProgressTimeout or CallTimeout.
	wd *time.Timer
	// started is closed when the transport first reads the body; only then
	// may Commit fill in req.Trailer, which the transport inspects before.
	started <-chan struct{}

	// done is closed when the request has finished; err is its outcome and
	// may be read only after done is closed.
	done chan struct{}
	err  error

	mu    sync.Mutex // guards the following fields and Commit/Abort
	state int
	hash  *xxh3.Hasher
	n     int64
	werr  error // first Write error
}

// Write sends p to the peer. It blocks while the peer is slower than the
// writer (TCP flow control).
func (w *shardWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	switch {
	case w.state == committed:
		w.mu.Unlock()
		return 0, w.c.errorf(w.op, errors.New("already committed"))
	case w.state == aborted:
		w.mu.Unlock()
		return 0, w.c.errorf(w.op, errAborted)
	case w.werr != nil:
		err := w.werr
		w.mu.Unlock()
		return 0, err
	}
	if err := w.ctx.Err(); err != nil {
		w.werr = w.c.errorf(w.op, err)
		w.mu.Unlock()
		return 0, w.werr
	}
	// Hash under the lock so the trailer matches the bytes in pipe order;
	// the pipe write itself happens outside it so Abort can interrupt.
	w.hash.Write(p)
	w.n += int64(len(p))
	w.mu.Unlock()
	w.wd.Reset(w.c.progressTimeout)
	n, err := w.pw.Write(p)
	w.wd.Stop()
	if err != nil {
		err = w.failure(err)
		w.mu.Lock()
		if w.werr == nil {
			w.werr = err
		}
		w.mu.Unlock()
		return n, err
	}
	return n, nil
}

// failure explains a failed pipe write: the peer's answer if it came, the
// ctx error, or err.
func (w *shardWriter) failure(err error) error {
	if errors.Is(err, errAborted) {
		return w.c.errorf(w.op, errAborted)
	}
	select {
	case <-w.done:
		if w.err != nil {
			return w.err
		}
	case <-w.ctx.Done():
		return w.c.errorf(w.op, w.ctx.Err())
	}
	return w.c.errorf(w.op, fmt.Errorf("%w: %w", driver.ErrOffline, stalled(w.reqCtx, err)))
}

// Commit finishes the upload and returns once the peer committed the shard.
// If ctx ends first the upload is cancelled and the ctx error returned; the
// peer may have committed the shard already.
func (w *shardWriter) Commit(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.state == committed:
		return w.c.errorf("commit", errors.New("already committed"))
	case w.state == aborted:
		return w.c.errorf("commit", errAborted)
	case w.werr != nil:
		w.abortLocked()
		return w.werr
	}
	if err := ctx.Err(); err != nil {
		w.abortLocked()
		return w.c.errorf("commit", err)
	}
	stop := context.AfterFunc(ctx, w.cancel)
	w.wd.Reset(w.c.callTimeout)
	sent := false
	select {
	case <-w.started:
		w.req.Trailer.Set(hdrLength, strconv.FormatInt(w.n, 10))
		w.req.Trailer.Set(hdrSum, fmt.Sprintf("%016x", w.hash.Sum64()))
		w.pw.closeWrite(nil)
		sent = true
	case <-w.done:
	}
	<-w.done
	stop()
	w.cancel()
	if w.err == nil && !sent {
		// The peer answered success before the upload ended: never
		// trust that as a commit.
		w.err = w.c.errorf(w.op, fmt.Errorf("%w: %w", driver.ErrOffline, errResponded))
	}
	if w.err != nil {
		w.state = aborted
		if cerr := ctx.Err(); cerr != nil {
			return w.c.errorf("commit", cerr)
		}
		return w.err
	}
	w.state = committed
	return nil
}

// Abort cancels the upload; the peer discards what it received. It does
// nothing after Commit or a previous Abort.
func (w *shardWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.abortLocked()
	return nil
}

func (w *shardWriter) abortLocked() {
	if w.state != writing {
		return
	}
	w.state = aborted
	w.pw.closeWrite(errAborted)
	w.cancel()
	<-w.done
}
