package peer

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Late calls: a call's request carries how long its sender waits for it
// (X-Vault-Timeout) besides when it was sent (the signed X-Vault-Time, by
// the sender's clock). A Server refuses a request other than a GET that
// arrives after its sender gave it up, rather than apply it: a record
// write the engine counted as failed must not land afterwards, as one
// held by a partition and retransmitted by TCP once it healed did (the
// partition suite's "listed, then NoSuchKey": the failed PUT's version
// appeared after reads had answered NoSuchKey).
//
// The two clocks need not agree: per sending host the Server keeps the
// smallest offset between a request's send time and its arrival it has
// seen (the clocks' difference plus the quickest delivery; allowed to
// creep up by driftAllowance), and a request is late if its offset
// exceeds that by more than its timeout. A host whose requests all arrive
// late for a while (relearnAfter of them, over twice the timeout, none on
// time) had its clock stepped: its offset is learnt again.

// arrivals holds the per-host offsets of a Server.
type arrivals struct {
	mu    sync.Mutex // guards hosts
	hosts map[string]*arrivalBase
}

type arrivalBase struct {
	min       time.Duration // the smallest offset, as of at
	at        time.Time
	late      int       // late arrivals since the last on-time one
	lateSince time.Time // the first of them
}

const (
	// driftAllowance: the smallest offset may grow by 1/driftAllowance of
	// the time since it was seen (1 ms per second), for clocks that drift
	// apart.
	driftAllowance = 1000
	// relearnAfter late arrivals in a row, over twice their timeout, make
	// a host's offset learnt again (its clock was stepped).
	relearnAfter = 16
	// maxArrivalHosts bounds the hosts remembered; beyond, all are
	// forgotten and learnt again.
	maxArrivalHosts = 4096
)

// late reports whether a request from host sent at sent (its clock) and
// arriving now (this node's) arrived after its sender gave it up,
// timeout after sending it, and learns from it.
func (a *arrivals) late(host string, sent, now time.Time, timeout time.Duration) bool {
	offset := now.Sub(sent)
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.hosts[host]
	if b == nil {
		if a.hosts == nil || len(a.hosts) >= maxArrivalHosts {
			a.hosts = map[string]*arrivalBase{}
		}
		a.hosts[host] = &arrivalBase{min: offset, at: now}
		return false
	}
	base := b.min + now.Sub(b.at)/driftAllowance
	if timeout <= 0 || offset <= base+timeout {
		if offset < base {
			b.min, b.at = offset, now
		}
		b.late = 0
		return false
	}
	if b.late == 0 {
		b.lateSince = now
	}
	b.late++
	if b.late >= relearnAfter && now.Sub(b.lateSince) > 2*timeout {
		b.min, b.at, b.late = offset, now, 0
		return false
	}
	return true
}

// lateRequest reports whether r, authenticated, arrived after its sender
// gave it up (see arrivals); every request teaches the host's offset.
func (s *Server) lateRequest(r *http.Request) bool {
	ts, err := strconv.ParseInt(r.Header.Get(hdrTime), 10, 64)
	if err != nil {
		return false
	}
	var timeout time.Duration
	if v := r.Header.Get(hdrTimeout); v != "" {
		if ns, err := strconv.ParseInt(v, 10, 64); err == nil && ns > 0 {
			timeout = time.Duration(ns)
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return s.arrivals.late(host, time.Unix(0, ts), s.now(), timeout) && r.Method != http.MethodGet
}
