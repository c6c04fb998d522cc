package engine

import (
	"errors"
	"io"
	"sync"
)

// blockPipe is io.Pipe whose read side also implements io.WriterTo:
// WriteTo hands each buffer the writer passes (a decoded block, up to a
// shard's share of a stripe) to its io.Writer whole, where Read copies it
// out in the reader's pieces. A GET's response body goes to the socket in
// a few large writes instead of one per 64 KiB, without the copy in
// between. As with io.Pipe, a Write returns once its buffer was consumed
// in full, and the reader must not read after Close.
type blockPipe struct {
	blocks chan []byte   // a Write's buffer, handed to the reader
	taken  chan struct{} // the reader is done with the buffer
	closed chan struct{} // the reader closed
	wdone  chan struct{} // the writer closed; werr is set before
	werr   error
	cur    []byte // what Read left of the current buffer (reader only)

	rclose, wclose sync.Once
}

func newBlockPipe() *blockPipe {
	return &blockPipe{
		blocks: make(chan []byte),
		taken:  make(chan struct{}, 1),
		closed: make(chan struct{}),
		wdone:  make(chan struct{}),
	}
}

// Write hands p to the reader and waits until it was consumed.
func (b *blockPipe) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	select {
	case b.blocks <- p:
	case <-b.closed:
		return 0, io.ErrClosedPipe
	}
	select {
	case <-b.taken:
		return len(p), nil
	case <-b.closed:
		// A reader that took all of p and then closed sent taken before
		// closing, and select picks at random among ready cases: p was
		// consumed, so the write succeeded. Counting it failed made a
		// read closed once complete look cut short, and a degraded one
		// was not queued for Heal (about 0.3% of such reads under the
		// race detector, TestReadQueuesHealWhenClosedAtOnce).
		select {
		case <-b.taken:
			return len(p), nil
		default:
			return 0, io.ErrClosedPipe
		}
	}
}

// CloseWithError ends the writes: the reader then gets err, or io.EOF if
// err is nil.
func (b *blockPipe) CloseWithError(err error) error {
	b.wclose.Do(func() {
		if err == nil {
			err = io.EOF
		}
		b.werr = err
		close(b.wdone)
	})
	return nil
}

// next waits for the writer's next buffer: false and the error once there
// is none.
func (b *blockPipe) next() ([]byte, error) {
	select {
	case <-b.closed: // first: no block is taken after Close
		return nil, io.ErrClosedPipe
	default:
	}
	select {
	case p := <-b.blocks:
		return p, nil
	case <-b.wdone:
		return nil, b.werr
	case <-b.closed:
		return nil, io.ErrClosedPipe
	}
}

func (b *blockPipe) Read(p []byte) (int, error) {
	if len(b.cur) == 0 {
		blk, err := b.next()
		if err != nil {
			return 0, err
		}
		b.cur = blk
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	if len(b.cur) == 0 {
		b.taken <- struct{}{}
	}
	return n, nil
}

// WriteTo writes every buffer of the writer to w, each in one call, until
// the writer closes; the writer's error (not io.EOF) is returned.
func (b *blockPipe) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		blk := b.cur
		if len(blk) == 0 {
			var err error
			if blk, err = b.next(); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				return n, err
			}
		}
		m, err := w.Write(blk)
		n += int64(m)
		b.cur = nil
		b.taken <- struct{}{}
		if err != nil {
			return n, err
		}
	}
}

// Close ends the reads: a Write waiting, or any later, fails with
// io.ErrClosedPipe.
func (b *blockPipe) Close() error {
	b.rclose.Do(func() { close(b.closed) })
	return nil
}
