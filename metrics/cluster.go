package metrics

import "github.com/prometheus/client_golang/prometheus"

// MapSample describes this node's cluster map at scrape time.
type MapSample struct {
	Epoch        uint64 // the current map's epoch
	FenceRefused uint64 // writes this node's drives refused as planned under a stale map (cluster.Fence)
	DrainDrives  int    // drives being drained
	DrainPGsLeft int    // PG slots of kept maps still on draining drives (0: drains done)
}

var (
	mapEpochDesc     = desc("map_epoch", "Epoch of the current cluster map on this node.")
	drainDrivesDesc  = desc("drain_drives", "Drives being drained out of the cluster map.")
	drainPGsLeftDesc = desc("drain_pgs_left", "PG slots of the kept cluster maps still on draining drives; 0 when every drain is done.")
	fenceRefusedDesc = desc("fence_refused_writes_total", "Writes this node's drives refused because they were planned under a stale cluster map epoch.")
)

// mapCollector reports a MapSample.
type mapCollector struct{ sample func() MapSample }

func (c mapCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mapEpochDesc
	ch <- fenceRefusedDesc
	ch <- drainDrivesDesc
	ch <- drainPGsLeftDesc
}

func (c mapCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.sample()
	ch <- prometheus.MustNewConstMetric(mapEpochDesc, prometheus.GaugeValue, float64(s.Epoch))
	ch <- prometheus.MustNewConstMetric(fenceRefusedDesc, prometheus.CounterValue, float64(s.FenceRefused))
	ch <- prometheus.MustNewConstMetric(drainDrivesDesc, prometheus.GaugeValue, float64(s.DrainDrives))
	ch <- prometheus.MustNewConstMetric(drainPGsLeftDesc, prometheus.GaugeValue, float64(s.DrainPGsLeft))
}
