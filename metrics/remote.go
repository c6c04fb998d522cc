package metrics

import "github.com/prometheus/client_golang/prometheus"

// RemoteSample is what one remote drive (driver/remote) on this node sent
// to its backend since the node started, as the provider bills it: every
// HTTP attempt, retries included.
type RemoteSample struct {
	Drive     string
	Online    bool              // the breaker is closed and the drive loaded
	Encrypted bool              // what it writes to its backend is encrypted (driver/remote crypt.go)
	Requests  map[string]uint64 // by method: RemoteMethods
	Sent      uint64            // request body bytes
	Received  uint64            // response body bytes
	Retries   uint64            // attempts after the first of a call
	Failures  uint64            // calls that failed after their retries
	Opens     uint64            // times the circuit breaker opened
	// Losses counts the times the drive found its format.json gone and
	// reloaded its index; LostObjects, the objects its verification found
	// gone while format.json was kept.
	Losses, LostObjects uint64
}

// RemoteMethods are the method label values of remote_requests_total:
// PUT, POST, GET of an object, LIST (a GET listing the bucket), HEAD and
// DELETE, the categories providers price.
var RemoteMethods = []string{"PUT", "POST", "GET", "LIST", "HEAD", "DELETE"}

var (
	remoteRequestsDesc = desc("remote_requests_total", "Requests a remote drive sent to its backend, retries included.", "drive", "method")
	remoteSentDesc     = desc("remote_sent_bytes_total", "Request body bytes a remote drive sent to its backend.", "drive")
	remoteRecvDesc     = desc("remote_received_bytes_total", "Response body bytes a remote drive received from its backend.", "drive")
	remoteRetriesDesc  = desc("remote_retries_total", "Retried attempts of a remote drive's calls to its backend.", "drive")
	remoteFailuresDesc = desc("remote_failures_total", "Calls to its backend a remote drive gave up on after retries.", "drive")
	remoteOpensDesc    = desc("remote_breaker_opens_total", "Times a remote drive's circuit breaker opened (the drive went offline).", "drive")
	remoteLossesDesc   = desc("remote_losses_total", "Times a remote drive found its format.json gone from the bucket and reloaded its index from what the bucket holds.", "drive")
	remoteLostDesc     = desc("remote_lost_objects_total", "Objects a remote drive's verification found gone from the bucket while format.json was kept.", "drive")
	remoteOnlineDesc   = desc("remote_online", "Whether a remote drive's backend is usable (1) or not (0).", "drive")
	remoteEncDesc      = desc("remote_encrypted", "Whether a remote drive encrypts what it stores at its provider (1) or stores it in plaintext (0: formatted before encryption, or not loaded).", "drive")
)

// remoteCollector reports RemoteSamples.
type remoteCollector struct{ remotes func() []RemoteSample }

func (c remoteCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{remoteRequestsDesc, remoteSentDesc, remoteRecvDesc, remoteRetriesDesc, remoteFailuresDesc, remoteOpensDesc, remoteLossesDesc, remoteLostDesc, remoteOnlineDesc, remoteEncDesc} {
		ch <- d
	}
}

func (c remoteCollector) Collect(ch chan<- prometheus.Metric) {
	seen := make(map[string]bool)
	for _, r := range c.remotes() {
		if seen[r.Drive] {
			continue // a repeated label set would fail the whole scrape
		}
		seen[r.Drive] = true
		for _, m := range RemoteMethods {
			ch <- prometheus.MustNewConstMetric(remoteRequestsDesc, prometheus.CounterValue, float64(r.Requests[m]), r.Drive, m)
		}
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), r.Drive)
		}
		counter(remoteSentDesc, r.Sent)
		counter(remoteRecvDesc, r.Received)
		counter(remoteRetriesDesc, r.Retries)
		counter(remoteFailuresDesc, r.Failures)
		counter(remoteOpensDesc, r.Opens)
		counter(remoteLossesDesc, r.Losses)
		counter(remoteLostDesc, r.LostObjects)
		ch <- prometheus.MustNewConstMetric(remoteOnlineDesc, prometheus.GaugeValue, boolValue(r.Online), r.Drive)
		ch <- prometheus.MustNewConstMetric(remoteEncDesc, prometheus.GaugeValue, boolValue(r.Encrypted), r.Drive)
	}
}
