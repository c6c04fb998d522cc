package cluster

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vaultaire/vaultaire/tenant"
)

// This file gossips the tenants' request rates that make rate limits
// cluster-wide (tenant.Traffic): every window each node sends every other
// live node, as memberlist user messages (UDP, encrypted and
// authenticated like all gossip), the rates at which it served each
// tenant in the last window. The messages carry tenant names and rates
// only, never keys or secrets. A lost message costs accuracy for a
// window; a node's reports are forgotten 3 windows after they arrived.

// msgRates tags a user message holding rateReport; the first byte of every
// user message says what it is. Values are append-only.
const msgRates byte = 1

// maxRateMsg bounds a rate message, so that it fits in one UDP datagram
// with memberlist's framing and encryption on any usual MTU.
const maxRateMsg = 1000

// rateReport is one message of a node's rates; a node with many active
// tenants sends several.
type rateReport struct {
	Node  string             `json:"n"`
	Rates map[string]float64 `json:"r"` // tenant → requests per second; 0: stopped
}

// ShareTraffic runs the exchange of t's rates with the other live members
// until ctx ends: every t.Window it rolls t, sends this node's rates to
// every live member and tells t how many nodes are live; reports received
// from the other members are merged into t. Run it in its own goroutine.
func (m *Membership) ShareTraffic(ctx context.Context, t *tenant.Traffic) {
	m.onMsg.Store(&msgHandler{tag: msgRates, fn: func(b []byte) {
		var r rateReport
		if json.Unmarshal(b, &r) != nil || r.Node == "" || r.Node == m.name {
			return
		}
		t.Merge(r.Node, r.Rates)
	}})
	defer m.onMsg.Store(nil)
	tick := time.NewTicker(t.Window())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if m.isClosed() {
			return
		}
		rates := t.Roll()
		var peers []*memberlist.Node
		for _, n := range m.ml.Members() { // the live ones
			if n.Name != m.name {
				peers = append(peers, n)
			}
		}
		t.SetNodes(len(peers) + 1)
		if len(rates) == 0 || len(peers) == 0 {
			continue
		}
		for _, msg := range encodeRates(m.name, rates) {
			for _, p := range peers {
				if err := m.ml.SendBestEffort(p, msg); err != nil {
					m.log.Debug("gossip: rates not sent", "member", p.Name, "err", err)
				}
			}
		}
	}
}

// encodeRates splits rates into tagged messages of at most about
// maxRateMsg bytes each.
func encodeRates(node string, rates map[string]float64) [][]byte {
	var msgs [][]byte
	cur := rateReport{Node: node, Rates: map[string]float64{}}
	size := len(node) + 20
	flush := func() {
		if len(cur.Rates) == 0 {
			return
		}
		b, _ := json.Marshal(cur) // strings and finite floats: cannot fail
		msgs = append(msgs, append([]byte{msgRates}, b...))
		cur.Rates, size = map[string]float64{}, len(node)+20
	}
	for _, name := range slices.Sorted(maps.Keys(rates)) {
		n := len(name) + 30 // "name":rate, with room for escapes and digits
		if size+n > maxRateMsg {
			flush()
		}
		cur.Rates[name] = rates[name]
		size += n
	}
	flush()
	return msgs
}

// msgHandler receives the user messages whose first byte is tag, without
// it.
type msgHandler struct {
	tag byte
	fn  func([]byte)
}

// notifyMsg hands a user message to its handler. memberlist calls it from
// its packet loop: it must not block, and b is not retained.
func (m *Membership) notifyMsg(b []byte) {
	h := m.onMsg.Load()
	if h == nil || len(b) == 0 || b[0] != h.tag {
		return
	}
	h.fn(b[1:])
}
