package metrics

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultaire/vaultaire/engine"
)

// The collectors below call their provider at every scrape and report
// what it returns as constant metrics.

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

var (
	encodeSecondsDesc  = desc("erasure_encode_seconds_total", "Time spent streaming bodies through erasure encoding.")
	encodesDesc        = desc("erasure_encodes_total", "Bodies erasure-encoded (puts and parts).")
	decodeSecondsDesc  = desc("erasure_decode_seconds_total", "Time spent decoding reads.")
	decodesDesc        = desc("erasure_decodes_total", "Ranges decoded.")
	degradedReadsDesc  = desc("degraded_reads_total", "Reads that needed parity or met a bad shard.")
	repairsDesc        = desc("repairs_total", "Artifacts healed.")
	repairedShardsDesc = desc("repaired_shards_total", "Shards rewritten by healing.")
	healQueueDesc      = desc("heal_queue", "Artifacts waiting to be healed.")
	healFailuresDesc   = desc("heal_failures_total", "Heal attempts that failed; the artifact stays queued and is retried with backoff.")
	healDroppedDesc    = desc("heal_queue_dropped_total", "Artifacts not queued for healing because the queue was full (the next scan finds them again).")
	tierMovedDesc      = desc("tier_moved_total", "Artifacts the tier storage policy moved to remote drives.")
	tierBytesDesc      = desc("tier_moved_bytes_total", "Bytes (before erasure coding) of the artifacts the tier storage policy moved to remote drives.")
	relayoutMovedDesc  = desc("relayout_moved_total", "Artifact versions moved into their container's layout after its storage policy changed (to or from hybrid).")
	relayoutBytesDesc  = desc("relayout_moved_bytes_total", "Bytes (before erasure coding) of the artifact versions moved into their container's new layout.")
)

// engineCollector reports engine.Stats.
type engineCollector struct{ stats func() engine.Stats }

func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{encodeSecondsDesc, encodesDesc, decodeSecondsDesc, decodesDesc,
		degradedReadsDesc, repairsDesc, repairedShardsDesc, healQueueDesc, healFailuresDesc, healDroppedDesc, tierMovedDesc, tierBytesDesc, relayoutMovedDesc, relayoutBytesDesc} {
		ch <- d
	}
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	counter(encodeSecondsDesc, s.EncodeSeconds)
	counter(encodesDesc, float64(s.Encodes))
	counter(decodeSecondsDesc, s.DecodeSeconds)
	counter(decodesDesc, float64(s.Decodes))
	counter(degradedReadsDesc, float64(s.DegradedReads))
	counter(repairsDesc, float64(s.Repairs))
	counter(repairedShardsDesc, float64(s.RepairedShards))
	counter(healFailuresDesc, float64(s.HealFailures))
	counter(healDroppedDesc, float64(s.HealDropped))
	counter(tierMovedDesc, float64(s.TierMoved))
	counter(tierBytesDesc, float64(s.TierBytes))
	counter(relayoutMovedDesc, float64(s.RelayoutMoved))
	counter(relayoutBytesDesc, float64(s.RelayoutBytes))
	ch <- prometheus.MustNewConstMetric(healQueueDesc, prometheus.GaugeValue, float64(s.HealQueue))
}

var (
	driveInfoDesc   = desc("drive_info", "Always 1: a drive's node and class.", "drive", "node", "class")
	driveOnlineDesc = desc("drive_online", "Whether a drive is online (1) or not (0).", "drive", "node")
	driveUsedDesc   = desc("drive_used_bytes", "Bytes used on a drive.", "drive", "node")
	driveFreeDesc   = desc("drive_free_bytes", "Bytes free on a drive.", "drive", "node")
	driveTotalDesc  = desc("drive_total_bytes", "A drive's capacity in bytes.", "drive", "node")
)

// driveCollector reports DriveSamples, giving the provider timeout to
// answer.
type driveCollector struct {
	drives  func(context.Context) []DriveSample
	timeout time.Duration
}

func (c driveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{driveInfoDesc, driveOnlineDesc, driveUsedDesc, driveFreeDesc, driveTotalDesc} {
		ch <- d
	}
}

func (c driveCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	seen := make(map[string]bool)
	for _, d := range c.drives(ctx) {
		if seen[d.ID] {
			continue // a repeated label set would fail the whole scrape
		}
		seen[d.ID] = true
		gauge := func(desc *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, d.ID, d.Node)
		}
		ch <- prometheus.MustNewConstMetric(driveInfoDesc, prometheus.GaugeValue, 1, d.ID, d.Node, d.Class)
		gauge(driveOnlineDesc, boolValue(d.Online))
		gauge(driveUsedDesc, float64(d.Used))
		gauge(driveFreeDesc, float64(d.Free))
		gauge(driveTotalDesc, float64(d.Total))
	}
}

// RaftStates are the raft_state label values.
var RaftStates = []string{"leader", "follower", "candidate", "shutdown"}

var (
	raftStateDesc       = desc("raft_state", "1 for this node's current Raft state, 0 for the others.", "state")
	raftTermDesc        = desc("raft_term", "The current Raft term.")
	raftCommitDesc      = desc("raft_commit_index", "The highest Raft log index known committed.")
	raftAppliedDesc     = desc("raft_applied_index", "The highest Raft log index applied to the state machine.")
	raftLastContactDesc = desc("raft_last_contact_seconds", "Time since the Raft leader was last heard from (0 on the leader).")
	raftVotersDesc      = desc("raft_voters", "Voting servers in the Raft configuration.")
	raftNonVotersDesc   = desc("raft_nonvoters", "Non-voting servers in the Raft configuration.")
)

// raftCollector reports a RaftSample.
type raftCollector struct{ raft func() RaftSample }

func (c raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{raftStateDesc, raftTermDesc, raftCommitDesc, raftAppliedDesc,
		raftLastContactDesc, raftVotersDesc, raftNonVotersDesc} {
		ch <- d
	}
}

func (c raftCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.raft()
	state := strings.ToLower(s.State) // hashicorp/raft's RaftState.String is "Leader"
	for _, st := range RaftStates {
		ch <- prometheus.MustNewConstMetric(raftStateDesc, prometheus.GaugeValue, boolValue(st == state), st)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(raftTermDesc, float64(s.Term))
	gauge(raftCommitDesc, float64(s.CommitIndex))
	gauge(raftAppliedDesc, float64(s.AppliedIndex))
	gauge(raftLastContactDesc, s.LastContact.Seconds())
	gauge(raftVotersDesc, float64(s.Voters))
	gauge(raftNonVotersDesc, float64(s.NonVoters))
}

var membersDesc = desc("gossip_members", "Gossip members by state.", "state")

// membersCollector reports gossip member counts.
type membersCollector struct{ members func() map[string]int }

func (c membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- membersDesc }

func (c membersCollector) Collect(ch chan<- prometheus.Metric) {
	for state, n := range c.members() {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(n), state)
	}
}

var (
	scrubBytesDesc    = desc("scrub_bytes_total", "Bytes of shards the scrubber verified on a drive.", "drive")
	scrubShardsDesc   = desc("scrub_shards_total", "Shards the scrubber verified on a drive.", "drive")
	scrubCorruptDesc  = desc("scrub_corrupt_total", "Shards the scrubber found corrupt or missing on a drive.", "drive")
	scrubRepairedDesc = desc("scrub_repaired_total", "Corrupt shards the scrubber had rebuilt at once (the rest wait in the heal queue).", "drive")
	scrubPassesDesc   = desc("scrub_passes_total", "Full scrub passes completed over a drive.", "drive")
	scrubProgressDesc = desc("scrub_pass_progress", "How far the scrub pass in progress over a drive is, 0 to 1.", "drive")
)

// scrubCollector reports the scrubber's engine.ScrubStatus per drive.
type scrubCollector struct{ scrub func() []engine.ScrubStatus }

func (c scrubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{scrubBytesDesc, scrubShardsDesc, scrubCorruptDesc, scrubRepairedDesc, scrubPassesDesc, scrubProgressDesc} {
		ch <- d
	}
}

func (c scrubCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.scrub() {
		id := string(s.Drive)
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), id)
		}
		counter(scrubBytesDesc, s.Bytes)
		counter(scrubShardsDesc, s.Shards)
		counter(scrubCorruptDesc, s.Corrupt)
		counter(scrubRepairedDesc, s.Repaired)
		counter(scrubPassesDesc, s.Passes)
		ch <- prometheus.MustNewConstMetric(scrubProgressDesc, prometheus.GaugeValue, s.Progress(), id)
	}
}

var (
	tenantStoredDesc    = desc("tenant_stored_bytes", "Bytes a tenant stores.", "tenant")
	tenantArtifactsDesc = desc("tenant_artifacts", "Artifacts a tenant stores.", "tenant")
)

// usageCollector reports TenantUsage under the tenant cap shared with the
// request series; tenants beyond it are summed under OtherTenant.
type usageCollector struct {
	usage   func() []TenantUsage
	tenants *tenantSet
}

func (c usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tenantStoredDesc
	ch <- tenantArtifactsDesc
}

func (c usageCollector) Collect(ch chan<- prometheus.Metric) {
	// Largest first, so that if there is room left under the cap the
	// biggest tenants get their own label.
	us := slices.Clone(c.usage())
	slices.SortFunc(us, func(a, b TenantUsage) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), strings.Compare(a.Tenant, b.Tenant))
	})
	type sum struct{ bytes, artifacts int64 }
	var order []string
	sums := make(map[string]*sum)
	for _, u := range us {
		t := c.tenants.label(u.Tenant)
		s := sums[t]
		if s == nil {
			s = &sum{}
			sums[t] = s
			order = append(order, t)
		}
		s.bytes += u.Bytes
		s.artifacts += u.Artifacts
	}
	for _, t := range order {
		ch <- prometheus.MustNewConstMetric(tenantStoredDesc, prometheus.GaugeValue, float64(sums[t].bytes), t)
		ch <- prometheus.MustNewConstMetric(tenantArtifactsDesc, prometheus.GaugeValue, float64(sums[t].artifacts), t)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
