#!/usr/bin/env bash
# Differential S3 check: the same raw SigV4-signed requests (probe.py and
# cases.py) and boto3 flows (boto_flows.py) against a one-node vaultd and a
# MinIO server, each on 4 drive directories on loopback; prints every
# difference in status, S3 error code, significant headers and normalised
# XML body. Most differences are MinIO's or noise: judge each against the
# AWS API reference (README.md here). Needs python3 with boto3 and a MinIO
# binary (MINIO_BIN, else `make minio`'s).
#
#   bash bench/s3diff/run.sh            # every case, then the boto3 flows
#   bash bench/s3diff/run.sh c05 c11    # the cases whose name holds c05 or c11
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
minio=${MINIO_BIN:-$(bash scripts/minio.sh)}
work=$(mktemp -d)
vpid="" mpid=""
cleanup() {
	for p in $vpid $mpid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitfor() {
	for _ in $(seq 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
	echo "s3diff: server at $1 did not come up" >&2
	return 1
}
export S3DIFF_AK=S3DIFFACCESSKEY S3DIFF_SK=s3diff-secret-key-0123456789
go build -o "$work/vaultd" ./cmd/vaultd
mkdir -p "$work"/v{1,2,3,4} "$work"/m{1,2,3,4}
vport=$(port) rport=$(port) mport=$(port)
VAULT_ROOT_ACCESS_KEY=$S3DIFF_AK VAULT_ROOT_SECRET_KEY=$S3DIFF_SK "$work/vaultd" server \
	--data "$work/v1,$work/v2,$work/v3,$work/v4" --s3 "127.0.0.1:$vport" --raft "127.0.0.1:$rport" \
	--name s3diff --log-level warn >"$work/vaultd.log" 2>&1 &
vpid=$!
MINIO_CI_CD=1 MINIO_ROOT_USER=$S3DIFF_AK MINIO_ROOT_PASSWORD=$S3DIFF_SK MINIO_BROWSER=off \
	"$minio" server --quiet --address "127.0.0.1:$mport" "$work/m{1...4}" >"$work/minio.log" 2>&1 &
mpid=$!
waitfor "http://127.0.0.1:$vport/_vault/health"
waitfor "http://127.0.0.1:$mport/minio/health/live"
export S3DIFF_VAULT=127.0.0.1:$vport S3DIFF_MINIO=127.0.0.1:$mport
cd "$root/bench/s3diff"
python3 run.py "$@"
if [ $# -eq 0 ]; then
	python3 boto_flows.py "$RANDOM"
fi
