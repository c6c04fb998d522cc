package chaos

import (
	"math"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestRegisterModel checks the checker: small hand-made histories that
// the suites must accept or reject. Times are in milliseconds; a return
// of -1 is an open-ended (unknown) operation.
func TestRegisterModel(t *testing.T) {
	type op struct {
		in        input
		out       output
		call, ret int64
	}
	w := func(v, outcome string) (input, output) {
		return input{key: "obj:k", kind: opWrite, value: v, what: "PUT"}, output{outcome: outcome}
	}
	del := func(outcome string) (input, output) {
		return input{key: "obj:k", kind: opDelete, what: "DeleteObjects"}, output{outcome: outcome}
	}
	r := func(v string) (input, output) {
		return input{key: "obj:k", kind: opRead, what: "GET"}, output{outcome: outOK, value: v}
	}
	b := func(kind opKind, outcome string) (input, output) {
		return input{key: "bucket:b", kind: kind, what: "bucket"}, output{outcome: outcome}
	}
	mk := func(f func() (input, output), call, ret int64) op {
		in, out := f()
		return op{in, out, call, ret}
	}
	fn := func(in input, out output) func() (input, output) { return func() (input, output) { return in, out } }
	tests := []struct {
		name string
		ops  []op
		ok   bool
	}{
		{"write then read", []op{mk(fn(w("a", outOK)), 0, 10), mk(fn(r("a")), 20, 30)}, true},
		{"acknowledged write lost", []op{mk(fn(w("a", outOK)), 0, 10), mk(fn(r("")), 20, 30)}, false},
		{"stale read after overwrite", []op{mk(fn(w("a", outOK)), 0, 10), mk(fn(w("b", outOK)), 20, 30), mk(fn(r("a")), 40, 50)}, false},
		{"concurrent read sees either", []op{mk(fn(w("a", outOK)), 0, 10), mk(fn(w("b", outOK)), 20, 50), mk(fn(r("a")), 30, 40)}, true},
		{"unknown write may show later", []op{mk(fn(w("a", outUnknown)), 0, -1), mk(fn(r("")), 20, 30), mk(fn(r("a")), 40, 50)}, true},
		{"unknown write may never show", []op{mk(fn(w("a", outUnknown)), 0, -1), mk(fn(r("")), 20, 30)}, true},
		{"unknown write cannot flicker", []op{mk(fn(w("a", outUnknown)), 0, -1), mk(fn(r("a")), 20, 30), mk(fn(r("")), 40, 50)}, false},
		{"failed write never shows", []op{mk(fn(w("a", outFailed)), 0, 10), mk(fn(r("a")), 20, 30)}, false},
		{"acknowledged delete", []op{mk(fn(w("a", outOK)), 0, 10), mk(fn(del(outOK)), 20, 30), mk(fn(r("a")), 40, 50)}, false},
		{"bucket created twice", []op{mk(fn(b(opCreate, outOK)), 0, 10), mk(fn(b(opCreate, outOK)), 20, 30)}, false},
		{"bucket exists after create", []op{mk(fn(b(opCreate, outOK)), 0, 10), mk(fn(b(opCreate, outExists)), 20, 30), mk(fn(b(opExists, outExists)), 40, 50)}, true},
		{"deleted bucket still seen", []op{mk(fn(b(opCreate, outOK)), 0, 10), mk(fn(b(opRemove, outOK)), 20, 30), mk(fn(b(opExists, outExists)), 40, 50)}, false},
		{"delete of a missing bucket", []op{mk(fn(b(opRemove, outMissing)), 0, 10), mk(fn(b(opCreate, outOK)), 20, 30), mk(fn(b(opRemove, outMissing)), 40, 50)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []porcupine.Operation
			for i, o := range tt.ops {
				ret := o.ret * int64(time.Millisecond)
				if o.ret < 0 {
					ret = math.MaxInt64
				}
				h = append(h, porcupine.Operation{ClientId: i, Input: o.in, Output: o.out, Call: o.call * int64(time.Millisecond), Return: ret})
			}
			if got := porcupine.CheckOperations(registerModel, h); got != tt.ok {
				t.Errorf("linearizable = %v, want %v:\n%s", got, tt.ok, describe(h))
			}
		})
	}
}
