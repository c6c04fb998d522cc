// Package erasure cuts byte streams into Reed-Solomon coded stripes and puts
// them back together. It is pure: io.Reader and io.Writer in, no files and no
// network.
//
// An artifact is read one stripe (default 1 MiB) at a time. Each stripe is
// split into k data blocks and m parity blocks are computed with
// klauspost/reedsolomon. Every block is written as a 16-byte checksum
// followed by its data, and block j of every stripe goes to shard writer j,
// so each shard file is the concatenation of its blocks (see Layout).
//
// Checksums are xxh3-128. Their job is to catch bit rot and torn or
// misdirected writes, not to resist an adversary who can write the drive
// directly (such an adversary can rewrite the checksum too), so a keyed
// cryptographic hash buys nothing here, and xxh3 runs at ~44 GB/s per core
// against ~9 GB/s for HighwayHash on the machines we measured: checksumming
// costs well under 5% of a stripe's encode time.
//
// Encode writes the k+m blocks of a stripe to their writers in parallel, one
// goroutine per writer, with a small fixed number of stripes in flight, so
// memory stays at a few stripes whatever the artifact size (stripe buffers
// are pooled by size class, so a small artifact takes a small one).
// EncodeBytes is the same encoding, synchronous and in one buffer, for an
// artifact shorter than a stripe held in memory. A failing writer
// is dropped and encoding goes on while at least the write quorum of writers
// remain, and so is one that falls behind a quorum of the others for
// EncodeOptions.Stall (its Write is not waited for). Decode reads any k
// healthy shards, preferring the data shards and reading parity in place
// of one that fails or whose block is late by Config.ReadStall; it
// verifies every block it reads, reconstructs missing or corrupt blocks
// from parity and reads only the stripes that a byte range covers.
package erasure

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/klauspost/reedsolomon"
)

// Errors returned by Encode and Decode, wrapped with detail.
var (
	// ErrWriteQuorum means fewer than the required number of shard writers
	// succeeded.
	ErrWriteQuorum = errors.New("erasure: write quorum lost")
	// ErrTooFewShards means fewer than k shards could be read intact for
	// some stripe: the data cannot be reconstructed.
	ErrTooFewShards = errors.New("erasure: too few intact shards")
)

// DefaultInflight is the default number of stripes buffered by one Encode.
const DefaultInflight = 3

// Config configures a Codec.
type Config struct {
	Data       int   // k, data shards per stripe (>= 1)
	Parity     int   // m, parity shards per stripe (>= 0)
	StripeSize int64 // bytes of artifact data per stripe; 0 means DefaultStripeSize
	Inflight   int   // stripes buffered per Encode; 0 means DefaultInflight
	// ReadStall is how long Decode, Rebuild and their like wait for a
	// shard's block before also reading another shard in its place; the
	// first k intact blocks serve the stripe and the slow shard is given
	// up for the rest of the read. 0 means DefaultReadStall.
	ReadStall time.Duration
}

// DefaultReadStall is the default Config.ReadStall.
const DefaultReadStall = 500 * time.Millisecond

// Codec encodes and decodes artifacts for one shard count and stripe size.
// It is safe for concurrent use.
type Codec struct {
	cfg Config
	rs  reedsolomon.Encoder
	// pools hold stripe buffers by size class: pools[i] blocks of
	// stripeClasses[i] data bytes, the last one full stripes. A 4 KiB
	// artifact's stripe needs kilobytes, not the megabytes of a full
	// stripe: taking a full one after each garbage collection emptied the
	// pool cost about 10% of the CPU of small PUTs and GETs (zeroing) and
	// megabytes of heap per request in flight (pprof, bench/RESULTS.md).
	pools [len(stripeClasses) + 1]sync.Pool
}

// stripeClasses are the block data sizes, in bytes, of the smaller stripe
// buffers a Codec keeps besides full ones.
var stripeClasses = [...]int64{4 << 10, 64 << 10}

// New returns a Codec for c.
func New(c Config) (*Codec, error) {
	if c.StripeSize == 0 {
		c.StripeSize = DefaultStripeSize
	}
	if c.Inflight == 0 {
		c.Inflight = DefaultInflight
	}
	if c.ReadStall <= 0 {
		c.ReadStall = DefaultReadStall
	}
	if err := (Layout{Data: c.Data, Parity: c.Parity, StripeSize: c.StripeSize}).Validate(); err != nil {
		return nil, err
	}
	if c.Inflight < 1 {
		return nil, fmt.Errorf("erasure: invalid inflight %d", c.Inflight)
	}
	rs, err := reedsolomon.New(c.Data, c.Parity)
	if err != nil {
		return nil, fmt.Errorf("erasure: %w", err)
	}
	codec := &Codec{cfg: c, rs: rs}
	full := blockDataSize(c.StripeSize, c.Data)
	for i := range codec.pools {
		bs := full
		if i < len(stripeClasses) {
			bs = min(stripeClasses[i], full)
		}
		codec.pools[i].New = func() any { return codec.newStripe(bs, i) }
	}
	return codec, nil
}

// Layout returns the layout of an artifact of size bytes under this Codec.
func (c *Codec) Layout(size int64) Layout {
	return Layout{Data: c.cfg.Data, Parity: c.cfg.Parity, StripeSize: c.cfg.StripeSize, Size: size}
}

// stripe is the buffer of one stripe: k+m blocks, each with room for its
// checksum in front of its data, carved from one allocation.
type stripe struct {
	index  int64
	n      int64    // artifact bytes in this stripe
	blocks [][]byte // full blocks (checksum + data) of the current size
	data   [][]byte // the data part of each block
	buf    []byte
	refs   atomic.Int32
	max    int64 // the largest block data size buf has room for
	class  int   // index of the pool it goes back to
}

func (c *Codec) newStripe(bs int64, class int) *stripe {
	n := c.cfg.Data + c.cfg.Parity
	return &stripe{
		buf:    make([]byte, int64(n)*(ChecksumSize+bs+BlockAlign)),
		blocks: make([][]byte, n),
		data:   make([][]byte, n),
		max:    bs,
		class:  class,
	}
}

// getStripe returns a stripe buffer with room for blocks of bs data bytes
// (at most a full stripe's).
func (c *Codec) getStripe(bs int64) *stripe {
	i := 0
	for i < len(stripeClasses) && bs > stripeClasses[i] {
		i++
	}
	return c.pools[i].Get().(*stripe)
}

// putStripe gives s back to its pool.
func (c *Codec) putStripe(s *stripe) { c.pools[s.class].Put(s) }

// BlockAlign is the alignment, in bytes, that Encode gives the blocks it
// writes: every block passed to a shard writer starts at a memory address
// congruent, modulo BlockAlign, to its offset in the shard. A writer that
// bypasses the page cache (O_DIRECT needs buffers, lengths and offsets
// aligned to the disk's block size) can then write all but the first and
// last few bytes of each block from where it lies, without copying it.
const BlockAlign = 4096

// shape cuts s.buf into blocks whose data parts are bs bytes long. If off
// is not negative, every block starts at an address congruent to off
// modulo BlockAlign (off is where the blocks go in their shards); else the
// blocks are packed.
func (s *stripe) shape(bs, off int64) {
	base := int64(uintptr(unsafe.Pointer(unsafe.SliceData(s.buf))) % BlockAlign)
	var start int64
	for j := range s.blocks {
		if off >= 0 {
			start += ((off-base-start)%BlockAlign + BlockAlign) % BlockAlign
		}
		s.blocks[j] = s.buf[start : start+ChecksumSize+bs : start+ChecksumSize+bs]
		s.data[j] = s.blocks[j][ChecksumSize:]
		start += ChecksumSize + bs
	}
}

// EncodeOptions tunes one Encode call.
type EncodeOptions struct {
	// Quorum is the number of writers that must succeed; 0 means all.
	Quorum int
	// Hash, if set, is fed every artifact byte in order (an ETag digest),
	// concurrently with encoding and writing.
	Hash hash.Hash
	// Size, if positive and less than the stripe size, is the number of
	// bytes r holds: Encode then buffers the lone stripe in a buffer of
	// its size instead of a full stripe's, and fails if r holds more.
	// Zero means unknown.
	Size int64
	// Stall, if positive, lets Encode drop a writer that holds it up while
	// a quorum of writers keeps pace. Each writer has Inflight stripes of
	// buffering; once the encoder has waited Stall for a stripe buffer
	// that writers behind the quorum's pace still hold, or, at the end,
	// Stall past the moment a quorum finished, the writers still behind
	// are dropped: their error wraps ErrStalled, Drop is called for each,
	// and Encode goes on (or returns) without waiting for their Write to
	// return. Zero waits for every writer.
	Stall time.Duration
	// Drop, if set, is called (on Encode's goroutine) with the index of
	// each writer Encode dropped as stalled, so the caller can interrupt
	// the writer's blocked Write (cancel its ctx, abort it). Until that
	// Write returns, Encode's goroutine for the writer and the stripe
	// buffers it holds stay alive; it touches nothing else of the caller.
	Drop func(j int)
}

// ErrStalled marks a writer Encode dropped because it fell behind a
// quorum of the others (EncodeOptions.Stall).
var ErrStalled = errors.New("erasure: shard writer stalled")

// EncodeResult reports what Encode did.
type EncodeResult struct {
	Size int64   // artifact bytes read
	Errs []error // per writer: nil if every block was written
}

// encodeState is the bookkeeping of one Encode shared by the encoder and
// the writer goroutines.
type encodeState struct {
	n, quorum int
	stall     time.Duration
	drop      func(j int)
	cancel    context.CancelFunc
	size      int64 // EncodeOptions.Size

	mu   sync.Mutex // guards errs
	errs []error

	failed  atomic.Int32   // writers failed or dropped
	out     []atomic.Bool  // per writer: failed or dropped, its stripes are skipped
	dropped []atomic.Bool  // per writer: dropped as stalled
	written []atomic.Int64 // per writer: stripes done (written or skipped)
	queued  []int64        // per writer: stripes handed to it (encoder goroutine only)
	made    int            // stripe buffers of this call (encoder goroutine only)
	most    int            // bound on made
}

// fail records err as writer j's outcome unless it has one; it cancels
// the encode when fewer than quorum writers remain.
func (st *encodeState) fail(j int, err error) {
	if !st.out[j].CompareAndSwap(false, true) {
		return
	}
	st.mu.Lock()
	st.errs[j] = err
	st.mu.Unlock()
	if st.n-int(st.failed.Add(1)) < st.quorum {
		st.cancel()
	}
}

// dropBehind drops the live writers that lag the quorum's pace: more
// stripes handed to them are unfinished than for the quorum-th fastest
// live writer (all of them when final, if a quorum finished). It returns
// how many stripe buffers the dropped writers hold.
func (st *encodeState) dropBehind(final bool) int {
	lag := make([]int64, 0, st.n)
	for j := range st.n {
		if !st.out[j].Load() {
			lag = append(lag, st.queued[j]-st.written[j].Load())
		}
	}
	if len(lag) < st.quorum {
		return 0
	}
	slices.Sort(lag)
	pace := lag[st.quorum-1]
	if final && pace != 0 {
		return 0
	}
	held := 0
	for j := range st.n {
		if st.out[j].Load() {
			continue
		}
		if l := st.queued[j] - st.written[j].Load(); l > pace {
			st.dropped[j].Store(true)
			st.fail(j, fmt.Errorf("erasure: shard %d: %w: %d stripes behind", j, ErrStalled, l-pace))
			if st.drop != nil {
				st.drop(j)
			}
			held += int(l)
		}
	}
	return held
}

// Encode reads r to EOF, writing block j of every stripe to w[j] (len(w)
// must be k+m). Writers run in parallel; a writer that fails is dropped and
// its error recorded in the result, and so is one that stalls
// (opts.Stall). Encode fails with ErrWriteQuorum as soon as fewer than
// opts.Quorum writers remain, with r's error if r fails, and with ctx's
// error if ctx ends. On error the caller must discard everything written.
// Every call to a w[j] carries exactly one whole block.
func (c *Codec) Encode(ctx context.Context, r io.Reader, w []io.Writer, opts EncodeOptions) (EncodeResult, error) {
	k, n := c.cfg.Data, c.cfg.Data+c.cfg.Parity
	if len(w) != n {
		return EncodeResult{}, fmt.Errorf("erasure: %d writers for %d shards", len(w), n)
	}
	quorum := opts.Quorum
	if quorum <= 0 || quorum > n {
		quorum = n
	}
	res := EncodeResult{}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := &encodeState{
		n: n, quorum: quorum, stall: opts.Stall, drop: opts.Drop, cancel: cancel, size: opts.Size,
		errs:    make([]error, n),
		out:     make([]atomic.Bool, n),
		dropped: make([]atomic.Bool, n),
		written: make([]atomic.Int64, n),
		queued:  make([]int64, n),
	}

	// free holds the stripe buffers of this call: Inflight of them, plus
	// a replacement for each buffer a dropped writer still holds, up to
	// st.most in all. Its room, and every writer's queue's, covers every
	// buffer that can exist, so neither a release (also one after Encode
	// returned) nor handing a stripe to a writer ever blocks.
	st.most = c.cfg.Inflight * (n + 1)
	free := make(chan *stripe, st.most)
	for range c.cfg.Inflight {
		free <- nil // allocated lazily from the pool
	}
	st.made = c.cfg.Inflight
	release := func(s *stripe) {
		if s.refs.Add(-1) == 0 {
			free <- s
		}
	}

	queues := make([]chan *stripe, n)
	exited := make(chan int, n)
	for j := range n {
		queues[j] = make(chan *stripe, st.most)
		go func() {
			defer func() { exited <- j }()
			for s := range queues[j] {
				if !st.out[j].Load() {
					sum := checksum(s.data[j])
					copy(s.blocks[j], sum[:])
					if _, err := w[j].Write(s.blocks[j]); err != nil && !st.dropped[j].Load() {
						st.fail(j, fmt.Errorf("erasure: shard %d stripe %d: %w", j, s.index, err))
					}
				}
				st.written[j].Add(1)
				release(s)
			}
		}()
	}
	var hashWG sync.WaitGroup
	var hashQ chan *stripe
	if opts.Hash != nil {
		hashQ = make(chan *stripe, st.most)
		hashWG.Go(func() {
			for s := range hashQ {
				left := s.n
				for j := 0; j < k && left > 0; j++ {
					d := s.data[j][:min(int64(len(s.data[j])), left)]
					opts.Hash.Write(d)
					left -= int64(len(d))
				}
				release(s)
			}
		})
	}

	err := c.encodeLoop(ctx, r, free, queues, hashQ, st, &res)
	for _, q := range queues {
		close(q)
	}
	if hashQ != nil {
		close(hashQ)
	}
	hashWG.Wait()
	st.waitWriters(ctx, exited)
	// Return the buffers at hand to the shared pool; those a dropped
	// writer still holds go to free when it lets go, and from there to
	// the garbage collector.
	for done := false; !done; {
		select {
		case s := <-free:
			if s != nil {
				c.putStripe(s)
			}
		default:
			done = true
		}
	}
	st.mu.Lock()
	res.Errs = slices.Clone(st.errs)
	st.mu.Unlock()

	if err := parent.Err(); err != nil {
		return res, fmt.Errorf("erasure: encode: %w", err)
	}
	if ok := n - int(st.failed.Load()); ok < quorum {
		return res, fmt.Errorf("%w: %d of %d shard writers ok, need %d: %w", ErrWriteQuorum, ok, n, quorum, firstErr(res.Errs))
	}
	if err != nil {
		return res, err
	}
	return res, nil
}

// waitWriters waits until every writer goroutine that was not dropped has
// exited. With a stall timeout, once a quorum of writers finished it
// waits at most that long for the others and then drops them.
func (st *encodeState) waitWriters(ctx context.Context, exited <-chan int) {
	gone := make([]bool, st.n)
	var grace, cancelled <-chan time.Time
	for {
		left, ok := 0, 0
		for j := range st.n {
			switch {
			case gone[j] && !st.out[j].Load():
				ok++
			case !gone[j] && !st.dropped[j].Load():
				left++
			}
		}
		if left == 0 {
			return
		}
		if grace == nil && st.stall > 0 && ok >= st.quorum {
			t := time.NewTimer(st.stall)
			defer t.Stop()
			grace = t.C
		}
		select {
		case j := <-exited:
			gone[j] = true
		case <-grace:
			st.dropBehind(true)
		case <-ctx.Done():
			// Writers see ctx too; a stall timeout bounds the wait for
			// those that do not honour it.
			ctx = context.Background()
			if st.stall > 0 {
				t := time.NewTimer(st.stall)
				defer t.Stop()
				cancelled = t.C
			}
		case <-cancelled:
			for j := range st.n {
				if !gone[j] && !st.dropped[j].Load() {
					st.dropped[j].Store(true)
					st.fail(j, fmt.Errorf("erasure: shard %d: %w after the encode ended", j, ErrStalled))
					if st.drop != nil {
						st.drop(j)
					}
				}
			}
		}
	}
}

// encodeLoop reads stripes from r and hands them to the queues until EOF.
func (c *Codec) encodeLoop(ctx context.Context, r io.Reader, free chan *stripe, queues []chan *stripe, hashQ chan *stripe, st *encodeState, res *EncodeResult) error {
	k := c.cfg.Data
	full := blockDataSize(c.cfg.StripeSize, k)
	// A lone short stripe of a known size gets a buffer of its size.
	var lone int64
	if size := st.size; size > 0 && size < c.cfg.StripeSize {
		lone = blockDataSize(size, k)
	}
	for index := int64(0); ; index++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("erasure: encode: %w", context.Cause(ctx))
		}
		s, err := st.buffer(ctx, free)
		if err != nil {
			return err
		}
		bs, limit := full, c.cfg.StripeSize
		if index == 0 && lone > 0 {
			bs, limit = lone, st.size
		}
		if s == nil || s.max < bs {
			if s != nil {
				c.putStripe(s)
			}
			s = c.getStripe(bs)
		}
		off := index * (ChecksumSize + full) // of the stripe's blocks in their shards
		s.shape(bs, off)
		nread, err := readStripe(r, s.data[:k], limit)
		if err == nil && bs < full && nread == limit {
			// r must end here: the stripe is laid out as the last one.
			var one [1]byte
			if m, rerr := ReadFull(r, one[:]); rerr != nil {
				err = rerr
			} else if m > 0 {
				err = fmt.Errorf("erasure: more than EncodeOptions.Size (%d) bytes", limit)
			}
		}
		if err != nil {
			free <- s
			return fmt.Errorf("erasure: read stripe %d: %w", index, err)
		}
		if nread == 0 {
			free <- s
			return nil
		}
		if nread < limit {
			s.reshape(nread, k, off)
		}
		s.index, s.n = index, nread
		if err := c.rs.Encode(s.data); err != nil {
			free <- s
			return fmt.Errorf("erasure: encode stripe %d: %w", index, err)
		}
		res.Size += nread
		var to []int
		for j := range queues {
			if !st.dropped[j].Load() {
				to = append(to, j)
			}
		}
		refs := int32(len(to))
		if hashQ != nil {
			refs++
		}
		s.refs.Store(refs)
		for _, j := range to {
			// Never blocks: the queue has room for every buffer.
			st.queued[j]++
			queues[j] <- s
		}
		if hashQ != nil {
			hashQ <- s
		}
		if nread < c.cfg.StripeSize {
			// A short stripe is the last one; make sure r has nothing more.
			return nil
		}
	}
}

// buffer returns a free stripe buffer (nil: allocate one), waiting for
// the writers to release one. With a stall timeout, each time it has
// waited that long it drops the writers behind the quorum's pace and
// replaces the buffers they hold.
func (st *encodeState) buffer(ctx context.Context, free chan *stripe) (*stripe, error) {
	select {
	case s := <-free:
		return s, nil
	default:
	}
	var stall <-chan time.Time
	if st.stall > 0 {
		t := time.NewTicker(st.stall)
		defer t.Stop()
		stall = t.C
	}
	for {
		select {
		case s := <-free:
			return s, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("erasure: encode: %w", context.Cause(ctx))
		case <-stall:
			for range min(st.dropBehind(false), st.most-st.made) {
				st.made++
				free <- nil
			}
		}
	}
}

// readStripe fills the data blocks in order with up to stripeSize bytes of
// r, returning how many it read. Only io.EOF from r ends the artifact: any
// other error, io.ErrUnexpectedEOF included, fails the stripe even when it
// comes with data.
func readStripe(r io.Reader, data [][]byte, stripeSize int64) (int64, error) {
	var total int64
	for _, d := range data {
		want := min(int64(len(d)), stripeSize-total)
		got, err := ReadFull(r, d[:want])
		total += int64(got)
		if err != nil {
			return total, err
		}
		if int64(got) < want {
			return total, nil // EOF
		}
		clear(d[want:]) // padding of a full stripe that k does not divide
	}
	return total, nil
}

// ReadFull reads len(p) bytes unless r reports io.EOF first, which is not
// an error; any other error, io.ErrUnexpectedEOF included, is returned even
// if it came with data, so a body cut short is never taken for a short
// artifact. It is the read discipline Encode applies to its input; callers
// that read an artifact's head before encoding use it too.
func ReadFull(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// reshape re-lays the n bytes read into full-size blocks as blocks of
// ceil(n/k) bytes, zero-padding the tail of the last data block, aligned
// for shard offset shardOff as shape does.
func (s *stripe) reshape(n int64, k int, shardOff int64) {
	full := int64(len(s.data[0]))
	tmp := make([]byte, n)
	var off int64
	for j := 0; j < k && off < n; j++ {
		off += int64(copy(tmp[off:], s.data[j][:min(full, n-off)]))
	}
	bs := blockDataSize(n, k)
	s.shape(bs, shardOff)
	off = 0
	for j := range k {
		c := copy(s.data[j], tmp[off:])
		clear(s.data[j][c:])
		off += int64(c)
	}
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// EncodeBytes encodes data, a whole artifact of 1 byte to less than a
// stripe held in memory, and returns its shards: out[j] holds exactly the
// bytes Encode would write to writer j. It works synchronously, with one
// buffer for all shards: for the small artifacts stored inline, Encode's
// writer goroutines, queues and stripe buffers cost more than the coding.
func (c *Codec) EncodeBytes(data []byte) ([][]byte, error) {
	size := int64(len(data))
	if size == 0 || size >= c.cfg.StripeSize {
		return nil, fmt.Errorf("erasure: EncodeBytes of %d bytes: want 1 to %d", size, c.cfg.StripeSize-1)
	}
	k, n := c.cfg.Data, c.cfg.Data+c.cfg.Parity
	bs := int(blockDataSize(size, k))
	w := ChecksumSize + bs
	buf := make([]byte, n*w) // zeroed: the padding of the last data block
	out := make([][]byte, n)
	blocks := make([][]byte, n)
	off := 0
	for j := range n {
		out[j] = buf[j*w : (j+1)*w : (j+1)*w]
		blocks[j] = out[j][ChecksumSize:]
		if j < k {
			off += copy(blocks[j], data[off:])
		}
	}
	if err := c.rs.Encode(blocks); err != nil {
		return nil, fmt.Errorf("erasure: encode: %w", err)
	}
	for j := range n {
		sum := checksum(blocks[j])
		copy(out[j], sum[:])
	}
	return out, nil
}
