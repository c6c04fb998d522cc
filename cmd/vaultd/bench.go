package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/bench"
)

const benchUsage = `usage: vaultd bench put|get|mixed|list|multipart --endpoint URL [flags]

Drives any S3 endpoint with SigV4 requests and reports ops/s, MiB/s,
latency percentiles and errors by S3 error code. It creates a bucket of its
own (or a prefix in --bucket) and deletes what it wrote at the end.
Credentials default to AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.

`

// runBench is `vaultd bench`.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, benchUsage)
		return errors.New("bench: missing workload: put, get, mixed, list or multipart")
	}
	cfg := bench.Config{Workload: bench.Workload(args[0])}
	if !slices.Contains(bench.Workloads, cfg.Workload) {
		fmt.Fprint(stderr, benchUsage)
		return fmt.Errorf("bench: unknown workload %q", args[0])
	}
	fs := flag.NewFlagSet("vaultd bench "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	fs.StringVar(&cfg.Endpoint, "endpoint", "http://127.0.0.1:9000", "S3 endpoint URL")
	fs.StringVar(&cfg.AccessKey, "access-key", "", "access key (default $AWS_ACCESS_KEY_ID)")
	secret := fs.String("secret-key", "", "secret key (default $AWS_SECRET_ACCESS_KEY)")
	fs.StringVar(&cfg.Region, "region", "us-east-1", "region to sign for")
	size := fs.String("size", "", "object size: 4KiB, 1MiB, 64MiB (default 1MiB; list 4KiB; multipart 64MiB), or a distribution such as 4KiB:70,1MiB:25,16MiB:5")
	partSize := fs.String("part-size", "8MiB", "multipart part size")
	fs.IntVar(&cfg.PartConcurrency, "part-concurrency", 4, "multipart parts in flight per upload")
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "operations in flight")
	fs.DurationVar(&cfg.Duration, "duration", 0, "measured time (default 10s unless --ops is set)")
	fs.Int64Var(&cfg.Ops, "ops", 0, "stop after this many measured operations")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "unmeasured warm-up before the measured time")
	fs.IntVar(&cfg.Objects, "objects", 0, "objects to prepare for get, mixed and list (default: list 10000; else 256 MiB worth, 16..1000)")
	mix := fs.String("mix", bench.DefaultMix.String(), "mixed workload proportions")
	fs.IntVar(&cfg.ListPage, "page", 1000, "list: keys per page")
	fs.BoolVar(&cfg.Verify, "verify", false, "compare read-back bytes with what was written (errors count as VerifyFailed)")
	fs.StringVar(&cfg.Bucket, "bucket", "", "use this existing bucket (objects go under a unique prefix) instead of a new one")
	fs.DurationVar(&cfg.OpTimeout, "op-timeout", 5*time.Minute, "bound on one operation")
	payload := fs.String("payload", string(bench.PayloadSigned), "how uploads sign their bodies: signed (the body's SHA-256, as the AWS SDKs send over http), unsigned (UNSIGNED-PAYLOAD), streaming (aws-chunked, each 64 KiB chunk signed, as minio-go and warp send over http)")
	jsonOut := fs.Bool("json", false, "print the result as JSON instead of a table")
	plotFile := fs.String("plot", "", "draw throughput and latency over time to this .svg or .png file")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	if cfg.AccessKey == "" {
		cfg.AccessKey = getenv("AWS_ACCESS_KEY_ID")
	}
	cfg.SecretKey = *secret
	if cfg.SecretKey == "" {
		cfg.SecretKey = getenv("AWS_SECRET_ACCESS_KEY")
	}
	var err error
	if *size != "" {
		if cfg.Size, cfg.Sizes, err = bench.ParseSizes(*size); err != nil {
			return err
		}
	}
	if cfg.PartSize, err = bench.ParseSize(*partSize); err != nil {
		return err
	}
	if cfg.Mix, err = bench.ParseMix(*mix); err != nil {
		return err
	}
	cfg.Payload = bench.Payload(*payload)
	if !*quiet {
		cfg.Progress = stderr
	}
	if err := cfg.Validate(); err != nil {
		return err
	}

	res, runErr := bench.Run(ctx, cfg)
	if res == nil || res.Started.IsZero() { // nothing was measured
		return runErr
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if err := bench.WriteTable(stdout, res); err != nil {
		return err
	}
	if *plotFile != "" {
		if err := writePlot(*plotFile, res); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	return runErr
}

func writePlot(name string, res *bench.Result) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	if err := bench.WritePlot(f, name, res); err != nil {
		f.Close()
		return fmt.Errorf("bench: plot %s: %w", name, err)
	}
	return f.Close()
}
