// Package faulty wraps a driver.Driver and injects disk faults into the
// calls made through it, for tests: I/O errors (EIO) on reads, writes,
// commits (fsync) and record writes, a full disk (ENOSPC, as
// driver.ErrNoSpace), torn and lost commits, bit flips in data read or
// stored, slow calls, a bandwidth cap, and a drive that disappears
// (driver.ErrOffline or EIO on every call) and comes back.
//
// Faults are described by Rules: which calls (Op), what happens (Fault),
// with which probability, after how many matching calls and how many times
// at most. Rules can be replaced at any time, also while calls are in
// flight. Random choices come from one generator seeded by New's seed, so
// a test that makes the same calls in the same order sees the same faults.
//
// The vaultd test hook (VAULT_FAULTS, cmd/vaultd/faults.go) reads Plans
// from a JSON file; see Plan and Rule for the format. faulty imports only
// the driver package and is never wired into a server by default.
package faulty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vaultaire/vaultaire/driver"
)

// ErrInjected is wrapped by every error the package injects, beside the
// error a real disk would give (syscall.EIO, driver.ErrNoSpace with
// syscall.ENOSPC, driver.ErrOffline).
var ErrInjected = errors.New("faulty: injected fault")

// Op is a set of Driver calls a Rule applies to.
type Op uint16

// The calls. A ReadShard fault applies to opening the shard and to every
// Read of the returned stream; a Write fault to every ShardWriter.Write.
const (
	OpInfo         Op = 1 << iota // Info (the health check)
	OpCreate                      // CreateShard
	OpWrite                       // ShardWriter.Write
	OpCommit                      // ShardWriter.Commit (fsync and rename)
	OpRead                        // ReadShard and reads from its stream
	OpDeleteShard                 // DeleteShard
	OpPutRecord                   // PutRecord
	OpGetRecord                   // GetRecord
	OpDeleteRecord                // DeleteRecord
	OpList                        // ListRecords

	// OpShardWrite is every step of writing a shard.
	OpShardWrite = OpCreate | OpWrite | OpCommit
	// OpMutations is every call that changes the drive.
	OpMutations = OpShardWrite | OpDeleteShard | OpPutRecord | OpDeleteRecord
	// OpReads is every call that reads data.
	OpReads = OpRead | OpGetRecord | OpList
	// OpAll is every call (ShardWriter.Abort is never failed).
	OpAll = OpInfo | OpMutations | OpReads
)

var opNames = []struct {
	name string
	op   Op
}{
	{"all", OpAll}, {"mutations", OpMutations}, {"reads", OpReads}, {"shard-write", OpShardWrite},
	{"info", OpInfo}, {"create", OpCreate}, {"write", OpWrite}, {"commit", OpCommit},
	{"read", OpRead}, {"delete-shard", OpDeleteShard}, {"put-record", OpPutRecord},
	{"get-record", OpGetRecord}, {"delete-record", OpDeleteRecord}, {"list", OpList},
}

// String returns o as a comma-separated list of names, as ParseOp reads.
func (o Op) String() string {
	var names []string
	rest := o
	for _, n := range opNames {
		if rest&n.op == n.op && n.op != 0 {
			names = append(names, n.name)
			rest &^= n.op
		}
	}
	if rest != 0 || len(names) == 0 {
		names = append(names, fmt.Sprintf("op(%#x)", uint16(rest)))
	}
	return strings.Join(names, ",")
}

// ParseOp parses a comma-separated list of call names: info, create,
// write, commit, read, delete-shard, put-record, get-record,
// delete-record, list, or the groups shard-write, mutations, reads, all.
func ParseOp(s string) (Op, error) {
	var o Op
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		found := false
		for _, n := range opNames {
			if n.name == f {
				o |= n.op
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("faulty: unknown op %q", f)
		}
	}
	return o, nil
}

// MarshalText implements encoding.TextMarshaler.
func (o Op) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Op) UnmarshalText(b []byte) error {
	v, err := ParseOp(string(b))
	*o = v
	return err
}

// Fault is what happens to a call a Rule picks.
type Fault string

// The faults.
const (
	// EIO fails the call with an I/O error (syscall.EIO), nothing done.
	EIO Fault = "eio"
	// NoSpace fails the call as a full disk does (driver.ErrNoSpace
	// wrapping syscall.ENOSPC), nothing done.
	NoSpace Fault = "enospc"
	// Offline fails the call with driver.ErrOffline, as a drive that has
	// disappeared.
	Offline Fault = "offline"
	// Torn applies to Commit: the shard is stored with the tail of its
	// last Write missing (Rule.Keep says how much of it is kept) and
	// becomes visible under its name, then Commit fails with EIO, as a
	// crash between rename and fsync can leave it. Whether a shard write
	// is torn is decided when it starts (CreateShard).
	Torn Fault = "torn"
	// Lost is Torn with Commit returning nil: an acknowledged write of
	// which the disk kept only a prefix (a lying cache, a crash-like
	// truncation). Only checksums can tell.
	Lost Fault = "lost"
	// Flip inverts one bit, at a random position, of the data a read
	// returns (a stream Read, GetRecord, ListRecords) or of the bytes a
	// Write stores (the caller's buffer is left alone).
	Flip Fault = "flip"
	// Slow makes the call wait Rule.Delay first (or until its ctx is
	// done). Slow rules add up and do not stop other rules from firing.
	Slow Fault = "slow"
)

// Rule says which calls fail and how. The zero values of Prob, Count,
// After and MinSize mean always, unlimited, none skipped and any size.
// A call goes through the rules in order: Slow rules that fire add their
// delays, and the first other rule that fires decides the call's fault;
// the rules after it do not see the call (their After and Count do not
// count it).
type Rule struct {
	Op    Op      `json:"op"`
	Fault Fault   `json:"fault"`
	Prob  float64 `json:"prob,omitempty"`  // chance a matching call is picked; 0 means 1
	Count int     `json:"count,omitempty"` // fire at most this many times; 0 means no limit
	After int     `json:"after,omitempty"` // let this many matching calls through first
	// MinSize restricts the rule to Writes of at least MinSize bytes
	// and PutRecords of at least MinSize bytes of Data (so a full
	// disk can still take small tombstones, as a real one with free
	// index pages does). Other calls are not restricted.
	MinSize int           `json:"min_size,omitempty"`
	Delay   time.Duration `json:"-"`              // for Slow
	Keep    float64       `json:"keep,omitempty"` // for Torn and Lost: fraction of the last Write kept, in [0, 1); 0 means 0.5
}

// MarshalJSON writes r with Delay as a duration string.
func (r Rule) MarshalJSON() ([]byte, error) {
	type plain Rule
	v := struct {
		plain
		Delay string `json:"delay,omitempty"`
	}{plain: plain(r)}
	if r.Delay != 0 {
		v.Delay = r.Delay.String()
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads r, with Delay as a duration string.
func (r *Rule) UnmarshalJSON(b []byte) error {
	type plain Rule
	var v struct {
		plain
		Delay string `json:"delay,omitempty"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Rule(v.plain)
	if v.Delay != "" {
		d, err := time.ParseDuration(v.Delay)
		if err != nil {
			return fmt.Errorf("faulty: rule delay: %w", err)
		}
		r.Delay = d
	}
	return r.Validate()
}

// Validate reports whether r is usable.
func (r Rule) Validate() error {
	switch {
	case r.Op == 0 || r.Op&^OpAll != 0:
		return fmt.Errorf("faulty: rule: bad op %v", r.Op)
	case r.Prob < 0 || r.Prob > 1:
		return fmt.Errorf("faulty: rule: prob %v not in [0, 1]", r.Prob)
	case r.Count < 0 || r.After < 0 || r.MinSize < 0 || r.Delay < 0:
		return errors.New("faulty: rule: negative count, after, min_size or delay")
	case r.Keep < 0 || r.Keep >= 1:
		return fmt.Errorf("faulty: rule: keep %v not in [0, 1)", r.Keep)
	}
	switch r.Fault {
	case EIO, NoSpace, Offline, Flip:
	case Slow:
		if r.Delay == 0 {
			return errors.New("faulty: rule: slow without delay")
		}
	case Torn, Lost:
		if r.Op != OpCommit {
			return fmt.Errorf("faulty: rule: %s applies to op commit only", r.Fault)
		}
	default:
		return fmt.Errorf("faulty: rule: unknown fault %q", r.Fault)
	}
	return nil
}

// Plan is the whole fault configuration of one Driver.
type Plan struct {
	Rules []Rule `json:"rules,omitempty"`
	// Bandwidth caps the bytes per second of shard Writes and shard
	// stream Reads together, as one disk's throughput is shared; 0
	// means no cap. The cap is strict: idle time earns no burst.
	Bandwidth int64 `json:"bandwidth,omitempty"`
}

// Validate reports whether p is usable.
func (p Plan) Validate() error {
	if p.Bandwidth < 0 {
		return errors.New("faulty: negative bandwidth")
	}
	for i, r := range p.Rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("rule %d: %w", i, err)
		}
	}
	return nil
}

// Driver is a driver.Driver injecting faults into the calls to the Driver
// it wraps. It is safe for concurrent use if the wrapped Driver is. Create
// it with New; it starts with no faults.
type Driver struct {
	d driver.Driver

	mu    sync.Mutex // guards the following fields
	rng   *rand.Rand
	rules []*rule

	bw       limiter
	injected [8]atomic.Int64 // by fault, see faultIndex
}

var _ driver.Driver = (*Driver)(nil)

// rule is a Rule with its counters.
type rule struct {
	Rule
	seen, fired int
}

// New returns a Driver wrapping d that injects nothing until SetRules or
// Apply; its random choices are drawn from a generator seeded with seed.
func New(d driver.Driver, seed uint64) *Driver {
	return &Driver{d: d, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Unwrap returns the wrapped Driver.
func (f *Driver) Unwrap() driver.Driver { return f.d }

// SetRules replaces the rules (and their counters) with rules; none stops
// every injection but the bandwidth cap. It panics on an invalid rule.
func (f *Driver) SetRules(rules ...Rule) {
	rs := make([]*rule, len(rules))
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			panic(err)
		}
		rs[i] = &rule{Rule: r}
	}
	f.mu.Lock()
	f.rules = rs
	f.mu.Unlock()
}

// SetBandwidth caps shard Writes and stream Reads together at bytesPerSec
// bytes per second; 0 removes the cap.
func (f *Driver) SetBandwidth(bytesPerSec int64) { f.bw.setRate(bytesPerSec) }

// Apply sets the rules and the bandwidth cap of p.
func (f *Driver) Apply(p Plan) error {
	if err := p.Validate(); err != nil {
		return err
	}
	f.SetRules(p.Rules...)
	f.SetBandwidth(p.Bandwidth)
	return nil
}

var faults = []Fault{EIO, NoSpace, Offline, Torn, Lost, Flip, Slow}

func faultIndex(x Fault) int {
	for i, y := range faults {
		if x == y {
			return i
		}
	}
	return len(faults)
}

// Injected returns how many times each fault has been injected so far.
func (f *Driver) Injected() map[Fault]int64 {
	m := make(map[Fault]int64)
	for i, x := range faults {
		if n := f.injected[i].Load(); n > 0 {
			m[x] = n
		}
	}
	return m
}

// decision is what the rules decided for one call.
type decision struct {
	delay time.Duration
	fault Fault // "" for none (other than Slow)
	keep  float64
}

// Which faults a call can take: Torn and Lost are decided when a shard
// write starts, Flip when data is read or written.
const (
	callFaults = iota // any but Torn, Lost
	openFaults        // any but Torn, Lost, Flip (ReadShard before data)
	tearFaults        // Torn and Lost only
)

// decide runs the rules on one call of op with size bytes (-1: no size),
// considering the faults of class.
func (f *Driver) decide(op Op, size int, class int) decision {
	var dc decision
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		if r.Op&op == 0 || (r.Fault == Torn || r.Fault == Lost) != (class == tearFaults) || class == openFaults && r.Fault == Flip {
			continue
		}
		if size >= 0 && size < r.MinSize {
			continue
		}
		if dc.fault != "" && r.Fault != Slow {
			continue
		}
		r.seen++
		if r.seen <= r.After || (r.Count > 0 && r.fired >= r.Count) {
			continue
		}
		if r.Prob > 0 && r.Prob < 1 && f.rng.Float64() >= r.Prob {
			continue
		}
		r.fired++
		f.injected[faultIndex(r.Fault)].Add(1)
		if r.Fault == Slow {
			dc.delay += r.Delay
			continue
		}
		dc.fault, dc.keep = r.Fault, r.Keep
	}
	return dc
}

// intn returns a random int in [0, n).
func (f *Driver) intn(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.IntN(n)
}

// flip inverts one random bit of p.
func (f *Driver) flip(p []byte) {
	if len(p) == 0 {
		return
	}
	i := f.intn(len(p) * 8)
	p[i/8] ^= 1 << (i % 8)
}

// errFor returns the error a call of op fails with under fault x, or nil.
func errFor(op Op, x Fault) error {
	switch x {
	case EIO, Torn:
		return fmt.Errorf("%w: %s: %w", ErrInjected, op, syscall.EIO)
	case NoSpace:
		return fmt.Errorf("%w: %s: %w: %w", ErrInjected, op, driver.ErrNoSpace, syscall.ENOSPC)
	case Offline:
		return fmt.Errorf("%w: %s: %w", ErrInjected, op, driver.ErrOffline)
	}
	return nil
}

// before decides the faults of a call of op with size bytes (-1: no
// size), waits out the delay and returns the fault's error, if any, and
// the decision (for Flip).
func (f *Driver) before(ctx context.Context, op Op, size int) (decision, error) {
	return f.beforeClass(ctx, op, size, callFaults)
}

func (f *Driver) beforeClass(ctx context.Context, op Op, size, class int) (decision, error) {
	dc := f.decide(op, size, class)
	if dc.delay > 0 {
		if err := sleep(ctx, dc.delay); err != nil {
			return dc, err
		}
	}
	return dc, errFor(op, dc.fault)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Info returns the wrapped Driver's Info.
func (f *Driver) Info(ctx context.Context) (driver.Info, error) {
	if _, err := f.before(ctx, OpInfo, -1); err != nil {
		return driver.Info{}, err
	}
	return f.d.Info(ctx)
}

// Probe calls the wrapped Driver's Probe method if it has one (as
// *local.Driver does), so a server's health loop still reaches it.
func (f *Driver) Probe(ctx context.Context) error {
	if p, ok := f.d.(interface{ Probe(context.Context) error }); ok {
		return p.Probe(ctx)
	}
	return nil
}

// CreateShard starts a shard write on the wrapped Driver.
func (f *Driver) CreateShard(ctx context.Context, s driver.Shard) (driver.ShardWriter, error) {
	if _, err := f.before(ctx, OpCreate, -1); err != nil {
		return nil, err
	}
	tear := f.decide(OpCommit, -1, tearFaults)
	w, err := f.d.CreateShard(ctx, s)
	if err != nil {
		return nil, err
	}
	fw := &writer{f: f, w: w, ctx: ctx, tear: tear.fault, keep: tear.keep}
	if fw.keep == 0 {
		fw.keep = 0.5
	}
	return fw, nil
}

// writeChunk is the most bytes a Write or stream Read passes through the
// bandwidth cap at once.
const writeChunk = 256 << 10

// writer injects faults into a ShardWriter.
type writer struct {
	f    *Driver
	w    driver.ShardWriter
	ctx  context.Context // CreateShard's: Write has no ctx of its own
	tear Fault           // Torn or Lost if decided at CreateShard, else ""
	keep float64

	mu   sync.Mutex // guards held
	held []byte     // with tear set: the last Write's bytes, not yet passed on
}

func (w *writer) Write(p []byte) (int, error) {
	dc, err := w.f.before(w.ctx, OpWrite, len(p))
	if err != nil {
		return 0, err
	}
	data := p
	if dc.fault == Flip || w.tear != "" {
		data = append([]byte(nil), p...)
		if dc.fault == Flip {
			w.f.flip(data)
		}
	}
	if w.tear != "" {
		w.mu.Lock()
		defer w.mu.Unlock()
		prev := w.held
		w.held = data
		if err := w.pass(prev); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if err := w.pass(data); err != nil {
		return 0, err // a failed Write fails the shard: the count does not matter
	}
	return len(p), nil
}

// pass writes p to the wrapped writer through the bandwidth cap.
func (w *writer) pass(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), writeChunk)
		if err := w.f.bw.wait(w.ctx, n); err != nil {
			return err
		}
		if _, err := w.w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (w *writer) Commit(ctx context.Context) error {
	if _, err := w.f.before(ctx, OpCommit, -1); err != nil {
		w.w.Abort()
		return err
	}
	if w.tear == "" {
		return w.w.Commit(ctx)
	}
	w.mu.Lock()
	held := w.held
	w.held = nil
	w.mu.Unlock()
	if err := w.pass(held[:int(float64(len(held))*w.keep)]); err != nil {
		w.w.Abort()
		return err
	}
	if err := w.w.Commit(ctx); err != nil {
		return err
	}
	return errFor(OpCommit, w.tear) // nil for Lost
}

func (w *writer) Abort() error { return w.w.Abort() }

// ReadShard reads shard s from the wrapped Driver.
func (f *Driver) ReadShard(ctx context.Context, s driver.Shard, off, length int64) (io.ReadCloser, error) {
	if _, err := f.beforeClass(ctx, OpRead, -1, openFaults); err != nil {
		return nil, err
	}
	rc, err := f.d.ReadShard(ctx, s, off, length)
	if err != nil {
		return nil, err
	}
	return &reader{f: f, r: rc, ctx: ctx}, nil
}

// reader injects faults into a ReadShard stream.
type reader struct {
	f   *Driver
	r   io.ReadCloser
	ctx context.Context
}

func (r *reader) Read(p []byte) (int, error) {
	dc, err := r.f.before(r.ctx, OpRead, -1)
	if err != nil {
		return 0, err
	}
	if r.f.bw.on() {
		p = p[:min(len(p), writeChunk)]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if dc.fault == Flip {
			r.f.flip(p[:n])
		}
		if werr := r.f.bw.wait(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (r *reader) Close() error { return r.r.Close() }

// DeleteShard deletes shard s on the wrapped Driver.
func (f *Driver) DeleteShard(ctx context.Context, s driver.Shard) error {
	if _, err := f.before(ctx, OpDeleteShard, -1); err != nil {
		return err
	}
	return f.d.DeleteShard(ctx, s)
}

// PutRecord stores r on the wrapped Driver.
func (f *Driver) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if _, err := f.before(ctx, OpPutRecord, len(r.Data)); err != nil {
		return driver.Record{}, false, err
	}
	return f.d.PutRecord(ctx, r)
}

// GetRecord reads the record under key from the wrapped Driver.
func (f *Driver) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	dc, err := f.before(ctx, OpGetRecord, -1)
	if err != nil {
		return driver.Record{}, err
	}
	r, err := f.d.GetRecord(ctx, key)
	if err == nil && dc.fault == Flip {
		r.Data = append([]byte(nil), r.Data...)
		f.flip(r.Data)
	}
	return r, err
}

// DeleteRecord deletes the record under key on the wrapped Driver.
func (f *Driver) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	if _, err := f.before(ctx, OpDeleteRecord, -1); err != nil {
		return err
	}
	return f.d.DeleteRecord(ctx, key, v)
}

// ListRecords lists records of the wrapped Driver. A Flip changes the data
// of one listed record.
func (f *Driver) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	dc, err := f.before(ctx, OpList, -1)
	if err != nil {
		return nil, err
	}
	rs, err := f.d.ListRecords(ctx, prefix, after, limit)
	if err == nil && dc.fault == Flip && len(rs) > 0 {
		i := f.intn(len(rs))
		rs[i].Data = append([]byte(nil), rs[i].Data...)
		f.flip(rs[i].Data)
	}
	return rs, err
}

// limiter caps a byte rate. Callers reserve their bytes in turn and wait
// until the cap lets them through; idle time earns no credit.
type limiter struct {
	mu   sync.Mutex // guards the following fields
	rate int64      // bytes per second; 0: no cap
	next time.Time  // when the bytes reserved so far have passed the cap
}

func (l *limiter) setRate(r int64) {
	l.mu.Lock()
	l.rate = max(r, 0)
	l.mu.Unlock()
}

func (l *limiter) on() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate > 0
}

// wait reserves n bytes and waits until they are through the cap.
func (l *limiter) wait(ctx context.Context, n int) error {
	l.mu.Lock()
	if l.rate <= 0 {
		l.mu.Unlock()
		return nil
	}
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(float64(n) / float64(l.rate) * float64(time.Second)))
	until := l.next
	l.mu.Unlock()
	if d := time.Until(until); d > 0 {
		return sleep(ctx, d)
	}
	return ctx.Err()
}
