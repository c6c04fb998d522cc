package erasure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
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
	rc   io.ReadCloser
	next int64 // stripe whose block the stream reads next
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
	bad         []bool // shards that failed at least once
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
		s:       c.pool.Get().(*stripe),
		streams: make([]*shardStream, n),
		exclude: exclude,
		dead:    make([]bool, n),
		bad:     make([]bool, n),
		ok:      make([]bool, n),
		tried:   make([]bool, n),
	}
}

func (rd *reader) close() {
	for j, st := range rd.streams {
		if st != nil {
			st.rc.Close()
			rd.streams[j] = nil
		}
	}
	rd.c.pool.Put(rd.s)
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

// stripe loads stripe i into rd.s: at least k intact blocks, then the
// missing data blocks (all missing blocks if all is set) reconstructed.
func (rd *reader) stripe(ctx context.Context, i int64, all bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("erasure: decode: %w", err)
	}
	k, n := rd.l.Data, rd.l.Shards()
	rd.s.shape(rd.l.BlockDataSize(i), -1)
	clear(rd.ok)
	clear(rd.tried)
	valid := 0
	var errs []error
	for valid < k {
		batch := make([]int, 0, k)
		for j := 0; j < n && len(batch) < k-valid; j++ {
			if !rd.tried[j] && !rd.dead[j] && !rd.exclude[j] {
				batch = append(batch, j)
			}
		}
		if len(batch) == 0 {
			err := fmt.Errorf("%w: stripe %d: %d of %d needed", ErrTooFewShards, i, valid, k)
			if len(errs) > 0 {
				err = fmt.Errorf("%w: %w", err, errors.Join(errs...))
			}
			return err
		}
		results := make([]error, len(batch))
		var wg sync.WaitGroup
		for b, j := range batch {
			rd.tried[j] = true
			wg.Go(func() { results[b] = rd.block(ctx, j, i) })
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			// A cancelled read says nothing about the shards' health.
			return fmt.Errorf("erasure: decode: %w", err)
		}
		for b, j := range batch {
			if results[b] != nil {
				rd.bad[j] = true
				errs = append(errs, results[b])
				continue
			}
			rd.ok[j] = true
			valid++
		}
	}
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

// block reads and verifies shard j's block of stripe i into rd.s.blocks[j].
func (rd *reader) block(ctx context.Context, j int, i int64) error {
	st := rd.streams[j]
	if st != nil && st.next != i {
		st.rc.Close()
		st, rd.streams[j] = nil, nil
	}
	if st == nil {
		start := rd.l.ShardOffset(i)
		end := rd.l.ShardOffset(rd.last) + rd.l.BlockSize(rd.last)
		rc, err := rd.open(ctx, j, start, end-start)
		if err != nil {
			rd.dead[j] = true
			return fmt.Errorf("erasure: open shard %d: %w", j, err)
		}
		st = &shardStream{rc: rc, next: i}
		rd.streams[j] = st
	}
	blk := rd.s.blocks[j]
	if _, err := io.ReadFull(st.rc, blk); err != nil {
		st.rc.Close()
		rd.streams[j] = nil
		rd.dead[j] = true
		return fmt.Errorf("erasure: read shard %d stripe %d: %w", j, i, err)
	}
	st.next = i + 1
	if sum := checksum(blk[ChecksumSize:]); !bytes.Equal(sum[:], blk[:ChecksumSize]) {
		return fmt.Errorf("erasure: shard %d stripe %d: %w", j, i, errBadChecksum)
	}
	return nil
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
	s := c.pool.Get().(*stripe)
	defer c.pool.Put(s)
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
