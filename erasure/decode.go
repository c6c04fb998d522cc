package erasure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// errBadChecksum marks a block whose data does not match its checksum.
var errBadChecksum = errors.New("erasure: block checksum mismatch")

// OpenFunc opens length bytes of shard file j starting at offset off. It is
// called lazily: data shards first, a parity shard only when a data shard
// fails, and again at a later offset if an earlier stream broke.
type OpenFunc func(ctx context.Context, j int, off, length int64) (io.ReadCloser, error)

// DecodeResult reports the health of the shards a Decode touched.
type DecodeResult struct {
	// Bad lists, in ascending order, the shards that could not be opened or
	// read or that held a corrupt block. A non-empty Bad after a successful
	// decode means the read was degraded and the artifact needs healing.
	Bad []int
}

// Decode writes bytes [off, off+length) of an artifact of size bytes to w,
// reading only the stripes that range covers. Every block read is verified;
// a missing or corrupt block is rebuilt from parity. Decode fails with
// ErrTooFewShards if some stripe has fewer than k intact blocks: it never
// writes bytes it could not verify.
func (c *Codec) Decode(ctx context.Context, w io.Writer, size, off, length int64, open OpenFunc) (DecodeResult, error) {
	l := c.Layout(size)
	if off < 0 || length < 0 || off+length > size {
		return DecodeResult{}, fmt.Errorf("erasure: range %d+%d outside size %d", off, length, size)
	}
	if length == 0 {
		return DecodeResult{}, nil
	}
	first, last := off/l.StripeSize, (off+length-1)/l.StripeSize
	rd := c.newReader(l, first, last, open, nil)
	defer rd.close()
	for i := first; i <= last; i++ {
		if err := rd.stripe(ctx, i, false); err != nil {
			return rd.result(), err
		}
		if err := rd.emit(w, i, off, off+length); err != nil {
			return rd.result(), fmt.Errorf("erasure: write stripe %d: %w", i, err)
		}
	}
	return rd.result(), nil
}

// Rebuild recreates whole shard files: for every stripe of an artifact of
// size bytes it reads k intact blocks from shards not in w, reconstructs the
// blocks of the shards in w and writes them (checksum included) to w[j].
// The resulting files are byte-identical to what Encode wrote.
func (c *Codec) Rebuild(ctx context.Context, size int64, open OpenFunc, w map[int]io.Writer) (DecodeResult, error) {
	l := c.Layout(size)
	n := l.Shards()
	exclude := make([]bool, n)
	for j := range w {
		if j < 0 || j >= n {
			return DecodeResult{}, fmt.Errorf("erasure: rebuild shard %d of %d", j, n)
		}
		exclude[j] = true
	}
	stripes := l.Stripes()
	if stripes == 0 {
		return DecodeResult{}, nil
	}
	rd := c.newReader(l, 0, stripes-1, open, exclude)
	defer rd.close()
	for i := range stripes {
		if err := rd.stripe(ctx, i, true); err != nil {
			return rd.result(), err
		}
		for j, wj := range w {
			blk := rd.s.blocks[j]
			sum := checksum(blk[ChecksumSize:])
			copy(blk, sum[:])
			if _, err := wj.Write(blk); err != nil {
				return rd.result(), fmt.Errorf("erasure: rebuild shard %d stripe %d: %w", j, i, err)
			}
		}
	}
	return rd.result(), nil
}

// shardStream is an open read of one shard file, positioned at a block.
type shardStream struct {
	rc     io.ReadCloser
	cancel context.CancelFunc // ends the stream's ctx
	next   int64              // stripe whose block the stream reads next
}

func (st *shardStream) close() {
	if st.rc != nil {
		st.rc.Close()
	}
	st.cancel()
}

// reader decodes consecutive stripes, keeping one stream per shard open.
type reader struct {
	c           *Codec
	l           Layout
	first, last int64
	open        OpenFunc
	s           *stripe
	streams     []*shardStream
	exclude     []bool // shards never to read (being rebuilt)
	dead        []bool // shards whose stream broke: not tried again
	slow        []bool // shards given up on for slowness: tried last
	bad         []bool // shards that failed or stalled at least once
	ok          []bool // shards with an intact block in the current stripe
	tried       []bool // shards tried for the current stripe
}

func (c *Codec) newReader(l Layout, first, last int64, open OpenFunc, exclude []bool) *reader {
	n := l.Shards()
	if exclude == nil {
		exclude = make([]bool, n)
	}
	return &reader{
		c: c, l: l, first: first, last: last, open: open,
		s:       c.getStripe(l.BlockDataSize(0)),
		streams: make([]*shardStream, n),
		exclude: exclude,
		dead:    make([]bool, n),
		slow:    make([]bool, n),
		bad:     make([]bool, n),
		ok:      make([]bool, n),
		tried:   make([]bool, n),
	}
}

func (rd *reader) close() {
	for j, st := range rd.streams {
		if st != nil {
			st.close()
			rd.streams[j] = nil
		}
	}
	rd.c.putStripe(rd.s)
	rd.s = nil
}

func (rd *reader) result() DecodeResult {
	var res DecodeResult
	for j, b := range rd.bad {
		if b {
			res.Bad = append(res.Bad, j)
		}
	}
	return res
}

// blockRead is one shard's block read in flight. Its goroutine owns the
// stream it reads until it hands the outcome over on the reader's channel,
// or, if the reader gave the read up meanwhile, closes the stream itself.
type blockRead struct {
	j      int
	cancel context.CancelFunc // ends the ctx of the stream it reads
	mu     sync.Mutex         // guards the following fields
	st     *shardStream
	err    error
	done   bool // the outcome was sent
	gaveUp bool // the reader no longer waits for it
}

// stripe loads stripe i into rd.s: at least k intact blocks, then the
// missing data blocks (all missing blocks if all is set) reconstructed.
//
// It reads k shards at once, preferring data shards, and another shard in
// place of each one that fails. A shard whose block has not arrived within
// the codec's ReadStall while fewer than k are intact gets a replacement
// read too; once k blocks are intact the reads still outstanding are given
// up (their shards count as bad and are not read again), so one stalled
// drive delays a read by about ReadStall, not by as long as it hangs.
func (rd *reader) stripe(ctx context.Context, i int64, all bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("erasure: decode: %w", err)
	}
	k, n := rd.l.Data, rd.l.Shards()
	bs := rd.l.BlockDataSize(i)
	rd.s.shape(bs, -1)
	clear(rd.ok)
	clear(rd.tried)
	valid := 0
	var errs []error
	results := make(chan *blockRead, n)
	inflight := map[int]*blockRead{}
	launch := func() bool {
		j := rd.next(false)
		if j < 0 {
			j = rd.next(true)
		}
		if j < 0 {
			return false
		}
		rd.tried[j] = true
		st := rd.streams[j]
		rd.streams[j] = nil // the read's goroutine owns it now
		if st != nil && st.next != i {
			st.close()
			st = nil
		}
		var sctx context.Context
		if st == nil {
			sctx, st = rd.newStream(ctx)
		}
		br := &blockRead{j: j, cancel: st.cancel}
		inflight[j] = br
		blk := rd.s.blocks[j]
		go func() {
			st, err := rd.block(sctx, st, j, i, blk)
			br.mu.Lock()
			defer br.mu.Unlock()
			if br.gaveUp {
				if st != nil {
					st.close()
				}
				return
			}
			br.st, br.err, br.done = st, err, true
			results <- br
		}()
		return true
	}
	for range k {
		launch()
	}
	stall := time.NewTimer(rd.c.cfg.ReadStall)
	defer stall.Stop()
	for valid < k {
		if len(inflight) == 0 {
			err := fmt.Errorf("%w: stripe %d: %d of %d needed", ErrTooFewShards, i, valid, k)
			if len(errs) > 0 {
				err = fmt.Errorf("%w: %w", err, errors.Join(errs...))
			}
			return err
		}
		select {
		case br := <-results:
			delete(inflight, br.j)
			rd.streams[br.j] = br.st
			if br.err != nil {
				if ctx.Err() != nil {
					// A cancelled read says nothing about the shards' health.
					rd.giveUp(inflight, false)
					return fmt.Errorf("erasure: decode: %w", ctx.Err())
				}
				rd.bad[br.j] = true
				errs = append(errs, br.err)
				if br.st == nil {
					rd.dead[br.j] = true
				}
				launch()
				continue
			}
			rd.ok[br.j] = true
			valid++
		case <-stall.C:
			// Each read still outstanding gets a replacement.
			for range len(inflight) {
				if !launch() {
					break
				}
			}
			stall.Reset(rd.c.cfg.ReadStall)
		case <-ctx.Done():
			rd.giveUp(inflight, false)
			return fmt.Errorf("erasure: decode: %w", ctx.Err())
		}
	}
	rd.giveUp(inflight, true)
	missingData := false
	for j := range n {
		if !rd.ok[j] {
			rd.s.data[j] = rd.s.data[j][:0]
			missingData = missingData || j < k
		}
	}
	var err error
	switch {
	case all && valid < n:
		err = rd.c.rs.Reconstruct(rd.s.data)
	case missingData:
		err = rd.c.rs.ReconstructData(rd.s.data)
	}
	if err != nil {
		return fmt.Errorf("erasure: reconstruct stripe %d: %w", i, err)
	}
	// Reconstruct fills zero-length shards in place; restore full blocks.
	for j := range n {
		rd.s.blocks[j] = rd.s.blocks[j][:ChecksumSize+len(rd.s.data[j])]
	}
	return nil
}

// next returns the first shard the current stripe may still read, among
// those given up on for slowness or the others, or -1.
func (rd *reader) next(slow bool) int {
	for j := range rd.l.Shards() {
		if !rd.tried[j] && !rd.dead[j] && !rd.exclude[j] && rd.slow[j] == slow {
			return j
		}
	}
	return -1
}

// giveUp stops waiting for the reads in flight. A read still running has
// its stream cancelled, its shard is read only when no other will do for
// the rest of this decode and, if bad is set, is marked bad; it owns buffer memory of rd.s, so rd.s is
// replaced by a copy and left to it. A read that finished meanwhile (its
// outcome queued, unused) only gives its stream back.
func (rd *reader) giveUp(inflight map[int]*blockRead, bad bool) {
	running := false
	for j, br := range inflight {
		br.mu.Lock()
		done := br.done
		if !done {
			br.gaveUp = true
			br.cancel()
		}
		br.mu.Unlock()
		switch {
		case !done:
			running = true
			rd.slow[j] = true
			rd.bad[j] = rd.bad[j] || bad
		case br.err == nil:
			rd.streams[j] = br.st
		case br.st != nil:
			br.st.close()
		}
		delete(inflight, j)
	}
	if !running {
		return
	}
	s := rd.c.getStripe(rd.l.BlockDataSize(0))
	s.shape(int64(len(rd.s.data[0])), -1)
	for j, ok := range rd.ok {
		if ok {
			copy(s.blocks[j], rd.s.blocks[j])
		}
	}
	rd.s = s // the old one stays with the reads given up
}

// newStream returns a stream of a shard not opened yet (rc nil) and the
// ctx to open it with, which its cancel ends.
func (rd *reader) newStream(ctx context.Context) (context.Context, *shardStream) {
	sctx, cancel := context.WithCancel(ctx)
	return sctx, &shardStream{cancel: cancel}
}

// block reads and verifies shard j's block of stripe i into blk from st,
// which is positioned there or, if not opened yet, is opened with sctx.
// It returns the stream to keep reading from, nil if it broke.
func (rd *reader) block(sctx context.Context, st *shardStream, j int, i int64, blk []byte) (*shardStream, error) {
	if st.rc == nil {
		start := rd.l.ShardOffset(i)
		end := rd.l.ShardOffset(rd.last) + rd.l.BlockSize(rd.last)
		rc, err := rd.open(sctx, j, start, end-start)
		if err != nil {
			st.cancel()
			return nil, fmt.Errorf("erasure: open shard %d: %w", j, err)
		}
		st.rc, st.next = rc, i
	}
	if _, err := io.ReadFull(st.rc, blk); err != nil {
		st.close()
		return nil, fmt.Errorf("erasure: read shard %d stripe %d: %w", j, i, err)
	}
	st.next = i + 1
	if sum := checksum(blk[ChecksumSize:]); !bytes.Equal(sum[:], blk[:ChecksumSize]) {
		return st, fmt.Errorf("erasure: shard %d stripe %d: %w", j, i, errBadChecksum)
	}
	return st, nil
}

// emit writes the part of stripe i's data that falls in [from, to).
func (rd *reader) emit(w io.Writer, i, from, to int64) error {
	base := i * rd.l.StripeSize
	n := rd.l.StripeLen(i)
	bs := rd.l.BlockDataSize(i)
	for j := range rd.l.Data {
		lo := base + int64(j)*bs
		hi := min(lo+bs, base+n)
		a, b := max(lo, from), min(hi, to)
		if a >= b {
			continue
		}
		if _, err := w.Write(rd.s.data[j][a-lo : b-lo]); err != nil {
			return err
		}
	}
	return nil
}

// Verify reads shard j of an artifact of size bytes in full and checks the
// length and checksum of every block. It returns nil only if the shard is
// intact.
func (c *Codec) Verify(ctx context.Context, size int64, j int, open OpenFunc) error {
	l := c.Layout(size)
	if j < 0 || j >= l.Shards() {
		return fmt.Errorf("erasure: verify shard %d of %d", j, l.Shards())
	}
	if l.Stripes() == 0 {
		return nil
	}
	rc, err := open(ctx, j, 0, l.ShardSize()+1) // one more byte finds a long file
	if err != nil {
		return fmt.Errorf("erasure: verify shard %d: %w", j, err)
	}
	defer rc.Close()
	s := c.getStripe(l.BlockDataSize(0))
	defer c.putStripe(s)
	for i := range l.Stripes() {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.shape(l.BlockDataSize(i), -1)
		blk := s.blocks[0]
		if _, err := io.ReadFull(rc, blk); err != nil {
			return fmt.Errorf("erasure: verify shard %d stripe %d: %w", j, i, err)
		}
		if sum := checksum(blk[ChecksumSize:]); !bytes.Equal(sum[:], blk[:ChecksumSize]) {
			return fmt.Errorf("erasure: verify shard %d stripe %d: %w", j, i, errBadChecksum)
		}
	}
	// Trailing bytes mean a torn or foreign file.
	if n, _ := rc.Read(s.buf[:1]); n != 0 {
		return fmt.Errorf("erasure: verify shard %d: longer than %d bytes", j, l.ShardSize())
	}
	return nil
}

// Present checks that shard j of an artifact of size bytes is there at its
// full length: its last byte reads and nothing follows. It reads two bytes,
// not the shard, and checks no checksum: it tells whether a write landed
// (shard files are committed whole), not whether the bytes are intact,
// which Verify and the scrubber do.
func (c *Codec) Present(ctx context.Context, size int64, j int, open OpenFunc) error {
	l := c.Layout(size)
	if j < 0 || j >= l.Shards() {
		return fmt.Errorf("erasure: check shard %d of %d", j, l.Shards())
	}
	if l.Stripes() == 0 {
		return nil
	}
	rc, err := open(ctx, j, l.ShardSize()-1, 2)
	if err != nil {
		return fmt.Errorf("erasure: check shard %d: %w", j, err)
	}
	defer rc.Close()
	var b [2]byte
	n, err := io.ReadFull(rc, b[:])
	switch {
	case n == 1 && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)):
		return nil
	case n == 2:
		return fmt.Errorf("erasure: check shard %d: longer than %d bytes", j, l.ShardSize())
	case err == nil:
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("erasure: check shard %d: shorter than %d bytes: %w", j, l.ShardSize(), err)
}

// DecodeBytes is Decode of an artifact of size bytes (1 to StripeSize-1:
// one stripe, as EncodeBytes makes) whose shards are held in memory:
// shards[j] is shard j's whole content, nil if missing. It verifies the
// checksum of each block it uses and rebuilds missing or corrupt data
// blocks from parity, synchronously: for the small artifacts stored
// inline, Decode's per-shard goroutines and timers cost more than the
// decoding. It never modifies shards.
func (c *Codec) DecodeBytes(w io.Writer, shards [][]byte, size, off, length int64) (DecodeResult, error) {
	if size <= 0 || size >= c.cfg.StripeSize {
		return DecodeResult{}, fmt.Errorf("erasure: DecodeBytes of %d bytes: want 1 to %d", size, c.cfg.StripeSize-1)
	}
	if off < 0 || length < 0 || off+length > size {
		return DecodeResult{}, fmt.Errorf("erasure: range %d+%d outside size %d", off, length, size)
	}
	k, n := c.cfg.Data, c.cfg.Data+c.cfg.Parity
	if len(shards) != n {
		return DecodeResult{}, fmt.Errorf("erasure: DecodeBytes of %d shards, want %d", len(shards), n)
	}
	bs := blockDataSize(size, k)
	data := make([][]byte, n)
	var res DecodeResult
	valid, missingData := 0, false
	for j := 0; j < n && valid < k; j++ {
		blk := shards[j]
		if int64(len(blk)) != ChecksumSize+bs {
			res.Bad = append(res.Bad, j)
			missingData = missingData || j < k
			continue
		}
		if sum := checksum(blk[ChecksumSize:]); !bytes.Equal(sum[:], blk[:ChecksumSize]) {
			res.Bad = append(res.Bad, j)
			missingData = missingData || j < k
			continue
		}
		data[j] = blk[ChecksumSize:]
		valid++
	}
	if valid < k {
		return res, fmt.Errorf("%w: %d of %d needed", ErrTooFewShards, valid, k)
	}
	if missingData {
		// Rebuilt blocks are allocated (their slots are nil), so the
		// caller's shards are only read.
		if err := c.rs.ReconstructData(data); err != nil {
			return res, fmt.Errorf("erasure: reconstruct: %w", err)
		}
	}
	for j := range k {
		lo := int64(j) * bs
		hi := min(lo+bs, size)
		a, b := max(lo, off), min(hi, off+length)
		if a >= b {
			continue
		}
		if _, err := w.Write(data[j][a-lo : b-lo]); err != nil {
			return res, err
		}
	}
	return res, nil
}
