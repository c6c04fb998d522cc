package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/vaultaire/vaultaire/bench"
	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/engine"
)

// serverFlags are the flags of `vaultd server`.
type serverFlags struct {
	// internodeCA, internodeCert and internodeKey: an operator's CA for
	// internode TLS instead of the one derived from the cluster secret.
	internodeCA, internodeCert, internodeKey string

	name, data, s3Addr, raftAddr, gossip, rpc, join, domain, region, logLevel, events, zone string
	remotes                                                                                 []string
	tlsCert, tlsKey, s3HTTP                                                                 string // HTTPS on --s3 (tls.go)
	// Background loops.
	scanInterval  time.Duration // how often the leader scans for missing records
	healInterval  time.Duration // how often the healer works through its queue
	probeInterval time.Duration // how often each local drive is health-checked
	tierInterval  time.Duration // how often the tier storage policy runs
	relayoutEvery time.Duration // how often the leader looks for containers to re-lay out
	uploadHold    time.Duration // how long an unmoved multipart upload keeps an older map
	relayoutRate  byteSize      // at most this many bytes/s re-laid out
	scrubPeriod   time.Duration // a full scrub pass over each local drive
	scrubRate     byteSize      // at most this many bytes/s scrubbed per drive
	eventsParquet bool
	metricsOpen   bool // serve /_vault/metrics unauthenticated
	maxBuckets    int  // per tenant; negative: no cap
	// Client connection caps (s3.Config.MaxConns, MaxConnsPerIP): 0
	// derives them (from RLIMIT_NOFILE; per IP, a quarter of the total),
	// negative is unlimited.
	maxConns, maxConnsPerIP int
	// Bucket lifecycle: a pass every lifecycleInterval, at most
	// lifecycleRate actions per second; lifecycleDay is a test setting.
	lifecycleInterval, lifecycleDay time.Duration
	lifecycleRate                   float64

	remoteSpecs []remoteSpec // parsed --remote (remote.go)
	adoptForce  bool         // --remote-adopt-force (remote.go)
	reformat    string       // --remote-reformat (remote.go)
	encrypt     string       // --remote-encrypt (remote.go)
}

func parseServerFlags(args []string, stderr io.Writer) (*serverFlags, error) {
	host, _ := os.Hostname()
	f := &serverFlags{}
	fs := flag.NewFlagSet("vaultd server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.name, "name", host, "node name")
	fs.StringVar(&f.data, "data", "./data", "comma-separated data directories, one drive each")
	fs.StringVar(&f.s3Addr, "s3", ":9000", "S3 API listen address")
	fs.StringVar(&f.raftAddr, "raft", "127.0.0.1:9001", "Raft listen and advertise address (a single node does not listen: it only records the address for when it becomes a cluster)")
	fs.StringVar(&f.gossip, "gossip", "", "cluster mode: gossip listen and advertise address, ip:port")
	fs.StringVar(&f.internodeCA, "internode-ca", "", "cluster mode: PEM CA bundle to verify peers' internode TLS certificates against, instead of the CA derived from VAULT_CLUSTER_SECRET (needs --internode-cert and --internode-key; the secret is still required)")
	fs.StringVar(&f.internodeCert, "internode-cert", "", "cluster mode: PEM certificate this node presents on internode TLS, issued by --internode-ca for both server and client auth")
	fs.StringVar(&f.internodeKey, "internode-key", "", "cluster mode: PEM private key of --internode-cert")
	fs.StringVar(&f.rpc, "rpc", "", "cluster mode: internode RPC listen and advertise address, host:port")
	fs.StringVar(&f.join, "join", "", "cluster mode: join the cluster through these nodes' gossip addresses (comma-separated)")
	fs.StringVar(&f.zone, "zone", "", "cluster mode: failure domain of this node's drives (rack or zone); placement spreads each stripe across zones")
	fs.StringVar(&f.domain, "domain", "", "enable virtual-host-style requests: BUCKET.DOMAIN")
	fs.StringVar(&f.region, "region", "us-east-1", "region reported to clients")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.events, "events", "", "directory of the access-event and transaction logs (default: events/ under the first data directory)")
	fs.DurationVar(&f.scanInterval, "scan-interval", engine.ScanEvery, "how often the leader (a single node: the node) scans every container for artifacts a drive misses and queues them for healing")
	fs.IntVar(&f.maxBuckets, "max-buckets", cluster.DefaultMaxContainers, "most buckets one tenant may hold (-1: no cap); in a cluster, the cap of the node a CreateBucket reaches applies")
	fs.IntVar(&f.maxConns, "max-conns", 0, "most client connections open at once (0: half of the open-file limit; -1: no cap); more are answered 503 and closed")
	fs.IntVar(&f.maxConnsPerIP, "max-conns-per-ip", 0, "most client connections from one IPv4 address or IPv6 /64 (0: a quarter of --max-conns; -1: no cap, e.g. behind a load balancer); more are answered 429 SlowDown and closed")
	fs.DurationVar(&f.lifecycleInterval, "lifecycle-interval", time.Hour, "how often the leader (a single node: the node) applies the buckets' lifecycle rules (expiry, noncurrent versions, incomplete uploads)")
	fs.DurationVar(&f.lifecycleDay, "lifecycle-day", 24*time.Hour, "TEST SETTING: the length of a lifecycle \"day\" (e.g. 2s makes a rule of 1 day expire objects after about 2s); leave at 24h in production")
	fs.Float64Var(&f.lifecycleRate, "lifecycle-rate", 50, "most lifecycle actions (and listing pages) per second")
	fs.DurationVar(&f.uploadHold, "upload-hold", engine.DefaultUploadHold, "how long after its last part a multipart upload that migration could not move keeps the older cluster map it lives in, holding up the end of a join or drain (an upload idle for longer answers NoSuchUpload once migration has dropped that map; 0 or less: uploads never hold a map)")
	fs.DurationVar(&f.healInterval, "heal-interval", engine.DefaultHealInterval, "how often the healer repairs the queued artifacts (failed repairs are retried with backoff)")
	fs.DurationVar(&f.tierInterval, "tier-interval", time.Hour, "how often the leader (a single node: the node) moves the artifacts of tier containers past their thresholds to remote drives")
	fs.DurationVar(&f.relayoutEvery, "relayout-interval", 10*time.Second, "how often the leader (a single node: the node) looks for containers whose storage policy changed layout (to or from hybrid) and moves their artifacts into the new layout")
	f.relayoutRate = 64 << 20
	fs.Var(&f.relayoutRate, "relayout-rate", "most bytes per second (before erasure coding) a storage policy change moves into the new layout (e.g. 64MiB)")
	fs.DurationVar(&f.probeInterval, "probe-interval", defaultProbeInterval, "how often each local drive is health-checked; a failed drive goes offline, a recovered or replaced (empty) one comes back")
	fs.DurationVar(&f.scrubPeriod, "scrub-period", engine.DefaultScrubPeriod, "time for one scrub pass, which verifies the checksums of every shard on this node's drives and repairs what fails")
	f.scrubRate = engine.DefaultScrubRate
	fs.Var(&f.scrubRate, "scrub-rate", "most bytes per second the scrubber reads from each drive (e.g. 8MiB)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve S3 over HTTPS on --s3 with this PEM certificate (chain); reloaded on SIGHUP")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert; reloaded on SIGHUP")
	fs.StringVar(&f.s3HTTP, "s3-http", "", "with --tls-cert: also serve S3 over plain HTTP on this address (for health checks; it serves every request, so bind it where only trusted clients reach)")
	fs.BoolVar(&f.metricsOpen, "metrics-open", false, "serve /_vault/metrics to anyone, unauthenticated (it names tenants); by default a scrape needs the bearer token from VAULT_METRICS_TOKEN, the file VAULT_METRICS_TOKEN_FILE or metrics-token in the first data directory (generated, mode 0600), or root's signature")
	fs.BoolVar(&f.eventsParquet, "events-parquet", false, "also convert each rotated access and transaction log file into a Parquet file beside it")
	fs.Func("remote", "remote S3 drive NAME=https://host[:port]/bucket[/prefix]?region=R (repeatable; in a cluster owned by the first node that declares it, reached by the others through it; a node declaring a drive another live node owns is a read-only standby that serves it while the owner is down; keys from VAULT_REMOTE_<NAME>_ACCESS_KEY/_SECRET_KEY or the mode-0600 JSON file VAULT_REMOTE_<NAME>_CREDENTIALS)", func(v string) error {
		f.remotes = append(f.remotes, v)
		return nil
	})
	fs.BoolVar(&f.adoptForce, "remote-adopt-force", false, "cluster mode: adopt this node's --remote drives even from a node gossip shows alive (it is fenced through Raft and stops writing; use when that node is stuck, not gone)")
	fs.StringVar(&f.reformat, "remote-reformat", "", "comma-separated --remote NAMEs whose bucket lost the drive's format.json (the node refuses such a prefix at start): write it again over what the prefix holds and let the healer refill what was lost; for one start, once you checked the bucket and prefix are the drive's")
	fs.StringVar(&f.encrypt, "remote-encrypt", "", "one --remote NAME stored in plaintext (formatted before remote drives were encrypted): delete its objects and format it afresh, encrypted, for the healer to refill as a replaced disk; one drive at a time, the next once the healer is done (heal queue 0); nothing to do on an encrypted drive")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := f.parseRemotes(); err != nil {
		return nil, err
	}
	for flag, d := range map[string]time.Duration{"--scan-interval": f.scanInterval, "--heal-interval": f.healInterval, "--probe-interval": f.probeInterval, "--tier-interval": f.tierInterval, "--relayout-interval": f.relayoutEvery, "--scrub-period": f.scrubPeriod, "--lifecycle-interval": f.lifecycleInterval, "--lifecycle-day": f.lifecycleDay} {
		if d <= 0 {
			return nil, fmt.Errorf("%s %v: want a positive duration", flag, d)
		}
	}
	if f.lifecycleRate <= 0 {
		return nil, fmt.Errorf("--lifecycle-rate %v: want a positive number of actions per second", f.lifecycleRate)
	}
	if f.relayoutRate <= 0 {
		return nil, fmt.Errorf("--relayout-rate %v: want a positive number of bytes per second", f.relayoutRate)
	}
	if f.scrubRate <= 0 {
		return nil, fmt.Errorf("--scrub-rate %d: want a positive number of bytes per second", f.scrubRate)
	}
	if err := tlsFlagsError(f.tlsCert, f.tlsKey, f.s3HTTP); err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(f.raftAddr)
	if err != nil {
		return nil, fmt.Errorf("--raft %q: %w", f.raftAddr, err)
	}
	if n := countSet(f.internodeCA, f.internodeCert, f.internodeKey); n != 0 && (n != 3 || !f.clustered()) {
		return nil, errors.New("--internode-ca, --internode-cert and --internode-key go together, in cluster mode")
	}
	if f.clustered() {
		if f.gossip == "" || f.rpc == "" {
			return nil, errors.New("cluster mode (--join, --gossip or --rpc) needs both --gossip and --rpc")
		}
		for flag, addr := range map[string]string{"--rpc": f.rpc, "--raft": f.raftAddr} {
			if h, _, err := net.SplitHostPort(addr); err != nil {
				return nil, fmt.Errorf("%s %q: %w", flag, addr, err)
			} else if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
				return nil, fmt.Errorf("%s %s: other nodes dial this address, so it needs a reachable host, not %q", flag, addr, h)
			}
		}
		return f, nil
	}
	// A single node does not listen for Raft (cluster.Config without a
	// Secret); --raft is only recorded in its Raft configuration, on
	// loopback as before.
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--raft %s: a single node keeps its Raft address on loopback (it listens for Raft only in cluster mode)", f.raftAddr)
	}
	return f, nil
}

// clustered reports whether the flags ask for cluster mode.
// countSet counts the non-empty strings.
func countSet(s ...string) int {
	n := 0
	for _, v := range s {
		if v != "" {
			n++
		}
	}
	return n
}

func (f *serverFlags) clustered() bool { return f.join != "" || f.gossip != "" || f.rpc != "" }

// byteSize is a flag value in bytes, written as bench.ParseSize reads it:
// 1048576, 512KiB, 8MiB, 1GiB.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(v string) error {
	n, err := bench.ParseSize(v)
	*b = byteSize(n)
	return err
}
