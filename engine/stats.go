package engine

import (
	"sync/atomic"
	"time"
)

// Stats are the engine's running totals since it started, for metrics.
type Stats struct {
	EncodeSeconds  float64 // time spent streaming bodies through erasure encoding
	Encodes        uint64  // bodies encoded (puts and parts)
	DecodeSeconds  float64 // time spent decoding reads
	Decodes        uint64  // ranges decoded
	DegradedReads  uint64  // reads that needed parity or met a bad shard
	Repairs        uint64  // artifacts healed by Heal
	RepairedShards uint64  // shards rewritten by Heal
	HealQueue      int     // artifacts waiting to be healed
	HealFailures   uint64  // heal attempts by RunHealer that failed (the artifact stays queued)
	HealDropped    uint64  // artifacts not queued because the heal queue was full
	WriteBacks     uint64  // reads that wrote the version they served back to a write quorum first
	TierMoved      uint64  // artifacts the tier policy moved to remote drives (TierArtifact)
	TierBytes      uint64  // their bytes (before erasure coding)
	RelayoutMoved  uint64  // artifact versions a storage policy change moved to the container's new layout (RelayoutContainer)
	RelayoutBytes  uint64  // their bytes (before erasure coding)
}

// stats are the counters behind Stats.
type stats struct {
	encodeNanos, encodes atomic.Uint64
	decodeNanos, decodes atomic.Uint64
	degraded             atomic.Uint64
	repairs, shards      atomic.Uint64
	healFailures         atomic.Uint64
	healDropped          atomic.Uint64
	writeBacks           atomic.Uint64
	tierMoved, tierBytes atomic.Uint64
	relayoutMoved        atomic.Uint64
	relayoutBytes        atomic.Uint64
}

func (s *stats) encoded(d time.Duration) {
	s.encodeNanos.Add(uint64(d))
	s.encodes.Add(1)
}

func (s *stats) decoded(d time.Duration) {
	s.decodeNanos.Add(uint64(d))
	s.decodes.Add(1)
}

// Stats returns the engine's running totals.
func (e *Engine) Stats() Stats {
	e.healMu.Lock()
	queued := len(e.heal)
	e.healMu.Unlock()
	return Stats{
		EncodeSeconds:  time.Duration(e.st.encodeNanos.Load()).Seconds(),
		Encodes:        e.st.encodes.Load(),
		DecodeSeconds:  time.Duration(e.st.decodeNanos.Load()).Seconds(),
		Decodes:        e.st.decodes.Load(),
		DegradedReads:  e.st.degraded.Load(),
		Repairs:        e.st.repairs.Load(),
		RepairedShards: e.st.shards.Load(),
		HealQueue:      queued,
		HealFailures:   e.st.healFailures.Load(),
		HealDropped:    e.st.healDropped.Load(),
		WriteBacks:     e.st.writeBacks.Load(),
		TierMoved:      e.st.tierMoved.Load(),
		TierBytes:      e.st.tierBytes.Load(),
		RelayoutMoved:  e.st.relayoutMoved.Load(),
		RelayoutBytes:  e.st.relayoutBytes.Load(),
	}
}

// usage reports a change of a tenant's stored bytes and artifact count to
// Config.OnUsage.
func (e *Engine) usage(tenant string, bytes, artifacts int64) {
	if e.cfg.OnUsage != nil && (bytes != 0 || artifacts != 0) {
		e.cfg.OnUsage(tenant, bytes, artifacts)
	}
}
