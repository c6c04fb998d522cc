package local

import (
	"strings"

	"github.com/google/btree"
)

// held is a set of mutations held in memory by the record log (committer
// mem and flushing), one per key: a map for lookups and a B-tree for
// listings, which walk it in key order from where they start instead of
// scanning and sorting all of it (review 19 L6).
type held struct {
	byKey map[string]mutation
	order *btree.BTreeG[mutation]
}

func newHeld() *held {
	return &held{
		byKey: make(map[string]mutation),
		order: btree.NewG(32, func(a, b mutation) bool { return a.key < b.key }),
	}
}

// len returns how many keys h holds; a nil h holds none.
func (h *held) len() int {
	if h == nil {
		return 0
	}
	return len(h.byKey)
}

// get returns the mutation of key, if h (which may be nil) holds one.
func (h *held) get(key string) (mutation, bool) {
	if h == nil {
		return mutation{}, false
	}
	m, ok := h.byKey[key]
	return m, ok
}

// set holds m, replacing the mutation of its key, which it returns.
func (h *held) set(m mutation) (old mutation, replaced bool) {
	old, replaced = h.byKey[m.key]
	h.byKey[m.key] = m
	h.order.ReplaceOrInsert(m)
	return old, replaced
}

// ascend calls fn with the mutations of keys with prefix p at or after
// start, in key order, until fn returns false.
func (h *held) ascend(p, start string, fn func(mutation) bool) {
	if h == nil || len(h.byKey) == 0 {
		return
	}
	h.order.AscendGreaterOrEqual(mutation{key: max(p, start)}, func(m mutation) bool {
		return strings.HasPrefix(m.key, p) && fn(m)
	})
}

// all calls fn with every mutation of h in key order.
func (h *held) all(fn func(mutation)) {
	if h == nil {
		return
	}
	h.order.Ascend(func(m mutation) bool {
		fn(m)
		return true
	})
}
