#!/usr/bin/env bash
# Independent check: MinIO's warp (the standard third-party S3 benchmark),
# unmodified, against vaultd, beside `vaultd bench` for the same workloads.
#
# Fetches and builds warp $WARP_VERSION into $TOOLS_DIR/bin/warp if it is
# missing (`go install github.com/minio/warp@latest` is refused by the
# module proxy; `go mod download` of a named version works; the module is
# copied out of the read-only module cache and built there; never
# committed). Then builds vaultd and runs, for each workload, one server
# at a time on loopback, each started on 4 empty drive directories after a
# sync:
#   - warp WORKLOAD against vaultd,
#   - warp WORKLOAD against MinIO, if a minio binary is found (MINIO=1),
#   - the harness's equivalent (`vaultd bench`) against vaultd (HARNESS=1).
# Every run is bounded (--duration, plus preparation and cleanup: under a
# minute each with the defaults).
# Prints a Markdown table of the figures (and writes it to $OUT if set);
# raw output (warp --json, harness --json, logs) stays in $KEEP if set.
#
# Environment (defaults in brackets):
#   DURATION [20s]  CONCURRENCY [16]
#   WORKLOADS ["put get mixed list multipart multipart-put delete stat"]
#   SIZE_OBJ [1MiB] (put, get, mixed)  SIZE_SMALL [4KiB] (list, delete, stat)
#   OBJECTS [256] (get, mixed: what warp and the harness prepare)
#   PAYLOAD [streaming] how the harness signs uploads: streaming is what
#     warp (minio-go over plain http) sends; signed, unsigned (see
#     `vaultd bench put -h`)
#   WARMUP [2s] the harness's unmeasured ramp (warp leaves its ramp out of
#     its steady-state average)
#   TOOLS_DIR [/tmp/benchtools]  WARP_BIN [$TOOLS_DIR/bin/warp]  WARP_VERSION [v1.3.1]
#   MINIO_BIN [$TOOLS_DIR/bin/minio]  MINIO [1 if MINIO_BIN exists]  HARNESS [1]
#   PORT_BASE  use PORT_BASE and PORT_BASE+1 instead of free ports
#   OUT  also write the table here   KEEP  keep raw results in this directory
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
CONCURRENCY=${CONCURRENCY:-16}
WORKLOADS=${WORKLOADS:-"put get mixed list multipart multipart-put delete stat"}
SIZE_OBJ=${SIZE_OBJ:-1MiB}
SIZE_SMALL=${SIZE_SMALL:-4KiB}
OBJECTS=${OBJECTS:-256}
PAYLOAD=${PAYLOAD:-streaming}
WARMUP=${WARMUP:-2s}
TOOLS_DIR=${TOOLS_DIR:-/tmp/benchtools}
WARP_VERSION=${WARP_VERSION:-v1.3.1}
WARP_BIN=${WARP_BIN:-$TOOLS_DIR/bin/warp}
MINIO_BIN=${MINIO_BIN:-$TOOLS_DIR/bin/minio}
if [ -z "${MINIO:-}" ]; then MINIO=0; [ -x "$MINIO_BIN" ] && MINIO=1; fi
HARNESS=${HARNESS:-1}

work=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && { kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
	if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$work"/*.json "$work"/*.zst "$work"/*.txt "$work"/*.log "$KEEP"/ 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
log() { echo "warp.sh: $(date +%T) $*" >&2; }

for w in $WORKLOADS; do
	case $w in
	put | get | mixed | list | multipart | multipart-put | delete | stat) ;;
	*) log "unknown workload $w"; exit 2 ;;
	esac
done

# --- warp ----------------------------------------------------------------
if [ ! -x "$WARP_BIN" ]; then
	log "fetching and building warp $WARP_VERSION into $WARP_BIN (about a minute)"
	dir=$(cd "$work" && GOFLAGS= GONOSUMDB=github.com/minio/warp go mod download -json "github.com/minio/warp@$WARP_VERSION" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
	src=$TOOLS_DIR/warp-src
	rm -rf "$src" && mkdir -p "$TOOLS_DIR/bin" && cp -r "$dir" "$src" && chmod -R u+w "$src"
	(cd "$src" && GOFLAGS=-mod=mod go build -o "$WARP_BIN" .)
fi

# --- vaultd and servers ------------------------------------------------------
log "building vaultd"
go build -o "$work/vaultd" ./cmd/vaultd
vaultd=$work/vaultd
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitfor() { # waitfor URL
	for _ in $(seq 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
	log "server at $1 did not come up"; return 1
}
AK=WARPACCESSKEY SK=warp-secret-key-0123456789

start() { # start vaultd|minio: one server on 4 empty drive directories
	stop
	rm -rf "$work/d" && mkdir -p "$work"/d/{1,2,3,4}
	sync # no writeback left over from the previous run
	port=${PORT_BASE:-$(freeport)}
	if [ "$1" = vaultd ]; then
		rport=$((${PORT_BASE:-0} + 1)); [ -z "${PORT_BASE:-}" ] && rport=$(freeport)
		VAULT_ROOT_ACCESS_KEY=$AK VAULT_ROOT_SECRET_KEY=$SK "$vaultd" server \
			--data "$work/d/1,$work/d/2,$work/d/3,$work/d/4" --s3 "127.0.0.1:$port" --raft "127.0.0.1:$rport" \
			--name warp --log-level warn >>"$work/vaultd.log" 2>&1 &
		pid=$!
		waitfor "http://127.0.0.1:$port/_vault/health"
	else
		MINIO_CI_CD=1 MINIO_ROOT_USER=$AK MINIO_ROOT_PASSWORD=$SK MINIO_BROWSER=off \
			"$MINIO_BIN" server --quiet --address "127.0.0.1:$port" "$work/d/{1...4}" >>"$work/minio.log" 2>&1 &
		pid=$!
		waitfor "http://127.0.0.1:$port/minio/health/live"
	fi
	sleep 1
}
stop() {
	[ -n "$pid" ] && { kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
	pid=""
}

# --- workloads -----------------------------------------------------------
# warp's flags for a workload, and the harness's for the same one (none if
# the harness has no such workload).
warpargs() {
	case $1 in
	put) echo "put --obj.size $SIZE_OBJ" ;;
	get) echo "get --obj.size $SIZE_OBJ --objects $OBJECTS" ;;
	mixed) echo "mixed --obj.size $SIZE_OBJ --objects $OBJECTS" ;;
	list) echo "list --obj.size $SIZE_SMALL --objects 10000 --max-keys 1000" ;;
	multipart) echo "multipart --part.size 5MiB --parts 64" ;;
	multipart-put) echo "multipart-put --part.size 8MiB --parts 8 --part.concurrent 4" ;;
	delete) echo "delete --obj.size $SIZE_SMALL --objects 10000 --batch 100" ;;
	stat) echo "stat --obj.size $SIZE_SMALL --objects 10000" ;;
	*) return 1 ;;
	esac
}
harnessargs() {
	case $1 in
	put) echo "put --size $SIZE_OBJ --payload $PAYLOAD --warmup $WARMUP" ;;
	get | mixed) echo "$1 --size $SIZE_OBJ --objects $OBJECTS --payload $PAYLOAD --warmup $WARMUP" ;;
	list) echo "list --size $SIZE_SMALL --objects 10000 --page 1000 --warmup $WARMUP" ;;
	multipart-put) echo "multipart --size 64MiB --part-size 8MiB --part-concurrency 4 --payload $PAYLOAD --warmup $WARMUP" ;;
	esac
}

: >"$work/commands.txt"
for w in $WORKLOADS; do
	read -r -a wa <<<"$(warpargs "$w")"
	sides=(vaultd)
	[ "$MINIO" = 1 ] && sides+=(minio)
	for side in "${sides[@]}"; do
		start "$side"
		log "warp ${wa[*]} against $side"
		cmd=(warp "${wa[@]}" --duration "$DURATION" --concurrent "$CONCURRENCY" --host "127.0.0.1:PORT"
			--access-key "$AK" --secret-key "$SK" --region us-east-1 --no-color)
		echo "${cmd[*]}   # $side" >>"$work/commands.txt"
		(cd "$work" && timeout 120 "$WARP_BIN" "${wa[@]}" --duration "$DURATION" --concurrent "$CONCURRENCY" \
			--host "127.0.0.1:$port" --access-key "$AK" --secret-key "$SK" --region us-east-1 --no-color \
			--benchdata "$work/warp-$w-$side" --json >"$work/warp-$w-$side.json" 2>"$work/warp-$w-$side.log") ||
			{ log "warp $w against $side failed:"; tail -5 "$work/warp-$w-$side.log" >&2; }
	done
	ha=$(harnessargs "$w")
	if [ "$HARNESS" = 1 ] && [ -n "$ha" ]; then
		read -r -a ha <<<"$ha"
		start vaultd
		log "vaultd bench ${ha[*]} against vaultd"
		echo "vaultd bench ${ha[*]} --concurrency $CONCURRENCY --duration $DURATION --endpoint http://127.0.0.1:PORT   # vaultd" >>"$work/commands.txt"
		AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK timeout 120 "$vaultd" bench "${ha[@]}" \
			--concurrency "$CONCURRENCY" --duration "$DURATION" --endpoint "http://127.0.0.1:$port" \
			--json --quiet >"$work/harness-$w.json" 2>"$work/harness-$w.log" ||
			{ log "vaultd bench $w failed:"; tail -5 "$work/harness-$w.log" >&2; }
	fi
done
stop
minio_version=-
[ "$MINIO" = 1 ] && minio_version=$(go version -m "$MINIO_BIN" | awk '$1=="mod" && $2=="github.com/minio/minio" {print $3}')

# --- report ----------------------------------------------------------------
python3 - "$work" "$WORKLOADS" "$commit" "$minio_version" "$WARP_VERSION" "${OUT:-}" <<'PY'
import datetime, json, os, sys
work, workloads, commit, minio_version, warp_version, out = sys.argv[1:7]

def load(name):
    try:
        with open(os.path.join(work, name + ".json")) as f:
            return json.loads(f.read() or "null")
    except (OSError, ValueError):
        return None

def stamp(s):
    # warp writes RFC 3339 with nanoseconds; Python parses microseconds.
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, tail = s.split(".", 1)
        frac, zone = tail[:tail.index("+")], tail[tail.index("+"):]
        s = f"{head}.{frac[:6]}{zone}"
    return datetime.datetime.fromisoformat(s)

def warp_ops(d):
    """Per operation type: (MiB/s, obj/s, p50, p90, p99 ms, requests, errors, whole run,
    p50, p99 ms weighted by requests)."""
    res = {}
    for op, a in (d or {}).get("by_op_type", {}).items():
        t = dict(a["throughput"])
        secs = t["measure_duration_millis"] / 1000
        if not secs:
            # Too short for warp's steady-state window (e.g. delete ran out
            # of objects within a second or two): use the whole run.
            secs = (stamp(a["end_time"]) - stamp(a["start_time"])).total_seconds()
            t.update(bytes=a["total_bytes"], objects=a["total_objects"])
        # Latency as warp prints it: the mean over its (10 s) segments of
        # each segment's percentile (aggregate.mergeRequests, StringByN).
        segs = [r.get("single_sized_requests") for rs in a.get("requests_by_client", {}).values() for r in rs]
        segs = [r for r in segs if r and not r.get("skipped")]
        # The last segment holds the few requests of the wind-down and
        # weighs as much as a full one: weighted by requests is also given.
        n = sum(r["merged_entries"] for r in segs)
        reqs = sum(r["requests"] for r in segs)
        pct = lambda k: sum(r[k] for r in segs) / n if n else None
        wpct = lambda k: sum(r[k] * r["requests"] for r in segs) / reqs if reqs else None
        res[op] = (t["bytes"] / secs / 2**20, t["objects"] / secs, pct("dur_median_millis"),
                   pct("dur_90_millis"), pct("dur_99_millis"), a["total_requests"], a["total_errors"],
                   not t["measure_duration_millis"], wpct("dur_median_millis"), wpct("dur_99_millis"))
    return res

def f(v, d=1):
    return "–" if v is None else "%.*f" % (d, v)

def ratio(a, b):
    return "–" if not a or not b else "%.2fx" % (a / b)

print_rows = []
hdr = ("| workload | op | warp on Vaultaire | p50 / p90 / p99 ms | requests, errors | harness on Vaultaire "
       "| p50 / p90 / p99 ms | warp/harness | warp on MinIO | p50 / p90 / p99 ms | Vaultaire/MinIO |\n"
       "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
for w in workloads.split():
    v, m, h = warp_ops(load(f"warp-{w}-vaultd")), warp_ops(load(f"warp-{w}-minio")), load(f"harness-{w}")
    if not v:
        print_rows.append(f"| {w} | – | failed (see warp-{w}-vaultd.log) | | | | | | | | |")
        continue
    for op in sorted(v):
        mib, obj = v[op][0], v[op][1]
        # Throughput in MiB/s for sized transfers, objects/s otherwise.
        by_bytes = mib > 0 and w not in ("mixed", "list", "delete", "stat")
        unit, val = ("MiB/s", 0) if by_bytes else ("obj/s", 1)
        tv = v[op][val]
        tm = m[op][val] if op in m else None
        hv, hl = None, None
        hop = h
        if h and len(v) > 1:  # mixed: the harness's figures for the same operation
            hop = (h.get("by_op") or {}).get({"STAT": "head"}.get(op, op.lower()))
        if hop:
            if w == "list":
                hv = hop.get("keys_per_sec")
            else:
                hv = hop.get("mib_per_sec") if by_bytes else hop.get("ops_per_sec")
            l = hop.get("latency_ms", {})
            hl = f"{f(l.get('p50'))} / {f(l.get('p90'))} / {f(l.get('p99'))}"
        lat = lambda r: f"{f(r[2])} / {f(r[3])} / {f(r[4])} ({f(r[8])} / {f(r[9])})"
        print_rows.append(
            f"| {w} | {op} | {f(tv)} {unit}{'*' if v[op][7] else ''} | {lat(v[op])} | {v[op][5]}, {v[op][6]} "
            f"| {f(hv) + ' ' + ('keys/s' if w == 'list' else unit) if hv is not None else '–'} | {hl or '–'} | {ratio(tv, hv)} "
            f"| {f(tm) + ' ' + unit + ('*' if m[op][7] else '') if tm is not None else '–'} | {lat(m[op]) if op in m else '–'} | {ratio(tv, tm)} |")
    if len(v) > 1:  # mixed: the total, which is what the harness reports
        tot = sum(r[1] for r in v.values())
        totm = sum(r[1] for r in m.values()) if m else None
        hv = h.get("ops_per_sec") if h else None
        print_rows.append(f"| {w} | total | {f(tot)} obj/s | | | {f(hv) + ' ops/s' if hv else '–'} | | {ratio(tot, hv)} "
                          f"| {f(totm) + ' obj/s' if totm else '–'} | | {ratio(tot, totm)} |")
table = (f"Vaultaire `{commit}`, MinIO `{minio_version}`, warp `{warp_version}`.\n\n"
         + hdr + "\n".join(print_rows)
         + "\n\nwarp's latencies are as it prints them: the mean over its 10 s segments of each segment's"
         + " percentile, the last (wind-down) segment counting as much as a full one; in brackets p50 / p99"
         + " with segments weighted by their requests. The harness's are percentiles of all measured requests."
         + "\n`*`: the run was too short for warp's steady-state window; figures over the whole run."
         + "\n\nCommands:\n\n```\n" + open(os.path.join(work, "commands.txt")).read() + "```\n")
print(table)
if out:
    with open(out, "w") as o:
        o.write(table)
PY
