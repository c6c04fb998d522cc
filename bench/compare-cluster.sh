#!/usr/bin/env bash
# Three nodes on loopback: a Vaultaire cluster (scripts/cluster.sh start 3,
# 3 nodes x 2 drives, 4+2) against a distributed MinIO (3 processes x 2
# drives, one erasure set of 6, MINIO_STORAGE_CLASS_STANDARD=EC:2 so it is
# 4+2 too), same disk, same `vaultd bench` workloads, one side at a time,
# every request entering through node 1. Both sides are started afresh on
# empty drives for every workload, so that no workload runs on what an
# earlier one left behind and both sides start each one from the same state.
# Internode traffic is what a deployment runs: vaultd's peers talk over
# internode TLS 1.3, every RPC connection passing the rpcauth handshake.
# Prints one JSON result per line (side, workload, size, the bench JSON, peak
# RSS per process in MiB) to stdout; progress to stderr. Cleans up after
# itself (also on error).
#
# MinIO on loopback: the three processes use 127.0.0.1 ports 9701-9703 and
# the same explicit list of 6 endpoints (no ellipses: they expand as a
# product). Inside a container (/.dockerenv) MinIO refuses endpoints that
# resolve to localhost and waits forever ("resolves to localhost in a
# containerized deployment"); _MINIO_SERVER_LOCAL=host:port tells each
# process which endpoint is its own.
#
# Environment (defaults in brackets):
#   MINIO_BIN [/tmp/benchtools/bin/minio]  MINIO_DIR [/tmp/m3, removed]
#   DURATION [10s]  WARMUP [2s]  CONCURRENCY [16]
#   WORKLOADS ["put:1MiB get:1MiB put:4KiB get:4KiB"]
#   PAYLOAD [signed]  how uploads sign their bodies (signed, unsigned, streaming)
#   SINGLE [1]  also run each workload against one vaultd on 4 drive
#               directories (2+2, as bench/compare.sh), restarted the same
#               way: the side "single" that issue 18's "3 nodes reach 75%
#               of one node" compares with, from the same run
set -euo pipefail
cd "$(dirname "$0")/.."

MINIO_BIN=${MINIO_BIN:-/tmp/benchtools/bin/minio}
MINIO_DIR=${MINIO_DIR:-/tmp/m3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
PAYLOAD=${PAYLOAD:-signed}
SINGLE=${SINGLE:-1}
SINGLE_DIR=${SINGLE_DIR:-/tmp/v1node}
SAK=SINGLENODEACCESS SSK=single-node-secret-0123456789
CONCURRENCY=${CONCURRENCY:-16}
WORKLOADS=${WORKLOADS:-"put:1MiB get:1MiB put:4KiB get:4KiB"}
MAK=MINIOCLUSTERACCESS MSK=minio-cluster-secret-0123456789
ports=(9701 9702 9703)

log() { echo "compare-cluster: $*" >&2; }
mpids=()
cleanup() {
	local p
	for p in "${mpids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	mpids=()
	rm -rf "$MINIO_DIR"
	scripts/cluster.sh clean >&2 || true
	[ -n "${spid:-}" ] && { kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null || true; }
	rm -rf "$SINGLE_DIR"
}
trap cleanup EXIT

peak() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo null; }
resetpeak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

# run SIDE ENDPOINT AK SK W PID...: workload W (e.g. put:1MiB) against one side.
run() {
	local side=$1 ep=$2 ak=$3 sk=$4 w=$5 wl size out p rss
	shift 5
	{
		wl=${w%%:*} size=${w#*:}
		sync
		for p in "$@"; do resetpeak "$p"; done
		log "$side $wl $size"
		out=$(AWS_ACCESS_KEY_ID=$ak AWS_SECRET_ACCESS_KEY=$sk timeout 120 bin/vaultd bench "$wl" --endpoint "$ep" \
			--size "$size" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" --payload "$PAYLOAD" --json --quiet) ||
			log "$side $wl $size: bench exited $? (errors or no result)"
		[ -n "$out" ] || out=null
		rss=""
		for p in "$@"; do rss+="${rss:+,}$(peak "$p")"; done
		echo "{\"side\":\"$side\",\"workload\":\"$wl\",\"size\":\"$size\",\"rss_mib\":[$rss],\"result\":$(tr -d '\n' <<<"$out")}"
	}
}

# --- Vaultaire -------------------------------------------------------------
vstart() {
	scripts/cluster.sh clean >&2
	sync
	scripts/cluster.sh start 3 >&2
	# shellcheck disable=SC1091
	source cluster-data/env
}

# One vaultd on 4 drive directories (SINGLE=1).
spid=""
sstop() {
	[ -n "$spid" ] && { kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null || true; }
	spid=""
	rm -rf "$SINGLE_DIR"
}
sstart() {
	local ok=""
	sstop
	mkdir -p "$SINGLE_DIR"/d{1,2,3,4}
	sync
	VAULT_ROOT_ACCESS_KEY=$SAK VAULT_ROOT_SECRET_KEY=$SSK bin/vaultd server \
		--data "$SINGLE_DIR/d1,$SINGLE_DIR/d2,$SINGLE_DIR/d3,$SINGLE_DIR/d4" --s3 127.0.0.1:9790 \
		--raft 127.0.0.1:9791 --name single --log-level warn >>"$SINGLE_DIR.log" 2>&1 &
	spid=$!
	for _ in $(seq 300); do
		if curl -fs -o /dev/null http://127.0.0.1:9790/_vault/health; then ok=1; break; fi
		sleep 0.1
	done
	[ -n "$ok" ] || { log "single vaultd did not come up"; tail -20 "$SINGLE_DIR.log" >&2; exit 1; }
}

# --- MinIO -----------------------------------------------------------------
mstop() {
	local p
	for p in "${mpids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	mpids=()
	rm -rf "$MINIO_DIR"
}
mstart() {
	local p d ok=""
	mstop
	eps=()
	for p in "${ports[@]}"; do
		for d in 1 2; do
			mkdir -p "$MINIO_DIR/p$p/d$d"
			eps+=("http://127.0.0.1:$p$MINIO_DIR/p$p/d$d")
		done
	done
	sync
	for p in "${ports[@]}"; do
		_MINIO_SERVER_LOCAL=127.0.0.1:$p MINIO_CI_CD=1 MINIO_BROWSER=off MINIO_STORAGE_CLASS_STANDARD=EC:2 \
			MINIO_ROOT_USER=$MAK MINIO_ROOT_PASSWORD=$MSK \
			"$MINIO_BIN" server --quiet --address "127.0.0.1:$p" "${eps[@]}" >>"$MINIO_DIR/log$p" 2>&1 &
		mpids+=($!)
	done
	for _ in $(seq 120); do
		if [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9701/minio/health/cluster)" = 200 ]; then ok=1; break; fi
		sleep 0.5
	done
	[ -n "$ok" ] || { log "MinIO did not answer /minio/health/cluster 200 within 60s"; tail -20 "$MINIO_DIR/log9701" >&2; exit 1; }
}

# The parity MinIO actually uses: PUT one object (curl signs SigV4) and read
# EcM/EcN (data/parity blocks, msgpack fixints) from its xl.meta.
paritycheck() {
	local c=(curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user "$MAK:$MSK") ec
	head -c 1048576 /dev/urandom >"$MINIO_DIR/obj"
	"${c[@]}" -X PUT http://127.0.0.1:9701/paritycheck >/dev/null
	"${c[@]}" -T "$MINIO_DIR/obj" http://127.0.0.1:9701/paritycheck/obj >/dev/null
	ec=$(python3 - "$MINIO_DIR/p9701/d1/paritycheck/obj/xl.meta" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
m, n = b.find(b"EcM"), b.find(b"EcN")
print('{"ec_data":%d,"ec_parity":%d}' % (b[m + 3], b[n + 3]))
PY
)
	log "MinIO erasure: $ec"
	echo "{\"side\":\"minio\",\"erasure\":$ec}"
	"${c[@]}" -X DELETE http://127.0.0.1:9701/paritycheck/obj >/dev/null
	"${c[@]}" -X DELETE http://127.0.0.1:9701/paritycheck >/dev/null
}

first=1
for w in $WORKLOADS; do
	vstart
	run vaultaire http://127.0.0.1:9100 "$VAULT_ROOT_ACCESS_KEY" "$VAULT_ROOT_SECRET_KEY" "$w" \
		"$(cat cluster-data/n1/pid)" "$(cat cluster-data/n2/pid)" "$(cat cluster-data/n3/pid)"
	scripts/cluster.sh clean >&2
	mstart
	[ -n "$first" ] && paritycheck
	first=""
	run minio http://127.0.0.1:9701 "$MAK" "$MSK" "$w" "${mpids[@]}"
	mstop
	if [ "$SINGLE" = 1 ]; then
		sstart
		run single http://127.0.0.1:9790 "$SAK" "$SSK" "$w" "$spid"
		sstop
	fi
done
