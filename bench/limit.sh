#!/usr/bin/env bash
# The limit benchmark: Vaultaire against a bare fasthttp server on this
# machine, same client (wrk over presigned URLs, so the client does no
# hashing or signing), same run.
#
# Builds vaultd and bench/limit (the bare server and the URL preparer),
# starts one vaultd (4 drive directories, default durability) and the bare
# server on loopback, and drives each in turn with wrk for every workload:
# GET and PUT (same key) of 4 KiB and 1 MiB with CONNECTIONS connections,
# then one connection, one request at a time, for the latency row (p50).
# Prints a Markdown table with each Vaultaire figure as a share of the
# bare server's (OUT=file to also write it there).
#
# Environment (defaults in brackets):
#   DURATION [5s]  CONNECTIONS [16]  THREADS [2]  LATENCY_DURATION [3s]
#   WORKLOADS ["get:4096 put:4096 get:1048576 put:1048576"]
#   OUT   also write the table to this file
#   PPROF=DIR  write vaultd CPU and heap profiles of each Vaultaire run to DIR
#   TRACE=1    with PPROF, also a 3 s execution trace in the middle of each
#              run (vaultd then runs with GODEBUG=tracefpunwindoff=1, without
#              which it refuses traces: see traceSafe in cmd/vaultd/server.go).
#              The tracer then unwinds every event's stack from the stack
#              maps: about a fifth of vaultd's CPU during a small GET, in
#              the CPU profile and the CPU per request, so neither is
#              comparable with a run without it
#   VAULTD_ENV  extra NAME=value words for vaultd's environment (GOGC=100, say)
# The table's last column is vaultd's CPU time (user and system, from
# /proc/PID/stat) per request of the multi-connection run: unlike the
# rates, it hardly moves when other work shares the machine.
# Needs wrk (Debian package wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

DURATION=${DURATION:-5s}
LATENCY_DURATION=${LATENCY_DURATION:-3s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
WORKLOADS=${WORKLOADS:-"get:4096 put:4096 get:1048576 put:1048576"}

command -v wrk >/dev/null || { echo "limit: wrk not found (apt-get install wrk)" >&2; exit 1; }

work=$(mktemp -d)
vpid="" bpid=""
cleanup() {
	for p in $vpid $bpid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
log() { echo "limit: $*" >&2; }

log "building vaultd and bench/limit"
go build -o "$work/vaultd" ./cmd/vaultd
go build -o "$work/limit" ./bench/limit

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitfor() { # waitfor URL
	for _ in $(seq 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
	log "server at $1 did not come up"; return 1
}
AK=LIMITACCESSKEY SK=limit-secret-key-0123456789

mkdir -p "$work"/v{1,2,3,4}
vport=$(freeport) rport=$(freeport) bport=$(freeport)
pprof_env=() pport=""
if [ -n "${PPROF:-}" ]; then
	mkdir -p "$PPROF"
	pport=$(freeport)
	pprof_env=(VAULT_PPROF="127.0.0.1:$pport")
	[ "${TRACE:-}" = 1 ] && pprof_env+=(GODEBUG=tracefpunwindoff=1)
fi
# shellcheck disable=SC2086 # VAULTD_ENV is a list of words
env "${pprof_env[@]}" ${VAULTD_ENV:-} VAULT_ROOT_ACCESS_KEY=$AK VAULT_ROOT_SECRET_KEY=$SK "$work/vaultd" server \
	--data "$work/v1,$work/v2,$work/v3,$work/v4" --s3 "127.0.0.1:$vport" --raft "127.0.0.1:$rport" \
	--name limit --log-level warn >>"$work/vaultd.log" 2>&1 &
vpid=$!
sizes=$(for w in $WORKLOADS; do echo "${w#*:}"; done | sort -un | paste -sd,)
"$work/limit" serve --addr "127.0.0.1:$bport" --sizes "$sizes" >>"$work/bare.log" 2>&1 &
bpid=$!
waitfor "http://127.0.0.1:$vport/_vault/health"
waitfor "http://127.0.0.1:$bport/"

AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK "$work/limit" prepare \
	--endpoint "http://127.0.0.1:$vport" --bucket limit --sizes "$sizes" >"$work/urls"

# runwrk NAME METHOD SIZE URL CONNECTIONS THREADS DURATION
runwrk() {
	local name=$1 method=$2 size=$3 url=$4 conns=$5 threads=$6 dur=$7
	local script=$work/$method-$size.lua
	if [ "$method" = put ]; then
		printf 'wrk.method = "PUT"\nwrk.body = string.rep("x", %d)\n' "$size" >"$script"
	else
		printf 'wrk.method = "GET"\n' >"$script"
	fi
	wrk -t "$threads" -c "$conns" -d "$dur" --latency -s "$script" "$url" >"$work/$name.out" 2>&1 ||
		log "wrk $name failed: $(tail -3 "$work/$name.out")"
}

# cputicks: vaultd's user + system CPU time so far, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$vpid/stat"; }

for w in $WORKLOADS; do
	method=${w%%:*} size=${w#*:}
	read -r _ geturl puturl < <(awk -v s="$size" '$1 == s' "$work/urls")
	url=$geturl
	[ "$method" = put ] && url=$puturl
	bareurl="http://127.0.0.1:$bport/limit/obj-$size"
	for side in bare vaultd; do
		u=$url
		[ $side = bare ] && u=$bareurl
		log "$method $size against $side, $CONNECTIONS connections"
		ppid=""
		if [ $side = vaultd ] && [ -n "$pport" ]; then
			curl -s -o "$PPROF/cpu-$method-$size.pprof" \
				"http://127.0.0.1:$pport/debug/pprof/profile?seconds=$((${DURATION%s} - 1))" &
			ppid=$!
			if [ "${TRACE:-}" = 1 ]; then
				# An execution trace of 3 s in the middle: where requests
				# wait (go tool trace -pprof=sync|syscall|sched FILE).
				(sleep 2 && curl -s -o "$PPROF/trace-$method-$size.out" \
					"http://127.0.0.1:$pport/debug/pprof/trace?seconds=3") &
				ppid="$ppid $!"
			fi
		fi
		[ $side = vaultd ] && cputicks >"$work/$method-$size-cpu0"
		runwrk "$method-$size-$side" "$method" "$size" "$u" "$CONNECTIONS" "$THREADS" "$DURATION"
		[ $side = vaultd ] && cputicks >"$work/$method-$size-cpu1"
		if [ -n "$ppid" ]; then
			wait $ppid || true
			curl -s -o "$PPROF/allocs-$method-$size.pprof" "http://127.0.0.1:$pport/debug/pprof/allocs"
		fi
		if [ "$size" -le 65536 ]; then
			log "$method $size against $side, one request at a time"
			runwrk "$method-$size-$side-1" "$method" "$size" "$u" 1 1 "$LATENCY_DURATION"
		fi
	done
done

hwm=$(awk '/^VmHWM:/ {printf "%.0f MiB", $2 / 1024}' "/proc/$vpid/status")
python3 - "$work" "$WORKLOADS" "${OUT:-}" "$(getconf CLK_TCK)" <<PY
import os, re, sys
work, workloads, out, tck = sys.argv[1], sys.argv[2].split(), sys.argv[3], int(sys.argv[4])
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
def parse(name):
    try: t = open(os.path.join(work, name + ".out")).read()
    except OSError: return None
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    if not m: return None
    r = {"rps": float(m.group(1)), "errors": 0}
    e = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    if e: r["errors"] += int(e.group(1))
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    if e: r["errors"] += sum(int(x) for x in e.groups())
    p = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    if p: r["p50"] = float(p.group(1)) * unit[p.group(2)]
    n = re.search(r"(\d+) requests in", t)
    if n: r["requests"] = int(n.group(1))
    return r
def cpu(w, r):
    try:
        t0, t1 = (int(open(os.path.join(work, f"{w}-cpu{i}")).read()) for i in (0, 1))
    except (OSError, ValueError): return "–"
    if r is None or not r.get("requests"): return "–"
    return "%.0f µs" % ((t1 - t0) / tck * 1e6 / r["requests"])
def share(v, b):
    return "–" if not v or not b else "%.0f%%" % (100 * v / b)
rows = []
for w in workloads:
    method, size = w.split(":"); size = int(size)
    label = f"{method.upper()} {size // 1024} KiB" if size < 1 << 20 else f"{method.upper()} {size >> 20} MiB"
    v, b = parse(f"{method}-{size}-vaultd"), parse(f"{method}-{size}-bare")
    if size >= 1 << 20:
        fig = lambda r: None if r is None else r["rps"] * size / (1 << 20)
        u = "MiB/s"
    else:
        fig = lambda r: None if r is None else r["rps"]
        u = "req/s"
    fmt = lambda x: "–" if x is None else f"{x:,.0f} {u}"
    errs = lambda r: "–" if r is None else str(r["errors"])
    rows.append(f"| {label}, $CONNECTIONS connections | {fmt(fig(v))} | {fmt(fig(b))} | **{share(fig(v), fig(b))}** | {errs(v)} / {errs(b)} | {cpu(w.replace(':', '-'), v)} |")
    v1, b1 = parse(f"{method}-{size}-vaultd-1"), parse(f"{method}-{size}-bare-1")
    if v1 or b1:
        p = lambda r: "–" if r is None or "p50" not in r else f"{r['p50']:.3f} ms p50"
        # For latency the share is limit/Vaultaire: 100% means as fast as the bare server.
        sh = "–" if not v1 or not b1 or not v1.get("p50") or not b1.get("p50") else "%.0f%%" % (100 * b1["p50"] / v1["p50"])
        rows.append(f"| {label}, 1 connection (latency) | {p(v1)} | {p(b1)} | {sh} | {errs(v1)} / {errs(b1)} | |")
table = """| workload | Vaultaire | bare fasthttp (limit) | share of limit | errors V / bare | vaultd CPU per request |
|---|---:|---:|---:|---|---:|
""" + "\n".join(rows) + "\n"
head = "limit: wrk -t $THREADS -d $DURATION (latency rows: -t 1 -c 1 -d $LATENCY_DURATION), $(nproc) cores, $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ), vaultd peak RSS $hwm\n\n"
print(head + table)
if out:
    open(out, "w").write(head + table)
PY
