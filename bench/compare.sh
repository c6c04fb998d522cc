#!/usr/bin/env bash
# Side-by-side: Vaultaire vs MinIO on this machine, same client, same disk.
#
# Builds MinIO (go install github.com/minio/minio@$MINIO_VERSION into a temp
# GOBIN; never committed) and vaultd, starts each as a single node on
# loopback with 4 drive directories on the same disk, runs the same
# `vaultd bench` workloads against both (alternating, one server at a time
# under load, both restarted on empty drives per workload), and writes a Markdown table of Vaultaire/MinIO ratios to
# bench/RESULTS-compare.md (override with OUT=...).
#
# Environment (defaults in brackets):
#   DURATION [10s]  WARMUP [2s]  CONCURRENCY [16]  LIST_OBJECTS [10000]
#   OPS         run each workload for this many measured operations instead
#               of DURATION: the same work on both sides, so peak RSS (which
#               grows with what a server holds) compares like with like
#   WORKLOADS ["put:4KiB get:4KiB put:1MiB get:1MiB put:64MiB get:64MiB mixed:1MiB list:4KiB multipart:64MiB"]
#   MINIO_BIN   use this minio binary instead of building one
#   MINIO_VERSION [latest]   TOOLS_DIR  keep built tools here between runs
#   VERIFY=1    add --verify (slower: the client compares every byte read)
#   PAYLOAD [signed]  how uploads sign their bodies: signed, unsigned or
#               streaming (what warp sends; see `vaultd bench put -h`)
#   OUT [bench/RESULTS-compare.md]
#   JSON_DIR    also keep each run's `vaultd bench --json` output there
#               (mixed's per-operation latencies are only in it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
PAYLOAD=${PAYLOAD:-signed}
CONCURRENCY=${CONCURRENCY:-16}
LIST_OBJECTS=${LIST_OBJECTS:-10000}
WORKLOADS=${WORKLOADS:-"put:4KiB get:4KiB put:1MiB get:1MiB put:64MiB get:64MiB mixed:1MiB list:4KiB multipart:64MiB"}
MINIO_VERSION=${MINIO_VERSION:-latest}
OUT=${OUT:-$root/bench/RESULTS-compare.md}

work=$(mktemp -d)
tools=${TOOLS_DIR:-$work/tools}
mkdir -p "$tools"
vpid="" mpid=""
cleanup() {
	for p in $vpid $mpid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
log() { echo "compare: $*" >&2; }

# --- build ---------------------------------------------------------------
log "building vaultd"
go build -o "$work/vaultd" ./cmd/vaultd
vaultd=$work/vaultd

minio=${MINIO_BIN:-$tools/minio}
if [ ! -x "$minio" ]; then
	log "building MinIO ($MINIO_VERSION) into $tools (a few minutes)"
	start=$(date +%s)
	if ! (cd "$work" && GOBIN="$tools" GOFLAGS= timeout 900 go install "github.com/minio/minio@$MINIO_VERSION") >"$work/minio-build.log" 2>&1; then
		log "go install of MinIO failed:"; tail -20 "$work/minio-build.log" >&2; exit 1
	fi
	log "MinIO built in $(($(date +%s) - start))s"
fi
minio_version=$(go version -m "$minio" | awk '$1=="mod" && $2=="github.com/minio/minio" {print $3}')

# --- servers -------------------------------------------------------------
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitfor() { # waitfor URL
	for _ in $(seq 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
	log "server at $1 did not come up"; return 1
}
AK=COMPAREACCESSKEY SK=compare-secret-key-0123456789

# Each workload gets freshly started servers on empty drives, so that
# peak RSS and results do not carry over from the previous workload.
start_servers() {
	stop_servers
	rm -rf "$work"/v? "$work"/m?
	mkdir -p "$work"/v{1,2,3,4} "$work"/m{1,2,3,4}
	# Flush what the previous run left dirty, so it does not slow this one.
	sync
	vport=$(freeport) rport=$(freeport) mport=$(freeport)
	VAULT_ROOT_ACCESS_KEY=$AK VAULT_ROOT_SECRET_KEY=$SK "$vaultd" server \
		--data "$work/v1,$work/v2,$work/v3,$work/v4" --s3 "127.0.0.1:$vport" --raft "127.0.0.1:$rport" \
		--name compare --log-level warn >>"$work/vaultd.log" 2>&1 &
	vpid=$!
	MINIO_CI_CD=1 MINIO_ROOT_USER=$AK MINIO_ROOT_PASSWORD=$SK MINIO_BROWSER=off \
		"$minio" server --quiet --address "127.0.0.1:$mport" "$work/m{1...4}" >>"$work/minio.log" 2>&1 &
	mpid=$!
	waitfor "http://127.0.0.1:$vport/_vault/health"
	waitfor "http://127.0.0.1:$mport/minio/health/live"
	sleep 1
}
stop_servers() {
	for p in $vpid $mpid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	vpid="" mpid=""
}

# --- runs ----------------------------------------------------------------
# Peak RSS of a process since the last reset (clear_refs 5 resets VmHWM to
# the current RSS: the figure includes what the server kept from preparing
# the objects, e.g. for get and list).
resetpeak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
peak() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

extra=()
[ "${VERIFY:-}" = 1 ] && extra+=(--verify)
for w in $WORKLOADS; do
	wl=${w%%:*} size=${w#*:}
	if [ -n "${OPS:-}" ]; then span=(--ops "$OPS"); else span=(--duration "$DURATION"); fi
	args=("$wl" --size "$size" --concurrency "$CONCURRENCY" "${span[@]}" --warmup "$WARMUP" --payload "$PAYLOAD" --json --quiet "${extra[@]}")
	[ "$wl" = list ] && args+=(--objects "$LIST_OBJECTS")
	start_servers
	for side in vaultd minio; do
		if [ $side = vaultd ]; then port=$vport pid=$vpid; else port=$mport pid=$mpid; fi
		log "$wl $size against $side"
		resetpeak "$pid"
		AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK "$vaultd" bench "${args[@]}" \
			--endpoint "http://127.0.0.1:$port" >"$work/$wl-$size-$side.json" 2>"$work/$wl-$size-$side.err" ||
			{ log "$wl $size against $side failed:"; tail -5 "$work/$wl-$size-$side.err" >&2; }
		echo "$(peak "$pid")" >"$work/$wl-$size-$side.rss"
		if [ -n "${JSON_DIR:-}" ]; then mkdir -p "$JSON_DIR" && cp "$work/$wl-$size-$side.json" "$JSON_DIR/"; fi
	done
done
stop_servers

# --- report --------------------------------------------------------------
if [ -n "${OPS:-}" ]; then spandesc="--ops $OPS"; else spandesc="--duration $DURATION"; fi
python3 - "$work" "$OUT" <<PY
import json, os, sys
work, out = sys.argv[1], sys.argv[2]
def load(name):
    try:
        with open(os.path.join(work, name + ".json")) as f: return json.load(f)
    except Exception: return None
def rss(name):
    try: return int(open(os.path.join(work, name + ".rss")).read().strip())
    except Exception: return None
def ratio(a, b, invert=False):
    if not a or not b: return "–"
    return "%.2fx" % ((b / a) if invert else (a / b))
def f(v, d=1): return "–" if v is None else ("%.*f" % (d, v))
rows = []
for w in "$WORKLOADS".split():
    wl, size = w.split(":")
    v, m = load(f"{wl}-{size}-vaultd"), load(f"{wl}-{size}-minio")
    vr, mr = rss(f"{wl}-{size}-vaultd"), rss(f"{wl}-{size}-minio")
    g = lambda r, *k: (None if r is None else (r.get(k[0]) if len(k) == 1 else r.get(k[0], {}).get(k[1])))
    errs = lambda r: "–" if r is None else (", ".join(f"{k}:{n}" for k, n in sorted(r.get("errors", {}).items())) or "0")
    thr = "keys_per_sec" if wl == "list" else ("ops_per_sec" if size.endswith("KiB") or wl == "mixed" else "mib_per_sec")
    unit = {"keys_per_sec": "keys/s", "ops_per_sec": "ops/s", "mib_per_sec": "MiB/s"}[thr]
    rows.append(f"| {wl} | {size} | {f(g(v, thr))} {unit} | {f(g(m, thr))} {unit} | **{ratio(g(v, thr), g(m, thr))}** "
                f"| {f(g(v, 'latency_ms', 'p50'), 2)} / {f(g(v, 'latency_ms', 'p99'), 2)} | {f(g(m, 'latency_ms', 'p50'), 2)} / {f(g(m, 'latency_ms', 'p99'), 2)} "
                f"| {ratio(g(v, 'latency_ms', 'p99'), g(m, 'latency_ms', 'p99'), invert=True)} "
                f"| {f(vr, 0)} / {f(mr, 0)} | {f(g(v, 'ops'), 0)} / {f(g(m, 'ops'), 0)} | {errs(v)} / {errs(m)} |")
with open(out, "w") as o:
    o.write("""# Vaultaire vs MinIO, side by side

Generated by \`bench/compare.sh\` on $(date -u +%Y-%m-%dT%H:%MZ).

Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(go version | cut -d' ' -f3).
Vaultaire: \`$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)\`, single node, 4 drive directories, default durability.
MinIO: \`$minio_version\` (go install), single node, 4 drive directories (\`MINIO_CI_CD=1\`), defaults.
Both on the same disk under one temp directory; the client (\`vaultd bench\`, AWS SDK for Go v2, SigV4 signed payloads)
shares the $(nproc) cores with the server under test; only one server is under load at a time; both are restarted on empty drives before each workload.

Command: \`${OPS:+OPS=$OPS }DURATION=$DURATION WARMUP=$WARMUP CONCURRENCY=$CONCURRENCY LIST_OBJECTS=$LIST_OBJECTS bench/compare.sh\`
(each run: \`vaultd bench WORKLOAD --size SIZE --concurrency $CONCURRENCY $spandesc --warmup $WARMUP --payload $PAYLOAD${extra[*]:+ ${extra[*]}}\`).

Ratio = Vaultaire / MinIO for throughput (higher is better) and MinIO / Vaultaire for p99 latency
(higher is better for Vaultaire). Peak RSS is the server's VmHWM during the run (reset before it).
Ops is the number of measured operations: a ratio over a handful of ops (large objects, short runs) is noise.

| workload | size | Vaultaire | MinIO | ratio | Vaultaire p50/p99 ms | MinIO p50/p99 ms | p99 ratio | peak RSS MiB V / M | ops V / M | errors V / M |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
""")
    o.write("\n".join(rows) + "\n")
print(open(out).read())
PY
log "wrote $OUT"
