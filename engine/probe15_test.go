package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/placement"
)

// Probe 15: attacks on commit a283792 (latest: same-version retry of a
// servable attempt; markUnsettled counting a live inline version on k
// drives as settled). The four interleavings run in the suite; the
// same-key contention probe, which reports 503 counts, is gated behind
// VAULT_PROBE=1.

func probe15(t *testing.T) {
	t.Helper()
	if os.Getenv("VAULT_PROBE") != "1" {
		t.Skip("probe test: set VAULT_PROBE=1")
	}
}

// p15drive is a gated drive with a PutRecord hook: hook returns handled
// to answer the call itself.
type p15drive struct {
	*gated
	hook atomic.Pointer[func(ctx context.Context, r driver.Record) (driver.Record, bool, error, bool)]
}

func (d *p15drive) setHook(f func(ctx context.Context, r driver.Record) (driver.Record, bool, error, bool)) {
	if f == nil {
		d.hook.Store(nil)
		return
	}
	d.hook.Store(&f)
}

func (d *p15drive) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	if h := d.hook.Load(); h != nil {
		if prev, rep, err, handled := (*h)(ctx, r); handled {
			return prev, rep, err
		}
	}
	return d.gated.PutRecord(ctx, r)
}

// p15env is an engine over n gated drives with policy pol, and key's set
// in shard order.
type p15env struct {
	t   *testing.T
	e   *Engine
	set []*p15drive
	key string
	pol placement.Policy
}

func newP15(t *testing.T, key string, n int, pol placement.Policy) *p15env {
	t.Helper()
	byID := map[driver.DriveID]*p15drive{}
	r := newRig(t, rigOptions{drives: n, noSync: true, policy: pol,
		wrap: func(d driver.Driver) driver.Driver {
			g := &p15drive{gated: &gated{Faulty: d.(*drivertest.Faulty)}}
			byID[driveID(t, d)] = g
			return g
		}})
	t.Cleanup(r.e.WaitBackground)
	m := r.e.mapOf()
	var set []*p15drive
	for _, id := range m.Set(m.PGOf("t", "c", key)) {
		set = append(set, byID[id])
	}
	return &p15env{t: t, e: r.e, set: set, key: key, pol: pol}
}

func (p *p15env) put(content string) ArtifactInfo {
	p.t.Helper()
	info, err := p.e.Put(p.t.Context(), "t", "c", p.key, strings.NewReader(content), PutOptions{Size: -1})
	if err != nil {
		p.t.Fatalf("PUT %q: %v", content, err)
	}
	return info
}

// read returns the content served, or "<absent>", or "<err: ...>".
func (p *p15env) read() string {
	p.t.Helper()
	a, err := p.e.Open(p.t.Context(), "t", "c", p.key)
	if errors.Is(err, ErrNoSuchArtifact) {
		return "<absent>"
	}
	if err != nil {
		return "<err: " + err.Error() + ">"
	}
	var buf bytes.Buffer
	if err := a.WriteRange(p.t.Context(), &buf, 0, a.Info.Size); err != nil {
		return "<err: " + err.Error() + ">"
	}
	return buf.String()
}

// inlineRecs PUTs content and returns its records, one per drive.
func (p *p15env) inlineRecs(content string) []*record {
	p.t.Helper()
	p.put(content)
	var recs []*record
	for _, g := range p.set {
		raw, err := g.GetRecord(p.t.Context(), indexPrefix("t", "c")+p.key)
		if err != nil {
			p.t.Fatal(err)
		}
		r, err := unmarshalRecord(raw.Data)
		if err != nil {
			p.t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

// write starts latest for recs' content as version v on mask, under ctx;
// edit, if set, changes the record first.
func (p *p15env) write(ctx context.Context, recs []*record, v driver.Version, mask []bool, edit func(*record)) <-chan error {
	rec := *recs[0]
	rec.Version, rec.Modified = v, time.Now().UnixNano()
	if edit != nil {
		edit(&rec)
	}
	inline := make([][]byte, len(recs))
	for j, r := range recs {
		inline[j] = r.Inline
	}
	m := p.e.mapOf()
	drives, _ := p.e.pgDrives(m, m.PGOf("t", "c", p.key))
	done := make(chan error, 1)
	go func() {
		_, err := p.e.artifactWrite("t", "c", p.key, drives, m.Policy.WriteQuorum()).latest(ctx, &rec, inline, mask)
		done <- err
	}()
	return done
}

// tomb starts a delete (tombstone via latest) as version v on mask.
func (p *p15env) tomb(ctx context.Context, v driver.Version, mask []bool) <-chan error {
	m := p.e.mapOf()
	pg := m.PGOf("t", "c", p.key)
	drives, _ := p.e.pgDrives(m, pg)
	rec := record{Version: v, Deleted: true, Modified: time.Now().UnixNano(),
		Data: m.Policy.Data, Parity: m.Policy.Parity, StripeSize: p.e.cfg.StripeSize, PG: pg}
	done := make(chan error, 1)
	go func() {
		_, err := p.e.artifactWrite("t", "c", p.key, drives, m.Policy.WriteQuorum()).latest(ctx, &rec, nil, mask)
		done <- err
	}()
	return done
}

func all(n int) []bool {
	m := make([]bool, n)
	for i := range m {
		m[i] = true
	}
	return m
}

// lateInlineSetup (4+2, k = wq = 4): an inline write W2 of version v2 is
// taken by drives 0..2, refused as stale by 3 and 4 (a newer version
// there that was rolled back before W2 looked: refuseAsStale), and held on
// drive 5 past the straggler grace (errLate). W2's writer is paused in
// newestAbove (GetRecord of drive 3); then drive 5's record lands: W2's
// version is on k drives. W2 runs under ctx2 (cancel2: its client gives
// up).
func lateInlineSetup(t *testing.T, key string) (p *p15env, w2 <-chan error, v1 driver.Version, cancel2 context.CancelFunc, resume chan struct{}) {
	p = newP15(t, key, 6, placement.Policy{Data: 4, Parity: 2})
	w2Recs := p.inlineRecs("W2, a write whose client gives up")
	p.put("the version before")
	v1, _ = p.e.newVersion() // older than W2's: for a write that arrives later (TestProbe15RefusalByLateInlineCounted)
	v2, _ := p.e.newVersion()
	p.set[3].refuseAsStale(v2)
	p.set[4].refuseAsStale(v2)
	land := make(chan struct{})
	p.set[5].holdThenLand(v2, land)
	entered := make(chan struct{})
	resume = make(chan struct{})
	p.set[3].holdGet(entered, resume)
	ctx2, cancel2 := context.WithCancel(context.Background())
	w2 = p.write(ctx2, w2Recs, v2, all(6), nil)
	select {
	case <-entered: // W2's fanOut returned (drive 5 late), its writer looks at drive 3
	case <-time.After(10 * time.Second):
		t.Fatal("W2 never looked at the drives that refused it")
	}
	close(land)
	waitRecord(t, p.set[5], key, v2) // W2 is on drives 0, 1, 2 and 5: k
	return
}

// TestProbe15RefusalByLateInlineCounted: rule 3 (markUnsettled counts a
// refusal by a live inline version on k drives, "its write is kept") is
// unsound when one of those k records landed after its writer's fanOut
// returned (errLate): latest's forward counts only the drives that took
// it in time (took = 3 < k), so a failed W2 is rolled back, late record
// too. A delete W1 older than W2 counted W2's four refusals and was
// acknowledged; after W2's rollback the version before is on k drives
// again and is served: the acknowledged delete is lost.
func TestProbe15RefusalByLateInlineCounted(t *testing.T) {
	const key = "p15-late-inline"
	p, w2, v1, cancel2, resume := lateInlineSetup(t, key)
	// W1, a delete of a version older than W2's (taken before it, e.g.
	// by a node whose clock is a little behind), now runs: drives 0, 1,
	// 2, 5 refuse it for W2 (on k drives: counted as settled), 3 and 4
	// take it.
	if err := <-p.tomb(context.Background(), v1, all(6)); err != nil {
		t.Fatalf("the delete W1: %v (want acknowledged for this probe)", err)
	}
	// W2's client gives up; W2 fails and is rolled back (took 3 < k),
	// its late record on drive 5 too.
	cancel2()
	close(resume)
	err := <-w2
	t.Logf("W2: %v", err)
	p.e.WaitBackground()
	// W2 is newer than the delete: acknowledged (its late record counted),
	// it reads back; failed, it was rolled back and the delete stands.
	want := "<absent>"
	if err == nil {
		want = "W2, a write whose client gives up"
	}
	if got := p.read(); got != want {
		t.Fatalf("after an acknowledged delete and W2 (%v): %q reads back, want %q: the delete counted refusals by W2 (on k drives with one late record) and W2 was rolled back", err, got, want)
	}
}

// TestProbe15LateInlineSeenThenUnseen: the same W2, on k drives with
// its late record, is served by a read, then rolled back: a value seen,
// then unseen (servable counts late drives; forward does not).
func TestProbe15LateInlineSeenThenUnseen(t *testing.T) {
	const key = "p15-late-seen"
	p, w2, _, cancel2, resume := lateInlineSetup(t, key)
	first := p.read()
	cancel2()
	close(resume)
	err := <-w2
	t.Logf("W2: %v", err)
	p.e.WaitBackground()
	second := p.read()
	if first != second {
		t.Fatalf("a read served %q, a later read (no write in between acknowledged) %q: seen, then unseen", first, second)
	}
}

// TestProbe15ReusedInlineServedTwice: servable says a live inline
// version on fewer than k drives cannot have been served, but a read
// serves one (Head/Open, then its write-back) when older records of the
// same bytes lend it their inline shards (reusedInline: a same-content
// PUT, a metadata or retention change of an inline object). 4+2: W1
// (same bytes as the version before, another content type) lands on
// drives 0 and 1 only, drives 2 and 3 refuse it as stale (a newer
// version rolled back before W1 looked), 4 and 5 are cut off. A read
// answered by drives 0..3 serves W1 (2 + 2 unanswered is not below k, no
// older version on k) and writes it back to 2 and 3 with the old
// records' shards; a PUT P is acknowledged after that read (missing
// drives 2 and 3); then W1, which counts itself unservable (2 < k), is
// re-versioned above P.
func TestProbe15ReusedInlineServedTwice(t *testing.T) {
	const key = "p15-reused-inline"
	p := newP15(t, key, 6, placement.Policy{Data: 4, Parity: 2})
	xRecs := p.inlineRecs("same bytes")
	p.put("same bytes") // the version before: the same bytes, content type default
	v1, _ := p.e.newVersion()
	p.set[2].refuseAsStale(v1)
	p.set[3].refuseAsStale(v1)
	p.set[4].SetOffline(true)
	p.set[5].SetOffline(true)
	entered, resume := make(chan struct{}), make(chan struct{})
	p.set[2].holdGet(entered, resume)
	w1 := p.write(context.Background(), xRecs, v1, all(6), func(r *record) { r.ContentType = "application/x-w1" })
	<-entered
	a, err := p.e.Open(t.Context(), "t", "c", key)
	if err != nil {
		t.Fatalf("read during W1: %v", err)
	}
	seen := a.Info.ContentType
	t.Logf("read during W1 served version %v (W1 is %v), content type %q", a.Info.Version, v1, seen)
	p.set[4].SetOffline(false)
	p.set[5].SetOffline(false)
	p.set[2].SetOffline(true)
	p.set[3].SetOffline(true)
	pInfo := p.put("P, acknowledged after that read")
	p.set[2].SetOffline(false)
	p.set[3].SetOffline(false)
	close(resume)
	err = <-w1
	t.Logf("W1: %v; P version %v", err, pInfo.Version)
	p.e.WaitBackground()
	got := p.read()
	if seen == "application/x-w1" && got != "P, acknowledged after that read" {
		b, _ := p.e.Head(t.Context(), "t", "c", key)
		t.Fatalf("a read served W1 (%q), P was acknowledged after it, now %q (content type %q, version %v) reads back: W1 took effect twice", seen, got, b.ContentType, b.Version)
	}
	if seen != "application/x-w1" {
		t.Logf("the read did not serve W1: interleaving not reproduced")
	}
}

// TestProbe15SameVersionRetryHangs: the same-version retry puts to the
// drives whose refusal is unsettled with need = wq and fewer drives
// started than that, so fanOut never starts a straggler grace: one hung
// drive holds the request until its ctx ends. 2+2 (k = 2, wq = 3): a
// delete lands on drives 0 and 1; 2 and 3 refuse it as stale (a newer
// version rolled back before it looked); on the retry drive 2 hangs.
func TestProbe15SameVersionRetryHangs(t *testing.T) {
	const key = "p15-retry-hang"
	p := newP15(t, key, 4, placement.Policy{Data: 2, Parity: 2})
	p.put("the version before")
	v, _ := p.e.newVersion()
	var calls atomic.Int32
	p.set[2].setHook(func(ctx context.Context, r driver.Record) (driver.Record, bool, error, bool) {
		if r.Version != v {
			return driver.Record{}, false, nil, false
		}
		if calls.Add(1) == 1 {
			return driver.Record{}, false, fmt.Errorf("probe: %w", driver.ErrStale), true
		}
		<-ctx.Done() // a hung drive
		return driver.Record{}, false, ctx.Err(), true
	})
	p.set[3].refuseAsStale(v)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	began := time.Now()
	err := <-p.tomb(ctx, v, all(4))
	took := time.Since(began)
	t.Logf("delete: %v after %v", err, took)
	if took > 3*time.Second {
		t.Fatalf("a delete with one hung drive (of 4, 2+2) took %v: held until its ctx ended (straggler grace never started in the same-version retry)", took)
	}
}

// ---- same-key contention: 503 counts and a register-model check ----

type p15in struct {
	kind  int // 0 write, 1 delete, 2 read
	value string
}

type p15out struct {
	unknown bool // ErrWriteQuorum or another error: may or may not take effect
	value   string
}

var p15model = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, in, out any) (bool, any) {
		s, i, o := state.(string), in.(p15in), out.(p15out)
		switch i.kind {
		case 0:
			return true, i.value
		case 1:
			return true, ""
		}
		return o.value == s, s
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(p15in), out.(p15out)
		switch i.kind {
		case 0:
			return fmt.Sprintf("put %s unknown=%v", i.value, o.unknown)
		case 1:
			return fmt.Sprintf("delete unknown=%v", o.unknown)
		}
		return fmt.Sprintf("read -> %q", o.value)
	},
}

func p15env_int(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestProbe15Contention: many same-key small PUTs and DELETEs on one
// engine, 2+2 on 4 drives and 4+2 on 6; counts the ErrWriteQuorum (503)
// answers and checks each round's history against a register.
func TestProbe15Contention(t *testing.T) {
	probe15(t)
	rounds := p15env_int("P15_ROUNDS", 30)
	workers := p15env_int("P15_WORKERS", 8)
	ops := p15env_int("P15_OPS", 10)
	for _, cfg := range []struct {
		n   int
		pol placement.Policy
	}{{4, placement.Policy{Data: 2, Parity: 2}}, {6, placement.Policy{Data: 4, Parity: 2}}} {
		t.Run(fmt.Sprintf("%d+%d", cfg.pol.Data, cfg.pol.Parity), func(t *testing.T) {
			r := newRig(t, rigOptions{drives: cfg.n, noSync: true, policy: cfg.pol})
			t.Cleanup(r.e.WaitBackground)
			var openErr, bodyErr, puts, putQ, putOther, dels, delQ, delOther, reads, readErr, illegal, timeouts atomic.Int64
			began := time.Now()
			for round := range rounds {
				key := fmt.Sprintf("p15-cont-%d", round)
				start := time.Now()
				now := func() int64 { return time.Since(start).Nanoseconds() }
				var mu sync.Mutex
				var hist []porcupine.Operation
				add := func(c int, in p15in, out p15out, call int64) {
					ret := now()
					if out.unknown {
						ret = math.MaxInt64
					}
					mu.Lock()
					hist = append(hist, porcupine.Operation{ClientId: c, Input: in, Output: out, Call: call, Return: ret})
					mu.Unlock()
				}
				read := func(c int) {
					call := now()
					a, err := r.e.Open(context.Background(), "t", "c", key)
					reads.Add(1)
					if errors.Is(err, ErrNoSuchArtifact) {
						add(c, p15in{kind: 2}, p15out{value: ""}, call)
						return
					}
					if err != nil {
						readErr.Add(1)
						if openErr.Add(1) <= 3 {
							t.Logf("read (open): %v", err)
						}
						return
					}
					var buf bytes.Buffer
					if err := a.WriteRange(context.Background(), &buf, 0, a.Info.Size); err != nil {
						readErr.Add(1)
						if bodyErr.Add(1) <= 3 {
							t.Logf("read (body): %.200s", err.Error())
						}
						return
					}
					add(c, p15in{kind: 2}, p15out{value: buf.String()}, call)
				}
				var wg sync.WaitGroup
				gate := make(chan struct{})
				for w := range workers {
					wg.Go(func() {
						<-gate
						rng := mrand.New(mrand.NewPCG(uint64(round), uint64(w)))
						for i := range ops {
							switch x := rng.IntN(100); {
							case x < 55:
								val := fmt.Sprintf("v-%d-%d-%d", round, w, i)
								call := now()
								_, err := r.e.Put(context.Background(), "t", "c", key, strings.NewReader(val), PutOptions{Size: int64(len(val))})
								puts.Add(1)
								switch {
								case errors.Is(err, ErrWriteQuorum):
									if putQ.Add(1) <= 4 {
										t.Logf("put 503: %v", err)
									}
								case err != nil:
									putOther.Add(1)
									t.Logf("put: %v", err)
								}
								add(w, p15in{kind: 0, value: val}, p15out{unknown: err != nil}, call)
							case x < 80:
								call := now()
								err := r.e.Delete(context.Background(), "t", "c", key)
								dels.Add(1)
								switch {
								case errors.Is(err, ErrWriteQuorum):
									if delQ.Add(1) <= 4 {
										t.Logf("delete 503: %v", err)
									}
								case err != nil:
									delOther.Add(1)
									t.Logf("delete: %v", err)
								}
								add(w, p15in{kind: 1}, p15out{unknown: err != nil}, call)
							default:
								read(w)
							}
						}
					})
				}
				close(gate)
				wg.Wait()
				r.e.WaitBackground()
				read(workers)
				read(workers)
				res, info := porcupine.CheckOperationsVerbose(p15model, hist, 20*time.Second)
				switch res {
				case porcupine.Illegal:
					illegal.Add(1)
					f, _ := os.CreateTemp("", "p15-illegal-*.html")
					if f != nil {
						porcupine.Visualize(p15model, info, f)
						f.Close()
						t.Errorf("round %d (%s): history not linearizable, visualization %s", round, key, f.Name())
					} else {
						t.Errorf("round %d: history not linearizable", round)
					}
				case porcupine.Unknown:
					timeouts.Add(1)
				}
			}
			t.Logf("RESULT %d+%d: rounds=%d workers=%d ops/worker=%d elapsed=%v | PUT %d (503: %d, other err: %d) | DELETE %d (503: %d, other err: %d) | reads %d (errors %d: open %d, body %d) | non-linearizable rounds %d, check timeouts %d",
				cfg.pol.Data, cfg.pol.Parity, rounds, workers, ops, time.Since(began).Round(time.Millisecond),
				puts.Load(), putQ.Load(), putOther.Load(), dels.Load(), delQ.Load(), delOther.Load(), reads.Load(), readErr.Load(), openErr.Load(), bodyErr.Load(), illegal.Load(), timeouts.Load())
		})
	}
}
