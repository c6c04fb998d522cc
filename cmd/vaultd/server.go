package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vaultaire/vaultaire/bench"
	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/local"
	"github.com/vaultaire/vaultaire/driver/peer"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/events"
	"github.com/vaultaire/vaultaire/internal/clustertls"
	"github.com/vaultaire/vaultaire/limits"
	"github.com/vaultaire/vaultaire/metrics"
	"github.com/vaultaire/vaultaire/placement"
	"github.com/vaultaire/vaultaire/s3"
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
	scrubPeriod   time.Duration // a full scrub pass over each local drive
	scrubRate     byteSize      // at most this many bytes/s scrubbed per drive
	eventsParquet bool

	remoteSpecs []remoteSpec // parsed --remote (remote.go)
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
	fs.DurationVar(&f.scanInterval, "scan-interval", cluster.ScanEvery, "how often the leader (a single node: the node) scans every container for artifacts a drive misses and queues them for healing")
	fs.DurationVar(&f.healInterval, "heal-interval", engine.DefaultHealInterval, "how often the healer repairs the queued artifacts (failed repairs are retried with backoff)")
	fs.DurationVar(&f.probeInterval, "probe-interval", defaultProbeInterval, "how often each local drive is health-checked; a failed drive goes offline, a recovered or replaced (empty) one comes back")
	fs.DurationVar(&f.scrubPeriod, "scrub-period", engine.DefaultScrubPeriod, "time for one scrub pass, which verifies the checksums of every shard on this node's drives and repairs what fails")
	f.scrubRate = engine.DefaultScrubRate
	fs.Var(&f.scrubRate, "scrub-rate", "most bytes per second the scrubber reads from each drive (e.g. 8MiB)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve S3 over HTTPS on --s3 with this PEM certificate (chain); reloaded on SIGHUP")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert; reloaded on SIGHUP")
	fs.StringVar(&f.s3HTTP, "s3-http", "", "with --tls-cert: also serve S3 over plain HTTP on this address (for health checks; it serves every request, so bind it where only trusted clients reach)")
	fs.BoolVar(&f.eventsParquet, "events-parquet", false, "also convert each rotated access and transaction log file into a Parquet file beside it")
	fs.Func("remote", "remote S3 drive NAME=https://host[:port]/bucket[/prefix]?region=R (repeatable; single node; keys from VAULT_REMOTE_<NAME>_ACCESS_KEY/_SECRET_KEY or the mode-0600 JSON file VAULT_REMOTE_<NAME>_CREDENTIALS)", func(v string) error {
		f.remotes = append(f.remotes, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := f.parseRemotes(); err != nil {
		return nil, err
	}
	for flag, d := range map[string]time.Duration{"--scan-interval": f.scanInterval, "--heal-interval": f.healInterval, "--probe-interval": f.probeInterval, "--scrub-period": f.scrubPeriod} {
		if d <= 0 {
			return nil, fmt.Errorf("%s %v: want a positive duration", flag, d)
		}
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

// nodeState is what a node remembers about itself in its first data
// directory, so that a restart with other flags cannot silently re-place
// data.
type nodeState struct {
	ClusterID string   `json:"cluster_id"`
	Node      string   `json:"node"`
	Drives    []string `json:"drives"` // drive ids in --data order
	Dirs      []string `json:"dirs"`   // absolute data directories
	Policy    string   `json:"policy"`
	PGs       int      `json:"pgs"`

	Remotes []string `json:"remotes,omitempty"` // --remote names, in flag order (remote.go)
}

// rootFile holds generated root credentials when none come from the
// environment. It is readable by the owner only.
type rootFile struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const (
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	secretSet  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

// writeFileAtomic writes data to path via a temp file, fsync and rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadJSON reads path into v; ok is false if it does not exist.
func loadJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, v)
}

// rootCredentials returns the root credentials from the environment, or
// those kept in dir, generating them there if create is set.
func rootCredentials(getenv func(string) string, dir string, create bool) (cred s3.Credential, generated bool, err error) {
	ak, sk := getenv("VAULT_ROOT_ACCESS_KEY"), getenv("VAULT_ROOT_SECRET_KEY")
	switch {
	case ak != "" && sk != "":
		if len(sk) < 8 {
			return cred, false, errors.New("VAULT_ROOT_SECRET_KEY must be at least 8 characters")
		}
		return s3.Credential{AccessKey: ak, Secret: sk}, false, nil
	case ak != "" || sk != "":
		return cred, false, errors.New("set both VAULT_ROOT_ACCESS_KEY and VAULT_ROOT_SECRET_KEY, or neither")
	}
	path := filepath.Join(dir, "root.json")
	var rf rootFile
	ok, err := loadJSON(path, &rf)
	if err != nil {
		return cred, false, fmt.Errorf("read %s: %w", path, err)
	}
	if !ok && !create {
		return cred, false, fmt.Errorf("no root credentials: set VAULT_ROOT_ACCESS_KEY and VAULT_ROOT_SECRET_KEY (or run where %s exists)", path)
	}
	if !ok {
		rf = rootFile{AccessKey: randomString(20, upperAlnum), SecretKey: randomString(40, secretSet)}
		b, _ := json.MarshalIndent(rf, "", "  ")
		if err := writeFileAtomic(path, b, 0o600); err != nil {
			return cred, false, fmt.Errorf("write %s: %w", path, err)
		}
		generated = true
	}
	return s3.Credential{AccessKey: rf.AccessKey, Secret: rf.SecretKey}, generated, nil
}

// openDrives opens one local drive per data directory and returns the
// placement map over them. The first start records the layout; later
// starts must present the same directories in the same order. A drive
// that cannot be opened is returned offline (local.Attach) rather than
// keeping the node from starting; runProbes brings it in when it recovers.
func openDrives(ctx context.Context, f *serverFlags, log *slog.Logger) (map[placement.DriveID]driver.Driver, *placement.Map, *nodeState, func(), error) {
	var dirs []string
	for _, d := range strings.Split(f.data, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		dirs = append(dirs, abs)
	}
	if len(dirs) == 0 {
		return nil, nil, nil, nil, errors.New("--data names no directory")
	}
	if err := os.MkdirAll(dirs[0], 0o755); err != nil {
		return nil, nil, nil, nil, err
	}
	statePath := filepath.Join(dirs[0], "node.json")
	var st nodeState
	exists, err := loadJSON(statePath, &st)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read %s: %w", statePath, err)
	}
	if !exists {
		pol, err := placement.DefaultPolicy(len(dirs) + len(f.remoteSpecs))
		if err != nil {
			return nil, nil, nil, nil, err
		}
		st = nodeState{ClusterID: randomString(16, "abcdef0123456789"), Node: f.name, Dirs: dirs, Policy: pol.String(), PGs: placement.DefaultPGCount, Remotes: remoteNames(f.remoteSpecs)}
		for i := range dirs {
			st.Drives = append(st.Drives, fmt.Sprintf("%s-d%d", st.Node, i))
		}
	} else if !slices.Equal(st.Dirs, dirs) {
		return nil, nil, nil, nil, fmt.Errorf("this node was created with --data %s; start it with the same directories in the same order", strings.Join(st.Dirs, ","))
	}
	if err := checkRemotes(&st, f.remoteSpecs); err != nil {
		return nil, nil, nil, nil, err
	}
	var pol placement.Policy
	if _, err := fmt.Sscanf(st.Policy, "%d+%d", &pol.Data, &pol.Parity); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("node.json: policy %q: %w", st.Policy, err)
	}
	drives := map[placement.DriveID]driver.Driver{}
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	var pdrives []placement.Drive
	for i, dir := range dirs {
		id := placement.DriveID(st.Drives[i])
		// A drive that cannot be opened (failed, read-only, foreign)
		// starts offline: the erasure sets may tolerate it, and the
		// probe loop takes it in when it recovers.
		d, err := local.Attach(ctx, local.Config{Dir: filepath.Join(dir, "drive"), ID: driver.DriveID(id), ClusterID: st.ClusterID, Logger: log})
		if err != nil {
			closeAll()
			return nil, nil, nil, nil, fmt.Errorf("open drive %s: %w", dir, err)
		}
		if err := d.Err(); err != nil {
			log.Error("starting with a drive offline", "drive", id, "dir", dir, "err", err)
		}
		closers = append(closers, d.Close)
		drives[id] = d
		pdrives = append(pdrives, placement.Drive{ID: id, Node: placement.NodeID(st.Node), Class: placement.ClassLocal})
	}
	if pdrives, err = attachRemotes(ctx, f.remoteSpecs, &st, drives, pdrives, &closers, log); err != nil {
		closeAll()
		return nil, nil, nil, nil, err
	}
	m, err := placement.NewMap(pdrives, pol, st.PGs, 1)
	if err != nil {
		closeAll()
		return nil, nil, nil, nil, err
	}
	if !exists {
		b, _ := json.MarshalIndent(st, "", "  ")
		if err := writeFileAtomic(statePath, b, 0o644); err != nil {
			closeAll()
			return nil, nil, nil, nil, err
		}
	}
	return drives, m, &st, closeAll, nil
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func runServer(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f, err := parseServerFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(f.logLevel, stderr)
	if err != nil {
		return err
	}
	if err := loadRemoteCredentials(f.remoteSpecs, getenv); err != nil {
		return err
	}
	var certs *certReloader // nil: plain HTTP
	if f.tlsCert != "" {
		if certs, err = newCertReloader(f.tlsCert, f.tlsKey, log.With("component", "tls")); err != nil {
			return err
		}
		certs.ReloadOnSIGHUP(ctx)
	}
	var secret []byte
	if f.clustered() {
		secret = []byte(getenv("VAULT_CLUSTER_SECRET"))
		if len(secret) < cluster.MinSecretLen {
			return fmt.Errorf("cluster mode needs VAULT_CLUSTER_SECRET, the same on every node, of at least %d bytes", cluster.MinSecretLen)
		}
		if getenv("VAULT_ROOT_ACCESS_KEY") == "" || getenv("VAULT_ROOT_SECRET_KEY") == "" {
			return errors.New("cluster mode needs VAULT_ROOT_ACCESS_KEY and VAULT_ROOT_SECRET_KEY, the same on every node")
		}
		// Internode Raft and RPC are TLS 1.3 tunnels; by default their CA
		// is derived from the secret (internal/clustertls).
		if f.internodeCA != "" {
			id, err := clustertls.FromFiles(f.internodeCA, f.internodeCert, f.internodeKey)
			if err != nil {
				return fmt.Errorf("--internode-ca: %w", err)
			}
			cluster.UseInternodeTLS(secret, id)
			log.Info("internode TLS with the operator's CA", "ca", f.internodeCA)
		}
	}
	if addr := getenv("VAULT_PPROF"); addr != "" {
		if err := startPprof(addr, log); err != nil {
			return err
		}
	}
	drives, m, st, closeDrives, err := openDrives(ctx, f, log)
	if err != nil {
		return err
	}
	defer closeDrives()
	root, generated, err := rootCredentials(getenv, st.Dirs[0], true)
	if err != nil {
		return err
	}

	// In cluster mode the RPC listener comes up first, so that peers can
	// reach this node's drives while its metadata store catches up.
	var (
		rpcSrv   *http.Server
		storeRPC atomic.Pointer[http.Handler]
		rpcLn    net.Listener
	)
	if f.clustered() {
		peerSrv, err := peer.NewServer(peer.ServerConfig{Drives: localDrives(drives), Secret: secret, Logger: log.With("component", "rpc"), AuthenticatedConns: true})
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/v1/drives/", peerSrv)
		mux.HandleFunc("/v1/cluster/", func(w http.ResponseWriter, r *http.Request) {
			if h := storeRPC.Load(); h != nil {
				(*h).ServeHTTP(w, r)
				return
			}
			http.Error(w, "metadata store starting", http.StatusServiceUnavailable)
		})
		if rpcLn, err = cluster.ListenRPC(f.rpc, secret, log.With("component", "rpc")); err != nil {
			return fmt.Errorf("--rpc: %w", err)
		}
		rpcSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
		go rpcSrv.Serve(rpcLn)
		defer rpcSrv.Close()
	}

	store, err := cluster.Open(ctx, cluster.Config{
		Dir: filepath.Join(st.Dirs[0], "raft"), NodeID: st.Node, RaftAddr: f.raftAddr,
		Bootstrap: f.join == "", Logger: log, Secret: secret,
	})
	if err != nil {
		return fmt.Errorf("metadata store: %w", err)
	}
	defer store.Close()

	var (
		topo    engine.Topology
		status  func(context.Context) cluster.Status // this node's view, for `vaultd cluster status`
		drivesM func(context.Context) []metrics.DriveSample
		members func() map[string]int
	)
	if f.clustered() {
		h := store.RPCHandler()
		storeRPC.Store(&h)
		ms, err := startGossip(ctx, f, st, store.Nodes(), secret, log)
		if err != nil {
			return err
		}
		defer ms.Close()
		rctx, stopReconcile := context.WithCancel(ctx)
		defer stopReconcile()
		go store.Reconcile(rctx, ms.Members)
		log.Info("waiting until this node is part of a cluster with a map")
		if err := store.WaitReady(ctx); err != nil {
			return err
		}
		ct := cluster.NewTopology(store, drives, secret, log.With("component", "topology"))
		ct.WatchMembers(ms.Members) // a node gossip reports down is not waited on
		topo = ct
		status = func(ctx context.Context) cluster.Status { return ct.Status(ctx, ms.Members()) }
		drivesM = func(ctx context.Context) []metrics.DriveSample { return driveSamples(ct.Status(ctx, nil).Drives) }
		members = func() map[string]int {
			by := map[string]int{}
			for _, m := range ms.Members() {
				by[m.State.String()]++
			}
			return by
		}
		defer func() {
			lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ms.Leave(lctx)
		}()
	} else {
		if topo, err = engine.NewStatic(m, drives); err != nil {
			return err
		}
		drivesM = func(ctx context.Context) []metrics.DriveSample { return localDriveSamples(ctx, st.Node, m, drives) }
		status = func(ctx context.Context) cluster.Status { return singleStatus(ctx, st.Node, store, m, drives) }
	}
	rootTenant := "root"
	if _, _, err := store.CreateTenant(ctx, rootTenant); err != nil && !errors.Is(err, cluster.ErrTenantExists) {
		return fmt.Errorf("create root tenant: %w", err)
	}

	// Tenant limits: the root tenant (the operator) is never rate-limited.
	limiter := limits.NewRateLimiter(func(tenant string) (float64, int) {
		l, _, _ := store.TenantLimits(tenant)
		return l.RPS, l.Burst
	}, 0, rootTenant)
	usage := limits.NewUsage(store, log.With("component", "usage"))
	uctx, stopUsage := context.WithCancel(context.Background())
	usageDone := make(chan struct{})
	go func() { defer close(usageDone); usage.Run(uctx) }()
	defer func() { stopUsage(); <-usageDone }() // a final flush before the store closes

	eng, err := engine.New(engine.Config{Topology: topo, Containers: store, Logger: log.With("component", "engine"), OnUsage: usage.Record, HealInterval: f.healInterval})
	if err != nil {
		return err
	}
	hctx, stopHealer := context.WithCancel(ctx)
	defer stopHealer()
	go eng.RunHealer(hctx)
	go eng.RunUploadSweeper(hctx, 0)
	go store.RunScanner(hctx, eng, f.scanInterval, log.With("component", "scan"))
	go runProbes(hctx, drives, f.probeInterval, log.With("component", "probe"))
	// Each node scrubs its own drives, in every mode.
	scrub, err := eng.NewScrubber(engine.ScrubConfig{Drives: scrubbed(drives, m), Period: f.scrubPeriod, Rate: int64(f.scrubRate), Logger: log.With("component", "scrub")})
	if err != nil {
		return err
	}
	scrubDone := make(chan struct{})
	go func() { defer close(scrubDone); scrub.Run(hctx) }()
	defer func() { stopHealer(); <-scrubDone }() // before the drives close
	admin := statusAdmin{adminAdapter{store}, func(ctx context.Context) cluster.Status {
		st := status(ctx)
		st.Scrub = scrubStatus(scrub.Status())
		return st
	}}
	if f.clustered() {
		mctx, stopMigrator := context.WithCancel(ctx)
		defer stopMigrator()
		go store.RunMigrator(mctx, eng, log.With("component", "migrate"))
	}
	evDir := f.events
	if evDir == "" {
		evDir = filepath.Join(st.Dirs[0], "events")
	}
	evlog, err := events.Open(events.Config{Dir: evDir, Parquet: f.eventsParquet, Logger: log.With("component", "events")})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer evlog.Close() // after the S3 server drained, so the last requests are logged
	mx := metrics.New(metrics.Config{
		Logger: log.With("component", "metrics"),
		Engine: eng.Stats, Drives: drivesM, Members: members, Scrub: scrub.Status,
		Raft: func() metrics.RaftSample {
			ri := store.RaftInfo()
			return metrics.RaftSample{State: ri.State, Term: ri.Term, CommitIndex: ri.Commit, AppliedIndex: ri.Applied,
				LastContact: ri.LastContact, Voters: ri.Voters, NonVoters: ri.NonVoters}
		},
		Usage: func() []metrics.TenantUsage {
			ts := store.LocalTenants()
			out := make([]metrics.TenantUsage, 0, len(ts))
			for _, t := range ts {
				out = append(out, metrics.TenantUsage{Tenant: t.Name, Bytes: t.Usage.Bytes, Artifacts: t.Usage.Artifacts})
			}
			return out
		},
	})
	srv, err := s3.New(s3.Config{
		Engine: eng, Keys: store, Root: root, RootTenant: rootTenant, Admin: admin,
		Domain: f.domain, Region: f.region, Node: st.Node, Logger: log.With("component", "s3"),
		Limiter: limiter, Quota: usage, Observer: s3.Observers{mx, evlog}, Metrics: mx.Handler(),
		MetricsToken: getenv("VAULT_METRICS_TOKEN"),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.s3Addr)
	if err != nil {
		return err
	}
	scheme, plainLn := "http", net.Listener(nil)
	if certs != nil {
		scheme, ln = "https", certs.Listen(ln)
		if f.s3HTTP != "" {
			if plainLn, err = net.Listen("tcp", f.s3HTTP); err != nil {
				ln.Close()
				return fmt.Errorf("--s3-http: %w", err)
			}
		}
	}
	fmt.Fprintf(stdout, "Vaultaire %s: node %s serving S3 on %s\n", version, st.Node, displayAddr(scheme, ln.Addr()))
	if plainLn != nil {
		fmt.Fprintf(stdout, "  also plain HTTP (all requests) on %s\n", displayAddr("http", plainLn.Addr()))
	}
	if f.clustered() {
		cm := store.Map()
		fmt.Fprintf(stdout, "  cluster: gossip %s, rpc %s, raft %s; map epoch %d, %d drive(s), erasure coding %s\n", f.gossip, f.rpc, f.raftAddr, cm.Epoch, len(cm.Drives), cm.Policy)
		fmt.Fprintf(stdout, "  data: %d drive(s) under %s\n", len(st.Dirs), strings.Join(st.Dirs, ","))
	} else {
		fmt.Fprintf(stdout, "  data: %d drive(s) under %s, erasure coding %s\n", len(st.Dirs), strings.Join(st.Dirs, ","), st.Policy)
	}
	fmt.Fprintf(stdout, "  root access key: %s\n", root.AccessKey)
	if generated {
		fmt.Fprintf(stdout, "  root secret key: %s   (generated; kept in %s)\n", root.Secret, filepath.Join(st.Dirs[0], "root.json"))
	} else {
		fmt.Fprintf(stdout, "  root secret key: (from VAULT_ROOT_SECRET_KEY or %s)\n", filepath.Join(st.Dirs[0], "root.json"))
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if plainLn != nil {
		go func() { errc <- srv.Serve(plainLn) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// localDrives adapts the node's drives for the RPC server.
func localDrives(m map[placement.DriveID]driver.Driver) func(driver.DriveID) (driver.Driver, bool) {
	return func(id driver.DriveID) (driver.Driver, bool) {
		d, ok := m[placement.DriveID(id)]
		return d, ok
	}
}

// startGossip starts this node's gossip membership and joins through the
// --join nodes and the nodes the cluster map knows (so that a restarted
// node finds its peers without --join), retrying in the background until
// one answers.
func startGossip(ctx context.Context, f *serverFlags, st *nodeState, known []cluster.NodeInfo, secret []byte, log *slog.Logger) (*cluster.Membership, error) {
	self := cluster.Member{Name: st.Node, S3Addr: f.s3Addr, RaftAddr: f.raftAddr, RPCAddr: f.rpc}
	for _, id := range st.Drives {
		self.Drives = append(self.Drives, cluster.MemberDrive{ID: id, Class: placement.ClassLocal, Zone: f.zone})
	}
	ms, err := cluster.StartMembership(ctx, cluster.MembershipConfig{
		Name: st.Node, BindAddr: f.gossip, Self: self, Secret: secret, Logger: log.With("component", "gossip"),
	})
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	var seeds []string
	for _, a := range strings.Split(f.join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			seeds = append(seeds, a)
		}
	}
	for _, n := range known {
		if n.Name != st.Node && n.Gossip != "" && !slices.Contains(seeds, n.Gossip) {
			seeds = append(seeds, n.Gossip)
		}
	}
	if len(seeds) == 0 {
		return ms, nil
	}
	join := func() bool {
		jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		n, err := ms.Join(jctx, seeds)
		if err != nil || n == 0 {
			log.Warn("gossip: join failed; retrying", "seeds", strings.Join(seeds, ","), "err", err)
			return false
		}
		log.Info("gossip: joined", "contacted", n)
		return true
	}
	if !join() {
		go func() {
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if join() {
						return
					}
				}
			}
		}()
	}
	return ms, nil
}

// displayAddr turns ":9000" into something a user can paste.
func displayAddr(scheme string, a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// adminAdapter exposes the cluster store as the s3 admin backend.
type adminAdapter struct{ store *cluster.Store }

func (a adminAdapter) CreateTenant(ctx context.Context, name string) (s3.NewTenant, error) {
	if name == "root" {
		return s3.NewTenant{}, s3.ErrTenantExists
	}
	t, k, err := a.store.CreateTenant(ctx, name)
	if err != nil {
		return s3.NewTenant{}, err
	}
	return s3.NewTenant{Name: t.Name, AccessKey: k.AccessKey, SecretKey: string(k.Secret)}, nil
}

func (a adminAdapter) AddKey(ctx context.Context, name string) (s3.NewTenant, error) {
	k, err := a.store.CreateKey(ctx, name)
	if err != nil {
		return s3.NewTenant{}, err
	}
	return s3.NewTenant{Name: name, AccessKey: k.AccessKey, SecretKey: string(k.Secret)}, nil
}

func (a adminAdapter) DeleteTenant(ctx context.Context, name string) error {
	if name == "root" {
		return s3.ErrAccessDenied
	}
	return a.store.DeleteTenant(ctx, name)
}

func (a adminAdapter) Tenants(ctx context.Context) ([]s3.TenantInfo, error) {
	ts, err := a.store.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	var out []s3.TenantInfo
	for _, t := range ts {
		out = append(out, s3.TenantInfo{
			Name: t.Name, Created: t.Created, AccessKeys: t.AccessKeys,
			Limits: s3.TenantLimits{RPS: t.Limits.RPS, Burst: t.Limits.Burst, MaxBytes: t.Limits.MaxBytes, MaxArtifacts: t.Limits.MaxArtifacts},
			Usage:  s3.TenantUsage{Bytes: t.Usage.Bytes, Artifacts: t.Usage.Artifacts},
		})
	}
	return out, nil
}

// statusAdmin adds the cluster status to the admin API.
type statusAdmin struct {
	adminAdapter
	status func(context.Context) cluster.Status
}

// ClusterStatus returns this node's view of the cluster.
func (a statusAdmin) ClusterStatus(ctx context.Context) (any, error) {
	return a.status(ctx), nil
}

// singleStatus is a single node's status: its Raft state, its static map
// and its drives.
func singleStatus(ctx context.Context, node string, store *cluster.Store, m *placement.Map, drives map[placement.DriveID]driver.Driver) cluster.Status {
	ri := store.RaftInfo()
	st := cluster.Status{
		Node: node, Term: ri.Term, CommitIndex: ri.Commit, AppliedIndex: ri.Applied,
		Map: cluster.MapStatus{Epoch: uint64(m.Epoch), Policy: m.Policy.String(), PGs: m.PGCount(), Drives: len(m.Drives)},
	}
	if ri.State == "leader" {
		st.Leader = node
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, dr := range m.Drives {
		ds := cluster.DriveStatus{ID: string(dr.ID), Node: string(dr.Node), Zone: dr.Zone, Class: dr.Class, State: "ok"}
		info, err := drives[dr.ID].Info(pctx)
		if err != nil {
			ds.State, ds.Error = "offline", err.Error()
		} else {
			ds.Used, ds.Free, ds.Total = info.Usage.Used, info.Usage.Free, info.Usage.Total
		}
		st.Drives = append(st.Drives, ds)
	}
	slices.SortFunc(st.Drives, func(a, b cluster.DriveStatus) int { return strings.Compare(a.ID, b.ID) })
	return st
}

// scrubStatus converts the scrubber's status for the admin API.
func scrubStatus(ss []engine.ScrubStatus) []cluster.ScrubStatus {
	out := make([]cluster.ScrubStatus, 0, len(ss))
	for _, s := range ss {
		out = append(out, cluster.ScrubStatus{
			Drive: string(s.Drive), Passes: s.Passes, Progress: s.Progress(), PassStarted: s.PassStarted, LastPass: s.LastPass,
			Bytes: s.Bytes, Shards: s.Shards, Corrupt: s.Corrupt, Repaired: s.Repaired, Error: s.Err,
		})
	}
	return out
}

// SetRate sets a tenant's request rate limit.
func (a adminAdapter) SetRate(ctx context.Context, name string, rps float64, burst int) error {
	return a.store.SetRate(ctx, name, rps, burst)
}

// SetQuota sets a tenant's quota.
func (a adminAdapter) SetQuota(ctx context.Context, name string, maxBytes, maxArtifacts int64) error {
	return a.store.SetQuota(ctx, name, maxBytes, maxArtifacts)
}

// driveSamples turns the cluster's drive status into metrics samples.
func driveSamples(ds []cluster.DriveStatus) []metrics.DriveSample {
	out := make([]metrics.DriveSample, 0, len(ds))
	for _, d := range ds {
		out = append(out, metrics.DriveSample{ID: d.ID, Node: d.Node, Class: d.Class, Online: d.State == "ok", Used: d.Used, Free: d.Free, Total: d.Total})
	}
	return out
}

// localDriveSamples probes a single node's drives.
func localDriveSamples(ctx context.Context, node string, m *placement.Map, drives map[placement.DriveID]driver.Driver) []metrics.DriveSample {
	var out []metrics.DriveSample
	for _, dr := range m.Drives {
		s := metrics.DriveSample{ID: string(dr.ID), Node: node, Class: dr.Class}
		if d, ok := drives[dr.ID]; ok {
			if info, err := d.Info(ctx); err == nil {
				s.Online, s.Used, s.Free, s.Total = true, info.Usage.Used, info.Usage.Free, info.Usage.Total
			}
		}
		out = append(out, s)
	}
	return out
}

// defaultProbeInterval is the default --probe-interval.
const defaultProbeInterval = 10 * time.Second

// prober is a drive that can check its own health (*local.Driver).
type prober interface {
	Probe(ctx context.Context) error
}

// runProbes health-checks every local drive every interval until ctx
// ends: a drive that stopped serving goes offline (drive_online 0), an
// offline one that recovered, or came back empty as a replaced disk,
// comes back online, to be refilled by the scanner and healer.
func runProbes(ctx context.Context, drives map[placement.DriveID]driver.Driver, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := map[placement.DriveID]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for id, d := range drives {
			p, ok := d.(prober)
			if !ok {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, max(interval, 30*time.Second))
			err := p.Probe(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			switch {
			case err != nil && !failing[id]:
				log.Warn("drive offline", "drive", id, "err", err)
			case err == nil && failing[id]:
				log.Info("drive back online", "drive", id)
			}
			failing[id] = err != nil
		}
	}
}

// byteSize is a flag value in bytes, written as bench.ParseSize reads it:
// 1048576, 512KiB, 8MiB, 1GiB.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(v string) error {
	n, err := bench.ParseSize(v)
	*b = byteSize(n)
	return err
}

// startPprof serves net/http/pprof on addr (VAULT_PPROF), which must be a
// loopback address: profiles are not authenticated.
func startPprof(addr string, log *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("VAULT_PPROF=%s: want a loopback ip:port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("VAULT_PPROF: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	log.Info("pprof listening", "addr", ln.Addr().String())
	go (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
	return nil
}
