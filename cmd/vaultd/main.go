// Command vaultd runs a Vaultaire node and talks to running nodes.
//
//	vaultd server [flags]            run a node (see vaultd server -h)
//	vaultd tenant create NAME        create a tenant and print its key pair
//	vaultd tenant list | delete NAME manage tenants through a node's admin API
//	vaultd cluster status            show a cluster node's view of the cluster
//	vaultd cluster set-erasure [K+M] [--width W]  set the erasure policy or stripe width of new writes
//	vaultd cluster drain | remove    move data off a node or drive; take a drained node out
//	vaultd bench WORKLOAD            load-test any S3 endpoint (see vaultd bench -h)
//	vaultd events tail [-f] [--txn]  show a node's access or transaction log
//	vaultd events export OUT         write a node's access or transaction log as Parquet
//	vaultd version
//
// main only wires: flags and environment are read here and handed to the
// packages that do the work. It is the one package that imports all the
// others (s3, engine, cluster, the drivers, metrics, events, bench); none
// imports it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vaultd:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  vaultd server [--data DIR[,DIR...]] [--s3 ADDR] [--raft ADDR] [--name NAME] [--domain DOMAIN]
                [--scrub-period 720h] [--scrub-rate 32MiB] [--scan-interval 1m] [--probe-interval 10s]
                [--tls-cert FILE --tls-key FILE [--s3-http ADDR]]   (HTTPS; SIGHUP reloads the certificate)
  vaultd tenant create NAME [--json] [--endpoint URL]
  vaultd tenant add-key NAME [--json] [--endpoint URL]
  vaultd tenant list [--json] [--endpoint URL]
  vaultd tenant delete NAME [--endpoint URL]
  vaultd container list [--json] [--endpoint URL]
  vaultd container set-policy [--tenant NAME] BUCKET local|hybrid|tier [--endpoint URL]
  vaultd cluster status [--json] [--endpoint URL]
  vaultd cluster set-erasure [K+M] [--width W|auto] [--json] [--endpoint URL]
  vaultd cluster drain NODE | --drive ID [--undo] [--json] [--endpoint URL]
  vaultd cluster remove NODE [--force] [--endpoint URL]
  vaultd bench put|get|mixed|list|multipart --endpoint URL [--size 4KiB] [--concurrency 16] [--duration 10s] [--json]
  vaultd events tail [--data DIR] [--dir DIR] [--txn] [-n 20] [-f]
  vaultd events export --format parquet [--data DIR] [--dir DIR] [--txn] [--since T] [--until T] [--compression zstd|snappy] OUT
  vaultd version

Environment: VAULT_ROOT_ACCESS_KEY, VAULT_ROOT_SECRET_KEY (root credentials),
VAULT_CLUSTER_SECRET (internode authentication, used once nodes cluster),
VAULT_METRICS_TOKEN or VAULT_METRICS_TOKEN_FILE (bearer token of /_vault/metrics;
default: generated into metrics-token in the first data directory).
`

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("missing command")
	}
	switch args[0] {
	case "server":
		return runServer(ctx, args[1:], getenv, stdout, stderr)
	case "tenant":
		return runTenant(ctx, args[1:], getenv, stdout, stderr)
	case "container":
		return runContainer(ctx, args[1:], getenv, stdout, stderr)
	case "cluster":
		return runCluster(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], getenv, stdout, stderr)
	case "events":
		return runEvents(ctx, args[1:], getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "vaultd", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
