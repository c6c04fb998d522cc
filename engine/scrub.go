package engine

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/placement"
)

// Scrubber defaults.
const (
	// DefaultScrubPeriod is the default ScrubConfig.Period: a month for a
	// full pass over every drive.
	DefaultScrubPeriod = 30 * 24 * time.Hour
	// DefaultScrubRate is the default ScrubConfig.Rate, in bytes per second
	// per drive.
	DefaultScrubRate = 32 << 20
	// scrubBurst is the most bytes read from a drive at once.
	scrubBurst = 256 << 10
	// scrubRetry is how long a scrubber waits before trying a drive again
	// after it could not be listed (offline).
	scrubRetry = time.Minute
	// scrubPage is the records listed per drive call.
	scrubPage = 256
)

// ScrubConfig configures a Scrubber.
type ScrubConfig struct {
	// Drives are the drives to scrub, by id: a node scrubs its own local
	// drives only, so each drive of a cluster is read by one node.
	Drives map[placement.DriveID]driver.Driver
	// Period is how long one pass over a drive should take; the scrubber
	// paces its reads to spread a pass over it and starts the next pass
	// one Period after the previous one started. 0 means
	// DefaultScrubPeriod.
	Period time.Duration
	// Rate caps the bytes per second read from each drive, whatever the
	// Period asks for; 0 means DefaultScrubRate.
	Rate int64
	// Logger defaults to the engine's.
	Logger *slog.Logger
}

// ScrubStatus is the progress and findings of the scrubber on one drive.
type ScrubStatus struct {
	Drive       placement.DriveID
	Passes      uint64    // full passes completed
	PassStarted time.Time // start of the pass in progress (zero before the first)
	LastPass    time.Time // end of the last full pass (zero before the first)
	PassBytes   int64     // bytes verified in the pass in progress
	PassTotal   int64     // bytes the drive held when the pass started
	// Running totals since the scrubber started.
	Bytes    uint64 // bytes verified
	Shards   uint64 // shard files (and inline shards) verified
	Corrupt  uint64 // shards found corrupt, missing or with an unreadable record
	Repaired uint64 // of those, rewritten by Heal at once (the rest are queued for the healer)
	Err      string // why the drive could not be scrubbed lately; "" if it could
}

// Progress returns how far the pass in progress is, from 0 to 1.
func (s ScrubStatus) Progress() float64 {
	if s.PassTotal <= 0 {
		if s.PassStarted.IsZero() {
			return 0
		}
		return 1
	}
	return min(float64(s.PassBytes)/float64(s.PassTotal), 1)
}

// Scrubber finds bitrot in shards that nobody reads. On each drive it
// walks the records the drive holds, in key order, and verifies the block
// checksums of the drive's shard of every live artifact version (the whole
// shard file of every part, or the inline shard in the record); a shard
// that fails (corrupt, truncated, missing) or a record that does not
// decode is repaired by Heal, which rebuilds the shard from the other
// drives of the set, or queued for the healer if that fails. Reads are
// paced so that a pass takes about ScrubConfig.Period, and never exceed
// ScrubConfig.Rate bytes per second per drive. A drive that cannot be
// listed (offline) is retried later from where its pass stopped. Create
// one with Engine.NewScrubber and run it with Run; it is safe for
// concurrent use.
type Scrubber struct {
	e   *Engine
	cfg ScrubConfig
	log *slog.Logger

	mu     sync.Mutex // guards status
	status map[placement.DriveID]*ScrubStatus
}

// Validate checks c and fills in defaults (but the Logger).
func (c *ScrubConfig) Validate() error {
	if c.Period < 0 || c.Rate < 0 {
		return fmt.Errorf("engine: scrub: negative period %v or rate %d", c.Period, c.Rate)
	}
	if c.Period == 0 {
		c.Period = DefaultScrubPeriod
	}
	if c.Rate == 0 {
		c.Rate = DefaultScrubRate
	}
	return nil
}

// NewScrubber returns a Scrubber of the drives in c.
func (e *Engine) NewScrubber(c ScrubConfig) (*Scrubber, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Logger == nil {
		c.Logger = e.log
	}
	s := &Scrubber{e: e, cfg: c, log: c.Logger, status: make(map[placement.DriveID]*ScrubStatus)}
	for id := range c.Drives {
		s.status[id] = &ScrubStatus{Drive: id}
	}
	return s, nil
}

// Status returns the scrubber's progress on each drive, sorted by drive.
func (s *Scrubber) Status() []ScrubStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ScrubStatus, 0, len(s.status))
	for _, st := range s.status {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b ScrubStatus) int { return cmp.Compare(a.Drive, b.Drive) })
	return out
}

// update changes drive id's status under the lock.
func (s *Scrubber) update(id placement.DriveID, f func(*ScrubStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.status[id])
}

// Run scrubs every drive, each in its own goroutine, pass after pass,
// until ctx ends.
func (s *Scrubber) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for id, d := range s.cfg.Drives {
		wg.Go(func() { s.runDrive(ctx, id, d) })
	}
	wg.Wait()
}

// runDrive scrubs one drive pass after pass, starting a pass one Period
// after the previous one started.
func (s *Scrubber) runDrive(ctx context.Context, id placement.DriveID, d driver.Driver) {
	ctx = driver.Uncached(ctx) // records read from the disk, where rot is, not a drive's cache
	log := s.log.With("drive", id)
	for ctx.Err() == nil {
		start := time.Now()
		done, err := s.pass(ctx, id, d, log)
		if err != nil {
			return // ctx ended
		}
		if !done {
			// The drive could not be listed (offline): try a new pass
			// later, sized to what the drive then holds.
			if !sleep(ctx, min(s.cfg.Period, scrubRetry)) {
				return
			}
			continue
		}
		s.update(id, func(st *ScrubStatus) {
			st.Passes++
			st.LastPass = time.Now()
			st.PassTotal = st.PassBytes // the estimate counted the index too
		})
		if !sleep(ctx, time.Until(start.Add(s.cfg.Period))) {
			return
		}
	}
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pass walks drive d's records once and reports whether it got to the
// end; it stops early if the drive cannot be listed. It returns an error
// only when ctx ends.
func (s *Scrubber) pass(ctx context.Context, id placement.DriveID, d driver.Driver, log *slog.Logger) (bool, error) {
	var total int64
	if info, err := d.Info(ctx); err == nil {
		total = int64(info.Usage.Used)
	}
	// Spread the pass over the period, within the rate cap.
	bps := min(max(float64(total)/s.cfg.Period.Seconds(), 1), float64(s.cfg.Rate))
	lim := rate.NewLimiter(rate.Limit(bps), scrubBurst)
	s.update(id, func(st *ScrubStatus) { st.PassStarted, st.PassBytes, st.PassTotal = time.Now(), 0, total })
	after := ""
	for {
		recs, err := d.ListRecords(ctx, "", after, scrubPage)
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			log.Warn("scrub: cannot list the drive; will retry", "err", err)
			s.update(id, func(st *ScrubStatus) { st.Err = err.Error() })
			return false, nil
		}
		s.update(id, func(st *ScrubStatus) { st.Err = "" })
		if len(recs) == 0 {
			return true, nil
		}
		for _, r := range recs {
			after = r.Key
			if err := s.scrubRecord(ctx, id, d, r, lim, log); err != nil {
				return false, err
			}
		}
	}
}

// scrubRecord verifies the drive's shards of one listed record, repairing
// what fails. It returns an error only when ctx ends.
func (s *Scrubber) scrubRecord(ctx context.Context, id placement.DriveID, d driver.Driver, r driver.Record, lim *rate.Limiter, log *slog.Logger) error {
	if r.Key == "" || r.Key[0] < 0x20 {
		return nil // multipart uploads in progress: not artifacts
	}
	f := strings.SplitN(r.Key, "\x00", 3)
	if len(f) != 3 {
		return nil
	}
	tenant, container, key := f[0], f[1], f[2]
	data := r.Data
	if r.Truncated {
		full, err := d.GetRecord(ctx, r.Key)
		if errors.Is(err, driver.ErrNotFound) {
			return nil // removed since listed
		}
		if errors.Is(err, driver.ErrCorrupt) && !errors.Is(err, driver.ErrOffline) && ctx.Err() == nil {
			// The record's data does not read back (a pack's CRC, a
			// value that does not parse): rot the read from the disk
			// (driver.Uncached) found, repaired from the other drives
			// (review 29p).
			s.found(ctx, id, d, r, -1, tenant, container, key, fmt.Errorf("record: %w", err), log)
			return ctx.Err()
		}
		if err != nil {
			return ctx.Err() // offline or failing: the next pass tries again
		}
		if full.Version != r.Version {
			return nil
		}
		data = full.Data
	}
	rec, err := unmarshalRecord(data)
	if err != nil {
		s.found(ctx, id, d, r, -1, tenant, container, key, fmt.Errorf("record: %w", err), log)
		return ctx.Err()
	}
	if rec.Deleted {
		return nil
	}
	codec, err := s.e.codec(rec.Data, rec.Parity, rec.StripeSize)
	if err != nil || rec.Shard < 0 || rec.Shard >= rec.Data+rec.Parity {
		s.found(ctx, id, d, r, rec.Shard, tenant, container, key, fmt.Errorf("record: shard %d of %d+%d", rec.Shard, rec.Data, rec.Parity), log)
		return ctx.Err()
	}
	type segment struct {
		size int64
		open func(ctx context.Context, off, length int64) (io.ReadCloser, error)
	}
	var segs []segment
	if rec.IsInline {
		inline := rec.Inline
		segs = append(segs, segment{rec.Size, func(_ context.Context, off, length int64) (io.ReadCloser, error) {
			if off > int64(len(inline)) {
				return nil, io.ErrUnexpectedEOF
			}
			return io.NopCloser(bytes.NewReader(inline[off:min(off+length, int64(len(inline)))])), nil
		}})
	} else {
		// A striped record's parts in other PGs are verified from their
		// own drives, by the scrubber of the drive holding the slot's
		// record (stripe.go): so every shard is verified once a period.
		var sm *placement.Map
		if rec.striped() {
			sm = s.e.stripeMap(tenant, container, rec)
		}
		for i, p := range rec.Parts {
			pg, pd := rec.partPG(i), d
			if pg != rec.PG {
				if sm == nil {
					continue // the map placing it is gone: migration's
				}
				ds, _ := s.e.partDrives(sm, rec, i)
				if pd = ds[rec.Shard]; pd == nil {
					continue // unreachable now: the next pass
				}
			}
			sh := shardOf(tenant, container, key, pg, p.DataID)
			segs = append(segs, segment{p.Size, func(ctx context.Context, off, length int64) (io.ReadCloser, error) {
				return pd.ReadShard(ctx, sh, off, length)
			}})
		}
	}
	for _, seg := range segs {
		var n int64
		open := func(ctx context.Context, j int, off, length int64) (io.ReadCloser, error) {
			rc, err := seg.open(ctx, off, length)
			if err != nil {
				return nil, err
			}
			return &pacedReader{ctx: ctx, rc: rc, lim: lim, n: &n}, nil
		}
		verr := codec.Verify(ctx, seg.size, rec.Shard, open)
		s.update(id, func(st *ScrubStatus) {
			st.PassBytes += n
			st.Bytes += uint64(n)
			st.Shards++
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if verr == nil {
			continue
		}
		if errors.Is(verr, driver.ErrOffline) {
			return nil // the drive went away: the next pass tries again
		}
		// Changed since listed (overwritten, deleted, migrated)? Then
		// the shard may be gone legitimately.
		cur, err := d.GetRecord(ctx, r.Key)
		if err != nil || cur.Version != r.Version {
			return ctx.Err()
		}
		s.found(ctx, id, d, r, rec.Shard, tenant, container, key, verr, log)
		return ctx.Err() // Heal rewrote every part of this shard
	}
	return nil
}

// found counts a corrupt shard (or record) of drive id and repairs it.
func (s *Scrubber) found(ctx context.Context, id placement.DriveID, d driver.Driver, r driver.Record, shard int, tenant, container, key string, why error, log *slog.Logger) {
	log.Warn("scrub: corrupt shard", "container", container, "shard", shard, "err", why)
	s.update(id, func(st *ScrubStatus) { st.Corrupt++ })
	hctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	repaired, err := s.e.Heal(hctx, tenant, container, key)
	if err != nil && !errors.Is(err, ErrHealIncomplete) {
		if ctx.Err() == nil {
			log.Warn("scrub: repair failed; queued for the healer", "container", container, "err", err)
			s.e.enqueueHeal(HealItem{tenant, container, key})
		}
		return
	}
	// A repair rewrote the drive's shard if Heal reports it, or if the
	// drive now holds a newer version than the one found corrupt.
	// A corrupt record is repaired if it decodes now.
	cur, gerr := d.GetRecord(ctx, r.Key)
	fixed := slices.Contains(repaired, shard) || gerr == nil && cur.Version != r.Version
	if shard < 0 && gerr == nil {
		_, uerr := unmarshalRecord(cur.Data)
		fixed = uerr == nil
	}
	if fixed {
		s.update(id, func(st *ScrubStatus) { st.Repaired++ })
	}
}

// pacedReader reads through a rate limiter, at most scrubBurst bytes at a
// time, counting the bytes in *n.
type pacedReader struct {
	// ctx is the one Verify opened the stream with: io.Reader has no ctx
	// parameter, and the limiter's waits must end with it.
	ctx context.Context
	rc  io.ReadCloser
	lim *rate.Limiter
	n   *int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if len(b) > scrubBurst {
		b = b[:scrubBurst]
	}
	if err := p.lim.WaitN(p.ctx, len(b)); err != nil {
		return 0, err
	}
	n, err := p.rc.Read(b)
	*p.n += int64(n)
	return n, err
}

func (p *pacedReader) Close() error { return p.rc.Close() }
