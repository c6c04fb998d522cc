package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/peer"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/events"
	"github.com/vaultaire/vaultaire/internal/clustertls"
	"github.com/vaultaire/vaultaire/lifecycle"
	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/metrics"
	"github.com/vaultaire/vaultaire/s3"
	"github.com/vaultaire/vaultaire/tenant"
)

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
	tuneGC(getenv)
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
	drives, m, st, closeDrives, err := openDrives(ctx, f, secret, log)
	if err != nil {
		return err
	}
	defer closeDrives()
	// In cluster mode, the remote drives claimRemotes opens once owned.
	lates := lateDrives(drives)
	if drives, err = wrapFaults(ctx, getenv, drives, log); err != nil { // test-only, see faults.go
		return err
	}
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
		fence    *cluster.Fence                   // refuses writes planned under a stale map
		served   map[driver.DriveID]driver.Driver // drives as peers and the engine reach them: fenced
	)
	if f.clustered() {
		fence = cluster.NewFence(log.With("component", "fence"))
		served = fence.WrapAll(drives)
		peerSrv, err := peer.NewServer(peer.ServerConfig{Drives: localDrives(served), Secret: secret, Logger: log.With("component", "rpc"), AuthenticatedConns: true})
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
		Bootstrap: f.join == "", Logger: log, Secret: secret, MaxContainers: f.maxBuckets,
	})
	if err != nil {
		return fmt.Errorf("metadata store: %w", err)
	}
	defer store.Close()

	var (
		topo     engine.Topology
		status   func(context.Context) cluster.Status // this node's view, for `vaultd cluster status`
		drivesM  func(context.Context) []metrics.DriveSample
		members  func() map[string]int
		gossip   *cluster.Membership // cluster mode
		standbys []*standbyDrive     // cluster mode: read-only views of the remote drives, used while another node owns one and is down (remote.go)
		mapM     func() metrics.MapSample
	)
	if f.clustered() {
		fence.Use(store)
		h := store.RPCHandler()
		storeRPC.Store(&h)
		// A join every peer answers under another secret ends the wait
		// for readiness (secretWatch) instead of retrying for ever.
		jctx, giveUp := context.WithCancelCause(ctx)
		defer giveUp(nil)
		ms, err := startGossip(ctx, f, st, store.Nodes(), secret, &secretWatch{giveUpAfter: secretGiveUp, giveUp: giveUp}, log)
		if err != nil {
			return err
		}
		defer ms.Close()
		gossip = ms
		rctx, stopReconcile := context.WithCancel(ctx)
		defer stopReconcile()
		go store.Reconcile(rctx, ms.Members)
		log.Info("waiting until this node is part of a cluster with a map")
		if err := store.WaitReady(jctx); err != nil {
			return err
		}
		standbys = standbysOf(lates)
		for _, sb := range standbys {
			defer sb.Close()
		}
		go claimRemotes(rctx, store, ms.Members, st.Node, lates, f.adoptForce, log.With("component", "remote"))
		ct := cluster.NewTopology(store, served, secret, log.With("component", "topology"))
		ct.UseStandbys(standbyDrives(standbys)) // remote drives another node owns, read while that node is down
		ct.WatchMembers(ms.Members)             // a node gossip reports down is not waited on
		go ct.SampleDrains(ctx, 10*time.Second) // a drain's rate and ETA for status and metrics
		mapM = func() metrics.MapSample { return mapSample(ctx, store, ct, fence.Refused()) }
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
	if err := ensureRootTenant(ctx, store, rootTenant, log); err != nil {
		return err
	}

	// Tenant limits: the root tenant (the operator) is never rate-limited.
	limiter := tenant.NewRateLimiter(func(name string) (float64, int) {
		l, _, _ := store.TenantLimits(name)
		return l.RPS, l.Burst
	}, 0, rootTenant)
	limiter.Bytes = func(name string) (int64, int64) {
		l, _, _ := store.TenantLimits(name)
		return l.BytesIn, l.BytesOut
	}
	if gossip != nil {
		// A tenant's rate is cluster-wide: each node allows its share
		// (tenant.Traffic), exchanged by gossip every second.
		limiter.Traffic = tenant.NewTraffic(0)
		tctx, stopTraffic := context.WithCancel(ctx)
		defer stopTraffic()
		go gossip.ShareTraffic(tctx, limiter.Traffic)
	}
	usage := tenant.NewMeter(store, log.With("component", "usage"))
	uctx, stopUsage := context.WithCancel(context.Background())
	usageDone := make(chan struct{})
	go func() { defer close(usageDone); usage.Run(uctx) }()
	defer func() { stopUsage(); <-usageDone }() // a final flush before the store closes

	ecfg := engine.Config{Topology: topo, Containers: store, Logger: log.With("component", "engine"), OnUsage: usage.Record, HealInterval: f.healInterval,
		StoragePolicy: containerPolicy(store), Tiered: containerTiered(store), UploadHold: cmp.Or(f.uploadHold, -1)}
	if f.clustered() {
		ecfg.UploadLocker = store // multipart uploads are serialised cluster-wide
	}
	eng, err := engine.New(ecfg)
	if err != nil {
		return err
	}
	hctx, stopHealer := context.WithCancel(ctx)
	defer stopHealer()
	go eng.RunHealer(hctx)
	var sweeps func() bool // every node alone; the Raft leader in a cluster
	if f.clustered() {
		sweeps = store.IsLeader
	}
	go eng.RunUploadSweeper(hctx, 0, sweeps)
	go eng.RunScanner(hctx, store, f.scanInterval, log.With("component", "scan"))
	go runProbes(hctx, drives, f.probeInterval, eng.RetryHeals, log.With("component", "probe"))
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
		if f.clustered() {
			st.Map.UploadsHolding = uploadsHolding(ctx, eng, store.OlderMaps())
		}
		return st
	}, f.clustered()}
	if f.clustered() {
		mctx, stopMigrator := context.WithCancel(ctx)
		defer stopMigrator()
		go eng.RunMigrator(mctx, store, log.With("component", "migrate"))
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
	// srv is set below, before it serves: scrapes come through it.
	var srv *s3.Server
	mx := metrics.New(metrics.Config{
		Logger: log.With("component", "metrics"),
		Conns:  func() s3.ConnStats { return srv.ConnStats() },
		Engine: eng.Stats, Drives: drivesM, Members: members, Scrub: scrub.Status, Remotes: remoteSamples(drives, standbys), Map: mapM,
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
	mtoken, mfile, mcreated, err := metricsToken(getenv, st.Dirs[0])
	if err != nil {
		return err
	}
	switch {
	case f.metricsOpen:
		log.Warn("serving /_vault/metrics unauthenticated (--metrics-open); it names tenants")
	case mcreated:
		log.Info("generated the metrics bearer token; scrapes of /_vault/metrics need it", "file", mfile)
	case mfile != "":
		log.Debug("metrics bearer token", "file", mfile)
	}
	tctx, stopTier := context.WithCancel(ctx)
	defer stopTier()
	go runTier(tctx, eng, store, f.tierInterval, sweeps, s3.Observers{mx, evlog}, st.Node, log.With("component", "tier"))
	go runRelayout(tctx, eng, store, f.relayoutEvery, int64(f.relayoutRate), sweeps, s3.Observers{mx, evlog}, st.Node, log.With("component", "relayout"))
	srv, err = s3.New(s3.Config{
		Engine: eng, Keys: store, Configs: store, Root: root, RootTenant: rootTenant, Admin: containerAdmin{admin, topo, eng},
		Domain: f.domain, Region: f.region, Node: st.Node, Logger: log.With("component", "s3"),
		Limiter: limiter, Quota: usage, Observer: s3.Observers{mx, evlog}, Metrics: mx.Handler(),
		MetricsToken: mtoken, MetricsOpen: f.metricsOpen, MaxConns: f.maxConns, MaxConnsPerIP: f.maxConnsPerIP,
	})
	if err != nil {
		return err
	}
	lc, err := lifecycle.New(lifecycle.Config{
		Store: srv.LifecycleStore(func(ctx context.Context) ([]string, error) {
			ts, err := store.Tenants(ctx)
			names := make([]string, len(ts))
			for i, t := range ts {
				names[i] = t.Name
			}
			return names, err
		}),
		Day: f.lifecycleDay, Interval: f.lifecycleInterval, Rate: f.lifecycleRate,
		Active: sweeps, Logger: log.With("component", "lifecycle"),
	})
	if err != nil {
		return err
	}
	lctx, stopLifecycle := context.WithCancel(ctx)
	lcDone := make(chan struct{})
	go func() { defer close(lcDone); lc.Run(lctx) }()
	defer func() { stopLifecycle(); <-lcDone }()
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
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if plainLn != nil {
		go func() { errc <- srv.Serve(plainLn) }()
	}
	// The banner comes last, once the node serves (its listeners take
	// connections, Raft has a map, the engine runs), in one write set
	// apart by blank lines, so that it stands out from the log on a
	// terminal; startup chatter is at debug level.
	var banner strings.Builder
	fmt.Fprintf(&banner, "\nVaultaire %s: node %s serving S3 on %s\n", version, st.Node, displayAddr(scheme, ln.Addr()))
	if plainLn != nil {
		fmt.Fprintf(&banner, "  also plain HTTP (all requests) on %s\n", displayAddr("http", plainLn.Addr()))
	}
	if f.clustered() {
		cm := store.Map()
		fmt.Fprintf(&banner, "  cluster: gossip %s, rpc %s, raft %s; map epoch %d, %d drive(s), erasure coding %s\n", f.gossip, f.rpc, f.raftAddr, cm.Epoch, len(cm.Drives), cm.Policy)
		fmt.Fprintf(&banner, "  data: %d drive(s) under %s\n", len(st.Dirs), strings.Join(st.Dirs, ","))
	} else {
		fmt.Fprintf(&banner, "  data: %d drive(s) under %s, erasure coding %s\n", len(st.Dirs), strings.Join(st.Dirs, ","), st.Policy)
	}
	fmt.Fprintf(&banner, "  root access key: %s\n", root.AccessKey)
	if generated {
		fmt.Fprintf(&banner, "  root secret key: %s   (generated; kept in %s)\n", root.Secret, filepath.Join(st.Dirs[0], "root.json"))
	} else {
		fmt.Fprintf(&banner, "  root secret key: (from VAULT_ROOT_SECRET_KEY or %s)\n", filepath.Join(st.Dirs[0], "root.json"))
	}
	switch {
	case len(f.remoteSpecs) == 0:
	case f.clustered():
		fmt.Fprintf(&banner, "  remote drives: %d, encrypted under a key derived from VAULT_CLUSTER_SECRET\n", len(f.remoteSpecs))
	default:
		fmt.Fprintf(&banner, "  remote drives: %d, encrypted; their key is kept in %s: back it up, without it their data cannot be read\n", len(f.remoteSpecs), filepath.Join(st.Dirs[0], remoteKeyFile))
	}
	banner.WriteString("\n")
	io.WriteString(stdout, banner.String())
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

// secretGiveUp is how long a node keeps joining while every peer answers
// under another cluster secret.
const secretGiveUp = time.Minute

// secretWatch decides what failed gossip joins mean. A join that every
// peer answered under another cluster secret (cluster.ErrSecretMismatch)
// cannot succeed by retrying: the secret is read once, at start, so only
// a restart with the right VAULT_CLUSTER_SECRET mends it. Once every
// attempt for giveUpAfter failed so, giveUp is called with the reason,
// and the node exits saying so rather than wait for ever (probe F7 of
// session 17). Any other failure (a peer down, a timeout) starts the
// count again: a peer that is merely down may come back.
type secretWatch struct {
	giveUpAfter time.Duration
	giveUp      context.CancelCauseFunc

	since time.Time // first of the current run of mismatches; zero if none
}

// failed records a failed join at now and returns the hint to log with
// it ("" if none); it calls giveUp once the mismatches last giveUpAfter.
func (w *secretWatch) failed(err error, now time.Time) string {
	if !errors.Is(err, cluster.ErrSecretMismatch) {
		w.since = time.Time{}
		return ""
	}
	if w.since.IsZero() {
		w.since = now
	}
	const hint = "the peers could not decrypt our messages or we theirs: is VAULT_CLUSTER_SECRET the same as the cluster's?"
	if left := w.giveUpAfter - now.Sub(w.since); left > 0 {
		return fmt.Sprintf("%s (giving up in %v)", hint, left.Round(time.Second))
	}
	w.giveUp(fmt.Errorf("gossip: every peer answered under another cluster secret for %v: %s: %w", w.giveUpAfter, hint, err))
	return hint + " (giving up)"
}

// startGossip starts this node's gossip membership and joins through the
// --join nodes and the nodes the cluster map knows (so that a restarted
// node finds its peers without --join), retrying in the background until
// one answers or, while every peer answers under another secret, until
// watch gives up.
func startGossip(ctx context.Context, f *serverFlags, st *nodeState, known []cluster.NodeInfo, secret []byte, watch *secretWatch, log *slog.Logger) (*cluster.Membership, error) {
	self := cluster.Member{Name: st.Node, S3Addr: f.s3Addr, RaftAddr: f.raftAddr, RPCAddr: f.rpc}
	for _, id := range st.Drives {
		self.Drives = append(self.Drives, cluster.MemberDrive{ID: id, Class: string(driver.ClassLocal), Zone: f.zone})
	}
	self.Drives = append(self.Drives, remoteMembers(f.remoteSpecs)...)
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
			if hint := watch.failed(err, time.Now()); hint != "" {
				log.Warn("gossip: join failed: "+hint, "seeds", strings.Join(seeds, ","), "err", err)
				return false
			}
			log.Warn("gossip: join failed; retrying", "seeds", strings.Join(seeds, ","), "err", err)
			return false
		}
		log.Debug("gossip: joined", "contacted", n)
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
	mux.HandleFunc("/debug/pprof/trace", func(w http.ResponseWriter, r *http.Request) {
		if !traceSafe(os.Getenv("GODEBUG")) {
			http.Error(w, "vaultd: execution traces are refused unless vaultd was started with GODEBUG=tracefpunwindoff=1: "+
				"with frame-pointer unwinding the tracer crashes the process under PUT load (md5-simd's assembly does not keep the frame pointer)",
				http.StatusServiceUnavailable)
			return
		}
		pprof.Trace(w, r)
	})
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	log.Info("pprof listening", "addr", ln.Addr().String())
	go (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
	return nil
}

// traceSafe reports whether godebug (GODEBUG's value) turns the execution
// tracer's frame-pointer unwinding off (tracefpunwindoff=1, the last
// setting winning, as in the runtime). md5-simd's scalar MD5 assembly
// (blockScalar, which finishes every ETag it hashes) uses BP as a general
// register without restoring it, and its caller sends on a channel before
// returning: a trace event there unwinds a garbage frame pointer and the
// runtime dies with SIGSEGV in fpTracebackPCs (seen under warp's PUT load).
// Unwinding from the stack maps instead is slower and safe.
func traceSafe(godebug string) bool {
	safe := false
	for _, kv := range strings.Split(godebug, ",") {
		if name, val, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && name == "tracefpunwindoff" {
			safe = val == "1"
		}
	}
	return safe
}

// ensureRootTenant records the root tenant, which is there already unless
// this is a new cluster's first start. A cluster without a reachable
// leader (a restart while a majority is down, or peers flooded) is waited
// for, not given up on: the node serves once the cluster can commit.
func ensureRootTenant(ctx context.Context, store *cluster.Store, name string, log *slog.Logger) error {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		_, _, err := store.CreateTenant(ctx, name)
		switch {
		case err == nil || errors.Is(err, tenant.ErrTenantExists):
			return nil
		case !errors.Is(err, meta.ErrUnavailable) && !errors.Is(err, cluster.ErrNotLeader):
			return fmt.Errorf("create root tenant: %w", err)
		}
		log.Warn("waiting for the cluster to elect a leader before serving", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("create root tenant: %w", err)
		case <-time.After(wait):
		}
	}
}

// mapSample is the cluster map and drain progress for the metrics.
func mapSample(ctx context.Context, store *cluster.Store, ct *cluster.Topology, refused uint64) metrics.MapSample {
	s := metrics.MapSample{FenceRefused: refused, DrainRate: -1, DrainETA: -1}
	if m := store.Map(); m != nil {
		s.Epoch = uint64(m.Epoch)
	}
	if d := ct.DrainProgress(ctx); d != nil {
		s.DrainDrives, s.DrainPGsLeft, s.DrainBytesLeft = len(d.Drives), d.PGsLeft, d.BytesLeft
		s.DrainRate, s.DrainETA = d.BytesPerSecond, d.ETASeconds
	} else {
		s.DrainETA = 0
	}
	return s
}
