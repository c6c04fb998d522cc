// Package bench is a load generator for any S3 endpoint: the engine of
// `vaultd bench`.
//
// Run prepares a bucket of its own (a unique name per run), drives the
// endpoint with Config.Concurrency workers for a bounded time or number of
// operations, and always removes what it wrote, even when the run fails.
// Requests are signed with SigV4 by the AWS SDK for Go v2, path-style, with
// retries off so that every failure is counted.
//
// Object content is deterministic: a random pool generated once per run is
// read at an offset derived from the key and its write generation, so a
// worker never allocates per operation and a GET can be verified (--verify)
// without remembering what was written.
//
// A Result holds throughput (ops/s, MiB/s), a latency histogram with bounded
// memory (p50 … max), errors by S3 error code and a per-second time series.
// WriteTable prints it for people, encoding/json for scripts, and WritePlot
// draws the series as SVG or PNG.
//
// A typical use:
//
//	cfg := bench.Config{Endpoint: "http://127.0.0.1:9000", AccessKey: ak, SecretKey: sk,
//		Workload: bench.Put, Size: 1 << 20, Concurrency: 16, Duration: 10 * time.Second}
//	res, err := bench.Run(ctx, cfg)
//	if res != nil {
//		bench.WriteTable(os.Stdout, res)
//	}
//
// bench speaks to its endpoint only through the AWS SDK and imports
// nothing of this module outside its tests: it measures any S3 server,
// not Vaultaire's internals. cmd/vaultd wraps it as `vaultd bench`.
package bench
