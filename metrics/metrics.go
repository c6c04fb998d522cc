package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3"
)

// namespace prefixes every series this package exports.
const namespace = "vaultaire"

// Defaults for Config.
const (
	// DefaultMaxTenants is the default Config.MaxTenants.
	DefaultMaxTenants = 1000
	// DefaultScrapeTimeout is the default Config.ScrapeTimeout.
	DefaultScrapeTimeout = 3 * time.Second
	// maxScrapes is how many scrapes Handler serves at once; more are
	// answered 503, so that an unauthenticated client cannot pile up
	// calls to the providers.
	maxScrapes = 4
)

// OtherTenant is the tenant label value shared by every tenant beyond
// Config.MaxTenants. Tenant names are a-z, 0-9 and '-', so no tenant has it.
const OtherTenant = "_other"

// Config configures Metrics. Every provider is optional: a nil provider
// leaves its series out. Providers are called at scrape time, possibly
// from several scrapes at once, so they must be safe for concurrent use;
// they should be cheap (read counters and snapshots, no I/O) except Drives,
// which may ask the drives and must return once its ctx is done.
type Config struct {
	// MaxTenants caps the distinct tenant label values (not counting ""
	// for unauthenticated requests); later tenants are counted as
	// OtherTenant. Default DefaultMaxTenants.
	MaxTenants int
	// ScrapeTimeout bounds the Drives provider at each scrape; default
	// DefaultScrapeTimeout.
	ScrapeTimeout time.Duration
	// Logger receives errors met while serving a scrape; default
	// slog.Default().
	Logger *slog.Logger

	// Engine returns the erasure engine's running totals (*engine.Engine.Stats).
	Engine func() engine.Stats
	// Drives describes the cluster's drives.
	Drives func(ctx context.Context) []DriveSample
	// Raft describes this node's Raft peer.
	Raft func() RaftSample
	// Members counts the gossip members by state ("alive", "suspect",
	// "dead", "left").
	Members func() map[string]int
	// Usage returns the stored bytes and artifacts of every tenant.
	Usage func() []TenantUsage
	// Scrub returns the scrubber's progress on this node's drives
	// (*engine.Scrubber.Status).
	Scrub func() []engine.ScrubStatus
	// Remotes returns what this node's remote drives sent to their
	// backends.
	Remotes func() []RemoteSample
	// Map describes the cluster map and its fence (cluster mode only).
	Map func() MapSample
	// Conns counts the S3 listeners' client connections, open and
	// refused over the connection caps (*s3.Server.ConnStats).
	Conns func() s3.ConnStats
}

// DriveSample describes one drive at scrape time.
type DriveSample struct {
	ID, Node, Class string
	Online          bool
	Used            uint64 // bytes
	Free            uint64 // bytes
	Total           uint64 // bytes
}

// RaftSample describes this node's Raft peer at scrape time.
type RaftSample struct {
	State        string // "leader", "follower", "candidate" or "shutdown" (any case)
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastContact  time.Duration // since the leader was last heard from; 0 on the leader
	Voters       int
	NonVoters    int
}

// TenantUsage is what a tenant stores.
type TenantUsage struct {
	Tenant    string
	Bytes     int64
	Artifacts int64
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.MaxTenants < 0 {
		return fmt.Errorf("metrics: MaxTenants %d is negative", c.MaxTenants)
	}
	if c.ScrapeTimeout < 0 {
		return errors.New("metrics: ScrapeTimeout is negative")
	}
	if c.MaxTenants == 0 {
		c.MaxTenants = DefaultMaxTenants
	}
	if c.ScrapeTimeout == 0 {
		c.ScrapeTimeout = DefaultScrapeTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Metrics holds a node's metrics registry. It is safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	tenants *tenantSet
	req     requestMetrics
	handler http.Handler
}

var _ s3.Observer = (*Metrics)(nil)

// New returns Metrics with its own registry holding the Go and process
// collectors, the request series and a collector for every provider set in
// cfg. It panics if cfg.Validate fails: the configuration is the caller's.
func New(cfg Config) *Metrics {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		tenants: newTenantSet(cfg.MaxTenants),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.req = newRequestMetrics(m.reg)
	if cfg.Engine != nil {
		m.reg.MustRegister(engineCollector{cfg.Engine})
	}
	if cfg.Drives != nil {
		m.reg.MustRegister(driveCollector{cfg.Drives, cfg.ScrapeTimeout})
	}
	if cfg.Raft != nil {
		m.reg.MustRegister(raftCollector{cfg.Raft})
	}
	if cfg.Members != nil {
		m.reg.MustRegister(membersCollector{cfg.Members})
	}
	if cfg.Remotes != nil {
		m.reg.MustRegister(remoteCollector{cfg.Remotes})
	}
	if cfg.Scrub != nil {
		m.reg.MustRegister(scrubCollector{cfg.Scrub})
	}
	if cfg.Usage != nil {
		m.reg.MustRegister(usageCollector{cfg.Usage, m.tenants})
	}
	if cfg.Map != nil {
		m.reg.MustRegister(mapCollector{cfg.Map})
	}
	if cfg.Conns != nil {
		m.reg.MustRegister(connCollector{cfg.Conns})
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            errorLog{cfg.Logger},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapes,
	})
	return m
}

// Handler serves the registry in the Prometheus exposition formats. A
// collector's error leaves its series out of the scrape (and is logged)
// rather than failing it; beyond 4 scrapes at once it answers 503.
func (m *Metrics) Handler() http.Handler { return m.handler }

// errorLog adapts slog for promhttp.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	l.log.Warn("metrics: scrape", "error", fmt.Sprint(v...))
}
