package chaos

// Operation histories and the models porcupine checks them against.
//
// Every object key is a register whose value is the SHA-256 of the bytes
// last written ("" is absent): PUT, multipart Complete and copy write a
// value, DeleteObjects writes "", GET reads one. Every bucket and tenant
// name is a register of "exists" ("1") or not (""): create, delete and
// HEAD / list read and write it. An operation whose outcome is unknown (a
// 5xx, a timeout, a dropped connection) is open-ended: its return is the
// end of time, so it may take effect at any point after its call, or in
// effect never; one answered with a 4xx took no effect.

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

type opKind int

const (
	opWrite  opKind = iota // object PUT, Complete, copy: value
	opDelete               // object delete: value ""
	opRead                 // object GET
	opCreate               // bucket or tenant create
	opRemove               // bucket or tenant delete
	opExists               // bucket HEAD, tenant listing
)

// input is an operation's request. key is "obj:KEY", "bucket:NAME" or
// "tenant:NAME".
type input struct {
	key   string
	kind  opKind
	value string // opWrite: the hash written
	what  string // the API call, for descriptions
	node  string // the node it was sent to
}

// Outcomes.
const (
	outOK      = "ok"
	outFailed  = "failed"  // a 4xx that says nothing changed
	outUnknown = "unknown" // a 5xx, timeout or broken connection
	outExists  = "exists"  // create: it was there already; exists: it is
	outMissing = "missing" // delete: it was not there; exists: it is not
)

// output is an operation's answer: outcome, and for a read the value read.
type output struct {
	outcome string
	value   string
}

// registerModel is the per-key register of objects, buckets and tenants.
var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(input).key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, in, out any) (bool, any) {
		s, i, o := state.(string), in.(input), out.(output)
		if o.outcome == outFailed {
			return true, s
		}
		switch i.kind {
		case opWrite:
			return true, i.value
		case opDelete:
			return true, ""
		case opRead:
			return o.value == s, s
		case opCreate:
			switch o.outcome {
			case outOK:
				return s == "", "1"
			case outExists:
				return s == "1", s
			}
			return true, "1"
		case opRemove:
			switch o.outcome {
			case outOK:
				return s == "1", ""
			case outMissing:
				return s == "", s
			}
			return true, ""
		case opExists:
			return (o.outcome == outExists) == (s == "1"), s
		}
		return false, s
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(input), out.(output)
		switch i.kind {
		case opWrite:
			return fmt.Sprintf("%s %s via %s = %s → %s", i.what, i.key, i.node, short(i.value), o.outcome)
		case opRead:
			return fmt.Sprintf("%s %s via %s → %s", i.what, i.key, i.node, short(o.value))
		}
		return fmt.Sprintf("%s %s via %s → %s", i.what, i.key, i.node, o.outcome)
	},
	DescribeState: func(s any) string { return short(s.(string)) },
}

func short(v string) string {
	switch {
	case v == "":
		return "absent"
	case len(v) > 12:
		return v[:12]
	}
	return v
}

// history records operations with their call and return times.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// values maps a key to every value ever written to it (acknowledged
	// or not) and its size: a read of anything else is half-visible or
	// corrupt.
	values map[string]map[string]int64

	acked, failed, unknown atomic.Int64

	// staleSince, if set, says from when a metadata answer that reports
	// what the node believed (a read, or a create or delete answered
	// "exists" or "missing", which changed nothing) may be stale; its
	// call is moved back there. See staleMetadata.
	staleSince func(in input, out output, call, ret time.Time) (time.Time, bool)
	relaxed    atomic.Int64 // metadata reads so moved
}

func newHistory() *history {
	return &history{start: time.Now(), values: map[string]map[string]int64{}}
}

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

// wrote notes that value (of size bytes) may be written to key.
func (h *history) wrote(key, value string, size int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.values[key] == nil {
		h.values[key] = map[string]int64{}
	}
	h.values[key][value] = size
}

// known reports whether value was ever written to key, and its size.
func (h *history) known(key, value string) (int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	size, ok := h.values[key][value]
	return size, ok
}

// add records an operation called at call. A read that got no answer is
// not recorded (it constrains nothing).
func (h *history) add(in input, out output, call int64) {
	ret := h.now()
	switch out.outcome {
	case outUnknown:
		if in.kind == opRead || in.kind == opExists {
			return
		}
		ret = math.MaxInt64
		h.unknown.Add(1)
	case outFailed:
		h.failed.Add(1)
	default:
		h.acked.Add(1)
	}
	// Reads, and creates and deletes that found the name there or not
	// (and so changed nothing), say what the node believed.
	believed := in.kind == opExists || in.kind == opCreate && out.outcome == outExists || in.kind == opRemove && out.outcome == outMissing
	if believed && h.staleSince != nil {
		if s, ok := h.staleSince(in, out, h.start.Add(time.Duration(call)), h.start.Add(time.Duration(ret))); ok {
			if c := s.Sub(h.start).Nanoseconds(); c < call {
				call = c
				h.relaxed.Add(1)
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: len(h.ops), Input: in, Call: call, Output: out, Return: ret})
}

func (h *history) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}

// check runs porcupine over the history. It returns a description of
// each anomaly (empty if linearizable) and writes a visualization next
// to the test's output when there is one.
func (h *history) check(t *testing.T, label string) []string {
	t.Helper()
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	h.mu.Unlock()
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, 2*time.Minute)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		t.Logf("%s: porcupine timed out on %d operations (counted as checked, not as an anomaly)", label, len(ops))
		return nil
	}
	// Name the keys whose sub-histories are not linearizable.
	var bad []string
	for _, part := range registerModel.Partition(ops) {
		if porcupine.CheckOperationsTimeout(registerModel, part, time.Minute) == porcupine.Illegal {
			key := part[0].Input.(input).key
			bad = append(bad, fmt.Sprintf("%s: %s not linearizable:\n%s", label, key, describe(part)))
		}
	}
	dir := cmp.Or(os.Getenv("VAULT_CHAOS_OUT"), os.TempDir())
	path := filepath.Join(dir, fmt.Sprintf("chaos-%s-%d.html", strings.ReplaceAll(label, "/", "-"), time.Now().UnixNano()))
	if err := porcupine.VisualizePath(registerModel, info, path); err == nil {
		t.Logf("%s: visualization in %s", label, path)
	}
	if len(bad) == 0 {
		bad = []string{label + ": history not linearizable"}
	}
	return bad
}

// describe lists a key's operations in call order with their times.
func describe(ops []porcupine.Operation) string {
	ops = slices.Clone(ops)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	var b strings.Builder
	for _, op := range ops {
		ret := "∞"
		if op.Return != math.MaxInt64 {
			ret = fmt.Sprintf("%.3fs", float64(op.Return)/1e9)
		}
		fmt.Fprintf(&b, "  [%.3fs, %s] %s\n", float64(op.Call)/1e9, ret, registerModel.DescribeOperation(op.Input, op.Output))
	}
	return b.String()
}

// staleGrace bounds how stale a node's metadata answers may be: how long
// after a deletion was acknowledged another node may still report the
// name (replication lag; a lookup that finds a name does not ask the
// leader), and how long after a node is reconnected or resumed it may
// still answer from its state as of being cut off.
const staleGrace = 5 * time.Second

// staleMetadata is the allowance the suites check metadata answers with
// (what the README documents): an answer that a name exists may be up
// to staleGrace old on any node; any answer of a node that was cut off
// or paused (faults, may be nil) may be as old as the start of the cut,
// until staleGrace after it ended.
func staleMetadata(c *testCluster, faults *faultWindows) func(in input, out output, call, ret time.Time) (time.Time, bool) {
	return func(in input, out output, call, ret time.Time) (time.Time, bool) {
		from, ok := time.Time{}, false
		if out.outcome == outExists {
			from, ok = call.Add(-staleGrace), true
		}
		if faults != nil {
			i := slices.IndexFunc(c.nodes, func(n *node) bool { return n.name == in.node })
			if s, cut := faults.since(i, call, ret, staleGrace); cut && (!ok || s.Before(from)) {
				from, ok = s, true
			}
		}
		return from, ok
	}
}
