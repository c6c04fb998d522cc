package metrics

import "github.com/prometheus/client_golang/prometheus"

// MapSample describes this node's cluster map at scrape time.
type MapSample struct {
	Epoch        uint64 // the current map's epoch
	FenceRefused uint64 // writes this node's drives refused as planned under a stale map (cluster.Fence)
	DrainDrives  int    // drives being drained
	DrainPGsLeft int    // PG slots of kept maps still on draining drives (0: drains done)
	// DrainBytesLeft is what the draining drives still hold; DrainRate the
	// bytes per second it fell at lately and DrainETA the seconds left at
	// that rate, both -1 when unknown (cluster.DrainStatus).
	DrainBytesLeft uint64
	DrainRate      float64
	DrainETA       float64
}

var (
	mapEpochDesc       = desc("map_epoch", "Epoch of the current cluster map on this node.")
	drainDrivesDesc    = desc("drain_drives", "Drives being drained out of the cluster map.")
	drainPGsLeftDesc   = desc("drain_pgs_left", "PG slots of the kept cluster maps still on draining drives; 0 when every drain is done.")
	drainBytesLeftDesc = desc("drain_bytes_left", "Bytes the draining drives still hold; 0 when no drive is draining.")
	drainRateDesc      = desc("drain_bytes_per_second", "Rate the draining drives' bytes fell at over the last minutes; -1 when unknown.")
	drainETADesc       = desc("drain_eta_seconds", "Seconds left until the drains are done at the current rate; -1 when unknown, 0 when done.")
	fenceRefusedDesc   = desc("fence_refused_writes_total", "Writes this node's drives refused because they were planned under a stale cluster map epoch.")
)

// mapCollector reports a MapSample.
type mapCollector struct{ sample func() MapSample }

func (c mapCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mapEpochDesc
	ch <- fenceRefusedDesc
	ch <- drainDrivesDesc
	ch <- drainPGsLeftDesc
	ch <- drainBytesLeftDesc
	ch <- drainRateDesc
	ch <- drainETADesc
}

func (c mapCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.sample()
	ch <- prometheus.MustNewConstMetric(mapEpochDesc, prometheus.GaugeValue, float64(s.Epoch))
	ch <- prometheus.MustNewConstMetric(fenceRefusedDesc, prometheus.CounterValue, float64(s.FenceRefused))
	ch <- prometheus.MustNewConstMetric(drainDrivesDesc, prometheus.GaugeValue, float64(s.DrainDrives))
	ch <- prometheus.MustNewConstMetric(drainPGsLeftDesc, prometheus.GaugeValue, float64(s.DrainPGsLeft))
	ch <- prometheus.MustNewConstMetric(drainBytesLeftDesc, prometheus.GaugeValue, float64(s.DrainBytesLeft))
	ch <- prometheus.MustNewConstMetric(drainRateDesc, prometheus.GaugeValue, s.DrainRate)
	ch <- prometheus.MustNewConstMetric(drainETADesc, prometheus.GaugeValue, s.DrainETA)
}
