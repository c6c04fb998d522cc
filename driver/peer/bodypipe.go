package peer

import (
	"io"
	"sync"
)

// bodyPipe carries a shard writer's Writes into a request body, as io.Pipe
// does but without copying them when the transport reads the body through
// WriteTo (net/http does, for a body that has it): a Write hands its slice
// to WriteTo, which writes it to the connection, and returns once that is
// done. Read, for a transport that reads, copies like io.Pipe. Before, the
// pipe copied every shard into a 256 KiB buffer per upload in flight (a
// memmove of every remote shard byte, and 16 MiB of buffers on a node under
// 16 PUTs of 1 MiB on 4+2).
//
// As with io.Pipe: one Write at a time is consumed, a Write returns once
// all of it was consumed or the pipe was closed; closeRead(err) fails
// Writes with err, closeWrite(err) makes Read and WriteTo end with err
// (io.EOF, a clean end of the body, if nil). started is closed when the
// transport first reads.
type bodyPipe struct {
	wrMu sync.Mutex  // serializes Writes
	wrCh chan []byte // a Write's remaining bytes, to the reader
	rdCh chan int    // how many of them the reader consumed

	once    sync.Once // closes done
	done    chan struct{}
	errMu   sync.Mutex
	rerr    error // from closeRead, for writers
	werr    error // from closeWrite, for readers
	started chan struct{}
	startMu sync.Once
}

func newBodyPipe() *bodyPipe {
	return &bodyPipe{wrCh: make(chan []byte), rdCh: make(chan int), done: make(chan struct{}), started: make(chan struct{})}
}

func (p *bodyPipe) start() { p.startMu.Do(func() { close(p.started) }) }

// Write hands b to the reader and waits until it consumed all of it.
func (p *bodyPipe) Write(b []byte) (n int, err error) {
	select {
	case <-p.done:
		return 0, p.writeErr()
	default:
	}
	p.wrMu.Lock()
	defer p.wrMu.Unlock()
	for once := true; once || len(b) > 0; once = false {
		select {
		case p.wrCh <- b:
			nw := <-p.rdCh
			b = b[nw:]
			n += nw
		case <-p.done:
			return n, p.writeErr()
		}
	}
	return n, nil
}

// Read copies what the current Write hands over.
func (p *bodyPipe) Read(b []byte) (int, error) {
	p.start()
	select {
	case <-p.done:
		return 0, p.readErr()
	default:
	}
	select {
	case bw := <-p.wrCh:
		nr := copy(b, bw)
		p.rdCh <- nr
		return nr, nil
	case <-p.done:
		return 0, p.readErr()
	}
}

// WriteTo writes each Write's bytes to w as they come, until the writing
// side is closed.
func (p *bodyPipe) WriteTo(w io.Writer) (int64, error) {
	p.start()
	var total int64
	for {
		select {
		case bw := <-p.wrCh:
			n, err := w.Write(bw)
			p.rdCh <- n // the writer waits for it, whatever happened
			total += int64(n)
			if err != nil {
				return total, err
			}
		case <-p.done:
			if err := p.readErr(); err != io.EOF {
				return total, err
			}
			return total, nil
		}
	}
}

// closeWrite ends the body: readers see err, or io.EOF if nil.
func (p *bodyPipe) closeWrite(err error) {
	if err == nil {
		err = io.EOF
	}
	p.errMu.Lock()
	if p.werr == nil && p.rerr == nil {
		p.werr = err
	}
	p.errMu.Unlock()
	p.once.Do(func() { close(p.done) })
}

// closeRead fails Writes in progress and later ones with err.
func (p *bodyPipe) closeRead(err error) {
	p.errMu.Lock()
	if p.werr == nil && p.rerr == nil {
		p.rerr = err
	}
	p.errMu.Unlock()
	p.once.Do(func() { close(p.done) })
}

func (p *bodyPipe) writeErr() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.rerr != nil {
		return p.rerr
	}
	return io.ErrClosedPipe
}

func (p *bodyPipe) readErr() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.werr != nil {
		return p.werr
	}
	return p.rerr
}
