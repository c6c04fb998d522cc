package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultaire/vaultaire/s3"
)

var (
	connsOpenDesc       = desc("connections_open", "Client connections open on the S3 listeners.")
	connsRefusedDesc    = desc("connections_refused_total", "Client connections refused over a connection cap, by cap: per_ip (answered 429 SlowDown) or total (503).", "cap")
	connsUnansweredDesc = desc("connections_refused_unanswered_total", "Refused client connections closed without an answer, because the most refusals answered at once were under way.")
)

// connCollector reports s3.ConnStats.
type connCollector struct{ stats func() s3.ConnStats }

func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connsOpenDesc
	ch <- connsRefusedDesc
	ch <- connsUnansweredDesc
}

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(connsOpenDesc, prometheus.GaugeValue, float64(s.Open))
	ch <- prometheus.MustNewConstMetric(connsRefusedDesc, prometheus.CounterValue, float64(s.RefusedPerSource), "per_ip")
	ch <- prometheus.MustNewConstMetric(connsRefusedDesc, prometheus.CounterValue, float64(s.RefusedTotal), "total")
	ch <- prometheus.MustNewConstMetric(connsUnansweredDesc, prometheus.CounterValue, float64(s.Unanswered))
}
